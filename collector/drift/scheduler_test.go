package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

func newLogRecorder() *logRecorder { return &logRecorder{msgs: map[string]int{}} }

// logRecorder counts log messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[r.Message]++
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs[msg]
}

func TestSchedulerOpensOneIncident(t *testing.T) {
	noLeaks(t)
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	sc := driftScenario(now)
	sc.End = now.Add(30 * time.Minute) // drift goes on while the clock advances
	b, _ := sc.generate()
	insert(t, db, b, "gen")

	var (
		mu        sync.Mutex
		incidents []Incident
		asked     = map[string]int{}
	)
	clock := testenv.NewClock(now)
	cfg := DefaultConfig()
	s, err := NewScheduler(SchedulerConfig{
		Checker:  NewChecker(db.Conn, db.Name, "node-a", nil),
		Detector: NewDetector(cfg.For),
		Policy:   cfg.For,
		Owns: func(model string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked[model]++
			return model == "iris"
		},
		Models: func(context.Context, time.Time) ([]string, error) { return []string{"iris", "other"}, nil },
		OnIncident: func(_ context.Context, inc Incident) {
			mu.Lock()
			defer mu.Unlock()
			incidents = append(incidents, inc)
		},
		Tick: 5 * time.Millisecond,
		Now: func() time.Time { // one reading per round: each round a minute later
			t := clock.Now()
			clock.Advance(time.Minute)
			return t
		},
		Log: slog.New(newLogRecorder()),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	const checks = 10
	testenv.EventuallyNil(t, time.Minute, "10 checks", func() error {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM drift_results WHERE test = 'check'")
		if err == nil && n < checks {
			err = fmt.Errorf("%d checks", n)
		}
		return err
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run: no error")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(incidents) != 1 {
		t.Fatalf("%d incidents, want exactly 1: %+v", len(incidents), incidents)
	}
	inc := incidents[0]
	if inc.Model != "iris" || inc.Version != "3" || !inc.Start.Equal(now) || len(inc.Reasons) == 0 {
		t.Errorf("incident %+v, want iris v3 starting at the first check %v", inc, now)
	}
	if asked["other"] == 0 {
		t.Error("Owns was never asked about other")
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE model != 'iris'"); n != 0 {
		t.Errorf("%d rows for a model this node does not own", n)
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'incident' AND node = 'node-a'"); n != 1 {
		t.Errorf("%d incident rows, want 1", n)
	}
}

// fakeChecks is a Checks whose checks drift as drifted says (by the
// check's number, from 0), counted per version; it records incidents.
type fakeChecks struct {
	versions []string
	drifted  func(n int) bool

	mu        sync.Mutex
	checks    map[string][]time.Time // version → check times
	recorded  []Incident
	histories int
}

func (f *fakeChecks) ServingVersions(context.Context, string, time.Duration, time.Time) ([]string, error) {
	return f.versions, nil
}

func (f *fakeChecks) Check(_ context.Context, model, version string, _ Policy, now time.Time) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.checks == nil {
		f.checks = map[string][]time.Time{}
	}
	n := len(f.checks[version])
	f.checks[version] = append(f.checks[version], now)
	r := Result{Model: model, Version: version, Time: now, Drifted: f.drifted(n)}
	if r.Drifted {
		r.Reasons = []string{"dataset drift"}
	}
	return r, nil
}

func (f *fakeChecks) RecordIncident(_ context.Context, inc Incident, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, inc)
	return nil
}

func (f *fakeChecks) History(context.Context, string, string, time.Time, time.Time, int) (History, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.histories++
	return History{}, nil
}

func (f *fakeChecks) count(version string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.checks[version])
}

// runScheduler starts a Scheduler on checks for model iris (owned) in the
// test's synctest bubble, and returns the incidents it reports and a stop
// function that cancels it and waits for Run to return.
func runScheduler(t *testing.T, checks Checks, p Policy, log *logRecorder,
	models func(context.Context, time.Time) ([]string, error)) (incidents func() []Incident, stop func()) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []Incident
	)
	if models == nil {
		models = func(context.Context, time.Time) ([]string, error) { return []string{"iris"}, nil }
	}
	policy := func(string) Policy { return p }
	s, err := NewScheduler(SchedulerConfig{
		Checker: checks, Detector: NewDetector(policy), Policy: policy,
		Owns:   func(m string) bool { return m == "iris" },
		Models: models,
		OnIncident: func(_ context.Context, inc Incident) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, inc)
		},
		Tick: 5 * time.Second,
		Log:  slog.New(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() []Incident {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
}

// TestSchedulerChecksEveryInterval: with a 5 s tick and a 1 m interval,
// each serving version is checked once a minute, never in between.
func TestSchedulerChecksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		f := &fakeChecks{versions: []string{"3", "4"}, drifted: func(int) bool { return false }}
		_, stop := runScheduler(t, f, DefaultPolicy(), newLogRecorder(), nil)
		defer stop()
		time.Sleep(10*time.Minute + 2500*time.Millisecond)
		synctest.Wait()
		for _, v := range []string{"3", "4"} {
			if n := f.count(v); n != 11 {
				t.Errorf("v%s: %d checks in 10 minutes, want 11 (one at the start, one a minute)", v, n)
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, at := range f.checks["3"] {
			if want := t0.Add(time.Duration(i) * time.Minute); !at.Equal(want) {
				t.Errorf("check %d at %v, want %v", i, at.Sub(t0), want.Sub(t0))
			}
		}
		if f.histories != 2 {
			t.Errorf("detector restored %d times, want once per version", f.histories)
		}
	})
}

