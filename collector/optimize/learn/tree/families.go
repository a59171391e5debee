package tree

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

func init() {
	learn.Register(decisionTree{})
	learn.Register(randomForest{})
	learn.Register(gradientBoosting{})
}

// Family names, as a manifest's optimize.families names them.
const (
	DecisionTree     = "decision_tree"
	RandomForest     = "random_forest"
	GradientBoosting = "gradient_boosting"
)

// rngFor returns the generator of a fit with seed seed.
func rngFor(seed int64, family uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x7472656500000000|family))
}

func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// decisionTree is CART: Gini for classification, squared error for
// regression.
type decisionTree struct{}

var treeSpecs = map[string]paramSpec{
	"max_depth": depthSpec, "min_samples_split": splitSpec, "min_samples_leaf": leafSpec, "max_features": fractionSpec,
}

func (decisionTree) Name() string             { return DecisionTree }
func (decisionTree) Supports(learn.Task) bool { return true }

// Params: max_depth 0 is unlimited; max_features is the fraction of the
// features each split looks at (1: all).
func (decisionTree) Params(learn.Task) learn.Params {
	return learn.Params{"max_depth": 0, "min_samples_split": 2, "min_samples_leaf": 1, "max_features": 1}
}

func (decisionTree) DefaultGrid(learn.Task) learn.Grid {
	return learn.Grid{"max_depth": {2, 4, 8, 0}, "min_samples_leaf": {1, 5}}
}

func (f decisionTree) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, seed int64) (learn.Model, error) {
	p, err := resolve(DecisionTree, treeSpecs, f.Params(d.Task), p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fr, err := newFrame(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", DecisionTree, err)
	}
	cfg := growConfig{
		crit: squaredError, classes: d.Classes,
		maxDepth: int(p["max_depth"]), minSplit: int(p["min_samples_split"]), minLeaf: int(p["min_samples_leaf"]),
		maxFeatures: featuresPerSplit(p["max_features"], fr.d, d.Task),
	}
	if d.Task == learn.Classification {
		cfg.crit = gini
	}
	t := newGrower(fr, cfg, rngFor(seed, 1)).grow(fr.y, ones(fr.n))
	return &Forest{task: d.Task, classes: d.Classes, features: fr.d, trees: []*tree{t}}, nil
}

// randomForest bags CART trees: each on a bootstrap sample of the rows,
// each split looking at a random subset of the features.
type randomForest struct{}

var forestSpecs = map[string]paramSpec{
	"n_estimators": estimatorsSpec, "max_depth": depthSpec, "min_samples_leaf": leafSpec, "max_features": forestFeaturesSpec,
}

func (randomForest) Name() string             { return RandomForest }
func (randomForest) Supports(learn.Task) bool { return true }

// Params: max_features 0 is scikit-learn's default, sqrt(features) for
// classification and all features for regression (its default there is
// 1.0, written as such).
func (randomForest) Params(t learn.Task) learn.Params {
	mf := 0.0
	if t == learn.Regression {
		mf = 1
	}
	return learn.Params{"n_estimators": 100, "max_depth": 0, "min_samples_leaf": 1, "max_features": mf}
}

func (randomForest) DefaultGrid(learn.Task) learn.Grid {
	return learn.Grid{"n_estimators": {50, 100}, "max_depth": {0, 8}}
}

func (f randomForest) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, seed int64) (learn.Model, error) {
	p, err := resolve(RandomForest, forestSpecs, f.Params(d.Task), p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fr, err := newFrame(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RandomForest, err)
	}
	cfg := growConfig{
		crit: squaredError, classes: d.Classes,
		maxDepth: int(p["max_depth"]), minSplit: 2, minLeaf: int(p["min_samples_leaf"]),
		maxFeatures: featuresPerSplit(p["max_features"], fr.d, d.Task),
	}
	if d.Task == learn.Classification {
		cfg.crit = gini
	}
	rng := rngFor(seed, 2)
	g := newGrower(fr, cfg, rng)
	n := int(p["n_estimators"])
	m := &Forest{task: d.Task, classes: d.Classes, features: fr.d, trees: make([]*tree, 0, n)}
	w := make([]float64, fr.n)
	for range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clear(w)
		for range fr.n {
			w[rng.IntN(fr.n)]++
		}
		m.trees = append(m.trees, g.grow(fr.y, w))
	}
	return m, nil
}

// gradientBoosting is scikit-learn's GradientBoostingClassifier and
// GradientBoostingRegressor: regression trees (Friedman's MSE) fitted to
// the negative gradient of the log-loss (binary: one tree per stage from
// the log-odds of the prior; multinomial: one tree per class and stage from
// the log priors, softmax) or of the squared error (from the mean), leaves
// set by a Newton step for the log-loss.
type gradientBoosting struct{}

var boostSpecs = map[string]paramSpec{
	"n_estimators": estimatorsSpec, "learning_rate": rateSpec, "max_depth": depthSpec,
	"subsample": fractionSpec, "min_samples_leaf": leafSpec,
}

func (gradientBoosting) Name() string             { return GradientBoosting }
func (gradientBoosting) Supports(learn.Task) bool { return true }

