package drift

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// Drills of issue 16, "no retraining by forgery": what clients can send
// must not open an incident.

// requestFlood returns delta drover.requests points of model version, perMinute
// of each status from every host, every minute of [from, to).
func requestFlood(model, version string, hosts int, from, to time.Time, perMinute float64, statuses ...string) *store.Batch {
	b := &store.Batch{}
	for h := range hosts {
		host := fmt.Sprintf("host-%d", h)
		for at := from.Add(30 * time.Second); at.Before(to); at = at.Add(time.Minute) {
			for _, status := range statuses {
				b.Sums = append(b.Sums, store.SumRow{Point: store.Point{Time: at, StartTime: at.Add(-time.Minute),
					Service: semconv.ServiceNameAgent, Host: host, AgentID: "agent-" + host, Model: model, ModelVersion: version,
					Metric: semconv.MetricRequests, Attributes: map[string]string{semconv.AttrStatus: status}},
					Temporality: store.TemporalityDelta, IsMonotonic: true, Value: perMinute})
			}
		}
	}
	return b
}

// checkRounds runs n checks of model version, a minute apart from now,
// through a Detector, and returns the incidents they open and the last
// result.
func checkRounds(t *testing.T, c *Checker, p Policy, model, version string, now time.Time, n int) ([]Incident, Result) {
	t.Helper()
	d := NewDetector(func(string) Policy { return p })
	var incidents []Incident
	var r Result
	for i := range n {
		at := now.Add(time.Duration(i) * time.Minute)
		var err error
		if r, err = c.Check(context.Background(), model, version, p, at); err != nil {
			t.Fatal(err)
		}
		if inc := d.Observe(model, version, r, at); inc != nil {
			incidents = append(incidents, *inc)
		}
	}
	return incidents, r
}

func errorRate(r Result) (Signal, bool) {
	for _, s := range r.Signals {
		if s.Test == store.DriftTestErrorRate {
			return s, true
		}
	}
	return Signal{}, false
}

// TestDrillClientFailuresDoNotOpenIncidents: a client flooding an agent
// with bad requests (invalid input, unknown versions, requests it cancels)
// leaves the error rate where it was; the same flood of server errors
// opens an incident.
func TestDrillClientFailuresDoNotOpenIncidents(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	sc := driftScenario(now)
	sc.Drifted, sc.F1Cur, sc.LateHost, sc.Restarted = nil, sc.F1Ref, false, false // nothing drifts
	sc.Temporality = "delta"
	sc.End = now.Add(10 * time.Minute)
	b, _ := sc.generate()
	insert(t, db, b, "gen")
	// Ten times the traffic, all refused for the client's fault, over the
	// last 30 minutes.
	insert(t, db, requestFlood("iris", "3", sc.Hosts, now.Add(-30*time.Minute), sc.End, 1000,
		semconv.StatusBadRequest, semconv.StatusNotFound, semconv.StatusCancelled), "client flood")

	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	p := DefaultPolicy()
	incidents, r := checkRounds(t, c, p, "iris", "3", now, 5)
	if len(incidents) != 0 {
		t.Errorf("client failures opened %d incidents: %+v", len(incidents), incidents)
	}
	s, ok := errorRate(r)
	// Ok and server errors only: 1 error in 101 requests in both windows.
	if !ok || s.NoVerdict != "" || s.Drifted || math.Abs(s.Current-1.0/101) > 1e-9 || math.Abs(s.Reference-1.0/101) > 1e-9 {
		t.Errorf("error rate with a client flood: %+v (found %v), want 1/101 in both windows, not drifted", s, ok)
	}

	// The same volume of server failures is drift.
	insert(t, db, requestFlood("iris", "3", sc.Hosts, now.Add(-30*time.Minute), sc.End, 100,
		semconv.StatusError, semconv.StatusTimeout, semconv.StatusUnavailable), "server failures")
	incidents, r = checkRounds(t, c, p, "iris", "3", now.Add(5*time.Minute), 5)
	if len(incidents) != 1 {
		t.Errorf("server errors opened %d incidents, want 1", len(incidents))
	}
	if s, ok := errorRate(r); !ok || !s.Drifted {
		t.Errorf("error rate with server failures: %+v, want drifted", s)
	}
}

