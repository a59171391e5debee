package jobs

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cenkalti/backoff/v5"

	"github.com/drover-ml/drover/collector/store"
)

// jobColumns are the columns of a JobRow: the ones store.Insert writes.
var jobColumns = strings.Join(store.Columns(store.TableJobs), ", ")

// rowOrder ranks the rows of one job, the first being the job's state: the
// highest row_version (see rowVersion), then, for the rare equal ones, the
// lexicographically smallest lease_owner. Every node applies the same order,
// and it is the order ReplacingMergeTree keeps when it merges (but for
// exactly equal row versions).
const rowOrder = "row_version DESC, lease_owner ASC"

// rowVersion returns the row_version of a row written by node at a job's
// logical version (1 for the first row, +1 for every change): the logical
// version in the high 32 bits, and in the low 32 bits a rank of the writer,
// above 2^31 for rows that are not running (a callback's outcome beats a
// concurrent lease renewal) and else below. So two rows that different nodes
// write at the same logical version (two concurrent claims) are ordered by
// row_version alone, and a merge of the table keeps the same row that every
// node's re-check picks as the winner. Two node names whose ranks collide
// (FNV-1a, 31 bits) fall back to lease_owner order, which a merge does not
// respect.
func rowVersion(logical uint64, node string, running bool) uint64 {
	h := fnv.New32a()
	h.Write([]byte(node))
	rank := uint64(h.Sum32() >> 1)
	if !running {
		rank |= 1 << 31
	}
	return logical<<32 | rank
}

// logical returns the logical version of a row_version.
func logical(rowVersion uint64) uint64 { return rowVersion >> 32 }

// table reads and writes the jobs table.
type table struct {
	conn  driver.Conn
	db    string
	store *store.Store
}

func newTable(conn driver.Conn, db string) *table {
	return &table{conn: conn, db: db, store: store.New(conn, db, nil)}
}

// latest returns the job's current row; ok is false if the job has none.
func (t *table) latest(ctx context.Context, id string) (row store.JobRow, ok bool, err error) {
	var rows []store.JobRow
	q := "SELECT " + jobColumns + " FROM " + t.db + ".jobs WHERE id = ? ORDER BY " + rowOrder + " LIMIT 1"
	if err := t.conn.Select(ctx, &rows, q, id); err != nil {
		return store.JobRow{}, false, fmt.Errorf("read job %s: %w", id, err)
	}
	if len(rows) == 0 {
		return store.JobRow{}, false, nil
	}
	return rows[0], true, nil
}

// since returns the job's rows at logical version v or higher, in rowOrder.
func (t *table) since(ctx context.Context, id string, v uint64) ([]store.JobRow, error) {
	v <<= 32
	var rows []store.JobRow
	q := "SELECT " + jobColumns + " FROM " + t.db + ".jobs WHERE id = ? AND row_version >= ? ORDER BY " + rowOrder
	if err := t.conn.Select(ctx, &rows, q, id, v); err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	return rows, nil
}

// open returns the current row of every job that is queued or running.
func (t *table) open(ctx context.Context) ([]store.JobRow, error) {
	var rows []store.JobRow
	q := "SELECT * FROM (SELECT " + jobColumns + " FROM " + t.db + ".jobs ORDER BY id, " + rowOrder +
		" LIMIT 1 BY id) WHERE state IN ('queued', 'running') ORDER BY created, id"
	if err := t.conn.Select(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("read open jobs: %w", err)
	}
	return rows, nil
}

// openOf counts the jobs of model that are queued or running.
func (t *table) openOf(ctx context.Context, model string) (uint64, error) {
	var n uint64
	q := "SELECT count() FROM (SELECT state FROM " + t.db + ".jobs WHERE model = ? ORDER BY id, " + rowOrder +
		" LIMIT 1 BY id) WHERE state IN ('queued', 'running')"
	if err := t.conn.QueryRow(ctx, q, model).Scan(&n); err != nil {
		return 0, fmt.Errorf("count open jobs of %s: %w", model, err)
	}
	return n, nil
}

