package runtime

import (
	"context"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// watchInterval is how often a watchdog looks at the runs in flight: a run
// is terminated at most about this long after its deadline passed or its
// context ended.
const watchInterval = 20 * time.Millisecond

// watchIdle is how many looks in a row that find no run in flight and none
// started since the previous look stop the watchdog's timer (one second).
const watchIdle = 50

// watchdog ends the runs of a backend's models that outlive their deadline
// or whose context ends, through ONNX Runtime's terminate flag on their run
// options.
// A timer looks at the runs in flight every watchInterval while runs come,
// so a run registers no timer and no context callback of its own:
// context.WithTimeout and context.AfterFunc per request cost 14 allocations
// and about 3µs of a 10µs request path (BenchmarkInferPath). The timer is
// not stopped when the last run in flight ends, only after a second
// without runs: arming a timer a few milliseconds ahead wakes the thread
// that waits in the network poller (it sleeps until the next timer), which
// cost more than the context per request where runs are short and one at
// a time.
type watchdog struct {
	mu      sync.Mutex
	runs    []*watchedRun
	timer   *time.Timer
	armed   bool
	started bool // a run started since the last look
	idle    int  // looks in a row without runs
}

// watchedRun is one run in flight.
type watchedRun struct {
	ctx      context.Context
	deadline time.Time // zero: none
	ro       *ort.RunOptions
	i        int   // index in watchdog.runs
	ended    error // why the run was terminated; nil while it was not
}

var watchedRuns = sync.Pool{New: func() any { return new(watchedRun) }}

func newWatchdog() *watchdog {
	w := &watchdog{}
	// The timer is made here, at the backend's first load, and only reset
	// later.
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// start registers a run that uses ro. It fails at once when ctx has ended
// or the deadline has passed.
func (w *watchdog) start(ctx context.Context, deadline time.Time, ro *ort.RunOptions) (*watchedRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return nil, context.DeadlineExceeded
	}
	r := watchedRuns.Get().(*watchedRun)
	*r = watchedRun{ctx: ctx, deadline: deadline, ro: ro}
	w.mu.Lock()
	r.i = len(w.runs)
	w.runs = append(w.runs, r)
	w.started = true
	if !w.armed {
		w.armed = true
		w.timer.Reset(watchInterval)
	}
	w.mu.Unlock()
	return r, nil
}

// finish removes a run started by start and reports why it was terminated
// (nil: it was not). The run options are the caller's again; their
// terminate flag is set when the error is not nil.
func (w *watchdog) finish(r *watchedRun) error {
	w.mu.Lock()
	last := len(w.runs) - 1
	w.runs[r.i] = w.runs[last]
	w.runs[r.i].i = r.i
	w.runs[last] = nil
	w.runs = w.runs[:last]
	ended := r.ended
	w.mu.Unlock()
	*r = watchedRun{}
	watchedRuns.Put(r)
	return ended
}

// check terminates the runs whose deadline has passed or whose context has
// ended, and looks again in watchInterval unless runs stopped coming.
func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for _, r := range w.runs {
		if r.ended != nil {
			continue
		}
		switch err := r.ctx.Err(); {
		case err != nil:
			r.ended = err
		case !r.deadline.IsZero() && !now.Before(r.deadline):
			r.ended = context.DeadlineExceeded
		default:
			continue
		}
		r.ro.Terminate()
	}
	if len(w.runs) > 0 || w.started {
		w.idle = 0
	} else {
		w.idle++
	}
	w.started = false
	if w.idle < watchIdle {
		w.timer.Reset(watchInterval)
		return
	}
	w.armed = false
	w.idle = 0
}
