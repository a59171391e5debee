package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Forwarder takes the labels an agent could not join itself (Status
// Unknown: it never sampled the request, or sampled it for another model)
// so that they count fleet-wide: the collector joins them with the sample
// that another agent sent (docs/fleet.md, "Agents"). The agent's fleet
// client implements it (ForwardQueue does the queueing); the feedback path
// calls Forward after it counted the labels unknown on its own /metrics.
//
// Forward must not block the feedback call and must not keep fbs' backing
// array beyond the call's use of it. Implementations are safe for
// concurrent use.
type Forwarder interface {
	Forward(model string, fbs []Feedback)
}

// ErrPermanent marks an error of ForwardOptions.Send that retrying cannot
// fix (the collector answered 400 or 413): the batch is dropped.
var ErrPermanent = errors.New("permanent")

// Defaults for ForwardOptions.
const (
	DefaultForwardQueue = 10_000
	DefaultForwardBatch = 1_000
	DefaultForwardRetry = time.Second
)

// ForwardOptions configure a ForwardQueue.
type ForwardOptions struct {
	// Send posts body (the feedback format: a JSON array of {"id",
	// "label"}) to a collector's POST /v2/models/{model}/feedback. An
	// error wrapping ErrPermanent drops the batch; any other is retried
	// after Retry until Run's context ends.
	Send func(ctx context.Context, model string, body []byte) error
	// MaxQueue bounds the labels waiting (default 10k); labels beyond it
	// are dropped and counted (Stats).
	MaxQueue int
	// Batch is the most labels per Send (default 1000, at most
	// MaxFeedback).
	Batch int
	// Retry is the wait after a failed Send (default 1s).
	Retry  time.Duration
	Logger *slog.Logger
}

// ForwardStats count what a ForwardQueue did.
type ForwardStats struct {
	Forwarded, Dropped, Failed uint64
}

// ForwardQueue is a Forwarder that queues labels in memory (bounded) and
// sends them in batches per model from Run. Forward never blocks. Safe for
// concurrent use; Run is called once.
type ForwardQueue struct {
	opts ForwardOptions

	mu     sync.Mutex
	queue  map[string][]Feedback
	n      int
	wake   chan struct{}
	closed bool

	forwarded, dropped, failed atomic.Uint64
}

// NewForwardQueue returns an empty queue; opts.Send is required.
func NewForwardQueue(opts ForwardOptions) *ForwardQueue {
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultForwardQueue
	}
	if opts.Batch <= 0 || opts.Batch > MaxFeedback {
		opts.Batch = DefaultForwardBatch
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultForwardRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &ForwardQueue{opts: opts, queue: map[string][]Feedback{}, wake: make(chan struct{}, 1)}
}

// Forward queues fbs for model; what does not fit in MaxQueue (or arrives
// after Run returned) is dropped and counted.
func (q *ForwardQueue) Forward(model string, fbs []Feedback) {
	q.mu.Lock()
	room := q.opts.MaxQueue - q.n
	if q.closed {
		room = 0
	}
	take := min(max(room, 0), len(fbs))
	q.queue[model] = append(q.queue[model], fbs[:take]...)
	q.n += take
	q.mu.Unlock()
	if drop := len(fbs) - take; drop > 0 {
		q.dropped.Add(uint64(drop))
	}
	if take > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Stats returns the counts so far.
func (q *ForwardQueue) Stats() ForwardStats {
	return ForwardStats{Forwarded: q.forwarded.Load(), Dropped: q.dropped.Load(), Failed: q.failed.Load()}
}

// Run sends queued labels until ctx ends; labels still queued then are
// dropped (and counted). It returns nil.
func (q *ForwardQueue) Run(ctx context.Context) error {
	defer func() {
		q.mu.Lock()
		q.closed = true
		n := q.n
		q.queue, q.n = map[string][]Feedback{}, 0
		q.mu.Unlock()
		q.dropped.Add(uint64(n))
	}()
	for {
		model, batch := q.next()
		if batch == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-q.wake:
				continue
			}
		}
		if !q.send(ctx, model, batch) {
			return nil
		}
	}
}

// next takes up to Batch labels of one model from the queue.
func (q *ForwardQueue) next() (string, []Feedback) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for model, fbs := range q.queue {
		n := min(len(fbs), q.opts.Batch)
		batch := fbs[:n:n]
		if n == len(fbs) {
			delete(q.queue, model)
		} else {
			q.queue[model] = fbs[n:]
		}
		q.n -= n
		return model, batch
	}
	return "", nil
}

// send posts batch until it is accepted, refused for good, or ctx ends
// (false: the batch is dropped).
func (q *ForwardQueue) send(ctx context.Context, model string, batch []Feedback) bool {
	body, err := EncodeFeedback(batch)
	if err != nil {
		q.dropped.Add(uint64(len(batch)))
		q.opts.Logger.Warn("labels not forwarded", "model", model, "labels", len(batch), "err", err)
		return true
	}
	logged := false
	for {
		err := q.opts.Send(ctx, model, body)
		if err == nil {
			q.forwarded.Add(uint64(len(batch)))
			return true
		}
		q.failed.Add(1)
		if errors.Is(err, ErrPermanent) {
			q.dropped.Add(uint64(len(batch)))
			q.opts.Logger.Warn("the collector refused forwarded labels", "model", model, "labels", len(batch), "err", err)
			return true
		}
		if !logged { // once per batch: no log storm while the collector is down
			q.opts.Logger.Warn("forwarding labels failed; retrying", "model", model, "labels", len(batch), "err", err)
			logged = true
		}
		t := time.NewTimer(q.opts.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			q.dropped.Add(uint64(len(batch)))
			return false
		case <-t.C:
		}
	}
}

// EncodeFeedback renders fbs in the feedback body format (a JSON array of
// {"id", "label"}), which ParseFeedback reads back to the same ids and
// labels.
func EncodeFeedback(fbs []Feedback) ([]byte, error) {
	type item struct {
		ID    string `json:"id"`
		Label any    `json:"label"`
	}
	items := make([]item, len(fbs))
	for i, f := range fbs {
		switch f.Label.(type) {
		case string, bool, json.Number:
		default:
			return nil, fmt.Errorf("feedback[%d].label: type %T", f.Index, f.Label)
		}
		items[i] = item{f.ID, f.Label}
	}
	return json.Marshal(items)
}
