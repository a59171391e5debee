package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// fakeScheduler fails the first failures calls of each incident, then
// schedules it; block, if set, makes every call wait for its ctx.
type fakeScheduler struct {
	mu       sync.Mutex
	failures int
	block    bool
	calls    map[string]int // job id → calls
	order    []string       // job ids in the order they were scheduled
	ctxDone  int            // calls that returned because their ctx ended
}

func (f *fakeScheduler) Schedule(ctx context.Context, inc Incident) (string, bool, error) {
	if inc.Model == "" {
		return "", false, fmt.Errorf("schedule: %w", ErrBadIncident)
	}
	id := JobID(inc.Model, inc.Version, inc.Start)
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		f.mu.Lock()
		f.ctxDone++
		f.mu.Unlock()
		return id, false, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[id]++
	if f.calls[id] <= f.failures {
		return id, false, errors.New("clickhouse: connection refused")
	}
	f.order = append(f.order, id)
	return id, true, nil
}

func (f *fakeScheduler) scheduled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func inc(model string) Incident {
	return Incident{Model: model, Version: "1", Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// runQueue runs q until the returned stop is called; stop returns Run's
// error.
func runQueue(q *Queue) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// TestQueueRetriesUntilScheduled: an incident whose delivery fails is
// retried with backoff until it is scheduled, and the ones behind it follow
// in order; the job id is the incident's, so the retries make one job.
func TestQueueRetriesUntilScheduled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		f := &fakeScheduler{failures: 3}
		q := NewQueue(f, QueueOptions{Logger: quietLog()})
		stop := runQueue(q)
		q.Send(inc("a"))
		q.Send(inc("b"))
		synctest.Wait()
		if got := f.scheduled(); len(got) != 0 {
			t.Fatalf("scheduled %v before any retry", got)
		}
		time.Sleep(time.Minute) // 1s, 2s, 4s (jittered) for a, then b's
		synctest.Wait()
		want := []string{JobID("a", "1", inc("a").Start), JobID("b", "1", inc("b").Start)}
		if got := f.scheduled(); !slices.Equal(got, want) {
			t.Fatalf("scheduled %v, want %v", got, want)
		}
		if f.calls[want[0]] != 4 || f.calls[want[1]] != 4 {
			t.Errorf("calls %v, want 4 each (3 failures, then the job)", f.calls)
		}
		if q.Len() != 0 {
			t.Errorf("%d incidents still queued", q.Len())
		}
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestQueueStopWaitsForDelivery: stopping the queue interrupts the
// delivery in flight, makes one last attempt for every waiting incident
// and returns only after it; a Send after the stop is refused.
func TestQueueStopWaitsForDelivery(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		f := &fakeScheduler{block: true}
		q := NewQueue(f, QueueOptions{Logger: quietLog()})
		stop := runQueue(q)
		q.Send(inc("a"))
		q.Send(inc("b"))
		synctest.Wait() // a's delivery waits for its ctx
		f.mu.Lock()
		f.block = false // the last attempts at stop succeed
		f.mu.Unlock()
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
		// Run has returned: everything it started is done.
		if f.ctxDone != 1 {
			t.Errorf("%d deliveries ended by the stop, want 1", f.ctxDone)
		}
		want := []string{JobID("a", "1", inc("a").Start), JobID("b", "1", inc("b").Start)}
		if got := f.scheduled(); !slices.Equal(got, want) {
			t.Errorf("scheduled at stop %v, want %v", got, want)
		}
		if q.Send(inc("c")) {
			t.Error("Send after stop accepted an incident")
		}
	})
}

// TestQueueBounds: a full queue refuses an incident rather than blocking
// the drift side; an incident that can never become a job is dropped, not
// retried forever.
func TestQueueBounds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		f := &fakeScheduler{}
		q := NewQueue(f, QueueOptions{Capacity: 2, Logger: quietLog()})
		if !q.Send(Incident{}) || !q.Send(inc("a")) {
			t.Fatal("Send refused within capacity")
		}
		if q.Send(inc("b")) {
			t.Error("Send beyond capacity accepted")
		}
		stop := runQueue(q)
		synctest.Wait()
		if got := f.scheduled(); len(got) != 1 || got[0] != JobID("a", "1", inc("a").Start) {
			t.Errorf("scheduled %v, want only a (the bad incident dropped)", got)
		}
		if err := stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
