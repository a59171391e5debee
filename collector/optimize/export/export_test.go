package export

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/testenv"
)

func forestBytes(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadSklearnForest reads a model this project did not write:
// skl2onnx's random forest on iris (TreeEnsembleClassifier + ZipMap).
func TestReadSklearnForest(t *testing.T) {
	m, err := onnx.Unmarshal(forestBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ReadSignature(m)
	if err != nil {
		t.Fatal(err)
	}
	got := *sig
	got.Outputs, got.InputInfo = nil, nil
	want := Signature{
		Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 4, Task: learn.Classification,
		LabelOutput: "output_label", ClassInts: []int64{0, 1, 2}, LabelType: onnx.TensorProto_INT64, LabelRank: 1,
		ProbOutput: "output_probability", ZipMap: true,
		IRVersion: m.GetIrVersion(), OpsetVersion: sig.OpsetVersion, MLOpsetVersion: sig.MLOpsetVersion,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("signature\n%+v\nwant\n%+v", got, want)
	}
	if sig.OpsetVersion < 1 || sig.MLOpsetVersion < 1 || len(sig.Outputs) != 2 {
		t.Fatalf("opsets %d / %d, %d outputs", sig.OpsetVersion, sig.MLOpsetVersion, len(sig.Outputs))
	}
	fam, err := DetectFamily(m)
	if err != nil || fam != FamilyRandomForest {
		t.Fatalf("DetectFamily = %q, %v", fam, err)
	}
}

func treeModel(op string, trees int, attrs ...*onnx.AttributeProto) *onnx.ModelProto {
	var ids []int64
	for i := range trees {
		ids = append(ids, int64(i), int64(i))
	}
	attrs = append(attrs, onnx.IntsAttr("nodes_treeids", ids...))
	outs := []string{"variable"}
	if op == "TreeEnsembleClassifier" {
		outs = []string{"label", "probabilities"}
		attrs = append(attrs, onnx.IntsAttr("classlabels_int64s", 0, 1))
	}
	g := &onnx.GraphProto{
		Node:   []*onnx.NodeProto{MLNode("t", op, []string{"X"}, outs, attrs...)},
		Input:  []*onnx.ValueInfoProto{onnx.TensorValueInfo("X", onnx.TensorProto_FLOAT, []int64{-1, 2})},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo("variable", onnx.TensorProto_FLOAT, []int64{-1, 1})},
	}
	return onnx.NewModel(g, 8, "test", onnx.Opset("", 15), onnx.Opset(MLDomain, 3))
}

func TestDetectFamily(t *testing.T) {
	linear := func(op string, withScaler bool) *onnx.ModelProto {
		var nodes []*onnx.NodeProto
		in := "X"
		if withScaler {
			nodes = append(nodes, MLNode("n", "Normalizer", []string{"X"}, []string{"z"}, StringAttr("norm", "L2")))
			in = "z"
		}
		nodes = append(nodes, MLNode("l", op, []string{in}, []string{"y"}))
		return onnx.NewModel(&onnx.GraphProto{Node: nodes}, 8, "test")
	}
	cases := map[string]struct {
		m    *onnx.ModelProto
		want string
	}{
		"normalizer + linear classifier": {linear("LinearClassifier", true), FamilyLogistic},
		"linear regressor":               {linear("LinearRegressor", false), FamilyRidge},
		"single tree":                    {treeModel("TreeEnsembleRegressor", 1), FamilyDecisionTree},
		"forest regressor (average)":     {treeModel("TreeEnsembleRegressor", 5, StringAttr("aggregate_function", "AVERAGE")), FamilyRandomForest},
		"boosted regressor (base value)": {treeModel("TreeEnsembleRegressor", 5, FloatsAttr("base_values", []float64{3}), onnx.IntAttr("n_targets", 1)), FamilyGradientBoost},
		"boosted regressor (sum)":        {treeModel("TreeEnsembleRegressor", 5, StringAttr("aggregate_function", "SUM"), onnx.IntAttr("n_targets", 1)), FamilyGradientBoost},
		"boosted classifier (logistic)":  {treeModel("TreeEnsembleClassifier", 5, StringAttr("post_transform", "LOGISTIC")), FamilyGradientBoost},
		"forest classifier":              {treeModel("TreeEnsembleClassifier", 5, StringAttr("post_transform", "NONE")), FamilyRandomForest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DetectFamily(tc.m)
			if err != nil || got != tc.want {
				t.Fatalf("DetectFamily = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
	mlp := onnx.NewModel(&onnx.GraphProto{Node: []*onnx.NodeProto{
		onnx.Node("mm", "MatMul", []string{"X", "W"}, []string{"h"}),
		onnx.Node("relu", "Relu", []string{"h"}, []string{"r"}),
		onnx.Node("mm2", "MatMul", []string{"r", "W2"}, []string{"y"}),
	}}, 8, "test")
	_, err := DetectFamily(mlp)
	if err == nil || !strings.Contains(err.Error(), "the graph has MatMul, Relu") {
		t.Fatalf("err = %v, want the operators named", err)
	}
	if _, err := DetectFamily(&onnx.ModelProto{}); err == nil {
		t.Fatal("a model without a graph has a family")
	}
}

func TestReadSignatureRefuses(t *testing.T) {
	in := func(name string, dt onnx.TensorProto_DataType, shape ...int64) *onnx.ValueInfoProto {
		return onnx.TensorValueInfo(name, dt, shape)
	}
	model := func(ins, outs []*onnx.ValueInfoProto, nodes ...*onnx.NodeProto) *onnx.ModelProto {
		return onnx.NewModel(&onnx.GraphProto{Node: nodes, Input: ins, Output: outs}, 8, "t")
	}
	x := in("X", onnx.TensorProto_FLOAT, -1, 3)
	val := in("y", onnx.TensorProto_FLOAT, -1, 1)
	clf := MLNode("c", "LinearClassifier", []string{"X"}, []string{"l", "p"}, onnx.IntsAttr("classlabels_ints", 0, 1))
	cases := map[string]struct {
		m    *onnx.ModelProto
		want string
	}{
		"no graph":            {&onnx.ModelProto{}, "no graph"},
		"two inputs":          {model([]*onnx.ValueInfoProto{x, in("Z", onnx.TensorProto_FLOAT, -1, 1)}, []*onnx.ValueInfoProto{val}), "2 inputs"},
		"int input":           {model([]*onnx.ValueInfoProto{in("X", onnx.TensorProto_INT64, -1, 3)}, []*onnx.ValueInfoProto{val}), "INT64 tensor, not a FLOAT or DOUBLE"},
		"rank 3 input":        {model([]*onnx.ValueInfoProto{in("X", onnx.TensorProto_FLOAT, -1, 3, 2)}, []*onnx.ValueInfoProto{val}), "needs [N, features]"},
		"two float outputs":   {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{val, in("z", onnx.TensorProto_FLOAT, -1)}), "2 outputs and no classifier"},
		"string regression":   {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{in("y", onnx.TensorProto_STRING, -1)}), "a STRING tensor"},
		"one class":           {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{val}, MLNode("c", "LinearClassifier", nil, nil, onnx.IntsAttr("classlabels_ints", 4))), "1 class labels"},
		"no label output":     {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{in("p", onnx.TensorProto_FLOAT, -1, 2)}, clf), "no label output"},
		"string label, ints":  {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{in("l", onnx.TensorProto_STRING, -1)}, clf), "label output \"l\" is STRING but the class labels are integers"},
		"unknown output kind": {model([]*onnx.ValueInfoProto{x}, []*onnx.ValueInfoProto{in("l", onnx.TensorProto_INT64, -1), in("b", onnx.TensorProto_BOOL, -1)}, clf), "neither its label nor its probabilities"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSignature(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEncodeLabels(t *testing.T) {
	ints := &Signature{Task: learn.Classification, ClassInts: []int64{3, 7}}
	strs := &Signature{Task: learn.Classification, ClassStrings: []string{"cat", "dog"}}
	reg := &Signature{Task: learn.Regression}
	good := map[string]struct {
		sig    *Signature
		labels []string
		want   []float64
	}{
		"ints":    {ints, []string{"7", "3", "7.0"}, []float64{1, 0, 1}},
		"strings": {strs, []string{"dog", "cat"}, []float64{1, 0}},
		"values":  {reg, []string{"1.5", "-2"}, []float64{1.5, -2}},
	}
	for name, tc := range good {
		got, err := tc.sig.EncodeLabels(tc.labels)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
	bad := map[string]struct {
		sig    *Signature
		labels []string
		want   string
	}{
		"word for ints":   {ints, []string{"3", "cat"}, `row 1: label "cat" is not an integer`},
		"unknown int":     {ints, []string{"5"}, "label 5 is not one of the model's classes [3 7]"},
		"unknown string":  {strs, []string{"cow"}, `label "cow" is not one of the model's classes`},
		"word for values": {reg, []string{"high"}, `label "high" is not a number`},
		"infinite value":  {reg, []string{"Inf"}, "not a finite number"},
	}
	for name, tc := range bad {
		_, err := tc.sig.EncodeLabels(tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// FuzzReadSignature: ReadSignature and DetectFamily decode outside input
// (a serving version's graph); they must return an error, never panic.
func FuzzReadSignature(f *testing.F) {
	f.Add(forestBytes(f))
	for _, m := range []*onnx.ModelProto{treeModel("TreeEnsembleClassifier", 3), treeModel("TreeEnsembleRegressor", 1)} {
		b, err := onnx.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("not a model"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnx.Unmarshal(data)
		if err != nil {
			return
		}
		if sig, err := ReadSignature(m); err == nil {
			if sig.Input == "" || (sig.Task == learn.Classification && sig.Classes() < 2) {
				t.Fatalf("accepted an incomplete signature %+v", sig)
			}
		}
		_, _ = DetectFamily(m)
	})
}
