package drift

import (
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/drover-ml/drover/collector/store"
)

func driftScenario(now time.Time) scenario {
	return scenario{
		Model: "iris", Version: "3", Start: now.Add(-3 * time.Hour), End: now, DriftFrom: now.Add(-time.Hour),
		Hosts: 5, Features: 4, Drifted: map[string]bool{"f0": true, "f1": true, "f2": true}, Shift: 1,
		PerMinute: 40, F1Ref: 0.9, F1Cur: 0.8, LateHost: true, Restarted: true,
	}
}

// TestCheckDetectsShiftedFeatures runs one scenario with cumulative data
// (series increases from metrics_histogram), delta data (minute rollups)
// and both mixed, and compares every count with the generated increments.
func TestCheckDetectsShiftedFeatures(t *testing.T) {
	for _, temporality := range []string{"cumulative", "delta", "mixed"} {
		t.Run(temporality, func(t *testing.T) { testCheckDetectsShiftedFeatures(t, temporality) })
	}
}

func testCheckDetectsShiftedFeatures(t *testing.T, temporality string) {
	db := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	sc := driftScenario(now)
	sc.Temporality = temporality
	b, gen := sc.generate()
	insert(t, db, b, "gen")

	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	p := DefaultPolicy()
	r, err := c.Check(ctx, "iris", "3", p, now)
	if err != nil {
		t.Fatal(err)
	}
	refStart := sc.Start.Add(30 * time.Second) // the first point
	if temporality != "cumulative" {
		refStart = sc.Start // the minute of the first point, from the rollups
	}
	if r.ReferenceWindow != (Window{refStart, refStart.Add(time.Hour)}) || r.Window != (Window{now.Add(-time.Hour), now}) {
		t.Errorf("windows: reference %v, current %v", r.ReferenceWindow, r.Window)
	}
	if len(r.Features) != 4 {
		t.Fatalf("features: %+v", r.Features)
	}
	for _, f := range r.Features {
		wantRef := offline(gen, f.Feature, r.ReferenceWindow.Start, r.ReferenceWindow.End)
		wantCur := offline(gen, f.Feature, r.Window.Start, r.Window.End)
		if !slices.Equal(f.Reference, wantRef) || !slices.Equal(f.Current, wantCur) {
			t.Errorf("%s: counts ref %v cur %v; offline ref %v cur %v", f.Feature, f.Reference, f.Current, wantRef, wantCur)
		}
		psi, _ := PSI(wantRef, wantCur)
		if !f.Verdict || math.Abs(f.PSI-psi) > 1e-9 {
			t.Errorf("%s: verdict %v, PSI %v, offline %v", f.Feature, f.Verdict, f.PSI, psi)
		}
		if want := sc.Drifted[f.Feature]; f.Drifted != want {
			t.Errorf("%s: drifted %v (PSI %.4f, JS %.4f), want %v", f.Feature, f.Drifted, f.PSI, f.JS, want)
		}
		if f.Drifted && (f.PSI < 0.3 || f.KS < 0.2 || f.Wasserstein < 0.1) {
			t.Errorf("%s: weak drift statistics %+v", f.Feature, f)
		}
		if !f.Drifted && (f.PSI > 0.02 || f.JS > 0.01) {
			t.Errorf("%s: stable feature with PSI %v JS %v", f.Feature, f.PSI, f.JS)
		}
	}
	if !r.DatasetVerdict || !r.DatasetDrifted || r.DriftedShare != 0.75 || !r.Drifted {
		t.Errorf("dataset: verdict %v drifted %v share %v", r.DatasetVerdict, r.DatasetDrifted, r.DriftedShare)
	}
	signals := map[string]Signal{}
	for _, s := range r.Signals {
		signals[s.Test+"/"+s.Name] = s
	}
	if s := signals["metric/f1/labels"]; !s.Drifted || math.Abs(s.Value-0.1) > 1e-9 {
		t.Errorf("f1 signal %+v, want drifted by 0.1", s)
	}
	if s, ok := signals["metric/accuracy/labels"]; !ok || s.Drifted || math.Abs(s.Value) > 1e-9 {
		t.Errorf("accuracy signal %+v, want present and not drifted", s)
	}
	if s, ok := signals["error_rate/"]; !ok || s.Drifted || math.Abs(s.Current-1.0/101) > 1e-9 || math.Abs(s.Value) > 1e-9 {
		t.Errorf("error rate signal %+v, want 1/101 in both windows", s)
	}
	if s, ok := signals["p99/"]; !ok || s.Drifted || math.Abs(s.Value-1) > 1e-9 {
		t.Errorf("p99 signal %+v, want ratio 1", s)
	}
	if len(r.Reasons) != 2 {
		t.Errorf("reasons %q, want dataset drift and f1", r.Reasons)
	}

	// Everything is in drift_results.
	q := "SELECT count() FROM drift_results WHERE model = 'iris' AND model_version = '3' AND node = 'node-a' AND test = ?"
	for test, want := range map[string]uint64{"psi": 4, "js": 4, "ks": 4, "wasserstein": 4, "dataset": 1, "metric": 2, "error_rate": 1, "p99": 1, "check": 1} {
		if n := db.Count(t, q, test); n != want {
			t.Errorf("%d %s rows, want %d", n, test, want)
		}
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'psi' AND drifted"); n != 3 {
		t.Errorf("%d drifted psi rows, want 3", n)
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'check' AND drifted AND value = 1"); n != 1 {
		t.Errorf("check row not drifted")
	}
	// A retried check (same time) writes nothing twice.
	if _, err := c.Check(ctx, "iris", "3", p, now); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'check'"); n != 1 {
		t.Errorf("%d check rows after a retry, want 1", n)
	}
}

