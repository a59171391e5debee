package runtime

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestSklearnRandomForest loads a model this project did not write: the
// scikit-learn random forest (converted by skl2onnx) that onnxruntime_go
// ships in its test_data, and checks its outputs against the values the
// Python onnxruntime produced for the same inputs.
func TestSklearnRandomForest(t *testing.T) {
	if err := Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	if v := Version(); !strings.HasPrefix(v, "1.") {
		t.Fatalf("ONNX Runtime version = %q", v)
	}
	model := filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx")

	inputs, outputs, err := ort.GetInputOutputInfo(model)
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != 1 || inputs[0].Name != "X" {
		t.Fatalf("inputs = %v", inputs)
	}
	if len(outputs) != 2 || outputs[0].Name != "output_label" || outputs[1].Name != "output_probability" {
		t.Fatalf("outputs = %v", outputs)
	}

	session, err := ort.NewDynamicAdvancedSession(model, []string{"X"}, []string{"output_label", "output_probability"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Destroy()
	x, err := ort.NewTensor(ort.NewShape(6, 4), []float32{
		5.9, 3.0, 5.1, 1.8,
		6.8, 2.8, 4.8, 1.4,
		6.3, 2.3, 4.4, 1.3,
		6.5, 3.0, 5.5, 1.8,
		7.7, 2.8, 6.7, 2.0,
		5.5, 2.5, 4.0, 1.3,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	out := []ort.Value{nil, nil}
	if err := session.Run([]ort.Value{x}, out); err != nil {
		t.Fatal(err)
	}
	defer out[0].Destroy()
	defer out[1].Destroy()

	wantLabels := []int64{2, 1, 1, 2, 2, 1}
	labels := out[0].(*ort.Tensor[int64]).GetData()
	for i, w := range wantLabels {
		if labels[i] != w {
			t.Errorf("label[%d] = %d, want %d", i, labels[i], w)
		}
	}

	// output_probability is a sequence of maps (ZipMap): label -> probability.
	wantProb := []map[int64]float32{
		{0: 0.0, 1: 0.13, 2: 0.87},
		{0: 0.0, 1: 0.77, 2: 0.23},
		{0: 0.0, 1: 0.97, 2: 0.03},
		{0: 0.0, 1: 0.0, 2: 1.0},
		{0: 0.0, 1: 0.0, 2: 1.0},
		{0: 0.0, 1: 1.0, 2: 0.0},
	}
	seq, ok := out[1].(*ort.Sequence)
	if !ok {
		t.Fatalf("output_probability is %T, want a sequence", out[1])
	}
	maps, err := seq.GetValues()
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != len(wantProb) {
		t.Fatalf("%d probability maps, want %d", len(maps), len(wantProb))
	}
	for i, v := range maps {
		m := v.(*ort.Map)
		keys, vals, err := m.GetKeysAndValues()
		if err != nil {
			t.Fatal(err)
		}
		ks := keys.(*ort.Tensor[int64]).GetData()
		vs := vals.(*ort.Tensor[float32]).GetData()
		if len(ks) != 3 || len(vs) != 3 {
			t.Fatalf("row %d: %d keys and %d values, want 3 classes", i, len(ks), len(vs))
		}
		for j, k := range ks {
			if d := math.Abs(float64(vs[j] - wantProb[i][k])); d > 1e-5 {
				t.Errorf("row %d class %d: probability %v, want %v", i, k, vs[j], wantProb[i][k])
			}
		}
	}
}
