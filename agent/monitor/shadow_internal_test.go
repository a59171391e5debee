package monitor

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/oip"
	agentruntime "github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// internals builds a monitor over a set without models, with telemetry
// (no export) whose /metrics the test reads.
func internals(t *testing.T, cfg Config) (*Monitor, *telemetry.Telemetry) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tel, err := telemetry.New(context.Background(), telemetry.Config{Disabled: true}, telemetry.ResourceInfo{AgentID: "a"}, log)
	if err != nil {
		t.Fatal(err)
	}
	set, err := versions.New(versions.Config{Backend: &agentruntime.ONNX{}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := tel.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return New(cfg, nil, tel, set, log), tel
}

// metricLine returns the /metrics line that starts with prefix, "" if none.
func metricLine(tel *telemetry.Telemetry, prefix string) string {
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestShadowQueueBoundedInBytes is the drill for the shadow queue: with
// room for 256 copies but 1 MiB, copies of 256 KiB requests stop queueing
// at the bytes bound; the rest are dropped and counted
// (drover.shadow.dropped), and the bytes are given back as the worker
// takes the copies.
func TestShadowQueueBoundedInBytes(t *testing.T) {
	m, tel := internals(t, Config{ShadowQueue: 256, ShadowQueueBytes: 1 << 20})
	v := &versions.Version{Model: "lin", Number: 1}
	const elems = 64 << 10 // 256 KiB of FP32
	req := &oip.InferRequest{ID: "r", Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, elems}, Data: make([]float32, elems)}}}
	resp := &oip.InferResponse{Outputs: []oip.Tensor{{Name: "y", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: []float32{0}}}}
	for range 10 {
		m.maybeShadow(v, 2, req, resp)
	}
	// Each copy holds 256 KiB + 4 bytes: three fit in 1 MiB, a fourth
	// does not.
	if n, b := len(m.shadowQ), m.shadowBytes.Load(); n != 3 || b != 3*(4*elems+4) {
		t.Fatalf("queued %d copies of %d bytes, want 3 copies of %d", n, b, 3*(4*elems+4))
	}
	if l := metricLine(tel, "drover_shadow_dropped_total{"); !strings.Contains(l, `drover_model="lin"`) || !strings.HasSuffix(l, " 7") {
		t.Fatalf("drop counter %q, want 7 for lin", l)
	}
	// A copy larger than the whole bound is never queued.
	huge := &oip.InferRequest{ID: "h", Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 1 << 20}, Data: make([]float32, 1<<20)}}}
	m.maybeShadow(v, 2, huge, resp)
	if n := len(m.shadowQ); n != 3 {
		t.Fatalf("a copy over the bound was queued (%d copies)", n)
	}

	// The worker takes the copies (version 2 does not exist: nothing to
	// compare) and gives their bytes back.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	testenv.Eventually(t, 10*time.Second, "shadow bytes given back", func() bool {
		return len(m.shadowQ) == 0 && m.shadowBytes.Load() == 0
	})
	m.maybeShadow(v, 2, req, resp)
	testenv.Eventually(t, 10*time.Second, "a new copy queued and run", func() bool { return m.shadowBytes.Load() == 0 })
	if l := metricLine(tel, "drover_shadow_dropped_total{"); !strings.HasSuffix(l, " 8") {
		t.Fatalf("drop counter %q, want 8 (7 + the copy over the bound)", l)
	}
}
