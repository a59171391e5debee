package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// These tests drive SpoolSink and Writer against a real spool in a temp dir
// and a fake Inserter; the ClickHouse side is covered by collector/server.

// waitLimit bounds every wait of these tests; it is a deadline against
// hangs, never a timing assertion.
const waitLimit = 30 * time.Second

func openTestSpool(t *testing.T, opts spool.Options) *spool.Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	sp, err := spool.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// gaugeValue is the value of point p of request req: unique per point.
func gaugeValue(req, p int) float64 { return float64(req*1000 + p) }

// testRequest builds the OTLP export request number req with pts gauge
// points and returns what the gRPC receiver hands to the Sink: the
// protobuf payload, the point count and the decoded metrics.
func testRequest(req, pts int) ([]byte, int, pmetric.Metrics) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(semconv.AttrHostName, "host-a")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("writer.test")
	dps := m.SetEmptyGauge().DataPoints()
	for p := range pts {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_700_000_000+int64(req), int64(p))))
		dp.SetDoubleValue(gaugeValue(req, p))
		dp.Attributes().PutInt("req", int64(req))
		dp.Attributes().PutInt("pt", int64(p))
	}
	er := pmetricotlp.NewExportRequestFromMetrics(md)
	payload, err := er.MarshalProto()
	if err != nil {
		panic(err) // cannot happen; panic rather than t.Fatal: senders call this off the test goroutine
	}
	return payload, er.Metrics().DataPointCount(), er.Metrics()
}

// convertedRows is how many rows (of every table) request req converts
// to: what the row cache accounts for it once converted.
func convertedRows(t testing.TB, req, pts int) int {
	t.Helper()
	payload, _, _ := testRequest(req, pts)
	var b store.Batch
	if err := Convert(KindMetrics, payload, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Gauges) != pts {
		t.Fatalf("request %d converts to %d gauge rows, want %d", req, len(b.Gauges), pts)
	}
	return b.Rows()
}

func acceptRequest(ctx context.Context, s *SpoolSink, req, pts int) error {
	payload, points, md := testRequest(req, pts)
	return s.Accept(ctx, KindMetrics, payload, points, md)
}

// cacheState returns the rows the cache accounts for and how many
// requests it holds.
func cacheState(c *RowCache) (rows, cached int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rows, len(c.batches)
}

func (c *RowCache) bytesNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func cacheFlow(c *RowCache) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flow
}

// waiting reports whether a reserve is blocked waiting for room.
func waiting(c *RowCache) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room != nil
}

// batchOf returns a batch of n gauge rows.
func batchOf(n int) *store.Batch {
	b := &store.Batch{}
	for i := range n {
		b.Gauges = append(b.Gauges, store.GaugeRow{Value: float64(i)})
	}
	return b
}

// insertCall is a successful Insert as the fake saw it.
type insertCall struct {
	token       string
	first, last uint64
	gauges      []store.GaugeRow
	resources   int
}

// fakeInserter records the batches it is given. While down is set it fails
// with a retryable error. It deduplicates by token, as ClickHouse does
// with insert_deduplication_token. A canceled ctx fails the insert (the
// batch did not land), as the real store does.
type fakeInserter struct {
	down atomic.Bool

	mu       sync.Mutex
	calls    []insertCall
	tokens   map[string]bool
	failed   []string // tokens of failed attempts, in order
	attempts int
	dups     int // inserts dropped as duplicates of an earlier token
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

func parseToken(token string) (first, last uint64, err error) {
	parts := strings.Split(token, "-")
	if len(parts) != 4 || parts[0] != "spool" || len(parts[1]) != 16 {
		return 0, 0, fmt.Errorf("token %q is not spool-<spool id>-<first>-<last>", token)
	}
	a, b := parts[2], parts[3]
	if first, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("token %q: %w", token, err)
	}
	if last, err = strconv.ParseUint(b, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("token %q: %w", token, err)
	}
	return first, last, nil
}

// reserveBatch returns an empty Batch with the capacity for the rows of
// parts (for concat).
func reserveBatch(parts []*store.Batch) store.Batch {
	var n [11]int
	for _, o := range parts {
		for i, l := range [...]int{len(o.Resources), len(o.Gauges), len(o.Sums), len(o.Histograms), len(o.ExpHistograms), len(o.Summaries),
			len(o.Events), len(o.Samples), len(o.Drift), len(o.Jobs), len(o.DeadLetters)} {
			n[i] += l
		}
	}
	return store.Batch{
		Resources: make([]store.ResourceRow, 0, n[0]),
		Gauges:    make([]store.GaugeRow, 0, n[1]), Sums: make([]store.SumRow, 0, n[2]),
		Histograms: make([]store.HistogramRow, 0, n[3]), ExpHistograms: make([]store.ExpHistogramRow, 0, n[4]),
		Summaries: make([]store.SummaryRow, 0, n[5]), Events: make([]store.EventRow, 0, n[6]),
		Samples: make([]store.SampleRow, 0, n[7]),
		Drift:   make([]store.DriftRow, 0, n[8]), Jobs: make([]store.JobRow, 0, n[9]),
		DeadLetters: make([]store.DeadLetterRow, 0, n[10]),
	}
}

