package registry

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

var (
	ortOnce sync.Once
	ortErr  error
)

// initORT loads the real ONNX Runtime once per test binary; the
// environment stays up for the binary's other tests.
func initORT(t *testing.T) {
	t.Helper()
	lib := testenv.ONNXRuntimeLib(t)
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortErr != nil {
		t.Fatalf("initialize ONNX Runtime from %s: %v", lib, ortErr)
	}
}

// irisForest is skl2onnx's random forest on iris (probabilities through a
// ZipMap), from onnxruntime_go's test data.
func irisForest(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// irisLinear is a softmax classifier with the forest's signature (X FP32
// [N, 4] -> output_label INT64 [N], output_probability) whose probabilities
// are a plain FP32 [N, 3] tensor.
func irisLinear(t *testing.T) []byte {
	t.Helper()
	w := []float32{0.4, -0.2, 0.1, 1.2, -0.3, 0.5, -1.1, 0.2, 0.3, -0.6, 0.4, -0.7}
	g := &onnx.GraphProto{
		Name: "iris_linear",
		Node: []*onnx.NodeProto{
			onnx.Node("mm", "MatMul", []string{"X", "W"}, []string{"xw"}),
			onnx.Node("add", "Add", []string{"xw", "B"}, []string{"logits"}),
			onnx.Node("softmax", "Softmax", []string{"logits"}, []string{"output_probability"}, onnx.IntAttr("axis", 1)),
			onnx.Node("argmax", "ArgMax", []string{"output_probability"}, []string{"output_label"}, onnx.IntAttr("axis", 1), onnx.IntAttr("keepdims", 0)),
		},
		Initializer: []*onnx.TensorProto{onnx.FloatTensor("W", []int64{4, 3}, w), onnx.FloatTensor("B", []int64{3}, []float32{0.1, 0, -0.1})},
		Input:       []*onnx.ValueInfoProto{onnx.TensorValueInfo("X", onnx.TensorProto_FLOAT, []int64{-1, 4})},
		Output: []*onnx.ValueInfoProto{
			onnx.TensorValueInfo("output_label", onnx.TensorProto_INT64, []int64{-1}),
			onnx.TensorValueInfo("output_probability", onnx.TensorProto_FLOAT, []int64{-1, 3}),
		},
	}
	b, err := onnx.Marshal(onnx.NewModel(g, 8, "test", onnx.Opset("", 13)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var irisRows = []float32{
	5.9, 3.0, 5.1, 1.8,
	6.8, 2.8, 4.8, 1.4,
	6.3, 2.3, 4.4, 1.3,
	6.5, 3.0, 5.5, 1.8,
	7.7, 2.8, 6.7, 2.0,
	5.5, 2.5, 4.0, 1.3,
	5.1, 3.5, 1.4, 0.2,
}

// classify runs a classifier with the iris signature on irisRows and returns
// its labels and its probabilities as [rows][3] (reading a ZipMap's
// sequence of maps by class).
func classify(t *testing.T, model []byte) ([]int64, [][]float32) {
	t.Helper()
	initORT(t)
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"X"}, []string{"output_label", "output_probability"}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the model: %v", err)
	}
	defer s.Destroy()
	rows := len(irisRows) / 4
	x, err := ort.NewTensor(ort.NewShape(int64(rows), 4), irisRows)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	out := []ort.Value{nil, nil}
	if err := s.Run([]ort.Value{x}, out); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, v := range out {
			_ = v.Destroy()
		}
	}()
	labels := slices.Clone(out[0].(*ort.Tensor[int64]).GetData())
	probs := make([][]float32, rows)
	switch p := out[1].(type) {
	case *ort.Tensor[float32]:
		d := p.GetData()
		for r := range probs {
			probs[r] = slices.Clone(d[3*r : 3*r+3])
		}
	case *ort.Sequence:
		maps, err := p.GetValues()
		if err != nil {
			t.Fatal(err)
		}
		for r, mv := range maps {
			keys, vals, err := mv.(*ort.Map).GetKeysAndValues()
			if err != nil {
				t.Fatal(err)
			}
			probs[r] = make([]float32, 3)
			for j, k := range keys.(*ort.Tensor[int64]).GetData() {
				probs[r][k] = vals.(*ort.Tensor[float32]).GetData()[j]
			}
		}
	default:
		t.Fatalf("probabilities are %T", out[1])
	}
	return labels, probs
}

func TestMergeClassifiersAveragesProbabilities(t *testing.T) {
	forest, linear := irisForest(t), irisLinear(t)
	_, pf := classify(t, forest)
	_, pl := classify(t, linear)
	differ := false
	for r := range pf {
		for k := range 3 {
			differ = differ || math.Abs(float64(pf[r][k]-pl[r][k])) > 0.05
		}
	}
	if !differ {
		t.Fatal("the two classifiers agree: the test could not tell an average from either")
	}
	for name, c := range map[string]struct {
		a, b       []byte
		wa, wb     float32
		pa, pb     [][]float32
		wantZipMap bool
	}{
		"zipmap first": {forest, linear, 0.3, 0.7, pf, pl, true},
		"tensor first": {linear, forest, 1, 1, pl, pf, false},
	} {
		t.Run(name, func(t *testing.T) {
			merged, err := MergeModels(c.a, c.b, c.wa, c.wb)
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnx.Unmarshal(merged)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.GetGraph().GetOutput()[1].GetType().GetSequenceType() != nil; got != c.wantZipMap {
				t.Errorf("probabilities through a ZipMap: %v, want %v", got, c.wantZipMap)
			}
			labels, probs := classify(t, merged)
			wa, wb := c.wa/(c.wa+c.wb), c.wb/(c.wa+c.wb)
			for r := range probs {
				best := 0
				for k := range 3 {
					want := wa*c.pa[r][k] + wb*c.pb[r][k]
					if math.Abs(float64(probs[r][k]-want)) > 1e-5 {
						t.Errorf("row %d class %d: merged probability %v, want %v", r, k, probs[r][k], want)
					}
					if want > wa*c.pa[r][best]+wb*c.pb[r][best] {
						best = k
					}
				}
				if labels[r] != int64(best) {
					t.Errorf("row %d: merged label %d, want %d", r, labels[r], best)
				}
			}
		})
	}
}

func TestMergeRegressionsAveragesOutputs(t *testing.T) {
	initORT(t)
	a, err := testmodels.Linear("X", "Y", [][]float32{{1, 2}, {3, 4}}, []float32{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := testmodels.Linear("X", "Y", [][]float32{{-1, 0}, {2, 1}}, []float32{0, 5})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := MergeModels(a, b, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(merged, []string{"X"}, []string{"Y"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x, _ := ort.NewTensor(ort.NewShape(1, 2), []float32{2, 1})
	defer x.Destroy()
	y, _ := ort.NewEmptyTensor[float32](ort.NewShape(1, 2))
	defer y.Destroy()
	if err := s.Run([]ort.Value{x}, []ort.Value{y}); err != nil {
		t.Fatal(err)
	}
	// a: [2+3+1, 4+4] = [6, 8]; b: [-2+2, 0+1+5] = [0, 6]; 0.25a + 0.75b.
	if got, want := y.GetData(), []float32{1.5, 6.5}; math.Abs(float64(got[0]-want[0])) > 1e-5 || math.Abs(float64(got[1]-want[1])) > 1e-5 {
		t.Errorf("merged Y = %v, want %v", got, want)
	}
}

func TestMergeRefusesDifferentSignatures(t *testing.T) {
	lin, err := testmodels.Linear("X", "Y", [][]float32{{1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}}, []float32{0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	other, err := testmodels.Linear("Z", "Y", [][]float32{{1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}}, []float32{0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		a, b []byte
		want error
	}{
		"classifier and regression": {irisForest(t), lin, ErrSignatureMismatch},
		"other input name":          {lin, other, ErrSignatureMismatch},
		"not onnx":                  {lin, []byte("nope"), ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := MergeModels(c.a, c.b, 1, 1); !errors.Is(err, c.want) {
				t.Fatalf("MergeModels = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := MergeModels(lin, lin, 0, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero weights = %v, want ErrInvalid", err)
	}
}

func TestRegistryMerge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	forest, linear := irisForest(t), irisLinear(t)
	golden := []byte("a,b,c,d,y\n5.9,3,5.1,1.8,2\n")
	v1, _ := f.publish(t, "iris", map[string][]byte{"model.onnx": forest, "eval/golden.csv": golden}, Meta{})
	if s := v1.Signature; s == nil || len(s.Outputs) != 2 || s.Outputs[1].Name != "output_probability" ||
		s.Outputs[1].Datatype != "FP32" || !slices.Equal(s.Outputs[1].Shape, []int64{-1, 3}) {
		t.Errorf("the forest's signature %+v, want output_probability FP32 [-1 3] from its ZipMap", s)
	}
	f.publish(t, "iris", map[string][]byte{"model.onnx": linear}, Meta{})
	v, created, err := f.reg.Merge(ctx, "iris", 1, 2, 0.5, 0.5, Meta{Author: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if !created || v.Version != 3 || v.Source != SourceMerge || !slices.Equal(v.Parents, []uint64{1, 2}) || v.Author != "ada" {
		t.Fatalf("merge = %+v, created %v; want v3, source merge, parents [1 2]", v, created)
	}
	if _, ok := v.File("eval/golden.csv"); !ok {
		t.Errorf("merged version lacks v1's eval/golden.csv: %+v", v.Files)
	}
	want, err := MergeModels(forest, linear, 0.5, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := f.reg.OpenFile(ctx, "iris", 3, "model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); string(got) != string(want) {
		t.Errorf("stored merged model (%d bytes) differs from MergeModels' (%d bytes)", len(got), len(want))
	}
	// The same merge again is the same content.
	if again, created, err := f.reg.Merge(ctx, "iris", 1, 2, 0.5, 0.5, Meta{}); err != nil || created || again.Version != 3 {
		t.Errorf("second merge = v%d created %v, %v; want v3 not created", again.Version, created, err)
	}
	if _, _, err := f.reg.Merge(ctx, "iris", 1, 9, 1, 1, Meta{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("merge with an unknown version = %v, want ErrNotFound", err)
	}
}
