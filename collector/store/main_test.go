package store

import (
	"context"
	"os"
	"testing"

	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// migrated returns a fresh database with the schema and a Store on it.
func migrated(t testing.TB) (*testenv.DB, *Store) {
	t.Helper()
	return migratedOn(t, testenv.ClickHouse(t))
}

// migratedOn is migrated on a database the caller chose (e.g. on an engine
// of the test's own, testenv.OwnClickHouse).
func migratedOn(t testing.TB, db *testenv.DB) (*testenv.DB, *Store) {
	t.Helper()
	if err := Migrate(context.Background(), db.Conn, MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s := New(db.Conn, db.Name, db.Options)
	t.Cleanup(s.Close)
	return db, s
}
