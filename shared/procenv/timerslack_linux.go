package procenv

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// that it never starts over twice; its value is the slack for the threads
// and for sysmon, in nanoseconds: "threads/sysmon". gomaxprocsEnv carries
// GOMAXPROCS as the process had it, where it had one, while the process
// starts over with GOMAXPROCS=1.
const (
	startedOverEnv = "DROVER_TIMER_SLACK_EXEC"
	gomaxprocsEnv  = "DROVER_TIMER_SLACK_GOMAXPROCS"
)

// startedOver is what init found when the process was started over.
var startedOver struct {
	marked  bool
	threads time.Duration
	err     error
}

// init finishes a start-over by ExecWithTimerSlack. Package
// initialization runs on the process's first thread: where sysmon's slack
// differs, that thread, started with sysmon's, takes the threads' slack
// and only then does the process get its GOMAXPROCS back, so that the
// threads started from then on inherit the threads' slack.
func init() {
	v, ok := os.LookupEnv(startedOverEnv)
	if !ok {
		return
	}
	os.Unsetenv(startedOverEnv)
	startedOver.marked = true
	threads, sysmon, ok := parseStartedOver(v)
	if !ok {
		startedOver.err = fmt.Errorf("started over with %s=%q, which is not the slack for the threads and sysmon", startedOverEnv, v)
		return
	}
	startedOver.threads = threads
	if threads == sysmon {
		return
	}
	startedOver.err = visitThreads(threads)
	go keepTimerSlack(threads)
	if orig, ok := os.LookupEnv(gomaxprocsEnv); ok {
		os.Unsetenv(gomaxprocsEnv)
		os.Setenv("GOMAXPROCS", orig)
		if n, err := strconv.Atoi(orig); err == nil && n > 0 {
			runtime.GOMAXPROCS(n)
			return
		}
	} else {
		os.Unsetenv("GOMAXPROCS")
	}
	runtime.SetDefaultGOMAXPROCS()
}

// visitThreads gives d to the calling thread and to every thread of the
// process that runs goroutines; the runtime's own that run none (sysmon;
// with cgo, the template thread) keep theirs. init calls it on the first
// thread, with GOMAXPROCS 1, while the only threads are the runtime's
// first: sysmon, and those started when the main goroutine, locked to the
// first thread during initialization, waited.
//
// Only a thread's own slack can be set without privileges, so goroutines
// visit the threads, one after the other. Each sets d on the thread that
// runs it and, but for the last, holds that thread in a system call until
// all have run, so that the next runs on another thread: the calling
// goroutine, locked to its thread, hands the processor on while it waits,
// and the runtime takes an idle thread, or starts one when none is left
// (that one, started by sysmon, is visited too). With one processor no
// other thread is started meanwhile. The goroutines do not lock their
// threads: a locked thread has new threads started by the template thread,
// which keeps sysmon's slack.
func visitThreads(d time.Duration) error {
	if err := setTimerSlack(d); err != nil {
		return err
	}
	tids, err := threadIDs()
	if err != nil {
		return err
	}
	// The visits hold their threads in a read of this pipe (blocking, not
	// the runtime's poller) until its write end closes.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	var held sync.WaitGroup
	defer func() {
		unix.Close(pipe[1])
		held.Wait()
		unix.Close(pipe[0])
	}()
	arrived := make(chan error)
	visits := len(tids) - 1
	for i := range visits {
		held.Add(1)
		go func() {
			defer held.Done()
			err := setTimerSlack(d)
			arrived <- err
			// The last gives its thread back: were it held too, sysmon
			// would start a thread, which keeps its slack, to go on.
			if i < visits-1 && err == nil {
				// A system call keeps the thread; sysmon gives the
				// processor to another for the goroutines that wait.
				var b [1]byte
				unix.Read(pipe[0], b[:])
			}
		}()
		if err := <-arrived; err != nil {
			return err
		}
	}
	return nil
}

