package drift

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

// The verdict is a pure function of the two windows' data: these tests
// need no ClickHouse.

var (
	numBounds = []float64{-2, -1, 0, 1, 2}
	catBounds = []float64{0, 1, 2} // three categories and the unknown bucket
	latBounds = []float64{0.001, 0.01, 0.1}

	// PSI 0.972, JS 0.162 against stableRef; PSI 0.049, JS 0.0088 for slightRef.
	stableRef = []float64{100, 200, 300, 300, 200, 100}
	shifted   = []float64{20, 60, 200, 400, 700, 620}
	slight    = []float64{60, 160, 300, 340, 260, 140}
)

// h is a histogram of counts over bounds.
func h(bounds []float64, counts ...float64) *hist {
	var n uint64
	for _, c := range counts {
		n += uint64(c)
	}
	return &hist{bounds: bounds, counts: counts, n: n}
}

func scaled(counts []float64, k float64) []float64 {
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = c * k
	}
	return out
}

type wantFeature struct {
	verdict   bool
	noVerdict string
	drifted   bool
}

type wantSignal struct {
	value     float64
	drifted   bool
	noVerdict string
}

func TestVerdict(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	header := func(refReady bool) Result {
		now := t0.Add(5 * time.Hour)
		start := t0
		if !refReady {
			start = now.Add(-30 * time.Minute) // the first window ends in 30 minutes
		}
		return Result{Model: "iris", Version: "3", Time: now, Window: Window{now.Add(-time.Hour), now},
			ReferenceWindow: Window{start, start.Add(time.Hour)}, Reference: "first_window"}
	}
	features := func(ref, cur map[string]*hist) checkData {
		return checkData{ref: windowData{features: ref}, cur: windowData{features: cur}}
	}
	for name, tc := range map[string]struct {
		refNotReady bool
		policy      func(*Policy)
		data        checkData

		features       map[string]wantFeature
		datasetVerdict bool
		share          float64
		datasetDrifted bool
		signals        map[string]wantSignal // by test/name
		drifted        bool
		reasons        []string
	}{
		"empty windows": {},
		"stable feature": {
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, scaled(stableRef, 2)...)}),
			features:       map[string]wantFeature{"f0": {verdict: true}},
			datasetVerdict: true,
		},
		"slight shift below thresholds": {
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, slight...)}),
			features:       map[string]wantFeature{"f0": {verdict: true}},
			datasetVerdict: true,
		},
		"shifted feature drifts": {
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (f0)"},
		},
		"PSI alone decides": {
			policy:         func(p *Policy) { p.JSThreshold = 2 }, // out of JS's reach
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (f0)"},
		},
		"JS alone decides": {
			policy:         func(p *Policy) { p.PSIThreshold = 1e9 },
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (f0)"},
		},
		"thresholds out of reach": {
			policy:         func(p *Policy) { p.PSIThreshold, p.JSThreshold = 1e9, 2 },
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true}},
			datasetVerdict: true,
		},
		"categorical stable": {
			data:           features(map[string]*hist{"c": h(catBounds, 300, 300, 400, 0)}, map[string]*hist{"c": h(catBounds, 600, 600, 800, 0)}),
			features:       map[string]wantFeature{"c": {verdict: true}},
			datasetVerdict: true,
		},
		"categorical shifted": {
			data:           features(map[string]*hist{"c": h(catBounds, 300, 300, 400, 0)}, map[string]*hist{"c": h(catBounds, 100, 300, 600, 0)}),
			features:       map[string]wantFeature{"c": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (c)"},
		},
		"one of three drifted: below dataset share": {
			data: features(
				map[string]*hist{"a": h(numBounds, stableRef...), "b": h(numBounds, stableRef...), "c": h(numBounds, stableRef...)},
				map[string]*hist{"a": h(numBounds, shifted...), "b": h(numBounds, slight...), "c": h(numBounds, stableRef...)}),
			features:       map[string]wantFeature{"a": {verdict: true, drifted: true}, "b": {verdict: true}, "c": {verdict: true}},
			datasetVerdict: true, share: 1.0 / 3,
		},
		"one of three drifted: dataset share 0.3": {
			policy: func(p *Policy) { p.DatasetShare = 0.3 },
			data: features(
				map[string]*hist{"a": h(numBounds, stableRef...), "b": h(numBounds, stableRef...), "c": h(numBounds, stableRef...)},
				map[string]*hist{"a": h(numBounds, shifted...), "b": h(numBounds, slight...), "c": h(numBounds, stableRef...)}),
			features:       map[string]wantFeature{"a": {verdict: true, drifted: true}, "b": {verdict: true}, "c": {verdict: true}},
			datasetVerdict: true, share: 1.0 / 3, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 3 features drifted (a)"},
		},
		"two of four drifted: at the dataset share": {
			data: features(
				map[string]*hist{"a": h(numBounds, stableRef...), "b": h(numBounds, stableRef...), "c": h(numBounds, stableRef...), "d": h(numBounds, stableRef...)},
				map[string]*hist{"a": h(numBounds, shifted...), "b": h(numBounds, stableRef...), "c": h(numBounds, shifted...), "d": h(numBounds, stableRef...)}),
			features: map[string]wantFeature{"a": {verdict: true, drifted: true}, "b": {verdict: true},
				"c": {verdict: true, drifted: true}, "d": {verdict: true}},
			datasetVerdict: true, share: 0.5, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 2 of 4 features drifted (a, c)"},
		},
		"current window below min samples": {
			data:     features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, 0, 0, 999, 0, 0, 0)}),
			features: map[string]wantFeature{"f0": {noVerdict: "999 observations, below min_samples 1000"}},
		},
		"exactly min samples": {
			policy:         func(p *Policy) { p.MinSamples = 1200 },
			data:           features(map[string]*hist{"f0": h(numBounds, stableRef...)}, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (f0)"},
		},
		"no reference data": {
			data:     features(nil, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features: map[string]wantFeature{"f0": {noVerdict: "0 observations, below min_samples 1000"}},
		},
		"only the drifted feature lacks samples": {
			data: features(
				map[string]*hist{"a": h(numBounds, stableRef...), "b": h(numBounds, stableRef...)},
				map[string]*hist{"a": h(numBounds, 0, 1, 2, 3, 4, 5), "b": h(numBounds, stableRef...)}),
			features:       map[string]wantFeature{"a": {noVerdict: "15 observations, below min_samples 1000"}, "b": {verdict: true}},
			datasetVerdict: true,
		},
		"feature only in the reference": {
			data:     features(map[string]*hist{"gone": h(numBounds, stableRef...)}, nil),
			features: map[string]wantFeature{},
		},
		"bounds differ between windows": {
			data:     features(map[string]*hist{"f0": h([]float64{-1, 0, 1, 2, 3}, stableRef...)}, map[string]*hist{"f0": h(numBounds, stableRef...)}),
			features: map[string]wantFeature{"f0": {noVerdict: "bounds differ"}},
		},
		"bounds change inside a window": {
			data: features(map[string]*hist{"f0": h(numBounds, stableRef...)},
				map[string]*hist{"f0": {bounds: numBounds, counts: shifted, n: 2000, mixed: true}}),
			features: map[string]wantFeature{"f0": {noVerdict: "bounds differ"}},
		},
		"one bound": {
			data:     features(map[string]*hist{"f0": h([]float64{0}, 600, 600)}, map[string]*hist{"f0": h([]float64{0}, 100, 1100)}),
			features: map[string]wantFeature{"f0": {noVerdict: "fewer than 2 bounds"}},
		},
		"reference window not complete": {
			refNotReady: true,
			data: checkData{
				ref: windowData{features: map[string]*hist{"f0": h(numBounds, stableRef...)}, requests: reqCounts{errors: 1, total: 100}},
				cur: windowData{features: map[string]*hist{"f0": h(numBounds, shifted...)}, requests: reqCounts{errors: 50, total: 100}},
			},
			features: map[string]wantFeature{"f0": {noVerdict: "reference window not complete"}},
		},
		"manifest reference before the first window ends": {
			refNotReady: true,
			policy:      func(p *Policy) { p.Reference = ReferenceManifest },
			// Manifest bins: the four interior buckets hold 300 each.
			data:           features(nil, map[string]*hist{"f0": h(numBounds, 0, 300, 300, 300, 300, 0)}),
			features:       map[string]wantFeature{"f0": {verdict: true}},
			datasetVerdict: true,
		},
		"manifest reference, shifted": {
			policy:         func(p *Policy) { p.Reference = ReferenceManifest },
			data:           features(nil, map[string]*hist{"f0": h(numBounds, shifted...)}),
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true, drifted: true,
			reasons: []string{"dataset drift: 1 of 1 features drifted (f0)"},
		},
		"evaluation metrics": {
			policy: func(p *Policy) {
				p.MetricDegradation = map[string]float64{"f1": 0.05, "accuracy": 0.05, "mse": 0.2, "mae": 0.2}
			},
			data: checkData{
				ref: windowData{labels: 200, evals: map[evalKey]float64{
					{"f1", "labels"}: 0.9, {"accuracy", "labels"}: 0.95, {"mse", "labels"}: 1, {"mae", "labels"}: 0,
					{"recall", "labels"}: 0.9, // not in the policy
					{"f1", "golden"}:     0.9, // not in the current window
				}},
				cur: windowData{labels: 200, evals: map[evalKey]float64{
					{"f1", "labels"}: 0.8, {"accuracy", "labels"}: 0.96, {"mse", "labels"}: 1.1, {"mae", "labels"}: 0.5,
					{"recall", "labels"}: 0.1,
					{"auc", "labels"}:    0.5, // not in the reference window
				}},
			},
			signals: map[string]wantSignal{
				"metric/accuracy/labels": {value: 0.95 - 0.96},
				"metric/f1/labels":       {value: 0.9 - 0.8, drifted: true},
				"metric/mae/labels":      {value: math.Inf(1), drifted: true},
				"metric/mse/labels":      {value: 1.1 - 1},
			},
			drifted: true,
			reasons: []string{
				"f1/labels degraded by 0.1 (0.9 → 0.8, threshold 0.05)",
				"mae/labels degraded by +Inf (0 → 0.5, threshold 0.2)",
			},
		},
		"error rate up": {
			data:    checkData{ref: windowData{requests: reqCounts{errors: 1, total: 100}}, cur: windowData{requests: reqCounts{errors: 10, total: 100}}},
			signals: map[string]wantSignal{"error_rate/": {value: 0.09, drifted: true}},
			drifted: true,
			reasons: []string{"error rate up by 0.09 (0.01 → 0.1, threshold 0.05)"},
		},
		"error rate steady": {
			data:    checkData{ref: windowData{requests: reqCounts{errors: 1, total: 100}}, cur: windowData{requests: reqCounts{errors: 3, total: 300}}},
			signals: map[string]wantSignal{"error_rate/": {value: 0}},
		},
		"error rate without reference requests": {
			data:    checkData{cur: windowData{requests: reqCounts{errors: 4, total: 100}}},
			signals: map[string]wantSignal{"error_rate/": {noVerdict: "0 requests, below min_requests 1"}},
		},
		"no current requests": {
			data: checkData{ref: windowData{requests: reqCounts{errors: 50, total: 100}}},
		},
		"p99 up tenfold": {
			// p99: 0.01 (the top of the second bucket) → 0.1 (in the open bucket: the last bound)
			data:    checkData{ref: windowData{latency: h(latBounds, 90, 9, 1, 0)}, cur: windowData{latency: h(latBounds, 0, 10, 80, 10)}},
			signals: map[string]wantSignal{"p99/": {value: 10, drifted: true}},
			drifted: true,
			reasons: []string{"p99 latency ×10 (0.01s → 0.1s, threshold ×2)"},
		},
		"p99 steady": {
			data:    checkData{ref: windowData{latency: h(latBounds, 90, 9, 1, 0)}, cur: windowData{latency: h(latBounds, 180, 18, 2, 0)}},
			signals: map[string]wantSignal{"p99/": {value: 1}},
		},
		"p99 without reference latencies": {
			data: checkData{cur: windowData{latency: h(latBounds, 0, 10, 80, 10)}},
		},
		// Minimum samples: a handful of forged points (all errors, all
		// slow, all mislabelled) gets no verdict under the default minimums.
		"forged: a handful of failed requests": {
			policy:  defaultMinimums,
			data:    checkData{ref: windowData{requests: reqCounts{errors: 0, total: 5000}}, cur: windowData{requests: reqCounts{errors: 5, total: 5}}},
			signals: map[string]wantSignal{"error_rate/": {noVerdict: "5 requests, below min_requests 1000"}},
		},
		"error rate: reference below min_requests": {
			policy:  defaultMinimums,
			data:    checkData{ref: windowData{requests: reqCounts{errors: 0, total: 999}}, cur: windowData{requests: reqCounts{errors: 500, total: 5000}}},
			signals: map[string]wantSignal{"error_rate/": {noVerdict: "999 requests, below min_requests 1000"}},
		},
		"error rate: exactly min_requests": {
			policy:  defaultMinimums,
			data:    checkData{ref: windowData{requests: reqCounts{errors: 10, total: 1000}}, cur: windowData{requests: reqCounts{errors: 100, total: 1000}}},
			signals: map[string]wantSignal{"error_rate/": {value: 0.09, drifted: true}},
			drifted: true,
			reasons: []string{"error rate up by 0.09 (0.01 → 0.1, threshold 0.05)"},
		},
		"forged: a handful of slow requests": {
			policy:  defaultMinimums,
			data:    checkData{ref: windowData{latency: h(latBounds, 900, 90, 10, 0)}, cur: windowData{latency: h(latBounds, 0, 0, 0, 5)}},
			signals: map[string]wantSignal{"p99/": {noVerdict: "5 latency observations, below min_requests 1000"}},
		},
		"forged: a handful of wrong labels": {
			policy: func(p *Policy) { defaultMinimums(p); p.MetricDegradation = map[string]float64{"f1": 0.05} },
			data: checkData{
				ref: windowData{labels: 5000, evals: map[evalKey]float64{{"f1", "labels"}: 0.9}},
				cur: windowData{labels: 5, evals: map[evalKey]float64{{"f1", "labels"}: 0}},
			},
			signals: map[string]wantSignal{"metric/f1/labels": {noVerdict: "5 joined labels, below min_labels 100"}},
		},
		"f1 from enough labels": {
			policy: func(p *Policy) { defaultMinimums(p); p.MetricDegradation = map[string]float64{"f1": 0.05} },
			data: checkData{
				ref: windowData{labels: 100, evals: map[evalKey]float64{{"f1", "labels"}: 0.9}},
				cur: windowData{labels: 150, evals: map[evalKey]float64{{"f1", "labels"}: 0.5}},
			},
			signals: map[string]wantSignal{"metric/f1/labels": {value: 0.4, drifted: true}},
			drifted: true,
			reasons: []string{"f1/labels degraded by 0.4 (0.9 → 0.5, threshold 0.05)"},
		},
		"golden f1 needs requests": {
			policy: func(p *Policy) { defaultMinimums(p); p.MetricDegradation = map[string]float64{"f1": 0.05} },
			data: checkData{
				ref: windowData{requests: reqCounts{total: 10}, evals: map[evalKey]float64{{"f1", "golden"}: 0.9}},
				cur: windowData{requests: reqCounts{total: 5000}, evals: map[evalKey]float64{{"f1", "golden"}: 0.5}},
			},
			signals: map[string]wantSignal{
				"metric/f1/golden": {noVerdict: "10 requests, below min_requests 1000"},
				"error_rate/":      {noVerdict: "10 requests, below min_requests 1000"},
			},
		},
		"dataset and signals: dataset reason first": {
			data: checkData{
				ref: windowData{features: map[string]*hist{"f0": h(numBounds, stableRef...)}, latency: h(latBounds, 90, 9, 1, 0),
					requests: reqCounts{errors: 1, total: 100}},
				cur: windowData{features: map[string]*hist{"f0": h(numBounds, shifted...)}, latency: h(latBounds, 0, 10, 80, 10),
					requests: reqCounts{errors: 10, total: 100}},
			},
			features:       map[string]wantFeature{"f0": {verdict: true, drifted: true}},
			datasetVerdict: true, share: 1, datasetDrifted: true,
			signals: map[string]wantSignal{"error_rate/": {value: 0.09, drifted: true}, "p99/": {value: 10, drifted: true}},
			drifted: true,
			reasons: []string{
				"dataset drift: 1 of 1 features drifted (f0)",
				"error rate up by 0.09 (0.01 → 0.1, threshold 0.05)",
				"p99 latency ×10 (0.01s → 0.1s, threshold ×2)",
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			// The signal cases use small counts; the minimum-samples cases
			// restore the defaults (defaultMinimums).
			p := DefaultPolicy()
			p.MinRequests, p.MinLabels = 1, 1
			if tc.policy != nil {
				tc.policy(&p)
			}
			in := header(!tc.refNotReady)
			r := verdict(in, p, tc.data)

			if r.Model != in.Model || r.Version != in.Version || !r.Time.Equal(in.Time) || r.Window != in.Window ||
				r.ReferenceWindow != in.ReferenceWindow || r.Reference != in.Reference {
				t.Errorf("header changed: %+v", r)
			}
			names := make([]string, 0, len(r.Features))
			for _, f := range r.Features {
				names = append(names, f.Feature)
				w, ok := tc.features[f.Feature]
				if !ok {
					t.Errorf("unexpected feature %s", f.Feature)
					continue
				}
				if f.Verdict != w.verdict || f.NoVerdict != w.noVerdict || f.Drifted != w.drifted {
					t.Errorf("%s: verdict %v (%q) drifted %v; want %v (%q) %v (PSI %.4g, JS %.4g)",
						f.Feature, f.Verdict, f.NoVerdict, f.Drifted, w.verdict, w.noVerdict, w.drifted, f.PSI, f.JS)
				}
				checkStatistics(t, f, p)
			}
			if want := slices.Sorted(maps.Keys(tc.features)); !slices.Equal(names, want) {
				t.Errorf("features %q, want %q (sorted)", names, want)
			}
			if r.DatasetVerdict != tc.datasetVerdict || !near(r.DriftedShare, tc.share, 1e-12) || r.DatasetDrifted != tc.datasetDrifted {
				t.Errorf("dataset: verdict %v share %v drifted %v; want %v %v %v",
					r.DatasetVerdict, r.DriftedShare, r.DatasetDrifted, tc.datasetVerdict, tc.share, tc.datasetDrifted)
			}
			got := map[string]Signal{}
			for _, s := range r.Signals {
				got[s.Test+"/"+s.Name] = s
			}
			for key, w := range tc.signals {
				s, ok := got[key]
				if !ok {
					t.Errorf("signal %s missing; have %+v", key, r.Signals)
					continue
				}
				if w.noVerdict != "" {
					if s.NoVerdict != w.noVerdict || s.Drifted || !math.IsNaN(s.Value) {
						t.Errorf("signal %s: no verdict %q drifted %v value %v; want no verdict %q", key, s.NoVerdict, s.Drifted, s.Value, w.noVerdict)
					}
					continue
				}
				if !near(s.Value, w.value, 1e-12) && s.Value != w.value || s.Drifted != w.drifted || s.NoVerdict != "" {
					t.Errorf("signal %s: value %v drifted %v (no verdict %q); want %v %v", key, s.Value, s.Drifted, s.NoVerdict, w.value, w.drifted)
				}
			}
			if len(got) != len(tc.signals) {
				t.Errorf("signals %+v, want %d", r.Signals, len(tc.signals))
			}
			if r.Drifted != tc.drifted || !slices.Equal(r.Reasons, tc.reasons) {
				t.Errorf("check drifted %v, reasons %q; want %v, %q", r.Drifted, r.Reasons, tc.drifted, tc.reasons)
			}
		})
	}
}

