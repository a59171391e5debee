package testenv

import (
	"context"
	"os"
	"testing"
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
