package drift

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/store"
)

// The verdict: given what a check read of its two windows (checkData),
// which features and signals drifted, and whether the check did. Pure: no
// I/O, no clock; reads.go reads the windows, checker.go records the result.

// Window is a half-open time range [Start, End).
type Window struct {
	Start, End time.Time
}

func (w Window) String() string {
	return fmt.Sprintf("[%s, %s)", w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339))
}

// FeatureResult is the comparison of one feature's binned distribution.
type FeatureResult struct {
	Feature string
	// Bounds are the histogram bounds shared by both windows.
	Bounds []float64
	// Reference and Current are the bucket counts (Reference: expected
	// counts scaled to Current's total for the manifest reference).
	Reference, Current []float64
	// RefCount and CurCount are the observations in each window.
	RefCount, CurCount uint64
	// Verdict is false when the feature was not judged: NoVerdict says why.
	Verdict   bool
	NoVerdict string
	// Categorical features (bounds 0, 1, …, n−1) also get Chi2 and
	// Chi2P; KS and Wasserstein are computed for numeric features only.
	Categorical              bool
	PSI, JS, KS, Wasserstein float64
	Chi2, Chi2P              float64
	// Drifted: PSI ≥ PSIThreshold or JS ≥ JSThreshold (only with Verdict).
	Drifted bool
}

// Signal is a metric or operational signal: evaluation metric
// degradation, error rate increase or p99 latency ratio.
type Signal struct {
	// Test is store.DriftTestMetric, DriftTestErrorRate or DriftTestP99.
	Test string
	// Name is "<metric>/<source>" for evaluation metrics, empty otherwise.
	Name string
	// Value is the degradation (drop, relative increase, rate increase or
	// latency ratio); Current and Reference are the compared values.
	Value, Current, Reference, Threshold float64
	Drifted                              bool
	// Samples is the smaller window's count of what the signal is computed
	// from: requests (error rate, and metrics not from labels), latency
	// observations (p99) or joined labels (metrics of source labels).
	Samples uint64
	// NoVerdict says why the signal was not judged (too few samples in
	// either window: below Policy.MinRequests or MinLabels); such a
	// signal never drifts and its Value is NaN.
	NoVerdict string
}

// Result is one check of one model version.
type Result struct {
	Model, Version string
	// Time is when the check ran (its now).
	Time time.Time
	// Window is the current window; ReferenceWindow the first window (also
	// used for signals with the manifest reference). Reference describes
	// what distributions were compared with.
	Window, ReferenceWindow Window
	Reference               string
	// Features are sorted by name.
	Features []FeatureResult
	// DatasetVerdict is false when no feature had a verdict.
	DatasetVerdict bool
	// DriftedShare is the share of features with a verdict that drifted.
	DriftedShare   float64
	DatasetDrifted bool
	Signals        []Signal
	// Drifted is DatasetDrifted or any signal drifted: what the Detector
	// counts. Reasons say why, one line each.
	Drifted bool
	Reasons []string
}

// hist is one histogram of one window, summed bucket by bucket over hosts
// and over the delta and cumulative sources.
type hist struct {
	bounds []float64
	counts []float64
	n      uint64 // observations: the sum of counts
	mixed  bool   // the window held several bounds; these have the most observations
}

// evalKey names an evaluation metric: drover.eval.metric and
// drover.eval.source.
type evalKey struct{ metric, source string }

// reqCounts are the drover.requests of a window that the error rate
// judges: total counts ok and server errors (semconv.ServerErrorStatuses),
// errors the server errors; client-caused outcomes are in neither.
type reqCounts struct{ errors, total float64 }

// windowData is what a check reads of one window of a model version.
type windowData struct {
	// features holds the drover.distribution histogram of each feature.
	features map[string]*hist
	// latency is the drover.request.duration histogram, nil when none.
	latency *hist
	// evals holds the average of each evaluation metric (without a class).
	evals map[evalKey]float64
	// requests are the window's request counts.
	requests reqCounts
	// labels are the labels joined to samples in the window (drover.feedback
	// status joined), read only when the window has evaluation metrics.
	labels float64
}

// checkData is what a check compares: the reference and the current window.
type checkData struct{ ref, cur windowData }

