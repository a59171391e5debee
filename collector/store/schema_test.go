package store

import (
	"context"
	"io"
	"log/slog"
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
