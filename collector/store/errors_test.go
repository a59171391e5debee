package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestErrorClassesByCode is the retry decision per ClickHouse error code,
// as the writer sees it (an *InsertError around either client's
// exception): an outage of any kind (credentials, grants, quota, disk,
// memory, parts, network, timeouts) keeps the rows and retries; only
// errors of the rows themselves do not; a code nobody listed is retried.
func TestErrorClassesByCode(t *testing.T) {
	type tc struct {
		code  int32
		msg   string
		class ErrorClass
	}
	partitions := "Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting."
	parts := "Too many parts (300 with average size of 1.80 KiB) in table 'drover.metrics_gauge'. Merges are processing significantly slower than inserts"
	cases := map[string]tc{
		"authentication failed": {516, "default: Authentication failed: password is incorrect", ClassAccess},
		"access denied":         {497, "ana: Not enough privileges", ClassAccess},
		"required password":     {194, "", ClassAccess},
		"wrong password":        {193, "", ClassAccess},
		"unknown user":          {192, "", ClassAccess},
		"ip not allowed":        {195, "", ClassAccess},
		"database access":       {291, "", ClassAccess},
		"quota exceeded":        {201, "Quota for user 'ana' for 1 hour has been exceeded", ClassAccess},
		"readonly":              {164, "Cannot execute query in readonly mode", ClassAccess},
		"not enough space":      {243, "Cannot reserve 1.00 MiB, not enough space", ClassResource},
		"cannot fsync":          {204, "", ClassResource},
		"memory limit":          {241, "Memory limit (total) exceeded", ClassResource},
		"cannot allocate":       {173, "", ClassResource},
		"too many parts":        {252, parts, ClassResource},
		"too many queries":      {202, "", ClassResource},
		"server overloaded":     {745, "", ClassResource},
		"table read only":       {242, "", ClassResource},
		"socket timeout":        {209, "", ClassUnavailable},
		"network error":         {210, "", ClassUnavailable},
		"all connections":       {279, "", ClassUnavailable},
		"timeout exceeded":      {159, "", ClassUnavailable},
		"keeper":                {999, "", ClassUnavailable},
		"no zookeeper":          {225, "", ClassUnavailable},
		"unknown insert status": {319, "", ClassUnavailable},
		"unknown table":         {60, "", ClassSchema},
		"unknown database":      {81, "", ClassSchema},
		"no such column":        {16, "", ClassSchema},
		"too many partitions":   {252, partitions, ClassData},
		"type mismatch":         {53, "", ClassData},
		"cannot parse text":     {6, "", ClassData},
		"cannot parse datetime": {41, "", ClassData},
		"out of range":          {321, "", ClassData},
		"unknown enum element":  {691, "", ClassData},
		"syntax error":          {62, "", ClassData},
		"null in ordinary":      {349, "", ClassData},
		"unknown code":          {9876, "a code from a newer server", ClassUnknown},
		"std exception":         {1001, "", ClassUnknown},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for client, ex := range map[string]error{
				"clickhouse-go": &clickhouse.Exception{Code: c.code, Name: "DB::Exception", Message: c.msg},
				"ch-go":         fmt.Errorf("handle packet: %w", &ch.Exception{Code: proto.Error(c.code), Name: "DB::Exception", Message: c.msg}),
			} {
				err := fmt.Errorf("outer: %w", &InsertError{Table: "drover.metrics_gauge", Rows: 3, Err: fmt.Errorf("send: %w", ex)})
				if got := classOfCode(c.code, c.msg); got != c.class {
					t.Errorf("class of %d %q = %s, want %s", c.code, c.msg, got, c.class)
				}
				if got, want := IsRetryable(err), c.class != ClassData; got != want {
					t.Errorf("%s: IsRetryable(%v) = %v, want %v", client, err, got, want)
				}
				if got, want := IsAccessError(err), c.class == ClassAccess; got != want {
					t.Errorf("%s: IsAccessError(%v) = %v, want %v", client, err, got, want)
				}
				unknown := UnknownCodes(err)
				if c.class == ClassUnknown {
					if len(unknown) != 1 || unknown[0] != c.code {
						t.Errorf("%s: UnknownCodes = %v, want [%d]", client, unknown, c.code)
					}
				} else if len(unknown) != 0 {
					t.Errorf("%s: UnknownCodes = %v, want none", client, unknown)
				}
				if code, _, ok := ServerError(err); !ok || code != c.code {
					t.Errorf("%s: ServerError = %d, %v; want %d", client, code, ok, c.code)
				}
			}
		})
	}
	// Errors without a code.
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"connection refused":      {&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		"connection reset":        {fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		"deadline":                {context.DeadlineExceeded, true},
		"client conversion":       {errors.New("row 0: temporality 7 is none of unspecified (0), delta (1), cumulative (2)"), false},
		"joined unknown and data": {errors.Join(&clickhouse.Exception{Code: 53}, &ch.Exception{Code: 9876}), true},
	} {
		if got := IsRetryable(c.err); got != c.want {
			t.Errorf("%s: IsRetryable(%v) = %v, want %v", name, c.err, got, c.want)
		}
	}
	if got := UnknownCodes(errors.Join(&clickhouse.Exception{Code: 9876}, &ch.Exception{Code: 9876}, &ch.Exception{Code: 53}, &ch.Exception{Code: 8765})); len(got) != 2 || got[0] != 9876 || got[1] != 8765 {
		t.Errorf("UnknownCodes of a joined error = %v, want [9876 8765]", got)
	}
}

