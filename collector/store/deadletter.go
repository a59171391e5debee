package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// DeadLetterRow is a row of dead_letters: one row that ClickHouse refused
// for its data, set aside so that the rest of its batch is stored.
type DeadLetterRow struct {
	Time     time.Time `ch:"time" json:"time"`           // when it was set aside
	Table    string    `ch:"table_name" json:"table"`    // the table it was for (TableGauge, ...)
	Code     int32     `ch:"code" json:"code"`           // ClickHouse's error code; 0 for an error without one
	CodeName string    `ch:"code_name" json:"code_name"` // the code's name, or "" for an error without one
	Reason   string    `ch:"reason" json:"reason"`       // the error
	Batch    string    `ch:"batch" json:"batch"`         // the insert's deduplication token (spool-<first>-<last>)
	Row      string    `ch:"row" json:"row"`             // the refused row, as JSON
}

// tableSlices gives, per table, the number of rows of a Batch and a copy
// of rows [lo, hi) into another Batch.
var tableSlices = map[string]struct {
	n    func(*Batch) int
	copy func(dst, src *Batch, lo, hi int)
	json func(*Batch, int) any
}{
	TableResources:    sliceOf(func(b *Batch) *[]ResourceRow { return &b.Resources }),
	TableGauge:        sliceOf(func(b *Batch) *[]GaugeRow { return &b.Gauges }),
	TableSum:          sliceOf(func(b *Batch) *[]SumRow { return &b.Sums }),
	TableHistogram:    sliceOf(func(b *Batch) *[]HistogramRow { return &b.Histograms }),
	TableExpHistogram: sliceOf(func(b *Batch) *[]ExpHistogramRow { return &b.ExpHistograms }),
	TableSummary:      sliceOf(func(b *Batch) *[]SummaryRow { return &b.Summaries }),
	TableEvents:       sliceOf(func(b *Batch) *[]EventRow { return &b.Events }),
	TableSamples:      sliceOf(func(b *Batch) *[]SampleRow { return &b.Samples }),
	TableDrift:        sliceOf(func(b *Batch) *[]DriftRow { return &b.Drift }),
	TableJobs:         sliceOf(func(b *Batch) *[]JobRow { return &b.Jobs }),
	TableDeadLetters:  sliceOf(func(b *Batch) *[]DeadLetterRow { return &b.DeadLetters }),
}

func sliceOf[R any](f func(*Batch) *[]R) struct {
	n    func(*Batch) int
	copy func(dst, src *Batch, lo, hi int)
	json func(*Batch, int) any
} {
	return struct {
		n    func(*Batch) int
		copy func(dst, src *Batch, lo, hi int)
		json func(*Batch, int) any
	}{
		n:    func(b *Batch) int { return len(*f(b)) },
		copy: func(dst, src *Batch, lo, hi int) { *f(dst) = append(*f(dst), (*f(src))[lo:hi]...) },
		json: func(b *Batch, i int) any { return &(*f(b))[i] },
	}
}

// TableRowCount is the number of rows for table (a Table constant) in the
// concatenation of bs.
func TableRowCount(bs []*Batch, table string) int {
	ts, ok := tableSlices[table]
	if !ok {
		return 0
	}
	n := 0
	for _, b := range bs {
		n += ts.n(b)
	}
	return n
}

// SliceTable returns a Batch that holds rows [lo, hi) of table of the
// concatenation of bs, and nothing else (the rows are copied; their maps
// and slices are shared).
func SliceTable(bs []*Batch, table string, lo, hi int) *Batch {
	out := &Batch{}
	ts, ok := tableSlices[table]
	if !ok {
		return out
	}
	off := 0
	for _, b := range bs {
		n := ts.n(b)
		if off+n > lo && off < hi {
			ts.copy(out, b, max(lo-off, 0), min(hi-off, n))
		}
		off += n
		if off >= hi {
			break
		}
	}
	return out
}

// RowsJSON returns each row that b holds for table as JSON (field names
// as in the row structs). A row that JSON cannot hold (a NaN value) is
// rendered with %+v.
func RowsJSON(b *Batch, table string) []string {
	ts, ok := tableSlices[table]
	if !ok {
		return nil
	}
	out := make([]string, ts.n(b))
	for i := range out {
		r := ts.json(b, i)
		if j, err := json.Marshal(r); err == nil {
			out[i] = string(j)
		} else {
			out[i] = fmt.Sprintf("%+v", r)
		}
	}
	return out
}

// TableName is the table name (a Table constant) of an InsertError: its
// Table without the database.
func (e *InsertError) TableName() string {
	for i := len(e.Table) - 1; i >= 0; i-- {
		if e.Table[i] == '.' {
			return e.Table[i+1:]
		}
	}
	return e.Table
}

// CodeName is the name ErrorCodes gives code, or "" for one it does not
// list.
func CodeName(code int32) string { return ErrorCodes[code].Name }
