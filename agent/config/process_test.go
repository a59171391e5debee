package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/procenv"
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
	defer Default().Process.Apply(nil)()
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

func TestProcessSlots(t *testing.T) {
	restoreProcs(t)
	t.Setenv("GOMAXPROCS", "")
	goruntime.GOMAXPROCS(3)
	if s := Default().Process.Slots(nil); s != nil {
		t.Errorf("adaptive_gomaxprocs off by default, got %+v", s)
	}
	s := Process{AdaptiveGoMaxProcs: true}.Slots(nil)
	if s == nil {
		t.Fatal("adaptive_gomaxprocs on, 3 slots: nothing to follow the load")
	}
	goruntime.SetDefaultGOMAXPROCS()
	def := goruntime.GOMAXPROCS(0)
	goruntime.GOMAXPROCS(1)
	if n := s.All(); n != goruntime.GOMAXPROCS(0) || n != def {
		t.Errorf("gomaxprocs 0: All gave %d slots (GOMAXPROCS %d), want Go's default, %d", n, goruntime.GOMAXPROCS(0), def)
	}
	goruntime.GOMAXPROCS(3)
	s = Process{GoMaxProcs: 3, AdaptiveGoMaxProcs: true}.Slots(nil)
	goruntime.GOMAXPROCS(1)
	if n := s.All(); n != 3 || goruntime.GOMAXPROCS(0) != 3 {
		t.Errorf("gomaxprocs 3: All gave %d slots (GOMAXPROCS %d), want 3", n, goruntime.GOMAXPROCS(0))
	}
	goruntime.GOMAXPROCS(1)
	if s := (Process{GoMaxProcs: 1, AdaptiveGoMaxProcs: true}).Slots(nil); s != nil {
		t.Error("one slot: something to follow the load")
	}
	goruntime.GOMAXPROCS(3)
	var buf bytes.Buffer
	t.Setenv("GOMAXPROCS", "3")
	if s := (Process{AdaptiveGoMaxProcs: true}).Slots(slog.New(slog.NewTextHandler(&buf, nil))); s != nil {
		t.Error("GOMAXPROCS in the environment: it should win over adaptive_gomaxprocs")
	}
	if !strings.Contains(buf.String(), "process.adaptive_gomaxprocs: GOMAXPROCS is set in the environment and wins") {
		t.Errorf("log %q does not say the environment wins", buf.String())
	}
}

func TestProcessApplyTimerSlack(t *testing.T) {
	var got []procenv.Slack
	exec := func(s procenv.Slack) error { got = append(got, s); return nil }
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	Process{}.ApplyTimerSlack(log, exec)
	if len(got) != 0 {
		t.Errorf("timer_slack and sysmon_timer_slack 0 (keep the slack the process started with) started over with %v", got)
	}
	Default().Process.ApplyTimerSlack(log, nil) // tests: no start-over
	if len(got) != 0 || buf.Len() != 0 {
		t.Errorf("without exec: started over with %v, logged %q", got, buf.String())
	}
	Process{TimerSlack: time.Millisecond}.ApplyTimerSlack(log, exec)
	Default().Process.ApplyTimerSlack(log, exec)
	Process{SysmonTimerSlack: 5 * time.Millisecond}.ApplyTimerSlack(log, exec)
	want := []procenv.Slack{{Threads: time.Millisecond}, {Threads: 250 * time.Microsecond}, {Sysmon: 5 * time.Millisecond}}
	if !slices.Equal(got, want) {
		t.Errorf("timer_slack 1ms, the defaults, sysmon_timer_slack 5ms: started over with %v, want %v", got, want)
	}
	if !strings.Contains(buf.String(), "msg=process.timer_slack timer_slack=1ms sysmon_timer_slack=0s") ||
		!strings.Contains(buf.String(), "msg=process.timer_slack timer_slack=250µs sysmon_timer_slack=0s") {
		t.Errorf("log %q does not say the slack applied", buf.String())
	}
	buf.Reset()
	Process{TimerSlack: 2 * time.Millisecond}.ApplyTimerSlack(log, func(procenv.Slack) error { return errors.New("no /proc/self/exe") })
	for _, want := range []string{"level=WARN", "process.timer_slack not applied", "timer_slack=2ms", "no /proc/self/exe"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q does not say %q", buf.String(), want)
		}
	}
}

// TestTimerSlackDefault: a file without timer_slack and sysmon_timer_slack
// gets the defaults (250µs; sysmon as the others); an explicit 0s keeps the
// slack the process started with.
func TestTimerSlackDefault(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Process.TimerSlack != DefaultTimerSlack || DefaultTimerSlack != 250*time.Microsecond {
		t.Errorf("default timer_slack = %s, want 250µs", c.Process.TimerSlack)
	}
	if c.Process.SysmonTimerSlack != 0 {
		t.Errorf("default sysmon_timer_slack = %s, want 0 (timer_slack's)", c.Process.SysmonTimerSlack)
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte("process: {timer_slack: 0s, sysmon_timer_slack: 0s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if c.Process.TimerSlack != 0 || c.Process.SysmonTimerSlack != 0 {
		t.Errorf("timer_slack: 0s, sysmon_timer_slack: 0s load as %s, %s; want 0 (keep the process's slack)", c.Process.TimerSlack, c.Process.SysmonTimerSlack)
	}
}

// TestGCMinHeap: the default is 64 MiB; an explicit 0 keeps Go's own; Apply
// with GOGC in the environment leaves the collector alone and says so, and
// without it keeps the heap's target up until it is stopped.
func TestGCMinHeap(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Process.GCMinHeapBytes != DefaultGCMinHeapBytes || DefaultGCMinHeapBytes != 64<<20 {
		t.Errorf("default gc_min_heap_bytes = %d, want 64 MiB", c.Process.GCMinHeapBytes)
	}
	if c, err = Parse([]byte("process: {gc_min_heap_bytes: 0}\n")); err != nil || c.Process.GCMinHeapBytes != 0 {
		t.Fatalf("gc_min_heap_bytes: 0 loads as %d, %v; want 0", c.Process.GCMinHeapBytes, err)
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	t.Setenv("GOGC", "100")
	defer Process{GCMinHeapBytes: 64 << 20}.Apply(log)()
	goruntime.GC()
	goruntime.GC()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC with GOGC=100 in the environment = %d, want 100", p)
	}
	if !strings.Contains(buf.String(), "GOGC") || !strings.Contains(buf.String(), "process.gc_min_heap_bytes") {
		t.Errorf("log does not say the environment's GOGC wins over process.gc_min_heap_bytes:\n%s", buf.String())
	}

	os.Unsetenv("GOGC")
	buf.Reset()
	stop := Process{GCMinHeapBytes: 64 << 20}.Apply(log)
	goruntime.GC()
	goruntime.GC()
	if p := debug.SetGCPercent(100); p <= 100 {
		t.Errorf("GOGC with a 64 MiB floor and a small heap = %d, want more than 100", p)
	}
	if !strings.Contains(buf.String(), "gc_min_heap_bytes=67108864") {
		t.Errorf("log does not name the floor:\n%s", buf.String())
	}
	stop()
	goruntime.GC()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after the floor stopped = %d, want 100", p)
	}
}
