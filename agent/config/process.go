package config

import (
	"fmt"
	"log/slog"
	goruntime "runtime"

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
}

// Validate checks the process section; paths are relative to it.
func (p Process) Validate() error {
	if p.GoMaxProcs < 0 || p.GoMaxProcs > MaxGoMaxProcs {
		return fmt.Errorf("gomaxprocs: must be from 0 (Go's default, the CPUs) to %d, got %d", MaxGoMaxProcs, p.GoMaxProcs)
	}
	return nil
}

// Apply sets the process's GOMAXPROCS from p, except where GOMAXPROCS is
// set, not empty, in the environment (the runtime has read it, and it
// wins) or gomaxprocs is 0 (Go's default stays, and keeps following the
// container's CPU limit). It changes the whole process: the composition
// root calls it once, before the agent starts.
func (p Process) Apply(log *slog.Logger) {
	if p.GoMaxProcs == 0 || procenv.Wins(log, "GOMAXPROCS", "process.gomaxprocs", p.GoMaxProcs) {
		return
	}
	goruntime.GOMAXPROCS(p.GoMaxProcs)
	if log == nil {
		log = slog.Default()
	}
	log.Info("process.gomaxprocs", "gomaxprocs", p.GoMaxProcs)
}