// appendBatch appends o's rows to b.
func appendBatch(b, o *store.Batch) {
	b.Resources = append(b.Resources, o.Resources...)
	b.Gauges = append(b.Gauges, o.Gauges...)
	b.Sums = append(b.Sums, o.Sums...)
	b.Histograms = append(b.Histograms, o.Histograms...)
	b.ExpHistograms = append(b.ExpHistograms, o.ExpHistograms...)
	b.Summaries = append(b.Summaries, o.Summaries...)
	b.Events = append(b.Events, o.Events...)
	b.Samples = append(b.Samples, o.Samples...)
	b.Drift = append(b.Drift, o.Drift...)
	b.Jobs = append(b.Jobs, o.Jobs...)
	b.DeadLetters = append(b.DeadLetters, o.DeadLetters...)
}

// concat is the Batch that a batch in parts stands for.
func concat(parts []*store.Batch) *store.Batch {
	b := reserveBatch(parts)
	for _, p := range parts {
		appendBatch(&b, p)
	}
	return &b
}

func (f *fakeInserter) InsertBatches(ctx context.Context, bs []*store.Batch, token string) error {
	return f.Insert(ctx, concat(bs), token)
}

func (f *fakeInserter) Insert(ctx context.Context, b *store.Batch, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if err := ctx.Err(); err != nil {
		f.failed = append(f.failed, token)
		return err
	}
	if f.down.Load() {
		f.failed = append(f.failed, token)
		return errRefused
	}
	return f.landLocked(b, token)
}

func (f *fakeInserter) landLocked(b *store.Batch, token string) error {
	if f.tokens == nil {
		f.tokens = map[string]bool{}
	}
	if f.tokens[token] {
		f.dups++
		return nil
	}
	f.tokens[token] = true
	first, last, err := parseToken(token)
	if err != nil {
		return err
	}
	f.calls = append(f.calls, insertCall{token: token, first: first, last: last, gauges: slices.Clone(b.Gauges), resources: len(b.Resources)})
	return nil
}

func (f *fakeInserter) snapshot() (calls []insertCall, failed []string, dups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.failed), f.dups
}

func (f *fakeInserter) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failed)
}

// runWriter runs a Writer until the returned stop is called (or the test
// ends) and checks that Run returns nil.
func runWriter(t *testing.T, cfg WriterConfig, sp *spool.Spool, rows *RowCache, ins Inserter, stats *Stats) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := NewWriter(cfg, sp, rows, ins, stats, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Writer.Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Writer.Run did not return within %v of cancel", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitAcked(t *testing.T, sp *spool.Spool, n uint64) {
	t.Helper()
	testenv.Eventually(t, waitLimit, fmt.Sprintf("the spool to be acked up to %d", n), func() bool { return sp.Acked() >= n })
}

// checkTokens checks that the inserts carry contiguous, non-overlapping
// ranges covering [1, n] in order, and that each holds pts rows per record.
func checkTokens(t *testing.T, calls []insertCall, n uint64, pts int) {
	t.Helper()
	next := uint64(1)
	for i, c := range calls {
		id := strings.Split(c.token, "-")[1] // parsed already: spool-<id>-<first>-<last>
		if c.token != token(id, c.first, c.last) || id != strings.Split(calls[0].token, "-")[1] {
			t.Errorf("insert %d: token %q is not in canonical form or names another spool than %q", i, c.token, calls[0].token)
		}
		if c.first != next || c.last < c.first {
			t.Errorf("insert %d: token %s, want a range starting at %d", i, c.token, next)
		}
		if want := int(c.last-c.first+1) * pts; len(c.gauges) != want {
			t.Errorf("insert %d (%s): %d rows, want %d", i, c.token, len(c.gauges), want)
		}
		next = c.last + 1
	}
	if next != n+1 {
		t.Errorf("inserts cover records 1..%d, want 1..%d", next-1, n)
	}
}

