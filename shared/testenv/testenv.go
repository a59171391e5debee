// Package testenv gives tests the real dependencies: one ClickHouse engine
// per test binary with a fresh database per test, and the ONNX Runtime
// library. Nothing is skipped: a missing dependency fails the test with a
// message that says to run `make deps` (which `make test` does first).
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }
//
// and in a test: db := testenv.ClickHouse(t). A test that provokes engine
// faults (errors the embedded engine is known to handle badly, or killing
// it) takes an engine of its own: testenv.OwnClickHouse(t).
//
// The shared engine is checked before every test takes a database from it:
// one that died or stopped answering is reported with its log and replaced
// by a new one, so a fault in one test fails that test, not every later one.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/deps"
)

// shared is the test binary's engine: an embedded one started by
// RunWithClickHouse, or a server named by $DROVER_CLICKHOUSE_DSN (engine
// nil, never restarted).
var shared struct {
	mu       sync.Mutex
	dsn      string
	engine   *chembed.Engine
	dir      string
	restarts int
	// broken marks an engine that failed a query without exiting (yet):
	// one that hit a fatal error answers "shutting down due to a fatal
	// error" (code 236) or resets connections for seconds before it
	// aborts. sharedDSN replaces it.
	broken bool
}

// RunWithClickHouse starts one ClickHouse engine for the test binary (or
// uses $DROVER_CLICKHOUSE_DSN), runs the tests and stops the engine. It
// returns the exit code for os.Exit.
func RunWithClickHouse(m *testing.M) int {
	if dsn := os.Getenv(deps.EnvClickHouseDSN); dsn != "" {
		shared.mu.Lock()
		shared.dsn = dsn
		shared.mu.Unlock()
		return m.Run()
	}
	e, dir, err := startEngine()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: start ClickHouse:", err)
		return 1
	}
	shared.mu.Lock()
	shared.engine, shared.dir, shared.dsn = e, dir, e.DSN("default")
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	stopEngine(shared.engine, shared.dir)
	return code
}

