package learn

import (
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestStratifiedFoldsKeepProportions(t *testing.T) {
	var y []float64
	for c, n := range []int{30, 20, 10} {
		for range n {
			y = append(y, float64(c))
		}
	}
	d := classData(y, 3)
	folds, err := Folds(d, 5, 42)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, len(y))
	for f, fold := range folds {
		counts := ClassCounts(d.Subset(fold.Test))
		if !slices.Equal(counts, []int{6, 4, 2}) {
			t.Errorf("fold %d tests %v rows per class, want [6 4 2]", f, counts)
		}
		if len(fold.Train)+len(fold.Test) != len(y) || !slices.IsSorted(fold.Test) || !slices.IsSorted(fold.Train) {
			t.Errorf("fold %d: %d train + %d test rows, sorted %v", f, len(fold.Train), len(fold.Test), slices.IsSorted(fold.Test))
		}
		for _, r := range fold.Test {
			seen[r]++
		}
	}
	for r, n := range seen {
		if n != 1 {
			t.Fatalf("row %d tested %d times", r, n)
		}
	}
	again, _ := Folds(d, 5, 42)
	other, _ := Folds(d, 5, 43)
	if !slices.Equal(again[0].Test, folds[0].Test) {
		t.Fatal("folds differ for the same seed")
	}
	if slices.Equal(other[0].Test, folds[0].Test) {
		t.Fatal("folds are the same for another seed")
	}
}

func TestRegressionFolds(t *testing.T) {
	d := regData(make([]float64, 23))
	folds, err := Folds(d, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	seen := map[int]bool{}
	for _, f := range folds {
		sizes = append(sizes, len(f.Test))
		for _, r := range f.Test {
			seen[r] = true
		}
	}
	if !slices.Equal(sizes, []int{5, 5, 5, 4, 4}) || len(seen) != 23 {
		t.Fatalf("fold sizes %v, %d rows covered", sizes, len(seen))
	}
}

func TestFoldsRefuse(t *testing.T) {
	cases := map[string]struct {
		d    *Dataset
		k    int
		want string
	}{
		"one fold":        {regData(make([]float64, 10)), 1, "at least 2"},
		"more than rows":  {regData(make([]float64, 3)), 5, "5 folds need at least 5 rows, there are 3"},
		"class too small": {classData([]float64{0, 0, 0, 0, 0, 1, 1, 1}, 2), 5, "class 1 has 3"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Folds(tc.d, tc.k, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	x := func(v ...float64) *mat.Dense { return mat.NewDense(len(v), 1, v) }
	cases := map[string]struct {
		d    *Dataset
		want string
	}{
		"no rows":          {&Dataset{Task: Regression}, "no labelled rows"},
		"missing feature":  {&Dataset{X: x(1, math.NaN()), Y: []float64{0, 1}, Task: Classification, Classes: 2}, "row 1: feature 0 is missing (NaN)"},
		"infinite feature": {&Dataset{X: x(math.Inf(1), 1), Y: []float64{0, 1}, Task: Classification, Classes: 2}, "row 0: feature 0 is +Inf"},
		"single class":     {&Dataset{X: x(1, 2), Y: []float64{1, 1}, Task: Classification, Classes: 2}, "same class"},
		"class range":      {&Dataset{X: x(1, 2), Y: []float64{0, 2}, Task: Classification, Classes: 2}, "label 2 is not one of the model's 2 classes"},
		"fractional class": {&Dataset{X: x(1, 2), Y: []float64{0, 0.5}, Task: Classification, Classes: 2}, "label 0.5"},
		"one class model":  {&Dataset{X: x(1, 2), Y: []float64{0, 0}, Task: Classification, Classes: 1}, "at least 2 classes"},
		"infinite target":  {&Dataset{X: x(1, 2), Y: []float64{0, math.Inf(-1)}, Task: Regression}, "row 1: target -Inf"},
		"length mismatch":  {&Dataset{X: x(1, 2, 3), Y: []float64{0, 1}, Task: Regression}, "3 feature rows but 2 labels"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if err := Validate(&Dataset{X: x(1, 2), Y: []float64{0, 1}, Task: Classification, Classes: 2}); err != nil {
		t.Fatalf("good data: %v", err)
	}
}
