package config

import (
	"bytes"
	"errors"
	"log/slog"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
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

func TestProcessApplyTimerSlack(t *testing.T) {
	var got []time.Duration
	exec := func(d time.Duration) error { got = append(got, d); return nil }
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	Default().Process.ApplyTimerSlack(log, exec)
	if len(got) != 0 {
		t.Errorf("the default (timer_slack 0) started over with %v", got)
	}
	Process{TimerSlack: time.Millisecond}.ApplyTimerSlack(log, nil) // tests: no start-over
	Process{TimerSlack: time.Millisecond}.ApplyTimerSlack(log, exec)
	if len(got) != 1 || got[0] != time.Millisecond {
		t.Errorf("timer_slack 1ms started over with %v, want [1ms]", got)
	}
	if !strings.Contains(buf.String(), "msg=process.timer_slack timer_slack=1ms") {
		t.Errorf("log %q does not say the slack applied", buf.String())
	}
	buf.Reset()
	Process{TimerSlack: 2 * time.Millisecond}.ApplyTimerSlack(log, func(time.Duration) error { return errors.New("no /proc/self/exe") })
	for _, want := range []string{"level=WARN", "process.timer_slack not applied", "timer_slack=2ms", "no /proc/self/exe"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q does not say %q", buf.String(), want)
		}
	}
}
