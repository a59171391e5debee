package store

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestSchemaAppliesThenWaits: Ready says why until Run has applied the
// schema, Applied closes, and Run returns nil when its context ends.
func TestSchemaAppliesThenWaits(t *testing.T) {
	db := testenv.ClickHouse(t)
	s := NewSchema(db.Conn, MigrateOptions{Database: db.Name}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "schema not applied yet") {
		t.Fatalf("Ready before Run = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Applied():
	case <-time.After(2 * time.Minute):
		t.Fatal("the schema was not applied")
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready after Applied = %v", err)
	}
	if n := db.Count(t, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'metrics_gauge'"); n != 1 {
		t.Errorf("metrics_gauge: %d tables", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
}

// TestSchemaPermanentErrorStops: an error retrying cannot fix ends Run.
func TestSchemaPermanentErrorStops(t *testing.T) {
	db := testenv.ClickHouse(t)
	s := NewSchema(db.Conn, MigrateOptions{Database: db.Name, Cluster: "no_such_cluster"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "apply schema") {
		t.Fatalf("Run = %v, want the schema error", err)
	}
	select {
	case <-s.Applied():
		t.Error("Applied closed after a failure")
	default:
	}
}

// TestDSNNamingAMissingDatabase: a DSN whose database does not exist yet
// opens and answers (the connection does not name it), and the schema
// step creates it with the configured database.
func TestDSNNamingAMissingDatabase(t *testing.T) {
	db := testenv.ClickHouse(t)
	u, err := url.Parse(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	missing := db.Name + "_dsn"
	u.Path = "/" + missing
	ctx := context.Background()
	b, err := Open(ctx, u.String(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close(ctx)
	if b.DSNDatabase != missing || b.DSN != u.String() {
		t.Errorf("DSNDatabase %q, DSN %q", b.DSNDatabase, b.DSN)
	}
	for range 3 { // the engine used to abort on the second such handshake
		if err := b.Conn.Ping(ctx); err != nil {
			t.Fatalf("ping with a DSN naming a missing database: %v", err)
		}
	}
	if err := Migrate(ctx, b.Conn, MigrateOptions{Database: db.Name + "_data", CreateDatabases: []string{missing}}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, name := range []string{missing, db.Name + "_data"} {
		if n := db.Count(t, "SELECT count() FROM system.databases WHERE name = ?", name); n != 1 {
			t.Errorf("database %s: %d, want created", name, n)
		}
	}
	if err := Migrate(ctx, b.Conn, MigrateOptions{Database: "ok", CreateDatabases: []string{"bad-name"}}); err == nil {
		t.Error("a DSN database that is not an identifier was accepted")
	}
	for _, name := range []string{missing, db.Name + "_data"} {
		_ = b.Conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	}
}
