package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// Inserter writes a batch, given in parts, as their concatenation with a
// deduplication token (store.Store.InsertBatches): the rows of cached
// requests go to ClickHouse without being copied into one Batch.
type Inserter interface {
	InsertBatches(ctx context.Context, bs []*store.Batch, token string) error
}

// DefaultBatchRows is WriterConfig.BatchRows's default.
const DefaultBatchRows = 200000

// WriterConfig configures batching.
type WriterConfig struct {
	// BatchRows flushes a batch once it has this many rows; default
	// DefaultBatchRows.
	BatchRows int
	// BatchBytes bounds the spool bytes read into one batch; default 16 MiB
	// (decoded, a batch takes several times that in memory).
	BatchBytes int
	// FlushInterval flushes a smaller batch once its oldest record has
	// waited this long; default 1.5s.
	FlushInterval time.Duration
	// MaxBackoff bounds the retry delay while ClickHouse fails; default 10s.
	MaxBackoff time.Duration
	// DrainTimeout bounds the final flush on shutdown; default 20s. What is
	// not written by then stays in the spool for the next start.
	DrainTimeout time.Duration
	// MaxSplitInserts bounds the inserts spent splitting one table of a
	// batch refused for its data (see salvage.go); the ranges still refused
	// then are set aside whole. Default 128.
	MaxSplitInserts int
	// DeadLetterFile is where dead letters go when the dead_letters table
	// refuses them too (JSON lines); "" for none (they are then counted as
	// dropped). DeadLetterFileMax bounds its size; default 256 MiB.
	DeadLetterFile    string
	DeadLetterFileMax int64
	// Resources caches converted OTLP resources (shared with the
	// SpoolSink); nil: the package default.
	Resources *ResourceCache
	// Ready, if not nil, holds the writer back until it is closed (the
	// ClickHouse schema is applied): until then Run inserts nothing, and
	// requests go to the spool without waiting for room in the row cache.
	// A writer stopped before Ready leaves the spool for the next start.
	Ready <-chan struct{}
}

func (c WriterConfig) withDefaults() WriterConfig {
	if c.BatchRows <= 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 16 << 20
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 1500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.MaxSplitInserts <= 0 {
		c.MaxSplitInserts = 128
	}
	if c.DeadLetterFileMax <= 0 {
		c.DeadLetterFileMax = 256 << 20
	}
	return c
}

// Writer moves spooled requests into ClickHouse: it is the spool's single
// reader. Each batch is a contiguous range of spool records; the range is
// recorded in the spool (SetIntent) before the insert, which carries the
// token "spool-<spool id>-<first>-<last>", so a batch interrupted by a crash is
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
	// seen: when each resource was last written (see unseen).
	seen map[uint64]time.Time
}

// Resources are written again after resourceRefresh, so that their
// last_seen stays within the resources TTL while they send data; seen
// holds at most maxSeen of them (then it starts over: rewriting a
// resource only costs a row).
const (
	resourceRefresh = time.Hour
	maxSeen         = 100000
)

// unseen returns the resources of rs, each once, that were not written in
// the last resourceRefresh. A batch retried after a crash may carry more
// resources than its first attempt under the same token; the ones it then
// loses to deduplication were written by an earlier batch.
func (w *Writer) unseen(rs []store.ResourceRow) []store.ResourceRow {
	if len(rs) == 0 {
		return rs
	}
	now := time.Now()
	out := make([]store.ResourceRow, 0, min(len(rs), 64))
	batch := make(map[uint64]bool, len(rs))
	for _, r := range rs {
		if batch[r.ResourceID] {
			continue
		}
		batch[r.ResourceID] = true
		if at, ok := w.seen[r.ResourceID]; ok && now.Sub(at) < resourceRefresh {
			continue
		}
		out = append(out, r)
	}
	return out
}

