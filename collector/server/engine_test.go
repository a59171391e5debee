package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/testenv"
)

// runLogged runs a collector like runCollector, its log (debug and up)
// going to buf.
func runLogged(t *testing.T, cfg Config, buf *testenv.Buffer) *collector {
	t.Helper()
	ls := Listeners{OTLPGRPC: listen(t), OTLPHTTP: listen(t), Admin: listen(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- run(ctx, cfg, ls, log, hooks{}) }()
	var once sync.Once
	var runErr error
	c := &collector{grpcAddr: ls.OTLPGRPC.Addr().String(), httpAddr: ls.OTLPHTTP.Addr().String(), adminAddr: ls.Admin.Addr().String(), dataDir: cfg.DataDir, cancel: cancel}
	c.wait = func() error {
		once.Do(func() { runErr = <-done })
		return runErr
	}
	c.stop = func() {
		cancel()
		if err := c.wait(); err != nil {
			t.Errorf("collector: %v", err)
		}
	}
	return c
}

var engineAddr = regexp.MustCompile(`msg="clickhouse engine ready".* addr=(\S+)`)

// TestEmbeddedEngineWatchdogDrill runs a collector on its embedded engine,
// takes the engine down with the fault a local client causes (a native
// login with a wrong password aborts it; before the watchdog the collector
// noticed only by exiting, and a deaf engine not at all), and checks that
// the watchdog brings it back, the collector's writes reconnect and the
// spool drains, the restart is counted and logged, and the engine's
// password is in no log line.
func TestEmbeddedEngineWatchdogDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse engine of its own")
	}
	var logs testenv.Buffer
	cfg := testConfig(t, store.Embedded, "drill")
	c := runLogged(t, cfg, &logs)
	t.Cleanup(c.stop)
	waitReady(t, c)

	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, "clickhouse", chembed.PasswordFileName))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	m := engineAddr.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no engine address in the log:\n%s", logs.String())
	}
	addr := m[1]
	dsn := "clickhouse://" + chembed.User + ":" + password + "@" + addr + "/default"
	token := agentToken(t, cfg.DataDir)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			testenv.EventuallyNil(t, time.Minute, "request "+strconv.Itoa(i)+" acknowledged", func() error {
				code, err := postMetrics(c.httpAddr, token, "drill"+strconv.Itoa(i))
				if err != nil {
					return err
				}
				return unless(code == http.StatusOK, fmt.Sprintf("status %d", code))
			})
		}
	}
	stored := func() error {
		opts, err := clickhouse.ParseDSN(dsn)
		if err != nil {
			return err
		}
		conn, err := clickhouse.Open(opts)
		if err != nil {
			return err
		}
		defer conn.Close()
		n, err := testenv.TryCount(conn, "SELECT uniqExact(model) FROM drill.metrics_gauge")
		if err != nil {
			return err
		}
		return unless(n == 20, fmt.Sprintf("%d of 20 requests stored", n))
	}
	send(0, 10)

	// The fault: a native login with a stale password.
	bad, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Username: chembed.User, Password: "stale"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Ping(context.Background()); err == nil {
		t.Fatal("a wrong password logged in")
	}
	bad.Close()
	send(10, 20)

	testenv.EventuallyNil(t, 2*time.Minute, "every request stored after the engine's restart", stored)
	testenv.EventuallyNil(t, time.Minute, "the restart counted", func() error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.adminAddr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken(t, cfg.DataDir))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`(?m)^drover_collector_engine_restarts_total (\d+)`).FindSubmatch(b)
		if m == nil {
			return errors.New("no drover_collector_engine_restarts_total in /metrics")
		}
		return unless(string(m[1]) != "0", "restarts: "+string(m[1]))
	})
	if !strings.Contains(logs.String(), "clickhouse engine stopped answering; restarting it") {
		t.Errorf("no log line for the restart:\n%s", logs.String())
	}
	c.stop()
	if strings.Contains(logs.String(), password) {
		t.Fatalf("the engine's password is in the collector's log:\n%s", logs.String())
	}
}

// TestPasswordNotLogged: a collector whose DSN carries a password, pointed
// at a ClickHouse that is not there, logs its start and its failed
// connections without the password; a DSN that does not parse is refused
// by validation without it either.
func TestPasswordNotLogged(t *testing.T) {
	const secret = "n0t1nTheL0g"
	l := listen(t)
	addr := l.Addr().String()
	l.Close()
	var logs testenv.Buffer
	cfg := testConfig(t, "clickhouse://drover:"+secret+"@"+addr+"/drover", "nolog")
	c := runLogged(t, cfg, &logs)
	testenv.Eventually(t, time.Minute, "a failed connection logged", func() bool {
		return strings.Contains(logs.String(), "connection refused")
	})
	c.stop()
	out := logs.String()
	if !strings.Contains(out, "drover:xxxxx@"+addr) {
		t.Errorf("the start line does not name the DSN redacted:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("the password is in the log:\n%s", out)
	}

	bad := Default()
	bad.ClickHouse.DSN = "clickhouse://drover:" + secret + "@host:notaport/drover"
	err := bad.ClickHouse.Validate()
	if err == nil {
		t.Fatal("a DSN with a bad port validated")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the validation error shows the password: %v", err)
	}
}
