package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testAgent is a complete agent (package agent: watcher, versions, REST and
// gRPC servers, monitor, telemetry without export) on loopback, serving a
// temporary model store.
type testAgent struct {
	*agenttest.Agent
	grpc pb.GRPCInferenceServiceClient
}

func startAgent(t testing.TB, root string, cfg serve.Config) *testAgent {
	t.Helper()
	file := agenttest.File()
	file.Serving = cfg
	a := agenttest.Start(t, agent.Config{File: file, ModelDir: root}, nil)
	return &testAgent{Agent: a, grpc: a.GRPC(t)}
}

func linearModel(t *testing.T, k float32) []byte {
	t.Helper()
	b, err := testmodels.Linear("x", "y", [][]float32{{k}, {2 * k}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publish(t testing.TB, root, model string, version int64, onnx []byte) {
	t.Helper()
	if _, err := testmodels.WriteVersion(root, model, version, onnx); err != nil {
		t.Fatal(err)
	}
}

func irisModel(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRESTProtocol(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	publish(t, root, "iris", 1, irisModel(t))
	a := startAgent(t, root, serve.Config{MaxRequestBytes: 1 << 20})
	a.WaitServing(t, "lin", 1)
	a.WaitServing(t, "iris", 1)

	if code, _, _ := a.Do(t, "GET", "/v2/health/live", nil, nil); code != 200 {
		t.Errorf("live = %d", code)
	}
	if code, _, _ := a.Do(t, "GET", "/v2/health/ready", nil, nil); code != 200 {
		t.Errorf("ready = %d", code)
	}
	code, _, body := a.Do(t, "GET", "/v2", nil, nil)
	var smd serve.ServerMetadata
	if code != 200 || json.Unmarshal(body, &smd) != nil || smd.Name != "drover" || len(smd.Extensions) == 0 {
		t.Errorf("server metadata %d %s", code, body)
	}

	// Model metadata of a model this project did not write, with the class
	// labels of its converted ZipMap output.
	code, _, body = a.Do(t, "GET", "/v2/models/iris", nil, nil)
	var md oip.ModelMetadata
	if code != 200 || json.Unmarshal(body, &md) != nil {
		t.Fatalf("iris metadata %d %s", code, body)
	}
	wantOut := []oip.TensorMetadata{{Name: "output_label", Datatype: oip.INT64, Shape: []int64{-1}}, {Name: "output_probability", Datatype: oip.FP32, Shape: []int64{-1, 3}}}
	if !reflect.DeepEqual(md.Outputs, wantOut) || md.Parameters["output_probability.classes"] != `["0","1","2"]` || !reflect.DeepEqual(md.Versions, []string{"1"}) {
		t.Errorf("iris metadata %+v", md)
	}
	for _, p := range []string{"/v2/models/iris/ready", "/v2/models/iris/versions/1/ready", "/v2/models/iris/versions/1"} {
		if code, _, body := a.Do(t, "GET", p, nil, nil); code != 200 {
			t.Errorf("GET %s = %d %s", p, code, body)
		}
	}

	// Inference, flat and nested JSON data.
	for name, data := range map[string]string{
		"flat":   `[5.9, 3.0, 5.1, 1.8, 5.5, 2.5, 4.0, 1.3]`,
		"nested": `[[5.9, 3.0, 5.1, 1.8], [5.5, 2.5, 4.0, 1.3]]`,
	} {
		req := `{"id": "r-` + name + `", "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": ` + data + `}]}`
		code, hdr, body := a.Do(t, "POST", "/v2/models/iris/infer", []byte(req), map[string]string{"Content-Type": "application/json"})
		if code != 200 {
			t.Fatalf("%s infer: %d %s", name, code, body)
		}
		resp, err := oip.DecodeRESTResponse(body, -1)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ModelVersion != "1" || resp.ModelName != "iris" || resp.ID != "r-"+name || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: response envelope %+v", name, resp)
		}
		if got := resp.Outputs[0].Data.([]int64); !reflect.DeepEqual(got, []int64{2, 1}) {
			t.Errorf("%s: labels %v, want [2 1]", name, got)
		}
		probs := resp.Outputs[1].Data.([]float32)
		want := []float32{0, 0.13, 0.87, 0, 1, 0}
		for i := range want {
			if math.Abs(float64(probs[i]-want[i])) > 1e-5 {
				t.Errorf("%s: probabilities %v, want %v", name, probs, want)
				break
			}
		}
	}

	// Triton's binary tensor extension: binary input, binary output for one
	// requested output, JSON for the other.
	raw, _ := oip.AppendRaw(nil, []float32{5.9, 3.0, 5.1, 1.8})
	hdrJSON := `{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}],` +
		` "outputs": [{"name": "output_probability", "parameters": {"binary_data": true}}, {"name": "output_label"}]}`
	code, hdr, body := a.Do(t, "POST", "/v2/models/iris/versions/1/infer", append([]byte(hdrJSON), raw...),
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdrJSON)), "Content-Type": "application/octet-stream"})
	if code != 200 {
		t.Fatalf("binary infer: %d %s", code, body)
	}
	jl, err := strconv.Atoi(hdr.Get("Inference-Header-Content-Length"))
	if err != nil {
		t.Fatalf("binary response without Inference-Header-Content-Length: %v", hdr)
	}
	if !strings.Contains(string(body[:jl]), `"binary_data_size":12`) {
		t.Errorf("binary response header %s", body[:jl])
	}
	resp, err := oip.DecodeRESTResponse(body, jl)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Outputs[0].Data.([]float32); math.Abs(float64(got[2]-0.87)) > 1e-5 {
		t.Errorf("binary probabilities %v", got)
	}
	if got := resp.Outputs[1].Data.([]int64); !reflect.DeepEqual(got, []int64{2}) {
		t.Errorf("label %v", got)
	}

	// Errors: JSON {"error": ...} with the protocol's status codes.
	big := bytes.Repeat([]byte(" "), 2<<20)
	cases := map[string]struct {
		method, path, body string
		raw                []byte
		hdr                map[string]string
		code               int
		want               string
	}{
		"malformed json":    {"POST", "/v2/models/lin/infer", `{"inputs": [`, nil, nil, 400, ""},
		"wrong datatype":    {"POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}`, nil, nil, 400, "datatype INT64"},
		"wrong shape":       {"POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}`, nil, nil, 400, "shape [1 3]"},
		"count mismatch":    {"POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}`, nil, nil, 400, "x"},
		"missing input":     {"POST", "/v2/models/lin/infer", `{"inputs": []}`, nil, nil, 400, `missing input "x"`},
		"unknown model":     {"POST", "/v2/models/nope/infer", `{"inputs": []}`, nil, nil, 404, "not found"},
		"unknown version":   {"POST", "/v2/models/lin/versions/7/infer", `{"inputs": []}`, nil, nil, 404, "version 7"},
		"bad version":       {"GET", "/v2/models/lin/versions/01", "", nil, nil, 400, "positive integer"},
		"oversize":          {"POST", "/v2/models/lin/infer", "", big, nil, 413, "max_request_bytes"},
		"bad header length": {"POST", "/v2/models/lin/infer", `{}`, nil, map[string]string{"Inference-Header-Content-Length": "-4"}, 400, "Inference-Header-Content-Length"},
		"no route":          {"GET", "/v3/whatever", "", nil, nil, 404, "no route"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := tc.raw
			if b == nil {
				b = []byte(tc.body)
			}
			code, _, body := a.Do(t, tc.method, tc.path, b, tc.hdr)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("error body %q is not {\"error\": ...}", body)
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Fatalf("error %q does not mention %q", e.Error, tc.want)
			}
		})
	}
	// The agent still serves after all that.
	code, _, body = a.Do(t, "POST", "/v2/models/lin/infer", []byte(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`), nil)
	if code != 200 || !strings.Contains(string(body), `"data":[3]`) {
		t.Fatalf("after errors: %d %s", code, body)
	}
}

func TestGRPCProtocol(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "iris", 1, irisModel(t))
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "iris", 1)
	ctx := context.Background()

	if r, err := a.grpc.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive %v %v", r, err)
	}
	if r, err := a.grpc.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady %v %v", r, err)
	}
	if r, err := a.grpc.ModelReady(ctx, &pb.ModelReadyRequest{Name: "iris", Version: "1"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady %v %v", r, err)
	}
	md, err := a.grpc.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "iris"})
	if err != nil || md.Name != "iris" || len(md.Outputs) != 2 || md.Outputs[1].Datatype != "FP32" || !reflect.DeepEqual(md.Outputs[1].Shape, []int64{-1, 3}) {
		t.Fatalf("ModelMetadata %v %v", md, err)
	}

	x := []float32{5.9, 3.0, 5.1, 1.8, 5.5, 2.5, 4.0, 1.3}
	// Typed contents.
	resp, err := a.grpc.ModelInfer(ctx, &pb.ModelInferRequest{
		ModelName: "iris", Id: "g1",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "X", Datatype: "FP32", Shape: []int64{2, 4}, Contents: &pb.InferTensorContents{Fp32Contents: x}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ModelVersion != "1" || resp.Id != "g1" || !reflect.DeepEqual(resp.Outputs[0].Contents.Int64Contents, []int64{2, 1}) {
		t.Fatalf("typed response %v", resp)
	}
	// Raw contents in, raw contents out.
	raw, _ := oip.AppendRaw(nil, x)
	resp, err = a.grpc.ModelInfer(ctx, &pb.ModelInferRequest{
		ModelName: "iris", ModelVersion: "1",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "X", Datatype: "FP32", Shape: []int64{2, 4}}},
		Outputs:          []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "output_probability"}},
		RawInputContents: [][]byte{raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.RawOutputContents) != 1 || len(resp.Outputs) != 1 {
		t.Fatalf("raw response %v", resp)
	}
	probs, err := oip.DecodeRaw(oip.FP32, resp.Outputs[0].Shape, resp.RawOutputContents[0])
	if err != nil {
		t.Fatal(err)
	}
	if p := probs.([]float32); math.Abs(float64(p[2]-0.87)) > 1e-5 || math.Abs(float64(p[4]-1)) > 1e-5 {
		t.Fatalf("raw probabilities %v", p)
	}

	for name, tc := range map[string]struct {
		req  *pb.ModelInferRequest
		code codes.Code
	}{
		"unknown model": {&pb.ModelInferRequest{ModelName: "nope"}, codes.NotFound},
		"bad version":   {&pb.ModelInferRequest{ModelName: "iris", ModelVersion: "x"}, codes.InvalidArgument},
		"wrong dtype": {&pb.ModelInferRequest{ModelName: "iris", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "X", Datatype: "FP64", Shape: []int64{1, 4}, Contents: &pb.InferTensorContents{Fp64Contents: []float64{1, 2, 3, 4}}}}}, codes.InvalidArgument},
		"short raw": {&pb.ModelInferRequest{ModelName: "iris", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "X", Datatype: "FP32", Shape: []int64{1, 4}}}, RawInputContents: [][]byte{{1, 2, 3}}}, codes.InvalidArgument},
	} {
		_, err := a.grpc.ModelInfer(ctx, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

// TestEveryDatatype sends each OIP datatype through identity models, over
// REST binary and gRPC raw.
func TestEveryDatatype(t *testing.T) {
	root := t.TempDir()
	values := map[string]any{
		"BOOL": []bool{true, false, true}, "UINT8": []uint8{0, 7, 255}, "UINT16": []uint16{0, 7, 65535},
		"UINT32": []uint32{0, 7, math.MaxUint32}, "UINT64": []uint64{0, 7, math.MaxUint64},
		"INT8": []int8{-128, 0, 127}, "INT16": []int16{-32768, 0, 32767}, "INT32": []int32{math.MinInt32, 0, math.MaxInt32},
		"INT64": []int64{math.MinInt64, 0, math.MaxInt64}, "FP16": []uint16{0x3C00, 0xC000, 0x7BFF},
		"FP32": []float32{-1.5, 0, 3.25}, "FP64": []float64{-1e300, 0, math.Pi}, "BYTES": [][]byte{[]byte("a"), []byte(""), []byte("héllo")},
	}
	for dt := range values {
		b, err := testmodels.Identity("in", dt, []int64{-1})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, root, "id-"+strings.ToLower(dt), 1, b)
	}
	a := startAgent(t, root, serve.Config{})
	for dt, data := range values {
		a.WaitServing(t, "id-"+strings.ToLower(dt), 1)
		model := "id-" + strings.ToLower(dt)
		raw, err := oip.AppendRaw(nil, data)
		if err != nil {
			t.Fatal(err)
		}
		// REST with the binary extension both ways.
		hdr := fmt.Sprintf(`{"inputs": [{"name": "in", "shape": [3], "datatype": %q, "parameters": {"binary_data_size": %d}}], "parameters": {"binary_data_output": true}}`, dt, len(raw))
		code, h, body := a.Do(t, "POST", "/v2/models/"+model+"/infer", append([]byte(hdr), raw...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))})
		if code != 200 {
			t.Errorf("%s REST: %d %s", dt, code, body)
			continue
		}
		jl, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
		resp, err := oip.DecodeRESTResponse(body, jl)
		if err != nil {
			t.Errorf("%s REST decode: %v", dt, err)
			continue
		}
		if !reflect.DeepEqual(resp.Outputs[0].Data, data) {
			t.Errorf("%s REST: got %v, want %v", dt, resp.Outputs[0].Data, data)
		}
		// gRPC raw.
		g, err := a.grpc.ModelInfer(context.Background(), &pb.ModelInferRequest{
			ModelName: model, Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "in", Datatype: dt, Shape: []int64{3}}},
			RawInputContents: [][]byte{raw},
		})
		if err != nil {
			t.Errorf("%s gRPC: %v", dt, err)
			continue
		}
		if !bytes.Equal(g.RawOutputContents[0], raw) || g.Outputs[0].Datatype != dt {
			t.Errorf("%s gRPC: raw %v, want %v", dt, g.RawOutputContents[0], raw)
		}
	}
}

// TestHotSwapUnderLoad publishes new versions through the model store while
// clients send requests: no request fails and answers switch to the new
// version.
func TestHotSwapUnderLoad(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "lin", 1)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	seen := map[string]bool{}
	body := []byte(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := a.HTTP.Post(a.Base+"/v2/models/lin/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r, derr := oip.DecodeRESTResponse(b, -1)
				if resp.StatusCode != 200 || derr != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%d %s", resp.StatusCode, b)
					}
					mu.Unlock()
					continue
				}
				v, _ := strconv.Atoi(r.ModelVersion)
				if got := r.Outputs[0].Data.([]float32)[0]; got != float32(3*v) {
					failed.Add(1)
					mu.Lock()
					firstErr = fmt.Errorf("version %d answered %v", v, got)
					mu.Unlock()
					continue
				}
				mu.Lock()
				seen[r.ModelVersion] = true
				mu.Unlock()
				ok.Add(1)
			}
		}()
	}
	for v := int64(2); v <= 6; v++ {
		publish(t, root, "lin", v, linearModel(t, float32(v)))
		a.WaitServing(t, "lin", v)
	}
	testenv.Eventually(t, agenttest.Wait, "an answer from v6", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["6"]
	})
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during swaps; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr)
	}
	if !seen["1"] || !seen["6"] {
		t.Fatalf("answers came from versions %v, want 1 through 6", seen)
	}
	t.Logf("%d requests across 5 swaps, none failed; versions seen %v", ok.Load(), seen)
}

func TestPinAPIAndLimits(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	publish(t, root, "lin", 2, linearModel(t, 2))
	a := startAgent(t, root, serve.Config{MaxInFlight: 4, MaxBatch: 8})
	a.WaitServing(t, "lin", 2)

	code, _, body := a.ControlDo(t, "POST", "/v2/models/lin/versions/1/pin", nil)
	if code != 200 || !strings.Contains(string(body), `"pinned":1`) {
		t.Fatalf("pin: %d %s", code, body)
	}
	a.WaitServing(t, "lin", 1)
	if code, _, body := a.ControlDo(t, "POST", "/v2/models/lin/versions/9/pin", nil); code != 404 {
		t.Fatalf("pin of a missing version: %d %s", code, body)
	}
	code, _, body = a.Do(t, "GET", "/v2/models/lin/status", nil, nil)
	var st versions.ModelStatus
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Pinned != 1 || st.Versions[1].State != "serving" {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, _, body := a.ControlDo(t, "DELETE", "/v2/models/lin/pin", nil); code != 200 {
		t.Fatalf("unpin: %d %s", code, body)
	}
	a.WaitServing(t, "lin", 2)

	// Batch limit.
	x := strings.Repeat("1,", 17) + "1"
	code, _, body = a.Do(t, "POST", "/v2/models/lin/infer", []byte(`{"inputs": [{"name": "x", "shape": [9, 2], "datatype": "FP32", "data": [`+x+`]}]}`), nil)
	if code != 400 || !strings.Contains(string(body), "max_batch 8") {
		t.Fatalf("over max_batch: %d %s", code, body)
	}
	// Overload (503 at once beyond max_in_flight): TestOverloadRefusedAtOnce.
	_, err := a.grpc.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "lin"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC without inputs: %v", err)
	}
}

func TestRequestTimeout(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	a := startAgent(t, root, serve.Config{RequestTimeout: time.Nanosecond})
	a.WaitServing(t, "lin", 1)
	code, _, body := a.Do(t, "POST", "/v2/models/lin/infer", []byte(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`), nil)
	if code != http.StatusGatewayTimeout || !strings.Contains(string(body), "timed out") {
		t.Fatalf("timeout: %d %s", code, body)
	}
}

// TestRequestTimeoutStopsTheRun sends ever larger batches to a model whose
// run time grows with the batch until one outlives request_timeout: that
// run is stopped (the runtime's watchdog terminates it) and answered 504,
// where a run that was let finish would answer 200.
func TestRequestTimeoutStopsTheRun(t *testing.T) {
	const dim = 64
	chain, err := testmodels.Chain(dim, 4096)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	publish(t, root, "slow", 1, chain)
	a := startAgent(t, root, serve.Config{RequestTimeout: 100 * time.Millisecond})
	a.WaitServing(t, "slow", 1)
	for batch := 1; ; batch *= 2 {
		raw, _ := oip.AppendRaw(nil, make([]float32, batch*dim))
		hdr := fmt.Sprintf(`{"inputs":[{"name":%q,"shape":[%d,%d],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, testmodels.BigInput, batch, dim, len(raw))
		t0 := time.Now()
		code, _, body := a.Do(t, "POST", "/v2/models/slow/infer", append([]byte(hdr), raw...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))})
		t.Logf("batch %d: %d in %v", batch, code, time.Since(t0))
		if code == http.StatusGatewayTimeout {
			if !strings.Contains(string(body), "timed out") || !strings.Contains(string(body), "deadline exceeded") {
				t.Fatalf("batch %d: 504 %s, want it to say the inference timed out", batch, body)
			}
			break
		}
		if code != http.StatusOK {
			t.Fatalf("batch %d: %d %s", batch, code, body)
		}
		if batch >= 1<<14 {
			t.Fatalf("batch %d still answered 200 within request_timeout 100ms", batch)
		}
	}
	// The model serves on.
	code, _, body := a.Do(t, "POST", "/v2/models/slow/infer", fmt.Appendf(nil, `{"inputs":[{"name":%q,"shape":[1,%d],"datatype":"FP32","data":%s}]}`, testmodels.BigInput, dim, jsonOnes(dim)), nil)
	if code != http.StatusOK {
		t.Fatalf("after the timeout: %d %s", code, body)
	}
}

func jsonOnes(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
}

// TestControlRoutesLeftThePublicPort is the drill of issue 16: anyone who
// reached the inference port could pin any version (skipping the gate) and
// set canary and shadow shares. Now each of those routes answers 404 on
// the public port, saying where it went, and changes nothing; the control
// listener takes them with the token in <data-dir>/control.token only.
func TestControlRoutesLeftThePublicPort(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	publish(t, root, "lin", 2, linearModel(t, 2))
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "lin", 2)

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v2/models/lin/versions/1/pin", ""},
		{"PUT", "/v2/models/lin/canary", `{"version": 1, "percent": 50}`},
		{"PUT", "/v2/models/lin/shadow", `{"version": 1, "percent": 100}`},
		{"POST", "/v2/models/lin/canary/promote", ""},
		{"DELETE", "/v2/models/lin/pin", ""},
	} {
		code, _, body := a.Do(t, c.method, c.path, []byte(c.body), nil)
		if code != http.StatusNotFound || !strings.Contains(string(body), "control listener") || !strings.Contains(string(body), "control.token") {
			t.Errorf("public %s %s: %d %s, want 404 naming the control listener and its token", c.method, c.path, code, body)
		}
	}
	st, _ := a.Status(t, "lin")
	if st.Pinned != 0 || a.Serving(t, "lin") != 2 {
		t.Fatalf("after the public port's control requests: pinned %d, serving v%d; want nothing changed", st.Pinned, a.Serving(t, "lin"))
	}
	if b, _ := json.Marshal(st); strings.Contains(string(b), `"canary"`) || strings.Contains(string(b), `"shadow"`) {
		t.Fatalf("a split was set through the public port: %s", b)
	}

	// The control listener: no token, a wrong one, then the token.
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}} {
		req, _ := http.NewRequest("POST", a.Control+"/v2/models/lin/versions/1/pin", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := a.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("control pin with %v: %d, want 401 with WWW-Authenticate", hdr, resp.StatusCode)
		}
	}
	if a.Serving(t, "lin") != 2 {
		t.Fatal("a refused control request changed what serves")
	}
	if code, _, body := a.ControlDo(t, "POST", "/v2/models/lin/versions/1/pin", nil); code != 200 {
		t.Fatalf("control pin with the token: %d %s", code, body)
	}
	a.WaitServing(t, "lin", 1)

	// The token file: 0600, and the same token after a restart (Start's
	// data dir is the agent's).
	fi, err := os.Stat(filepath.Join(a.DataDir, agent.ControlTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("control.token mode %v, want 0600", fi.Mode().Perm())
	}
}
