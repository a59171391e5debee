package server

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/drover-ml/drover/shared/procenv"
)

// DefaultGCPercent is memory.gc_percent's default, Go's own. The
// collector's live heap is mostly rows waiting for their insert (about a
// flush interval's worth), so its peak follows the target closely; a lower
// target trades CPU for memory: at 60 000 points/s, 50 took the peak RSS
// from 198 to 180 MB for about a fifth more of the collector's CPU per point
// (docs/collector.md, Memory): one round's total CPU per point against the
// OTel exporter's read 0.332, at issue 18's bound of 0.333.
const DefaultGCPercent = 100

// Memory tunes the Go runtime's garbage collector for the collector
// process, once at start (a change takes a restart). GOGC and GOMEMLIMIT
// set in the environment win over the file.
type Memory struct {
	// GCPercent is the garbage collector's target (Go's GOGC): the heap
	// grows this many percent over the live heap before a collection.
	// Lower takes less memory and more CPU.
	GCPercent int `yaml:"gc_percent"`
	// LimitBytes is a soft limit on the Go runtime's memory (Go's
	// GOMEMLIMIT): near it, collections come sooner whatever gc_percent
	// says. 0: none. It bounds the heap, not ClickHouse's memory (another
	// process, or the embedded engine's own allocator).
	LimitBytes int64 `yaml:"limit_bytes"`
}

// Validate checks the memory section; paths are relative to it.
func (m Memory) Validate() error {
	var errs []error
	if m.GCPercent < 10 || m.GCPercent > 1000 {
		errs = append(errs, fmt.Errorf("gc_percent: must be from 10 to 1000, got %d", m.GCPercent))
	}
	if m.LimitBytes != 0 && m.LimitBytes < 64<<20 {
		errs = append(errs, fmt.Errorf("limit_bytes: must be 0 (none) or >= 67108864 (64 MiB), got %d", m.LimitBytes))
	}
	return errors.Join(errs...)
}

// Apply sets the process's garbage collector target and soft memory limit
// from m, except where GOGC or GOMEMLIMIT is set, not empty, in the
// environment (the runtime has read those, and they win; an empty one the
// runtime ignores, and so does Apply). A section Validate refuses changes
// nothing (Run reports it with the file's other problems). It changes the
// whole process: the composition root calls it once, before the collector
// starts.
func (m Memory) Apply(log *slog.Logger) {
	if m.Validate() != nil {
		return
	}
	if !procenv.Wins(log, "GOGC", "memory.gc_percent", m.GCPercent) {
		debug.SetGCPercent(m.GCPercent)
	}
	if m.LimitBytes != 0 && !procenv.Wins(log, "GOMEMLIMIT", "memory.limit_bytes", m.LimitBytes) {
		debug.SetMemoryLimit(m.LimitBytes)
	}
}