// startEngine starts an embedded engine in a new temporary directory.
func startEngine() (*chembed.Engine, string, error) {
	dir, err := os.MkdirTemp("", "drover-test-clickhouse-")
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := chembed.Start(ctx, chembed.Config{
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return e, dir, nil
}

func stopEngine(e *chembed.Engine, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stop ClickHouse:", err)
	}
	os.RemoveAll(dir)
}

// healthy says why an engine cannot serve a test, or nil: the process has
// exited, it has logged a fatal error (it may still answer queries for
// seconds, then aborts under the next test), or a native connection (the
// protocol the collector uses) cannot be opened, pinged and run SELECT 1
// within a few seconds, twice.
func healthy(e *chembed.Engine, dsn string) error {
	select {
	case <-e.Exited():
		return errors.New("the engine process has exited")
	default:
	}
	if n := e.Fatals(); n > 0 {
		return fmt.Errorf("the engine logged %d fatal lines and will abort", n)
	}
	var err error
	for try := range 2 {
		if try > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		if err = ping(dsn, 5*time.Second); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the engine does not answer: %w", err)
}

func ping(dsn string, timeout time.Duration) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	opts.DialTimeout = timeout
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	// An engine past a fatal error may still answer pings; not queries.
	return conn.Exec(ctx, "SELECT 1")
}

// sharedDSN returns the DSN of a shared engine that answers, replacing one
// that died or went deaf (and saying so, with its log, in t's output).
func sharedDSN(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.dsn == "" {
		t.Fatal("testenv: no ClickHouse; call testenv.RunWithClickHouse from TestMain")
	}
	if shared.engine == nil {
		return shared.dsn
	}
	err := healthy(shared.engine, shared.dsn)
	if err == nil && shared.broken {
		err = errors.New("it failed a query after a fatal error (such an engine answers code 236 or resets connections until it aborts)")
	}
	if err == nil {
		return shared.dsn
	}
	shared.restarts++
	t.Logf("testenv: the shared ClickHouse engine (pid %d) can no longer serve tests: %v; "+
		"an earlier test of this binary broke it. Starting a new one (restart %d). The engine's last output:\n%s",
		shared.engine.PID(), err, shared.restarts, shared.engine.Log())
	stopEngine(shared.engine, shared.dir)
	e, dir, err := startEngine()
	if err != nil {
		shared.engine, shared.dsn = nil, ""
		t.Fatalf("testenv: restart ClickHouse: %v", err)
	}
	shared.engine, shared.dir, shared.dsn, shared.broken = e, dir, e.DSN("default"), false
	return shared.dsn
}

// OwnClickHouse starts an engine for t alone, stopped when t ends, and
// returns a fresh database on it. Tests that provoke engine faults use it,
// so the fault cannot reach other tests. With $DROVER_CLICKHOUSE_DSN it is
// ClickHouse(t): a server is not expected to break.
func OwnClickHouse(t testing.TB) *DB {
	t.Helper()
	if os.Getenv(deps.EnvClickHouseDSN) != "" {
		return ClickHouse(t)
	}
	e, dir, err := startEngine()
	if err != nil {
		t.Fatalf("testenv: start an engine of the test's own: %v", err)
	}
	t.Cleanup(func() { stopEngine(e, dir) })
	return newDB(t, e.DSN("default"))
}

// DB is a fresh database for one test (dropped when the test ends only on
// a ClickHouse server given by $DROVER_CLICKHOUSE_DSN).
type DB struct {
	// Name is the database name.
	Name string
	// DSN connects clickhouse-go to this database.
	DSN string
	// Conn is an open native connection with Name as its default database.
	Conn driver.Conn
	// Options are the options Conn was opened with (ParseDSN of DSN).
	Options *clickhouse.Options
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// ClickHouse creates a fresh database for t on the shared engine.
// RunWithClickHouse must be running the test binary. An engine that dies,
// or fails queries after a fatal error, while the database is being
// created (between one test's health check and its first query) is
// replaced once, with its log in t's output, and the database is created
// on the new one.
func ClickHouse(t testing.TB) *DB {
	t.Helper()
	for try := 0; ; try++ {
		dsn := sharedDSN(t)
		if afterHealthCheck != nil {
			afterHealthCheck()
		}
		db, err := tryNewDB(t, dsn)
		if err == nil {
			return db
		}
		if try > 0 || !sharedEngineDied(dsn) {
			t.Fatal(err)
		}
		t.Logf("testenv: the shared engine died while this test created its database (%v); replacing it", err)
	}
}

// afterHealthCheck, when set by this package's tests, runs between the
// shared engine's health check and the creation of a test's database.
var afterHealthCheck func()

// sharedEngineDied reports whether the shared embedded engine serving dsn
// has exited (waiting a moment for a dying one) or can no longer run a
// query: after a fatal error (a crash inside the engine) it answers code
// 236 or resets connections for seconds before it aborts. Such an engine
// is marked broken, for sharedDSN to replace.
func sharedEngineDied(dsn string) bool {
	shared.mu.Lock()
	e := shared.engine
	same := shared.dsn == dsn
	shared.mu.Unlock()
	if e == nil || !same {
		return false
	}
	select {
	case <-e.Exited():
		return true
	case <-time.After(2 * time.Second):
	}
	if ping(dsn, 5*time.Second) == nil {
		return false
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.engine == e { // else another test has replaced it already
		shared.broken = true
	}
	return true
}

func newDB(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := tryNewDB(t, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// tryNewDB creates a fresh database on dsn's engine and connects to it; the
// connections close when t ends.
func tryNewDB(t testing.TB, dsn string) (*DB, error) {
	t.Helper()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + hex.EncodeToString(suffix[:])

	admin, err := tryOpen(t, dsn)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("testenv: create database %s: %w", name, err)
	}
	// The database is not dropped when the test ends: the engine's data
	// directory goes away with the test binary, and DROP DATABASE ... SYNC
	// while the engine is still merging a test's parts has aborted the
	// embedded engine (and with it every later test of the binary). Against
	// a server ($DROVER_CLICKHOUSE_DSN) the databases are dropped.
	if os.Getenv(deps.EnvClickHouseDSN) != "" {
		t.Cleanup(func() {
			if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" SYNC"); err != nil {
				t.Errorf("testenv: drop database %s: %v", name, err)
			}
		})
	}
	dbDSN, err := withDatabase(dsn, name)
	if err != nil {
		return nil, err
	}
	opts, err := clickhouse.ParseDSN(dbDSN)
	if err != nil {
		return nil, fmt.Errorf("testenv: parse DSN %q: %w", dbDSN, err)
	}
	conn, err := tryOpen(t, dbDSN)
	if err != nil {
		return nil, err
	}
	return &DB{Name: name, DSN: dbDSN, Conn: conn, Options: opts}, nil
}

// Open connects to dsn and closes the connection when t ends.
func Open(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	conn, err := tryOpen(t, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func tryOpen(t testing.TB, dsn string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("testenv: parse DSN %q: %w", dsn, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("testenv: open %s: %w", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.Ping(context.Background()); err != nil {
		return nil, fmt.Errorf("testenv: ping %s: %w", dsn, err)
	}
	return conn, nil
}

func withDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("testenv: parse DSN: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// ONNXRuntimeLib returns the path of libonnxruntime.so, failing t if there
// is none.
func ONNXRuntimeLib(t testing.TB) string {
	t.Helper()
	p, err := deps.ONNXRuntimeLibrary()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// ModuleDir returns the directory of a Go module this project depends on, in
// the module cache (e.g. to use test data a dependency ships).
func ModuleDir(t testing.TB, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("testenv: locate module %s: %v", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatalf("testenv: module %s is not in the module cache; run `go mod download`", module)
	}
	return dir
}
