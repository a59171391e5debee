package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// A spool record is: kind (1 byte), receive time (8 bytes, unix nanoseconds,
// little-endian), then the OTLP export request as protobuf.
const recordHeader = 9

func encodeRecord(kind Kind, at time.Time, payload []byte) []byte {
	rec := make([]byte, recordHeader+len(payload))
	rec[0] = byte(kind)
	binary.LittleEndian.PutUint64(rec[1:], uint64(at.UnixNano()))
	copy(rec[recordHeader:], payload)
	return rec
}

func decodeRecord(rec []byte) (Kind, time.Time, []byte, error) {
	if len(rec) < recordHeader {
		return 0, time.Time{}, nil, fmt.Errorf("spool record of %d bytes is shorter than its header", len(rec))
	}
	return Kind(rec[0]), time.Unix(0, int64(binary.LittleEndian.Uint64(rec[1:]))), rec[recordHeader:], nil
}

// SpoolSink is the Sink of the receivers: it appends each request to the
// spool (durably, per the spool's sync policy) before it is acknowledged,
// and, when Rows is set, converts the request the receiver already decoded
// into rows kept in memory for the writer, so the writer does not decode it
// again (after a restart, or when the cache is full, it does).
type SpoolSink struct {
	Spool *spool.Spool
	Stats *Stats
	Rows  *RowCache
}

// Accept appends the payload; a full spool is ErrBackpressure.
func (s *SpoolSink) Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error {
	seq, err := s.Spool.Append(ctx, encodeRecord(kind, time.Now(), payload))
	switch {
	case errors.Is(err, spool.ErrFull):
		return ErrBackpressure
	case err != nil:
		return fmt.Errorf("spool: %w", err)
	}
	if s.Stats != nil {
		s.Stats.spooled(kind, points)
	}
	if s.Rows != nil && s.Rows.room(points) {
		var b store.Batch
		switch d := decoded.(type) {
		case pmetric.Metrics:
			convertMetrics(d, &b)
		case plog.Logs:
			convertLogs(d, &b)
		default:
			return nil
		}
		s.Rows.put(seq, &b)
	}
	return nil
}

// RowCache holds the rows of recently spooled requests, by spool seq, up to
// a bound on rows. Safe for concurrent use.
type RowCache struct {
	mu      sync.Mutex
	batches map[uint64]*store.Batch
	rows    int
	max     int
}

// NewRowCache bounds the cache to maxRows rows (0: 200000).
func NewRowCache(maxRows int) *RowCache {
	if maxRows <= 0 {
		maxRows = 200000
	}
	return &RowCache{batches: map[uint64]*store.Batch{}, max: maxRows}
}

func (c *RowCache) room(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rows+n <= c.max
}

func (c *RowCache) put(seq uint64, b *store.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches[seq] = b
	c.rows += b.Rows()
}

// take removes and returns the rows of seq, if cached.
func (c *RowCache) take(seq uint64) *store.Batch {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.batches[seq]
	if b != nil {
		delete(c.batches, seq)
		c.rows -= b.Rows()
	}
	return b
}

// appendBatch appends o's rows to b.
func appendBatch(b, o *store.Batch) {
	b.Gauges = append(b.Gauges, o.Gauges...)
	b.Sums = append(b.Sums, o.Sums...)
	b.Histograms = append(b.Histograms, o.Histograms...)
	b.ExpHistograms = append(b.ExpHistograms, o.ExpHistograms...)
	b.Summaries = append(b.Summaries, o.Summaries...)
	b.Events = append(b.Events, o.Events...)
	b.Samples = append(b.Samples, o.Samples...)
	b.ModelVersions = append(b.ModelVersions, o.ModelVersions...)
	b.Drift = append(b.Drift, o.Drift...)
	b.Jobs = append(b.Jobs, o.Jobs...)
}

// Inserter writes a batch with a deduplication token (store.Store).
type Inserter interface {
	Insert(ctx context.Context, b *store.Batch, token string) error
}

// WriterConfig configures batching.
type WriterConfig struct {
	// BatchRows flushes a batch once it has this many rows; default 50000.
	BatchRows int
	// BatchBytes bounds the spool bytes read into one batch; default 16 MiB
	// (decoded, a batch takes several times that in memory).
	BatchBytes int
	// FlushInterval flushes a smaller batch once its oldest record has
	// waited this long; default 1s (about one insert per second per table).
	FlushInterval time.Duration
	// MaxBackoff bounds the retry delay while ClickHouse fails; default 10s.
	MaxBackoff time.Duration
	// DrainTimeout bounds the final flush on shutdown; default 20s. What is
	// not written by then stays in the spool for the next start.
	DrainTimeout time.Duration
}

