package tree

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// synthetic returns n rows of 4 features in [-1, 1] and their target:
// binary (a curved boundary), three classes (regions), or a smooth
// regression function, each with a little label noise.
func synthetic(kind string, n int, seed uint64) *learn.Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := mat.NewDense(n, 4, nil)
	y := make([]float64, n)
	d := &learn.Dataset{X: x, Y: y}
	for i := range n {
		row := make([]float64, 4)
		for j := range row {
			// Values on a grid of 1/64 so some ties occur.
			row[j] = math.Round((rng.Float64()*2-1)*64) / 64
		}
		x.SetRow(i, row)
		switch kind {
		case "binary":
			d.Task, d.Classes = learn.Classification, 2
			if row[0]+row[1]*row[1]-0.3 > 0 {
				y[i] = 1
			}
			if rng.Float64() < 0.03 {
				y[i] = 1 - y[i]
			}
		case "multiclass":
			d.Task, d.Classes = learn.Classification, 3
			switch {
			case row[0] < -0.3:
				y[i] = 0
			case row[1] > 0.1:
				y[i] = 1
			default:
				y[i] = 2
			}
			if rng.Float64() < 0.03 {
				y[i] = float64(rng.IntN(3))
			}
		case "regression":
			d.Task = learn.Regression
			y[i] = math.Sin(2.5*row[0]) + row[1]*row[1] + 0.5*row[2] + 0.05*rng.NormFloat64()
		}
	}
	return d
}

func predictAll(m learn.Model, d *learn.Dataset) [][]float64 {
	w := 1
	if d.Task == learn.Classification {
		w = d.Classes
	}
	out := make([][]float64, d.Rows())
	for i := range out {
		out[i] = make([]float64, w)
		m.Predict(d.X.RawRowView(i), out[i])
	}
	return out
}

func fit(t *testing.T, family string, d *learn.Dataset, p learn.Params, seed int64) learn.Model {
	t.Helper()
	f, ok := learn.Lookup(family)
	if !ok {
		t.Fatalf("family %s is not registered", family)
	}
	m, err := f.Fit(context.Background(), d, p, seed)
	if err != nil {
		t.Fatalf("fit %s %v: %v", family, p, err)
	}
	return m
}

// TestFamiliesLearn trains each family on each task and scores it on rows
// it did not see.
func TestFamiliesLearn(t *testing.T) {
	small := learn.Params{"n_estimators": 30}
	cases := []struct {
		family, kind string
		params       learn.Params
		metric       string
		min          float64
	}{
		{DecisionTree, "binary", learn.Params{"max_depth": 6}, "accuracy", 0.85},
		{DecisionTree, "multiclass", learn.Params{"max_depth": 6}, "accuracy", 0.88},
		{DecisionTree, "regression", learn.Params{"max_depth": 8, "min_samples_leaf": 3}, "r2", 0.75},
		{RandomForest, "binary", small, "accuracy", 0.88},
		{RandomForest, "multiclass", small, "accuracy", 0.9},
		{RandomForest, "regression", small, "r2", 0.85},
		{GradientBoosting, "binary", learn.Params{"n_estimators": 60}, "accuracy", 0.88},
		{GradientBoosting, "multiclass", learn.Params{"n_estimators": 40}, "accuracy", 0.9},
		{GradientBoosting, "regression", learn.Params{"n_estimators": 100, "subsample": 0.8}, "r2", 0.9},
	}
	for _, tc := range cases {
		t.Run(tc.family+"/"+tc.kind, func(t *testing.T) {
			train, test := synthetic(tc.kind, 400, 1), synthetic(tc.kind, 300, 2)
			m := fit(t, tc.family, train, tc.params, 42)
			score, err := learn.Score(tc.metric, test, predictAll(m, test))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: held-out %s = %.3f", tc.family, tc.kind, tc.metric, score)
			if score < tc.min {
				t.Errorf("held-out %s = %.3f, want at least %.2f", tc.metric, score, tc.min)
			}
		})
	}
}

