package fleet

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Batching of the changed inventories into the agents table (docs/fleet.md,
// "Inventory"): an inventory PUT is answered from memory, and its row is
// queued for the writer, which inserts the queue in one INSERT every
// writeInterval, or at once when writeBatch rows wait.
const (
	writeInterval = 250 * time.Millisecond
	writeBatch    = 500
	writeBackoff  = 10 * time.Second // the longest pause between retries
	writeStopWait = 10 * time.Second // the last flush when Run stops
)

// writer queues agents rows, the latest per agent (a newer row of an
// agent replaces its queued one: the queue never holds more rows than
// agents), bounded by max agents; a row of a new agent beyond it is
// dropped and counted.
type writer struct {
	mu      sync.Mutex
	pending map[string]agentRow
	max     int
	kick    chan struct{} // a batch is full
	dropped atomic.Uint64
	// insert writes a batch; the tables' insertAgents, a hook in tests.
	insert func(context.Context, []agentRow) error
}

func newWriter(max int, insert func(context.Context, []agentRow) error) *writer {
	return &writer{pending: map[string]agentRow{}, max: max, kick: make(chan struct{}, 1), insert: insert}
}

// queue adds r (replacing the agent's queued row); it never blocks.
func (w *writer) queue(r agentRow) {
	w.mu.Lock()
	if _, ok := w.pending[r.Agent]; !ok && len(w.pending) >= w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	w.pending[r.Agent] = r
	n := len(w.pending)
	w.mu.Unlock()
	if n >= writeBatch {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// take removes up to writeBatch queued rows.
func (w *writer) take() []agentRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	rows := make([]agentRow, 0, min(len(w.pending), writeBatch))
	for _, id := range slices.Sorted(maps.Keys(w.pending)) {
		if len(rows) == writeBatch {
			break
		}
		rows = append(rows, w.pending[id])
		delete(w.pending, id)
	}
	return rows
}

// requeue puts back the rows of a failed insert, unless a newer row of
// the agent was queued meanwhile.
func (w *writer) requeue(rows []agentRow) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range rows {
		if _, ok := w.pending[r.Agent]; ok {
			continue
		}
		if len(w.pending) >= w.max {
			w.dropped.Add(1)
			continue
		}
		w.pending[r.Agent] = r
	}
}

func (w *writer) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// flush inserts every queued row, a batch per INSERT; on an error it
// puts the batch back and returns the error.
func (w *writer) flush(ctx context.Context) error {
	for {
		rows := w.take()
		if len(rows) == 0 {
			return nil
		}
		if err := w.insert(ctx, rows); err != nil {
			w.requeue(rows)
			return err
		}
	}
}

// runWriter flushes the queue every writeInterval (or when a batch is
// full) until ctx ends, retrying a failed insert with a doubling pause up
// to writeBackoff, then flushes what is left (bounded by writeStopWait).
func (f *Fleet) runWriter(ctx context.Context) {
	w := f.w
	t := time.NewTimer(writeInterval)
	defer t.Stop()
	pause, failing := writeInterval, false
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), writeStopWait)
			defer cancel()
			if err := w.flush(sctx); err != nil {
				f.o.Logger.Warn("fleet: the last inventories were not written to the agents table at stop", "agents", w.len(), "err", err)
			}
			return
		case <-t.C:
		case <-w.kick:
			if failing {
				continue // the backoff's timer retries
			}
		}
		err := w.flush(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				f.o.Logger.Warn("fleet: writing inventories to the agents table failed; retried with backoff, logged again once it works", "agents", w.len(), "err", err)
			}
			failing = true
			pause = min(2*pause, writeBackoff)
		case err == nil && failing:
			f.o.Logger.Info("fleet: writing inventories to the agents table works again")
			failing, pause = false, writeInterval
		}
		t.Reset(pause)
	}
}

// InventoriesDropped counts the inventory rows dropped because the write
// queue was full (more agents queued than Options.MaxAgents); the agents'
// records in memory are kept.
func (f *Fleet) InventoriesDropped() uint64 { return f.w.dropped.Load() }
