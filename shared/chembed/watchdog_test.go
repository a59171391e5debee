package chembed_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestPasswordGeneratedAndRequired: the first start writes a private random
// password that the DSN carries; the engine refuses User without it and a
// passwordless `default` can touch no data; a restart on the same directory
// keeps the password.
func TestPasswordGeneratedAndRequired(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir)
	st, err := os.Stat(filepath.Join(dir, chembed.PasswordFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
	}
	pw := e.Password()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(pw) {
		t.Fatalf("password %q is not 128 bits of hex", pw)
	}
	if !strings.Contains(e.DSN("default"), chembed.User+":"+pw+"@") {
		t.Fatalf("DSN does not carry the password: %s", e.DSN("default"))
	}
	conn := connect(t, e.DSN("default"))
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO default.kept VALUES (1), (2), (3)"); err != nil {
		t.Fatal(err)
	}

	// Over HTTP: a failed native login aborts the chdb engine (see
	// TestDrillFailedNativeLogin), which this test does not watch.
	for name, auth := range map[string][2]string{
		"user without password":  {chembed.User, ""},
		"user with a wrong one":  {chembed.User, pw + "x"},
		"default, no password":   {"default", ""},
		"default with User's pw": {"default", pw},
	} {
		t.Run(name, func(t *testing.T) {
			for _, q := range []string{
				"SELECT count() FROM default.kept",
				"SELECT * FROM file('" + filepath.Join(dir, chembed.PasswordFileName) + "', 'LineAsString')",
				"CREATE DATABASE intruder",
				"CREATE USER intruder",
			} {
				req, err := http.NewRequest(http.MethodPost, "http://"+e.HTTPAddr()+"/", strings.NewReader(q))
				if err != nil {
					t.Fatal(err)
				}
				req.SetBasicAuth(auth[0], auth[1])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK || strings.Contains(string(body), pw) {
					t.Errorf("%q answered %d: %.200s", q, resp.StatusCode, body)
				}
			}
		})
	}

	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := startEngine(t, dir)
	if e2.Password() != pw {
		t.Fatalf("restart on the same directory changed the password")
	}
	if n := testenv.Count(t, connect(t, e2.DSN("default")), "SELECT count() FROM default.kept"); n != 3 {
		t.Fatalf("after restart: %d rows, want 3", n)
	}
}

// restartLog records the watchdog's restarts.
type restartLog struct {
	mu      sync.Mutex
	reasons []string
	errs    []error
}

func (r *restartLog) record(reason string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
	r.errs = append(r.errs, err)
}

func (r *restartLog) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

func (r *restartLog) ok() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, err := range r.errs {
		if err == nil {
			n++
		}
	}
	return n
}

func startWatched(t *testing.T, dir string, rl *restartLog) *chembed.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := chembed.Start(ctx, chembed.Config{DataDir: dir, Logger: quietLogger(), Watchdog: chembed.Watchdog{
		Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, Failures: 2, OnRestart: rl.record,
	}})
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

func seed(t *testing.T, dsn string) {
	t.Helper()
	conn := connect(t, dsn)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO default.kept SELECT number FROM numbers(1000)"); err != nil {
		t.Fatal(err)
	}
}

// answersWithData is the drill's end state: a fresh native connection on the
// same DSN reads the rows written before the fault.
func answersWithData(dsn string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	opts.DialTimeout = time.Second
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := testenv.TryCount(conn, "SELECT count() FROM default.kept")
	if err != nil {
		return err
	}
	if n != 1000 {
		return errors.New("rows written before the fault are missing")
	}
	return nil
}

// TestDrillMissingDatabaseHandshakes provokes the embedded engine's known
// fault: native handshakes that name a database that does not exist (a
// client with a typo). On the commit before the watchdog the engine refused
// connections from the second one on, its process alive; the watchdog must
// bring it back on the same address with its data.
func TestDrillMissingDatabaseHandshakes(t *testing.T) {
	rl := &restartLog{}
	e := startWatched(t, t.TempDir(), rl)
	dsn := e.DSN("default")
	seed(t, dsn)
	pid := e.PID()

	typo := strings.TrimSuffix(dsn, "/default") + "/no_such_database"
	for i := range 2 {
		opts, err := clickhouse.ParseDSN(typo)
		if err != nil {
			t.Fatal(err)
		}
		opts.DialTimeout = 2 * time.Second
		c, err := clickhouse.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Ping(context.Background())
		c.Close()
		t.Logf("handshake %d naming a missing database: %v", i+1, err)
	}
	testenv.EventuallyNil(t, 2*time.Minute, "the engine answers with its data after the faulty handshakes", func() error {
		return answersWithData(dsn)
	})
	if e.PID() != pid {
		t.Logf("the watchdog restarted the engine (pid %d -> %d, %d restarts: %v)", pid, e.PID(), e.Restarts(), rl.list())
	}
}

// TestDrillStoppedChild freezes the child (SIGSTOP: alive, deaf): the
// watchdog must kill it, start a new one on the same data directory and
// ports, count the restart and report it.
func TestDrillStoppedChild(t *testing.T) {
	rl := &restartLog{}
	e := startWatched(t, t.TempDir(), rl)
	dsn := e.DSN("default")
	seed(t, dsn)
	pid := e.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "the watchdog restarts the frozen engine", func() bool { return rl.ok() >= 1 })
	if e.PID() == pid {
		t.Fatalf("pid unchanged after a restart")
	}
	if alive(pid) {
		t.Errorf("frozen child %d still alive after the restart", pid)
	}
	if got := e.Restarts(); got < 1 {
		t.Errorf("Restarts() = %d, want >= 1", got)
	}
	if err := answersWithData(dsn); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	select {
	case <-e.Exited():
		t.Fatal("Exited closed although the watchdog restarted the engine")
	default:
	}
}

// TestDrillKilledChild: a child that dies is restarted at once (no ping
// rounds to wait for), and Stop still ends everything.
func TestDrillKilledChild(t *testing.T) {
	rl := &restartLog{}
	e := startWatched(t, t.TempDir(), rl)
	dsn := e.DSN("default")
	seed(t, dsn)
	pid := e.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "the watchdog restarts the killed engine", func() bool { return rl.ok() >= 1 })
	if err := answersWithData(dsn); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if !strings.Contains(strings.Join(rl.list(), ";"), "exited") {
		t.Errorf("restart reasons %q do not say the process exited", rl.list())
	}
	newPID := e.PID()
	if err := e.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	<-e.Exited()
	if alive(newPID) {
		t.Fatalf("engine pid %d still running after Stop", newPID)
	}
}

// TestDrillFailedNativeLogin: a native login with a wrong password aborts
// the chdb engine (ClickHouse 26.7 in clickhouse-local mode); any local
// client with a stale password would take it down. The watchdog restarts it.
func TestDrillFailedNativeLogin(t *testing.T) {
	rl := &restartLog{}
	e := startWatched(t, t.TempDir(), rl)
	dsn := e.DSN("default")
	seed(t, dsn)
	c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{e.Addr()}, Auth: clickhouse.Auth{Username: chembed.User, Password: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ping(context.Background())
	c.Close()
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	testenv.EventuallyNil(t, 2*time.Minute, "the engine answers with its data after a failed login", func() error {
		return answersWithData(dsn)
	})
	t.Logf("restarts: %d %v", e.Restarts(), rl.list())
}
