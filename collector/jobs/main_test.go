package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestMain runs the tests on one ClickHouse engine and then fails if any
// goroutine they started is still running.
func TestMain(m *testing.M) {
	if os.Getenv(publisherHelperEnv) != "" {
		os.Exit(publisherHelper()) // started as a job's command (publish_test.go)
	}
	code := testenv.RunWithClickHouse(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// migrated returns a fresh database with the schema.
func migrated(t *testing.T) *testenv.DB {
	t.Helper()
	db := testenv.ClickHouse(t)
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// testConfig is a command config with timings short enough for tests.
func testConfig(t *testing.T, argv ...string) Config {
	c := DefaultConfig()
	c.Executor = ExecutorCommand
	c.Command.Argv = argv
	c.Command.Timeout = 30 * time.Second
	c.ModelStore = t.TempDir()
	// A claim (a read and an insert) slower than Settle is dropped until its
	// lease lapses, and a renewal (every Lease/3) must land within Lease/2
	// or the attempt is stopped and runs again: under -race on a loaded
	// machine ClickHouse takes a few hundred milliseconds now and then.
	c.Settle = 750 * time.Millisecond
	c.Lease = 4 * time.Second
	c.MaxClockSkew = 50 * time.Millisecond
	c.Backoff = 50 * time.Millisecond
	c.ResumeInterval = 200 * time.Millisecond
	c.MaxOpenPerModel = 10 // tests queue several jobs of a model; the cap's drill sets its own
	return c
}

// events records a Manager's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) kinds(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.all {
		if ev.JobID == id {
			k = append(k, ev.Kind)
		}
	}
	return k
}

func (e *events) find(kind string) (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Kind == kind {
			return ev, true
		}
	}
	return Event{}, false
}

type node struct {
	*Manager
	ev   *events
	stop func() // cancels Run and waits for it
}

// newNode builds a Manager on db; with run, Run runs until stop or the end
// of the test.
func newNode(t *testing.T, db *testenv.DB, name string, cfg Config, run bool) *node {
	t.Helper()
	ev := &events{}
	m, err := New(Options{
		Conn: db.Conn, Database: db.Name, Node: name, Config: cfg, OnEvent: ev.add,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "node", name),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n := &node{Manager: m, ev: ev, stop: func() {}}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		var once sync.Once
		n.stop = func() {
			once.Do(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Errorf("%s: Run did not return 20s after cancel", name)
				}
			})
		}
		t.Cleanup(n.stop)
	}
	return n
}

// idle reports whether the manager has nothing queued or running.
func (m *Manager) idle() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending) == 0 && len(m.active) == 0
}

// testWriter sends logs to t.Log while the test runs.
type testWriter struct{ t *testing.T }

var logMu sync.Mutex

func (w testWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	if os.Getenv("JOBS_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = testWriter{}

// jobState polls the job until it is in a terminal state and returns it.
func waitTerminal(t *testing.T, m *Manager, id string, within time.Duration) store.JobRow {
	t.Helper()
	var row store.JobRow
	testenv.Eventually(t, within, "job "+id+" finishes", func() bool {
		r, err := m.Job(context.Background(), id)
		if err != nil {
			return false
		}
		row = r
		return Terminal(r.State)
	})
	return row
}

// script writes a /bin/sh script to a temporary directory and returns argv
// that runs it.
func script(t *testing.T, body string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(p, []byte("set -eu\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", p}
}

// lines returns the lines of a file, none if it does not exist.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func incident(model string, start time.Time) Incident {
	return Incident{Model: model, Version: "3", Start: start, Reasons: []string{"psi(petal_length)=0.31 > 0.2"}}
}

func rowCount(t *testing.T, db *testenv.DB, id string) uint64 {
	t.Helper()
	return db.Count(t, fmt.Sprintf("SELECT count() FROM %s.jobs WHERE id = ?", db.Name), id)
}
