package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

func ptr[T any](v T) *T { return &v }

// recent returns a whole second about an hour ago, plus d: data older than
// the tables' TTL would be dropped.
func recent(d time.Duration) time.Time {
	return time.Now().UTC().Add(-time.Hour + d).Truncate(time.Second)
}

// fullBatch returns one row for every table with every column set to a
// value that is not the column's default. Times in DateTime64(3) columns
// are whole milliseconds.
func fullBatch(base time.Time) *Batch {
	point := func(metric string, n int) Point {
		return Point{
			Time:         base.Add(time.Duration(n)*time.Second + 123456789),
			StartTime:    base.Add(-time.Hour + 987654321),
			Service:      semconv.ServiceNameAgent,
			Host:         "host-a",
			AgentID:      "agent-1",
			Model:        "iris",
			ModelVersion: "3",
			Metric:       metric,
			Unit:         "s",
			Attributes:   map[string]string{semconv.AttrProtocol: "grpc", semconv.AttrStatus: "ok"},
			ResourceID:   ResourceID(map[string]string{semconv.AttrHostName: "host-a", "os.type": "linux", "empty": ""}),
			ScopeName:    "github.com/drover-ml/drover/agent",
			ScopeVersion: "0.1.0",
		}
	}
	ms := base.Truncate(time.Millisecond)
	return &Batch{
		Resources: []ResourceRow{{
			ResourceID: ResourceID(map[string]string{semconv.AttrHostName: "host-a", "os.type": "linux", "empty": ""}),
			LastSeen:   ms, Service: semconv.ServiceNameAgent, Host: "host-a", AgentID: "agent-1",
			Attributes: map[string]string{semconv.AttrHostName: "host-a", "os.type": "linux", "empty": ""},
		}},
		Gauges: []GaugeRow{{Point: point(semconv.MetricEval, 0), Value: 0.875}},
		Sums:   []SumRow{{Point: point(semconv.MetricRequests, 1), Temporality: TemporalityCumulative, IsMonotonic: true, Value: 1234}},
		Histograms: []HistogramRow{{
			Point: point(semconv.MetricDistribution, 2), Feature: "petal_length", Temporality: TemporalityDelta,
			Count: 21, Sum: 42.5, Min: ptr(0.25), Max: ptr(7.75),
			Bounds: []float64{0.5, 1, 2.5, 5}, Counts: []uint64{1, 2, 3, 4, 11},
		}},
		ExpHistograms: []ExpHistogramRow{{
			Point: point(semconv.MetricRequestLatency, 3), Feature: "latency", Temporality: TemporalityDelta,
			Count: 17, Sum: -3.5, Min: ptr(-2.0), Max: ptr(4.0),
			Scale: 3, ZeroCount: 2, ZeroThreshold: 1e-9,
			PositiveOffset: -4, PositiveBucketCounts: []uint64{1, 0, 5, 2},
			NegativeOffset: 7, NegativeBucketCounts: []uint64{3, 4},
		}},
		Summaries: []SummaryRow{{
			Point: point("legacy.latency", 4), Count: 100, Sum: 12.5,
			Quantiles: []float64{0, 0.5, 0.99, 1}, QuantileValues: []float64{0.01, 0.1, 0.9, 1.5},
		}},
		Events: []EventRow{{
			Time: base.Add(5*time.Second + 1), ObservedTime: base.Add(6*time.Second + 2),
			Service: semconv.ServiceNameAgent, Host: "host-a", AgentID: "agent-1", Model: "iris", ModelVersion: "3",
			Event: semconv.EventSwapped, SeverityNumber: 9, SeverityText: "INFO", Body: "swapped iris 2 -> 3",
			Attributes: map[string]string{semconv.AttrPrevious: "2"},
			ResourceID: ResourceID(map[string]string{semconv.AttrHostName: "host-a"}),
			TraceID:    "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331",
		}},
		Samples: []SampleRow{{
			Time: base.Add(7 * time.Second), Model: "iris", ModelVersion: "3", Host: "host-a", RequestID: "req-42",
			Inputs: `{"x":[[5.1,3.5,1.4,0.2]]}`, Outputs: `{"label":[0]}`, Label: `0`,
			Attributes: map[string]string{semconv.AttrRole: "primary"},
		}},
		Drift: []DriftRow{{
			Time: ms.Add(8 * time.Second), Model: "iris", ModelVersion: "3", Feature: "petal_length", Test: DriftTestPSI,
			Value: 0.31, Threshold: 0.2, Drifted: true, WindowStart: ms.Add(-time.Hour), WindowEnd: ms,
			Reference: "version 3 golden set", Node: "collector-1",
		}},
		Jobs: []JobRow{{
			ID: "job-8", Model: "iris", ModelVersion: "3", IncidentStart: ms.Add(-10 * time.Minute), State: "running",
			Attempt: 2, LeaseOwner: "collector-1", LeaseUntil: ptr(ms.Add(time.Minute)),
			Created: ms.Add(-5 * time.Minute), Updated: ms, Started: ptr(ms.Add(-4 * time.Minute)), Finished: ptr(ms.Add(-time.Minute)),
			ExitCode: 3, ResultVersion: 4, Error: "exit status 3", Spec: `{"command":["retrain"]}`, RowVersion: 5,
		}},
	}
}

