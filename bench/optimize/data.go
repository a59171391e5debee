package main

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// The data sets, verbatim copies of scikit-learn's (UCI, CC BY 4.0; see
// testdata/README.md).
//
//go:embed testdata/breast_cancer.csv testdata/wine_data.csv testdata/digits.csv.gz
var dataFS embed.FS

// dataset is one of the shipped data sets.
type dataset struct {
	name string
	file string
	// header: the first line is scikit-learn's "rows,features,class
	// names..." (checked against the rows read); without it, every
	// column but the last is a feature.
	header bool
}

var datasets = []dataset{
	{name: "breast_cancer", file: "testdata/breast_cancer.csv", header: true},
	{name: "wine", file: "testdata/wine_data.csv", header: true},
	{name: "digits", file: "testdata/digits.csv.gz"},
}

func lookupDataset(name string) (dataset, bool) {
	for _, d := range datasets {
		if d.name == name {
			return d, true
		}
	}
	return dataset{}, false
}

func datasetNames() string {
	names := make([]string, len(datasets))
	for i, d := range datasets {
		names[i] = d.name
	}
	return strings.Join(names, ", ")
}

// load reads the data set as a classification learn.Dataset: every column
// but the last a feature, the last the class index 0..K-1.
func (ds dataset) load() (*learn.Dataset, error) {
	raw, err := dataFS.ReadFile(ds.file)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", ds.name, err)
	}
	var r io.Reader = bytes.NewReader(raw)
	if strings.HasSuffix(ds.file, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("data set %s: %w", ds.name, err)
		}
		defer zr.Close()
		r = zr
	}
	d, err := parseCSV(r, ds.header)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", ds.name, err)
	}
	return d, nil
}

// parseCSV reads rows of features followed by a class index (a whole
// number ≥ 0); with header, the first line is "rows,features,names..."
// and must agree with what follows.
func parseCSV(r io.Reader, header bool) (*learn.Dataset, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	wantRows, wantFeatures := -1, -1
	line := 0
	if header {
		rec, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("read header: %w", err)
		}
		line++
		if len(rec) < 2 {
			return nil, fmt.Errorf("line 1: header %q has no row and feature counts", strings.Join(rec, ","))
		}
		if wantRows, err = strconv.Atoi(rec[0]); err != nil || wantRows < 1 {
			return nil, fmt.Errorf("line 1: row count %q is not a positive whole number", rec[0])
		}
		if wantFeatures, err = strconv.Atoi(rec[1]); err != nil || wantFeatures < 1 {
			return nil, fmt.Errorf("line 1: feature count %q is not a positive whole number", rec[1])
		}
	}
	var (
		xs      []float64
		y       []float64
		classes int
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if wantFeatures < 0 {
			wantFeatures = len(rec) - 1
			if wantFeatures < 1 {
				return nil, fmt.Errorf("line %d: %d columns; at least a feature and the class are needed", line, len(rec))
			}
		}
		if len(rec) != wantFeatures+1 {
			return nil, fmt.Errorf("line %d: %d columns, want %d features and the class", line, len(rec), wantFeatures)
		}
		for j, s := range rec[:wantFeatures] {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d, column %d: %q is not a finite number", line, j+1, s)
			}
			xs = append(xs, v)
		}
		c, err := strconv.Atoi(strings.TrimSpace(rec[wantFeatures]))
		if err != nil || c < 0 || c > 1000 {
			return nil, fmt.Errorf("line %d: class %q is not a whole number in [0, 1000]", line, rec[wantFeatures])
		}
		classes = max(classes, c+1)
		y = append(y, float64(c))
	}
	if len(y) == 0 {
		return nil, fmt.Errorf("no rows")
	}
	if wantRows >= 0 && len(y) != wantRows {
		return nil, fmt.Errorf("%d rows, the header says %d", len(y), wantRows)
	}
	d := &learn.Dataset{X: mat.NewDense(len(y), wantFeatures, xs), Y: y, Task: learn.Classification, Classes: classes}
	if err := learn.Validate(d); err != nil {
		return nil, err
	}
	for c, n := range learn.ClassCounts(d) {
		if n == 0 {
			return nil, fmt.Errorf("class %d has no rows (classes are 0..%d)", c, classes-1)
		}
	}
	return d, nil
}