// checkInOrder checks that the inserts hold exactly the rows of requests
// 1..n (request i is spool record i), each once, in order, with the values
// the request carried, and that each insert holds the rows of the records
// its token names.
func checkInOrder(t *testing.T, calls []insertCall, n, pts int) {
	t.Helper()
	checkTokens(t, calls, uint64(n), pts)
	var got []store.GaugeRow
	for _, c := range calls {
		for i, g := range c.gauges {
			req := int(c.first) + i/pts
			if g.Attributes["req"] != strconv.Itoa(req) {
				t.Errorf("insert %s row %d is from request %s, want %d", c.token, i, g.Attributes["req"], req)
				return
			}
		}
		got = append(got, c.gauges...)
	}
	if len(got) != n*pts {
		t.Fatalf("%d rows inserted, want %d", len(got), n*pts)
	}
	for i, g := range got {
		req, p := i/pts+1, i%pts
		want := time.Unix(1_700_000_000+int64(req), int64(p))
		if g.Value != gaugeValue(req, p) || g.Attributes["req"] != strconv.Itoa(req) || g.Attributes["pt"] != strconv.Itoa(p) ||
			g.Metric != "writer.test" || g.Host != "host-a" || !g.Time.Equal(want) {
			t.Fatalf("row %d = {metric %q host %q time %v value %v attrs %v}, want request %d point %d (value %v, time %v)",
				i, g.Metric, g.Host, g.Time, g.Value, g.Attributes, req, p, gaugeValue(req, p), want)
		}
	}
}

// checkDrained checks that the spool is fully acked and the cache empty.
func checkDrained(t *testing.T, sp *spool.Spool, rows *RowCache, n uint64) {
	t.Helper()
	if got := sp.Acked(); got != n {
		t.Errorf("spool acked up to %d, want %d", got, n)
	}
	if got := sp.Committed(); got != n {
		t.Errorf("spool committed up to %d, want %d", got, n)
	}
	if recs, bytes := sp.Pending(); recs != 0 || bytes != 0 {
		t.Errorf("spool pending: %d records, %d bytes; want none", recs, bytes)
	}
	if first, last, ok := sp.Intent(); ok {
		t.Errorf("spool intent [%d, %d] left after the last ack", first, last)
	}
	if rows != nil {
		if r, cached := cacheState(rows); r != 0 || cached != 0 {
			t.Errorf("row cache holds %d rows in %d requests after everything was written; want 0 and 0", r, cached)
		}
	}
}

// TestWriterCachedPath: requests whose rows were converted at receive time
// reach the inserter from the cache, in seq order, exactly once.
func TestWriterCachedPath(t *testing.T) {
	const n, pts = 40, 3
	sp := openTestSpool(t, spool.Options{})
	rows := NewRowCache(1 << 20)
	sink := &SpoolSink{Spool: sp, Rows: rows}
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		if err := acceptRequest(ctx, sink, i, pts); err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
	}
	// Every request is cached before the writer starts, so it reads none
	// from the spool.
	if r, cached := cacheState(rows); r != n*convertedRows(t, 1, pts) || cached != n {
		t.Fatalf("cache holds %d rows in %d requests, want %d in %d", r, cached, n*convertedRows(t, 1, pts), n)
	}
	ins := &fakeInserter{}
	stop := runWriter(t, WriterConfig{BatchRows: 4 * pts, FlushInterval: 5 * time.Millisecond}, sp, rows, ins, nil)
	waitAcked(t, sp, n)
	stop()
	calls, failed, dups := ins.snapshot()
	if len(failed) != 0 || dups != 0 {
		t.Errorf("failed inserts %v, duplicate tokens %d; want none", failed, dups)
	}
	if len(calls) < 2 {
		t.Errorf("%d inserts; BatchRows should have split %d requests into several", len(calls), n)
	}
	checkInOrder(t, calls, n, pts)
	checkDrained(t, sp, rows, n)
	// Every request has the same resource: it is written once.
	resources := 0
	for _, c := range calls {
		resources += c.resources
	}
	if resources != 1 {
		t.Errorf("%d resource rows written, want 1", resources)
	}
}

