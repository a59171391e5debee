package labels_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// withClickHouse runs the tests with the package's ClickHouse engine, for
// goleak.VerifyTestMain, which fails the binary if a goroutine outlives
// them (the engine's are gone by then).
type withClickHouse struct{ m *testing.M }

func (w withClickHouse) Run() int { return testenv.RunWithClickHouse(w.m) }

func TestMain(m *testing.M) { goleak.VerifyTestMain(withClickHouse{m}) }

// migrated returns a fresh database with the schema.
func migrated(t *testing.T) *testenv.DB {
	t.Helper()
	db := testenv.ClickHouse(t)
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