// defaultMinimums restores the built-in minimum samples of the signals.
func defaultMinimums(p *Policy) {
	d := DefaultPolicy()
	p.MinRequests, p.MinLabels = d.MinRequests, d.MinLabels
}

// checkStatistics checks that a judged feature carries the statistics of
// its counts (stats_test.go checks their values), and that a feature
// without a verdict carries none.
func checkStatistics(t *testing.T, f FeatureResult, p Policy) {
	t.Helper()
	if !f.Verdict {
		if f.PSI != 0 || f.JS != 0 || f.KS != 0 || f.Wasserstein != 0 || f.Chi2P != 0 {
			t.Errorf("%s: statistics without a verdict: %+v", f.Feature, f)
		}
		return
	}
	psi, _ := PSI(f.Reference, f.Current)
	js, _ := JS(f.Reference, f.Current)
	ks, _ := KSBinned(f.Reference, f.Current)
	if f.PSI != psi || f.JS != js || f.KS != ks {
		t.Errorf("%s: PSI %v JS %v KS %v; want %v %v %v", f.Feature, f.PSI, f.JS, f.KS, psi, js, ks)
	}
	if f.Drifted != (psi >= p.PSIThreshold || js >= p.JSThreshold) {
		t.Errorf("%s: drifted %v with PSI %v JS %v", f.Feature, f.Drifted, psi, js)
	}
	if f.Categorical {
		_, _, pv, _ := Chi2(f.Reference, f.Current)
		if f.Chi2P != pv || f.Wasserstein != 0 {
			t.Errorf("%s: categorical with chi2 p %v (want %v), wasserstein %v (want none)", f.Feature, f.Chi2P, pv, f.Wasserstein)
		}
		return
	}
	w, _ := Wasserstein(f.Bounds, f.Reference, f.Current)
	if f.Wasserstein != w || f.Chi2P != 0 {
		t.Errorf("%s: numeric with wasserstein %v (want %v), chi2 p %v (want none)", f.Feature, f.Wasserstein, w, f.Chi2P)
	}
}