// TestPerfectFitUnlimitedTree checks CART's limits: an unlimited tree fits
// its (noise-free, distinct) training rows exactly, max_depth caps the
// depth, and min_samples_leaf bounds every leaf.
func TestPerfectFitUnlimitedTree(t *testing.T) {
	d := synthetic("multiclass", 300, 3)
	m := fit(t, DecisionTree, d, nil, 1).(*Forest)
	// Duplicated rows with different labels could not be fit; the grid of
	// 1/64 in 4 dimensions makes them unlikely, so allow none.
	acc, _ := learn.Score("accuracy", d, predictAll(m, d))
	if acc != 1 {
		t.Errorf("training accuracy of an unlimited tree = %v, want 1", acc)
	}
	shallow := fit(t, DecisionTree, d, learn.Params{"max_depth": 2}, 1).(*Forest)
	if got := depth(shallow.trees[0], 0); got != 2 {
		t.Errorf("max_depth 2 grew depth %d", got)
	}
	leafy := fit(t, DecisionTree, d, learn.Params{"min_samples_leaf": 20}, 1).(*Forest)
	counts := map[int]int{}
	for i := range d.Rows() {
		counts[leafy.trees[0].leaf(d.X.RawRowView(i))]++
	}
	for leaf, c := range counts {
		if c < 20 {
			t.Errorf("leaf %d holds %d training rows, min_samples_leaf is 20", leaf, c)
		}
	}
}

func depth(t *tree, n int32) int {
	if t.feature[n] < 0 {
		return 0
	}
	return 1 + max(depth(t, t.left[n]), depth(t, t.right[n]))
}

// TestDeterministic: the same seed gives the same model, another seed a
// different forest.
func TestDeterministic(t *testing.T) {
	d := synthetic("binary", 200, 4)
	for _, family := range []string{DecisionTree, RandomForest, GradientBoosting} {
		p := learn.Params{"n_estimators": 10}
		if family == DecisionTree {
			p = learn.Params{"max_features": 0.5}
		}
		if family == GradientBoosting {
			p["subsample"] = 0.7
		}
		a, b := fit(t, family, d, p, 9), fit(t, family, d, p, 9)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two fits with seed 9 differ", family)
		}
		if c := fit(t, family, d, p, 10); reflect.DeepEqual(a, c) {
			t.Errorf("%s: seeds 9 and 10 give the same model", family)
		}
	}
}

// TestCancelStopsForest: a cancelled context stops a forest between trees.
func TestCancelStopsForest(t *testing.T) {
	d := synthetic("regression", 300, 5)
	for _, family := range []string{RandomForest, GradientBoosting} {
		f, _ := learn.Lookup(family)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, err := f.Fit(ctx, d, learn.Params{"n_estimators": 10000}, 1)
		if !errors.Is(err, context.Canceled) || m != nil {
			t.Errorf("%s: fit with a cancelled context = %v, %v; want context.Canceled", family, m, err)
		}
	}
	// Cancelled while it runs: a context that reports cancellation after
	// a few checks stops the fit there, long before 10000 trees.
	ctx := &countdownCtx{Context: context.Background(), left: 5}
	f, _ := learn.Lookup(RandomForest)
	if _, err := f.Fit(ctx, d, learn.Params{"n_estimators": 10000}, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("fit cancelled mid-way: %v", err)
	}
	if ctx.checks > 7 {
		t.Errorf("the fit checked its context %d times after being cancelled at the 5th", ctx.checks)
	}
}

// countdownCtx is cancelled once Err has been called left times.
type countdownCtx struct {
	context.Context
	left, checks int
}

func (c *countdownCtx) Err() error {
	c.checks++
	if c.checks > c.left {
		return context.Canceled
	}
	return nil
}

