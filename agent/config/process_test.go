package config

import (
	goruntime "runtime"
	"testing"
)

// restoreProcs puts the process's GOMAXPROCS back after t.
func restoreProcs(t *testing.T) {
	n := goruntime.GOMAXPROCS(0)
	t.Cleanup(func() { goruntime.GOMAXPROCS(n) })
}

func TestProcessApply(t *testing.T) {
	restoreProcs(t)
	// Empty, as if unset: the runtime ignores an empty GOMAXPROCS, so does
	// Apply.
	t.Setenv("GOMAXPROCS", "")
	goruntime.GOMAXPROCS(4)
	Default().Process.Apply(nil)
	if got := goruntime.GOMAXPROCS(0); got != 4 {
		t.Errorf("GOMAXPROCS after Apply(default, gomaxprocs 0) = %d, want Go's 4 unchanged", got)
	}
	Process{GoMaxProcs: 3}.Apply(nil)
	if got := goruntime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS after Apply(gomaxprocs 3) = %d, want 3", got)
	}
}

func TestProcessApplyEnvironmentWins(t *testing.T) {
	restoreProcs(t)
	t.Setenv("GOMAXPROCS", "4")
	goruntime.GOMAXPROCS(4)
	Process{GoMaxProcs: 1}.Apply(nil)
	if got := goruntime.GOMAXPROCS(0); got != 4 {
		t.Errorf("GOMAXPROCS = %d, want the environment's 4", got)
	}
}