// TestWriterMixedPath: requests that did not fit the cache are read back
// from the spool and decoded; together with the cached ones every row
// arrives once, in order.
func TestWriterMixedPath(t *testing.T) {
	const n, pts = 30, 3
	ctx := context.Background()

	t.Run("cache too small", func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(4*pts + 1)
		rows.setFlow(false) // requests that find the cache full go to the spool at once
		sink := &SpoolSink{Spool: sp, Rows: rows}
		for i := 1; i <= n; i++ {
			if err := acceptRequest(ctx, sink, i, pts); err != nil {
				t.Fatalf("Accept %d: %v", i, err)
			}
		}
		if r, cached := cacheState(rows); cached == 0 || cached >= n || r != cached*convertedRows(t, 1, pts) {
			t.Fatalf("cache holds %d rows in %d requests, want some of the %d requests, %d rows each", r, cached, n, convertedRows(t, 1, pts))
		}
		ins := &fakeInserter{}
		stop := runWriter(t, WriterConfig{BatchRows: 5 * pts, FlushInterval: 5 * time.Millisecond}, sp, rows, ins, nil)
		waitAcked(t, sp, n)
		stop()
		calls, _, dups := ins.snapshot()
		if dups != 0 {
			t.Errorf("%d duplicate tokens", dups)
		}
		checkInOrder(t, calls, n, pts)
		checkDrained(t, sp, rows, n)
	})

	// Cached and spool-only records interleave in runs of various lengths:
	// collect alternates between take, missing and Read.
	t.Run("interleaved", func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(1 << 20)
		cached := &SpoolSink{Spool: sp, Rows: rows}
		spoolOnly := &SpoolSink{Spool: sp} // as if the cache had been full
		var wantCached int
		for i := 1; i <= n; i++ {
			s := spoolOnly
			if i%5 == 1 || i%5 == 2 || i%7 == 0 {
				s = cached
				wantCached++
			}
			if err := acceptRequest(ctx, s, i, pts); err != nil {
				t.Fatalf("Accept %d: %v", i, err)
			}
		}
		if _, got := cacheState(rows); got != wantCached {
			t.Fatalf("cache holds %d requests, want %d", got, wantCached)
		}
		ins := &fakeInserter{}
		stop := runWriter(t, WriterConfig{BatchRows: 4 * pts, FlushInterval: 5 * time.Millisecond}, sp, rows, ins, nil)
		waitAcked(t, sp, n)
		stop()
		calls, _, dups := ins.snapshot()
		if dups != 0 {
			t.Errorf("%d duplicate tokens", dups)
		}
		checkInOrder(t, calls, n, pts)
		checkDrained(t, sp, rows, n)
	})

	// Requests arrive while the writer runs, with a cache that fills and a
	// tiny MaxWait: which path each request takes is up to the scheduler.
	t.Run("live", func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(3 * pts)
		rows.MaxWait = time.Millisecond
		sink := &SpoolSink{Spool: sp, Rows: rows}
		ins := &fakeInserter{}
		stop := runWriter(t, WriterConfig{BatchRows: 4 * pts, FlushInterval: time.Millisecond}, sp, rows, ins, nil)
		for i := 1; i <= n; i++ {
			if err := acceptRequest(ctx, sink, i, pts); err != nil {
				t.Fatalf("Accept %d: %v", i, err)
			}
		}
		waitAcked(t, sp, n)
		stop()
		calls, _, dups := ins.snapshot()
		if dups != 0 {
			t.Errorf("%d duplicate tokens", dups)
		}
		checkInOrder(t, calls, n, pts)
		checkDrained(t, sp, rows, n)
	})
}

// TestRowCachePutAfterAck: rows that arrive after the writer read their
// record from the spool and acked it are dropped, and their reservation
// is returned.
func TestRowCachePutAfterAck(t *testing.T) {
	ctx := context.Background()
	c := NewRowCache(100)
	if !c.reserve(ctx, 3, 0) {
		t.Fatal("reserve on an empty cache failed")
	}
	c.acked(5)
	c.put(3, batchOf(3), 3, 0)
	if r, cached := cacheState(c); r != 0 || cached != 0 {
		t.Fatalf("after acked(5), put(3): %d rows in %d requests; want 0 and 0", r, cached)
	}
	if _, ok := c.take(3); ok {
		t.Error("take(3) found rows put after seq 3 was acked")
	}
	// The estimate need not match the rows: put settles the difference.
	c.put(5, batchOf(4), 0, 0) // at the floor: dropped too
	if r, cached := cacheState(c); r != 0 || cached != 0 {
		t.Fatalf("after put(5): %d rows in %d requests; want 0 and 0", r, cached)
	}

	// Later seqs are kept, and acked drops them with their rows.
	for range 2 {
		if !c.reserve(ctx, 2, 0) {
			t.Fatal("reserve failed")
		}
	}
	c.put(6, batchOf(5), 2, 0)
	c.put(7, batchOf(1), 2, 0)
	if r, cached := cacheState(c); r != 6 || cached != 2 {
		t.Fatalf("after put(6), put(7): %d rows in %d requests; want 6 and 2", r, cached)
	}
	c.acked(6)
	if r, cached := cacheState(c); r != 1 || cached != 1 {
		t.Fatalf("after acked(6): %d rows in %d requests; want 1 and 1", r, cached)
	}
	c.acked(4) // acks never move back
	c.put(6, batchOf(1), 0, 0)
	if _, ok := c.take(6); ok {
		t.Error("put(6) after acked(6) then acked(4) was kept")
	}
	e, ok := c.take(7)
	if !ok || e.b.Rows() != 1 {
		t.Fatalf("take(7) = %v, %v; want the batch of 1 row", e.b, ok)
	}
	if r, cached := cacheState(c); r != 0 || cached != 0 {
		t.Fatalf("after take(7): %d rows in %d requests; want 0 and 0", r, cached)
	}

	// A nil cache (no SpoolSink.Rows) is a valid writer configuration.
	var nilCache *RowCache
	nilCache.acked(1)
	nilCache.setFlow(false)
	if _, ok := nilCache.take(1); ok {
		t.Error("nil cache take found rows")
	}
	if got := nilCache.missing(1, 7); got != 7 {
		t.Errorf("nil cache missing = %d, want 7", got)
	}
}

