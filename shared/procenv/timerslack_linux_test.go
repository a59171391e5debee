package procenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary run TestExecWithTimerSlack's child.
const helperEnv = "PROCENV_TIMER_SLACK_CHILD"

func TestTimerSlack(t *testing.T) {
	d, err := TimerSlack()
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("TimerSlack() = %s, want the thread's slack (Linux's default is 50µs)", d)
	}
}

// TestExecWithTimerSlack runs this test binary as a child that gives
// itself 2ms of slack: it starts over once, in place (the same process
// id), and its threads, those the runtime started before any of its code
// ran among them, have the slack.
func TestExecWithTimerSlack(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		child()
		return
	}
	after := runChild(t, "2ms/0s")
	if after[2] != "slack=2ms" {
		t.Errorf("after starting over, %s; want slack=2ms", after[2])
	}
	for _, th := range after[5:] {
		if !strings.HasSuffix(th, "=2ms") && !strings.HasSuffix(th, "=unreadable") {
			t.Errorf("thread %s; want every thread at 2ms", th)
		}
	}
}

// TestExecWithTimerSlackSysmon: a child that gives its threads 1ms and
// sysmon 5ms starts over with 5ms and GOMAXPROCS=1, and its package
// initialization gives its first thread 1ms and the process its
// GOMAXPROCS back before the runtime starts threads to run goroutines.
// Where the threads' slack can be read, only the runtime's own threads
// that run no goroutine keep 5ms.
func TestExecWithTimerSlackSysmon(t *testing.T) {
	want := runtime.GOMAXPROCS(0)
	for _, env := range []string{"", "GOMAXPROCS=3"} {
		t.Run("env="+env, func(t *testing.T) {
			after := runChild(t, "1ms/5ms", env)
			if after[2] != "slack=1ms" {
				t.Errorf("after starting over, %s; want slack=1ms on the calling thread", after[2])
			}
			wantProcs := fmt.Sprintf("gomaxprocs=%d/unset", want)
			if env != "" {
				wantProcs = "gomaxprocs=3/3"
			}
			if after[4] != wantProcs {
				t.Errorf("child runs with %s, want %s (GOMAXPROCS as it was started with)", after[4], wantProcs)
			}
			var sysmon, others, unreadable int
			for _, th := range after[5:] {
				switch {
				case strings.HasSuffix(th, "=5ms"):
					sysmon++
				case strings.HasSuffix(th, "=1ms"):
					others++
				case strings.HasSuffix(th, "=unreadable"):
					unreadable++
				default:
					t.Errorf("thread %s; want 1ms, or 5ms for the runtime's own", th)
				}
			}
			// sysmon; with cgo the template thread; with the race
			// detector its own thread.
			keep := 2
			if raceEnabled {
				keep = 3
			}
			if unreadable == 0 && (sysmon < 1 || sysmon > keep || others < 2) {
				t.Errorf("threads %v: want sysmon and the runtime's other threads without goroutines at 5ms, every other at 1ms", after[5:])
			}
		})
	}
}

// lockThread locks the test's goroutine to its thread for the test and
// returns the thread's slack, which it has again after the test.
func lockThread(t *testing.T) time.Duration {
	t.Helper()
	runtime.LockOSThread()
	cur, err := TimerSlack()
	t.Cleanup(func() {
		setTimerSlack(cur)
		runtime.UnlockOSThread()
	})
	if err != nil {
		t.Fatal(err)
	}
	return cur
}

