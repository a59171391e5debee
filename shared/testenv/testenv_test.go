package testenv

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/deps"
)

func TestMain(m *testing.M) { os.Exit(RunWithClickHouse(m)) }

// TestFreshDatabasePerTest checks that each test gets its own empty database
// on the shared engine, usable through both Conn and DSN.
func TestFreshDatabasePerTest(t *testing.T) {
	var names []string
	for _, sub := range []string{"first", "second"} {
		t.Run(sub, func(t *testing.T) {
			db := ClickHouse(t)
			names = append(names, db.Name)
			ctx := context.Background()
			var n uint64
			if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase()").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("fresh database %s has %d tables", db.Name, n)
			}
			if err := db.Conn.Exec(ctx, "CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x"); err != nil {
				t.Fatal(err)
			}
			if err := db.Conn.Exec(ctx, "INSERT INTO t SELECT number FROM numbers(10)"); err != nil {
				t.Fatal(err)
			}
			other := Open(t, db.DSN)
			var current string
			if err := other.QueryRow(ctx, "SELECT currentDatabase()").Scan(&current); err != nil {
				t.Fatal(err)
			}
			if current != db.Name {
				t.Fatalf("DSN connects to %q, want %q", current, db.Name)
			}
			var sum uint64
			if err := other.QueryRow(ctx, "SELECT sum(x) FROM t").Scan(&sum); err != nil {
				t.Fatal(err)
			}
			if sum != 45 {
				t.Fatalf("sum = %d, want 45", sum)
			}
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v are not distinct", names)
	}
}

func TestONNXRuntimeLib(t *testing.T) {
	p := ONNXRuntimeLib(t)
	if st, err := os.Stat(p); err != nil || st.Size() < 1<<20 {
		t.Fatalf("ONNX Runtime library %s: %v", p, err)
	}
}

// TestBrokenSharedEngineIsReplaced provokes both ways the shared engine has
// been lost mid-run (the process killed; native handshakes that name a
// database that does not exist, after which the embedded engine stops
// answering) and checks that the next test still gets a working database.
func TestBrokenSharedEngineIsReplaced(t *testing.T) {
	if os.Getenv(deps.EnvClickHouseDSN) != "" {
		t.Skip("a ClickHouse server is not restarted by the harness")
	}
	faults := map[string]func(t *testing.T){
		"killed": func(t *testing.T) {
			shared.mu.Lock()
			e := shared.engine
			shared.mu.Unlock()
			if err := syscall.Kill(e.PID(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-e.Exited()
		},
		"unknown database handshakes": func(t *testing.T) {
			shared.mu.Lock()
			dsn := shared.dsn
			shared.mu.Unlock()
			for range 3 {
				_ = ping(strings.TrimSuffix(dsn, "/default")+"/no_such_database", 2*time.Second)
			}
		},
	}
	kill := faults["killed"]
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			fault(t)
			db := ClickHouse(t)
			if n := db.Count(t, "SELECT count() FROM numbers(7)"); n != 7 {
				t.Fatalf("count = %d, want 7", n)
			}
		})
	}
	// The engine dies after the health check passed, before the test's
	// database exists (how a CI run lost the embedded engine once).
	t.Run("killed after its health check", func(t *testing.T) {
		afterHealthCheck = func() { afterHealthCheck = nil; kill(t) }
		t.Cleanup(func() { afterHealthCheck = nil })
		db := ClickHouse(t)
		if n := db.Count(t, "SELECT count() FROM numbers(7)"); n != 7 {
			t.Fatalf("count = %d, want 7", n)
		}
	})
	// The engine hits a fatal error after the health check (a fatal signal
	// here): it fails queries and resets connections for seconds before it
	// aborts. Two make test runs lost collector/jobs' engine that way: the
	// next test's CREATE DATABASE got code 236 ("shutting down due to a
	// fatal error"), and the engine exited on SIGABRT later.
	t.Run("fatal error after its health check", func(t *testing.T) {
		afterHealthCheck = func() {
			afterHealthCheck = nil
			shared.mu.Lock()
			e := shared.engine
			shared.mu.Unlock()
			if err := syscall.Kill(e.PID(), syscall.SIGSEGV); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Cleanup(func() { afterHealthCheck = nil })
		db := ClickHouse(t)
		if n := db.Count(t, "SELECT count() FROM numbers(7)"); n != 7 {
			t.Fatalf("count = %d, want 7", n)
		}
	})
	shared.mu.Lock()
	restarts := shared.restarts
	shared.mu.Unlock()
	if restarts < 2 {
		t.Errorf("the killed engine was not replaced (%d restarts)", restarts)
	}
	t.Logf("%d restarts of the shared engine", restarts)
}

// TestOwnClickHouseIsSeparate: a test's own engine is not the shared one.
func TestOwnClickHouseIsSeparate(t *testing.T) {
	own := OwnClickHouse(t)
	shared.mu.Lock()
	dsn := shared.dsn
	shared.mu.Unlock()
	if strings.HasPrefix(own.DSN, strings.TrimSuffix(dsn, "default")) {
		t.Fatalf("own engine %s is the shared engine %s", own.DSN, dsn)
	}
	if n := own.Count(t, "SELECT count() FROM system.databases WHERE name = ?", own.Name); n != 1 {
		t.Fatalf("database %s: %d rows in system.databases", own.Name, n)
	}
}