// verdict judges a check. r holds the check's model, version, time,
// windows and reference description; verdict returns it with the
// features, the dataset verdict, the signals, Drifted and Reasons filled.
// Until the reference window has ended (ReferenceWindow.End after Time),
// features get no verdict (unless p.Reference is manifest) and no signal is
// computed.
func verdict(r Result, p Policy, d checkData) Result {
	refReady := !r.ReferenceWindow.End.After(r.Time)
	r.Features = compareFeatures(p, d, refReady)
	r.DatasetVerdict, r.DriftedShare, r.DatasetDrifted = false, 0, false
	if n := judged(r.Features); n > 0 {
		drifted := 0
		for _, f := range r.Features {
			if f.Drifted {
				drifted++
			}
		}
		r.DatasetVerdict = true
		r.DriftedShare = float64(drifted) / float64(n)
		r.DatasetDrifted = r.DriftedShare >= p.DatasetShare
	}
	r.Signals = nil
	if refReady {
		r.Signals = signals(p, d)
	}
	r.Drifted, r.Reasons = false, nil
	if r.DatasetDrifted {
		var names []string
		for _, f := range r.Features {
			if f.Drifted {
				names = append(names, f.Feature)
			}
		}
		r.Drifted = true
		r.Reasons = append(r.Reasons, fmt.Sprintf("dataset drift: %d of %d features drifted (%s)",
			len(names), judged(r.Features), strings.Join(names, ", ")))
	}
	for _, s := range r.Signals {
		if s.Drifted {
			r.Drifted = true
			r.Reasons = append(r.Reasons, s.reason())
		}
	}
	return r
}

// judged counts the features with a verdict.
func judged(features []FeatureResult) int {
	n := 0
	for _, f := range features {
		if f.Verdict {
			n++
		}
	}
	return n
}

func (s Signal) reason() string {
	switch s.Test {
	case store.DriftTestMetric:
		return fmt.Sprintf("%s degraded by %.4g (%.4g → %.4g, threshold %.4g)", s.Name, s.Value, s.Reference, s.Current, s.Threshold)
	case store.DriftTestErrorRate:
		return fmt.Sprintf("error rate up by %.4g (%.4g → %.4g, threshold %.4g)", s.Value, s.Reference, s.Current, s.Threshold)
	default:
		return fmt.Sprintf("p99 latency ×%.3g (%.4gs → %.4gs, threshold ×%.3g)", s.Value, s.Reference, s.Current, s.Threshold)
	}
}

// Reasons a feature gets no verdict (FeatureResult.NoVerdict), besides
// "N observations, below min_samples M".
const (
	noVerdictRefIncomplete = "reference window not complete"
	noVerdictBounds        = "bounds differ"
	noVerdictFewBounds     = "fewer than 2 bounds"
)

// compareFeatures compares every feature of the current window with its
// reference, sorted by name. Features only in the reference are not
// compared.
func compareFeatures(p Policy, d checkData, refReady bool) []FeatureResult {
	var out []FeatureResult
	for _, name := range slices.Sorted(maps.Keys(d.cur.features)) {
		cur := d.cur.features[name]
		f := FeatureResult{Feature: name, Bounds: cur.bounds, Current: cur.counts, CurCount: cur.n, Categorical: isCategorical(cur.bounds)}
		refH := d.ref.features[name]
		switch {
		case p.Reference == ReferenceManifest:
			f.Reference = manifestReference(cur.bounds, float64(cur.n))
			f.RefCount = cur.n
		case !refReady:
			f.NoVerdict = noVerdictRefIncomplete
		case refH != nil:
			f.Reference, f.RefCount = refH.counts, refH.n
		}
		switch {
		case f.NoVerdict != "":
		case cur.mixed || (refH != nil && refH.mixed) || (p.Reference != ReferenceManifest && refH != nil && !slices.Equal(refH.bounds, cur.bounds)):
			f.NoVerdict = noVerdictBounds
		case f.CurCount < p.MinSamples || f.RefCount < p.MinSamples:
			f.NoVerdict = fmt.Sprintf("%d observations, below min_samples %d", min(f.CurCount, f.RefCount), p.MinSamples)
		case len(cur.bounds) < 2 && !f.Categorical:
			f.NoVerdict = noVerdictFewBounds
		}
		if f.NoVerdict == "" {
			f.Verdict = true
			f.PSI, _ = PSI(f.Reference, f.Current)
			f.JS, _ = JS(f.Reference, f.Current)
			f.KS, _ = KSBinned(f.Reference, f.Current)
			if f.Categorical {
				f.Chi2, _, f.Chi2P, _ = Chi2(f.Reference, f.Current)
			} else {
				f.Wasserstein, _ = Wasserstein(f.Bounds, f.Reference, f.Current)
			}
			f.Drifted = f.PSI >= p.PSIThreshold || f.JS >= p.JSThreshold
		}
		out = append(out, f)
	}
	return out
}

