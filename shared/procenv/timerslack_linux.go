package procenv

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// TimerSlack returns the calling thread's timer slack: how late Linux may
// end its timed sleeps and waits, to wake it together with others.
func TimerSlack() (time.Duration, error) {
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("prctl(PR_GET_TIMERSLACK): %w", err)
	}
	return time.Duration(ns), nil
}

// startedOverEnv marks the process that ExecWithTimerSlack started, so
// that it never starts over twice.
const startedOverEnv = "DROVER_TIMER_SLACK_EXEC"

// ExecWithTimerSlack gives every thread of the process the timer slack d.
//
// A thread takes its slack from the thread that creates it, and Go's
// runtime creates its first threads (sysmon among them) before any of the
// program's code runs; only the thread's own slack can be set without
// privileges. So it sets d on the calling thread and executes the program
// again in its place (execve keeps the process id, the environment and the
// slack; Go opens files close-on-exec): the new process's threads all
// start with d. Call it first thing, before opening files or listeners.
//
// It returns nil without starting over when the thread already has d (set
// by this function before, or by the service manager, e.g. systemd's
// TimerSlackNSec=), and an error where it cannot; when it starts over, it
// does not return.
func ExecWithTimerSlack(d time.Duration) error {
	cur, err := TimerSlack()
	if err != nil {
		return err
	}
	if cur == d {
		os.Unsetenv(startedOverEnv)
		return nil
	}
	if v := os.Getenv(startedOverEnv); v != "" {
		os.Unsetenv(startedOverEnv)
		return fmt.Errorf("started over with timer slack %s and runs with %s", v, cur)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the executable to start over: %w", err)
	}
	// The slack is the thread's, and execve runs on this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_TIMERSLACK, %d): %w", d.Nanoseconds(), err)
	}
	env := append(os.Environ(), startedOverEnv+"="+strconv.FormatInt(d.Nanoseconds(), 10)+"ns")
	err = unix.Exec(exe, os.Args, env)
	// Still here: put this thread's slack back, as the others have it.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(cur.Nanoseconds()), 0, 0, 0)
	return fmt.Errorf("start %s over: %w", exe, err)
}
