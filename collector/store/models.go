package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Columns returns the columns Insert fills in table, in the order it fills
// them (a copy), or nil for a table Insert does not write. Readers that
// scan whole rows into the row types (JobRow, ...) select these columns, so
// each table's column list is written once.
func Columns(table string) []string { return slices.Clone(tableColumns[table]) }

// maxModels bounds ModelsWithData.
const maxModels = 10000

// ModelsWithData returns the models (at most 10000, sorted) that have
// counter points (metrics_sum) newer than within before the server's
// current time: the models the fleet served recently.
func (s *Store) ModelsWithData(ctx context.Context, within time.Duration) ([]string, error) {
	q := fmt.Sprintf("SELECT DISTINCT model FROM %s.%s WHERE time > now() - INTERVAL %d SECOND AND model != '' ORDER BY model LIMIT %d",
		s.db, TableSum, int64(within/time.Second), maxModels)
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list models with data: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return out, fmt.Errorf("list models with data: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("list models with data: %w", err)
	}
	return out, nil
}