// TestRowCacheBytes: MaxBytes bounds the memory of the cached rows. A
// reservation counts its estimate until put replaces it with what the rows
// hold (store.Batch.MemBytes); take and acked give it back; an empty cache
// takes a request larger than the bound, alone.
func TestRowCacheBytes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	per := batchOf(1).MemBytes()
	c := NewRowCache(1 << 20) // rows do not bind here
	c.MaxBytes = 10 * per
	if !c.reserve(ctx, 1, 4*per) {
		t.Fatal("reserve on an empty cache failed")
	}
	if got := c.bytesNow(); got != 4*per {
		t.Fatalf("after reserving %d bytes: %d", 4*per, got)
	}
	c.put(1, batchOf(8), 1, 4*per) // the estimate was low: 8 rows' worth now
	if got := c.bytesNow(); got != 8*per {
		t.Fatalf("after put of 8 rows: %d bytes, want %d", got, 8*per)
	}
	// 8 + 3 > 10: waits while the writer inserts; a cancelled wait fails.
	wctx, wcancel := context.WithCancel(ctx)
	ch := make(chan bool, 1)
	go func() { ch <- c.reserve(wctx, 1, 3*per) }()
	testenv.Eventually(t, waitLimit, "reserve to wait for bytes", func() bool { return waiting(c) })
	wcancel()
	if result(t, "cancelled", ch) {
		t.Fatal("reserve over MaxBytes succeeded")
	}
	if !c.reserve(ctx, 1, 2*per) { // 8 + 2 fits exactly
		t.Fatal("reserve within MaxBytes failed")
	}
	c.release(1, 2*per)
	if _, ok := c.take(1); !ok {
		t.Fatal("take(1) found nothing")
	}
	if got := c.bytesNow(); got != 0 {
		t.Fatalf("after take: %d bytes, want 0", got)
	}
	// Alone, a request larger than the bound is cached.
	if !c.reserve(ctx, 1, 50*per) {
		t.Fatal("an empty cache refused a large request")
	}
	c.put(2, batchOf(50), 1, 50*per)
	c.acked(2)
	if got := c.bytesNow(); got != 0 {
		t.Fatalf("after acked: %d bytes, want 0", got)
	}
}

func TestRowCacheMissing(t *testing.T) {
	c := NewRowCache(100)
	for _, seq := range []uint64{3, 4, 8} {
		c.reserve(context.Background(), 1, 0)
		c.put(seq, batchOf(1), 1, 0)
	}
	for _, tc := range []struct {
		from uint64
		n    int
		want int
	}{{1, 10, 2}, {3, 10, 0}, {5, 10, 3}, {5, 2, 2}, {9, 4, 4}} {
		if got := c.missing(tc.from, tc.n); got != tc.want {
			t.Errorf("missing(%d, %d) = %d, want %d", tc.from, tc.n, got, tc.want)
		}
	}
}

// reserveAsync runs reserve in a goroutine; the result arrives on the
// channel.
func reserveAsync(ctx context.Context, c *RowCache, n int) <-chan bool {
	ch := make(chan bool, 1)
	go func() { ch <- c.reserve(ctx, n, 0) }()
	return ch
}

func result(t *testing.T, what string, ch <-chan bool) bool {
	t.Helper()
	select {
	case ok := <-ch:
		return ok
	case <-time.After(waitLimit):
		t.Fatalf("%s: reserve did not return within %v", what, waitLimit)
		return false
	}
}

