package drift

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeClock advances by step at every reading.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	clock := &fakeClock{now: now, step: time.Minute}
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
		Now:  clock.Now,
		Log:  slog.New(&logRecorder{msgs: map[string]int{}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	const checks = 10
	waitFor(t, "10 checks", func() bool {
		return count(t, db, "SELECT count() FROM drift_results WHERE test = 'check'") >= checks
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
	if n := count(t, db, "SELECT count() FROM drift_results WHERE model != 'iris'"); n != 0 {
		t.Errorf("%d rows for a model this node does not own", n)
	}
	if n := count(t, db, "SELECT count() FROM drift_results WHERE test = 'incident' AND node = 'node-a'"); n != 1 {
		t.Errorf("%d incident rows, want 1", n)
	}
}

func TestSchedulerPausesOnceWhileClickHouseIsDown(t *testing.T) {
	noLeaks(t)
	db := migrated(t)
	var calls atomic.Int32
	logs := &logRecorder{msgs: map[string]int{}}
	cfg := DefaultConfig()
	s, err := NewScheduler(SchedulerConfig{
		Checker:  NewChecker(db.Conn, db.Name, "node-a", nil),
		Detector: NewDetector(cfg.For),
		Policy:   cfg.For,
		Owns:     func(string) bool { return true },
		Models: func(context.Context, time.Time) ([]string, error) {
			if calls.Add(1) <= 5 {
				return nil, &unavailableError{op: "recent models", err: errors.New("connection refused")}
			}
			return nil, nil
		},
		OnIncident: func(context.Context, Incident) { t.Error("incident while ClickHouse was down") },
		Tick:       time.Millisecond,
		Log:        slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "recovery", func() bool { return logs.count("drift checks resumed: ClickHouse available") == 1 })
	waitFor(t, "more rounds", func() bool { return calls.Load() > 8 })
	cancel()
	<-done
	if n := logs.count("drift checks paused: ClickHouse unavailable"); n != 1 {
		t.Errorf("paused logged %d times over 5 failed rounds, want once", n)
	}
	if n := logs.count("drift checks resumed: ClickHouse available"); n != 1 {
		t.Errorf("resumed logged %d times, want once", n)
	}
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
