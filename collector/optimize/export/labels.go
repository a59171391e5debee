package export

import (
	"fmt"
	"math"
	"strconv"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// EncodeLabels turns the labels of rows, as stored (text), into a
// learn.Dataset's targets for sig: for a classifier the index of each
// label among sig's class labels, for a regressor the number. A label of
// the wrong type for the model (a word where the classes are integers, a
// non-number for a regressor), a class the model does not know and a
// non-finite target are clear errors naming the row.
func (s *Signature) EncodeLabels(labels []string) ([]float64, error) {
	y := make([]float64, len(labels))
	switch s.Task {
	case learn.Regression:
		for i, l := range labels {
			v, err := strconv.ParseFloat(l, 64)
			if err != nil {
				return nil, fmt.Errorf("row %d: label %q is not a number; the model is a regressor", i, l)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("row %d: label %q is not a finite number", i, l)
			}
			y[i] = v
		}
		return y, nil
	case learn.Classification:
		if len(s.ClassStrings) > 0 {
			idx := make(map[string]int, len(s.ClassStrings))
			for j, c := range s.ClassStrings {
				idx[c] = j
			}
			for i, l := range labels {
				j, ok := idx[l]
				if !ok {
					return nil, fmt.Errorf("row %d: label %q is not one of the model's classes %q", i, l, s.ClassStrings)
				}
				y[i] = float64(j)
			}
			return y, nil
		}
		idx := make(map[int64]int, len(s.ClassInts))
		for j, c := range s.ClassInts {
			idx[c] = j
		}
		for i, l := range labels {
			v, err := strconv.ParseInt(l, 10, 64)
			if err != nil {
				// "1.0" is the integer class 1; "cat" is the wrong type.
				f, ferr := strconv.ParseFloat(l, 64)
				if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
					return nil, fmt.Errorf("row %d: label %q is not an integer; the model's classes are the integers %v", i, l, s.ClassInts)
				}
				v = int64(f)
			}
			j, ok := idx[v]
			if !ok {
				return nil, fmt.Errorf("row %d: label %d is not one of the model's classes %v", i, v, s.ClassInts)
			}
			y[i] = float64(j)
		}
		return y, nil
	}
	return nil, fmt.Errorf("unknown task %v", s.Task)
}