// TestSchedulerCooldown: steady drift opens one incident when the third
// check drifts, none for the 6 hours of cooldown after it, and the next as
// soon as the cooldown has passed, confirmed by checks after the first.
func TestSchedulerCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		f := &fakeChecks{versions: []string{"3"}, drifted: func(int) bool { return true }}
		incidents, stop := runScheduler(t, f, DefaultPolicy(), newLogRecorder(), nil)
		defer stop()

		time.Sleep(2*time.Minute + 2500*time.Millisecond)
		got := incidents()
		if len(got) != 1 || !got[0].Start.Equal(t0) || got[0].Model != "iris" || got[0].Version != "3" {
			t.Fatalf("after 3 drifted checks: incidents %+v, want one starting at the first check", got)
		}
		// The whole cooldown (it ends 6 h after the opening at t0+2m).
		time.Sleep(6*time.Hour - time.Minute)
		if got := incidents(); len(got) != 1 {
			t.Fatalf("during the cooldown: %d incidents, want still 1", len(got))
		}
		time.Sleep(time.Minute)
		got = incidents()
		if len(got) != 2 {
			t.Fatalf("after the cooldown: %d incidents, want 2", len(got))
		}
		// The last 5 checks, all after the first opening, confirm it.
		if want := t0.Add(6*time.Hour + 2*time.Minute - 4*time.Minute); !got[1].Start.Equal(want) {
			t.Errorf("second incident starts at t0+%v, want t0+%v", got[1].Start.Sub(t0), want.Sub(t0))
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.recorded) != 2 {
			t.Errorf("%d incidents recorded, want 2", len(f.recorded))
		}
	})
}

// TestSchedulerHysteresis: two drifted checks in five never open an
// incident, however long they go on; nor do checks without a verdict.
func TestSchedulerHysteresis(t *testing.T) {
	for name, drifted := range map[string]func(int) bool{
		"two of five": func(n int) bool { return n%5 == 0 || n%5 == 2 },
		"no verdicts": func(int) bool { return false },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeChecks{versions: []string{"3"}, drifted: drifted}
				incidents, stop := runScheduler(t, f, DefaultPolicy(), newLogRecorder(), nil)
				defer stop()
				time.Sleep(12*time.Hour + 2500*time.Millisecond)
				if got := incidents(); len(got) != 0 {
					t.Errorf("%d incidents in 12 hours, want none: %+v", len(got), got)
				}
				if n := f.count("3"); n != 12*60+1 {
					t.Errorf("%d checks, want %d", n, 12*60+1)
				}
			})
		})
	}
}

// TestSchedulerPausesOnceWhileClickHouseIsDown: five rounds fail with
// ClickHouse unavailable, then it is back: one warning, one recovery line,
// and no check or incident meanwhile.
func TestSchedulerPausesOnceWhileClickHouseIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		logs := newLogRecorder()
		f := &fakeChecks{versions: []string{"3"}, drifted: func(int) bool { return true }}
		incidents, stop := runScheduler(t, f, DefaultPolicy(), logs, func(context.Context, time.Time) ([]string, error) {
			if calls.Add(1) <= 5 {
				return nil, &unavailableError{op: "recent models", err: errors.New("connection refused")}
			}
			return nil, nil
		})
		defer stop()
		time.Sleep(10*5*time.Second + 2500*time.Millisecond) // 11 rounds
		synctest.Wait()
		if n := calls.Load(); n != 11 {
			t.Errorf("%d rounds, want 11", n)
		}
		if n := logs.count("drift checks paused: ClickHouse unavailable"); n != 1 {
			t.Errorf("paused logged %d times over 5 failed rounds, want once", n)
		}
		if n := logs.count("drift checks resumed: ClickHouse available"); n != 1 {
			t.Errorf("resumed logged %d times, want once", n)
		}
		if n := f.count("3"); n != 0 || len(incidents()) != 0 {
			t.Errorf("%d checks and %d incidents without models", n, len(incidents()))
		}
	})
}

func TestNewSchedulerNamesMissingDependencies(t *testing.T) {
	_, err := NewScheduler(SchedulerConfig{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"Checker", "Detector", "Policy", "Owns", "Models", "OnIncident"} {
		if !strings.Contains(err.Error(), name+" is required") {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// noLeaks checks, after every other cleanup (the test database's
// connections close in theirs), that the test left no goroutine behind.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}
