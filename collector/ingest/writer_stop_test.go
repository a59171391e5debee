package ingest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestLagGrowsDuringInsertOutage: drover_collector_lag_seconds is the age
// of the oldest record not yet in ClickHouse at the moment it is read, so
// it keeps growing while every insert fails, and drops to 0 once the
// record is written. In a synctest bubble time moves only when every
// goroutine waits, so the ages are exact.
func TestLagGrowsDuringInsertOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		reg := prometheus.NewRegistry()
		stats := NewStats(reg)
		lag := func() float64 { return scrape(t, reg, "drover_collector_lag_seconds") }
		ins := &fakeInserter{}
		ins.down.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		w := NewWriter(WriterConfig{FlushInterval: time.Second, MaxBackoff: 10 * time.Second, DrainTimeout: time.Second},
			sp, nil, ins, stats, slog.New(slog.DiscardHandler))
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		if got := lag(); got != 0 {
			t.Errorf("lag with an empty spool = %v, want 0", got)
		}
		if err := acceptRequest(ctx, &SpoolSink{Spool: sp, Stats: stats}, 1, 3); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the writer collects for 1s, then inserts and fails
		synctest.Wait()
		if ins.failures() == 0 {
			t.Fatal("no insert failed: the outage did not start")
		}
		if got := lag(); got != 2 {
			t.Errorf("lag 2s after the record arrived = %v, want 2", got)
		}
		time.Sleep(time.Minute) // inserts keep failing
		synctest.Wait()
		if got := lag(); got != 62 {
			t.Errorf("lag a minute into the outage = %v, want 62", got)
		}

		ins.down.Store(false)
		time.Sleep(16 * time.Second) // longer than MaxBackoff with its ±50 % jitter: the next retry lands
		synctest.Wait()
		if sp.Acked() != 1 {
			t.Fatalf("spool acked up to %d after the outage, want 1", sp.Acked())
		}
		if got := lag(); got != 0 {
			t.Errorf("lag after the record was written = %v, want 0", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestWriterFailsWhenSpoolFails: a spool that stops working under the
// writer (here: closed) ends Run with an error, so the collector stops
// instead of running on without writing anything.
func TestWriterFailsWhenSpoolFails(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(WriterConfig{DrainTimeout: time.Second}, sp, nil, &fakeInserter{}, nil, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	sp.Close()
	select {
	case err := <-done:
		if !errors.Is(err, spool.ErrClosed) {
			t.Fatalf("Run = %v, want an error wrapping spool.ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after the spool closed")
	}
}

// TestWriterWaitsForReady: before Ready is closed the writer inserts
// nothing and requests do not wait for room in the row cache; after it,
// what was spooled meanwhile is written.
func TestWriterWaitsForReady(t *testing.T) {
	const pts = 3
	sp := openTestSpool(t, spool.Options{})
	rows := NewRowCache(pts)
	rows.MaxWait = time.Hour // a request that waited for room would hit the deadline below
	ins := &fakeInserter{}
	ready := make(chan struct{})
	stop := runWriter(t, WriterConfig{FlushInterval: time.Millisecond, Ready: ready}, sp, rows, ins, nil)
	testenv.Eventually(t, waitLimit, "the writer to turn flow off while it waits", func() bool { return !cacheFlow(rows) })
	sink := &SpoolSink{Spool: sp, Rows: rows}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := 1; i <= 5; i++ {
		if err := acceptRequest(ctx, sink, i, pts); err != nil {
			t.Fatalf("Accept %d before ready: %v", i, err)
		}
	}
	if calls, failed, _ := ins.snapshot(); len(calls)+len(failed) != 0 {
		t.Fatalf("%d inserts before ready, want none", len(calls)+len(failed))
	}
	close(ready)
	waitAcked(t, sp, 5)
	stop()
	calls, _, _ := ins.snapshot()
	checkInOrder(t, calls, 5, pts)
	if !cacheFlow(rows) {
		t.Error("flow still off after ready")
	}
}

// scrape gathers reg as /metrics does and returns the value of the gauge
// name.
func scrape(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