// TestDrillForgedPointsDoNotOpenIncidents: a handful of points for a
// version (all requests failing, all slow, all mislabelled, all in one
// bucket) gets no verdict and opens no incident, whatever they say.
func TestDrillForgedPointsDoNotOpenIncidents(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	start := now.Add(-2 * time.Hour)
	b := &store.Batch{}
	point := func(at time.Time, metric string, attrs map[string]string) store.Point {
		return store.Point{Time: at, StartTime: at.Add(-time.Minute), Service: semconv.ServiceNameAgent, Host: "h", AgentID: "a",
			Model: "forged", ModelVersion: "7", Metric: metric, Attributes: attrs}
	}
	// The reference: a few healthy points; the current window: a few
	// failing ones.
	for i, at := range []time.Time{start.Add(time.Minute), now.Add(-10 * time.Minute)} {
		status, bucket, f1, lat := semconv.StatusOK, 0, 0.95, []uint64{5, 0, 0, 0}
		if i == 1 {
			status, bucket, f1, lat = semconv.StatusError, 5, 0.0, []uint64{0, 0, 0, 5}
		}
		b.Sums = append(b.Sums,
			store.SumRow{Point: point(at, semconv.MetricRequests, map[string]string{semconv.AttrStatus: status}),
				Temporality: store.TemporalityDelta, IsMonotonic: true, Value: 5},
			store.SumRow{Point: point(at, semconv.MetricFeedback, map[string]string{semconv.AttrStatus: "joined"}),
				Temporality: store.TemporalityDelta, IsMonotonic: true, Value: 5})
		counts := make([]uint64, len(testBounds)+1)
		counts[bucket] = 5
		b.Histograms = append(b.Histograms,
			store.HistogramRow{Point: point(at, semconv.MetricDistribution, nil), Feature: "x", Temporality: store.TemporalityDelta,
				Count: 5, Bounds: testBounds, Counts: counts},
			store.HistogramRow{Point: point(at, semconv.MetricRequestLatency, nil), Temporality: store.TemporalityDelta,
				Count: 5, Bounds: []float64{0.001, 0.01, 0.1}, Counts: lat})
		b.Gauges = append(b.Gauges, store.GaugeRow{Point: point(at, semconv.MetricEval,
			map[string]string{semconv.AttrMetric: "f1", semconv.AttrSource: "labels"}), Value: f1})
	}
	insert(t, db, b, "forged")

	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	incidents, r := checkRounds(t, c, DefaultPolicy(), "forged", "7", now, 5)
	if len(incidents) != 0 || r.Drifted {
		t.Errorf("forged points opened %d incidents (last check drifted %v: %q)", len(incidents), r.Drifted, r.Reasons)
	}
	tests := map[string]bool{}
	for _, s := range r.Signals {
		tests[s.Test] = true
		if s.NoVerdict == "" || s.Drifted {
			t.Errorf("signal %s %s judged on forged points: %+v", s.Test, s.Name, s)
		}
	}
	if !tests[store.DriftTestErrorRate] || !tests[store.DriftTestP99] || !tests[store.DriftTestMetric] {
		t.Errorf("signals %+v, want error_rate, p99 and metric without a verdict", r.Signals)
	}
	if len(r.Features) != 1 || r.Features[0].Verdict {
		t.Errorf("features %+v, want x without a verdict", r.Features)
	}
	// The rows say why.
	testenv.Eventually(t, 30*time.Second, "no-verdict signal rows", func() bool {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM drift_results WHERE model = 'forged' AND test IN ('error_rate', 'p99', 'metric') AND isNaN(value) AND NOT drifted AND position(reference, 'no verdict') > 0")
		return err == nil && n == 3*5
	})
}
