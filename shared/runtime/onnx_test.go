package runtime

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func ortTestData(t *testing.T, name string) string {
	t.Helper()
	if err := Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", name)
}

var irisRows = []float32{
	5.9, 3.0, 5.1, 1.8,
	6.8, 2.8, 4.8, 1.4,
	6.3, 2.3, 4.4, 1.3,
	6.5, 3.0, 5.5, 1.8,
	7.7, 2.8, 6.7, 2.0,
	5.5, 2.5, 4.0, 1.3,
}

func loadModel(t *testing.T, path string) Model {
	t.Helper()
	b := &ONNX{Options: Options{IntraOpThreads: 1, InterOpThreads: 1}}
	m, err := b.Load(context.Background(), path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// TestSklearnZipMapServedAsTensor checks that the classifier's sequence-of-
// maps output is served as FP32 [N, classes] with its class labels.
func TestSklearnZipMapServedAsTensor(t *testing.T) {
	m := loadModel(t, ortTestData(t, "sklearn_randomforest.onnx"))
	sig := m.Signature()
	wantSig := Signature{
		Inputs: []TensorSpec{{Name: "X", Datatype: oip.FP32, Shape: []int64{-1, 4}}},
		Outputs: []TensorSpec{
			{Name: "output_label", Datatype: oip.INT64, Shape: []int64{-1}},
			{Name: "output_probability", Datatype: oip.FP32, Shape: []int64{-1, 3}, Classes: []string{"0", "1", "2"}},
		},
	}
	if !reflect.DeepEqual(sig, wantSig) {
		t.Fatalf("signature = %+v\nwant %+v", sig, wantSig)
	}
	if got := m.Info()["producer"]; got != "skl2onnx" {
		t.Errorf("producer = %q, want skl2onnx", got)
	}

	out, err := m.Run(context.Background(), []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{6, 4}, Data: irisRows}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d outputs", len(out))
	}
	if got := out[0].Data.([]int64); !reflect.DeepEqual(got, []int64{2, 1, 1, 2, 2, 1}) {
		t.Errorf("labels = %v", got)
	}
	probs := out[1]
	if !reflect.DeepEqual(probs.Shape, []int64{6, 3}) || probs.Datatype != oip.FP32 {
		t.Fatalf("probability tensor %s %v", probs.Datatype, probs.Shape)
	}
	want := []float32{0, 0.13, 0.87, 0, 0.77, 0.23, 0, 0.97, 0.03, 0, 0, 1, 0, 0, 1, 0, 1, 0}
	for i, p := range probs.Data.([]float32) {
		if math.Abs(float64(p-want[i])) > 1e-5 {
			t.Errorf("prob[%d] = %v, want %v", i, p, want[i])
		}
	}

	// Only the requested output comes back.
	out, err = m.Run(context.Background(), []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: irisRows[:4]}}, []string{"output_probability"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != "output_probability" || !reflect.DeepEqual(out[0].Shape, []int64{1, 3}) {
		t.Fatalf("requested output: %+v", out)
	}
}

func TestMultitypeModel(t *testing.T) {
	m := loadModel(t, ortTestData(t, "example_multitype.onnx"))
	in := []oip.Tensor{
		{Name: "InputA", Datatype: oip.UINT8, Shape: []int64{1, 1, 1}, Data: []uint8{3}},
		{Name: "InputB", Datatype: oip.FP64, Shape: []int64{1, 2, 2}, Data: []float64{1000, 2000, 3000, 4000}},
	}
	out, err := m.Run(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Data.([]int16); !reflect.DeepEqual(got, []int16{2488, 5488, 8488, 11488}) {
		t.Errorf("OutputA = %v", got)
	}
	if got := out[1].Data.([]int64); !reflect.DeepEqual(got, []int64{3702}) {
		t.Errorf("OutputB = %v", got)
	}
}

func TestRunRejectsBadInputs(t *testing.T) {
	m := loadModel(t, ortTestData(t, "sklearn_randomforest.onnx"))
	cases := map[string]struct {
		in   []oip.Tensor
		outs []string
		want string
	}{
		"wrong datatype": {
			in:   []oip.Tensor{{Name: "X", Datatype: oip.FP64, Shape: []int64{1, 4}, Data: []float64{1, 2, 3, 4}}},
			want: `input "X" has datatype FP64, the model expects FP32`,
		},
		"wrong width": {
			in:   []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{1, 5}, Data: make([]float32, 5)}},
			want: `input "X" has shape [1 5], the model expects [-1 4]`,
		},
		"wrong rank": {
			in:   []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{4}, Data: make([]float32, 4)}},
			want: "the model expects rank 2",
		},
		"data shorter than shape": {
			in:   []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{2, 4}, Data: make([]float32, 4)}},
			want: "needs 8 elements, got 4",
		},
		"missing input": {
			in:   nil,
			want: `missing input "X"`,
		},
		"unknown input": {
			in:   []oip.Tensor{{Name: "Y", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: make([]float32, 4)}},
			want: `unexpected input "Y"`,
		},
		"unknown output": {
			in:   []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: make([]float32, 4)}},
			outs: []string{"nope"},
			want: `unknown output "nope"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := m.Run(context.Background(), tc.in, tc.outs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !IsInputError(err) {
				t.Fatalf("err %v is not an InputError", err)
			}
		})
	}
}

func TestLoadFailures(t *testing.T) {
	b := &ONNX{}
	dir := t.TempDir()
	src, err := os.ReadFile(ortTestData(t, "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	if err := os.WriteFile(truncated, src[:len(src)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ path, want string }{
		"truncated model": {truncated, "truncated.onnx"},
		"not a model":     {garbage, "garbage.onnx"},
		"missing file":    {filepath.Join(dir, "none.onnx"), "none.onnx"},
		"bfloat16 output": {ortTestData(t, "example_float16.onnx"), "cannot carry"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := b.Load(context.Background(), tc.path)
			if err == nil {
				m.Close()
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRunHonoursCancelledContext(t *testing.T) {
	m := loadModel(t, ortTestData(t, "sklearn_randomforest.onnx"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Run(ctx, []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: irisRows[:4]}}, nil)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want context canceled", err)
	}
}

// TestRunInputsInAnyOrder: inputs given in another order than the
// signature's are run in its order; those given in it are run as they are,
// and neither is changed.
func TestRunInputsInAnyOrder(t *testing.T) {
	b, err := testmodels.ReshapeByInput()
	if err != nil {
		t.Fatal(err)
	}
	m := loadBytes(t, b)
	data := oip.Tensor{Name: testmodels.ReshapeData, Datatype: oip.FP32, Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}}
	shape := oip.Tensor{Name: testmodels.ReshapeShape, Datatype: oip.INT64, Shape: []int64{2}, Data: []int64{2, 2}}
	if m.sig.Inputs[0].Name != testmodels.ReshapeData {
		t.Fatalf("signature's first input is %q, want %q", m.sig.Inputs[0].Name, testmodels.ReshapeData)
	}
	for name, in := range map[string][]oip.Tensor{
		"in order": {data, shape},
		"reversed": {shape, data},
	} {
		out, err := m.Run(context.Background(), in, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(out[0].Shape, []int64{2, 2}) || !reflect.DeepEqual(out[0].Data, []float32{1, 2, 3, 4}) {
			t.Errorf("%s: output %v %v, want [2 2] [1 2 3 4]", name, out[0].Shape, out[0].Data)
		}
		if in[0].Name == testmodels.ReshapeShape && in[1].Name != testmodels.ReshapeData {
			t.Errorf("%s: the caller's inputs were reordered", name)
		}
	}
}
