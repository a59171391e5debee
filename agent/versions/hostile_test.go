package versions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// TestUnknownNamesCreateNothing: every lookup by a name the set does not
// know answers ErrModelNotFound and leaves the set's model map as it was.
func TestUnknownNamesCreateNothing(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("lin", 1, linear(t, 1))
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })
	if !h.set.Has("lin") {
		t.Fatal("Has(lin) = false for a serving model")
	}
	for i := range 500 {
		name := fmt.Sprintf("invented-%d", i)
		if h.set.Has(name) {
			t.Fatalf("Has(%s) = true", name)
		}
		if _, err := h.set.Acquire(name, int64(i%3)); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Acquire(%s): %v", name, err)
		}
		if _, _, err := h.set.Route(name, 0, "id"); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Route(%s): %v", name, err)
		}
		if _, err := h.set.Status(name); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Status(%s): %v", name, err)
		}
		if err := h.set.SetSplit(name, route.Canary, &route.Split{Version: 1, Percent: 5}); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("SetSplit(%s): %v", name, err)
		}
		if err := h.set.Pin(context.Background(), name, 1); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Pin(%s): %v", name, err)
		}
	}
	if got := h.set.Models(); len(got) != 1 || got[0] != "lin" {
		t.Fatalf("models after 500 invented names: %v", got)
	}
}

// publishWith publishes onnx as model/version with a manifest and extra
// files (relative path -> content), by atomic rename.
func (h *harness) publishWith(model string, version int64, onnxBytes []byte, mf *manifest.Manifest, files map[string]string) {
	h.t.Helper()
	dir := filepath.Join(h.root, model, fmt.Sprintf(".tmp-%d", version))
	write := func(rel string, b []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	write(manifest.ModelFile, onnxBytes)
	if mf != nil {
		mf.Model, mf.Version = model, version
		b, err := mf.Marshal()
		if err != nil {
			h.t.Fatal(err)
		}
		write(manifest.FileName, b)
	}
	for rel, content := range files {
		write(rel, []byte(content))
	}
	if err := os.Rename(dir, filepath.Join(h.root, model, fmt.Sprint(version))); err != nil {
		h.t.Fatal(err)
	}
}

func reshapeModel(t *testing.T) []byte {
	t.Helper()
	b, err := testmodels.ReshapeByInput()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reshapeInputs are valid inputs of testmodels.ReshapeByInput.
func reshapeInputs() []oip.Tensor {
	return []oip.Tensor{
		{Name: testmodels.ReshapeData, Datatype: oip.FP32, Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}},
		{Name: testmodels.ReshapeShape, Datatype: oip.INT64, Shape: []int64{2}, Data: []int64{2, 2}},
	}
}

// TestSyntheticWarmupFailureStillServes is the drill for warm-up: a model
// that refuses zero-filled inputs (its input is a shape) and has no
// warm-up inputs in its manifest fails the synthetic warm-up, which is
// logged, and the version serves and answers valid requests.
func TestSyntheticWarmupFailureStillServes(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("rs", 1, reshapeModel(t))
	h.sync("rs")
	testenv.Eventually(t, wait, "v1 loaded or failed", func() bool {
		return len(h.events(EventLoaded))+len(h.events(EventLoadFailed)) > 0
	})
	if f := h.events(EventLoadFailed); len(f) > 0 {
		t.Fatalf("a model that fails only on zero inputs did not load: %s", f[0].Reason)
	}
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("rs") == 1 })
	v, err := h.set.Acquire("rs", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	out, err := v.Infer(context.Background(), reshapeInputs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0]; !slices.Equal(got.Shape, []int64{2, 2}) || !slices.Equal(got.Data.([]float32), []float32{1, 2, 3, 4}) {
		t.Fatalf("output %+v", got)
	}
}

