package analysis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// traffic is what one host of one version sends every minute.
type traffic struct {
	version     string
	host        string
	cumulative  bool // requests and latency as cumulative series (else delta, as agents send them)
	from, to    time.Time
	statuses    map[string]float64 // drover.requests by status, a minute
	latency     []uint64           // drover.request.duration buckets (latBounds), a minute
	joined      float64            // labels joined to samples, a minute (a cumulative counter, as agents send it)
	evals       map[string]float64 // drover.eval, source labels
	otherEvals  bool               // also a per-class and a golden-source value, which the analysis leaves out
	startBefore time.Duration      // series start this long before from (cumulative)
}

func (tr traffic) rows(model string, b *store.Batch) {
	point := func(at, start time.Time, metric string) store.Point {
		return store.Point{Time: at, StartTime: start, Service: semconv.ServiceNameAgent, Host: tr.host,
			AgentID: "agent-" + tr.host, Model: model, ModelVersion: tr.version, Metric: metric}
	}
	start := tr.from.Add(-tr.startBefore - 10*time.Second)
	cum := map[string]float64{}
	lat := make([]uint64, len(tr.latency))
	var joined float64
	for at := tr.from.Add(30 * time.Second); at.Before(tr.to); at = at.Add(time.Minute) {
		for status, n := range tr.statuses {
			p := point(at, at.Add(-time.Minute), semconv.MetricRequests)
			p.Attributes = map[string]string{semconv.AttrStatus: status}
			row := store.SumRow{Point: p, Temporality: store.TemporalityDelta, IsMonotonic: true, Value: n}
			if tr.cumulative {
				cum[status] += n
				row.StartTime, row.Temporality, row.Value = start, store.TemporalityCumulative, cum[status]
			}
			b.Sums = append(b.Sums, row)
		}
		var n uint64
		for i, c := range tr.latency {
			lat[i] += c
			n += c
		}
		h := store.HistogramRow{Point: point(at, at.Add(-time.Minute), semconv.MetricRequestLatency),
			Temporality: store.TemporalityDelta, Count: n, Bounds: latBounds, Counts: append([]uint64(nil), tr.latency...)}
		if tr.cumulative {
			h.StartTime, h.Temporality, h.Counts, h.Count = start, store.TemporalityCumulative, append([]uint64(nil), lat...), 0
			for _, c := range lat {
				h.Count += c
			}
		}
		b.Histograms = append(b.Histograms, h)
		joined += tr.joined
		fp := point(at, start, semconv.MetricFeedback)
		fp.Attributes = map[string]string{semconv.AttrStatus: "joined"}
		b.Sums = append(b.Sums, store.SumRow{Point: fp, Temporality: store.TemporalityCumulative, IsMonotonic: true, Value: joined})
		for metric, v := range tr.evals {
			p := point(at, time.Time{}, semconv.MetricEval)
			p.Attributes = map[string]string{semconv.AttrMetric: metric, semconv.AttrSource: "labels"}
			b.Gauges = append(b.Gauges, store.GaugeRow{Point: p, Value: v})
			if tr.otherEvals {
				p.Attributes = map[string]string{semconv.AttrMetric: metric, semconv.AttrSource: "golden"}
				b.Gauges = append(b.Gauges, store.GaugeRow{Point: p, Value: 0})
				p.Attributes = map[string]string{semconv.AttrMetric: metric, semconv.AttrSource: "labels", semconv.AttrClass: "setosa"}
				b.Gauges = append(b.Gauges, store.GaugeRow{Point: p, Value: 0})
			}
		}
	}
}

