package agentproc

import (
	"flag"
	"fmt"
	"strings"
)

// Process is the agent's process section as a benchmark sets it from its
// -agent-* flags; zero values leave the agent's defaults.
type Process struct {
	GoMaxProcs int
	// TimerSlack is process.timer_slack as written (a duration; "0s"
	// keeps the slack the agent started with); "" is the agent's default.
	TimerSlack string
	// SysmonTimerSlack is process.sysmon_timer_slack as written ("0s":
	// timer_slack's); "" is the agent's default.
	SysmonTimerSlack string
	// AdaptiveGoMaxProcs is process.adaptive_gomaxprocs as written
	// ("true" or "false"); "" is the agent's default.
	AdaptiveGoMaxProcs string
	// GCMinHeapBytes is process.gc_min_heap_bytes as written ("0": Go's
	// own); "" is the agent's default.
	GCMinHeapBytes string
}

// DefineFlags defines the flags that fill p on the command line:
// -agent-timer-slack, -agent-sysmon-timer-slack and
// -agent-gc-min-heap-bytes, and with gomaxprocs
// -agent-gomaxprocs and -agent-adaptive-gomaxprocs. p holds their values
// once flag.Parse has run.
func DefineFlags(p *Process, gomaxprocs bool) {
	if gomaxprocs {
		flag.IntVar(&p.GoMaxProcs, "agent-gomaxprocs", 0, "run the agent with process.gomaxprocs set to this (0: Go's default, every CPU)")
		flag.StringVar(&p.AdaptiveGoMaxProcs, "agent-adaptive-gomaxprocs", "", "run the agent with process.adaptive_gomaxprocs set to this (true or false; empty: the agent's default)")
	}
	flag.StringVar(&p.TimerSlack, "agent-timer-slack", "", "run the agent with process.timer_slack set to this duration (0s: the slack it started with; empty: the agent's default)")
	flag.StringVar(&p.SysmonTimerSlack, "agent-sysmon-timer-slack", "", "run the agent with process.sysmon_timer_slack set to this duration (0s: timer_slack's; empty: the agent's default)")
	flag.StringVar(&p.GCMinHeapBytes, "agent-gc-min-heap-bytes", "", "run the agent with process.gc_min_heap_bytes set to this (0: Go's own; empty: the agent's default)")
}

// YAML is the process section with the keys that are set, or "".
func (p Process) YAML() string {
	var keys []string
	if p.GoMaxProcs > 0 {
		keys = append(keys, fmt.Sprintf("gomaxprocs: %d", p.GoMaxProcs))
	}
	if p.AdaptiveGoMaxProcs != "" {
		keys = append(keys, "adaptive_gomaxprocs: "+p.AdaptiveGoMaxProcs)
	}
	if p.TimerSlack != "" {
		keys = append(keys, "timer_slack: "+p.TimerSlack)
	}
	if p.SysmonTimerSlack != "" {
		keys = append(keys, "sysmon_timer_slack: "+p.SysmonTimerSlack)
	}
	if p.GCMinHeapBytes != "" {
		keys = append(keys, "gc_min_heap_bytes: "+p.GCMinHeapBytes)
	}
	if len(keys) == 0 {
		return ""
	}
	return "process: {" + strings.Join(keys, ", ") + "}\n"
}

// String says what the agent runs with, for a benchmark's header.
func (p Process) String() string {
	s := "GOMAXPROCS: Go's default"
	if p.GoMaxProcs > 0 {
		s = fmt.Sprintf("process.gomaxprocs %d", p.GoMaxProcs)
	}
	if p.AdaptiveGoMaxProcs != "" {
		s += ", process.adaptive_gomaxprocs " + p.AdaptiveGoMaxProcs
	} else {
		s += ", process.adaptive_gomaxprocs: the agent's default"
	}
	if p.TimerSlack != "" {
		s += ", process.timer_slack " + p.TimerSlack
	} else {
		s += ", process.timer_slack: the agent's default"
	}
	if p.SysmonTimerSlack != "" {
		s += ", process.sysmon_timer_slack " + p.SysmonTimerSlack
	} else {
		s += ", process.sysmon_timer_slack: the agent's default"
	}
	if p.GCMinHeapBytes != "" {
		s += ", process.gc_min_heap_bytes " + p.GCMinHeapBytes
	} else {
		s += ", process.gc_min_heap_bytes: the agent's default"
	}
	return s
}

// DebugFlag is drover-agent's --debug-addr for a benchmark's -debug-addr
// (pprof on that address), as Start's extra arguments; none for "".
func DebugFlag(addr string) []string {
	if addr == "" {
		return nil
	}
	return []string{"--debug-addr", addr}
}
