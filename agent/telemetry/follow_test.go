package telemetry

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestFollowCollector: without an explicit endpoint the exporters move to
// the endpoint of each registration answer (the protocol's one), metrics
// and events arriving there with the configured token; an explicit
// endpoint stays.
func TestFollowCollector(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		start    func(*testing.T) *receiver
		answer   func(addr string) (grpc, http string)
	}{
		{ProtocolGRPC, startGRPCReceiver, func(addr string) (string, string) { return addr, "http://unused:4318" }},
		{ProtocolHTTP, startHTTPReceiver, func(addr string) (string, string) { return "unused:4317", "http://" + addr }},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			tok := t.TempDir() + "/agent.token"
			if err := os.WriteFile(tok, []byte("drover_agent_secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tel, err := New(context.Background(), Config{Protocol: tc.protocol, Interval: time.Hour, TokenFile: tok}, testResource, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t, tel)
			if want := defaultEndpoint(tc.protocol); tel.Endpoint() != want {
				t.Fatalf("endpoint before a registration: %s, want %s", tel.Endpoint(), want)
			}
			for i, rcv := range []*receiver{tc.start(t), tc.start(t)} {
				g, h := tc.answer(rcv.addr)
				if ok, err := tel.FollowCollector(context.Background(), g, h); !ok || err != nil || tel.Endpoint() != rcv.addr {
					t.Fatalf("collector %d: switched %v (%v), endpoint %s, want %s", i, ok, err, tel.Endpoint(), rcv.addr)
				}
				if ok, err := tel.FollowCollector(context.Background(), g, h); ok || err != nil {
					t.Errorf("collector %d again: switched %v (%v), want no change", i, ok, err)
				}
				tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
				tel.Event(semconv.EventSwapped, "iris", "3")
				if err := tel.ForceFlush(context.Background()); err != nil {
					t.Fatalf("collector %d: flush: %v", i, err)
				}
				if n := rcv.sumTotal(t, semconv.MetricRequests, ScopeName, map[string]string{semconv.AttrModel: "iris"}); n != 1 {
					t.Errorf("collector %d: %d requests received, want 1 (each export carries the counts since the last one)", i, n)
				}
				if recs, _ := rcv.logRecords(); len(recs) != 1 {
					t.Errorf("collector %d: %d events received, want 1", i, len(recs))
				}
				if tc.protocol == ProtocolGRPC {
					rcv.mu.Lock()
					auth := rcv.auth
					rcv.mu.Unlock()
					for _, a := range auth {
						if a != "Bearer drover_agent_secret" {
							t.Errorf("collector %d: authorization %q, want the token", i, a)
						}
					}
				}
			}
		})
	}

	t.Run("explicit endpoint", func(t *testing.T) {
		rcv := startGRPCReceiver(t)
		tel, err := New(context.Background(), Config{Endpoint: rcv.addr, Interval: time.Hour}, testResource, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, tel)
		if ok, err := tel.FollowCollector(context.Background(), "collector:4317", "http://collector:4318"); ok || err != nil || tel.Endpoint() != rcv.addr {
			t.Errorf("explicit endpoint: switched %v (%v) to %s, want it kept", ok, err, tel.Endpoint())
		}
	})
}

// TestExplicitEndpoint: a file that names the endpoint chooses it, even
// the default; one that does not leaves it to the collector.
func TestExplicitEndpoint(t *testing.T) {
	for doc, want := range map[string]bool{
		"protocol: grpc":              false,
		"protocol: http/protobuf":     false,
		"interval: 5s":                false,
		"endpoint: localhost:4317":    true,
		"endpoint: otel-sidecar:4317": true,
	} {
		c := DefaultConfig()
		if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
			t.Fatal(err)
		}
		if got := c.ExplicitEndpoint(); got != want {
			t.Errorf("%q: explicit %v, want %v", doc, got, want)
		}
	}
	if (Config{Endpoint: "agent-side:4317"}).ExplicitEndpoint() != true || DefaultConfig().ExplicitEndpoint() {
		t.Error("code-built configs: an endpoint other than the default is explicit, the default is not")
	}
}

// TestCollectorEndpoint: the registration answer's endpoint of the
// agent's protocol, checked.
func TestCollectorEndpoint(t *testing.T) {
	secure := false
	for _, tc := range []struct {
		name       string
		cfg        Config
		grpc, http string
		want, err  string
	}{
		{"grpc", DefaultConfig(), "c1:4317", "http://c1:4318", "c1:4317", ""},
		{"http", Config{Protocol: ProtocolHTTP}, "c1:4317", "http://c1:4318/", "c1:4318", ""},
		{"https with tls", Config{Protocol: ProtocolHTTP, Insecure: &secure}, "", "https://c1:4318", "c1:4318", ""},
		{"none named", DefaultConfig(), "", "http://c1:4318", "", ""},
		{"https without tls", Config{Protocol: ProtocolHTTP}, "", "https://c1:4318", "", "needs TLS"},
		{"bad grpc", DefaultConfig(), "c1", "", "", "otlp.grpc"},
		{"bad http", Config{Protocol: ProtocolHTTP}, "", "c1:4318", "", "otlp.http"},
	} {
		got, err := collectorEndpoint(tc.cfg.WithDefaults(), tc.grpc, tc.http)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q, error with %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestEventsExportFollowsTheSwap: an events export in flight to a
// collector that stopped answering is cancelled when the agent follows
// another collector, and its records go to the new one (before, they were
// dropped after the export timeout, and the queue, full meanwhile, dropped
// every new event).
func TestEventsExportFollowsTheSwap(t *testing.T) {
	dead := &blockingExporter{release: make(chan struct{})} // answers only when cancelled
	alive := &blockingExporter{release: make(chan struct{})}
	close(alive.release)
	var pending atomic.Int64
	recs := make([]sdklog.Record, 3)
	pending.Store(int64(len(recs)))
	e := &logExporter{exp: dead, errs: newErrorLog(slog.New(slog.DiscardHandler), time.Hour, time.Now), pending: &pending, timeout: time.Minute}

	done := make(chan error, 1)
	go func() { done <- e.Export(context.Background(), recs) }()
	testenv.Eventually(t, 10*time.Second, "the export to be in flight", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.inflight != nil
	})
	if old := e.swap(alive); old != dead {
		t.Errorf("swap returned %v, want the previous exporter", old)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the export in flight did not end after the swap")
	}
	if dead.got != 0 || alive.got != len(recs) {
		t.Errorf("records: %d to the old collector, %d to the new; want 0 and %d", dead.got, alive.got, len(recs))
	}
	if n := pending.Load(); n != 0 {
		t.Errorf("%d queue slots still held, want 0", n)
	}
	if e.last.err != nil {
		t.Errorf("last export result %v, want success", e.last.err)
	}

	// Without a swap, a failed export is not sent again.
	pending.Store(1)
	failing := &blockingExporter{release: make(chan struct{})}
	e.swap(failing)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Export(ctx, recs[:1]); err != nil {
		t.Fatalf("Export reports failures through the error log, got %v", err)
	}
	if failing.got != 0 || alive.got != len(recs) || pending.Load() != 0 || e.last.err == nil {
		t.Errorf("after a failed export without a swap: %d, %d records, %d slots held, last %v", failing.got, alive.got, pending.Load(), e.last.err)
	}
}
