package procenv

import "time"

// Slack is the timer slack ExecWithTimerSlack gives a process's threads:
// how late Linux may end their timed sleeps and waits, to wake them
// together with others.
type Slack struct {
	// Threads is the slack of every thread that runs goroutines; 0 keeps
	// the one the process started with.
	Threads time.Duration
	// Sysmon is the slack of Go's runtime monitor, the thread that runs no
	// goroutine and, while any runs, wakes every 20µs plus its slack to
	// take threads back from long system calls and calls into C; 0 gives
	// it Threads.
	Sysmon time.Duration
}