// TestErrorCodesAreTheEngines checks every code of the table against the
// name the engine gives it, so that a number typed wrong cannot classify
// another error.
func TestErrorCodesAreTheEngines(t *testing.T) {
	db := testenv.ClickHouse(t)
	for code, c := range ErrorCodes {
		var name string
		if err := db.Conn.QueryRow(context.Background(), fmt.Sprintf("SELECT errorCodeToName(%d)", code)).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != c.Name {
			t.Errorf("code %d is %q on the engine, the table says %q", code, name, c.Name)
		}
	}
}

// TestErrorCodesDocumented: docs/collector.md lists every code of the
// table under its class.
func TestErrorCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/collector.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for code, c := range ErrorCodes {
		re := regexp.MustCompile(fmt.Sprintf(`\| %s \|[^\n]*\b%d %s\b`, c.Class, code, c.Name))
		if !re.MatchString(text) {
			t.Errorf("docs/collector.md does not list %d %s in the %s row of the error classes", code, c.Name, c.Class)
		}
	}
}

// TestInsertErrorsOfTheEngine provokes errors on the real engine and
// checks their class: rows spanning 400 days (too many partitions for one
// INSERT: data, never retried as they are), a table over its parts limit
// (too many parts: retried), a read-only user (retried).
func TestInsertErrorsOfTheEngine(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC()

	// 400 days of points in one INSERT, on both clients' tables.
	b := &Batch{}
	for d := range 400 {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		b.Gauges = append(b.Gauges, GaugeRow{Point: Point{Time: at, Metric: "m"}, Value: float64(d)})
		b.Events = append(b.Events, EventRow{Time: at, Event: "e"})
	}
	err := s.Insert(ctx, b, "400-days")
	if err == nil {
		t.Fatal("an INSERT spanning 400 partitions succeeded")
	}
	if IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true; rows spanning 400 days fail again, whatever the wait", err)
	}
	for _, e := range InsertErrors(err) {
		if code, msg, ok := ServerError(e); !ok || code != 252 || !strings.Contains(msg, tooManyPartitions) {
			t.Errorf("%s: %v; want TOO_MANY_PARTS (252) for too many partitions", e.Table, e)
		}
	}
	if n := len(InsertErrors(err)); n != 2 {
		t.Errorf("%d tables failed, want metrics_gauge and events: %v", n, err)
	}

	// Too many parts: the table's limit is one part, and it has one.
	one := &Batch{Gauges: []GaugeRow{{Point: Point{Time: now, Metric: "parts"}, Value: 1}}}
	if err := s.Insert(ctx, one, "first-part"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SYSTEM STOP MERGES " + db.Name + ".metrics_gauge", "ALTER TABLE " + db.Name + ".metrics_gauge MODIFY SETTING parts_to_throw_insert = 1"} {
		if err := db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	err = s.Insert(ctx, one, "second-part")
	if code, msg, ok := ServerError(err); !ok || code != 252 || strings.Contains(msg, tooManyPartitions) {
		t.Fatalf("insert over the parts limit: %v; want TOO_MANY_PARTS (252) for too many parts", err)
	}
	if !IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false; too many parts passes once merges catch up", err)
	}

	// A read-only user.
	opts := *db.Options
	opts.Settings = clickhouse.Settings{"readonly": 1}
	conn, err := clickhouse.Open(&opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ro := New(conn, db.Name, &opts)
	defer ro.Close()
	err = ro.Insert(ctx, fullBatch(recent(0)), "read-only")
	if code, _, ok := ServerError(err); !ok || code != 164 {
		t.Fatalf("insert as a read-only user: %v; want READONLY (164)", err)
	}
	if !IsRetryable(err) || !IsAccessError(err) {
		t.Errorf("IsRetryable, IsAccessError(%v) = %v, %v; want true, true", err, IsRetryable(err), IsAccessError(err))
	}
	if n := len(InsertErrors(err)); n != 1 {
		t.Errorf("Insert went on after a retryable error: %d tables failed", n)
	}
}

// TestInsertAuthenticationFailedIsRetried: a wrong password (a password
// rotated under a running collector) is retried, not a reason to drop
// the batch. On an engine of its own: the embedded engine is known to
// stop after failed handshakes.
func TestInsertAuthenticationFailedIsRetried(t *testing.T) {
	db := testenv.OwnClickHouse(t)
	opts := *db.Options
	opts.Auth.Password = "not-the-password"
	opts.DialTimeout = 5 * time.Second
	conn, err := clickhouse.Open(&opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := New(conn, db.Name, &opts)
	defer s.Close()
	err = s.Insert(context.Background(), fullBatch(recent(0)), "wrong-password")
	if code, _, ok := ServerError(err); !ok || code != 516 {
		t.Fatalf("insert with a wrong password: %v; want AUTHENTICATION_FAILED (516)", err)
	}
	if !IsRetryable(err) || !IsAccessError(err) {
		t.Errorf("IsRetryable, IsAccessError(%v) = %v, %v; want true, true", err, IsRetryable(err), IsAccessError(err))
	}
	if n := len(InsertErrors(err)); n != 1 {
		t.Errorf("Insert went on after a failed login (%d tables tried): %v", n, err)
	}
}
