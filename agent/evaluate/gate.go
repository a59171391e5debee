package evaluate

import (
	"fmt"
	"math"
	"strconv"

	"github.com/drover-ml/drover/shared/manifest"
)

// Decision is the outcome of Gate.
type Decision struct {
	// Admit is true when every gated metric passes.
	Admit bool
	// Reasons say why the version is refused, one per failed check, in a
	// stable order; empty when admitted.
	Reasons []string
	// Notes are checks that could not be made and did not block (a
	// max_regression without a serving version, or one whose own metric is
	// missing).
	Notes []string
}

// gateSlack absorbs floating-point noise in comparisons with thresholds.
const gateSlack = 1e-9

// Gate decides whether a candidate version may serve, from its golden-set
// result, the serving version's result on the same golden set (when
// haveCurrent) and the thresholds: gate (the version's manifest) overrides
// defaults (the agent's configuration) metric by metric; either may be nil.
//
// For each metric of max_regression, the candidate may be worse than the
// serving version by at most the threshold: lower for metrics where higher
// is better, higher for log_loss, mse and mae (manifest.Metrics). Each
// metric of min is an absolute floor, or a ceiling for those error metrics.
// A gated metric the candidate lacks (it could not be computed on the golden
// set) refuses it, as does a metric manifest.Metrics does not know; metrics
// that are not gated are not looked at. Without a serving version, or when
// the serving version lacks the metric, max_regression is not checked (a
// note says so). Comparisons allow 1e-9 of slack. Gate is a pure function.
func Gate(candidate, current Result, haveCurrent bool, gate *manifest.Gate, defaults *manifest.Gate) Decision {
	maxReg, floors := map[string]float64{}, map[string]float64{}
	for _, g := range []*manifest.Gate{defaults, gate} {
		if g == nil {
			continue
		}
		for k, v := range g.MaxRegression {
			maxReg[k] = v
		}
		for k, v := range g.Min {
			floors[k] = v
		}
	}
	var d Decision
	metric := func(r Result, name string) (float64, bool) {
		v, ok := r.Metrics[name]
		return v, ok && !math.IsNaN(v)
	}
	for _, name := range sortedKeys(maxReg) {
		limit := maxReg[name]
		higher, known := manifest.Metrics[name]
		cand, ok := metric(candidate, name)
		switch {
		case !known:
			d.Reasons = append(d.Reasons, fmt.Sprintf("max_regression names %q, which is not a metric the gate knows", name))
			continue
		case !ok:
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s could not be computed on the golden set (max_regression %s)", name, num(limit)))
			continue
		case !haveCurrent:
			d.Notes = append(d.Notes, fmt.Sprintf("%s %s: no serving version to compare with (max_regression %s)", name, num(cand), num(limit)))
			continue
		}
		cur, ok := metric(current, name)
		if !ok {
			d.Notes = append(d.Notes, fmt.Sprintf("%s %s: the serving version has no %s to compare with (max_regression %s)", name, num(cand), name, num(limit)))
			continue
		}
		worse, dir := cur-cand, "below"
		if !higher {
			worse, dir = cand-cur, "above"
		}
		if worse > limit+gateSlack {
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s %s is %s %s the serving version's %s (max_regression %s)",
				name, num(cand), num(worse), dir, num(cur), num(limit)))
		}
	}
	for _, name := range sortedKeys(floors) {
		bound := floors[name]
		higher, known := manifest.Metrics[name]
		cand, ok := metric(candidate, name)
		switch {
		case !known:
			d.Reasons = append(d.Reasons, fmt.Sprintf("min names %q, which is not a metric the gate knows", name))
		case !ok:
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s could not be computed on the golden set (min %s)", name, num(bound)))
		case higher && cand < bound-gateSlack:
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s %s is below the minimum %s", name, num(cand), num(bound)))
		case !higher && cand > bound+gateSlack:
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s %s is above the maximum %s (min is a ceiling for error metrics)", name, num(cand), num(bound)))
		}
	}
	d.Admit = len(d.Reasons) == 0
	return d
}

// num formats a metric value for a reason: 4 significant digits.
func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }
