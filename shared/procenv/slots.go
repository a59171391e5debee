package procenv

import (
	"context"
	"log/slog"
	goruntime "runtime"
	"runtime/metrics"
	"time"
)

// Slots runs a process's Go code on one slot (GOMAXPROCS 1) while one is
// enough, and gives it all of them back as soon as goroutines queue for it.
//
// A server that handles one request at a time hands each one between
// goroutines several times (a gRPC call: the connection's reader, the
// handler, the writer). With idle slots every hand-off wakes an idle thread
// to look for work; it finds none and sleeps again, two thread switches
// that cost more than the hand-off itself. One slot avoids them but makes
// goroutines wait once the Go code needs more than one.
//
// Slots reads two things ten times a window: how many requests the process
// has in hand (InFlight), and, once a window, the runtime's scheduling
// latency (runtime/metrics /sched/latencies, sampled: the time goroutines
// spent ready to run before a slot ran them). With one slot, when the
// process had Concurrency requests or more in hand on average over the
// last three windows, or more than Share of the waits in a window, and at
// least MinWaits of them, lasted LongWait or more (work besides requests,
// such as a new version to verify, or a slot held by a long call into C
// while others wait), it calls All. With all slots it tries one again
// after Probe; when it needs them again within Probe of that try, the next
// try waits twice as long (up to MaxProbe), so a steady load that needs
// the slots pays for a try at most once every MaxProbe, a few windows
// long, and a load that falls back gets one slot again within MaxProbe.
type Slots struct {
	// All gives the process its slots back and returns how many it has:
	// runtime.SetDefaultGOMAXPROCS (Go's default, following a container's
	// CPU limit) or runtime.GOMAXPROCS(n) with the number configured.
	All func() int
	// InFlight says how many requests the process has in hand now; nil
	// leaves the scheduling latency alone to decide.
	InFlight func() int64
	// Log tells each change at debug level; nil is slog.Default.
	Log *slog.Logger

	// Window is how often the waits are read (100ms); Concurrency (1.5),
	// LongWait (200µs), Share (0.08) and MinWaits (8) say when one slot is
	// not enough; Probe (5s) and MaxProbe (1min) how soon one slot is
	// tried again. Zero values take the defaults in brackets.
	Window      time.Duration
	LongWait    time.Duration
	Share       float64
	MinWaits    uint64
	Concurrency float64
	Probe       time.Duration
	MaxProbe    time.Duration

	// waits reads the scheduling events and those that waited LongWait or
	// more so far; one sets one slot. Tests replace them.
	waits func() (all, long uint64)
	one   func()
}

func (s *Slots) defaults() {
	if s.Window <= 0 {
		s.Window = 100 * time.Millisecond
	}
	if s.LongWait <= 0 {
		s.LongWait = 200 * time.Microsecond
	}
	if s.Share <= 0 {
		s.Share = 0.08
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 1.5
	}
	if s.MinWaits == 0 {
		s.MinWaits = 8
	}
	if s.Probe <= 0 {
		s.Probe = 5 * time.Second
	}
	if s.MaxProbe < s.Probe {
		s.MaxProbe = max(time.Minute, s.Probe)
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.waits == nil {
		s.waits = schedWaits(s.LongWait)
	}
	if s.one == nil {
		s.one = func() { goruntime.GOMAXPROCS(1) }
	}
}

// schedWaits reads the runtime's scheduling latency histogram: how many
// waits it has sampled, and how many of them lasted long or more (counted
// from the first bucket that starts at long or above).
func schedWaits(long time.Duration) func() (uint64, uint64) {
	samples := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	return func() (all, over uint64) {
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindFloat64Histogram {
			return 0, 0
		}
		h := samples[0].Value.Float64Histogram()
		for i, c := range h.Counts {
			all += c
			if h.Buckets[i] >= long.Seconds() {
				over += c
			}
		}
		return all, over
	}
}

// Run sets one slot and follows the load until ctx ends; then it gives
// the process its slots back (All) and returns. All must be set.
func (s *Slots) Run(ctx context.Context) {
	s.defaults()
	// The waits are read every window, the requests in hand ten times a
	// window.
	t := time.NewTicker(s.Window / 10)
	defer t.Stop()
	all, long := s.waits()
	s.one()
	s.Log.Debug("process.adaptive_gomaxprocs: one slot")
	single := true
	var downAt time.Time // the last try; none at start
	probe := s.Probe
	var next time.Time
	var tick int
	var load [3]int64 // requests counted in hand, the last three windows
	for {
		select {
		case <-ctx.Done():
			if single {
				n := s.All()
				s.Log.Debug("process.adaptive_gomaxprocs: slots given back", "gomaxprocs", n)
			}
			return
		case now := <-t.C:
			if s.InFlight != nil {
				load[0] += s.InFlight()
			}
			if tick++; tick%10 != 0 {
				continue
			}
			a, l := s.waits()
			da, dl := a-all, l-long
			all, long = a, l
			inHand := float64(load[0]+load[1]+load[2]) / 30
			load[2], load[1], load[0] = load[1], load[0], 0
			switch {
			case single && (dl >= s.MinWaits && float64(dl) > s.Share*float64(da) || inHand >= s.Concurrency):
				single = false
				if !downAt.IsZero() && now.Sub(downAt) < s.Probe {
					probe = min(2*probe, s.MaxProbe)
				} else {
					probe = s.Probe
				}
				next = now.Add(probe)
				n := s.All()
				s.Log.Debug("process.adaptive_gomaxprocs: all slots", "gomaxprocs", n, "waits", da, "long_waits", dl, "in_flight", inHand, "next_try", probe)
			case !single && !now.Before(next):
				single = true
				downAt = now
				load = [3]int64{}
				s.one()
				s.Log.Debug("process.adaptive_gomaxprocs: trying one slot")
			}
		}
	}
}
