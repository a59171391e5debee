package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testmodels"
)

// metricSeries returns the series of the agent's /metrics (the sample
// lines: neither comments nor blank), as a set.
func metricSeries(t *testing.T, a *testAgent) map[string]bool {
	t.Helper()
	code, _, body := a.Do(t, "GET", "/metrics", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		// The series is the name and labels, without the value.
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			l = l[:i]
		}
		out[l] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnknownModelsCreateNoSeries is the drill for invented model names:
// 3000 requests (REST and gRPC; infer, metadata, ready, feedback, status)
// for models that do not exist are answered 404 / NotFound and leave the
// agent's /metrics with exactly the series it had, and no model behind.
// A request for the real model still records its series afterwards.
func TestUnknownModelsCreateNoSeries(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "lin", 1)
	infer := []byte(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
	// One valid request first, so that the series a request creates
	// anyway (the protocol's, the status's) are there before counting.
	if code, _, body := a.Do(t, "POST", "/v2/models/lin/infer", infer, nil); code != http.StatusOK {
		t.Fatalf("valid infer: %d %s", code, body)
	}
	if _, err := a.grpc.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "lin", Inputs: []*pb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 1}},
	}}}); err != nil {
		t.Fatalf("valid gRPC infer: %v", err)
	}
	before := metricSeries(t, a)

	ctx := context.Background()
	for i := range 3000 {
		name := fmt.Sprintf("invented-%d", i)
		var code int
		var body []byte
		switch i % 10 {
		case 0, 1:
			code, _, body = a.Do(t, "POST", "/v2/models/"+name+"/infer", infer, nil)
		case 2:
			code, _, body = a.Do(t, "POST", "/v2/models/"+name+"/versions/3/infer", infer, nil)
		case 3:
			code, _, body = a.Do(t, "GET", "/v2/models/"+name, nil, nil)
		case 4:
			code, _, body = a.Do(t, "GET", "/v2/models/"+name+"/ready", nil, nil)
		case 5:
			code, _, body = a.Do(t, "POST", "/v2/models/"+name+"/feedback", []byte(`{"id": "x", "label": 1}`), nil)
		case 6:
			code, _, body = a.Do(t, "GET", "/v2/models/"+name+"/status", nil, nil)
		case 7:
			_, err := a.grpc.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: name, Inputs: []*pb.ModelInferRequest_InferInputTensor{{
				Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 1}},
			}}})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("gRPC infer %s: %v, want NotFound", name, err)
			}
			continue
		case 8:
			_, err := a.grpc.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: name})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("gRPC metadata %s: %v, want NotFound", name, err)
			}
			continue
		case 9:
			_, err := a.grpc.ModelReady(ctx, &pb.ModelReadyRequest{Name: name, Version: "2"})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("gRPC ready %s: %v, want NotFound", name, err)
			}
			continue
		}
		if code != http.StatusNotFound {
			t.Fatalf("request %d for %s: %d %s, want 404", i, name, code, body)
		}
	}

	after := metricSeries(t, a)
	var added []string
	for s := range after {
		if !before[s] {
			added = append(added, s)
		}
	}
	if len(after) != len(before) || len(added) > 0 {
		if len(added) > 5 {
			added = added[:5]
		}
		t.Fatalf("/metrics had %d series before the invented names, %d after; new ones include %q", len(before), len(after), added)
	}
	for _, name := range []string{"invented-0", "invented-2999"} {
		if _, ok := a.Status(t, name); ok {
			t.Errorf("%s has a status after the drill: a model entry was created", name)
		}
	}

	// Valid traffic still records.
	if code, _, body := a.Do(t, "POST", "/v2/models/lin/versions/1/infer", infer, nil); code != http.StatusOK {
		t.Fatalf("valid infer after the drill: %d %s", code, body)
	}
	found := false
	for s := range metricSeries(t, a) {
		if strings.Contains(s, `drover_model="lin"`) && strings.Contains(s, `drover_model_version="1"`) && strings.Contains(s, "requests") {
			found = true
		}
	}
	if !found {
		t.Errorf("no request series for lin v1 after a valid request")
	}
}

// TestModelRefusingZerosServes: a model whose input is a shape (zero-filled
// inputs fail) loads in a whole agent, its synthetic warm-up failure
// logged, and answers valid requests.
func TestModelRefusingZerosServes(t *testing.T) {
	root := t.TempDir()
	m, err := testmodels.ReshapeByInput()
	if err != nil {
		t.Fatal(err)
	}
	publish(t, root, "rs", 1, m)
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "rs", 1)
	code, _, body := a.Do(t, "POST", "/v2/models/rs/infer", []byte(`{"inputs": [
		{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
		{"name": "shape", "shape": [2], "datatype": "INT64", "data": [2, 2]}]}`), nil)
	if code != http.StatusOK {
		t.Fatalf("infer: %d %s", code, body)
	}
	resp, err := oip.DecodeRESTResponse(body, -1)
	if err != nil {
		t.Fatal(err)
	}
	if out := resp.Outputs[0]; !reflect.DeepEqual(out.Shape, []int64{2, 2}) || !reflect.DeepEqual(out.Data, []float32{1, 2, 3, 4}) {
		t.Fatalf("output %+v", out)
	}
}

// TestRequestIDsAreBounded: a client's request id longer than a label's id
// may be (evaluate.MaxIDBytes) is refused on REST and gRPC, so a sampled
// request cannot hold an id of megabytes until its label comes; one of
// exactly the bound is served and echoed.
func TestRequestIDsAreBounded(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, linearModel(t, 1))
	a := startAgent(t, root, serve.Config{})
	a.WaitServing(t, "lin", 1)
	body := func(id string) []byte {
		return []byte(`{"id": "` + id + `", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
	}
	ok := strings.Repeat("i", evaluate.MaxIDBytes)
	if code, _, b := a.Do(t, "POST", "/v2/models/lin/infer", body(ok), nil); code != http.StatusOK || !bytes.Contains(b, []byte(ok)) {
		t.Fatalf("an id of %d bytes: %d %.200s", len(ok), code, b)
	}
	long := strings.Repeat("i", 1<<20)
	if code, _, b := a.Do(t, "POST", "/v2/models/lin/infer", body(long), nil); code != http.StatusBadRequest || !bytes.Contains(b, []byte("request id")) {
		t.Fatalf("an id of 1 MiB: %d %.200s", code, b)
	}
	_, err := a.grpc.ModelInfer(context.Background(), &pb.ModelInferRequest{Id: long, ModelName: "lin", Inputs: []*pb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 1}},
	}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC with an id of 1 MiB: %v", err)
	}
}
