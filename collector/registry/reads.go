package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Reader reads version records without a blob store: what the admin API's
// read views (collector/views) need. Every query reads registry_versions
// FINAL (the latest row of each version) and has a LIMIT, so memory does
// not grow with what is stored. It is safe for concurrent use and does not
// own conn.
type Reader struct {
	conn  driver.Conn
	table string
}

// NewReader returns a Reader of the records in database (default
// "drover") through conn, a connection to a database migrated with
// store.Migrate.
func NewReader(conn driver.Conn, database string) *Reader {
	if database == "" {
		database = "drover"
	}
	return &Reader{conn: conn, table: "`" + database + "`.`" + Table + "`"}
}

// Has reports whether model has any record, deleted ones included. It
// reads at most one row through the table's sorting key.
func (r *Reader) Has(ctx context.Context, model string) (bool, error) {
	var n uint64
	if err := r.conn.QueryRow(ctx, "SELECT count() FROM (SELECT 1 FROM "+r.table+" WHERE model = ? LIMIT 1)", model).Scan(&n); err != nil {
		return false, fmt.Errorf("look up records of %s: %w", model, err)
	}
	return n > 0, nil
}

// Latest returns the highest active version of each model (of model only,
// when it is not ""), at most limit models, by name. A model whose every
// version is deleted is absent.
func (r *Reader) Latest(ctx context.Context, model string, limit int) (map[string]uint64, error) {
	where, args := "state = 'active'", []any(nil)
	if model != "" {
		where, args = "model = ? AND "+where, []any{model}
	}
	q := fmt.Sprintf("SELECT model, max(version) FROM %s FINAL WHERE %s GROUP BY model ORDER BY model LIMIT %d", r.table, where, limit)
	rows, err := r.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read latest versions: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var m string
		var n uint64
		if err := rows.Scan(&m, &n); err != nil {
			return nil, fmt.Errorf("read latest versions: %w", err)
		}
		out[m] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read latest versions: %w", err)
	}
	return out, nil
}

// Newest returns the records of model's newest limit versions, deleted
// ones included (State says which), ascending by version.
func (r *Reader) Newest(ctx context.Context, model string, limit int) ([]Version, error) {
	vs, err := selectRecords(ctx, r.conn, r.table, "model = ?", fmt.Sprintf("version DESC LIMIT %d", limit), model)
	if err != nil {
		return nil, fmt.Errorf("records of %s: %w", model, err)
	}
	slices.Reverse(vs)
	return vs, nil
}

// Created returns the records of model created in [from, to), newest
// first, at most limit, deleted ones included.
func (r *Reader) Created(ctx context.Context, model string, from, to time.Time, limit int) ([]Version, error) {
	where := fmt.Sprintf("model = ? AND created >= fromUnixTimestamp64Nano(%d, 'UTC') AND created < fromUnixTimestamp64Nano(%d, 'UTC')",
		from.UnixNano(), to.UnixNano())
	vs, err := selectRecords(ctx, r.conn, r.table, where, fmt.Sprintf("created DESC, version DESC LIMIT %d", limit), model)
	if err != nil {
		return nil, fmt.Errorf("records of %s created in [%s, %s): %w", model, from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return vs, nil
}

// selectRecords returns the current records of table matching where (with
// args) in order (an ORDER BY clause, with its LIMIT).
func selectRecords(ctx context.Context, conn driver.Conn, table, where, order string, args ...any) ([]Version, error) {
	var rows []row
	q := "SELECT " + columns + " FROM " + table + " FINAL WHERE " + where + " ORDER BY " + order
	if err := conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("read version records: %w", err)
	}
	out := make([]Version, 0, len(rows))
	for i := range rows {
		v, err := rows[i].version()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