// TestRestoreTimerSlack: a thread with another slack gets d back; one
// with d is left alone.
func TestRestoreTimerSlack(t *testing.T) {
	cur := lockThread(t)
	if err := setTimerSlack(cur + time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := restoreTimerSlack(cur); err != nil {
		t.Fatal(err)
	}
	if got, _ := TimerSlack(); got != cur {
		t.Errorf("after restoreTimerSlack(%s) the thread has %s", cur, got)
	}
	if err := restoreTimerSlack(cur); err != nil {
		t.Errorf("restoreTimerSlack on a thread that has it: %v", err)
	}
}

// TestExecWithTimerSlackOnce: in a process that was started over already,
// ExecWithTimerSlack does not start over again: it gives the calling
// thread the threads' slack (it may be one that sysmon started since), or
// says what failed at the start.
func TestExecWithTimerSlackOnce(t *testing.T) {
	cur := lockThread(t)
	startedOver.marked, startedOver.threads = true, cur+3*time.Millisecond
	if err := ExecWithTimerSlack(Slack{Threads: cur + time.Millisecond}); err != nil {
		t.Errorf("ExecWithTimerSlack after a start-over = %v, want nil", err)
	}
	if got, _ := TimerSlack(); got != cur+3*time.Millisecond {
		t.Errorf("after a start-over the thread has %s, want the threads' %s", got, cur+3*time.Millisecond)
	}
	if startedOver.marked {
		t.Error("the start-over is still marked after ExecWithTimerSlack saw it")
	}
	startedOver.marked, startedOver.err = true, errors.New("prctl failed")
	if err := ExecWithTimerSlack(Slack{Threads: cur}); err == nil || err.Error() != "prctl failed" {
		t.Errorf("ExecWithTimerSlack after a start-over that failed = %v, want its error", err)
	}
	startedOver.err = nil
	setTimerSlack(cur)
	if _, _, ok := parseStartedOver("3ms"); ok {
		t.Error(`parseStartedOver("3ms") = ok, want a marker it cannot read`)
	}
	if th, sm, ok := parseStartedOver("1000000/5000000"); !ok || th != time.Millisecond || sm != 5*time.Millisecond {
		t.Errorf(`parseStartedOver("1000000/5000000") = %s, %s, %t; want 1ms, 5ms`, th, sm, ok)
	}
	// Already at the slack: nothing to do.
	if err := ExecWithTimerSlack(Slack{Threads: cur}); err != nil {
		t.Errorf("ExecWithTimerSlack(the current slack) = %v, want nil", err)
	}
	if err := ExecWithTimerSlack(Slack{}); err != nil {
		t.Errorf("ExecWithTimerSlack(zero: the current slack) = %v, want nil", err)
	}
}

// runChild runs this test binary as child() with the slack "threads/sysmon"
// and returns the fields of the line it printed after starting over, once
// it checked that the child started over in place.
func runChild(t *testing.T, slack string, env ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestExecWithTimerSlack$", "-test.count=1")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	cmd.Env = append(cmd.Env, helperEnv+"="+slack)
	for _, kv := range env {
		if kv != "" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The child prints its pid before it starts over, then once it runs
	// with the slack: its pid, its thread's slack and its threads'.
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "before pid=") || !strings.HasPrefix(lines[1], "after pid=") {
		t.Fatalf("child printed %q, want a line before it starts over and one after", out)
	}
	before, after := strings.Fields(lines[0]), strings.Fields(lines[1])
	if len(after) < 6 {
		t.Fatalf("child printed %q, want pid, slack, started-over, GOMAXPROCS and the threads' slack", lines[1])
	}
	if before[1][len("pid="):] != after[1][len("pid="):] {
		t.Errorf("pid %s before starting over, %s after: want the same process", before[1], after[1])
	}
	if after[3] != "started-over=true" {
		t.Errorf("the second line says %s: the child did not execute itself again", after[3])
	}
	return after
}

// child is the helper process: the first run prints its pid and starts
// over; the second prints its pid and slacks and exits.
func child() {
	// The marker is there only in the process ExecWithTimerSlack started
	// (init took it from the environment): it tells a run that started
	// over from one that did not, even where the other threads' slack
	// cannot be read.
	over := startedOver.marked
	if !over {
		fmt.Printf("before pid=%d\n", os.Getpid())
	}
	a, b, _ := strings.Cut(os.Getenv(helperEnv), "/")
	threads, err1 := time.ParseDuration(a)
	sysmon, err2 := time.ParseDuration(b)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	// The same thread for ExecWithTimerSlack and the slack read after it.
	runtime.LockOSThread()
	if err := ExecWithTimerSlack(Slack{Threads: threads, Sysmon: sysmon}); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	d, err := TimerSlack()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	procs, ok := os.LookupEnv("GOMAXPROCS")
	if !ok {
		procs = "unset"
	}
	line := fmt.Sprintf("after pid=%d slack=%s started-over=%t gomaxprocs=%d/%s", os.Getpid(), d, over, runtime.GOMAXPROCS(0), procs)
	tids, _ := threadIDs()
	for _, tid := range tids {
		if ns, ok := threadSlack(tid); ok {
			line += fmt.Sprintf(" %d=%s", tid, ns)
		} else {
			line += fmt.Sprintf(" %d=unreadable", tid)
		}
	}
	fmt.Println(line)
	os.Exit(0)
}

// threadSlack reads a thread's slack; another thread's needs CAP_SYS_NICE.
func threadSlack(tid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/timerslack_ns")
	if err != nil {
		return 0, false
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err == nil
}
