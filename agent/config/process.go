package config

import (
	"fmt"
	"log/slog"
	goruntime "runtime"
	"time"

	"github.com/drover-ml/drover/shared/procenv"
)

// MaxGoMaxProcs is the largest process.gomaxprocs: Go's own cap on
// GOMAXPROCS.
const MaxGoMaxProcs = 1024

// Process is the process: section: how the agent's process uses the
// host's CPUs. It takes effect at start (a change takes a restart).
type Process struct {
	// GoMaxProcs is how many threads may run the agent's Go code at once
	// (Go's GOMAXPROCS). 0, the default, keeps Go's own: the CPUs the
	// process may use, its container's CPU limit included, followed when
	// that limit changes. GOMAXPROCS set in the environment, not empty,
	// wins over the file.
	//
	// ONNX Runtime's compute is not Go code: a Run is a cgo call, whose
	// thread hands its slot on to goroutines that wait, so requests still
	// compute side by side on the other CPUs. The slots run the transport
	// and Drover's decode, routing and encode; with one per CPU, most stand
	// idle, and each hand-off between goroutines (a gRPC call crosses
	// three) wakes an idle thread to look for work. Fewer slots take that
	// CPU back, at a cost to tail latency when background work (verifying
	// and loading a new version) needs one: docs/agent.md, CPUs, has the
	// measurements.
	GoMaxProcs int `yaml:"gomaxprocs"`
	// AdaptiveGoMaxProcs (off by default) runs the agent's Go code on one
	// slot while one is enough and gives it gomaxprocs (Go's default when
	// 0) as soon as it is not (procenv.Slots): 1.5 inferences or more in
	// flight on average over 100ms, more than 8 % of the goroutines'
	// sampled waits for a slot in 100ms lasting 200µs or more, a version
	// to load, or all slots answering a tenth more requests than one when
	// tried (every 5s while it answers 500 a second or more, and at once
	// when that rate rises by a quarter). With all slots it tries one
	// again after 5s (or at once when the rate falls by a quarter) and
	// keeps it unless it answers a tenth fewer requests, the next try
	// waiting twice as long each time, up to a minute. GOMAXPROCS in the
	// environment turns it off.
	AdaptiveGoMaxProcs bool `yaml:"adaptive_gomaxprocs"`
	// TimerSlack is how late Linux may end the timed sleeps and waits of
	// the agent's threads, to wake them together: their timer slack
	// (Linux's own is 50µs, unless the service manager set another), and
	// sysmon's unless sysmon_timer_slack is set. The default is
	// DefaultTimerSlack; 0 keeps the one the process started with. What
	// may wait up to the slack longer: timers (deadlines, tickers) and an
	// idle thread's 3µs pause before it takes work from a busy one, which
	// costs throughput at several clients when the slack is large
	// (docs/agent.md, CPUs). Linux only; it takes effect by starting the
	// agent over, in place, at start.
	TimerSlack time.Duration `yaml:"timer_slack"`
	// SysmonTimerSlack is the timer slack of Go's runtime monitor (sysmon),
	// the one thread that runs no goroutine. While any goroutine runs it
	// sleeps 20µs plus its slack at a time, so with a small slack a busy
	// agent wakes it thousands of times a second, each a thread switch.
	// 0, the default, gives it timer_slack. What may wait up to it longer
	// is sysmon's own work: taking a thread back from a long call into
	// ONNX Runtime (or a system call) for goroutines that wait while no
	// other thread is free, and preempting a goroutine that has run 10ms.
	// Linux only; where it differs from timer_slack the agent starts over
	// with it and gives its other threads timer_slack
	// (procenv.ExecWithTimerSlack). On the 2-CPU test machine 2ms took
	// 4–15 % off the agent's CPU per request at one client and cost the
	// 1000×1000 model 3–7 % of its throughput at four (docs/agent.md, CPUs),
	// so it is for hosts that serve a few requests at a time.
	SysmonTimerSlack time.Duration `yaml:"sysmon_timer_slack"`
	// GCMinHeapBytes is the heap below which the agent's garbage collector
	// starts no cycle (procenv.MinHeap); above it GOGC is Go's 100, as
	// before. The default is DefaultGCMinHeapBytes; 0 keeps Go's own
	// (a cycle each time the heap doubles, from 4 MiB). The agent's live
	// heap is a few megabytes while it allocates a few kilobytes per
	// request, so at Go's own it collected many times a second. GOGC set
	// in the environment, not empty, wins; GOMEMLIMIT still applies.
	GCMinHeapBytes int64 `yaml:"gc_min_heap_bytes"`
}

// DefaultGCMinHeapBytes is process.gc_min_heap_bytes's default (64 MiB):
// the agent's heap may hold up to this much before a collection, against
// twice its live heap (at least 4 MiB) at Go's own setting.
const DefaultGCMinHeapBytes = 64 << 20

// MinGCMinHeapBytes and MaxGCMinHeapBytes bound process.gc_min_heap_bytes
// when it is not 0: Go's own minimum, and 1 TiB.
const (
	MinGCMinHeapBytes = 4 << 20
	MaxGCMinHeapBytes = 1 << 40
)

