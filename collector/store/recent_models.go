package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/semconv"
)

// RecentModels returns the models that have drover.requests counters in
// metrics_sum at a time in [from, to), sorted: the models that served in
// that period. It is the one model listing on the metric tables; drift
// checks (drift.Checker.RecentModels) and the cluster view list models
// through it. database defaults to "drover". Its error says what was being
// done and wraps the driver's, so IsRetryable classifies it.
func RecentModels(ctx context.Context, conn driver.Conn, database string, from, to time.Time) ([]string, error) {
	if database == "" {
		database = "drover"
	}
	// Literal times (not parameters) so that ClickHouse prunes the day
	// partitions and uses the sorting key.
	q := fmt.Sprintf("SELECT DISTINCT model FROM `%s`.`%s` WHERE metric = ? AND time >= fromUnixTimestamp64Nano(%d, 'UTC') AND time < fromUnixTimestamp64Nano(%d, 'UTC') AND model != '' ORDER BY model",
		database, TableSum, from.UnixNano(), to.UnixNano())
	rows, err := conn.Query(ctx, q, semconv.MetricRequests)
	if err != nil {
		return nil, fmt.Errorf("recent models: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, fmt.Errorf("recent models: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent models: %w", err)
	}
	return out, nil
}
