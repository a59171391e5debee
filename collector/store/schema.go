package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cenkalti/backoff/v5"
)

// Schema applies the schema in the background, for a collector that starts
// while ClickHouse may be unreachable: Run retries Migrate (jittered
// backoff up to 30 s) for as long as ClickHouse is unreachable or not
// ready, then closes Applied and waits for its context. Ready says why the
// schema is not applied yet. Safe for concurrent use; Run is called once.
type Schema struct {
	conn    driver.Conn
	opts    MigrateOptions
	log     *slog.Logger
	applied chan struct{}
	last    atomic.Pointer[error]
}

// NewSchema returns a Schema that applies opts's migrations through conn.
func NewSchema(conn driver.Conn, opts MigrateOptions, log *slog.Logger) *Schema {
	return &Schema{conn: conn, opts: opts, log: log, applied: make(chan struct{})}
}

// Applied is closed once the schema is applied.
func (s *Schema) Applied() <-chan struct{} { return s.applied }

// Ready is nil once the schema is applied, else the reason it is not.
func (s *Schema) Ready() error {
	select {
	case <-s.applied:
		return nil
	default:
	}
	if p := s.last.Load(); p != nil {
		return fmt.Errorf("schema not applied yet: %w", *p)
	}
	return errors.New("schema not applied yet")
}

// Run applies the schema, then waits for ctx. An error that retrying
// cannot fix (credentials, a migration whose SQL changed, a cluster name
// ClickHouse does not know) is returned: the collector cannot run with it.
// Stopped before ClickHouse could be reached, it returns nil.
func (s *Schema) Run(ctx context.Context) error {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = 30 * time.Second
	warned := false
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := Migrate(mctx, s.conn, s.opts)
		if err == nil {
			return struct{}{}, nil
		}
		// Credentials that cannot work and codes nobody classified (a
		// cluster name ClickHouse does not know) stop the start; inserts,
		// later, retry both: a password rotated under a running collector
		// must not lose data.
		if ctx.Err() == nil && (IsAccessError(err) || !retryable(err, false) && !errors.Is(err, context.DeadlineExceeded)) {
			return struct{}{}, backoff.Permanent(err)
		}
		s.last.Store(&err)
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		if !warned {
			s.log.Warn("cannot apply the schema yet; receiving into the spool and retrying", "err", err, "retry_in", next)
			warned = true
			return
		}
		s.log.Debug("schema still not applied; retrying", "err", err, "retry_in", next)
	}))
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	if warned {
		s.log.Info("schema applied; writing the spool into ClickHouse")
	}
	close(s.applied)
	<-ctx.Done()
	return nil
}
