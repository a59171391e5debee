package procenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	out, err := runChild(t)
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
	if len(after) < 5 {
		t.Fatalf("child printed %q, want pid, slack, started-over and the threads' slack", lines[1])
	}
	if before[1][len("pid="):] != after[1][len("pid="):] {
		t.Errorf("pid %s before starting over, %s after: want the same process", before[1], after[1])
	}
	if after[2] != "slack=2ms" {
		t.Errorf("after starting over, %s; want slack=2ms", after[2])
	}
	if after[3] != "started-over=true" {
		t.Errorf("the second line says %s: the child did not execute itself again", after[3])
	}
	for _, th := range after[4:] {
		if !strings.HasSuffix(th, "=2ms") && !strings.HasSuffix(th, "=unreadable") {
			t.Errorf("thread %s; want every thread at 2ms", th)
		}
	}
}

// TestExecWithTimerSlackOnce: a process that was started over already and
// still lacks the slack says so instead of starting over again.
func TestExecWithTimerSlackOnce(t *testing.T) {
	t.Setenv(startedOverEnv, "3ms")
	cur, err := TimerSlack()
	if err != nil {
		t.Fatal(err)
	}
	err = ExecWithTimerSlack(cur + time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "started over with timer slack 3ms") {
		t.Errorf("ExecWithTimerSlack after a start-over = %v, want an error that says it started over once", err)
	}
	if v, ok := os.LookupEnv(startedOverEnv); ok {
		t.Errorf("%s=%s left in the environment", startedOverEnv, v)
	}
	// Already at the slack: nothing to do.
	if err := ExecWithTimerSlack(cur); err != nil {
		t.Errorf("ExecWithTimerSlack(the current slack) = %v, want nil", err)
	}
}

func runChild(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestExecWithTimerSlack$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// child is the helper process: the first run prints its pid and starts
// over; the second prints its pid and slacks and exits.
func child() {
	// The marker is there only in the process ExecWithTimerSlack started:
	// it tells a run that started over from one that did not, even where
	// the other threads' slack cannot be read.
	startedOver := os.Getenv(startedOverEnv) != ""
	if !startedOver {
		fmt.Printf("before pid=%d\n", os.Getpid())
	}
	if err := ExecWithTimerSlack(2 * time.Millisecond); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	d, err := TimerSlack()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	line := fmt.Sprintf("after pid=%d slack=%s started-over=%t", os.Getpid(), d, startedOver)
	tasks, _ := filepath.Glob("/proc/self/task/*")
	for _, task := range tasks {
		tid := filepath.Base(task)
		// Another thread's slack needs CAP_SYS_NICE to read.
		b, err := os.ReadFile("/proc/" + tid + "/timerslack_ns")
		if err != nil {
			line += " " + tid + "=unreadable"
			continue
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		line += " " + tid + "=" + time.Duration(ns).String()
	}
	fmt.Println(line)
	os.Exit(0)
}