// readBatch reads every table back into a Batch, ordered by time.
func readBatch(t testing.TB, db *testenv.DB) *Batch {
	t.Helper()
	ctx := context.Background()
	var b Batch
	for _, q := range []struct {
		dest  any
		query string
	}{
		{&b.Resources, "SELECT * FROM resources FINAL ORDER BY resource_id"},
		{&b.Gauges, "SELECT * EXCEPT (resource_attributes, attributes_hash) FROM metrics_gauge ORDER BY time"},
		{&b.Sums, "SELECT * EXCEPT (resource_attributes, attributes_hash) FROM metrics_sum ORDER BY time"},
		{&b.Histograms, "SELECT * EXCEPT (resource_attributes) FROM metrics_histogram ORDER BY time"},
		{&b.ExpHistograms, "SELECT * EXCEPT (resource_attributes) FROM metrics_exp_histogram ORDER BY time"},
		{&b.Summaries, "SELECT * EXCEPT (resource_attributes) FROM metrics_summary ORDER BY time"},
		{&b.Events, "SELECT * EXCEPT (resource_attributes) FROM events ORDER BY time"},
		{&b.Samples, "SELECT * FROM samples ORDER BY time"},
		{&b.Drift, "SELECT * FROM drift_results ORDER BY time"},
		{&b.Jobs, "SELECT * FROM jobs ORDER BY id, row_version"},
	} {
		if err := db.Conn.Select(ctx, q.dest, q.query); err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
	}
	return &b
}

var timeType = reflect.TypeFor[time.Time]()