// DefaultTimerSlack is process.timer_slack's default. On the 2-CPU test
// machine it took a fifth to a third of the agent's CPU per request off at
// one client and cost nothing measurable at four; 1ms saved more at one
// client but lost up to a tenth of the throughput at four.
const DefaultTimerSlack = 250 * time.Microsecond

// MaxTimerSlack is the largest process.timer_slack and
// process.sysmon_timer_slack.
const MaxTimerSlack = 100 * time.Millisecond

// Validate checks the process section; paths are relative to it.
func (p Process) Validate() error {
	if p.GoMaxProcs < 0 || p.GoMaxProcs > MaxGoMaxProcs {
		return fmt.Errorf("gomaxprocs: must be from 0 (Go's default, the CPUs) to %d, got %d", MaxGoMaxProcs, p.GoMaxProcs)
	}
	if p.TimerSlack < 0 || p.TimerSlack > MaxTimerSlack {
		return fmt.Errorf("timer_slack: must be from 0 (the slack the process started with) to %s, got %s", MaxTimerSlack, p.TimerSlack)
	}
	if p.SysmonTimerSlack < 0 || p.SysmonTimerSlack > MaxTimerSlack {
		return fmt.Errorf("sysmon_timer_slack: must be from 0 (timer_slack's) to %s, got %s", MaxTimerSlack, p.SysmonTimerSlack)
	}
	if p.GCMinHeapBytes != 0 && (p.GCMinHeapBytes < MinGCMinHeapBytes || p.GCMinHeapBytes > MaxGCMinHeapBytes) {
		return fmt.Errorf("gc_min_heap_bytes: must be 0 (Go's own) or from %d (4 MiB) to %d (1 TiB), got %d", MinGCMinHeapBytes, MaxGCMinHeapBytes, p.GCMinHeapBytes)
	}
	return nil
}

// ApplyTimerSlack gives the process's threads timer_slack and sysmon
// sysmon_timer_slack, when either is not 0, with exec
// (procenv.ExecWithTimerSlack in drover-agent: it starts the process over,
// in place, where sysmon needs another slack, and returns nil once the
// threads have theirs). Where exec fails the agent goes on with the slack
// it has, and says why. The composition root calls it first, before it
// opens anything.
func (p Process) ApplyTimerSlack(log *slog.Logger, exec func(procenv.Slack) error) {
	if p.TimerSlack == 0 && p.SysmonTimerSlack == 0 || exec == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	if err := exec(procenv.Slack{Threads: p.TimerSlack, Sysmon: p.SysmonTimerSlack}); err != nil {
		log.Warn("process.timer_slack not applied; the agent runs with the slack it started with", "timer_slack", p.TimerSlack, "sysmon_timer_slack", p.SysmonTimerSlack, "err", err)
		return
	}
	log.Info("process.timer_slack", "timer_slack", p.TimerSlack, "sysmon_timer_slack", p.SysmonTimerSlack)
}

// Apply sets the process's GOMAXPROCS from p, except where GOMAXPROCS is
// set, not empty, in the environment (the runtime has read it, and it
// wins) or gomaxprocs is 0 (Go's default stays, and keeps following the
// container's CPU limit), and keeps the garbage collector's heap at
// gc_min_heap_bytes at least, except where GOGC is set in the environment
// or it is 0. It changes the whole process: the composition root calls it
// once, before the agent starts, and keeps it for the process's life;
// stopGC ends the floor (tests).
func (p Process) Apply(log *slog.Logger) (stopGC func()) {
	if log == nil {
		log = slog.Default()
	}
	stopGC = func() {}
	if p.GCMinHeapBytes > 0 && !procenv.Wins(log, "GOGC", "process.gc_min_heap_bytes", p.GCMinHeapBytes) {
		if stop, ok := (&procenv.MinHeap{Bytes: uint64(p.GCMinHeapBytes)}).Start(); ok {
			stopGC = stop
			log.Info("process.gc_min_heap_bytes", "gc_min_heap_bytes", p.GCMinHeapBytes)
		}
	}
	if p.GoMaxProcs == 0 || procenv.Wins(log, "GOMAXPROCS", "process.gomaxprocs", p.GoMaxProcs) {
		return stopGC
	}
	goruntime.GOMAXPROCS(p.GoMaxProcs)
	log.Info("process.gomaxprocs", "gomaxprocs", p.GoMaxProcs)
	return stopGC
}

// Slots returns what follows the load with GOMAXPROCS when
// adaptive_gomaxprocs is on, or nil: when it is off, GOMAXPROCS in the
// environment wins, or there is only one slot to give. The agent runs it,
// with its requests in flight, while it serves.
func (p Process) Slots(log *slog.Logger) *procenv.Slots {
	if !p.AdaptiveGoMaxProcs || procenv.Wins(log, "GOMAXPROCS", "process.adaptive_gomaxprocs", p.AdaptiveGoMaxProcs) {
		return nil
	}
	if goruntime.GOMAXPROCS(0) <= 1 {
		return nil
	}
	all := func() int {
		goruntime.SetDefaultGOMAXPROCS()
		return goruntime.GOMAXPROCS(0)
	}
	if p.GoMaxProcs > 0 {
		all = func() int {
			goruntime.GOMAXPROCS(p.GoMaxProcs)
			return p.GoMaxProcs
		}
	}
	return &procenv.Slots{All: all, Log: log}
}
