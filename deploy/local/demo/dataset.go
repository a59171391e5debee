package demo

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// DataCSV is the shipped data set, data/breast_cancer.csv: a header row
// naming 30 features and the label column Label, then 569 rows.
//
//go:embed data/breast_cancer.csv
var DataCSV []byte

// Label is the label column of DataCSV: 1 benign, 0 malignant.
const Label = "benign"

// Dataset is a table of numeric features and an integer class label per
// row. Read-only once loaded, so safe for concurrent use.
type Dataset struct {
	// Features names the columns of X, in the model input's order.
	Features []string
	X        [][]float64
	// Y is each row's class, 0 or 1.
	Y []int64
}

// Rows returns the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

// Load returns the shipped data set.
func Load() (*Dataset, error) {
	return ParseCSV(bytes.NewReader(DataCSV), Label)
}

// ParseCSV reads a CSV with a header row; the column label holds each
// row's class (a non-negative integer) and every other column is a
// feature (a finite number). Errors name the line and column.
func ParseCSV(r io.Reader, label string) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read the header row: %w", err)
	}
	li := -1
	d := &Dataset{}
	for i, h := range header {
		if h == label {
			if li >= 0 {
				return nil, fmt.Errorf("header: label column %q twice", label)
			}
			li = i
			continue
		}
		d.Features = append(d.Features, h)
	}
	if li < 0 {
		return nil, fmt.Errorf("header: no label column %q", label)
	}
	if len(d.Features) == 0 {
		return nil, errors.New("header: no feature column")
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		x := make([]float64, 0, len(d.Features))
		for i, s := range rec {
			if i == li {
				y, err := strconv.ParseInt(s, 10, 64)
				if err != nil || y < 0 {
					return nil, fmt.Errorf("line %d: column %s: %q is not a class (a non-negative integer)", line, header[i], s)
				}
				d.Y = append(d.Y, y)
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("line %d: column %s: %q is not a finite number", line, header[i], s)
			}
			x = append(x, v)
		}
		d.X = append(d.X, x)
	}
	if d.Rows() == 0 {
		return nil, errors.New("no data rows")
	}
	return d, nil
}

// WriteCSV writes d with a header row, the label column label last, as
// ParseCSV reads it (and as `droverctl publish --training-data` reads it).
func (d *Dataset) WriteCSV(w io.Writer, label string) error {
	cw := csv.NewWriter(w)
	rec := append(append([]string(nil), d.Features...), label)
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("write the header row: %w", err)
	}
	for r, x := range d.X {
		rec = rec[:0]
		for _, v := range x {
			rec = append(rec, strconv.FormatFloat(v, 'g', -1, 64))
		}
		rec = append(rec, strconv.FormatInt(d.Y[r], 10))
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write row %d: %w", r+1, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write the data set: %w", err)
	}
	return nil
}

// Classes returns the number of classes, the largest label plus one.
func (d *Dataset) Classes() int {
	k := int64(0)
	for _, y := range d.Y {
		k = max(k, y+1)
	}
	return int(k)
}