func insert(t testing.TB, db *testenv.DB, b *store.Batch) {
	t.Helper()
	st := store.New(db.Conn, db.Name, db.Options)
	defer st.Close()
	if err := st.Insert(context.Background(), b, ""); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

// TestAnalyze inserts a serving version v1 (two hosts: one sending deltas,
// one cumulative series that started 30 minutes before the canary) and a
// canary v2 per scenario, and checks what Observe reads and what Analyze
// decides.
func TestAnalyze(t *testing.T) {
	db := migrated(t)
	a := NewAnalyzer(db.Conn, db.Name)
	since := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	end := since.Add(15 * time.Minute)
	servingStatuses := map[string]float64{"ok": 98, "error": 1, "timeout": 1, "bad_request": 5, "cancelled": 2}
	baseLat := []uint64{10, 40, 30, 15, 3, 2, 0} // p99 0.15
	serving := func(host string, cumulative bool) traffic {
		return traffic{version: "1", host: host, cumulative: cumulative, from: since.Add(-30 * time.Minute), to: end,
			statuses: servingStatuses, latency: baseLat, joined: 40,
			evals: map[string]float64{"accuracy": 0.95, "f1": 0.90}, otherEvals: true}
	}
	canary := func(statuses map[string]float64, lat []uint64, joined float64, evals map[string]float64) traffic {
		return traffic{version: "2", host: "host-c", from: since, to: end, statuses: statuses, latency: lat,
			joined: joined, evals: evals}
	}
	good := map[string]float64{"ok": 99, "error": 1, "bad_request": 30}
	goodLat := []uint64{20, 40, 30, 8, 1, 1, 0}
	goodEval := map[string]float64{"accuracy": 0.96, "f1": 0.91}
	cases := map[string]struct {
		canary traffic
		now    time.Time
		want   Decision
		metric string
		reason string // a substring of Reason
	}{
		"better canary promotes": {canary: canary(good, goodLat, 40, goodEval), now: end, want: Promote,
			reason: "error_rate 1% (canary, n=1500) vs 2% (serving, n=3000)"},
		"worse error rate aborts early": {canary: canary(map[string]float64{"ok": 94, "unavailable": 6}, goodLat, 40, goodEval),
			now: since.Add(6*time.Minute + 10*time.Second), want: Abort, metric: MetricErrorRate},
		"slower canary aborts": {canary: canary(good, []uint64{0, 10, 30, 30, 20, 8, 2}, 40, goodEval), now: end, want: Abort,
			metric: MetricLatencyP99, reason: "latency_p99 0.2s (canary, n=1500) vs 0.15s (serving, n=3000), +33.3%"},
		"worse f1 aborts": {canary: canary(good, goodLat, 40, map[string]float64{"accuracy": 0.95, "f1": 0.85}), now: end,
			want: Abort, metric: MetricF1, reason: "f1 0.85 (canary, n=600) vs 0.9 (serving, n=1200), -0.05"},
		"too few requests wait": {canary: canary(map[string]float64{"ok": 20}, []uint64{20}, 40, goodEval), now: end, want: Wait,
			reason: "requests: canary 300 of 500"},
		"duration not elapsed waits": {canary: canary(good, goodLat, 40, goodEval), now: since.Add(8*time.Minute + 10*time.Second),
			want: Wait, reason: "duration: 8m10s of 10m0s"},
		"worse f1 with too few labels promotes": {canary: canary(good, goodLat, 10, map[string]float64{"accuracy": 0.5, "f1": 0.5}),
			now: end, want: Promote, reason: "not compared: accuracy, f1: joined labels canary 150, serving 1200, of 500"},
	}
	var i int
	for name, tc := range cases {
		i++
		model := fmt.Sprintf("m%d", i)
		t.Run(name, func(t *testing.T) {
			b := &store.Batch{}
			serving("host-0", false).rows(model, b)
			serving("host-1", true).rows(model, b)
			tc.canary.rows(model, b)
			insert(t, db, b)
			c := Canary{Model: model, Serving: 1, Version: 2, Started: since, Revision: 3}
			v, err := a.Analyze(context.Background(), c, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if v.Decision != tc.want {
				t.Fatalf("decision %s (%s), want %s", v.Decision, v.Reason, tc.want)
			}
			if tc.metric != "" && !strings.HasPrefix(v.Reason, "regressed: "+tc.metric+" ") {
				t.Errorf("reason %q does not name %s", v.Reason, tc.metric)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", v.Reason, tc.reason)
			}
		})
	}
}

// TestObserve checks the values read against the inserted ones: only the
// window's increase of the cumulative host, client outcomes left out,
// per-class and golden evaluations left out.
func TestObserve(t *testing.T) {
	db := migrated(t)
	a := NewAnalyzer(db.Conn, db.Name)
	since := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	end := since.Add(15 * time.Minute)
	b := &store.Batch{}
	statuses := map[string]float64{"ok": 98, "error": 1, "timeout": 1, "bad_request": 5, "cancelled": 2}
	lat := []uint64{10, 40, 30, 15, 3, 2, 0}
	for h, cumulative := range []bool{false, true} {
		traffic{version: "1", host: fmt.Sprint("host-", h), cumulative: cumulative, from: since.Add(-30 * time.Minute), to: end,
			statuses: statuses, latency: lat, joined: 40, evals: map[string]float64{"f1": 0.9}, otherEvals: true,
			startBefore: 0}.rows("iris", b)
	}
	traffic{version: "2", host: "host-c", cumulative: true, from: since, to: end, statuses: map[string]float64{"ok": 50, "unavailable": 2},
		latency: lat, joined: 7, evals: map[string]float64{"mse": 0.25}}.rows("iris", b)
	traffic{version: "3", host: "host-c", from: since, to: end, statuses: map[string]float64{"ok": 1000}, latency: lat}.rows("iris", b)
	insert(t, db, b)
	o, err := a.Observe(context.Background(), "iris", 1, 2, since, end)
	if err != nil {
		t.Fatal(err)
	}
	if o.Elapsed != 15*time.Minute {
		t.Errorf("elapsed %s", o.Elapsed)
	}
	s, c := o.Serving, o.Canary
	if s.Requests != 2*15*100 || s.ServerErrors != 2*15*2 || c.Requests != 15*52 || c.ServerErrors != 15*2 {
		t.Errorf("requests serving %d/%d canary %d/%d, want 3000/60 780/30", s.ServerErrors, s.Requests, c.ServerErrors, c.Requests)
	}
	wantLat := func(hosts uint64) string {
		out := make([]string, len(lat))
		for i, v := range lat {
			out[i] = fmt.Sprint(float64(v * 15 * hosts))
		}
		return strings.Join(out, " ")
	}
	if got := strings.Trim(fmt.Sprint(s.Latency.Counts), "[]"); got != wantLat(2) {
		t.Errorf("serving latency %s, want %s", got, wantLat(2))
	}
	if got := strings.Trim(fmt.Sprint(c.Latency.Counts), "[]"); got != wantLat(1) {
		t.Errorf("canary latency %s, want %s", got, wantLat(1))
	}
	if s.Labels != 2*15*40 || c.Labels != 15*7 {
		t.Errorf("labels %d %d, want 1200 105", s.Labels, c.Labels)
	}
	if len(s.Eval) != 1 || math.Abs(s.Eval["f1"]-0.9) > 1e-9 || len(c.Eval) != 1 || c.Eval["mse"] != 0.25 {
		t.Errorf("evals %v %v, want f1 0.9, mse 0.25", s.Eval, c.Eval)
	}
}

// TestAnalyzeLabelsHook checks that Labels, when set, replaces the
// agents' evaluation gauges: its metrics and counts are what is compared,
// over the canary's window.
func TestAnalyzeLabelsHook(t *testing.T) {
	db := migrated(t)
	a := NewAnalyzer(db.Conn, db.Name)
	since := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	end := since.Add(15 * time.Minute)
	b := &store.Batch{}
	lat := []uint64{10, 40, 30, 15, 3, 2, 0}
	evals := map[string]float64{"accuracy": 0.95, "f1": 0.9} // the same on both: the gauges alone would promote
	traffic{version: "1", host: "host-0", from: since, to: end, statuses: map[string]float64{"ok": 100}, latency: lat,
		joined: 40, evals: evals}.rows("iris", b)
	traffic{version: "2", host: "host-1", from: since, to: end, statuses: map[string]float64{"ok": 100}, latency: lat,
		joined: 40, evals: evals}.rows("iris", b)
	insert(t, db, b)
	var mu sync.Mutex
	var asked []string
	a.Labels = func(_ context.Context, model, version string, from, to time.Time) (uint64, map[string]float64, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, fmt.Sprintf("%s v%s %s %s", model, version, from.Sub(since), to.Sub(since)))
		if version == "2" {
			return 700, map[string]float64{"accuracy": 0.94, "f1": 0.8}, nil
		}
		return 800, map[string]float64{"accuracy": 0.95, "f1": 0.9}, nil
	}
	v, err := a.Analyze(context.Background(), Canary{Model: "iris", Serving: 1, Version: 2, Started: since}, end)
	if err != nil {
		t.Fatal(err)
	}
	want := "regressed: f1 0.8 (canary, n=700) vs 0.9 (serving, n=800), -0.1"
	if v.Decision != Abort || v.Reason != want {
		t.Errorf("verdict %s %q, want abort %q", v.Decision, v.Reason, want)
	}
	slices.Sort(asked)
	if got := strings.Join(asked, "; "); got != "iris v1 0s 15m0s; iris v2 0s 15m0s" {
		t.Errorf("Labels asked for %s", got)
	}
	if _, err := a.Analyze(context.Background(), Canary{Model: "iris", Serving: 2, Version: 2, Started: since}, end); err == nil {
		t.Error("a canary equal to the serving version analyzed")
	}
}
