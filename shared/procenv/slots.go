package procenv

import (
	"context"
	"log/slog"
	goruntime "runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
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
// Slots reads two signals: ten times a window, how many requests the
// process has in hand (InFlight), and once a window the runtime's
// scheduling latency (runtime/metrics /sched/latencies, sampled: the time
// goroutines spent ready to run before a slot ran them). With one slot,
// when the process had Concurrency requests or more in hand on average
// over the last window (the last ten reads, checked at each), or more than
// Share of the waits in a window, and at least MinWaits of them, lasted
// LongWait or more (work besides requests, or a slot held by a long call
// into C while others wait), it calls All. Work known in advance to need
// the slots (a model version to load and warm up) takes them at once with
// Hold. Given Served, it also compares: with one slot it gives all of them
// a few windows now and then and keeps them when they answer more requests
// (a load of short requests from several clients, which the in-flight
// reads miss: they run on the one slot only while no request does). With
// all slots it tries one again after Probe; when it needs them again
// within Probe of that try (a signal, or fewer requests answered), the
// next try waits twice as long (up to MaxProbe), so a steady load that
// needs the slots pays for a try at most once every MaxProbe, a window or
// so long, and a load that falls back gets one slot again within MaxProbe.
type Slots struct {
	// All gives the process its slots back and returns how many it has:
	// runtime.SetDefaultGOMAXPROCS (Go's default, following a container's
	// CPU limit) or runtime.GOMAXPROCS(n) with the number configured.
	All func() int
	// InFlight says how many requests the process has in hand now; nil
	// leaves the scheduling latency alone to decide.
	InFlight func() int64
	// Served says how many requests the process has answered so far; nil
	// makes no comparisons (see Explore).
	Served func() uint64
	// Log tells each change at debug level; nil is slog.Default.
	Log *slog.Logger

	// Window is how often the waits are read (100ms); Concurrency (1.5),
	// LongWait (200µs), Share (0.08) and MinWaits (8) say when one slot is
	// not enough; Probe (5s) and MaxProbe (1min) how soon one slot is
	// tried again. Explore (5s) is how often, with one slot and at least
	// MinServed (50) requests answered a window, all slots are tried for
	// Compare (2) windows; Gain (0.1) is how many more requests they must
	// answer to be kept, and how many fewer one slot may answer after a
	// try. A change of Shift (0.25) in the requests answered a window
	// since the last comparison, in each of the last Compare windows,
	// starts one at once: a rise with one slot tries all, a fall with all
	// tries one. Zero values take the defaults in brackets.
	Window      time.Duration
	LongWait    time.Duration
	Share       float64
	MinWaits    uint64
	Concurrency float64
	Probe       time.Duration
	MaxProbe    time.Duration
	Explore     time.Duration
	MinServed   uint64
	Compare     int
	Gain        float64
	Shift       float64

	// waits reads the scheduling events and those that waited LongWait or
	// more so far; one sets one slot. Tests replace them.
	waits func() (all, long uint64)
	one   func()

	mu      sync.Mutex
	single  bool          // one slot set
	holds   int           // Holds not released
	stopped bool          // Run returned
	probe   time.Duration // the wait before the next try
	next    time.Time     // the next try
	downAt  time.Time     // the last try
	// A comparison in progress: comparing is the windows left in it
	// (0: none; partial: and the one it began in first), before the
	// requests answered a window before it, and during those answered
	// since it began.
	comparing int
	partial   bool
	before    float64
	during    uint64
	explore   time.Time // the next time all slots are tried
	level     float64   // requests answered a window after the last comparison; 0: not known
	settle    int       // windows since the last change that the level does not count yet
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
	if s.Explore <= 0 {
		s.Explore = 5 * time.Second
	}
	if s.MinServed == 0 {
		s.MinServed = 50
	}
	if s.Compare <= 0 {
		s.Compare = 2
	}
	if s.Gain <= 0 {
		s.Gain = 0.1
	}
	if s.Shift <= 0 {
		s.Shift = 0.25
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

// running says a Slots follows this process's GOMAXPROCS: it is the
// process's, so one Slots does at a time (tests run several agents in one
// process).
var running atomic.Bool

// Run sets one slot (unless a Hold is in force) and follows the load
// until ctx ends; then it gives the process its slots back (All) and
// returns. All must be set. While another Slots runs in the process, Run
// changes nothing and waits for ctx to end.
func (s *Slots) Run(ctx context.Context) {
	s.defaults()
	if !running.CompareAndSwap(false, true) {
		s.Log.Debug("process.adaptive_gomaxprocs: another Slots follows this process's GOMAXPROCS")
		<-ctx.Done()
		return
	}
	defer running.Store(false)
	// The requests in hand are read every tick, ten a window, and summed
	// over the last ten; the waits once a window.
	t := time.NewTicker(s.Window / 10)
	defer t.Stop()
	all, long := s.waits()
	var served uint64
	if s.Served != nil {
		served = s.Served()
	}
	s.mu.Lock()
	s.probe = s.Probe
	if s.holds == 0 {
		s.down(time.Now())
		s.downAt = time.Time{} // the first rise is no failed try
	} else {
		s.next = time.Now().Add(s.probe)
	}
	s.explore = time.Now().Add(s.Explore)
	s.mu.Unlock()
	var recent [10]int64  // requests in hand, the last ten ticks
	var inHand int64      // their sum
	var answered []uint64 // requests answered, the last Compare windows
	var tick int
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.single {
				s.single = false
				n := s.All()
				s.Log.Debug("process.adaptive_gomaxprocs: slots given back", "gomaxprocs", n)
			}
			s.stopped = true
			return
		case now := <-t.C:
			var n int64
			if s.InFlight != nil {
				n = s.InFlight()
			}
			i := tick % len(recent)
			inHand += n - recent[i]
			recent[i] = n
			tick++
			window := tick%len(recent) == 0
			queued := false
			var da, dl, dn uint64
			if window {
				a, l := s.waits()
				da, dl = a-all, l-long
				all, long = a, l
				queued = dl >= s.MinWaits && float64(dl) > s.Share*float64(da)
				if s.Served != nil {
					c := s.Served()
					dn, served = c-served, c
					answered = append(answered, dn)
					if len(answered) > s.Compare {
						answered = answered[1:]
					}
				}
			}
			busy := float64(inHand) >= s.Concurrency*float64(len(recent))
			rate, full := average(answered, s.Compare)
			s.mu.Lock()
			settled := window && s.comparing == 0 && s.settle == 0 && full
			if window && s.settle > 0 {
				s.settle--
			}
			if settled && s.level == 0 {
				s.level = rate
			}
			shifted := settled && rate >= float64(s.MinServed) && s.level > 0
			switch {
			case s.single && (queued || busy):
				s.up(now, true, "waits", da, "long_waits", dl, "in_flight", float64(inHand)/float64(len(recent)))
			case window && s.comparing > 0:
				s.compared(now, dn)
				if s.single {
					recent, inHand = [len(recent)]int64{}, 0
				}
			case !s.single && s.holds == 0 && (!now.Before(s.next) || shifted && float64(slices.Max(answered)) < s.level/(1+s.Shift)):
				s.down(now)
				recent, inHand = [len(recent)]int64{}, 0
				s.startComparing(answered, !window)
			case window && s.single && (!now.Before(s.explore) || shifted && float64(slices.Min(answered)) > (1+s.Shift)*s.level) && full && rate >= float64(s.MinServed):
				s.up(now, false, "explore", true)
				s.startComparing(answered, false)
			}
			s.mu.Unlock()
		}
	}
}

// startComparing begins a comparison with the requests answered in the
// last windows before it; when it begins within a window (partial), that
// window is not counted. s.mu must be held.
func (s *Slots) startComparing(answered []uint64, partial bool) {
	before, full := average(answered, s.Compare)
	if !full || before < float64(s.MinServed) {
		s.level = 0 // too few to compare: the next windows tell the level
		return
	}
	s.comparing, s.partial, s.before, s.during = s.Compare, partial, before, 0
}

// average is the requests answered a window over the last n windows, and
// whether there were n.
func average(answered []uint64, n int) (float64, bool) {
	if len(answered) < n || n == 0 {
		return 0, false
	}
	var sum uint64
	for _, a := range answered {
		sum += a
	}
	return float64(sum) / float64(len(answered)), true
}

// compared counts a window of a comparison, and at its end keeps the
// slots that answer more: all of them when they answered Gain more than
// one did, else one; s.mu must be held.
func (s *Slots) compared(now time.Time, answered uint64) {
	if s.partial {
		s.partial = false
		return
	}
	s.during += answered
	if s.comparing--; s.comparing > 0 {
		return
	}
	perWindow := float64(s.during) / float64(s.Compare)
	if s.single {
		// After a try of one slot: back up if one answered fewer.
		if s.before > (1+s.Gain)*perWindow {
			s.up(now, true, "answered_before", s.before, "answered_one", perWindow)
			s.level = s.before
			return
		}
		s.explore = now.Add(s.Explore)
		s.level = perWindow
		return
	}
	// After exploring all slots: keep them if they answered more.
	s.explore = now.Add(s.Explore)
	if perWindow > (1+s.Gain)*s.before || s.holds > 0 {
		s.Log.Debug("process.adaptive_gomaxprocs: all slots kept", "answered_one", s.before, "answered_all", perWindow)
		s.level = perWindow
		return
	}
	s.down(now)
	s.level = s.before
	s.downAt = time.Time{} // no try of one slot: a rise soon after is no failed try
}

// Hold gives the process all its slots now, before its goroutines queue,
// for work that needs them (a model version to load and warm up), until
// release is called. Run tries one slot again only with no hold in force,
// and Probe or more after it went up; a Hold before Run keeps all slots
// from its start. Hold after Run returned does nothing.
func (s *Slots) Hold() (release func()) {
	s.mu.Lock()
	s.holds++
	if s.single && !s.stopped {
		s.up(time.Now(), false, "hold", true)
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.holds--
			s.mu.Unlock()
		})
	}
}

// up gives the process all its slots; s.mu must be held. After a try
// (tried), a rise within Probe of it doubles the wait before the next one,
// up to MaxProbe, and a later rise sets it back to Probe; a hold leaves it
// as it is.
func (s *Slots) up(now time.Time, tried bool, why ...any) {
	if s.single {
		s.comparing = 0 // a rise ends a try of one slot
	}
	s.single = false
	s.level, s.settle = 0, s.Compare
	if tried {
		if !s.downAt.IsZero() && now.Sub(s.downAt) < s.Probe {
			s.probe = min(2*s.probe, s.MaxProbe)
		} else {
			s.probe = s.Probe
		}
	}
	s.next = now.Add(s.probe)
	n := s.All()
	s.Log.Debug("process.adaptive_gomaxprocs: all slots", append([]any{"gomaxprocs", n, "next_try", s.probe}, why...)...)
}

// down tries one slot; s.mu must be held.
func (s *Slots) down(now time.Time) {
	s.single = true
	s.level, s.settle = 0, s.Compare
	s.downAt = now
	s.one()
	s.Log.Debug("process.adaptive_gomaxprocs: one slot")
}
