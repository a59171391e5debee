package learn

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Metric names a manifest's optimize.metric may use.
const (
	MetricAccuracy = "accuracy"
	MetricF1Macro  = "f1_macro"
	MetricAUC      = "auc"
	MetricLogLoss  = "log_loss"
	MetricR2       = "r2"
	MetricMSE      = "mse"
	MetricMAE      = "mae"
)

// metricTasks says which task each metric scores.
var metricTasks = map[string]Task{
	MetricAccuracy: Classification,
	MetricF1Macro:  Classification,
	MetricAUC:      Classification,
	MetricLogLoss:  Classification,
	MetricR2:       Regression,
	MetricMSE:      Regression,
	MetricMAE:      Regression,
}

// logLossEps clips probabilities away from 0 and 1 in log_loss, as
// scikit-learn's log_loss does.
const logLossEps = 1e-15

// Metrics lists the metric names, sorted.
func Metrics() []string {
	names := make([]string, 0, len(metricTasks))
	for n := range metricTasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LowerIsBetter reports whether a lower value of metric is better (the
// losses log_loss, mse and mae).
func LowerIsBetter(metric string) bool {
	switch metric {
	case MetricLogLoss, MetricMSE, MetricMAE:
		return true
	}
	return false
}

// Better reports whether score a is strictly better than b in metric's
// direction. NaN is never better.
func Better(metric string, a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	if LowerIsBetter(metric) {
		return a < b
	}
	return a > b
}

// DefaultMetric is the metric searched when a manifest names none:
// accuracy for classification, r2 for regression.
func DefaultMetric(t Task) string {
	if t == Regression {
		return MetricR2
	}
	return MetricAccuracy
}

// CheckMetric returns a clear error when metric is unknown or does not
// score task t.
func CheckMetric(metric string, t Task) error {
	mt, ok := metricTasks[metric]
	if !ok {
		return fmt.Errorf("unknown metric %q (known: %s)", metric, strings.Join(Metrics(), ", "))
	}
	if mt != t {
		return fmt.Errorf("metric %q scores %s models; this model does %s", metric, mt, t)
	}
	return nil
}

// Score computes metric on the rows of d from their predictions: preds[i]
// is, for classification, the probability of each class of row i (len
// d.Classes), for regression the predicted value (len 1). Classification
// metrics other than auc and log_loss use the most probable class (the
// lowest index on ties). auc is ROC AUC for two classes and the macro
// average of one-vs-rest AUCs for more (scikit-learn's
// roc_auc_score(multi_class="ovr", average="macro")); it needs every class
// among the rows. Score is a pure function, safe for concurrent use.
func Score(metric string, d *Dataset, preds [][]float64) (float64, error) {
	if err := CheckMetric(metric, d.Task); err != nil {
		return 0, err
	}
	n := d.Rows()
	if n == 0 {
		return 0, errors.New("score: no rows")
	}
	if len(preds) != n {
		return 0, fmt.Errorf("score: %d predictions for %d rows", len(preds), n)
	}
	want := 1
	if d.Task == Classification {
		want = d.Classes
	}
	for i, p := range preds {
		if len(p) != want {
			return 0, fmt.Errorf("score: prediction %d has %d values, want %d", i, len(p), want)
		}
	}
	switch metric {
	case MetricAccuracy:
		hit := 0
		for i, p := range preds {
			if argmax(p) == int(d.Y[i]) {
				hit++
			}
		}
		return float64(hit) / float64(n), nil
	case MetricF1Macro:
		return f1Macro(d, preds), nil
	case MetricAUC:
		return aucScore(d, preds)
	case MetricLogLoss:
		var sum float64
		for i, p := range preds {
			var tot float64
			for _, v := range p {
				tot += v
			}
			q := p[int(d.Y[i])]
			if tot > 0 {
				q /= tot
			}
			sum -= math.Log(min(max(q, logLossEps), 1-logLossEps))
		}
		return sum / float64(n), nil
	case MetricR2:
		var mean float64
		for _, y := range d.Y {
			mean += y
		}
		mean /= float64(n)
		var res, tot float64
		for i, p := range preds {
			res += (d.Y[i] - p[0]) * (d.Y[i] - p[0])
			tot += (d.Y[i] - mean) * (d.Y[i] - mean)
		}
		if tot == 0 {
			// scikit-learn's force_finite: a perfect fit of a constant
			// target is 1, anything else 0.
			if res == 0 {
				return 1, nil
			}
			return 0, nil
		}
		return 1 - res/tot, nil
	case MetricMSE, MetricMAE:
		var sum float64
		for i, p := range preds {
			e := d.Y[i] - p[0]
			if metric == MetricMSE {
				sum += e * e
			} else {
				sum += math.Abs(e)
			}
		}
		return sum / float64(n), nil
	}
	return 0, fmt.Errorf("unknown metric %q", metric)
}

// argmax returns the index of the largest value, the lowest on ties.
func argmax(p []float64) int {
	best := 0
	for j, v := range p {
		if v > p[best] {
			best = j
		}
	}
	return best
}

// f1Macro averages the F1 score of every class that occurs among the true
// or the predicted labels (scikit-learn's f1_score(average="macro")).
func f1Macro(d *Dataset, preds [][]float64) float64 {
	k := d.Classes
	tp, fp, fn := make([]int, k), make([]int, k), make([]int, k)
	seen := make([]bool, k)
	for i, p := range preds {
		y, h := int(d.Y[i]), argmax(p)
		seen[y], seen[h] = true, true
		if y == h {
			tp[y]++
		} else {
			fp[h]++
			fn[y]++
		}
	}
	var sum float64
	var classes int
	for c := range k {
		if !seen[c] {
			continue
		}
		classes++
		if den := 2*tp[c] + fp[c] + fn[c]; den > 0 {
			sum += 2 * float64(tp[c]) / float64(den)
		}
	}
	return sum / float64(classes)
}

// aucScore is ROC AUC (binary) or the macro one-vs-rest average.
func aucScore(d *Dataset, preds [][]float64) (float64, error) {
	scores := make([]float64, len(preds))
	pos := make([]bool, len(preds))
	if d.Classes == 2 {
		for i, p := range preds {
			scores[i], pos[i] = p[1], d.Y[i] == 1
		}
		return rocAUC(scores, pos)
	}
	var sum float64
	for c := range d.Classes {
		for i, p := range preds {
			scores[i], pos[i] = p[c], int(d.Y[i]) == c
		}
		a, err := rocAUC(scores, pos)
		if err != nil {
			return 0, fmt.Errorf("class %d: %w", c, err)
		}
		sum += a
	}
	return sum / float64(d.Classes), nil
}

// rocAUC is the area under the ROC curve: the probability that a random
// positive scores above a random negative, ties counting one half (the
// Mann-Whitney U statistic with mid-ranks).
func rocAUC(scores []float64, pos []bool) (float64, error) {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var npos, nneg int
	var rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // mean of the 1-based ranks i+1..j
		for _, r := range idx[i:j] {
			if pos[r] {
				npos++
				rankSum += mid
			}
		}
		i = j
	}
	nneg = len(scores) - npos
	if npos == 0 || nneg == 0 {
		return 0, errors.New("auc needs both positive and negative rows")
	}
	u := rankSum - float64(npos)*float64(npos+1)/2
	return u / (float64(npos) * float64(nneg)), nil
}
