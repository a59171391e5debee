package analysis

import (
	"math"
	"strings"
	"testing"
	"time"
)

// latBounds are the latency buckets of the tests (seconds).
var latBounds = []float64{0.005, 0.01, 0.02, 0.05, 0.1, 0.2}

func hist(counts ...float64) Histogram { return Histogram{Bounds: latBounds, Counts: counts} }

func side(requests, errors uint64, lat Histogram, labels uint64, eval map[string]float64) Side {
	return Side{Requests: requests, ServerErrors: errors, Latency: lat, Labels: labels, Eval: eval}
}

func TestDecide(t *testing.T) {
	p := DefaultParams()
	fast := hist(200, 400, 300, 80, 10, 10, 0)  // p99 0.1: rank 990, 980 below (0.05, 0.1], 10 in it
	base := hist(100, 400, 300, 150, 30, 20, 0) // p99 0.15
	slow := hist(0, 100, 300, 300, 200, 80, 20) // p99 in the open bucket: 0.2
	evals := map[string]float64{"accuracy": 0.95, "f1": 0.90}
	cases := map[string]struct {
		o        Observed
		want     Decision
		metric   string   // the regressed metric named in Reason (Abort)
		missing  []string // Wait
		skipped  string
		compared []string
	}{
		"better canary promotes": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 1000, evals),
				Canary:  side(1000, 10, fast, 600, map[string]float64{"accuracy": 0.96, "f1": 0.91})},
			want: Promote, compared: []string{MetricErrorRate, MetricLatencyP99, MetricAccuracy, MetricF1},
		},
		"equal error rate is no regression": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 20, base, 0, nil)},
			want: Promote, compared: []string{MetricErrorRate, MetricLatencyP99},
		},
		"worse error rate aborts before the duration": {
			o: Observed{Elapsed: 2 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 60, base, 0, nil)},
			want: Abort, metric: MetricErrorRate,
		},
		"errors from none is a regression": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 0, base, 0, nil), Canary: side(1000, 10, base, 0, nil)},
			want: Abort, metric: MetricErrorRate,
		},
		"a few errors from none are not significant": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 0, base, 0, nil), Canary: side(1000, 1, base, 0, nil)},
			want: Promote,
		},
		"a moderately worse error rate waits before the duration": {
			// p ≈ 0.006: below Alpha, above EarlyAlpha
			o: Observed{Elapsed: 5 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 36, base, 0, nil)},
			want: Wait, missing: []string{"duration: 5m0s of 10m0s"},
		},
		"and aborts after it": {
			o: Observed{Elapsed: 10 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 36, base, 0, nil)},
			want: Abort, metric: MetricErrorRate,
		},
		"slower canary aborts": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 20, slow, 0, nil)},
			want: Abort, metric: MetricLatencyP99,
		},
		"worse f1 aborts": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 1000, evals),
				Canary:  side(1000, 20, base, 600, map[string]float64{"accuracy": 0.95, "f1": 0.85})},
			want: Abort, metric: MetricF1,
		},
		"higher mse aborts": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 1000, map[string]float64{"mse": 1.0}),
				Canary:  side(1000, 20, base, 600, map[string]float64{"mse": 1.05})},
			want: Abort, metric: MetricMSE,
		},
		"mse within tolerance promotes": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 1000, map[string]float64{"mse": 1.0}),
				Canary:  side(1000, 20, base, 600, map[string]float64{"mse": 1.01})},
			want: Promote, compared: []string{MetricErrorRate, MetricLatencyP99, MetricMSE},
		},
		"worse f1 with too few labels is skipped": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 1000, evals),
				Canary:  side(1000, 20, base, 100, map[string]float64{"accuracy": 0.5, "f1": 0.5})},
			want: Promote, skipped: "accuracy, f1: joined labels canary 100, serving 1000, of 500",
			compared: []string{MetricErrorRate, MetricLatencyP99},
		},
		"duration not elapsed waits": {
			o: Observed{Elapsed: 4 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(1000, 20, slow, 0, nil)},
			want: Wait, missing: []string{"duration: 4m0s of 10m0s"},
		},
		"too few canary requests wait": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, base, 0, nil), Canary: side(120, 60, hist(120), 0, nil)},
			want: Wait, missing: []string{"requests: canary 120 of 500", "latency observations: canary 120 of 500"},
		},
		"no latency histograms wait": {
			o: Observed{Elapsed: 15 * time.Minute,
				Serving: side(3000, 60, Histogram{}, 0, nil), Canary: side(1000, 20, Histogram{}, 0, nil)},
			want: Wait, missing: []string{"latency observations: canary 0 of 500", "latency observations: serving 0 of 500"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := Decide(tc.o, p)
			if v.Decision != tc.want {
				t.Fatalf("decision %s (%s), want %s", v.Decision, v.Reason, tc.want)
			}
			if tc.metric != "" && !strings.HasPrefix(v.Reason, "regressed: "+tc.metric+" ") {
				t.Errorf("reason %q does not name %s", v.Reason, tc.metric)
			}
			if tc.missing != nil && strings.Join(v.Missing, "|") != strings.Join(tc.missing, "|") {
				t.Errorf("missing %q, want %q", v.Missing, tc.missing)
			}
			if tc.skipped != "" && (len(v.Skipped) != 1 || v.Skipped[0] != tc.skipped) {
				t.Errorf("skipped %q, want %q", v.Skipped, tc.skipped)
			}
			if tc.compared != nil {
				var got []string
				for _, c := range v.Metrics {
					got = append(got, c.Metric)
				}
				if strings.Join(got, ",") != strings.Join(tc.compared, ",") {
					t.Errorf("compared %v, want %v", got, tc.compared)
				}
			}
		})
	}
}