func (c WriterConfig) withDefaults() WriterConfig {
	if c.BatchRows <= 0 {
		c.BatchRows = 50000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 16 << 20
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
	return c
}

// Writer moves spooled requests into ClickHouse: it is the spool's single
// reader. Each batch is a contiguous range of spool records; the range is
// recorded in the spool (SetIntent) before the insert, which carries the
// token "spool-<first>-<last>", so a batch interrupted by a crash is
// re-inserted after restart with the same range and token and ClickHouse
// deduplicates it. Rows reach ClickHouse exactly once.
type Writer struct {
	cfg   WriterConfig
	rows  *RowCache // may be nil
	sp    *spool.Spool
	ins   Inserter
	log   *slog.Logger
	stats *Stats
	// logged suppresses repeated insert-failure logs (one per outage).
	failing bool
}

// NewWriter builds a writer. rows, if not nil, is the SpoolSink's row
// cache.
func NewWriter(cfg WriterConfig, sp *spool.Spool, rows *RowCache, ins Inserter, stats *Stats, log *slog.Logger) *Writer {
	if stats == nil {
		stats = &Stats{}
	}
	return &Writer{cfg: cfg.withDefaults(), rows: rows, sp: sp, ins: ins, log: log, stats: stats}
}

func token(first, last uint64) string {
	return "spool-" + strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
}

// Run writes until ctx is cancelled, then flushes what the spool holds
// (bounded by DrainTimeout) and returns.
func (w *Writer) Run(ctx context.Context) error {
	// A batch that was being inserted when the process stopped goes first,
	// exactly as it was.
	if first, last, ok := w.sp.Intent(); ok && last > w.sp.Acked() {
		recs, err := w.readRange(first, last)
		if err != nil {
			return fmt.Errorf("re-read interrupted batch %d-%d: %w", first, last, err)
		}
		w.log.Info("re-inserting the batch interrupted by the last stop", "first", first, "last", last, "records", len(recs))
		if err := w.write(ctx, recs, true); err != nil {
			return err
		}
	}
	if _, bytes := w.sp.Pending(); bytes > 0 {
		w.log.Info("writing what the spool held at start", "bytes", bytes)
	}
	for {
		if err := w.sp.Wait(ctx, w.sp.Acked()); err != nil {
			break // ctx done or spool closed: drain below
		}
		recs, err := w.collect(ctx)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			continue
		}
		if err := w.write(ctx, recs, false); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	return w.drain()
}

// collect reads the next batch: records after the ack position until
// BatchRows (estimated from points), BatchBytes, or FlushInterval after the
// first record.
func (w *Writer) collect(ctx context.Context) ([]spool.Record, error) {
	next := w.sp.Acked() + 1
	var recs []spool.Record
	bytes, points := 0, 0
	deadline := time.Time{}
	for {
		got, err := w.sp.Read(next, 1<<16, w.cfg.BatchBytes-bytes)
		if err != nil {
			return nil, fmt.Errorf("read spool: %w", err)
		}
		for _, r := range got {
			recs = append(recs, r)
			bytes += len(r.Data)
			points += estimatePoints(r.Data)
			next = r.Seq + 1
		}
		if len(recs) > 0 && deadline.IsZero() {
			_, at, _, _ := decodeRecord(recs[0].Data)
			deadline = at.Add(w.cfg.FlushInterval)
		}
		if len(recs) > 0 && (points >= w.cfg.BatchRows || bytes >= w.cfg.BatchBytes || !time.Now().Before(deadline)) {
			return recs, nil
		}
		wctx, cancel := context.WithDeadline(ctx, deadlineOr(deadline, time.Now().Add(time.Second)))
		err = w.sp.Wait(wctx, next-1)
		cancel()
		if ctx.Err() != nil {
			return recs, nil
		}
		_ = err // deadline reached or new records: loop
	}
}

func deadlineOr(d, def time.Time) time.Time {
	if d.IsZero() {
		return def
	}
	return d
}

// estimatePoints guesses rows from payload size (about 60 bytes of OTLP per
// data point) so batching needs no decode.
func estimatePoints(rec []byte) int { return max(1, (len(rec)-recordHeader)/60) }

func (w *Writer) readRange(first, last uint64) ([]spool.Record, error) {
	var out []spool.Record
	next := first
	for next <= last {
		got, err := w.sp.Read(next, int(min(last-next+1, 1<<16)), 1<<30)
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("spool has no record %d", next)
		}
		for _, r := range got {
			if r.Seq > last {
				break
			}
			out = append(out, r)
			next = r.Seq + 1
		}
	}
	return out, nil
}

