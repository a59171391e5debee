package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrChecksumMismatch is wrapped by Migrate's error when the SQL of a
// migration that the database has already applied was changed since.
var ErrChecksumMismatch = errors.New("applied migration changed")

// Migrate creates the database and brings its schema up to date: it applies,
// in version order, every embedded migration that the database's
// schema_migrations table does not list, and records each one after all of
// its statements succeeded. Running it again applies nothing.
//
// It fails, before applying anything, if the SQL of an applied migration has
// changed since (the error wraps ErrChecksumMismatch and names the
// migration): an applied migration is never edited, a new one is added. A
// database that has migrations this binary does not know (a newer collector
// migrated it) is left as it is.
//
// Every statement is idempotent (IF NOT EXISTS), so a migration interrupted
// half-way, or applied by two collectors at once, is simply applied again.
// Options that only shape the rendered SQL (TTLs, cluster) are not part of
// the checksum; changing them later does not alter existing tables.
func Migrate(ctx context.Context, conn driver.Conn, opts MigrateOptions) error {
	return migrate(ctx, conn, opts, migrationFiles)
}

func migrate(ctx context.Context, conn driver.Conn, opts MigrateOptions, fsys fs.FS) error {
	migrations, err := renderMigrations(fsys, opts)
	if err != nil {
		return err
	}
	opts, _ = opts.withDefaults() // validated by renderMigrations
	for _, stmt := range bootstrapStatements(opts) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %s: %w", firstLine(stmt), err)
		}
	}
	applied, err := appliedMigrations(ctx, conn, opts.Database)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if sum, ok := applied[m.Version]; ok && sum != m.Checksum {
			return fmt.Errorf("migrate: migration %s (version %d) was applied with checksum %.12s but its SQL now has checksum %.12s; add a new migration instead of editing an applied one: %w",
				m.Name, m.Version, sum, m.Checksum, ErrChecksumMismatch)
		}
	}
	for _, m := range migrations {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		for i, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: apply %s, statement %d (%s): %w", m.Name, i+1, firstLine(stmt), err)
			}
		}
		if err := recordMigration(ctx, conn, opts.Database, m); err != nil {
			return err
		}
	}
	return nil
}

// bootstrapStatements create the database and the schema_migrations table.
// In cluster mode schema_migrations is replicated to every node of the
// cluster (one replica per node, no sharding), so that a collector connected
// to any node sees what was applied.
func bootstrapStatements(opts MigrateOptions) []string {
	onCluster, engine := "", "ReplacingMergeTree(applied_at)"
	if opts.Cluster != "" {
		onCluster = " ON CLUSTER '" + opts.Cluster + "'"
		engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}', applied_at)"
	}
	var out []string
	for _, d := range opts.CreateDatabases {
		if d != opts.Database {
			out = append(out, "CREATE DATABASE IF NOT EXISTS "+d+onCluster)
		}
	}
	return append(out,
		"CREATE DATABASE IF NOT EXISTS "+opts.Database+onCluster,
		"CREATE TABLE IF NOT EXISTS "+opts.Database+".schema_migrations"+onCluster+`
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = `+engine+`
ORDER BY version`,
	)
}

func appliedMigrations(ctx context.Context, conn driver.Conn, db string) (map[uint32]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM "+db+".schema_migrations FINAL")
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s.schema_migrations: %w", db, err)
	}
	defer rows.Close()
	applied := map[uint32]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("migrate: read %s.schema_migrations: %w", db, err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read %s.schema_migrations: %w", db, err)
	}
	return applied, nil
}

func recordMigration(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, checksum, applied_at)")
	if err != nil {
		return fmt.Errorf("migrate: record %s: %w", m.Name, err)
	}
	defer b.Close()
	if err := b.Append(m.Version, m.Name, m.Checksum, time.Now()); err != nil {
		return fmt.Errorf("migrate: record %s: %w", m.Name, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("migrate: record %s: %w", m.Name, err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