// TestRowCacheFlowControl: while the writer inserts, a request waits for
// room; it stops waiting when room is freed, when flow is turned off, after
// MaxWait, or when its ctx ends.
func TestRowCacheFlowControl(t *testing.T) {
	ctx := context.Background()
	full := func(t *testing.T, maxWait time.Duration) *RowCache {
		t.Helper()
		c := NewRowCache(10)
		c.MaxWait = maxWait
		if !c.reserve(ctx, 10, 0) {
			t.Fatal("reserve on an empty cache failed")
		}
		c.put(1, batchOf(10), 10, 0)
		return c
	}

	t.Run("take frees room", func(t *testing.T) {
		c := full(t, time.Hour)
		ch := reserveAsync(ctx, c, 5)
		testenv.Eventually(t, waitLimit, "reserve to wait for room", func() bool { return waiting(c) })
		go c.take(1)
		if !result(t, "after take", ch) {
			t.Fatal("reserve returned false after take freed room")
		}
		if r, _ := cacheState(c); r != 5 {
			t.Errorf("cache accounts for %d rows, want the 5 reserved", r)
		}
	})

	t.Run("acked frees room", func(t *testing.T) {
		c := full(t, time.Hour)
		ch := reserveAsync(ctx, c, 5)
		testenv.Eventually(t, waitLimit, "reserve to wait for room", func() bool { return waiting(c) })
		go c.acked(1)
		if !result(t, "after acked", ch) {
			t.Fatal("reserve returned false after acked freed room")
		}
	})

	t.Run("a request larger than the cache fits an empty one", func(t *testing.T) {
		c := full(t, time.Hour)
		ch := reserveAsync(ctx, c, 25)
		testenv.Eventually(t, waitLimit, "reserve to wait for room", func() bool { return waiting(c) })
		go c.take(1)
		if !result(t, "after take", ch) {
			t.Fatal("reserve of more than the bound returned false on an empty cache")
		}
	})

	t.Run("flow off", func(t *testing.T) {
		c := full(t, time.Hour)
		c.setFlow(false)
		if result(t, "flow off", reserveAsync(ctx, c, 1)) {
			t.Fatal("reserve on a full cache with flow off returned true")
		}
		// Room is still granted with flow off.
		c.take(1)
		if !result(t, "flow off, room", reserveAsync(ctx, c, 4)) {
			t.Fatal("reserve with room and flow off returned false")
		}
	})

	t.Run("flow turned off while waiting", func(t *testing.T) {
		c := full(t, time.Hour)
		ch := reserveAsync(ctx, c, 1)
		testenv.Eventually(t, waitLimit, "reserve to wait for room", func() bool { return waiting(c) })
		c.setFlow(false)
		if result(t, "after setFlow(false)", ch) {
			t.Fatal("reserve returned true on a full cache after flow was turned off")
		}
	})

	t.Run("MaxWait", func(t *testing.T) {
		c := full(t, 10*time.Millisecond)
		if result(t, "MaxWait", reserveAsync(ctx, c, 1)) {
			t.Fatal("reserve on a full cache returned true")
		}
	})

	t.Run("ctx canceled", func(t *testing.T) {
		c := full(t, time.Hour)
		cctx, cancel := context.WithCancel(ctx)
		ch := reserveAsync(cctx, c, 1)
		testenv.Eventually(t, waitLimit, "reserve to wait for room", func() bool { return waiting(c) })
		cancel()
		if result(t, "ctx canceled", ch) {
			t.Fatal("reserve returned true after its ctx was canceled")
		}
	})

	// Whatever ended the wait, a refused reserve holds nothing.
	t.Run("refusals reserve nothing", func(t *testing.T) {
		c := full(t, time.Millisecond)
		for range 3 {
			result(t, "MaxWait", reserveAsync(ctx, c, 3))
		}
		if r, _ := cacheState(c); r != 10 {
			t.Errorf("cache accounts for %d rows after refused reserves, want 10", r)
		}
		c.take(1)
		if r, _ := cacheState(c); r != 0 {
			t.Errorf("cache accounts for %d rows when empty, want 0", r)
		}
	})
}

// TestWriterOutage: while inserts fail, the writer turns flow off so that
// requests do not wait for a cache it cannot empty; after recovery every
// row arrives exactly once and flow is back on.
func TestWriterOutage(t *testing.T) {
	if !store.IsRetryable(errRefused) {
		t.Fatal("test setup: errRefused is not retryable")
	}
	const n, pts = 30, 3
	sp := openTestSpool(t, spool.Options{})
	rows := NewRowCache(4 * pts)
	rows.MaxWait = time.Hour // a request that waited for room would hit the deadline below
	sink := &SpoolSink{Spool: sp, Rows: rows}
	ins := &fakeInserter{}
	ins.down.Store(true)
	stop := runWriter(t, WriterConfig{BatchRows: 4 * pts, FlushInterval: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		sp, rows, ins, NewStats(prometheus.NewRegistry()))

	if err := acceptRequest(context.Background(), sink, 1, pts); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitLimit, "an insert to fail", func() bool { return ins.failures() > 0 })
	testenv.Eventually(t, waitLimit, "the writer to turn flow off", func() bool { return !cacheFlow(rows) })

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := 2; i <= n; i++ {
		if err := acceptRequest(ctx, sink, i, pts); err != nil {
			t.Fatalf("Accept %d during the outage: %v (did it wait for room in a cache the writer cannot empty?)", i, err)
		}
	}
	r, cached := cacheState(rows)
	if r == 0 || cached == 0 || cached >= n-1 {
		t.Errorf("during the outage the cache holds %d rows in %d requests; want it full and the rest only in the spool", r, cached)
	}
	if recs, _ := sp.Pending(); recs != n {
		t.Errorf("spool holds %d records during the outage, want %d", recs, n)
	}
	// The failing batch is retried as it was: same range, same token, and
	// that range is the recorded intent.
	_, failed, _ := ins.snapshot()
	first, last, ok := sp.Intent()
	if !ok || failed[0] != token(sp.ID(), first, last) {
		t.Errorf("intent %d-%d (%v) during the outage, failing token %s", first, last, ok, failed[0])
	}

	ins.down.Store(false)
	waitAcked(t, sp, n)
	stop()
	calls, failed, dups := ins.snapshot()
	for _, tok := range failed {
		if tok != failed[0] {
			t.Errorf("retries used tokens %v, want one token for the failing batch", failed)
			break
		}
	}
	if len(calls) == 0 || calls[0].token != failed[0] {
		t.Errorf("first successful insert %v, want the failed batch %s again", calls, failed[0])
	}
	if dups != 0 {
		t.Errorf("%d duplicate tokens", dups)
	}
	checkInOrder(t, calls, n, pts)
	checkDrained(t, sp, rows, n)
	if !cacheFlow(rows) {
		t.Error("flow still off after inserts recovered")
	}
}

