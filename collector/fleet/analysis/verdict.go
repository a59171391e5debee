package analysis

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/drover-ml/drover/collector/drift"
)

// Decision is what a Verdict tells the fleet to do with a canary.
type Decision string

const (
	// Wait: not enough time or samples yet; check again later.
	Wait Decision = "wait"
	// Promote: the canary becomes the serving version.
	Promote Decision = "promote"
	// Abort: the canary is removed; the serving version stays.
	Abort Decision = "abort"
)

// Metric names in Comparisons and reasons.
const (
	MetricErrorRate  = "error_rate"  // server errors / (ok + server errors)
	MetricLatencyP99 = "latency_p99" // seconds, from drover.request.duration
	MetricAccuracy   = "accuracy"    // drover.eval, source labels
	MetricF1         = "f1"          // drover.eval, source labels
	MetricMSE        = "mse"         // drover.eval, source labels
)

// labelMetrics are the evaluation metrics compared, and whether higher is
// better (accuracy, F1: an absolute tolerance) or lower (MSE: relative).
var labelMetrics = []struct {
	name   string
	higher bool
}{{MetricAccuracy, true}, {MetricF1, true}, {MetricMSE, false}}

// Histogram is a binned distribution: Counts has len(Bounds)+1 buckets,
// bucket i being (Bounds[i-1], Bounds[i]] as in docs/schema.md.
type Histogram struct {
	Bounds []float64
	Counts []float64
}

// N is the number of observations in h.
func (h Histogram) N() uint64 {
	var n float64
	for _, c := range h.Counts {
		n += c
	}
	return uint64(n)
}

// Side is what one version sent since the canary started.
type Side struct {
	// Requests counts the requests the error rate judges: ok and server
	// errors (semconv.ServerErrorStatuses); client-caused outcomes are left
	// out, as in drift.
	Requests, ServerErrors uint64
	// Latency is drover.request.duration summed over hosts.
	Latency Histogram
	// Labels counts the labels joined to a sample (drover.feedback, status
	// joined): the observations behind Eval.
	Labels uint64
	// Eval holds the labels-source drover.eval values (accuracy, f1, mse,
	// ...) averaged over the window's minutes and hosts.
	Eval map[string]float64
}

// Observed is what Decide judges.
type Observed struct {
	Serving, Canary Side
	// Elapsed is how long the canary has served (now − its start).
	Elapsed time.Duration
}

// Comparison is one metric of both versions.
type Comparison struct {
	Metric            string
	Serving, Canary   float64
	ServingN, CanaryN uint64 // observations behind each value
	// Worse is how much worse the canary is: relative for the error rate,
	// latency and MSE ((canary − serving) / serving; +Inf when serving is
	// 0 and canary is not), absolute for accuracy and F1 (serving −
	// canary). Negative: the canary is better.
	Worse float64
	// P is the p-value of the error-rate and latency tests (NaN for the
	// label metrics, and for latency when the p99 is within the tolerance).
	P         float64
	Regressed bool
}

func (c Comparison) String() string {
	unit := func(v float64) string {
		switch c.Metric {
		case MetricErrorRate:
			return fmt.Sprintf("%.3g%%", 100*v)
		case MetricLatencyP99:
			return fmt.Sprintf("%.4gs", v)
		}
		return fmt.Sprintf("%.4g", v)
	}
	worse := fmt.Sprintf("%+.3g%%", 100*c.Worse)
	if c.Metric == MetricAccuracy || c.Metric == MetricF1 {
		worse = fmt.Sprintf("%+.3g", -c.Worse)
	}
	s := fmt.Sprintf("%s %s (canary, n=%d) vs %s (serving, n=%d), %s", c.Metric, unit(c.Canary), c.CanaryN,
		unit(c.Serving), c.ServingN, worse)
	if !math.IsNaN(c.P) {
		s += fmt.Sprintf(", p=%.2g", c.P)
	}
	return s
}

