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
	db := testenv.ClickHouse(t)
	if err := Migrate(context.Background(), db.Conn, MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s := New(db.Conn, db.Name, db.Options)
	t.Cleanup(s.Close)
	return db, s
}