// TestSpoolSinkAccounting: a reservation is returned whatever becomes of
// the request.
func TestSpoolSinkAccounting(t *testing.T) {
	const pts = 3
	ctx := context.Background()
	check := func(t *testing.T, rows *RowCache, wantRows, wantCached int) {
		t.Helper()
		if r, cached := cacheState(rows); r != wantRows || cached != wantCached {
			t.Errorf("cache holds %d rows in %d requests, want %d in %d", r, cached, wantRows, wantCached)
		}
	}

	t.Run("closed spool", func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(100)
		sink := &SpoolSink{Spool: sp, Rows: rows}
		sp.Close()
		err := acceptRequest(ctx, sink, 1, pts)
		if !errors.Is(err, spool.ErrClosed) {
			t.Errorf("Accept on a closed spool: %v, want ErrClosed", err)
		}
		check(t, rows, 0, 0)
	})

	t.Run("full spool", func(t *testing.T) {
		payload, _, _ := testRequest(1, pts)
		// Room for one record (16 bytes of spool header, the record
		// header, the payload), not two.
		sp := openTestSpool(t, spool.Options{MaxBytes: int64(16+recordHeader+len(payload)) + 8})
		rows := NewRowCache(100)
		sink := &SpoolSink{Spool: sp, Rows: rows}
		if err := acceptRequest(ctx, sink, 1, pts); err != nil {
			t.Fatal(err)
		}
		err := acceptRequest(ctx, sink, 2, pts)
		if !errors.Is(err, ErrBackpressure) {
			t.Errorf("Accept on a full spool: %v, want ErrBackpressure", err)
		}
		check(t, rows, convertedRows(t, 1, pts), 1)
	})

	t.Run("ctx canceled", func(t *testing.T) {
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(100)
		sink := &SpoolSink{Spool: sp, Rows: rows}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := acceptRequest(cctx, sink, 1, pts); !errors.Is(err, context.Canceled) {
			t.Errorf("Accept with a canceled ctx: %v, want context.Canceled", err)
		}
		check(t, rows, 0, 0)
	})

	t.Run("undecoded request", func(t *testing.T) {
		// A Sink caller that passes no decoded request: the record is only
		// in the spool, the writer decodes it.
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(100)
		sink := &SpoolSink{Spool: sp, Rows: rows}
		payload, points, _ := testRequest(1, pts)
		if err := sink.Accept(ctx, KindMetrics, payload, points, nil); err != nil {
			t.Fatal(err)
		}
		check(t, rows, 0, 0)
		if err := acceptRequest(ctx, sink, 2, pts); err != nil {
			t.Fatal(err)
		}
		ins := &fakeInserter{}
		stop := runWriter(t, WriterConfig{FlushInterval: time.Millisecond}, sp, rows, ins, nil)
		waitAcked(t, sp, 2)
		stop()
		calls, _, _ := ins.snapshot()
		checkInOrder(t, calls, 2, pts)
		checkDrained(t, sp, rows, 2)
	})

	// Many concurrent requests, a small cache, inserts that fail now and
	// then (flow goes off and on): nothing leaks, nothing is lost or
	// doubled.
	t.Run("concurrent with outages", func(t *testing.T) {
		const senders, each = 8, 25
		sp := openTestSpool(t, spool.Options{})
		rows := NewRowCache(6 * pts)
		rows.MaxWait = 2 * time.Millisecond
		stats := NewStats(prometheus.NewRegistry())
		sink := &SpoolSink{Spool: sp, Rows: rows, Stats: stats}
		ins := &fakeInserter{}
		stop := runWriter(t, WriterConfig{BatchRows: 5 * pts, FlushInterval: time.Millisecond, MaxBackoff: time.Millisecond},
			sp, rows, ins, stats)
		var wg sync.WaitGroup
		errs := make(chan error, senders*each)
		for s := range senders {
			wg.Go(func() {
				for i := range each {
					req := 1 + s*each + i
					if req%40 == 0 {
						ins.down.Store(true)
					}
					if req%40 == 5 {
						ins.down.Store(false)
					}
					if err := acceptRequest(ctx, sink, req, pts); err != nil {
						errs <- fmt.Errorf("Accept %d: %w", req, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		ins.down.Store(false)
		const n = senders * each
		waitAcked(t, sp, n)
		stop()
		calls, _, dups := ins.snapshot()
		if dups != 0 {
			t.Errorf("%d duplicate tokens", dups)
		}
		checkTokens(t, calls, n, pts)
		seen := map[float64]bool{}
		for _, c := range calls {
			for i, g := range c.gauges {
				if seen[g.Value] {
					t.Fatalf("row with value %v inserted twice", g.Value)
				}
				seen[g.Value] = true
				// A request's points stay together and in order.
				if want := strconv.Itoa(i % pts); g.Attributes["pt"] != want {
					t.Fatalf("insert %s row %d is point %s, want %s", c.token, i, g.Attributes["pt"], want)
				}
			}
		}
		for req := 1; req <= n; req++ {
			for p := range pts {
				if !seen[gaugeValue(req, p)] {
					t.Fatalf("request %d point %d never inserted", req, p)
				}
			}
		}
		checkDrained(t, sp, rows, n)
	})
}

// TestAppendBatchCopiesEveryTable: concat, which the fake inserters use,
// keeps the rows of every table (a table added to store.Batch must be
// added to appendBatch and reserveBatch too).
func TestAppendBatchCopiesEveryTable(t *testing.T) {
	var o store.Batch
	v := reflect.ValueOf(&o).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Slice {
			continue
		}
		f.Set(reflect.MakeSlice(f.Type(), 1+i, 1+i))
	}
	b := reserveBatch([]*store.Batch{&o, &o})
	appendBatch(&b, &o)
	appendBatch(&b, &o)
	bv := reflect.ValueOf(&b).Elem()
	for i := range bv.NumField() {
		f := bv.Field(i)
		if f.Kind() != reflect.Slice {
			continue
		}
		name := bv.Type().Field(i).Name
		if f.Len() != 2*(1+i) {
			t.Errorf("Batch.%s: %d rows after appending two batches of %d", name, f.Len(), 1+i)
		}
		if f.Cap() < 2*(1+i) {
			t.Errorf("Batch.%s: reserveBatch reserved %d rows, want at least %d", name, f.Cap(), 2*(1+i))
		}
	}
	if b.Rows() != 2*o.Rows() {
		t.Errorf("Rows() = %d, want %d", b.Rows(), 2*o.Rows())
	}
}

// interruptingInserter blocks its first insert until ctx ends, and the
// batch lands anyway (ClickHouse had it when the client gave up), as can
// happen when the collector stops during an insert.
type interruptingInserter struct {
	fakeInserter
	started chan struct{}
	once    sync.Once
}

func (f *interruptingInserter) InsertBatches(ctx context.Context, bs []*store.Batch, token string) error {
	return f.Insert(ctx, concat(bs), token)
}

func (f *interruptingInserter) Insert(ctx context.Context, b *store.Batch, token string) error {
	first := false
	f.once.Do(func() { first = true })
	if !first {
		return f.fakeInserter.Insert(ctx, b, token)
	}
	close(f.started)
	<-ctx.Done()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	f.failed = append(f.failed, token)
	if err := f.landLocked(b, token); err != nil {
		return err
	}
	return ctx.Err()
}

// TestWriterStopDuringInsert: when the writer stops during an insert, the
// drain must not insert any of that batch's rows under another token, or
// they are doubled if the interrupted insert had landed.
func TestWriterStopDuringInsert(t *testing.T) {
	const n, pts = 10, 3
	sp := openTestSpool(t, spool.Options{})
	rows := NewRowCache(1 << 20)
	sink := &SpoolSink{Spool: sp, Rows: rows}
	for i := 1; i <= n; i++ {
		if err := acceptRequest(context.Background(), sink, i, pts); err != nil {
			t.Fatal(err)
		}
	}
	ins := &interruptingInserter{started: make(chan struct{})}
	stop := runWriter(t, WriterConfig{BatchRows: 3 * pts, FlushInterval: time.Millisecond}, sp, rows, ins, nil)
	select {
	case <-ins.started:
	case <-time.After(waitLimit):
		t.Fatal("no insert started")
	}
	stop() // cancel during the insert; Run drains
	calls, _, _ := ins.snapshot()
	checkInOrder(t, calls, n, pts)
	checkDrained(t, sp, rows, n)
}
