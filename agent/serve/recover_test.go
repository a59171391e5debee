package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/agent/watch"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	agentruntime "github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// boom makes the test hook panic.
var boom atomic.Bool

// TestHandlerPanicsAreRecovered is the drill for panics: a panic injected
// into the inference path (a test hook, called once the request holds its
// version) is answered 500 over REST and Internal over gRPC, logged,
// counted in drover.agent.panics, its slot and version reference given
// back; the server goes on answering.
func TestHandlerPanicsAreRecovered(t *testing.T) {
	if err := agentruntime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
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

	s := New(Config{}, set, nil, log, WithTelemetry(tel))
	s.inferHook = func(string) {
		if boom.Load() {
			panic("injected by the test")
		}
	}
	srv := httptest.NewServer(s.Handler())
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPCServer()
	go g.Serve(gl)
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := tel.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	client := pb.NewGRPCInferenceServiceClient(conn)
	testenv.Eventually(t, 20*time.Second, "lin serving", func() bool { ok, _ := s.ModelReady("lin", 1); return ok })

	body := `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`
	rest := func() (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v2/models/lin/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("REST: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	grpcInfer := func() error {
		_, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "lin", Inputs: []*pb.ModelInferRequest_InferInputTensor{{
			Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 1}},
		}}})
		return err
	}

	boom.Store(true)
	for range 2 {
		if code, b := rest(); code != http.StatusInternalServerError || !strings.Contains(b, "internal error") {
			t.Fatalf("REST with a panic: %d %s, want 500", code, b)
		}
		if err := grpcInfer(); status.Code(err) != codes.Internal {
			t.Fatalf("gRPC with a panic: %v, want Internal", err)
		}
	}
	boom.Store(false)
	if code, b := rest(); code != http.StatusOK {
		t.Fatalf("REST after the panics: %d %s", code, b)
	}
	if err := grpcInfer(); err != nil {
		t.Fatalf("gRPC after the panics: %v", err)
	}
	if n := s.inFlight.Load(); n != 0 {
		t.Fatalf("in flight %d after the requests, want 0 (a panicking request kept its slot)", n)
	}
	if l := logs.String(); strings.Count(l, "request handler panicked") != 4 || !strings.Contains(l, "injected by the test") {
		t.Fatalf("log:\n%s", l)
	}
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, proto := range []string{"rest", "grpc"} {
		found := false
		for l := range strings.SplitSeq(rec.Body.String(), "\n") {
			if strings.HasPrefix(l, "drover_agent_panics_total{") && strings.Contains(l, `drover_protocol="`+proto+`"`) && strings.HasSuffix(l, " 2") {
				found = true
			}
		}
		if !found {
			t.Errorf("no drover_agent_panics_total 2 for %s in\n%s", proto, rec.Body)
		}
	}
}