// Verdict is Decide's answer.
type Verdict struct {
	Decision Decision
	// Reason is one line for people and the desired state's history: for
	// Abort the metric that regressed and by how much, for Wait what is
	// missing, for Promote what was compared.
	Reason string
	// Metrics are the comparisons made, in the order error rate, latency,
	// accuracy, F1, MSE (those with enough samples on both sides).
	Metrics []Comparison
	// Missing lists what Wait waits for ("duration: 4m0s of 10m0s",
	// "requests: canary 120 of 500").
	Missing []string
	// Skipped lists metrics left out for too few samples (label metrics
	// without MinSamples joined labels on both sides).
	Skipped []string
}

// Decide judges a canary from what both versions sent. It is a pure
// function of its arguments; p should have passed Validate.
//
// The error rate is judged as soon as both sides have p.MinSamples
// requests and aborts at once when the canary is significantly worse than
// the tolerance allows (at level EarlyAlpha before p.Duration, Alpha
// after). Everything else waits until p.Duration has passed
// and both sides have p.MinSamples requests and latency observations:
// then the canary is aborted if its p99 latency, or a label metric that
// both sides have p.MinSamples joined labels for, regressed by more than
// p.MaxRegression, and promoted otherwise.
func Decide(o Observed, p Params) Verdict {
	var v Verdict
	min := p.MinSamples
	count := func(what string, s, c uint64) bool {
		ok := true
		if c < min {
			v.Missing = append(v.Missing, fmt.Sprintf("%s: canary %d of %d", what, c, min))
			ok = false
		}
		if s < min {
			v.Missing = append(v.Missing, fmt.Sprintf("%s: serving %d of %d", what, s, min))
			ok = false
		}
		return ok
	}
	if o.Elapsed < p.Duration {
		v.Missing = append(v.Missing, fmt.Sprintf("duration: %s of %s", o.Elapsed.Truncate(time.Second), p.Duration))
	}
	if count("requests", o.Serving.Requests, o.Canary.Requests) {
		alpha := Alpha
		if o.Elapsed < p.Duration {
			alpha = EarlyAlpha
		}
		c := errorRate(o.Serving, o.Canary, p.MaxRegression, alpha)
		v.Metrics = append(v.Metrics, c)
		if c.Regressed {
			return abort(v, c)
		}
	}
	latencyOK := count("latency observations", o.Serving.Latency.N(), o.Canary.Latency.N())
	if len(v.Missing) > 0 {
		v.Decision, v.Reason = Wait, "waiting for "+strings.Join(v.Missing, "; ")
		return v
	}
	if latencyOK {
		c := latency(o.Serving.Latency, o.Canary.Latency, p.MaxRegression)
		v.Metrics = append(v.Metrics, c)
		if c.Regressed {
			return abort(v, c)
		}
	}
	labels := o.Serving.Labels >= min && o.Canary.Labels >= min
	var names []string
	for _, m := range labelMetrics {
		s, sok := o.Serving.Eval[m.name]
		c, cok := o.Canary.Eval[m.name]
		if !sok || !cok {
			continue
		}
		if !labels {
			names = append(names, m.name)
			continue
		}
		cmp := labelMetric(m.name, m.higher, s, c, o.Serving.Labels, o.Canary.Labels, p.MaxRegression)
		v.Metrics = append(v.Metrics, cmp)
		if cmp.Regressed {
			return abort(v, cmp)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		v.Skipped = append(v.Skipped, fmt.Sprintf("%s: joined labels canary %d, serving %d, of %d",
			strings.Join(names, ", "), o.Canary.Labels, o.Serving.Labels, min))
	}
	parts := make([]string, len(v.Metrics))
	for i, c := range v.Metrics {
		parts[i] = c.String()
	}
	v.Decision = Promote
	v.Reason = "no regression beyond max_regression: " + strings.Join(parts, "; ")
	if len(v.Skipped) > 0 {
		v.Reason += "; not compared: " + strings.Join(v.Skipped, "; ")
	}
	return v
}

func abort(v Verdict, c Comparison) Verdict {
	v.Decision, v.Missing = Abort, nil
	v.Reason = "regressed: " + c.String()
	return v
}

// errorRate tests H0: the canary's server-error rate pc ≤ (1+δ)·ps against
// pc > (1+δ)·ps, one-sided, at level alpha, with the Agresti–Caffo
// adjusted Wald statistic (one error and one success added to each side,
// which keeps the variance positive when a side has no errors):
//
//	z = (p̃c − (1+δ)·p̃s) / √(p̃c(1−p̃c)/(nc+2) + (1+δ)²·p̃s(1−p̃s)/(ns+2))
func errorRate(s, c Side, delta, alpha float64) Comparison {
	ps, pc := rate(s), rate(c)
	as := (float64(s.ServerErrors) + 1) / (float64(s.Requests) + 2)
	ac := (float64(c.ServerErrors) + 1) / (float64(c.Requests) + 2)
	k := 1 + delta
	se := math.Sqrt(ac*(1-ac)/(float64(c.Requests)+2) + k*k*as*(1-as)/(float64(s.Requests)+2))
	z := (ac - k*as) / se
	pv := distuv.UnitNormal.Survival(z)
	return Comparison{Metric: MetricErrorRate, Serving: ps, Canary: pc, ServingN: s.Requests, CanaryN: c.Requests,
		Worse: relative(ps, pc), P: pv, Regressed: pv < alpha}
}

func rate(s Side) float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.ServerErrors) / float64(s.Requests)
}

