package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/testenv"
)

// record keeps what the collector's component group did, in order.
type record struct {
	mu     sync.Mutex
	events []string
}

func (r *record) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *record) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *record) watch(g *lifecycle.Group) {
	g.OnStop = func(name string) { r.add("stop " + name) }
	g.OnReturn = func(name string, err error) { r.add("return " + name) }
}

// holdingSink holds the first request in the sink until release is closed.
type holdingSink struct {
	ingest.Sink
	once             sync.Once
	entered, release chan struct{}
}

func (s *holdingSink) Accept(ctx context.Context, kind ingest.Kind, payload []byte, points int, decoded any) error {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Sink.Accept(ctx, kind, payload, points, decoded)
}

func postMetrics(addr, token, model string) (int, error) {
	body, err := pmetricotlp.NewExportRequestFromMetrics(allTypes(model, 1, time.Now())).MarshalProto()
	if err != nil {
		return 0, err
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/metrics", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestStopOrder: on stop, a request in flight in the receivers finishes
// and is acknowledged; the writer is told to stop only after the receivers
// have returned, and its drain writes that request into ClickHouse; the
// other components stop after it in the order Run documents, ClickHouse
// last.
func TestStopOrder(t *testing.T) {
	db := testenv.ClickHouse(t)
	rec := &record{}
	hold := &holdingSink{entered: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig(t, db.DSN, db.Name)
	cfg.Writer.FlushInterval = time.Hour // only the drain writes the request
	c := runCollector(t, cfg, hooks{
		sink:  func(s ingest.Sink) ingest.Sink { hold.Sink = s; return hold },
		group: rec.watch,
	})
	t.Cleanup(c.stop)
	waitReady(t, c)

	type answer struct {
		code int
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		code, err := postMetrics(c.httpAddr, agentToken(t, c.dataDir), "inflight")
		answered <- answer{code, err}
	}()
	<-hold.entered
	c.cancel()
	testenv.Eventually(t, time.Minute, "the receivers told to stop", func() bool { return slices.Contains(rec.get(), "stop otlp") })
	if ev := rec.get(); slices.Contains(ev, "return otlp") || slices.Contains(ev, "stop writer") {
		t.Fatalf("with a request in flight: %v; want the receivers still draining and the writer running", ev)
	}
	close(hold.release)
	if a := <-answered; a.err != nil || a.code != http.StatusOK {
		t.Fatalf("request in flight at stop: %d, %v; want 200", a.code, a.err)
	}
	if err := c.wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []string{"otlp", "writer", "spool", "drift", "incidents", "jobs", "registry-gc", "canary-analysis", "fleet", "admin", "blobs", "auth", "schema", "clickhouse"}
	var order []string
	for _, e := range rec.get() {
		if name, ok := strings.CutPrefix(e, "stop "); ok {
			order = append(order, name)
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("stop order %v, want %v", order, want)
	}
	ev := rec.get()
	for i := 1; i < len(want); i++ {
		returned, next := slices.Index(ev, "return "+want[i-1]), slices.Index(ev, "stop "+want[i])
		if returned < 0 || next < returned {
			t.Errorf("%s told to stop before %s returned: %v", want[i], want[i-1], ev)
		}
	}
	// The request was spooled after the stop began and the writer flushes
	// only on its drain: the row is there because the writer drained after
	// the receivers closed and before ClickHouse stopped.
	if n := count(t, db.Conn, db.Name, "metrics_gauge", "model = 'inflight'"); n != 1 {
		t.Errorf("%d gauge rows of the request in flight, want 1", n)
	}
}

// TestComponentFailureStopsCollector: the spool failing under a running
// collector (here: closed) ends Run with the writer's error instead of a
// collector that goes on without writing; drover-collector then exits
// non-zero (see the command's tests).
func TestComponentFailureStopsCollector(t *testing.T) {
	db := testenv.ClickHouse(t)
	var sp *spool.Spool
	rec := &record{}
	c := runCollector(t, testConfig(t, db.DSN, db.Name), hooks{spool: func(s *spool.Spool) { sp = s }, group: rec.watch})
	waitReady(t, c)
	sp.Close()
	done := make(chan error, 1)
	go func() { done <- c.wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		c.cancel()
		t.Fatal("the collector runs on a minute after its spool failed")
	}
	if !errors.Is(err, spool.ErrClosed) || !strings.HasPrefix(err.Error(), "writer: ") {
		t.Fatalf("Run = %v, want the writer's spool error", err)
	}
	for _, name := range []string{"otlp", "admin", "clickhouse"} {
		if !slices.Contains(rec.get(), "return "+name) {
			t.Errorf("%s did not stop: %v", name, rec.get())
		}
	}
}

// TestClickHouseDownAtStart: with ClickHouse unreachable the collector
// still starts, acknowledges requests into the spool and says it is not
// ready; once ClickHouse is up, the schema is applied and what was spooled
// is written.
func TestClickHouseDownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse engine of its own")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(portStr)
	l.Close() // nothing listens there until the engine starts
	// The engine's password is chosen now (written where the engine reads
	// it on its first start), so the DSN can carry it before the engine runs.
	engineDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(engineDir, chembed.PasswordFileName), []byte("late0engine0password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "clickhouse://"+chembed.User+":late0engine0password@127.0.0.1:"+portStr+"/default", "late")
	// The agent's token comes from a tokens_file: the receivers check it
	// without ClickHouse (a first start bootstraps its tokens only once
	// ClickHouse is there).
	token := auth.TokenPrefix + "lifecycle0agent0token0for0the0test"
	cfg.Auth.TokensFile = filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(cfg.Auth.TokensFile, []byte("- name: agent-a\n  role: agent\n  sha256: "+auth.Hash(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := runCollector(t, cfg, hooks{})
	t.Cleanup(c.stop)

	testenv.EventuallyNil(t, time.Minute, "the receivers to acknowledge", func() error {
		code, err := postMetrics(c.httpAddr, token, "early")
		if err != nil {
			return err
		}
		return unless(code == http.StatusOK, fmt.Sprintf("status %d", code))
	})
	resp, err := http.Get("http://" + c.adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "schema not applied") {
		t.Errorf("readyz while ClickHouse is down: %s %q, want 503 saying the schema is not applied", resp.Status, b)
	}

	eng, err := chembed.Start(context.Background(), chembed.Config{DataDir: engineDir, TCPPort: port, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(context.Background())
	waitReady(t, c)
	ch := testenv.Open(t, eng.DSN("default"))
	testenv.EventuallyNil(t, time.Minute, "the spooled request in ClickHouse", func() error {
		n, err := testenv.TryCount(ch, "SELECT count() FROM late.metrics_gauge WHERE model = 'early'")
		if err != nil {
			return err
		}
		return unless(n == 1, fmt.Sprintf("%d rows", n))
	})
	c.stop()
}
