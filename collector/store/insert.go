package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table names, as in the migrations. In cluster mode they name the
// Distributed tables (see LocalSuffix).
const (
	TableResources    = "resources"
	TableGauge        = "metrics_gauge"
	TableSum          = "metrics_sum"
	TableHistogram    = "metrics_histogram"
	TableExpHistogram = "metrics_exp_histogram"
	TableSummary      = "metrics_summary"
	TableEvents       = "events"
	TableSamples      = "samples"
	TableDrift        = "drift_results"
	TableJobs         = "jobs"
	TableDeadLetters  = "dead_letters"
)

// pointColumns are the columns of Point, in the order appendPoints fills them.
var pointColumns = []string{
	"time", "start_time", "service", "host", "agent_id", "model", "model_version",
	"metric", "unit", "attributes", "resource_id", "scope_name", "scope_version",
}

// tableColumns lists, per table, the columns Insert fills, in the order the
// append functions fill them.
var tableColumns = map[string][]string{
	TableResources:    {"resource_id", "last_seen", "service", "host", "agent_id", "attributes"},
	TableGauge:        cat(pointColumns, "value"),
	TableSum:          cat(pointColumns, "temporality", "is_monotonic", "value"),
	TableHistogram:    cat(pointColumns, "feature", "temporality", "count", "sum", "min", "max", "bounds", "counts"),
	TableExpHistogram: cat(pointColumns, "feature", "temporality", "count", "sum", "min", "max", "scale", "zero_count", "zero_threshold", "positive_offset", "positive_bucket_counts", "negative_offset", "negative_bucket_counts"),
	TableSummary:      cat(pointColumns, "count", "sum", "quantiles", "quantile_values"),
	TableEvents: {"time", "observed_time", "service", "host", "agent_id", "model", "model_version", "event",
		"severity_number", "severity_text", "body", "attributes", "resource_id", "trace_id", "span_id"},
	TableSamples: {"time", "model", "model_version", "host", "request_id", "inputs", "outputs", "label", "attributes"},
	TableDrift: {"time", "model", "model_version", "feature", "test", "value", "threshold", "drifted",
		"window_start", "window_end", "reference", "node"},
	TableJobs: {"id", "model", "model_version", "incident_start", "state", "attempt", "lease_owner", "lease_until",
		"created", "updated", "started", "finished", "exit_code", "result_version", "error", "spec", "report", "row_version"},
	TableDeadLetters: {"time", "table_name", "code", "code_name", "reason", "batch", "row"},
}

func cat(a []string, b ...string) []string { return append(append([]string(nil), a...), b...) }

// Store writes typed rows into the schema that Migrate creates. It is safe
// for concurrent use; concurrency is bounded by the connection pool of the
// driver.Conn it was built with, which it does not own or close. Inserts
// into the metric tables (resources, metrics_*) go through a connection of
// the Store's own, one call at a time (see native.go), which Close closes.
type Store struct {
	conn    driver.Conn
	native  *native
	db      string
	queries map[string]string
}

// New returns a Store that inserts into database (default "drover") through
// conn. native holds the options conn was opened with (clickhouse.ParseDSN
// of its DSN); the metric tables' inserts dial the same server with them. A
// Store with nil native writes only the other tables: rows for a metric
// table fail to insert.
func New(conn driver.Conn, database string, native *clickhouse.Options) *Store {
	if database == "" {
		database = "drover"
	}
	s := &Store{conn: conn, db: database, queries: map[string]string{}}
	if native != nil {
		s.native = newNative(native)
	}
	for table, cols := range tableColumns {
		s.queries[table] = "INSERT INTO " + database + "." + table + " (" + strings.Join(cols, ", ") + ")"
	}
	return s
}

// InsertError is the error of one table's insert; Insert's error wraps one
// or more of them.
type InsertError struct {
	// Table is the table the rows were for.
	Table string
	// Rows is the number of rows that were not inserted.
	Rows int
	// Err is the cause; IsRetryable(Err) says whether to try again.
	Err error
}

func (e *InsertError) Error() string {
	return fmt.Sprintf("insert %d rows into %s: %v", e.Rows, e.Table, e.Err)
}

func (e *InsertError) Unwrap() error { return e.Err }

