package learn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Interval is a confidence interval at Level (0.95 for Bootstrap).
type Interval struct {
	Low, High, Level float64
}

// BootstrapResamples is the number of resamples Bootstrap draws when asked
// for none.
const BootstrapResamples = 1000

// Bootstrap returns a 95 % confidence interval of metric(newPreds) −
// metric(oldPreds) on the rows of d, by paired resampling: each of
// resamples (BootstrapResamples when ≤ 0) draws len(d.Y) rows with
// replacement, scores both prediction sets on the same draw and keeps the
// difference; the interval is the 2.5th and 97.5th percentiles. Draws the
// metric cannot score (auc on a draw with a single class) are skipped;
// when more than half are, it fails. Deterministic for a seed.
func Bootstrap(metric string, d *Dataset, oldPreds, newPreds [][]float64, resamples int, seed int64) (Interval, error) {
	if resamples <= 0 {
		resamples = BootstrapResamples
	}
	n := d.Rows()
	if len(oldPreds) != n || len(newPreds) != n {
		return Interval{}, fmt.Errorf("bootstrap: %d and %d predictions for %d rows", len(oldPreds), len(newPreds), n)
	}
	if _, err := Score(metric, d, oldPreds); err != nil {
		return Interval{}, fmt.Errorf("bootstrap: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xb5ad4eceda1ce2a9))
	idx := make([]int, n)
	oldS, newS := make([][]float64, n), make([][]float64, n)
	sample := &Dataset{Task: d.Task, Classes: d.Classes, Y: make([]float64, n), X: d.X}
	diffs := make([]float64, 0, resamples)
	for range resamples {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		for i, r := range idx {
			sample.Y[i], oldS[i], newS[i] = d.Y[r], oldPreds[r], newPreds[r]
		}
		a, err := Score(metric, sample, oldS)
		if err != nil {
			continue
		}
		b, err := Score(metric, sample, newS)
		if err != nil {
			continue
		}
		diffs = append(diffs, b-a)
	}
	if len(diffs) < resamples/2 || len(diffs) == 0 {
		return Interval{}, errors.New("bootstrap: the metric could not score most resamples (too few rows of some class)")
	}
	slices.Sort(diffs)
	return Interval{Low: percentile(diffs, 0.025), High: percentile(diffs, 0.975), Level: 0.95}, nil
}

// percentile interpolates linearly between the closest ranks of sorted s
// (numpy's default "linear" method).
func percentile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	f := pos - float64(lo)
	return s[lo] + f*(s[lo+1]-s[lo])
}
