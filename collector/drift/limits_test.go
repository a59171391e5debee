package drift

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drover-ml/drover/shared/testenv"
)

// Drills of issue 16: incidents per model are capped, what the scheduler
// tracks is bounded, and the state of vanished versions is dropped.

// limitedScheduler is a Scheduler on checks for the models models returns,
// all owned, with limits, reporting to reg and logs; rounds are run by the
// test (round), not by Run.
func limitedScheduler(t *testing.T, checks Checks, limits Limits, models func() []string, now func() time.Time,
	reg prometheus.Registerer, logs *logRecorder) (*Scheduler, func() []Incident) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []Incident
	)
	cfg := DefaultConfig()
	s, err := NewScheduler(SchedulerConfig{
		Checker: checks, Detector: NewDetector(cfg.For), Policy: cfg.For,
		Owns:   func(string) bool { return true },
		Models: func(context.Context, time.Time) ([]string, error) { return models(), nil },
		OnIncident: func(_ context.Context, inc Incident) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, inc)
		},
		Limits: limits, Registerer: reg, Now: now, Log: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, func() []Incident {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestDrillOpenIncidentsPerModelCapped: five versions of one model drift
// at once (a sender inventing versions, or a real outage): two incidents
// open, the other three confirmations are logged and counted once each,
// not opened; once the first incidents' cooldown is over, the ones still
// drifting open.
func TestDrillOpenIncidentsPerModelCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeChecks{versions: []string{"1", "2", "3", "4", "5"}, drifted: func(int) bool { return true }}
		reg := prometheus.NewRegistry()
		logs := newLogRecorder()
		limits := DefaultLimits()
		limits.MaxVersionsPerModel = 5
		s, incidents := limitedScheduler(t, f, limits, func() []string { return []string{"iris"} }, time.Now, reg, logs)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		time.Sleep(10*time.Minute + 2500*time.Millisecond)
		synctest.Wait()
		if got := incidents(); len(got) != 2 {
			t.Errorf("%d incidents with max_open_incidents_per_model 2, want 2: %+v", len(got), got)
		}
		if n := testutil.ToFloat64(s.metrics.suppressed); n != 3 {
			t.Errorf("suppressed counted %v, want 3 (once per version)", n)
		}
		if n := logs.count("drift incident suppressed: the model has max_open_incidents_per_model incidents open"); n != 3 {
			t.Errorf("suppressed logged %d times, want 3", n)
		}
		f.mu.Lock()
		recorded := len(f.recorded)
		f.mu.Unlock()
		if recorded != 2 {
			t.Errorf("%d incidents recorded in drift_results, want 2", recorded)
		}

		// The first two close after their 6 h cooldown; the next two open.
		time.Sleep(6 * time.Hour)
		synctest.Wait()
		if got := incidents(); len(got) != 4 {
			t.Errorf("after the cooldown: %d incidents, want 4", len(got))
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// TestDrillTrackedModelsAndVersionsBounded: a sender inventing model names
// and versions makes the scheduler check no more than max_models models
// (the ones it tracked keep their place) and max_versions_per_model
// versions of each.
func TestDrillTrackedModelsAndVersionsBounded(t *testing.T) {
	versions := make([]string, 50)
	for i := range versions {
		versions[i] = fmt.Sprint(i + 1)
	}
	f := &fakeChecks{versions: versions, drifted: func(int) bool { return false }}
	clock := testenv.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	models := []string{"zeta"}
	reg := prometheus.NewRegistry()
	limits := Limits{MaxModels: 3, MaxVersionsPerModel: 2, MaxOpenIncidentsPerModel: 1, ForgetAfter: time.Hour}
	s, _ := limitedScheduler(t, f, limits, func() []string { return models }, clock.Now, reg, newLogRecorder())
	ctx := t.Context()
	s.round(ctx)
	// A flood of invented names, sorted before the real one.
	for i := range 1000 {
		models = append(models, fmt.Sprintf("a%04d", i))
	}
	slices.Sort(models)
	clock.Advance(time.Minute)
	s.round(ctx)

	checked := map[string]bool{}
	f.mu.Lock()
	for v := range f.checks {
		checked[v] = true
	}
	f.mu.Unlock()
	if len(checked) != 2 || !checked["1"] || !checked["2"] {
		t.Errorf("versions checked %v, want the first two ServingVersions gives (most requests)", checked)
	}
	if len(s.last) != 3 {
		t.Errorf("%d models tracked, want max_models 3", len(s.last))
	}
	if _, ok := s.last["zeta"]; !ok {
		t.Error("the tracked model zeta lost its place to invented names")
	}
	if n := s.cfg.Detector.Len(); n > 3*2 {
		t.Errorf("detector holds %d versions, want at most 6", n)
	}
	if n := testutil.ToFloat64(s.metrics.skipped.WithLabelValues("max_models")); n != 998 {
		t.Errorf("skipped models counted %v, want 998", n)
	}
}

// TestDrillVanishedVersionStateDropped: a version checked once (the
// Checker caches its start) that stops reporting keeps no state anywhere
// once forget_after has passed.
func TestDrillVanishedVersionStateDropped(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	sc := driftScenario(now)
	sc.Temporality = "delta"
	b, _ := sc.generate()
	insert(t, db, b, "gen")

	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	clock := testenv.NewClock(now)
	limits := DefaultLimits()
	limits.ForgetAfter = 3 * time.Hour
	s, _ := limitedScheduler(t, c, limits, func() []string { return []string{"iris"} }, clock.Now, nil, newLogRecorder())
	ctx := t.Context()
	s.round(ctx)
	if c.cached() != 1 || s.cfg.Detector.Len() != 1 || len(s.seen) != 1 {
		t.Fatalf("after a check: checker caches %d versions, detector %d, scheduler %d; want 1 each",
			c.cached(), s.cfg.Detector.Len(), len(s.seen))
	}
	// The version stops reporting: out of the window (1 h), then past
	// forget_after.
	clock.Advance(2 * time.Hour)
	s.round(ctx)
	if s.cfg.Detector.Len() != 0 {
		t.Errorf("detector holds %d versions once none serves, want 0", s.cfg.Detector.Len())
	}
	clock.Advance(2 * time.Hour)
	s.round(ctx)
	if c.cached() != 0 || len(s.seen) != 0 || len(s.owned) != 0 {
		t.Errorf("past forget_after: checker caches %d versions, scheduler tracks %d (owned %d); want none",
			c.cached(), len(s.seen), len(s.owned))
	}
}

// TestServingVersionsMostRequestsFirst: max_versions_per_model keeps the
// versions with the most requests, so a sender inventing versions needs
// more traffic than the real ones to push them out.
func TestServingVersionsMostRequestsFirst(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	from := now.Add(-30 * time.Minute)
	for version, perMinute := range map[string]float64{"1": 5, "2": 500, "10": 50} {
		insert(t, db, requestFlood("iris", version, 1, from, now, perMinute, "ok"), "v"+version)
	}
	got, err := NewChecker(db.Conn, db.Name, "node-a", nil).ServingVersions(context.Background(), "iris", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"2", "10", "1"}; !slices.Equal(got, want) {
		t.Errorf("ServingVersions = %v, want %v (most requests first)", got, want)
	}
}