// TestVerdictValues pins the statistics of the shifted and the
// categorical cases, so that a change in what the verdict compares (not
// only in its flags) fails.
func TestVerdictValues(t *testing.T) {
	p := DefaultPolicy()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	in := Result{Time: now, Window: Window{now.Add(-time.Hour), now}, ReferenceWindow: Window{now.Add(-5 * time.Hour), now.Add(-4 * time.Hour)}}
	r := verdict(in, p, checkData{
		ref: windowData{features: map[string]*hist{"num": h(numBounds, stableRef...), "cat": h(catBounds, 300, 300, 400, 0)}},
		cur: windowData{features: map[string]*hist{"num": h(numBounds, shifted...), "cat": h(catBounds, 100, 300, 600, 0)}},
	})
	if len(r.Features) != 2 {
		t.Fatalf("features %+v", r.Features)
	}
	cat, num := r.Features[0], r.Features[1]
	// Offline (Python, the definitions of docs/drift.md): PSI 0.97224177651907,
	// JS 0.16157370269920, KS max |.0833−.01, .25−.04, .5−.14, .75−.34, .9167−.69| = .41.
	if !near(num.PSI, 0.9722417765190687, 1e-12) || !near(num.JS, 0.16157370269920154, 1e-12) || !near(num.KS, 0.41, 1e-12) {
		t.Errorf("num: PSI %v JS %v KS %v", num.PSI, num.JS, num.KS)
	}
	// The manifest-free reference is the reference window's counts, as read.
	if !slices.Equal(num.Reference, stableRef) || !slices.Equal(num.Current, shifted) || num.RefCount != 1200 || num.CurCount != 2000 {
		t.Errorf("num: counts %v (%d) / %v (%d)", num.Reference, num.RefCount, num.Current, num.CurCount)
	}
	// 2×3 table [[300 300 400] [100 300 600]] (the empty unknown bucket
	// does not count): expected 200 300 500 in each row, chi2 = 2·(100²/200
	// + 100²/500) = 140, df 2, p = e^(−140/2).
	if !cat.Categorical || !near(cat.Chi2, 140, 1e-9) || !near(cat.Chi2P, math.Exp(-70), 1e-12*math.Exp(-70)) {
		t.Errorf("cat: categorical %v chi2 %v p %v", cat.Categorical, cat.Chi2, cat.Chi2P)
	}
}
