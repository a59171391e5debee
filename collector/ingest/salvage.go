package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/drover-ml/drover/collector/store"
)

// A batch that ClickHouse refuses for its data (store.IsRetryable is
// false: a type mismatch, a value out of range, points spanning more days
// than one INSERT may) is not retried as it is, which would never succeed
// and hold every later batch behind it, nor dropped, which would lose the
// good rows with the bad. The writer splits each refused table's rows in
// halves, inserting each half, and splits again the halves that are
// refused, until the refused rows are single rows (or
// WriterConfig.MaxSplitInserts inserts were spent: the ranges still
// refused then go whole). Those rows go to the dead_letters table, or, if
// it refuses them too, to the dead-letter file; everything else of the
// batch is stored. The split is the same every time for the same batch
// (halves by row index, tokens "<batch token>/split-<lo>-<hi>" and
// "<batch token>/dead"), so a salvage interrupted by a stop and done
// again after the restart stores nothing twice.

// salvage stores what it can of a batch whose insert failed with the
// permanent error err, and sets the rest aside. It returns an error only
// when ctx ended (the batch then stays in the spool).
func (w *Writer) salvage(ctx context.Context, parts []*store.Batch, tok string, err error) error {
	failed := store.InsertErrors(err)
	tables := make([]string, 0, len(failed))
	causes := map[string]error{}
	for _, ie := range failed {
		if !store.IsRetryable(ie.Err) {
			tables = append(tables, ie.TableName())
			causes[ie.TableName()] = ie.Err
		}
	}
	if len(tables) == 0 {
		// An error that names no table (not the Store's): every table of
		// the batch is suspect.
		for _, p := range parts {
			for table := range p.TableRows() {
				if _, ok := causes[table]; !ok {
					tables = append(tables, table)
					causes[table] = err
				}
			}
		}
	}
	for _, table := range tables {
		if err := w.splitTable(ctx, parts, table, tok, causes[table]); err != nil {
			return err
		}
	}
	return nil
}

// span is a range of a table's rows that was refused, and why.
type span struct {
	lo, hi int
	cause  error
}

// splitTable bisects the rows of table in parts (all of which were
// refused with cause) and sets aside the ones refused alone.
func (w *Writer) splitTable(ctx context.Context, parts []*store.Batch, table, tok string, cause error) error {
	n := store.TableRowCount(parts, table)
	if n == 0 {
		return nil
	}
	w.log.Warn("ClickHouse refused rows of a batch for their data; splitting it to store the rest and set the refused rows aside",
		"batch", tok, "table", table, "rows", n, "err", cause)
	budget := w.cfg.MaxSplitInserts
	stack := []span{{0, n, cause}}
	var dead []span
	stored := 0
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.hi-s.lo == 1 || budget <= 0 {
			dead = append(dead, s)
			continue
		}
		mid := s.lo + (s.hi-s.lo)/2
		var refused []span
		for _, h := range [2][2]int{{s.lo, mid}, {mid, s.hi}} {
			budget--
			sub := store.SliceTable(parts, table, h[0], h[1])
			err := w.insertRetrying(ctx, []*store.Batch{sub}, tok+"/split-"+strconv.Itoa(h[0])+"-"+strconv.Itoa(h[1]))
			switch {
			case err == nil:
				stored += h[1] - h[0]
				w.countWritten(table, h[1]-h[0])
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				refused = append(refused, span{h[0], h[1], err})
			}
		}
		// The left half is split first.
		for i := len(refused) - 1; i >= 0; i-- {
			stack = append(stack, refused[i])
		}
	}
	rows := w.deadRows(parts, table, tok, dead)
	w.log.Error("rows refused by ClickHouse for their data are set aside in dead_letters; the rest of the batch is stored",
		"batch", tok, "table", table, "refused", len(rows), "stored", stored)
	return w.setAside(ctx, rows, tok+"/dead/"+table)
}

// insertRetrying inserts bs under tok, retrying retryable failures (with
// the writer's backoff) until it succeeds, fails for the data, or ctx
// ends.
func (w *Writer) insertRetrying(ctx context.Context, bs []*store.Batch, tok string) error {
	retry := w.newBackOff()
	for {
		err := w.ins.InsertBatches(ctx, bs, tok)
		if err == nil || ctx.Err() != nil || !store.IsRetryable(err) {
			return err
		}
		if w.stats.InsertErrors != nil {
			w.stats.InsertErrors.WithLabelValues("true").Inc()
		}
		w.stats.unknownCodes(err)
		w.updateSpoolStats()
		t := time.NewTimer(retry.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// maxReason bounds the error text kept with a dead letter.
const maxReason = 2048

// deadRows are the dead_letters rows of the spans of table.
func (w *Writer) deadRows(parts []*store.Batch, table, tok string, spans []span) []store.DeadLetterRow {
	now := time.Now().UTC()
	var out []store.DeadLetterRow
	for _, s := range spans {
		code, _, _ := store.ServerError(s.cause)
		reason := s.cause.Error()
		if len(reason) > maxReason {
			reason = reason[:maxReason]
		}
		for _, row := range store.RowsJSON(store.SliceTable(parts, table, s.lo, s.hi), table) {
			out = append(out, store.DeadLetterRow{Time: now, Table: table, Code: code, CodeName: store.CodeName(code),
				Reason: reason, Batch: tok, Row: row})
		}
	}
	return out
}

// setAside writes dead letters to the dead_letters table; if ClickHouse
// refuses them for their data too, to the dead-letter file.
func (w *Writer) setAside(ctx context.Context, rows []store.DeadLetterRow, tok string) error {
	if len(rows) == 0 {
		return nil
	}
	err := w.insertRetrying(ctx, []*store.Batch{{DeadLetters: rows}}, tok)
	switch {
	case err == nil:
		w.countDead("table", len(rows))
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	w.log.Error("ClickHouse refused the dead letters too; appending them to the dead-letter file", "file", w.cfg.DeadLetterFile, "rows", len(rows), "err", err)
	if ferr := w.appendDeadFile(rows); ferr != nil {
		w.log.Error("dead letters lost: the dead-letter file cannot take them", "file", w.cfg.DeadLetterFile, "rows", len(rows), "err", ferr)
		w.countDead("dropped", len(rows))
		return nil
	}
	w.countDead("file", len(rows))
	return nil
}

// appendDeadFile appends rows as JSON lines to the dead-letter file and
// syncs it. The file grows to DeadLetterFileMax at most.
func (w *Writer) appendDeadFile(rows []store.DeadLetterRow) error {
	if w.cfg.DeadLetterFile == "" {
		return fmt.Errorf("no dead-letter file configured")
	}
	var buf []byte
	for i := range rows {
		j, err := json.Marshal(&rows[i])
		if err != nil {
			return err
		}
		buf = append(append(buf, j...), '\n')
	}
	f, err := os.OpenFile(w.cfg.DeadLetterFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size()+int64(len(buf)) > w.cfg.DeadLetterFileMax {
		return fmt.Errorf("%s would grow past %d bytes (writer.dead_letter_file_max_bytes)", w.cfg.DeadLetterFile, w.cfg.DeadLetterFileMax)
	}
	if _, err := f.Write(buf); err != nil {
		return err
	}
	return f.Sync()
}

func (w *Writer) countDead(where string, n int) {
	if w.stats.DeadLetters != nil {
		w.stats.DeadLetters.WithLabelValues(where).Add(float64(n))
	}
}

func (w *Writer) countWritten(table string, n int) {
	if w.stats.Written != nil {
		w.stats.Written.WithLabelValues(table).Add(float64(n))
	}
}