// TestErrorRateStatistic checks the test statistic against a hand
// computation: serving 20/2000, canary 60/2000, δ 0.02.
func TestErrorRateStatistic(t *testing.T) {
	c := errorRate(Side{Requests: 2000, ServerErrors: 20}, Side{Requests: 2000, ServerErrors: 60}, 0.02, Alpha)
	as, ac := 21.0/2002, 61.0/2002
	z := (ac - 1.02*as) / math.Sqrt(ac*(1-ac)/2002+1.02*1.02*as*(1-as)/2002)
	want := 0.5 * math.Erfc(z/math.Sqrt2)
	if math.Abs(c.P-want) > 1e-12 || !c.Regressed {
		t.Fatalf("p %g regressed %v, want p %g (z %.3f) regressed", c.P, c.Regressed, want, z)
	}
	if c.Serving != 0.01 || c.Canary != 0.03 || math.Abs(c.Worse-2) > 1e-12 {
		t.Errorf("rates %g %g worse %g, want 0.01 0.03 2", c.Serving, c.Canary, c.Worse)
	}
	// Under H0 at its boundary the test aborts at most Alpha of the time:
	// simulated with a normal approximation, a canary exactly at (1+δ)·ps
	// has z ≈ 0, p ≈ 0.5.
	b := errorRate(Side{Requests: 100000, ServerErrors: 1000}, Side{Requests: 100000, ServerErrors: 1020}, 0.02, Alpha)
	if b.Regressed || b.P < 0.3 {
		t.Errorf("canary at the tolerance: p %g regressed %v, want p ≈ 0.5", b.P, b.Regressed)
	}
}

func TestLatencyP99(t *testing.T) {
	c := latency(hist(100, 400, 300, 150, 30, 20, 0), hist(0, 100, 300, 300, 200, 80, 20), 0.02)
	// serving: rank 990 of 1000; 980 below (0.1, 0.2], 20 in it: 0.1 + 0.1·10/20.
	if math.Abs(c.Serving-0.15) > 1e-12 || c.Canary != 0.2 || !c.Regressed {
		t.Fatalf("p99 %g vs %g regressed %v, want 0.15 vs 0.2 (open bucket: last bound) regressed", c.Serving, c.Canary, c.Regressed)
	}
}

// TestLatencySlack: a p99 three times the serving one but under
// LatencySlack more (sub-millisecond models on a loaded host) is no
// regression; the same ratio in tenths of a second is.
func TestLatencySlack(t *testing.T) {
	micro := []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002}
	s := Histogram{Bounds: micro, Counts: []float64{900, 95, 5, 0, 0, 0}}
	c := Histogram{Bounds: micro, Counts: []float64{0, 0, 900, 95, 5, 0}}
	cmp := latency(s, c, 0.02)
	if cmp.Canary <= 2*cmp.Serving || cmp.Regressed {
		t.Fatalf("p99 %g vs %g regressed %v: want more than twice, not regressed (under the slack)", cmp.Serving, cmp.Canary, cmp.Regressed)
	}
}

// TestLatencyTail: a p99 that rests on a handful of slow requests (a
// loaded host pausing) is not a regression; a tail that many requests
// share is. Both canaries have 303 observations against the serving
// version's 1162, as in a 20 % canary; the serving p99 is ≈ 0.021 s.
func TestLatencyTail(t *testing.T) {
	serving := hist(0, 900, 250, 12, 0, 0, 0)
	few := latency(serving, hist(0, 240, 58, 5, 0, 0, 0), 0.02)
	if !(few.Canary > 1.4*few.Serving) || few.Regressed || !(few.P > 0.1) {
		t.Errorf("five slow requests: %v, regressed %v: want a p99 ≥ 1.4× the serving one, not regressed (p > 0.1)", few, few.Regressed)
	}
	many := latency(serving, hist(0, 200, 73, 30, 0, 0, 0), 0.02)
	if !many.Regressed || !(many.P < 1e-6) {
		t.Errorf("thirty slow requests: %v, regressed %v: want regressed, p < 1e-6", many, many.Regressed)
	}
}

func TestParams(t *testing.T) {
	if got := (Params{MinSamples: 10}).WithDefaults(); got != (Params{Duration: 10 * time.Minute, MinSamples: 10, MaxRegression: 0.02}) {
		t.Errorf("WithDefaults: %+v", got)
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := Params{Duration: -time.Second, MaxRegression: 1}.Validate()
	want := "duration: must be > 0, got -1s\nmin_samples: must be ≥ 1\nmax_regression: must be in [0, 1), got 1"
	if err == nil || err.Error() != want {
		t.Errorf("Validate: %v, want %q", err, want)
	}
}

func TestParseParams(t *testing.T) {
	cases := map[string]struct {
		duration string
		min      uint64
		max      float64
		want     Params
		err      string
	}{
		"defaults":        {want: DefaultParams()},
		"all set":         {duration: "30m", min: 100, max: 0.05, want: Params{30 * time.Minute, 100, 0.05}},
		"bad duration":    {duration: "ten", err: `duration: time: invalid duration "ten"`},
		"zero duration":   {duration: "0s", err: "duration: must be > 0, got 0s"},
		"negative margin": {max: -0.1, err: "max_regression: must be in [0, 1), got -0.1"},
		"margin of 1":     {max: 1, err: "max_regression: must be in [0, 1), got 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := ParseParams(tc.duration, tc.min, tc.max)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || p != tc.want {
				t.Fatalf("%+v %v, want %+v", p, err, tc.want)
			}
		})
	}
}