// TestManifestWarmupInputs: a warm-up request in the manifest is used (the
// model refuses zeros, so serving shows it ran on it); one that fails
// rejects the version with its reason.
func TestManifestWarmupInputs(t *testing.T) {
	h := newHarness(t, Config{})
	good := `{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "shape", "shape": [2], "datatype": "INT64", "data": [4, 1]}]}`
	bad := `{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "shape", "shape": [2], "datatype": "INT64", "data": [3, 3]}]}`
	h.publishWith("rs", 1, reshapeModel(t), &manifest.Manifest{Warmup: &manifest.Warmup{Runs: 2, Request: "warmup.json"}}, map[string]string{"warmup.json": good})
	h.sync("rs")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("rs") == 1 })
	if n := len(h.events(EventLoadFailed)); n != 0 {
		t.Fatalf("%d load failures with a valid warm-up request", n)
	}

	h.publishWith("rs", 2, reshapeModel(t), &manifest.Manifest{Warmup: &manifest.Warmup{Request: "warmup.json"}}, map[string]string{"warmup.json": bad})
	h.sync("rs")
	testenv.Eventually(t, wait, "v2 failed", func() bool { return len(h.events(EventLoadFailed)) > 0 })
	if r := h.events(EventLoadFailed)[0].Reason; !strings.Contains(r, "warm-up") || !strings.Contains(r, "warmup.request") {
		t.Fatalf("failure reason %q, want the warm-up request named", r)
	}
	if got := h.serving("rs"); got != 1 {
		t.Fatalf("serving %d after a failed warm-up, want 1", got)
	}
}

// shapeFromFirstRow is a one-input model a golden set can feed that
// refuses zeros: x INT64 [batch, 2] is reshaped to the shape its first row
// holds (allowzero), and label = ArgMax(x, axis 1). Zeros ask for [0, 0];
// a batch of two rows whose first row is [2, 2] runs.
func shapeFromFirstRow(t *testing.T) []byte {
	t.Helper()
	g := &onnx.GraphProto{
		Name: "shape_from_first_row",
		Node: []*onnx.NodeProto{
			onnx.Constant("zero", onnx.Int64Tensor("zero", nil, []int64{0})),
			onnx.Node("first", "Gather", []string{"x", "zero"}, []string{"first"}, onnx.IntAttr("axis", 0)),
			onnx.Node("reshape", "Reshape", []string{"x", "first"}, []string{"y"}, onnx.IntAttr("allowzero", 1)),
			onnx.Node("argmax", "ArgMax", []string{"x"}, []string{"label"}, onnx.IntAttr("axis", 1), onnx.IntAttr("keepdims", 0)),
		},
		Input: []*onnx.ValueInfoProto{onnx.TensorValueInfo("x", onnx.TensorProto_INT64, []int64{-1, 2})},
		Output: []*onnx.ValueInfoProto{
			onnx.TensorValueInfo("label", onnx.TensorProto_INT64, []int64{-1}),
			onnx.TensorValueInfo("y", onnx.TensorProto_INT64, []int64{-1, -1}),
		},
	}
	b, err := onnx.Marshal(onnx.NewModel(g, testmodels.IRVersion, testmodels.ProducerName, onnx.Opset("", testmodels.ReshapeOpset)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenSetWarmup: without a warm-up request, the golden set's rows
// warm the version up (the model refuses zeros, so serving shows they were
// used); golden rows the model fails on reject it.
func TestGoldenSetWarmup(t *testing.T) {
	h := newHarness(t, Config{})
	golden := func() *manifest.Manifest {
		return &manifest.Manifest{GoldenSet: &manifest.GoldenSet{Path: "eval/golden.csv", Task: manifest.TaskClassification, Features: []string{"a", "b"}, Label: "label", Output: "label"}}
	}
	h.publishWith("g", 1, shapeFromFirstRow(t), golden(), map[string]string{"eval/golden.csv": "a,b,label\n2,2,0\n0,1,1\n"})
	h.sync("g")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("g") == 1 })

	h.publishWith("g", 2, shapeFromFirstRow(t), golden(), map[string]string{"eval/golden.csv": "a,b,label\n3,3,0\n0,1,1\n"})
	h.sync("g")
	testenv.Eventually(t, wait, "v2 failed", func() bool { return len(h.events(EventLoadFailed)) > 0 })
	if r := h.events(EventLoadFailed)[0].Reason; !strings.Contains(r, "golden set") {
		t.Fatalf("failure reason %q, want the golden set named", r)
	}
}