func (w *Writer) markSeen(rs []store.ResourceRow) {
	if w.seen == nil || len(w.seen)+len(rs) > maxSeen {
		w.seen = make(map[uint64]time.Time, len(rs))
	}
	now := time.Now()
	for _, r := range rs {
		w.seen[r.ResourceID] = now
	}
}

// NewWriter builds a writer. rows, if not nil, is the SpoolSink's row
// cache.
func NewWriter(cfg WriterConfig, sp *spool.Spool, rows *RowCache, ins Inserter, stats *Stats, log *slog.Logger) *Writer {
	if stats == nil {
		stats = &Stats{}
	}
	return &Writer{cfg: cfg.withDefaults(), rows: rows, sp: sp, ins: ins, log: log, stats: stats}
}

// Run writes until ctx is cancelled, then flushes what the spool holds
// (bounded by DrainTimeout) and returns nil. It returns an error, after
// flushing what it can, when the spool fails or is closed under it: the
// writer cannot go on, and whoever runs it must stop.
func (w *Writer) Run(ctx context.Context) error {
	if !w.waitReady(ctx) {
		n, bytes := w.sp.Pending()
		w.log.Info("stopped before the ClickHouse schema was applied; the spool is written at the next start", "records", n, "bytes", bytes)
		return nil
	}
	// A batch that was being inserted when the process stopped goes first,
	// exactly as it was.
	if err := w.replayIntent(ctx, "re-inserting the batch interrupted by the last stop"); err != nil {
		if ctx.Err() != nil {
			return w.drain()
		}
		return err
	}
	if _, bytes := w.sp.Pending(); bytes > 0 {
		w.log.Info("writing what the spool held at start", "bytes", bytes)
	}
	for {
		if err := w.sp.Wait(ctx, w.sp.Acked()); err != nil {
			if ctx.Err() != nil {
				break
			}
			// The spool failed (a write error) or was closed while the
			// writer runs: write what it still can, then fail.
			w.drain()
			return fmt.Errorf("spool: %w", err)
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

// waitReady waits for cfg.Ready, keeping the spool gauges and the lag
// current meanwhile; false if ctx ended first.
func (w *Writer) waitReady(ctx context.Context) bool {
	if w.cfg.Ready == nil {
		return true
	}
	select {
	case <-w.cfg.Ready:
		return true
	default:
	}
	w.log.Info("waiting for the ClickHouse schema; requests are kept in the spool")
	w.rows.setFlow(false) // requests must not wait for a writer that cannot write
	defer w.rows.setFlow(true)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		w.updateSpoolStats()
		if w.stats.oldestPending() == 0 {
			w.noteOldestInSpool()
		}
		select {
		case <-w.cfg.Ready:
			w.log.Info("ClickHouse schema applied; writing")
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// noteOldestInSpool sets the lag's start from the first record after the
// ack position, if there is one.
func (w *Writer) noteOldestInSpool() {
	recs, err := w.sp.Read(w.sp.Acked()+1, 1, 1<<30)
	if err != nil || len(recs) == 0 {
		return
	}
	if _, at, _, err := decodeRecord(recs[0].Data); err == nil {
		w.stats.setOldestPending(at)
	}
}

// item is one spool record of a batch: its rows from the RowCache, or
// its spooled data to decode.
type item struct {
	seq  uint64
	at   time.Time // when it was received
	rows *store.Batch
	data []byte // the spool record, when rows is nil
}

func spooled(recs []spool.Record) []item {
	out := make([]item, len(recs))
	for i, r := range recs {
		out[i] = item{seq: r.Seq, data: r.Data}
		if _, at, _, err := decodeRecord(r.Data); err == nil {
			out[i].at = at
		}
	}
	return out
}

// collect gathers the next batch: records after the ack position until
// BatchRows (exact for cached rows, estimated from the size of spooled
// data), BatchBytes of spooled data, or FlushInterval after the first
// record was received. Records whose rows are cached are taken from the
// RowCache without reading the spool.
func (w *Writer) collect(ctx context.Context) ([]item, error) {
	next := w.sp.Acked() + 1
	var items []item
	bytes, rows := 0, 0
	deadline := time.Time{}
	for {
		upTo := w.sp.Committed()
		for next <= upTo && rows < w.cfg.BatchRows && bytes < w.cfg.BatchBytes {
			if c, ok := w.rows.take(next); ok {
				items = append(items, item{seq: next, at: c.at, rows: c.b})
				rows += c.b.Rows()
				next++
				continue
			}
			// next is not cached: read it and the uncached run after it.
			run := max(1, w.rows.missing(next, int(min(upTo-next+1, 1<<12))))

			got, err := w.sp.Read(next, run, w.cfg.BatchBytes-bytes)
			if err != nil {
				return nil, fmt.Errorf("read spool: %w", err)
			}
			if len(got) == 0 {
				break
			}
			for _, it := range spooled(got) {
				items = append(items, it)
				bytes += len(it.data)
				rows += estimatePoints(it.data)
				next = it.seq + 1
			}
		}
		if len(items) > 0 && deadline.IsZero() {
			deadline = items[0].at.Add(w.cfg.FlushInterval)
			w.stats.setOldestPending(items[0].at)
		}
		if len(items) > 0 && (rows >= w.cfg.BatchRows || bytes >= w.cfg.BatchBytes || !time.Now().Before(deadline)) {
			return items, nil
		}
		wctx, cancel := context.WithDeadline(ctx, deadlineOr(deadline, time.Now().Add(time.Second)))
		err := w.sp.Wait(wctx, next-1)
		cancel()
		if ctx.Err() != nil {
			return items, nil
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

// write converts items into one batch, records the intent, inserts with
// retries until it succeeds (or ctx ends), and acks the spool.
func (w *Writer) write(ctx context.Context, items []item, replay bool) error {
	first, last := items[0].seq, items[len(items)-1].seq
	// The batch is the rows of items in order: cached requests as they are,
	// spooled ones decoded (consecutive ones into one Batch), resources
	// first and each once.
	res := &store.Batch{}
	parts := []*store.Batch{res}
	var decoded *store.Batch
	var oldest time.Time
	for _, it := range items {
		var err error
		if it.rows != nil {
			parts = append(parts, it.rows)
			decoded = nil
		} else {
			if decoded == nil {
				decoded = &store.Batch{}
				parts = append(parts, decoded)
			}
			var kind Kind
			var payload []byte
			if kind, _, payload, err = decodeRecord(it.data); err == nil {
				err = w.cfg.Resources.Convert(kind, payload, decoded)
			}
		}
		if err != nil {
			// Receivers validated every payload, so this is a bug or disk
			// damage the spool's checksums missed; keep the batch moving and
			// say so loudly.
			w.log.Error("spool record cannot be converted; skipping it", "seq", it.seq, "err", err)
			continue
		}
		if !it.at.IsZero() && (oldest.IsZero() || it.at.Before(oldest)) {
			oldest = it.at
		}
	}
	for _, p := range parts[1:] {
		res.Resources = append(res.Resources, p.Resources...)
		p.Resources = nil
	}
	res.Resources = w.unseen(res.Resources)
	w.stats.setOldestPending(oldest) // the lag grows from here until the ack
	if err := w.sp.SetIntent(first, last); err != nil {
		return fmt.Errorf("record batch intent: %w", err)
	}
	retry := w.newBackOff()
	for {
		start := time.Now()
		err := w.ins.InsertBatches(ctx, parts, token(w.sp.ID(), first, last))
		if err == nil {
			if w.failing {
				w.log.Info("ClickHouse inserts work again")
				w.failing = false
				w.rows.setFlow(true)
			}
			w.observe(parts, time.Since(start))
			w.markSeen(res.Resources)
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
		if codes := w.stats.unknownCodes(err); len(codes) > 0 && !w.failing {
			w.log.Error("ClickHouse answered with an error code the collector does not classify; retrying (drover_collector_insert_unknown_errors_total)", "codes", codes, "err", err)
		}
		if !retryable {
			// Bad rows: ClickHouse refuses them and will keep refusing.
			// Store the rest of the batch, set the bad rows aside, and
			// move on (salvage.go).
			if err := w.salvage(ctx, parts, token(w.sp.ID(), first, last), err); err != nil {
				return err
			}
			if w.failing {
				w.failing = false
				w.rows.setFlow(true)
			}
			w.markSeen(res.Resources)
			break
		}
		if !w.failing {
			w.log.Warn("ClickHouse insert failed; data stays in the spool and is retried", "err", err)
			w.failing = true
			w.rows.setFlow(false) // requests must not wait for a writer that cannot write
		}
		w.updateSpoolStats() // the spool grows during an outage: keep the gauges current
		t := time.NewTimer(retry.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := w.sp.Ack(last); err != nil {
		return fmt.Errorf("ack spool up to %d: %w", last, err)
	}
	w.rows.acked(last)
	w.stats.setOldestPending(time.Time{}) // the next batch sets it again
	if replay && w.stats.Replayed != nil {
		w.stats.Replayed.Add(float64(len(items)))
	}
	w.updateSpoolStats()
	return nil
}

// newBackOff is the retry delay of a failing insert: jittered, from 100ms
// doubling up to MaxBackoff, retried for as long as it takes.
func (w *Writer) newBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = min(100*time.Millisecond, w.cfg.MaxBackoff)
	b.Multiplier = 2
	b.MaxInterval = w.cfg.MaxBackoff
	b.Reset()
	return b
}

func rowsOf(parts []*store.Batch) int {
	n := 0
	for _, p := range parts {
		n += p.Rows()
	}
	return n
}

func (w *Writer) observe(parts []*store.Batch, d time.Duration) {
	if w.stats.BatchRows != nil {
		w.stats.BatchRows.Observe(float64(rowsOf(parts)))
		w.stats.InsertSeconds.Observe(d.Seconds())
	}
	if w.stats.Written != nil {
		for _, p := range parts {
			for table, n := range p.TableRows() {
				w.stats.Written.WithLabelValues(table).Add(float64(n))
			}
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

// replayIntent inserts the batch recorded as the spool's intent, if it is
// not acked yet: exactly its records, under its token, so that ClickHouse
// deduplicates it if the interrupted insert had stored it.
func (w *Writer) replayIntent(ctx context.Context, msg string) error {
	first, last, ok := w.sp.Intent()
	if !ok || last <= w.sp.Acked() {
		return nil
	}
	recs, err := w.readRange(first, last)
	if err != nil {
		return fmt.Errorf("re-read interrupted batch %d-%d: %w", first, last, err)
	}
	w.log.Info(msg, "first", first, "last", last, "records", len(recs))
	return w.write(ctx, spooled(recs), true)
}

// drain writes what the spool holds after receivers stopped, for at most
// DrainTimeout; the rest stays in the spool. A batch whose insert the stop
// interrupted goes first, as it was.
func (w *Writer) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.DrainTimeout)
	defer cancel()
	if err := w.replayIntent(ctx, "shutdown: re-inserting the interrupted batch"); err != nil {
		n, bytes := w.sp.Pending()
		w.log.Warn("shutdown: spool not fully written; the rest is written at the next start", "records", n, "bytes", bytes, "err", err)
		return nil
	}
	for {
		n, _ := w.sp.Pending()
		if n == 0 {
			return nil
		}
		recs, err := w.sp.Read(w.sp.Acked()+1, 1<<16, w.cfg.BatchBytes)
		if err != nil || len(recs) == 0 {
			return err
		}
		if err := w.write(ctx, spooled(recs), false); err != nil {
			n, bytes := w.sp.Pending()
			w.log.Warn("shutdown: spool not fully written; the rest is written at the next start", "records", n, "bytes", bytes, "err", err)
			return nil
		}
	}
}
