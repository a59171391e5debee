package server

import (
	"math"
	"runtime/debug"
	"testing"
)

// restoreGC puts the process's GC target and memory limit back after t.
func restoreGC(t *testing.T) {
	percent := gcPercent()
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

// gcPercent is the process's GC target (SetGCPercent only reads it by
// setting it).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestMemoryApply(t *testing.T) {
	restoreGC(t)
	// Empty, as if unset: the runtime ignores an empty GOGC, so does Apply.
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")

	debug.SetMemoryLimit(math.MaxInt64)
	Memory{GCPercent: 37}.Apply(nil)
	if got := gcPercent(); got != 37 {
		t.Errorf("GC percent after Apply(gc_percent 37) = %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit after Apply(limit_bytes 0) = %d, want unchanged (none)", got)
	}
	Memory{GCPercent: 80, LimitBytes: 512 << 20}.Apply(nil)
	if got := gcPercent(); got != 80 {
		t.Errorf("GC percent after Apply(gc_percent 80) = %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("memory limit after Apply(limit_bytes 512 MiB) = %d", got)
	}
	// A section Validate refuses changes nothing.
	Memory{GCPercent: 5, LimitBytes: 1}.Apply(nil)
	if got := gcPercent(); got != 80 {
		t.Errorf("GC percent after Apply(gc_percent 5) = %d, want 80 unchanged", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("memory limit after Apply(limit_bytes 1) = %d, want 512 MiB unchanged", got)
	}
}

func TestMemoryApplyEnvironmentWins(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOGC", "200")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(200)
	debug.SetMemoryLimit(1 << 30)
	Memory{GCPercent: 50, LimitBytes: 256 << 20}.Apply(nil)
	if got := gcPercent(); got != 200 {
		t.Errorf("GC percent = %d, want GOGC's 200", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit = %d, want GOMEMLIMIT's 1 GiB", got)
	}
}

func TestMemoryDefaultsValidate(t *testing.T) {
	m := Default().Memory
	if m.GCPercent != DefaultGCPercent || m.LimitBytes != 0 {
		t.Fatalf("default memory section = %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Memory{{GCPercent: 0}, {GCPercent: 9}, {GCPercent: 1001}, {GCPercent: 50, LimitBytes: 1}, {GCPercent: 50, LimitBytes: -1}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