// write converts recs into one batch, records the intent, inserts with
// retries until it succeeds (or ctx ends), and acks the spool.
func (w *Writer) write(ctx context.Context, recs []spool.Record, replay bool) error {
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	var b store.Batch
	var oldest time.Time
	for _, r := range recs {
		kind, at, payload, err := decodeRecord(r.Data)
		if cached := w.rows.take(r.Seq); cached != nil && err == nil {
			appendBatch(&b, cached)
		} else if err == nil {
			err = Convert(kind, payload, &b)
		}
		if err != nil {
			// Receivers validated every payload, so this is a bug or disk
			// damage the spool's checksums missed; keep the batch moving and
			// say so loudly.
			w.log.Error("spool record cannot be converted; skipping it", "seq", r.Seq, "err", err)
			continue
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	if !oldest.IsZero() && w.stats.LagSeconds != nil {
		w.stats.LagSeconds.Set(time.Since(oldest).Seconds())
	}
	if err := w.sp.SetIntent(first, last); err != nil {
		return fmt.Errorf("record batch intent: %w", err)
	}
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := w.ins.Insert(ctx, &b, token(first, last))
		if err == nil {
			if w.failing {
				w.log.Info("ClickHouse inserts work again")
				w.failing = false
			}
			w.observe(&b, time.Since(start))
			break
		}
		if ctx.Err() != nil {
			// Stopping: the batch stays in the spool (the drain or the next
			// start writes it with the same token).
			return ctx.Err()
		}
		retryable := store.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded)
		if w.stats.InsertErrors != nil {
			w.stats.InsertErrors.WithLabelValues(strconv.FormatBool(retryable)).Inc()
		}
		if !retryable {
			// Bad rows: ClickHouse refuses them and will keep refusing.
			// Don't block everything behind them; count and log loudly.
			w.log.Error("ClickHouse refused a batch; it is dropped", "first", first, "last", last, "rows", b.Rows(), "err", err)
			break
		}
		if !w.failing {
			w.log.Warn("ClickHouse insert failed; data stays in the spool and is retried", "err", err)
			w.failing = true
		}
		w.updateSpoolStats() // the spool grows during an outage: keep the gauges current
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
	if err := w.sp.Ack(last); err != nil {
		return fmt.Errorf("ack spool up to %d: %w", last, err)
	}
	if replay && w.stats.Replayed != nil {
		w.stats.Replayed.Add(float64(len(recs)))
	}
	w.updateSpoolStats()
	return nil
}

func (w *Writer) observe(b *store.Batch, d time.Duration) {
	if w.stats.BatchRows != nil {
		w.stats.BatchRows.Observe(float64(b.Rows()))
		w.stats.InsertSeconds.Observe(d.Seconds())
	}
	if w.stats.Written != nil {
		for table, n := range b.TableRows() {
			w.stats.Written.WithLabelValues(table).Add(float64(n))
		}
	}
}

func (w *Writer) updateSpoolStats() {
	if w.stats.SpoolBytes != nil {
		n, bytes := w.sp.Pending()
		w.stats.SpoolRecords.Set(float64(n))
		w.stats.SpoolBytes.Set(float64(bytes))
	}
}

// drain writes what the spool holds after receivers stopped, for at most
// DrainTimeout; the rest stays in the spool.
func (w *Writer) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.DrainTimeout)
	defer cancel()
	for {
		n, _ := w.sp.Pending()
		if n == 0 {
			return nil
		}
		recs, err := w.sp.Read(w.sp.Acked()+1, 1<<16, w.cfg.BatchBytes)
		if err != nil || len(recs) == 0 {
			return err
		}
		if err := w.write(ctx, recs, false); err != nil {
			n, bytes := w.sp.Pending()
			w.log.Warn("shutdown: spool not fully written; the rest is written at the next start", "records", n, "bytes", bytes, "err", err)
			return nil
		}
	}
}
