// Package learn trains the model families of Drover's built-in optimizer on
// gonum (logistic regression, linear and ridge regression, decision tree,
// random forest, gradient-boosted trees), scores them with the metrics a
// version's manifest may name, and searches a grid of their hyper-parameters
// with k-fold cross-validation on up to max_procs cores.
//
// Everything here is deterministic for a seed and honours its context: a
// cancelled context (the job's lease lost) stops a search within one fit.
package learn

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// Task is what a model predicts.
type Task int

const (
	// Classification predicts one of Dataset.Classes classes, 0..K-1.
	Classification Task = iota
	// Regression predicts one real value.
	Regression
)

func (t Task) String() string {
	if t == Regression {
		return "regression"
	}
	return "classification"
}

// Dataset is a table of rows: X is n×d (features in the model's input
// order), Y the target of each row: for Classification the class index
// 0..Classes-1 as a float64, for Regression the value.
type Dataset struct {
	X       *mat.Dense
	Y       []float64
	Task    Task
	Classes int // K for Classification (≥ 2); 0 for Regression
}

// Rows returns the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

// Features returns the number of features.
func (d *Dataset) Features() int {
	if d.X == nil {
		return 0
	}
	_, c := d.X.Dims()
	return c
}

// Subset returns the rows idx of d, in that order (copied).
func (d *Dataset) Subset(idx []int) *Dataset {
	c := d.Features()
	x := mat.NewDense(max(len(idx), 1), max(c, 1), nil)
	y := make([]float64, len(idx))
	for i, r := range idx {
		x.SetRow(i, d.X.RawRowView(r))
		y[i] = d.Y[r]
	}
	if len(idx) == 0 {
		x = nil
	}
	return &Dataset{X: x, Y: y, Task: d.Task, Classes: d.Classes}
}

// Params are one point of a grid: hyper-parameter name to value. Integer
// parameters (max_depth, n_estimators, ...) are whole floats.
type Params map[string]float64

// String writes p sorted by name, e.g. "C=1 max_iter=200".
func (p Params) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%g", k, p[k])
	}
	return s
}

// Grid maps each hyper-parameter to the values to try; its points are the
// cartesian product (Points).
type Grid map[string][]float64

// Model is a trained model.
type Model interface {
	// Predict writes the prediction for one row x (len Features) into out:
	// for Classification the probability of each class (len Classes), for
	// Regression the value (len 1). It is safe for concurrent use.
	Predict(x []float64, out []float64)
}

// Family is a model family: it knows its hyper-parameters and trains a
// Model for one point of its grid.
type Family interface {
	// Name is the family's name in a manifest's optimize.families
	// ("logistic_regression", "linear_regression", "ridge",
	// "decision_tree", "random_forest", "gradient_boosting").
	Name() string
	// Supports reports whether the family can learn task t.
	Supports(t Task) bool
	// Params lists the hyper-parameters the family accepts, with each
	// one's default; a grid naming any other is refused.
	Params(t Task) Params
	// DefaultGrid is the grid searched when a manifest names the family
	// without a grid (or the family was detected from an ONNX graph).
	DefaultGrid(t Task) Grid
	// Fit trains on d with the hyper-parameters p (missing ones take
	// their defaults) and the random seed seed. It returns ctx.Err() when
	// ctx is cancelled while it runs, and a clear error for data it
	// cannot learn from.
	Fit(ctx context.Context, d *Dataset, p Params, seed int64) (Model, error)
}

var (
	familiesMu sync.RWMutex
	families   = map[string]Family{}
)

// Register makes f known by its Name; the families of this package and of
// package learn's subpackages register themselves in init. Registering a
// name twice panics.
func Register(f Family) {
	familiesMu.Lock()
	defer familiesMu.Unlock()
	if _, dup := families[f.Name()]; dup {
		panic("learn: family " + f.Name() + " registered twice")
	}
	families[f.Name()] = f
}

// Lookup returns the family named name.
func Lookup(name string) (Family, bool) {
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	f, ok := families[name]
	return f, ok
}

// FamilyNames lists the registered families, sorted.
func FamilyNames() []string {
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