func TestCheckBelowMinSamplesHasNoVerdict(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	b, _ := driftScenario(now).generate()
	insert(t, db, b, "gen")
	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	p := DefaultPolicy()
	p.MinSamples = 1_000_000
	p.MetricDegradation = map[string]float64{"accuracy": 0.05}
	r, err := c.Check(context.Background(), "iris", "3", p, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Features {
		if f.Verdict || f.Drifted || f.NoVerdict == "" {
			t.Errorf("%s: verdict %v drifted %v (%q), want no verdict", f.Feature, f.Verdict, f.Drifted, f.NoVerdict)
		}
	}
	if r.DatasetVerdict || r.DatasetDrifted || r.Drifted {
		t.Errorf("dataset verdict %v drifted %v, check drifted %v; want none", r.DatasetVerdict, r.DatasetDrifted, r.Drifted)
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'no_verdict' AND NOT drifted AND threshold = 1e6"); n != 4 {
		t.Errorf("%d no_verdict rows, want 4", n)
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test IN ('psi', 'js') OR drifted"); n != 0 {
		t.Errorf("%d psi/js or drifted rows, want 0", n)
	}

	// A version whose first window has not ended yet: no verdict either.
	r, err = c.Check(context.Background(), "iris", "3", DefaultPolicy(), now.Add(-150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r.DatasetVerdict || r.Drifted || len(r.Features) == 0 || r.Features[0].NoVerdict != "reference window not complete" {
		t.Errorf("young version: %+v", r)
	}
}

func TestCheckManifestReference(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	b, gen := driftScenario(now).generate()
	insert(t, db, b, "gen")
	p := DefaultPolicy()
	p.Reference = ReferenceManifest
	r, err := NewChecker(db.Conn, db.Name, "n", nil).Check(context.Background(), "iris", "3", p, now)
	if err != nil {
		t.Fatal(err)
	}
	f := r.Features[3]
	cur := offline(gen, "f3", r.Window.Start, r.Window.End)
	n := cur[0] + cur[1] + cur[2] + cur[3] + cur[4] + cur[5]
	want := []float64{0, n / 4, n / 4, n / 4, n / 4, 0}
	if !slices.Equal(f.Reference, want) || r.Reference != "manifest" {
		t.Errorf("manifest reference %v (%s), want %v", f.Reference, r.Reference, want)
	}
	psi, _ := PSI(want, cur)
	if math.Abs(f.PSI-psi) > 1e-9 {
		t.Errorf("PSI %v, offline %v", f.PSI, psi)
	}
}

func TestCheckUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = NewChecker(conn, "drover", "n", nil).Check(context.Background(), "iris", "3", DefaultPolicy(), time.Now())
	if !errors.Is(err, ErrUnavailable) || !store.IsRetryable(err) {
		t.Errorf("err = %v; want ErrUnavailable, retryable", err)
	}
}