// keepTimerSlack gives d, every keepInterval for the life of the process,
// to the thread that runs it, where that thread has another: the threads
// that sysmon starts (to take a processor back from a long call when no
// thread is idle) inherit sysmon's slack, and they go on to run goroutines.
func keepTimerSlack(d time.Duration) {
	t := time.NewTicker(keepInterval)
	for range t.C {
		_ = restoreTimerSlack(d)
	}
}

// restoreTimerSlack gives the calling thread d where it has another.
func restoreTimerSlack(d time.Duration) error {
	cur, err := TimerSlack()
	if err != nil || cur == d {
		return err
	}
	return setTimerSlack(d)
}

// keepInterval is how often keepTimerSlack looks.
const keepInterval = 250 * time.Millisecond

// ExecWithTimerSlack gives the threads of the process the timer slack s.
//
// A thread takes its slack from the thread that creates it, and Go's
// runtime creates its first threads (sysmon among them) before any of the
// program's code runs; only the thread's own slack can be set without
// privileges. So it sets sysmon's slack on the calling thread and executes
// the program again in its place (execve keeps the process id, the
// environment and the slack; Go opens files close-on-exec): the new
// process's first threads start with it. Where the other threads' slack
// differs, the new process starts with GOMAXPROCS=1 and this package's
// init, on the first thread, gives the threads' slack to that thread and
// to the others that run goroutines (visitThreads), then gives the
// process its GOMAXPROCS back (GOMAXPROCS in the environment as it was):
// the threads started from then on inherit the threads' slack, and those
// that sysmon starts later are given it when they run keepTimerSlack's
// goroutine. The runtime's own threads that run no goroutine (sysmon; with
// cgo, the template thread) keep sysmon's. Call it first thing, before
// opening files or listeners.
//
// It returns nil without starting over when the calling thread already has
// the slack and sysmon would have it too (set by this function before, or
// by the service manager, e.g. systemd's TimerSlackNSec=), and an error
// where it cannot; when it starts over, it does not return.
func ExecWithTimerSlack(s Slack) error {
	cur, err := TimerSlack()
	if err != nil {
		return err
	}
	if startedOver.marked {
		startedOver.marked = false
		if startedOver.err != nil {
			return startedOver.err
		}
		// The calling goroutine may run on a thread sysmon started since.
		return restoreTimerSlack(startedOver.threads)
	}
	threads, sysmon := s.Threads, s.Sysmon
	if threads == 0 {
		threads = cur
	}
	if sysmon == 0 {
		sysmon = threads
	}
	if threads == cur && sysmon == cur {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the executable to start over: %w", err)
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d/%d", startedOverEnv, threads.Nanoseconds(), sysmon.Nanoseconds()))
	if threads != sysmon {
		if orig, ok := os.LookupEnv("GOMAXPROCS"); ok {
			env = append(env, gomaxprocsEnv+"="+orig)
		}
		// The first of a repeated variable wins: drop the process's own.
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
		env = append(env, "GOMAXPROCS=1")
	}
	// The slack is the thread's, and execve runs on this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setTimerSlack(sysmon); err != nil {
		return err
	}
	err = unix.Exec(exe, os.Args, env)
	// Still here: put this thread's slack back, as the others have it.
	_ = setTimerSlack(cur)
	return fmt.Errorf("start %s over: %w", exe, err)
}

func parseStartedOver(v string) (threads, sysmon time.Duration, ok bool) {
	a, b, found := strings.Cut(v, "/")
	t, err1 := strconv.ParseInt(a, 10, 64)
	m, err2 := strconv.ParseInt(b, 10, 64)
	if !found || err1 != nil || err2 != nil || t <= 0 || m <= 0 {
		return 0, 0, false
	}
	return time.Duration(t), time.Duration(m), true
}

func setTimerSlack(d time.Duration) error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_TIMERSLACK, %d): %w", d.Nanoseconds(), err)
	}
	return nil
}

// threadIDs lists the process's threads.
func threadIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list the threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
