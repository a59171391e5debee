// Package testenv gives tests the real dependencies: one ClickHouse engine
// per test binary with a fresh database per test, and the ONNX Runtime
// library. Nothing is skipped: a missing dependency fails the test with a
// message that says to run `make deps` (which `make test` does first).
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }
//
// and in a test: db := testenv.ClickHouse(t).
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

var (
	mu      sync.Mutex
	baseDSN string // set by RunWithClickHouse
)

// RunWithClickHouse starts one ClickHouse engine for the test binary (or
// uses $DROVER_CLICKHOUSE_DSN), runs the tests and stops the engine. It
// returns the exit code for os.Exit.
func RunWithClickHouse(m *testing.M) int {
	if dsn := os.Getenv(deps.EnvClickHouseDSN); dsn != "" {
		mu.Lock()
		baseDSN = dsn
		mu.Unlock()
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "drover-test-clickhouse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	e, err := chembed.Start(ctx, chembed.Config{
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: start ClickHouse:", err)
		return 1
	}
	mu.Lock()
	baseDSN = e.DSN("default")
	mu.Unlock()
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stop ClickHouse:", err)
	}
	return code
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

// ClickHouse creates a fresh database for t. RunWithClickHouse must be
// running the test binary.
func ClickHouse(t testing.TB) *DB {
	t.Helper()
	mu.Lock()
	dsn := baseDSN
	mu.Unlock()
	if dsn == "" {
		t.Fatal("testenv: no ClickHouse; call testenv.RunWithClickHouse from TestMain")
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + hex.EncodeToString(suffix[:])

	admin := Open(t, dsn)
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
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
		t.Fatal(err)
	}
	opts, err := clickhouse.ParseDSN(dbDSN)
	if err != nil {
		t.Fatalf("testenv: parse DSN %q: %v", dbDSN, err)
	}
	return &DB{Name: name, DSN: dbDSN, Conn: Open(t, dbDSN), Options: opts}
}

// Open connects to dsn and closes the connection when t ends.
func Open(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("testenv: parse DSN %q: %v", dsn, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("testenv: open %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatalf("testenv: ping %s: %v", dsn, err)
	}
	return conn
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