func (gradientBoosting) Params(learn.Task) learn.Params {
	return learn.Params{"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "subsample": 1, "min_samples_leaf": 1}
}

func (gradientBoosting) DefaultGrid(learn.Task) learn.Grid {
	return learn.Grid{"n_estimators": {50, 100}, "learning_rate": {0.05, 0.1}, "max_depth": {2, 3}}
}

// probEps bounds the prior probabilities the initial scores come from (the
// float64 machine epsilon, as scikit-learn clips them).
const probEps = 2.220446049250313e-16

func (f gradientBoosting) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, seed int64) (learn.Model, error) {
	p, err := resolve(GradientBoosting, boostSpecs, f.Params(d.Task), p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fr, err := newFrame(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", GradientBoosting, err)
	}
	n := fr.n
	rng := rngFor(seed, 3)
	g := newGrower(fr, growConfig{
		crit: friedmanMSE, maxDepth: int(p["max_depth"]), minSplit: 2, minLeaf: int(p["min_samples_leaf"]), maxFeatures: fr.d,
	}, rng)
	stages := int(p["n_estimators"])
	m := &Boosted{task: d.Task, classes: d.Classes, features: fr.d, rate: p["learning_rate"], stages: make([][]*tree, 0, stages)}

	cols := 1 // score columns
	if d.Task == learn.Classification && d.Classes > 2 {
		cols = d.Classes
	}
	// Initial scores.
	m.init = make([]float64, cols)
	switch {
	case d.Task == learn.Regression:
		for _, y := range fr.y {
			m.init[0] += y
		}
		m.init[0] /= float64(n)
	case cols == 1:
		pos := 0.0
		for _, y := range fr.y {
			pos += y
		}
		pr := min(max(pos/float64(n), probEps), 1-probEps)
		m.init[0] = math.Log(pr / (1 - pr))
	default:
		prior := make([]float64, cols)
		for _, y := range fr.y {
			prior[int(y)]++
		}
		var mean float64
		for k := range prior {
			prior[k] = math.Log(min(max(prior[k]/float64(n), probEps), 1-probEps))
			mean += prior[k]
		}
		mean /= float64(cols)
		for k := range prior {
			m.init[k] = prior[k] - mean
		}
	}
	raw := make([]float64, n*cols) // raw[r*cols+k]
	for r := range n {
		copy(raw[r*cols:], m.init)
	}

	inBag := max(1, int(p["subsample"]*float64(n)))
	w := make([]float64, n)
	perm := make([]int, n)
	resid := make([]float64, n)
	prob := make([]float64, n*cols)
	for range stages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The stage's sample: every row, or inBag rows drawn without
		// replacement.
		if inBag >= n {
			for r := range w {
				w[r] = 1
			}
		} else {
			clear(w)
			for r := range perm {
				perm[r] = r
			}
			for i := range inBag {
				j := i + rng.IntN(n-i)
				perm[i], perm[j] = perm[j], perm[i]
				w[perm[i]] = 1
			}
		}
		// Probabilities from the scores before this stage.
		if d.Task == learn.Classification {
			for r := range n {
				if cols == 1 {
					prob[r] = sigmoid(raw[r])
				} else {
					copy(prob[r*cols:(r+1)*cols], raw[r*cols:(r+1)*cols])
					softmax(prob[r*cols : (r+1)*cols])
				}
			}
		}
		stage := make([]*tree, cols)
		for k := range cols {
			for r := range n {
				switch {
				case d.Task == learn.Regression:
					resid[r] = fr.y[r] - raw[r]
				case cols == 1:
					resid[r] = fr.y[r] - prob[r]
				default:
					yk := 0.0
					if int(fr.y[r]) == k {
						yk = 1
					}
					resid[r] = yk - prob[r*cols+k]
				}
			}
			t := g.grow(resid, w)
			if d.Task == learn.Classification {
				newtonLeaves(t, g.rowLeaf, w, resid, prob, cols, k)
			}
			for r := range n {
				raw[r*cols+k] += m.rate * t.leafValue(t.leafOfRow(fr, r))[0]
			}
			stage[k] = t
		}
		m.stages = append(m.stages, stage)
	}
	return m, nil
}

// newtonLeaves sets each leaf of t to the Newton step of the log-loss over
// its in-sample rows: sum(residual) / sum(p(1-p)), times (K-1)/K for a
// multinomial model of K classes (0 where the denominator vanishes).
func newtonLeaves(t *tree, rowLeaf []int32, w, resid, prob []float64, cols, k int) {
	num := make([]float64, t.nodes())
	den := make([]float64, t.nodes())
	for r, wr := range w {
		if wr == 0 {
			continue
		}
		l := rowLeaf[r]
		p := prob[r*cols+k]
		num[l] += wr * resid[r]
		den[l] += wr * p * (1 - p)
	}
	scale := 1.0
	if cols > 1 {
		scale = float64(cols-1) / float64(cols)
	}
	for i := range t.nodes() {
		if t.feature[i] >= 0 {
			continue
		}
		v := 0.0
		if math.Abs(den[i]) >= 1e-150 {
			v = scale * num[i] / den[i]
		}
		t.value[i] = v
	}
}
