package drift

import (
	"context"
	"os"
	"testing"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// migrated returns a fresh database with the schema.
func migrated(t testing.TB) *testenv.DB {
	t.Helper()
	db := testenv.ClickHouse(t)
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func count(t testing.TB, db *testenv.DB, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
