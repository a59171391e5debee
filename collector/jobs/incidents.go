package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// ErrBadIncident is the error of an incident that can never become a job
// (no model, version or start): the Queue drops it instead of retrying.
var ErrBadIncident = errors.New("incomplete incident")

// ErrTooManyJobs is the error of an incident whose model already has
// Config.MaxOpenPerModel jobs queued or running: no job is made for it, and
// the Queue drops it instead of retrying.
var ErrTooManyJobs = errors.New("too many open jobs for the model")

// permanent reports whether a Schedule error will not change on retry.
func permanent(err error) bool {
	return errors.Is(err, ErrBadIncident) || errors.Is(err, ErrTooManyJobs)
}

// Scheduler creates the job of an incident; *Manager is one.
type Scheduler interface {
	Schedule(ctx context.Context, inc Incident) (id string, created bool, err error)
}

// QueueOptions configure a Queue; zero fields take their defaults.
type QueueOptions struct {
	// Capacity bounds the incidents waiting to become jobs; default 1000.
	// Send refuses (and logs) an incident beyond it.
	Capacity int
	// DrainTimeout bounds the last attempt, at stop, to deliver the
	// incidents still waiting; default 10s.
	DrainTimeout time.Duration
	// BackOff returns the delays between attempts to deliver one incident;
	// default jittered exponential from 1s to 1m that never gives up.
	BackOff func() backoff.BackOff
	// Logger; default slog.Default(). The caller names the component.
	Logger *slog.Logger
}

// Queue takes confirmed drift incidents from the drift side and turns each
// into its job, as Prometheus's notifier hands alerts to Alertmanager: Send
// never blocks the caller; Run's goroutine delivers the incidents in order,
// retrying each (with backoff) until Schedule succeeds. A detector that
// confirmed an incident is in cooldown and does not report it again, so a
// job must not be lost to a transient ClickHouse error; and since the job
// id is derived from the incident, a retry never makes a second job.
// Send is safe for concurrent use; Run may be called once.
type Queue struct {
	sched Scheduler
	opts  QueueOptions
	log   *slog.Logger
	wake  chan struct{}

	mu      sync.Mutex
	pending []Incident
	stopped bool
	ran     bool
}

// NewQueue returns a Queue that delivers to s.
func NewQueue(s Scheduler, opts QueueOptions) *Queue {
	if opts.Capacity <= 0 {
		opts.Capacity = 1000
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.BackOff == nil {
		opts.BackOff = func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval, b.Multiplier, b.MaxInterval = time.Second, 2, time.Minute
			return b
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Queue{sched: s, opts: opts, log: log, wake: make(chan struct{}, 1)}
}

// Send queues an incident for delivery and returns at once. It returns
// false, logging why, when the queue is full or has stopped: the incident
// is then lost (the drift result stays recorded in drift_results).
func (q *Queue) Send(inc Incident) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.stopped:
		q.log.Error("drift incident after the jobs queue stopped; no job is scheduled for it", "model", inc.Model, "version", inc.Version, "start", inc.Start)
		return false
	case len(q.pending) >= q.opts.Capacity:
		q.log.Error("jobs queue full; no job is scheduled for this drift incident", "model", inc.Model, "version", inc.Version, "start", inc.Start, "capacity", q.opts.Capacity)
		return false
	}
	q.pending = append(q.pending, inc)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// Len is the number of incidents not yet delivered (the one being
// delivered included).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Run delivers incidents until ctx is cancelled. It then makes one more
// attempt for each incident still waiting (bounded by DrainTimeout), logs
// the ones it could not deliver, and returns nil; later Sends are refused.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.ran {
		q.mu.Unlock()
		return errors.New("jobs: Queue.Run called twice")
	}
	q.ran = true
	q.mu.Unlock()
	for {
		inc, ok := q.head()
		if !ok {
			select {
			case <-ctx.Done():
				return q.drain()
			case <-q.wake:
				continue
			}
		}
		_, err := backoff.Retry(ctx, func() (struct{}, error) {
			err := q.deliver(ctx, inc)
			if permanent(err) {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, err
		}, backoff.WithBackOff(q.opts.BackOff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
			q.log.Warn("schedule re-optimization job; retrying", "model", inc.Model, "version", inc.Version, "err", err, "retry_in", next)
		}))
		if err != nil && ctx.Err() != nil {
			return q.drain() // the incident is still at the head
		}
		if err != nil {
			q.log.Error("drift incident cannot become a job; dropped", "model", inc.Model, "version", inc.Version, "err", err)
		}
		q.pop()
	}
}

func (q *Queue) deliver(ctx context.Context, inc Incident) error {
	id, created, err := q.sched.Schedule(ctx, inc)
	if err == nil {
		q.log.Info("re-optimization job scheduled", "id", id, "created", created, "model", inc.Model, "version", inc.Version)
	}
	return err
}

func (q *Queue) head() (Incident, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return Incident{}, false
	}
	return q.pending[0], true
}

func (q *Queue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending[0] = Incident{}
	q.pending = q.pending[1:]
}

// drain stops the queue and tries every waiting incident once more.
func (q *Queue) drain() error {
	q.mu.Lock()
	q.stopped = true
	left := q.pending
	q.pending = nil
	q.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.DrainTimeout)
	defer cancel()
	for i, inc := range left {
		err := q.deliver(ctx, inc)
		if permanent(err) {
			q.log.Error("drift incident cannot become a job; dropped", "model", inc.Model, "version", inc.Version, "err", err)
			continue
		}
		if err != nil {
			for _, lost := range left[i:] {
				q.log.Error("stopping: drift incident not delivered; no job is scheduled for it", "model", lost.Model, "version", lost.Version, "start", lost.Start, "err", err)
			}
			return nil
		}
	}
	return nil
}