// relative is (c − s) / s, 0 when both are 0 and +Inf when only s is.
func relative(s, c float64) float64 {
	if s == 0 {
		if c == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (c - s) / s
}

// latency compares the p99s, each interpolated inside its bucket
// (drift.Quantile; a p99 in the open last bucket reads as the last bound),
// and tests whether the difference is more than noise. The tolerated p99
// is t = max(serving p99 × (1+delta), serving p99 + LatencySlack); if the
// canary's p99 were at most t, at most 1 % of its observations would be
// above t. The canary regressed when its p99 exceeds t and its count of
// observations above t (interpolated inside their bucket) is improbable
// under that: P(X ≥ k), X ~ Binomial(n, 0.01), below Alpha. A p99 rests
// on the slowest 1 % — three requests of 300 — so without the test one
// pause of the host aborts a good canary.
func latency(s, c Histogram, delta float64) Comparison {
	qs := drift.Quantile(s.Bounds, s.Counts, 0.99)
	qc := drift.Quantile(c.Bounds, c.Counts, 0.99)
	cmp := Comparison{Metric: MetricLatencyP99, Serving: qs, Canary: qc, ServingN: s.N(), CanaryN: c.N(),
		Worse: relative(qs, qc), P: math.NaN()}
	t := math.Max(qs*(1+delta), qs+LatencySlack.Seconds())
	if !(qc > t) {
		return cmp
	}
	n := c.N()
	k := math.Floor(drift.CountAbove(c.Bounds, c.Counts, t) + 1e-9)
	if n == 0 || k < 1 {
		return cmp
	}
	// Survival(x) is P(X > x): P(X ≥ k) = Survival(k−1).
	cmp.P = distuv.Binomial{N: float64(n), P: 0.01}.Survival(k - 1)
	cmp.Regressed = cmp.P < Alpha
	return cmp
}

func labelMetric(name string, higher bool, s, c float64, ns, nc uint64, delta float64) Comparison {
	cmp := Comparison{Metric: name, Serving: s, Canary: c, ServingN: ns, CanaryN: nc, P: math.NaN()}
	if higher {
		cmp.Worse = s - c
		cmp.Regressed = s-c > delta
	} else {
		cmp.Worse = relative(s, c)
		cmp.Regressed = c > s*(1+delta)
	}
	return cmp
}
