package store

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/redact"
)

// Embedded is the --clickhouse value that runs the embedded engine.
const Embedded = "embedded"

// Backend is an open ClickHouse: either an embedded engine this process
// started (and stops on Close) or a server reached by DSN.
type Backend struct {
	DSN string
	// DSNDatabase is the database the DSN names ("" for none). Conn does
	// not use it: a handshake naming a database that does not exist yet is
	// an error (the embedded engine has aborted on the second one), and
	// every query names its tables with the configured database. The
	// schema step creates it (MigrateOptions.CreateDatabases).
	DSNDatabase string
	Conn        driver.Conn
	// Options are the options Conn was opened with (store.New takes them).
	Options *clickhouse.Options
	engine  *chembed.Engine
	log     *slog.Logger
}

// EngineConfig configures the embedded engine (ignored for a server): the
// loopback ports it listens on, 0 for a free port chosen at each start.
type EngineConfig struct {
	TCPPort, HTTPPort int
}

// Open starts the embedded engine under dataDir/clickhouse, on free ports,
// when spec is "embedded" (or empty), or connects to spec as a
// clickhouse:// DSN. A server is not contacted until the first query
// (connections are dialled on use), so Open succeeds while the server is
// down.
func Open(ctx context.Context, spec, dataDir string, log *slog.Logger) (*Backend, error) {
	return OpenEngine(ctx, spec, dataDir, EngineConfig{}, log)
}

// OpenEngine is Open with the embedded engine's ports: a port set in
// engine is used as it is, and a taken one fails the start, naming it.
func OpenEngine(ctx context.Context, spec, dataDir string, engine EngineConfig, log *slog.Logger) (*Backend, error) {
	b := &Backend{log: log}
	switch {
	case spec == "" || spec == Embedded:
		// The watchdog restarts an engine that stops answering (a native
		// login that fails has aborted it); connections are dialled anew on
		// the same address and the writer's spool retries meanwhile.
		e, err := chembed.Start(ctx, chembed.Config{DataDir: filepath.Join(dataDir, "clickhouse"), Logger: log,
			TCPPort: engine.TCPPort, HTTPPort: engine.HTTPPort, Watchdog: chembed.DefaultWatchdog()})
		if err != nil {
			return nil, fmt.Errorf("start embedded clickhouse: %w", err)
		}
		b.engine, b.DSN = e, e.DSN("default")
	case strings.HasPrefix(spec, "clickhouse://") || strings.HasPrefix(spec, "tcp://"):
		b.DSN = spec
	default:
		return nil, fmt.Errorf("--clickhouse %q: want %q or a DSN such as clickhouse://host:9000/drover", spec, Embedded)
	}
	opts, err := clickhouse.ParseDSN(b.DSN)
	if err != nil {
		b.Close(ctx)
		return nil, fmt.Errorf("parse clickhouse DSN %s: %w", redact.URL(b.DSN), err)
	}
	b.DSNDatabase, opts.Auth.Database = opts.Auth.Database, ""
	conn, err := clickhouse.Open(opts)
	if err != nil {
		b.Close(ctx)
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	b.Conn, b.Options = conn, opts
	return b, nil
}

// EngineRestarts returns how many times the embedded engine's watchdog has
// restarted it (0 for a server).
func (b *Backend) EngineRestarts() uint64 {
	if b.engine == nil {
		return 0
	}
	return b.engine.Restarts()
}

// Exited is closed if the embedded engine is over for good (its watchdog
// restarts a child that dies); nil for a server.
func (b *Backend) Exited() <-chan struct{} {
	if b.engine == nil {
		return nil
	}
	return b.engine.Exited()
}

// Close closes the connection and stops an embedded engine. Idempotent.
func (b *Backend) Close(ctx context.Context) error {
	if b.Conn != nil {
		_ = b.Conn.Close()
	}
	if b.engine != nil {
		return b.engine.Stop(ctx)
	}
	return nil
}
