package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// refusingInserter refuses, for its data, any insert with a gauge row of
// value 666 (as a table constraint would), and counts the inserts.
type refusingInserter struct {
	mu      sync.Mutex
	inserts int
	gauges  []float64
	dead    []store.DeadLetterRow
	tokens  map[string]bool
}

func (r *refusingInserter) InsertBatches(ctx context.Context, bs []*store.Batch, tok string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inserts++
	b := concat(bs)
	for _, g := range b.Gauges {
		if g.Value == 666 {
			return &store.InsertError{Table: "drover." + store.TableGauge, Rows: len(b.Gauges),
				Err: &clickhouse.Exception{Code: 469, Message: "Constraint `drill` is violated"}}
		}
	}
	if r.tokens == nil {
		r.tokens = map[string]bool{}
	}
	if r.tokens[tok] {
		return nil
	}
	r.tokens[tok] = true
	for _, g := range b.Gauges {
		r.gauges = append(r.gauges, g.Value)
	}
	r.dead = append(r.dead, b.DeadLetters...)
	return nil
}

// TestSalvageIsBounded: a batch whose every row is refused costs at most
// MaxSplitInserts inserts (and a few for what remains), not one per row;
// every row is then stored or set aside, once.
func TestSalvageIsBounded(t *testing.T) {
	const pts = 1000
	sp := openTestSpool(t, spool.Options{})
	sink := &SpoolSink{Spool: sp}
	md := poisonRequest(pts, func(p int) time.Time { return time.Now() }, func(p int) float64 {
		if p%2 == 0 {
			return 666
		}
		return float64(p)
	})
	if err := acceptMetrics(context.Background(), sink, md); err != nil {
		t.Fatal(err)
	}
	ins := &refusingInserter{}
	runWriter(t, WriterConfig{FlushInterval: time.Millisecond, MaxBackoff: time.Millisecond, MaxSplitInserts: 16}, sp, nil, ins, NewStats(prometheus.NewRegistry()))
	waitAcked(t, sp, 1)
	ins.mu.Lock()
	defer ins.mu.Unlock()
	// 1 batch insert, 16 split inserts, a dead-letter insert.
	if ins.inserts > 1+16+1 {
		t.Errorf("%d inserts for a batch of %d refused rows with MaxSplitInserts 16", ins.inserts, pts)
	}
	if len(ins.gauges)+len(ins.dead) != pts {
		t.Errorf("%d rows stored and %d set aside, want %d in all", len(ins.gauges), len(ins.dead), pts)
	}
	for _, v := range ins.gauges {
		if v == 666 {
			t.Fatal("a refused row was stored")
		}
	}
	for _, d := range ins.dead {
		if d.Code != 469 || d.Table != store.TableGauge || !strings.Contains(d.Row, "Value") {
			t.Fatalf("dead letter %+v", d)
		}
	}
}

// TestSalvageStopsWithTheWriter: a stop during the split leaves the batch
// in the spool (written again, with the same tokens, at the next start).
func TestSalvageStopsWithTheWriter(t *testing.T) {
	sp := openTestSpool(t, spool.Options{})
	sink := &SpoolSink{Spool: sp}
	if err := acceptMetrics(context.Background(), sink, poisonRequest(8, func(int) time.Time { return time.Now() }, func(int) float64 { return 666 })); err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 100)
	ins := inserterFunc(func(ctx context.Context, bs []*store.Batch, tok string) error {
		select {
		case calls <- struct{}{}:
		default:
		}
		if strings.Contains(tok, "/split-") {
			// ClickHouse is down during the split.
			return errors.Join(&store.InsertError{Table: "drover.metrics_gauge", Rows: 1, Err: errRefused})
		}
		return &store.InsertError{Table: "drover.metrics_gauge", Rows: 8, Err: &clickhouse.Exception{Code: 53}}
	})
	stop := runWriter(t, WriterConfig{FlushInterval: time.Millisecond, MaxBackoff: time.Millisecond, DrainTimeout: time.Millisecond}, sp, nil, ins, nil)
	for range 3 {
		<-calls
	}
	stop()
	if sp.Acked() != 0 {
		t.Errorf("the spool was acked up to %d though the split never finished", sp.Acked())
	}
}

type inserterFunc func(ctx context.Context, bs []*store.Batch, tok string) error

func (f inserterFunc) InsertBatches(ctx context.Context, bs []*store.Batch, tok string) error {
	return f(ctx, bs, tok)
}