func TestBadParamsAndData(t *testing.T) {
	d := synthetic("binary", 50, 6)
	cases := []struct {
		family string
		p      learn.Params
		want   string
	}{
		{DecisionTree, learn.Params{"n_estimators": 5}, `unknown parameter "n_estimators"`},
		{DecisionTree, learn.Params{"max_depth": 2.5}, "must be a whole number"},
		{RandomForest, learn.Params{"min_samples_leaf": 0}, "outside"},
		{RandomForest, learn.Params{"max_features": 1.5}, "outside"},
		{GradientBoosting, learn.Params{"learning_rate": 0}, "outside (0"},
		{GradientBoosting, learn.Params{"subsample": math.NaN()}, "not a finite number"},
	}
	for _, tc := range cases {
		f, _ := learn.Lookup(tc.family)
		_, err := f.Fit(context.Background(), d, tc.p, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err = %v, want %q", tc.family, tc.p, err, tc.want)
		}
	}
	bad := synthetic("binary", 20, 6)
	bad.X.Set(3, 1, math.Inf(1))
	f, _ := learn.Lookup(RandomForest)
	if _, err := f.Fit(context.Background(), bad, nil, 1); err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Errorf("non-finite feature: err = %v", err)
	}
}

// TestRegistered checks the families' names, defaults and grids.
func TestRegistered(t *testing.T) {
	for _, name := range []string{DecisionTree, RandomForest, GradientBoosting} {
		f, ok := learn.Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		for _, task := range []learn.Task{learn.Classification, learn.Regression} {
			if !f.Supports(task) {
				t.Errorf("%s does not support %s", name, task)
			}
			defaults := f.Params(task)
			for p := range f.DefaultGrid(task) {
				if _, ok := defaults[p]; !ok {
					t.Errorf("%s: grid parameter %s has no default", name, p)
				}
			}
		}
	}
	if got := (randomForest{}).Params(learn.Regression)["max_features"]; got != 1 {
		t.Errorf("random forest regression max_features default = %v, want 1", got)
	}
	if got := featuresPerSplit(0, 16, learn.Classification); got != 4 {
		t.Errorf("sqrt features of 16 = %d", got)
	}
}

// TestThreshold: every threshold separates its two neighbours in float32.
func TestThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	one := float32(1)
	pairs := [][2]float32{{0, 1}, {one, math.Nextafter32(one, 2)}, {-math.MaxFloat32, math.MaxFloat32}, {-1e-40, 1e-40}}
	for range 10000 {
		a := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10)))
		b := math.Nextafter32(a, float32(math.Inf(1)))
		if rng.IntN(2) == 0 {
			b = a + float32(rng.Float64())
		}
		if b > a {
			pairs = append(pairs, [2]float32{a, b})
		}
	}
	for _, p := range pairs {
		th := threshold(p[0], p[1])
		if !(p[0] <= th && th < p[1]) {
			t.Fatalf("threshold(%v, %v) = %v", p[0], p[1], th)
		}
	}
}

// benchData is 5000 rows of 20 features, classification or regression.
func benchData(task learn.Task) *learn.Dataset {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, f = 5000, 20
	x := mat.NewDense(n, f, nil)
	y := make([]float64, n)
	for i := range n {
		s := 0.0
		for j := range f {
			v := rng.NormFloat64()
			x.Set(i, j, v)
			if j < 5 {
				s += v * float64(j+1)
			}
		}
		y[i] = s + rng.NormFloat64()
		if task == learn.Classification {
			y[i] = float64(min(2, max(0, int(s/4)+1)))
		}
	}
	d := &learn.Dataset{X: x, Y: y, Task: task}
	if task == learn.Classification {
		d.Classes = 3
	}
	return d
}

// BenchmarkFit fits each family's default point on 5000×20 rows (compare
// with scikit-learn's fit of the same point: `go test -bench Fit`).
func BenchmarkFit(b *testing.B) {
	for _, task := range []learn.Task{learn.Classification, learn.Regression} {
		d := benchData(task)
		for _, name := range []string{DecisionTree, RandomForest, GradientBoosting} {
			f, _ := learn.Lookup(name)
			b.Run(name+"/"+task.String(), func(b *testing.B) {
				for b.Loop() {
					if _, err := f.Fit(context.Background(), d, nil, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