// insert writes one row, retrying a retryable failure (three attempts in
// all, jittered backoff from 200ms) with the same deduplication token, so
// that a retried insert stores one row.
func (t *table) insert(ctx context.Context, row store.JobRow) error {
	token := fmt.Sprintf("job/%s/%d/%s/%s/%d", row.ID, row.RowVersion, row.LeaseOwner, row.State, row.Attempt)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier = 200*time.Millisecond, 2
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := t.store.Insert(ctx, &store.Batch{Jobs: []store.JobRow{row}}, token)
		if err != nil && !store.IsRetryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(3), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("write job %s row %d (%s): %w", row.ID, row.RowVersion, row.State, err)
	}
	return nil
}

// same reports whether a and b are the same row of a job.
func same(a, b store.JobRow) bool {
	return a.ID == b.ID && a.RowVersion == b.RowVersion && a.LeaseOwner == b.LeaseOwner && a.State == b.State
}

// ms truncates t to the precision the table keeps, in UTC.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func ptr(t time.Time) *time.Time { return &t }

// list returns the current row of every job, of model and in state when
// they are not "", newest first.
func (t *table) list(ctx context.Context, model, state string) ([]store.JobRow, error) {
	var rows []store.JobRow
	q := "SELECT * FROM (SELECT " + jobColumns + " FROM " + t.db + ".jobs"
	var args []any
	if model != "" {
		q += " WHERE model = ?"
		args = append(args, model)
	}
	q += " ORDER BY id, " + rowOrder + " LIMIT 1 BY id)"
	if state != "" {
		q += " WHERE state = ?"
		args = append(args, state)
	}
	q += " ORDER BY created DESC, id"
	if err := t.conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	return rows, nil
}

// attemptRow is a row of job_attempts: one finished attempt.
type attemptRow struct {
	ID       string    `ch:"id"`
	Attempt  uint32    `ch:"attempt"`
	Node     string    `ch:"node"`
	Started  time.Time `ch:"started"`
	Finished time.Time `ch:"finished"`
	State    string    `ch:"state"`
	ExitCode int32     `ch:"exit_code"`
	Error    string    `ch:"error"`
	Output   string    `ch:"output"`
}

// insertAttempt records a finished attempt (once, however often it is
// retried: the insert has a deduplication token of the attempt).
func (t *table) insertAttempt(ctx context.Context, a attemptRow) error {
	token := fmt.Sprintf("attempt/%s/%d/%d", a.ID, a.Attempt, a.Started.UnixMilli())
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	b, err := t.conn.PrepareBatch(ctx, "INSERT INTO "+t.db+".job_attempts (id, attempt, node, started, finished, state, exit_code, error, output)")
	if err != nil {
		return fmt.Errorf("record attempt %d of job %s: %w", a.Attempt, a.ID, err)
	}
	defer b.Close()
	if err := b.Append(a.ID, a.Attempt, a.Node, ms(a.Started), ms(a.Finished), a.State, a.ExitCode, a.Error, a.Output); err != nil {
		return fmt.Errorf("record attempt %d of job %s: %w", a.Attempt, a.ID, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record attempt %d of job %s: %w", a.Attempt, a.ID, err)
	}
	return nil
}

// attempts returns the job's finished attempts, oldest first.
func (t *table) attempts(ctx context.Context, id string) ([]attemptRow, error) {
	var rows []attemptRow
	q := "SELECT id, attempt, node, started, finished, state, exit_code, error, output FROM " + t.db +
		".job_attempts WHERE id = ? ORDER BY attempt, started, finished LIMIT 1 BY attempt, started"
	if err := t.conn.Select(ctx, &rows, q, id); err != nil {
		return nil, fmt.Errorf("read attempts of job %s: %w", id, err)
	}
	return rows, nil
}