// InsertErrors returns the *InsertError of every table that failed in err
// (an error of Insert or InsertBatches), in the order they were tried.
func InsertErrors(err error) []*InsertError {
	var out []*InsertError
	walk(err, func(e error) {
		if ie, ok := e.(*InsertError); ok {
			out = append(out, ie)
		}
	})
	return out
}

// Insert writes every non-empty table of b, each as one INSERT whose rows
// go out in blocks of 8192, column by column. It only reads b.
//
// With a non-empty token every INSERT carries the setting
// insert_deduplication_token = token + "/" + table, and every table keeps a
// deduplication window (see Migrate), so inserting the same Batch again with
// the same token stores nothing twice, even for the tables that the first
// attempt did write: a caller retries a failed batch, whole, with the same
// token. The rollup views deduplicate along with their source tables. The
// rows of a retried Batch must be the same rows in the same order; a Batch
// with different rows needs a new token. With an empty token ClickHouse deduplicates only a
// block identical to a recent one.
//
// Tables are written in a fixed order. A table that fails with a permanent
// error (IsRetryable is false: bad data) does not stop the others; a
// retryable failure (ClickHouse unreachable or overloaded) stops Insert at
// that table. The error wraps an *InsertError per failed table and is
// retryable if any of them is. Insert replaces any ClickHouse query settings
// the caller put on ctx.
func (s *Store) Insert(ctx context.Context, b *Batch, token string) error {
	return s.InsertBatches(ctx, []*Batch{b}, token)
}