// equal is reflect.DeepEqual except that times are compared with Equal and
// a nil slice or map equals an empty one.
func equal(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == timeType {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equal(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equal(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equal(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

func compareBatches(t *testing.T, got, want *Batch) {
	t.Helper()
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		if !equal(g.Field(i), w.Field(i)) {
			gj, _ := json.MarshalIndent(g.Field(i).Interface(), "", " ")
			wj, _ := json.MarshalIndent(w.Field(i).Interface(), "", " ")
			t.Errorf("%s read back:\n%s\nwant\n%s", name, gj, wj)
		}
	}
}

func TestInsertRoundTripsEveryColumn(t *testing.T) {
	db, s := migrated(t)
	want := fullBatch(recent(0))
	if err := s.Insert(context.Background(), want, "round-trip"); err != nil {
		t.Fatal(err)
	}
	got := readBatch(t, db)
	if got.Rows() != want.Rows() || want.Rows() != 10 {
		t.Fatalf("read back %d rows, want %d", got.Rows(), want.Rows())
	}
	compareBatches(t, got, want)
}

func TestInsertEmptyValues(t *testing.T) {
	// Zero times, nil maps, slices and pointers are stored as the columns'
	// defaults: the epoch, empty maps and arrays, NULL.
	db, s := migrated(t)
	now := recent(0)
	b := &Batch{
		Gauges:     []GaugeRow{{Point: Point{Time: now, Metric: "m"}, Value: 1}},
		Histograms: []HistogramRow{{Point: Point{Time: now, Metric: "h"}}},
		Jobs:       []JobRow{{ID: "j", Created: now}},
	}
	if err := s.Insert(context.Background(), b, ""); err != nil {
		t.Fatal(err)
	}
	got := readBatch(t, db)
	if len(got.Gauges) != 1 || len(got.Histograms) != 1 || len(got.Jobs) != 1 {
		t.Fatalf("read back %d gauges, %d histograms, %d jobs; want 1 each", len(got.Gauges), len(got.Histograms), len(got.Jobs))
	}
	g, h, j := got.Gauges[0], got.Histograms[0], got.Jobs[0]
	if !g.StartTime.Equal(time.Unix(0, 0)) || len(g.Attributes) != 0 || g.ResourceID != 0 {
		t.Errorf("gauge with zero start time and nil maps read back as %+v", g)
	}
	if h.Min != nil || h.Max != nil || len(h.Bounds) != 0 || len(h.Counts) != 0 {
		t.Errorf("histogram with nil min, max, bounds, counts read back as %+v", h)
	}
	if j.LeaseUntil != nil || j.Started != nil || j.Finished != nil || !j.IncidentStart.Equal(time.Unix(0, 0)) {
		t.Errorf("job with nil times read back as %+v", j)
	}
}

// tableCounts returns the number of rows in every table Insert writes and
// in the rollups.
func tableCounts(t testing.TB, db *testenv.DB) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, table := range []string{TableGauge, TableSum, TableHistogram, TableExpHistogram, TableSummary,
		TableEvents, TableSamples, TableDrift, TableJobs} {
		out[table] = db.Count(t, "SELECT count() FROM "+table)
	}
	out["metrics_gauge_1m.points"] = db.Count(t, "SELECT sum(points) FROM metrics_gauge_1m")
	out["metrics_histogram_1h.count"] = db.Count(t, "SELECT sumMerge(count) FROM metrics_histogram_1h")
	return out
}

func TestInsertDeduplicatesRetriesByToken(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	b := fullBatch(recent(0))
	// Two days and two rows per table, so that blocks split into parts.
	next := fullBatch(recent(-25 * time.Hour))
	next.Jobs[0].ID = "job-9"
	appendBatch(b, next)

	if err := s.Insert(ctx, b, "batch-1"); err != nil {
		t.Fatal(err)
	}
	once := tableCounts(t, db)
	for table, n := range once {
		if want := uint64(2); n != want && !strings.Contains(table, ".") {
			t.Errorf("%s: %d rows after one insert, want %d", table, n, want)
		}
	}
	if once["metrics_gauge_1m.points"] != 2 || once["metrics_histogram_1h.count"] != 42 {
		t.Errorf("rollups after one insert: %v", once)
	}

	// A retry of the same batch with the same token stores nothing.
	if err := s.Insert(ctx, b, "batch-1"); err != nil {
		t.Fatal(err)
	}
	if again := tableCounts(t, db); !reflect.DeepEqual(again, once) {
		t.Errorf("retry with the same token changed the tables:\n got %v\nwant %v", again, once)
	}

	// The same rows under another token are another batch.
	if err := s.Insert(ctx, b, "batch-2"); err != nil {
		t.Fatal(err)
	}
	twice := tableCounts(t, db)
	for table, n := range twice {
		if n != 2*once[table] {
			t.Errorf("%s: %d after a second token, want %d", table, n, 2*once[table])
		}
	}
}

func TestInsertRetryAfterPartialFailure(t *testing.T) {
	// The first attempt wrote only the gauges (as if the sums failed); the
	// retry of the whole batch adds the sums and not the gauges again.
	db, s := migrated(t)
	ctx := context.Background()
	full := fullBatch(recent(0))
	if err := s.Insert(ctx, &Batch{Gauges: full.Gauges}, "batch-7"); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, full, "batch-7"); err != nil {
		t.Fatal(err)
	}
	for table, n := range tableCounts(t, db) {
		want := uint64(1)
		if table == "metrics_histogram_1h.count" {
			want = 21
		}
		if n != want {
			t.Errorf("%s: %d, want %d", table, n, want)
		}
	}
}

// TestDedupNeedsTheWindowSetting shows that on this engine a MergeTree table
// without non_replicated_deduplication_window ignores the token: the
// setting in the migrations is what makes retries safe.
func TestDedupNeedsTheWindowSetting(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	if err := db.Conn.Exec(ctx, "ALTER TABLE metrics_gauge MODIFY SETTING non_replicated_deduplication_window = 0"); err != nil {
		t.Fatal(err)
	}
	b := fullBatch(recent(0))
	for range 2 {
		if err := s.Insert(ctx, b, "same-token"); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge"); n != 2 {
		t.Errorf("metrics_gauge without a window: %d rows after two inserts with one token, want 2 (not deduplicated)", n)
	}
	if n := db.Count(t, "SELECT count() FROM metrics_sum"); n != 1 {
		t.Errorf("metrics_sum with the window: %d rows, want 1", n)
	}
}

func appendBatch(dst, src *Batch) {
	dst.Resources = append(dst.Resources, src.Resources...)
	dst.Gauges = append(dst.Gauges, src.Gauges...)
	dst.Sums = append(dst.Sums, src.Sums...)
	dst.Histograms = append(dst.Histograms, src.Histograms...)
	dst.ExpHistograms = append(dst.ExpHistograms, src.ExpHistograms...)
	dst.Summaries = append(dst.Summaries, src.Summaries...)
	dst.Events = append(dst.Events, src.Events...)
	dst.Samples = append(dst.Samples, src.Samples...)
	dst.Drift = append(dst.Drift, src.Drift...)
	dst.Jobs = append(dst.Jobs, src.Jobs...)
}

func TestBatchRowsAndReset(t *testing.T) {
	b := fullBatch(time.Now())
	if b.Rows() != 10 {
		t.Fatalf("Rows() = %d, want 10", b.Rows())
	}
	b.Gauges = append(b.Gauges, b.Gauges[0], b.Gauges[0])
	if b.Rows() != 12 {
		t.Fatalf("Rows() = %d, want 12", b.Rows())
	}
	var tables []string
	for table, n := range b.TableRows() {
		want := 1
		if table == TableGauge {
			want = 3
		}
		if n != want {
			t.Errorf("TableRows: %s has %d rows, want %d", table, n, want)
		}
		tables = append(tables, table)
	}
	if len(tables) != 10 || tables[0] != TableResources || tables[1] != TableGauge || tables[9] != TableJobs {
		t.Errorf("TableRows yielded %v, want the 10 tables in insert order", tables)
	}
	b.Reset()
	for table := range b.TableRows() {
		t.Errorf("TableRows of an empty batch yielded %s", table)
	}
	if b.Rows() != 0 || cap(b.Gauges) < 3 {
		t.Fatalf("after Reset: Rows() = %d, cap(Gauges) = %d", b.Rows(), cap(b.Gauges))
	}
}

func TestInsertPermanentErrorNamesTableAndKeepsOthers(t *testing.T) {
	db, s := migrated(t)
	b := fullBatch(recent(0))
	b.Sums[0].Temporality = 7 // not a value of the Enum8
	err := s.Insert(context.Background(), b, "bad-sum")
	if err == nil {
		t.Fatal("insert of an invalid temporality succeeded")
	}
	var ie *InsertError
	if !errors.As(err, &ie) || ie.Table != db.Name+".metrics_sum" || ie.Rows != 1 {
		t.Fatalf("err = %v, want an *InsertError for %s.metrics_sum with 1 row", err, db.Name)
	}
	if !strings.Contains(err.Error(), "metrics_sum") {
		t.Errorf("error %q does not name metrics_sum", err)
	}
	if IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true, want false for bad data", err)
	}
	counts := tableCounts(t, db)
	if counts[TableSum] != 0 || counts[TableGauge] != 1 || counts[TableJobs] != 1 {
		t.Errorf("after a permanent error in metrics_sum: %v; want the other tables written", counts)
	}
}

func TestInsertUnreachableServerIsRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	opts := &clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := New(conn, "", opts)
	defer s.Close()
	err = s.Insert(context.Background(), fullBatch(time.Now()), "tok")
	if err == nil {
		t.Fatal("insert into a closed port succeeded")
	}
	if !IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
	var ie *InsertError
	if !errors.As(err, &ie) || ie.Table != "drover.resources" {
		t.Errorf("err = %v, want an *InsertError for drover.resources (the first table)", err)
	}
	if n := strings.Count(err.Error(), "insert "); n != 1 {
		t.Errorf("Insert went on after a retryable error (%d tables failed): %v", n, err)
	}
}

