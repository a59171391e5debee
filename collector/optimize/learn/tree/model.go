package tree

import (
	"math"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// Forest is a trained decision tree (one tree) or random forest: its
// prediction is the mean of its trees' leaf predictions (class
// distributions, or values), as scikit-learn's predict_proba and predict
// average them. It is immutable and safe for concurrent use.
type Forest struct {
	task     learn.Task
	classes  int
	features int
	trees    []*tree
}

// Trees returns the number of trees.
func (m *Forest) Trees() int { return len(m.trees) }

// Nodes returns the number of nodes of all trees together.
func (m *Forest) Nodes() int {
	n := 0
	for _, t := range m.trees {
		n += t.nodes()
	}
	return n
}

// Predict writes the mean over the trees of the class distribution (or
// value) of the leaf x reaches. It implements learn.Model.
func (m *Forest) Predict(x []float64, out []float64) {
	width := 1
	if m.task == learn.Classification {
		width = m.classes
	}
	out = out[:width]
	clear(out)
	for _, t := range m.trees {
		for k, v := range t.leafValue(t.leaf(x)) {
			out[k] += v
		}
	}
	n := float64(len(m.trees))
	for k := range out {
		out[k] /= n
	}
}

// Boosted is a trained gradient-boosting model: raw scores are init plus
// rate times the sum of the stages' leaf values, one score column per
// class for a multinomial model, one otherwise; probabilities are the
// logistic of the score (binary) or the softmax of the scores
// (multinomial); a regressor's prediction is the score. It is immutable and
// safe for concurrent use.
type Boosted struct {
	task     learn.Task
	classes  int
	features int
	init     []float64 // per score column
	rate     float64
	// stages[s][k] is the tree of stage s for score column k.
	stages [][]*tree
}

// Stages returns the number of boosting stages.
func (m *Boosted) Stages() int { return len(m.stages) }

// Nodes returns the number of nodes of all trees together.
func (m *Boosted) Nodes() int {
	n := 0
	for _, st := range m.stages {
		for _, t := range st {
			n += t.nodes()
		}
	}
	return n
}

// raw writes the raw scores of x into s (len(m.init)).
func (m *Boosted) raw(x []float64, s []float64) {
	copy(s, m.init)
	for _, st := range m.stages {
		for k, t := range st {
			s[k] += m.rate * t.leafValue(t.leaf(x))[0]
		}
	}
}

// Predict writes the class probabilities (or the value) of x. It
// implements learn.Model.
func (m *Boosted) Predict(x []float64, out []float64) {
	switch {
	case m.task == learn.Regression:
		m.raw(x, out[:1])
	case m.classes == 2:
		var s [1]float64
		m.raw(x, s[:])
		p := sigmoid(s[0])
		out[0], out[1] = 1-p, p
	default:
		out = out[:m.classes]
		m.raw(x, out)
		softmax(out)
	}
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softmax replaces s by its softmax, in place.
func softmax(s []float64) {
	hi := math.Inf(-1)
	for _, v := range s {
		hi = max(hi, v)
	}
	var sum float64
	for k, v := range s {
		s[k] = math.Exp(v - hi)
		sum += s[k]
	}
	for k := range s {
		s[k] /= sum
	}
}