// InsertBatches is Insert of the concatenation of bs (in order), without
// copying their rows into one Batch. It sends the same blocks as Insert of
// the concatenated Batch, so the two deduplicate each other under one
// token: a batch written with InsertBatches can be retried with Insert of
// the same rows, and the other way round.
func (s *Store) InsertBatches(ctx context.Context, bs []*Batch, token string) error {
	steps := [...]insertStep{
		nativeStep(TableResources, bs, func(b *Batch) []ResourceRow { return b.Resources }, resourceBlock),
		nativeStep(TableGauge, bs, func(b *Batch) []GaugeRow { return b.Gauges }, gaugeBlock),
		nativeStep(TableSum, bs, func(b *Batch) []SumRow { return b.Sums }, sumBlock),
		nativeStep(TableHistogram, bs, func(b *Batch) []HistogramRow { return b.Histograms }, histogramBlock),
		nativeStep(TableExpHistogram, bs, func(b *Batch) []ExpHistogramRow { return b.ExpHistograms }, expHistogramBlock),
		nativeStep(TableSummary, bs, func(b *Batch) []SummaryRow { return b.Summaries }, summaryBlock),
		tableStep(TableEvents, bs, func(b *Batch) []EventRow { return b.Events }, appendEvents),
		tableStep(TableSamples, bs, func(b *Batch) []SampleRow { return b.Samples }, appendSamples),
		tableStep(TableDrift, bs, func(b *Batch) []DriftRow { return b.Drift }, appendDrift),
		tableStep(TableJobs, bs, func(b *Batch) []JobRow { return b.Jobs }, appendJobs),
		tableStep(TableDeadLetters, bs, func(b *Batch) []DeadLetterRow { return b.DeadLetters }, appendDeadLetters),
	}
	if s.native != nil {
		s.native.mu.Lock()
		defer s.native.mu.Unlock()
	}
	var errs []error
	for _, st := range steps {
		if st.rows == 0 {
			continue
		}
		var err error
		switch {
		case st.native == nil:
			err = s.insert(ctx, st.table, st.rows, token, st.fill)
		case s.native == nil:
			err = errNoNative
		default:
			err = st.native(ctx, s.native, s.db, token)
		}
		if err != nil {
			errs = append(errs, &InsertError{Table: s.db + "." + st.table, Rows: st.rows, Err: err})
			if IsRetryable(err) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes the connection of the metric tables' inserts; the Store
// inserts nothing into them after. It does not close the driver.Conn the
// Store was built with.
func (s *Store) Close() {
	if s.native != nil {
		s.native.close()
	}
}

// errNoNative is the error of rows for a metric table given to a Store
// built without native options.
var errNoNative = errors.New("store: this Store has no native connection options, which the metric tables need (store.New)")

// insertStep is the INSERT of one table: rows rows, appended by fill in
// blocks [lo, hi), or sent by native.
type insertStep struct {
	table  string
	rows   int
	fill   func(a *appender, lo, hi int)
	native func(ctx context.Context, n *native, db, token string) error
}

// nativeStep returns the insert step of one metric table over the rows
// that rows picks from each of bs, sent through ch-go in blocks made by mk.
func nativeStep[R any](table string, bs []*Batch, rows func(*Batch) []R, mk func() *block[R]) insertStep {
	n := 0
	for _, b := range bs {
		n += len(rows(b))
	}
	return insertStep{table: table, rows: n, native: func(ctx context.Context, nt *native, db, token string) error {
		return insertNative(ctx, nt, db, table, token, bs, rows, mk)
	}}
}

// tableStep returns the insert step of one table over the rows that rows
// picks from each of bs: fill appends rows [lo, hi) of their
// concatenation, through pointers, so no row is copied.
func tableStep[R any](table string, bs []*Batch, rows func(*Batch) []R, appendRows func(*appender, []*R)) insertStep {
	n := 0
	for _, b := range bs {
		n += len(rows(b))
	}
	var ptrs []*R
	return insertStep{table: table, rows: n, fill: func(a *appender, lo, hi int) {
		ptrs = resize(ptrs, hi-lo)[:0]
		off := 0 // index of the first row of b in the concatenation
		for _, b := range bs {
			rs := rows(b)
			if off+len(rs) > lo && off < hi {
				for i := max(lo-off, 0); i < min(hi-off, len(rs)); i++ {
					ptrs = append(ptrs, &rs[i])
				}
			}
			off += len(rs)
			if off >= hi {
				break
			}
		}
		appendRows(a, ptrs)
	}}
}

// chunkRows is how many rows Insert appends before it sends them as one
// block of the INSERT (batch.Flush). The driver's column buffers then stay
// this size and are reused for the next block, instead of growing, by
// copying, to the size of the whole table's rows; the server squashes the
// blocks of one INSERT into parts as large as before. Deduplication
// (token + block number) is unchanged for a retry of the same rows.
var chunkRows = 8192

func (s *Store) insert(ctx context.Context, table string, rows int, token string, fill func(a *appender, lo, hi int)) error {
	if token != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
			"insert_deduplication_token": token + "/" + table,
		}))
	}
	batch, err := s.conn.PrepareBatch(ctx, s.queries[table])
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer batch.Close()
	a := appender{batch: batch, cols: tableColumns[table]}
	for lo := 0; lo < rows; lo += chunkRows {
		hi := min(lo+chunkRows, rows)
		a.i = 0
		fill(&a, lo, hi)
		if a.err != nil {
			return a.err
		}
		if a.i != len(a.cols) {
			// A programming error: an append function and tableColumns disagree.
			return fmt.Errorf("filled %d of %d columns", a.i, len(a.cols))
		}
		if n := batch.Rows(); n != hi-lo {
			return fmt.Errorf("block holds %d rows, want %d", n, hi-lo)
		}
		if hi < rows {
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("send rows %d-%d: %w", lo, hi, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// appender fills a batch column by column. Each add hands one whole column
// to the driver, which copies the values, so the slices passed in may be
// reused for the next column.
//
// The driver's LowCardinality and Map columns take each value as an `any`
// (through reflection for a []string or a map), which costs an allocation
// per string. The appender instead boxes every distinct string once per
// insert (intern) and hands those columns []any, and hands Map columns
// rows that implement column.IterableOrderedMap over interned keys and
// values: no reflection and no allocation per value.
type appender struct {
	batch driver.Batch
	cols  []string
	i     int
	err   error

	// Scratch columns, reused across the columns of one table.
	strs  []string
	anys  []any
	times []time.Time
	kvs   []kvRow
	kvPtr []*kvRow
	flat  []any

	interned map[string]any
}

func (a *appender) add(v any) {
	if a.err != nil {
		return
	}
	if a.i >= len(a.cols) {
		a.err = fmt.Errorf("more columns appended than the %d listed", len(a.cols))
		return
	}
	if err := a.batch.Column(a.i).Append(v); err != nil {
		a.err = fmt.Errorf("column %s: %w", a.cols[a.i], err)
	}
	a.i++
}

// maxInterned bounds the strings one insert keeps boxed; past it, values
// are boxed one by one (high-cardinality values gain nothing from it).
const maxInterned = 1 << 16

func (a *appender) intern(s string) any {
	if v, ok := a.interned[s]; ok {
		return v
	}
	var v any = s
	if a.interned == nil {
		a.interned = make(map[string]any, 256)
	}
	if len(a.interned) < maxInterned {
		a.interned[s] = v
	}
	return v
}

// strCol adds a String column of f of each row.
func strCol[R any](a *appender, rows []*R, f func(*R) string) {
	a.strs = resize(a.strs, len(rows))
	for i := range rows {
		a.strs[i] = f(rows[i])
	}
	a.add(a.strs)
}

// lcCol adds a LowCardinality(String) column of f of each row.
func lcCol[R any](a *appender, rows []*R, f func(*R) string) {
	if a.err != nil {
		return
	}
	a.anys = resize(a.anys, len(rows))
	for i := range rows {
		a.anys[i] = a.intern(f(rows[i]))
	}
	a.add(a.anys)
}

// timeCol adds a DateTime64 column. A zero time.Time, which no DateTime64
// can hold, is stored as the Unix epoch, the columns' default.
func timeCol[R any](a *appender, rows []*R, f func(*R) time.Time) {
	a.times = resize(a.times, len(rows))
	for i := range rows {
		t := f(rows[i])
		if t.IsZero() {
			t = unixEpoch
		}
		a.times[i] = t
	}
	a.add(a.times)
}

var unixEpoch = time.Unix(0, 0).UTC()

// mapCol adds a Map(LowCardinality(String), String) column of f of each
// row, keys in sorted order.
func mapCol[R any](a *appender, rows []*R, f func(*R) map[string]string) {
	if a.err != nil {
		return
	}
	total := 0
	for i := range rows {
		total += len(f(rows[i]))
	}
	a.flat = resize(a.flat, 2*total)
	a.kvs = resize(a.kvs, len(rows))
	a.kvPtr = resize(a.kvPtr, len(rows))
	off := 0
	for i := range rows {
		m := f(rows[i])
		kv := a.flat[off : off+2*len(m) : off+2*len(m)]
		j := 0
		for k, v := range m {
			// Insertion sort by key: maps here hold a handful of entries.
			p := j
			for p > 0 && kv[2*(p-1)].(string) > k {
				kv[2*p], kv[2*p+1] = kv[2*(p-1)], kv[2*(p-1)+1]
				p--
			}
			kv[2*p], kv[2*p+1] = a.intern(k), a.intern(v)
			j++
		}
		off += 2 * len(m)
		a.kvs[i] = kvRow{kv: kv}
		a.kvPtr[i] = &a.kvs[i]
	}
	a.add(a.kvPtr)
}

// kvRow is one map value as alternating keys and values. It is its own
// column.MapIterator, so handing it to the driver allocates nothing; it
// is only ever iterated by one goroutine, once at a time.
type kvRow struct {
	kv []any
	i  int
}

var _ column.IterableOrderedMap = (*kvRow)(nil)

func (r *kvRow) Iterator() column.MapIterator { r.i = -2; return r }
func (r *kvRow) Next() bool                   { r.i += 2; return r.i < len(r.kv) }
func (r *kvRow) Key() any                     { return r.kv[r.i] }
func (r *kvRow) Value() any                   { return r.kv[r.i+1] }

// Put is part of column.IterableOrderedMap, for scanning; Insert never
// scans into a kvRow.
func (r *kvRow) Put(k, v any) { r.kv = append(r.kv, k, v) }

// col builds a new column of f of each row and adds it.
func col[R, T any](a *appender, rows []*R, f func(*R) T) {
	if a.err != nil {
		return
	}
	c := make([]T, len(rows))
	for i := range rows {
		c[i] = f(rows[i])
	}
	a.add(c)
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func appendEvents(a *appender, rows []*EventRow) {
	timeCol(a, rows, func(r *EventRow) time.Time { return r.Time })
	timeCol(a, rows, func(r *EventRow) time.Time { return r.ObservedTime })
	lcCol(a, rows, func(r *EventRow) string { return r.Service })
	lcCol(a, rows, func(r *EventRow) string { return r.Host })
	lcCol(a, rows, func(r *EventRow) string { return r.AgentID })
	lcCol(a, rows, func(r *EventRow) string { return r.Model })
	lcCol(a, rows, func(r *EventRow) string { return r.ModelVersion })
	lcCol(a, rows, func(r *EventRow) string { return r.Event })
	col(a, rows, func(r *EventRow) uint8 { return r.SeverityNumber })
	lcCol(a, rows, func(r *EventRow) string { return r.SeverityText })
	strCol(a, rows, func(r *EventRow) string { return r.Body })
	mapCol(a, rows, func(r *EventRow) map[string]string { return r.Attributes })
	col(a, rows, func(r *EventRow) uint64 { return r.ResourceID })
	strCol(a, rows, func(r *EventRow) string { return r.TraceID })
	strCol(a, rows, func(r *EventRow) string { return r.SpanID })
}

func appendSamples(a *appender, rows []*SampleRow) {
	timeCol(a, rows, func(r *SampleRow) time.Time { return r.Time })
	lcCol(a, rows, func(r *SampleRow) string { return r.Model })
	lcCol(a, rows, func(r *SampleRow) string { return r.ModelVersion })
	lcCol(a, rows, func(r *SampleRow) string { return r.Host })
	strCol(a, rows, func(r *SampleRow) string { return r.RequestID })
	strCol(a, rows, func(r *SampleRow) string { return r.Inputs })
	strCol(a, rows, func(r *SampleRow) string { return r.Outputs })
	strCol(a, rows, func(r *SampleRow) string { return r.Label })
	mapCol(a, rows, func(r *SampleRow) map[string]string { return r.Attributes })
}

func appendDrift(a *appender, rows []*DriftRow) {
	timeCol(a, rows, func(r *DriftRow) time.Time { return r.Time })
	lcCol(a, rows, func(r *DriftRow) string { return r.Model })
	lcCol(a, rows, func(r *DriftRow) string { return r.ModelVersion })
	lcCol(a, rows, func(r *DriftRow) string { return r.Feature })
	lcCol(a, rows, func(r *DriftRow) string { return r.Test })
	col(a, rows, func(r *DriftRow) float64 { return r.Value })
	col(a, rows, func(r *DriftRow) float64 { return r.Threshold })
	col(a, rows, func(r *DriftRow) uint8 {
		if r.Drifted {
			return 1
		}
		return 0
	})
	timeCol(a, rows, func(r *DriftRow) time.Time { return r.WindowStart })
	timeCol(a, rows, func(r *DriftRow) time.Time { return r.WindowEnd })
	strCol(a, rows, func(r *DriftRow) string { return r.Reference })
	lcCol(a, rows, func(r *DriftRow) string { return r.Node })
}

func appendJobs(a *appender, rows []*JobRow) {
	strCol(a, rows, func(r *JobRow) string { return r.ID })
	lcCol(a, rows, func(r *JobRow) string { return r.Model })
	lcCol(a, rows, func(r *JobRow) string { return r.ModelVersion })
	timeCol(a, rows, func(r *JobRow) time.Time { return r.IncidentStart })
	lcCol(a, rows, func(r *JobRow) string { return r.State })
	col(a, rows, func(r *JobRow) uint32 { return r.Attempt })
	lcCol(a, rows, func(r *JobRow) string { return r.LeaseOwner })
	col(a, rows, func(r *JobRow) *time.Time { return r.LeaseUntil })
	timeCol(a, rows, func(r *JobRow) time.Time { return r.Created })
	timeCol(a, rows, func(r *JobRow) time.Time { return r.Updated })
	col(a, rows, func(r *JobRow) *time.Time { return r.Started })
	col(a, rows, func(r *JobRow) *time.Time { return r.Finished })
	col(a, rows, func(r *JobRow) int32 { return r.ExitCode })
	col(a, rows, func(r *JobRow) uint64 { return r.ResultVersion })
	strCol(a, rows, func(r *JobRow) string { return r.Error })
	strCol(a, rows, func(r *JobRow) string { return r.Spec })
	strCol(a, rows, func(r *JobRow) string { return r.Report })
	col(a, rows, func(r *JobRow) uint64 { return r.RowVersion })
}

func appendDeadLetters(a *appender, rows []*DeadLetterRow) {
	timeCol(a, rows, func(r *DeadLetterRow) time.Time { return r.Time })
	lcCol(a, rows, func(r *DeadLetterRow) string { return r.Table })
	col(a, rows, func(r *DeadLetterRow) int32 { return r.Code })
	lcCol(a, rows, func(r *DeadLetterRow) string { return r.CodeName })
	strCol(a, rows, func(r *DeadLetterRow) string { return r.Reason })
	strCol(a, rows, func(r *DeadLetterRow) string { return r.Batch })
	strCol(a, rows, func(r *DeadLetterRow) string { return r.Row })
}