func TestIsRetryable(t *testing.T) {
	ex := func(code int32) error { return &clickhouse.Exception{Code: code, Name: "DB::Exception", Message: "x"} }
	// The metric tables' inserts get ch-go's exceptions, wrapped as ch-go does.
	nex := func(code int32) error {
		return fmt.Errorf("query: %w", &ch.Exception{Code: proto.Error(code), Name: "DB::Exception", Message: "x"})
	}
	wrap := func(err error) error {
		return fmt.Errorf("outer: %w", &InsertError{Table: "drover.metrics_gauge", Rows: 3, Err: fmt.Errorf("send: %w", err)})
	}
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"nil":                    {nil, false},
		"too many parts":         {ex(252), true},
		"timeout exceeded":       {ex(159), true},
		"memory limit":           {ex(241), true},
		"keeper":                 {ex(999), true},
		"unknown table":          {ex(60), true},
		"type mismatch":          {ex(53), false},
		"syntax error":           {ex(62), false},
		"cannot parse":           {ex(6), false},
		"wrapped too many parts": {wrap(ex(252)), true},
		"wrapped type mismatch":  {wrap(ex(53)), false},
		"connection refused":     {wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		"bare connection reset":  {fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		"broken pipe":            {wrap(syscall.EPIPE), true},
		"unexpected EOF":         {wrap(fmt.Errorf("read header: %w", io.ErrUnexpectedEOF)), true},
		"joined unknown errors":  {wrap(fmt.Errorf("read: %w", errors.Join(errors.New("a"), errors.New("b")))), false},
		"driver conversion":      {wrap(&column.ColumnConverterError{Op: "Append", To: "Float64", From: "string"}), false},
		"deadline":               {wrap(context.DeadlineExceeded), true},
		"acquire timeout":        {wrap(clickhouse.ErrAcquireConnTimeout), true},
		"unknown error":          {wrap(errors.New("something else")), false},
		"joined, one retryable":  {errors.Join(wrap(ex(53)), wrap(ex(252))), true},
		"joined, all permanent":  {errors.Join(wrap(ex(53)), wrap(ex(62))), false},
		"native too many parts":  {wrap(nex(252)), true},
		"native unknown db":      {wrap(nex(81)), true},
		"native type mismatch":   {wrap(nex(53)), false},
		"native client closed":   {wrap(fmt.Errorf("send: %w", ch.ErrClosed)), true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := IsRetryable(tc.err); got != tc.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestInsertNativeServerErrorIsClassified(t *testing.T) {
	// A server error on the metric tables' connection is a *ch.Exception
	// and classified by its code: an unknown table (a database not migrated
	// yet) is retryable, and Insert stops at the first table. The database
	// exists: inserts that name a database that does not exist make the
	// embedded engine stop answering (a known fault of the engine), and
	// the point here is that the connection survives a server exception.
	db := testenv.ClickHouse(t)
	empty := db.Name + "_empty"
	if err := db.Conn.Exec(context.Background(), "CREATE DATABASE "+empty); err != nil {
		t.Fatal(err)
	}
	s := New(db.Conn, empty, db.Options)
	defer s.Close()
	err := s.Insert(context.Background(), fullBatch(recent(0)), "tok")
	var ex *ch.Exception
	if !errors.As(err, &ex) || ex.Code != 60 {
		t.Fatalf("err = %v, want ClickHouse exception 60 (UNKNOWN_TABLE)", err)
	}
	if !IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
	var ie *InsertError
	if !errors.As(err, &ie) || ie.Table != empty+".resources" {
		t.Errorf("err = %v, want an *InsertError for the first table", err)
	}
	// A server error leaves the connection at a packet boundary, so the
	// Store keeps it rather than dialling again.
	conn := s.native.client
	if conn == nil {
		t.Fatal("the connection was dropped after a server exception")
	}
	// The embedded engine sometimes closes its end after an exception
	// during an INSERT (about one run in four under -race); the next insert
	// then fails on the dead connection and the one after it redials. So:
	// the same exception within two inserts, and when the first of them
	// gave it, on the connection that was kept.
	err = s.Insert(context.Background(), fullBatch(recent(0)), "tok2")
	if errors.As(err, &ex) {
		if s.native.client != conn {
			t.Error("the connection was replaced after a server exception")
		}
		return
	}
	t.Logf("the engine closed the connection after the exception: %v", err)
	if err := s.Insert(context.Background(), fullBatch(recent(0)), "tok3"); !errors.As(err, &ex) || ex.Code != 60 {
		t.Errorf("insert after a redial: %v, want exception 60 again", err)
	}
}

func TestInsertInBlocksDeduplicatesAndSquashes(t *testing.T) {
	// Rows go out in blocks of chunkRows; a retry sends the same blocks,
	// which the server recognises, and the blocks of one INSERT end up in one
	// part (per partition), as a single block would.
	defer func(n, m int) { chunkRows, nativeBlockRows = n, m }(chunkRows, nativeBlockRows)
	chunkRows, nativeBlockRows = 3, 3
	db, s := migrated(t)
	ctx := context.Background()
	base := recent(0)
	b := &Batch{}
	for i := range 10 {
		b.Gauges = append(b.Gauges, gauge(base.Add(time.Duration(i)*time.Second), "h1", "accuracy", float64(i)))
	}
	for range 2 {
		if err := s.Insert(ctx, b, "blocks"); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge"); n != 10 {
		t.Errorf("after a retried insert of 4 blocks: %d rows, want 10", n)
	}
	if n := db.Count(t, "SELECT sum(points) FROM metrics_gauge_1h"); n != 10 {
		t.Errorf("after a retried insert of 4 blocks: the hourly rollup counts %d points, want 10", n)
	}
	parts := db.Count(t, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'metrics_gauge' AND active")
	days := db.Count(t, "SELECT uniqExact(toDate(time)) FROM metrics_gauge")
	if parts != days {
		t.Errorf("one insert of 4 blocks made %d parts over %d days, want one per day", parts, days)
	}
	if err := s.Insert(ctx, b, "blocks-2"); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge"); n != 20 {
		t.Errorf("after the same rows under another token: %d rows, want 20", n)
	}
}

func TestResourceID(t *testing.T) {
	a := map[string]string{"host.name": "h", "os.type": "linux"}
	b := map[string]string{"os.type": "linux", "host.name": "h"}
	if ResourceID(a) != ResourceID(b) || ResourceID(a) == 0 {
		t.Errorf("same attributes, ids %d and %d", ResourceID(a), ResourceID(b))
	}
	// Keys and values are delimited: moving a byte between them changes the id.
	if ResourceID(map[string]string{"ab": "c"}) == ResourceID(map[string]string{"a": "bc"}) {
		t.Error("ab=c and a=bc have the same id")
	}
	if ResourceID(nil) != 0 || ResourceID(map[string]string{}) != 0 {
		t.Error("no attributes: want id 0")
	}
	// Pinned: the id is a contract between collectors and the stored data.
	if got := ResourceID(map[string]string{"host.name": "h"}); got != 0x96b28ccc65291f00 {
		t.Errorf("ResourceID(host.name=h) = %#x, want 0x96b28ccc65291f00: ids changed, stored points lose their resources", got)
	}
}

// TestInsertBatchesMatchesInsert: rows split over several Batches (as the
// ingest's writer hands over cached requests) are stored like their
// concatenation, block for block, so that a batch first written with
// InsertBatches and replayed after a crash with Insert of the same rows
// (or the other way round) is stored once.
func TestInsertBatchesMatchesInsert(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	old := chunkRows
	chunkRows = 3 // several blocks, and block edges inside the batches
	defer func() { chunkRows = old }()
	var parts []*Batch
	all := &Batch{}
	base := recent(0)
	for i := range 4 {
		b := &Batch{}
		for j := range 2 + i {
			g := fullBatch(base.Add(time.Duration(10*i+j) * time.Second)).Gauges[0]
			g.Value = float64(10*i + j)
			b.Gauges = append(b.Gauges, g)
		}
		b.Histograms = fullBatch(base.Add(time.Duration(i) * time.Minute)).Histograms
		parts = append(parts, b)
		appendBatch(all, b)
	}
	parts = append(parts, &Batch{}) // an empty one changes nothing
	if err := s.InsertBatches(ctx, parts, "tok"); err != nil {
		t.Fatal(err)
	}
	got := readBatch(t, db)
	if len(got.Gauges) != 14 || len(got.Histograms) != 4 {
		t.Fatalf("stored %d gauges and %d histograms, want 14 and 4", len(got.Gauges), len(got.Histograms))
	}
	for i, g := range got.Gauges { // ORDER BY time: the order they were made in
		if want := all.Gauges[i].Value; g.Value != want {
			t.Errorf("gauge %d = %v, want %v", i, g.Value, want)
		}
	}
	// The replay of the same rows as one Batch, same token: nothing new.
	if err := s.Insert(ctx, all, "tok"); err != nil {
		t.Fatal(err)
	}
	if got := readBatch(t, db); len(got.Gauges) != 14 || len(got.Histograms) != 4 {
		t.Errorf("after the replay: %d gauges and %d histograms, want 14 and 4", len(got.Gauges), len(got.Histograms))
	}
	// A different token is a different batch.
	if err := s.Insert(ctx, all, "tok2"); err != nil {
		t.Fatal(err)
	}
	if got := readBatch(t, db); len(got.Gauges) != 28 {
		t.Errorf("with a new token: %d gauges, want 28", len(got.Gauges))
	}
}

func TestNativeBlocksFillTheListedColumns(t *testing.T) {
	// tableColumns is the contract (and the clickhouse-go path's column
	// list); each metric table's native block sends exactly those columns.
	for table, in := range map[string]proto.Input{
		TableResources:    resourceBlock().input,
		TableGauge:        gaugeBlock().input,
		TableSum:          sumBlock().input,
		TableHistogram:    histogramBlock().input,
		TableExpHistogram: expHistogramBlock().input,
		TableSummary:      summaryBlock().input,
	} {
		var got []string
		for _, c := range in {
			got = append(got, c.Name)
		}
		if !reflect.DeepEqual(got, tableColumns[table]) {
			t.Errorf("%s: native block sends %v, want %v", table, got, tableColumns[table])
		}
	}
}

func TestNativeOptionsFollowTheDSN(t *testing.T) {
	o, err := clickhouse.ParseDSN("clickhouse://alice:s3cret@h1:9000,h2:9440/analytics?compress=zstd&dial_timeout=3s&max_insert_threads=2&secure=true")
	if err != nil {
		t.Fatal(err)
	}
	n := newNative(o)
	if len(n.opts) != 2 || n.opts[0].Address != "h1:9000" || n.opts[1].Address != "h2:9440" {
		t.Fatalf("addresses: %+v", n.opts)
	}
	got := n.opts[1]
	if got.Database != "analytics" || got.User != "alice" || got.Password != "s3cret" || got.TLS == nil ||
		got.Compression != ch.CompressionZSTD || got.DialTimeout != 3*time.Second || got.ReadTimeout <= 0 {
		t.Errorf("options: %+v", got)
	}
	if len(got.Settings) != 1 || got.Settings[0].Key != "max_insert_threads" || got.Settings[0].Value != "2" {
		t.Errorf("settings: %+v", got.Settings)
	}
	plain := newNative(&clickhouse.Options{Addr: []string{"h:9000"}})
	if p := plain.opts[0]; p.Compression != ch.CompressionDisabled || p.TLS != nil || p.DialTimeout <= 0 {
		t.Errorf("plain options: %+v", p)
	}
}

func TestNativeConnectionIsReusedAndRedialled(t *testing.T) {
	// Inserts share one connection. One idle past pingIdle is pinged first:
	// when the server side has dropped it (here a proxy in between closes
	// its sockets; the client's end still looks open), the insert dials
	// again instead of failing. A closed Store refuses inserts, retryably.
	defer func(d time.Duration) { pingIdle = d }(pingIdle)
	db, _ := migrated(t)
	proxy := newCutProxy(t, db.Options.Addr[0])
	opts := *db.Options
	opts.Addr = []string{proxy.addr}
	s := New(db.Conn, db.Name, &opts)
	defer s.Close()
	ctx := context.Background()
	b := &Batch{Gauges: []GaugeRow{gauge(recent(0), "h1", "accuracy", 1)}}
	if err := s.Insert(ctx, b, "c1"); err != nil {
		t.Fatal(err)
	}
	first := s.native.client
	if err := s.Insert(ctx, b, "c2"); err != nil || s.native.client != first {
		t.Fatalf("second insert: %v; connection reused: %v", err, s.native.client == first)
	}
	proxy.cut()
	pingIdle = 0
	if err := s.Insert(ctx, b, "c3"); err != nil {
		t.Fatalf("insert after the server side dropped the connection: %v", err)
	}
	if s.native.client == first {
		t.Error("the dropped connection was reused")
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	s.Close()
	if err := s.Insert(ctx, b, "c4"); !errors.Is(err, errStoreClosed) || !IsRetryable(err) {
		t.Errorf("insert after Close: %v, want errStoreClosed, retryable", err)
	}
}

// cutProxy forwards TCP connections to a server; cut closes the ones open
// so far, from the server's side as the client sees it.
type cutProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &cutProxy{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestBatchMemBytes: a row's struct counts per row; the arrays of
// histograms and the strings of samples and events are counted by their
// length; shared names count only their headers.
func TestBatchMemBytes(t *testing.T) {
	if got := (&Batch{}).MemBytes(); got != 0 {
		t.Fatalf("empty batch: %d bytes", got)
	}
	g := &Batch{Gauges: make([]GaugeRow, 10)}
	for i := range g.Gauges {
		g.Gauges[i].Model = "a model whose name every row shares"
	}
	if got, want := g.MemBytes(), 10*int(unsafe.Sizeof(GaugeRow{})); got != want {
		t.Errorf("10 gauges: %d bytes, want %d", got, want)
	}
	h := &Batch{Histograms: []HistogramRow{{Bounds: make([]float64, 9), Counts: make([]uint64, 10)}}}
	if got, want := h.MemBytes(), int(unsafe.Sizeof(HistogramRow{}))+8*19; got != want {
		t.Errorf("a histogram of 10 buckets: %d bytes, want %d", got, want)
	}
	in := strings.Repeat("1.5,", 1000)
	s := &Batch{Samples: []SampleRow{{Inputs: in, Outputs: "[0.25]", Attributes: map[string]string{"k": "v"}}}}
	if got, want := s.MemBytes(), int(unsafe.Sizeof(SampleRow{}))+len(in)+6+2+48; got != want {
		t.Errorf("a sample of %d bytes of inputs: %d bytes, want %d", len(in), got, want)
	}
}
