package learn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Fold is one split of a k-fold cross-validation: the rows to train on and
// the rows to score, each in ascending order.
type Fold struct {
	Train []int
	Test  []int
}

// Folds splits d's rows into k folds, shuffled with seed: stratified for
// classification (every class spread over the folds in proportion, as
// scikit-learn's StratifiedKFold(shuffle=True) does), plain k-fold for
// regression. It refuses k < 2, k > rows, and, for classification, k
// larger than the rows of any class. The same d, k and seed always give
// the same folds.
func Folds(d *Dataset, k int, seed int64) ([]Fold, error) {
	n := d.Rows()
	if k < 2 {
		return nil, fmt.Errorf("folds: %d folds; at least 2 are needed", k)
	}
	if k > n {
		return nil, fmt.Errorf("folds: %d folds need at least %d rows, there are %d", k, k, n)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	fold := make([]int, n) // fold[i] is the fold that tests row i
	if d.Task == Classification {
		byClass := make([][]int, d.Classes)
		for i, y := range d.Y {
			c := int(y)
			if c < 0 || c >= d.Classes {
				return nil, fmt.Errorf("folds: row %d has class %v, outside 0..%d", i, y, d.Classes-1)
			}
			byClass[c] = append(byClass[c], i)
		}
		for c, rows := range byClass {
			if len(rows) > 0 && len(rows) < k {
				return nil, fmt.Errorf("folds: %d stratified folds need at least %d rows of every class; class %d has %d", k, k, c, len(rows))
			}
		}
		// Classes one after the other, each shuffled, dealt round-robin:
		// every fold gets ⌊n_c/k⌋ or ⌈n_c/k⌉ rows of class c.
		pos := 0
		for _, rows := range byClass {
			rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			for _, r := range rows {
				fold[r] = pos % k
				pos++
			}
		}
	} else {
		perm := rng.Perm(n)
		start := 0
		for f := range k {
			size := n / k
			if f < n%k {
				size++
			}
			for _, r := range perm[start : start+size] {
				fold[r] = f
			}
			start += size
		}
	}
	folds := make([]Fold, k)
	for i, f := range fold {
		for g := range folds {
			if g == f {
				folds[g].Test = append(folds[g].Test, i)
			} else {
				folds[g].Train = append(folds[g].Train, i)
			}
		}
	}
	return folds, nil
}

// Validate checks that d can be learnt from and returns a clear error
// naming the first problem: no rows, X and Y of different lengths, a
// missing feature (NaN), a non-finite feature or target, a class index
// that is not a whole number in 0..Classes-1, fewer than two classes
// declared, or a single class among the rows. The executor calls it on the
// labelled rows before any search.
func Validate(d *Dataset) error {
	if d == nil || d.X == nil || d.Rows() == 0 {
		return errors.New("no labelled rows")
	}
	r, _ := d.X.Dims()
	if r != d.Rows() {
		return fmt.Errorf("%d feature rows but %d labels", r, d.Rows())
	}
	for i := range r {
		for j, v := range d.X.RawRowView(i) {
			if math.IsNaN(v) {
				return fmt.Errorf("row %d: feature %d is missing (NaN); every feature must be present", i, j)
			}
			if math.IsInf(v, 0) {
				return fmt.Errorf("row %d: feature %d is %v; features must be finite", i, j, v)
			}
		}
	}
	switch d.Task {
	case Classification:
		if d.Classes < 2 {
			return fmt.Errorf("a classifier needs at least 2 classes, the model has %d", d.Classes)
		}
		seen := make([]bool, d.Classes)
		distinct := 0
		for i, y := range d.Y {
			if y != math.Trunc(y) || y < 0 || y >= float64(d.Classes) {
				return fmt.Errorf("row %d: label %v is not one of the model's %d classes", i, y, d.Classes)
			}
			if !seen[int(y)] {
				seen[int(y)] = true
				distinct++
			}
		}
		if distinct < 2 {
			return fmt.Errorf("every labelled row has the same class (%v); a classifier needs at least 2 classes among them", d.Y[0])
		}
	case Regression:
		for i, y := range d.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				return fmt.Errorf("row %d: target %v is not a finite number", i, y)
			}
		}
	default:
		return fmt.Errorf("unknown task %d", d.Task)
	}
	return nil
}

// ClassCounts returns the number of rows of each class of a classification
// dataset.
func ClassCounts(d *Dataset) []int {
	counts := make([]int, d.Classes)
	for _, y := range d.Y {
		if c := int(y); c >= 0 && c < d.Classes {
			counts[c]++
		}
	}
	return counts
}
