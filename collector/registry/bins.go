package registry

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/stat"

	"github.com/drover-ml/drover/shared/manifest"
)

// Training data at publish: a CSV whose header names the columns, one of
// them the label, the others the model input's features in order.
const (
	// DefaultBins is how many equal-share bins each feature gets: edges at
	// the 0, 1/n, ..., 1 quantiles of the training data.
	DefaultBins = 10
	// maxSampleRows bounds the rows kept to compute quantiles (a uniform
	// reservoir sample beyond it), so memory does not grow with the file.
	maxSampleRows = 100_000
)

// TrainingData names a file of a publish that holds training data, and its
// label column.
type TrainingData struct {
	Path  string `json:"path"`
	Label string `json:"label"`
}

// QuantileBins reads a CSV of training data (header row; label column
// label; every other column a numeric feature, in the order of the model
// input input's last dimension) and returns one manifest feature per
// column with bins at the 0, 1/n, ..., 1 quantiles of its values (equal
// edges merged; a column with a single value gets no feature). Rows beyond
// maxSampleRows are sampled uniformly (a fixed seed: the same file gives the
// same bins). A missing label column, a ragged row or a value that is not a
// finite number is an ErrInvalid naming the line and column.
func QuantileBins(r io.Reader, label, input string, n int) ([]manifest.Feature, error) {
	if n < 1 {
		n = DefaultBins
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: training data header: %w", ErrInvalid, err)
	}
	header = slices.Clone(header)
	labelCol := slices.Index(header, label)
	if labelCol < 0 {
		return nil, fmt.Errorf("%w: training data has no label column %q (columns %v)", ErrInvalid, label, header)
	}
	var names []string
	for i, h := range header {
		if i != labelCol {
			names = append(names, h)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: training data has no feature column", ErrInvalid)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		sample [][]float64 // rows of features
		seen   int
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: training data: %w", ErrInvalid, err)
		}
		line, _ := cr.FieldPos(0)
		row := make([]float64, 0, len(names))
		for i, s := range rec {
			if i == labelCol {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: training data line %d column %q: %q is not a finite number", ErrInvalid, line, header[i], s)
			}
			row = append(row, v)
		}
		seen++
		if len(sample) < maxSampleRows {
			sample = append(sample, row)
		} else if j := rng.IntN(seen); j < maxSampleRows {
			sample[j] = row
		}
	}
	if len(sample) == 0 {
		return nil, fmt.Errorf("%w: training data has no rows", ErrInvalid)
	}
	features := make([]manifest.Feature, 0, len(names))
	col := make([]float64, len(sample))
	for j, name := range names {
		for i, row := range sample {
			col[i] = row[j]
		}
		slices.Sort(col)
		var edges []float64
		for k := 0; k <= n; k++ {
			var e float64
			switch k {
			case 0:
				e = col[0]
			case n:
				e = col[len(col)-1]
			default:
				e = stat.Quantile(float64(k)/float64(n), stat.Empirical, col, nil)
			}
			if len(edges) == 0 || e > edges[len(edges)-1] {
				edges = append(edges, e)
			}
		}
		if len(edges) < 2 {
			continue
		}
		features = append(features, manifest.Feature{Name: name, Input: input, Index: j, Bins: edges})
	}
	return features, nil
}