// sourceLabels is the drover.eval.source of metrics computed from the
// labels clients send (the feedback call).
const sourceLabels = "labels"

// higherIsBetter lists evaluation metrics where a drop is a degradation;
// for every other metric an increase is (mse, mae, log_loss, …).
var higherIsBetter = map[string]bool{
	"accuracy": true, "precision": true, "recall": true, "f1": true, "auc": true, "r2": true,
}

// signals computes the metric and operational signals: evaluation metrics
// present in both windows and listed in p.MetricDegradation (sorted by
// metric/source), the error rate when the current window has requests,
// and the p99 latency ratio when both windows have latencies. A signal
// whose samples are below its minimum in either window (p.MinLabels joined
// labels for metrics of source labels, p.MinRequests requests or latency
// observations for the others) is returned without a verdict.
func signals(p Policy, d checkData) []Signal {
	requests := uint64(min(d.ref.requests.total, d.cur.requests.total))
	enough := func(s *Signal, n, minimum uint64, what, key string) bool {
		s.Samples = n
		if n >= minimum {
			return true
		}
		s.Value, s.NoVerdict = math.NaN(), fmt.Sprintf("%d %s, below %s %d", n, what, key, minimum)
		return false
	}
	var out []Signal
	keys := slices.SortedFunc(maps.Keys(d.cur.evals), func(a, b evalKey) int {
		return strings.Compare(a.metric+"/"+a.source, b.metric+"/"+b.source)
	})
	for _, k := range keys {
		th, ok := p.MetricDegradation[k.metric]
		refV, hasRef := d.ref.evals[k]
		if !ok || !hasRef {
			continue
		}
		curV := d.cur.evals[k]
		s := Signal{Test: store.DriftTestMetric, Name: k.metric + "/" + k.source, Current: curV, Reference: refV, Threshold: th}
		var judge bool
		if k.source == sourceLabels {
			judge = enough(&s, uint64(min(d.ref.labels, d.cur.labels)), p.MinLabels, "joined labels", "min_labels")
		} else {
			judge = enough(&s, requests, p.MinRequests, "requests", "min_requests")
		}
		switch {
		case !judge:
		case higherIsBetter[k.metric]:
			s.Value = refV - curV
		case refV != 0:
			s.Value = (curV - refV) / math.Abs(refV)
		case curV == 0:
			s.Value = 0
		default:
			s.Value = math.Inf(1)
		}
		s.Drifted = judge && s.Value > th
		out = append(out, s)
	}
	if cr := d.cur.requests; cr.total > 0 {
		rr := d.ref.requests
		s := Signal{Test: store.DriftTestErrorRate, Current: cr.errors / cr.total, Threshold: p.ErrorRate}
		if rr.total > 0 {
			s.Reference = rr.errors / rr.total
		}
		if enough(&s, requests, p.MinRequests, "requests", "min_requests") {
			s.Value = s.Current - s.Reference
			s.Drifted = s.Value > p.ErrorRate
		}
		out = append(out, s)
	}
	curL, refL := d.cur.latency, d.ref.latency
	if curL != nil && refL != nil && curL.n > 0 && refL.n > 0 {
		s := Signal{Test: store.DriftTestP99, Threshold: p.P99Ratio,
			Current: Quantile(curL.bounds, curL.counts, 0.99), Reference: Quantile(refL.bounds, refL.counts, 0.99)}
		if s.Reference > 0 && !math.IsNaN(s.Current) {
			if enough(&s, min(curL.n, refL.n), p.MinRequests, "latency observations", "min_requests") {
				s.Value = s.Current / s.Reference
				s.Drifted = s.Value > p.P99Ratio
			}
			out = append(out, s)
		}
	}
	return out
}

// isCategorical reports whether bounds are 0, 1, …, n−1: the bins of a
// categorical feature (docs/metrics.md).
func isCategorical(bounds []float64) bool {
	if len(bounds) < 2 {
		return false
	}
	for i, b := range bounds {
		if b != float64(i) {
			return false
		}
	}
	return true
}

// manifestReference returns the expected counts, for n observations, of
// the distribution that manifest bins imply (see ReferenceManifest).
func manifestReference(bounds []float64, n float64) []float64 {
	ref := make([]float64, len(bounds)+1)
	if isCategorical(bounds) {
		for i := range bounds {
			ref[i] = n / float64(len(bounds))
		}
		return ref
	}
	for i := 1; i < len(bounds); i++ {
		ref[i] = n / float64(len(bounds)-1)
	}
	return ref
}
