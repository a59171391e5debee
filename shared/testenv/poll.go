package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Eventually polls cond every 10 ms until it returns true, failing t with
// what when within passes first. Eventual behaviour is polled with a
// deadline, never slept for.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

type notYet struct{}

func (notYet) Error() string { return "condition not met" }

var errNotYet error = notYet{}

// EventuallyNil polls cond every 10 ms until it returns nil, failing t with
// what and cond's last error when within passes first.
func EventuallyNil(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			t.Fatalf("timed out after %s waiting for %s: %v", within, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Count runs a query that returns one unsigned number (count(), sum(...))
// and returns it. A query error fails t: a count that cannot be read must
// never pass for zero.
func Count(t testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	n, err := TryCount(conn, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TryCount is Count for use inside a polled condition (where t.Fatal would
// be called from the wrong goroutine or too early): it returns the error.
func TryCount(conn driver.Conn, query string, args ...any) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, &queryError{query: query, err: err}
	}
	return n, nil
}

type queryError struct {
	query string
	err   error
}

func (e *queryError) Error() string { return "query " + e.query + ": " + e.err.Error() }
func (e *queryError) Unwrap() error { return e.err }

// Count is testenv.Count on the test's database.
func (db *DB) Count(t testing.TB, query string, args ...any) uint64 {
	t.Helper()
	return Count(t, db.Conn, query, args...)
}

// Clock is a clock that moves only when told; safe for concurrent use. The
// zero value starts at the Unix epoch; NewClock at a given time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// BadConfigs is the one table test of bad configuration files: every file
// matching glob (e.g. "testdata/*.bad.yaml") must carry one or more lines
// "# error: TEXT", and load(path) must fail with an error that contains
// every TEXT. A glob that matches nothing fails t.
func BadConfigs(t *testing.T, glob string, load func(path string) error) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad config files match %s (%v)", glob, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for line := range strings.SplitSeq(string(data), "\n") {
				if w, ok := strings.CutPrefix(strings.TrimSpace(line), "# error: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatalf("%s has no '# error: ...' line saying what its error must contain", f)
			}
			err = load(f)
			if err == nil {
				t.Fatalf("%s was accepted; want an error containing %q", f, wants)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
