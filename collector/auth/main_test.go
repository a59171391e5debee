package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestMain runs the tests on one ClickHouse engine and then checks that no
// goroutine (a Run loop, an audit writer) outlived its test.
func TestMain(m *testing.M) {
	code := testenv.RunWithClickHouse(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// migrated returns a fresh database with the schema.
func migrated(t testing.TB) *testenv.DB {
	t.Helper()
	db := testenv.ClickHouse(t)
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func newLogger() (*slog.Logger, *testenv.Buffer) {
	b := &testenv.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// testConfig refreshes fast.
func testConfig() Config {
	c := DefaultConfig()
	c.RefreshInterval = 50 * time.Millisecond
	return c
}

// newAuth builds an Authenticator on db (nil: no ClickHouse) with dataDir,
// failing t on an error.
func newAuth(t testing.TB, conn driver.Conn, dbName, dataDir string, cfg Config, opts ...func(*Options)) *Authenticator {
	t.Helper()
	a, err := tryNew(conn, dbName, dataDir, cfg, opts...)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return a
}

func tryNew(conn driver.Conn, dbName, dataDir string, cfg Config, opts ...func(*Options)) (*Authenticator, error) {
	log, _ := newLogger()
	o := Options{Conn: conn, Database: dbName, DataDir: dataDir, Node: "test-node", Logger: log}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return New(ctx, cfg, o)
}

// run starts a.Run with a fast audit flush and stops it when t ends.
func run(t testing.TB, a *Authenticator) {
	t.Helper()
	a.audit.flush = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// unreachable returns a ClickHouse connection to a port nothing listens on.
func unreachable(t testing.TB) driver.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// request is a GET of path with token (none if empty).
func request(method, path, token string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// principal authenticates token on a.
func principal(a *Authenticator, token string) (Principal, error) {
	return a.Authenticate(request("GET", "/", token))
}

// readFile returns the contents of path, failing t.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
