package serve

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/oip"
	agentruntime "github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// TestClientDeadlineIsCancelledNotTimeout: a request whose client's own
// deadline has passed (a gRPC client timeout) or that the client cancelled
// is recorded as drover.status="cancelled", a client-caused outcome, not
// as "timeout", which the collector's error-rate drift signal counts as a
// server error: a client setting tiny deadlines cannot raise it.
func TestClientDeadlineIsCancelledNotTimeout(t *testing.T) {
	if err := agentruntime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	tel, err := telemetry.New(context.Background(), telemetry.Config{Disabled: true}, telemetry.ResourceInfo{AgentID: "a"}, log)
	if err != nil {
		t.Fatal(err)
	}
	set, err := versions.New(versions.Config{Backend: &agentruntime.ONNX{Options: agentruntime.Options{IntraOpThreads: 1, InterOpThreads: 1}}, WarmupRuns: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	model, err := testmodels.Linear("x", "y", [][]float32{{1}, {2}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testmodels.WriteVersion(root, "lin", 1, model); err != nil {
		t.Fatal(err)
	}
	snap, err := watch.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	set.Sync("lin", snap["lin"])
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
	s := New(Config{}, set, nil, log, WithTelemetry(tel))
	testenv.Eventually(t, 20*time.Second, "lin serving", func() bool { ok, _ := s.ModelReady("lin", 1); return ok })

	req := func() *oip.InferRequest {
		return &oip.InferRequest{Inputs: []oip.Tensor{{Name: "x", Shape: []int64{1, 2}, Datatype: oip.FP32, Data: []float32{1, 1}}}}
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := s.Infer(expired, "grpc", "lin", 0, req()); err == nil {
		t.Fatal("a request past its client's deadline was answered")
	}
	gone, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := s.Infer(gone, "rest", "lin", 0, req()); err == nil {
		t.Fatal("a cancelled request was answered")
	}
	if _, err := s.Infer(context.Background(), "rest", "lin", 0, req()); err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var requests []string
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "drover_requests_total{") {
			requests = append(requests, line)
		}
	}
	has := func(protocol, status string) bool {
		for _, l := range requests {
			if strings.Contains(l, `drover_protocol="`+protocol+`"`) && strings.Contains(l, `drover_status="`+status+`"`) && strings.HasSuffix(l, " 1") {
				return true
			}
		}
		return false
	}
	if !has("grpc", "cancelled") || !has("rest", "cancelled") || !has("rest", "ok") || len(requests) != 3 {
		t.Errorf("request series %q, want grpc and rest cancelled, rest ok, once each", requests)
	}
}
