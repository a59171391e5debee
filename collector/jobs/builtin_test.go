package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// scripted is an Executor that answers each attempt with the next result.
type scripted struct {
	mu      sync.Mutex
	results []Result
	specs   []Spec
}

func (s *scripted) Execute(_ context.Context, spec Spec) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.specs = append(s.specs, spec)
	r := s.results[0]
	if len(s.results) > 1 {
		s.results = s.results[1:]
	}
	return r
}

func builtinNode(t *testing.T, e Executor, retries int) *Manager {
	t.Helper()
	db := migrated(t)
	cfg := testConfig(t, "/bin/true")
	cfg.Executor, cfg.Command, cfg.ModelStore, cfg.Retries = ExecutorBuiltin, CommandConfig{}, "", retries
	m, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "node-a", Config: cfg, Executor: e,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m
}

func TestBuiltinExecutorStoresReportAndVersion(t *testing.T) {
	report := []byte(`{"model":"iris","improved":true,"published":"4"}`)
	e := &scripted{results: []Result{{Version: 4, Report: report}}}
	m := builtinNode(t, e, 3)
	id, _, err := m.Schedule(context.Background(), incident("iris", time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	row := waitTerminal(t, m, id, 20*time.Second)
	if row.State != StateSucceeded || row.ResultVersion != 4 || row.Report != string(report) {
		t.Fatalf("row = state %s, result %d, report %q; want succeeded, 4, %s", row.State, row.ResultVersion, row.Report, report)
	}
	if len(e.specs) != 1 || e.specs[0].ID != id || e.specs[0].Model != "iris" {
		t.Errorf("specs = %+v", e.specs)
	}
	if j := jobJSON(row); string(j.Report) != string(report) {
		t.Errorf("JobJSON.Report = %s, want %s", j.Report, report)
	}
}

func TestBuiltinExecutorPermanentFailureIsNotRetried(t *testing.T) {
	e := &scripted{results: []Result{{Report: []byte(`{"reason":"x"}`), Err: Permanent(errors.New("12 labelled rows, min_rows is 200"))}}}
	m := builtinNode(t, e, 3)
	id, _, err := m.Schedule(context.Background(), incident("iris", time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	row := waitTerminal(t, m, id, 20*time.Second)
	if row.State != StateFailed || row.Attempt != 1 || row.Error != "12 labelled rows, min_rows is 200" {
		t.Fatalf("row = state %s, attempt %d, error %q; want failed after attempt 1 with the reason", row.State, row.Attempt, row.Error)
	}
	var rep map[string]string
	if err := json.Unmarshal([]byte(row.Report), &rep); err != nil || rep["reason"] != "x" {
		t.Errorf("report = %q (%v), want the failed attempt's report", row.Report, err)
	}
}

func TestBuiltinNeedsExecutor(t *testing.T) {
	db := migrated(t)
	cfg := DefaultConfig()
	cfg.Executor = ExecutorBuiltin
	if _, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "n", Config: cfg}); err == nil {
		t.Fatal("New without Executor for builtin: no error")
	}
}
