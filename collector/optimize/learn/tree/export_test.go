package tree

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// tolerance is how far ONNX Runtime's probabilities and values may be from
// the Go model's.
const tolerance = 1e-5

// loadCore wraps a Core in the smallest graph around it (FLOAT input X,
// the core's outputs as the graph's) and loads it into ONNX Runtime.
func loadCore(t *testing.T, core export.Core, sig *export.Signature) runtime.Model {
	t.Helper()
	in := onnx.TensorValueInfo("X", onnx.TensorProto_FLOAT, []int64{-1, int64(sig.Features)})
	var outs []*onnx.ValueInfoProto
	if sig.Task == learn.Regression {
		outs = append(outs, onnx.TensorValueInfo(core.Value, onnx.TensorProto_FLOAT, []int64{-1, 1}))
	} else {
		lt := onnx.TensorProto_INT64
		if sig.ClassStrings != nil {
			lt = onnx.TensorProto_STRING
		}
		k := int64(max(len(sig.ClassInts), len(sig.ClassStrings)))
		outs = append(outs,
			onnx.TensorValueInfo(core.Label, lt, []int64{-1}),
			onnx.TensorValueInfo(core.Probs, onnx.TensorProto_FLOAT, []int64{-1, k}))
	}
	g := &onnx.GraphProto{Name: "tree_core", Node: core.Nodes, Initializer: core.Initializers, Input: []*onnx.ValueInfoProto{in}, Output: outs}
	data, err := onnx.Marshal(onnx.NewModel(g, 8, "drover-test", onnx.Opset("", 15), onnx.Opset(export.MLDomain, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return loadBytes(t, data)
}

// loadBytes loads an ONNX model given as bytes into ONNX Runtime.
func loadBytes(t *testing.T, data []byte) runtime.Model {
	t.Helper()
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := &runtime.ONNX{Options: runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}}
	m, err := b.Load(context.Background(), path)
	if err != nil {
		t.Fatalf("load the export into ONNX Runtime: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// float32Rows returns d's rows as float32, row-major (what the graph
// reads), and a copy of d with its features rounded to those float32 values
// (what the Go model then reads, so both see the same numbers).
func float32Rows(d *learn.Dataset) ([]float32, *learn.Dataset) {
	n, f := d.Rows(), d.Features()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	c := d.Subset(idx)
	xs := make([]float32, 0, n*f)
	for i := range n {
		for j := range f {
			v := float32(d.X.At(i, j))
			xs = append(xs, v)
			c.X.Set(i, j, float64(v))
		}
	}
	return xs, c
}

func argmax(p []float64) int {
	best := 0
	for k, v := range p {
		if v > p[best] {
			best = k
		}
	}
	return best
}

// checkAgainstRuntime runs the rows of test through rm (its input and
// outputs named as sig names them) and compares with m.Predict: labels
// equal (a row whose two best Go probabilities are within 1e-6 is a tie,
// and either of the two labels is accepted), probabilities and values
// within tolerance. A ZipMap's columns come in the order of the class
// labels ONNX Runtime reports.
func checkAgainstRuntime(t *testing.T, m learn.Model, rm runtime.Model, sig *export.Signature, test *learn.Dataset) {
	t.Helper()
	xs, test := float32Rows(test)
	n := test.Rows()
	in := oip.Tensor{Name: sig.Input, Datatype: oip.FP32, Shape: []int64{int64(n), int64(sig.Features)}, Data: xs}
	if sig.InputType == onnx.TensorProto_DOUBLE {
		x64 := make([]float64, len(xs))
		for i, v := range xs {
			x64[i] = float64(v)
		}
		in.Datatype, in.Data = oip.FP64, x64
	}
	out, err := rm.Run(context.Background(), []oip.Tensor{in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	output := func(name string) (oip.Tensor, runtime.TensorSpec) {
		t.Helper()
		for i, o := range out {
			if o.Name == name {
				return o, rm.Signature().Outputs[i]
			}
		}
		t.Fatalf("no output %q among %d", name, len(out))
		return oip.Tensor{}, runtime.TensorSpec{}
	}
	floats := func(o oip.Tensor) []float64 {
		switch d := o.Data.(type) {
		case []float32:
			f := make([]float64, len(d))
			for i, v := range d {
				f[i] = float64(v)
			}
			return f
		case []float64:
			return d
		}
		t.Fatalf("output %s holds %T", o.Name, o.Data)
		return nil
	}
	preds := predictAll(m, test)
	if sig.Task == learn.Regression {
		o, _ := output(sig.ValueOutput)
		got := floats(o)
		if len(got) != n {
			t.Fatalf("%d values for %d rows", len(got), n)
		}
		worst := 0.0
		for i := range n {
			d := math.Abs(got[i] - preds[i][0])
			worst = max(worst, d)
			if d > tolerance {
				t.Errorf("row %d: ONNX Runtime %v, Go %v", i, got[i], preds[i][0])
			}
		}
		t.Logf("largest value difference %.2g", worst)
		return
	}
	k := test.Classes
	name := func(c int) string {
		if len(sig.ClassStrings) > 0 {
			return sig.ClassStrings[c]
		}
		return strconv.FormatInt(sig.ClassInts[c], 10)
	}
	po, spec := output(sig.ProbOutput)
	probs := floats(po)
	if len(probs) != n*k {
		t.Fatalf("%d probabilities for %d rows of %d classes", len(probs), n, k)
	}
	// col[c] is the column of class index c.
	col := make([]int, k)
	for c := range col {
		col[c] = c
	}
	if spec.Classes != nil {
		for c := range col {
			col[c] = slices.Index(spec.Classes, name(c))
			if col[c] < 0 {
				t.Fatalf("class %s is not among the ZipMap's %v", name(c), spec.Classes)
			}
		}
	}
	lo, _ := output(sig.LabelOutput)
	label := func(i int) string {
		switch l := lo.Data.(type) {
		case []int64:
			return strconv.FormatInt(l[i], 10)
		case [][]byte:
			return string(l[i])
		}
		t.Fatalf("labels are %T", lo.Data)
		return ""
	}
	worst, ties := 0.0, 0
	for i := range n {
		p := preds[i]
		for c := range k {
			d := math.Abs(probs[i*k+col[c]] - p[c])
			worst = max(worst, d)
			if d > tolerance {
				t.Errorf("row %d class %d: ONNX Runtime probability %v, Go %v", i, c, probs[i*k+col[c]], p[c])
			}
		}
		best := argmax(p)
		if got := label(i); got != name(best) {
			second := -1
			for c := range k {
				if c != best && (second < 0 || p[c] > p[second]) {
					second = c
				}
			}
			if p[best]-p[second] <= 1e-6 && got == name(second) {
				ties++
				continue
			}
			t.Errorf("row %d: ONNX Runtime label %s, Go %s (probabilities %v)", i, got, name(best), p)
		}
	}
	t.Logf("largest probability difference %.2g; %d tied rows", worst, ties)
}

// coreNames points sig's output names at the core's outputs (for a graph
// that is only the core).
func coreNames(sig *export.Signature, core export.Core) {
	sig.LabelOutput, sig.ProbOutput, sig.ValueOutput = core.Label, core.Probs, core.Value
}

// TestExportEqualsGoModel exports each family's model and checks ONNX
// Runtime's labels, probabilities and values against the Go model's.
func TestExportEqualsGoModel(t *testing.T) {
	families := map[string]learn.Params{
		DecisionTree:     {"max_depth": 8},
		RandomForest:     {"n_estimators": 25},
		GradientBoosting: {"n_estimators": 30},
	}
	labelings := map[string]func(k int) *export.Signature{
		"int labels": func(k int) *export.Signature {
			s := &export.Signature{Task: learn.Classification}
			for c := range k {
				s.ClassInts = append(s.ClassInts, int64(10*c-3))
			}
			return s
		},
		"string labels": func(k int) *export.Signature {
			s := &export.Signature{Task: learn.Classification}
			for c := range k {
				s.ClassStrings = append(s.ClassStrings, []string{"ant", "bee", "cat"}[c])
			}
			return s
		},
		"regression": func(int) *export.Signature { return &export.Signature{Task: learn.Regression} },
	}
	for family, p := range families {
		for _, kind := range []string{"binary", "multiclass", "regression"} {
			for labeling, sigOf := range labelings {
				if (kind == "regression") != (labeling == "regression") {
					continue
				}
				t.Run(family+"/"+kind+"/"+labeling, func(t *testing.T) {
					train, test := synthetic(kind, 300, 11), synthetic(kind, 200, 12)
					m := fit(t, family, train, p, 5)
					sig := sigOf(train.Classes)
					sig.Input, sig.InputType, sig.Features = "X", onnx.TensorProto_FLOAT, 4
					core, err := m.(export.Exportable).ExportCore("X", "tree_", sig)
					if err != nil {
						t.Fatal(err)
					}
					for _, n := range core.Nodes {
						for _, o := range n.Output {
							if o[:5] != "tree_" {
								t.Errorf("output %q does not start with the prefix", o)
							}
						}
					}
					rm := loadCore(t, core, sig)
					coreNames(sig, core)
					checkAgainstRuntime(t, m, rm, sig, test)
				})
			}
		}
	}
}

// TestExportDegenerateBoosting: a binary boosted model whose leaf weights
// are all zero or positive (trees that never split) still exports the
// logistic of its score, and its label follows the score's sign.
func TestExportDegenerateBoosting(t *testing.T) {
	train := synthetic("binary", 60, 13)
	for i := range train.Y {
		// Balanced classes: the prior's log-odds are 0 and every leaf
		// value exactly 0.
		train.Y[i] = float64(i % 2)
	}
	fitted := fit(t, GradientBoosting, train, learn.Params{"n_estimators": 5, "min_samples_leaf": 60}, 1).(*Boosted)
	if n := fitted.Nodes(); n != 5 {
		t.Fatalf("%d nodes, want 5 single-leaf trees", n)
	}
	leaf := func(v float64) *tree {
		return &tree{feature: []int32{-1}, threshold: []float32{0}, left: []int32{-1}, right: []int32{-1}, value: []float64{v}, width: 1}
	}
	// Score 0.3 + 0.1*0.5 = 0.35: positive weights, a score below 0.5
	// whose logistic is above 0.5.
	positive := &Boosted{task: learn.Classification, classes: 2, features: 4, init: []float64{0.3}, rate: 0.1, stages: [][]*tree{{leaf(0.5)}}}
	for name, m := range map[string]*Boosted{"fitted": fitted, "positive weights": positive} {
		t.Run(name, func(t *testing.T) {
			sig := &export.Signature{Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 4, Task: learn.Classification, ClassInts: []int64{0, 1}}
			core, err := m.ExportCore("X", "gb_", sig)
			if err != nil {
				t.Fatal(err)
			}
			rm := loadCore(t, core, sig)
			coreNames(sig, core)
			checkAgainstRuntime(t, m, rm, sig, synthetic("binary", 20, 14))
		})
	}
}

// TestExportRefusesMismatchedSignature: the export keeps the serving
// signature, so one it cannot keep is an error.
func TestExportRefusesMismatchedSignature(t *testing.T) {
	m := fit(t, DecisionTree, synthetic("multiclass", 100, 15), nil, 1).(export.Exportable)
	cases := map[string]*export.Signature{
		"two class labels for three classes": {Task: learn.Classification, Features: 4, ClassInts: []int64{0, 1}},
		"no class labels":                    {Task: learn.Classification, Features: 4},
		"a regressor":                        {Task: learn.Regression, Features: 4},
		"five features":                      {Task: learn.Classification, Features: 5, ClassInts: []int64{0, 1, 2}},
	}
	for name, sig := range cases {
		if _, err := m.ExportCore("X", "t_", sig); err == nil {
			t.Errorf("%s: exported", name)
		}
	}
}

// TestLayoutMatchesSkl2onnx compares the attributes of an exported random
// forest with those of the scikit-learn random forest that skl2onnx
// converted (onnxruntime_go's test data): the same attribute names and
// types, the same per-leaf class weights for every class, nodes numbered
// from 0 in every tree.
func TestLayoutMatchesSkl2onnx(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := onnx.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	var want *onnx.NodeProto
	for _, n := range ref.GetGraph().GetNode() {
		if n.GetOpType() == "TreeEnsembleClassifier" {
			want = n
		}
	}
	if want == nil {
		t.Fatal("no TreeEnsembleClassifier in skl2onnx's model")
	}
	m := fit(t, RandomForest, synthetic("multiclass", 150, 16), learn.Params{"n_estimators": 3}, 1).(export.Exportable)
	core, err := m.ExportCore("X", "rf_", &export.Signature{Task: learn.Classification, Features: 4, ClassInts: []int64{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	got := core.Nodes[0]
	if got.GetOpType() != want.GetOpType() || got.GetDomain() != want.GetDomain() {
		t.Errorf("node %s/%s, skl2onnx's %s/%s", got.GetDomain(), got.GetOpType(), want.GetDomain(), want.GetOpType())
	}
	attrs := func(n *onnx.NodeProto) map[string]*onnx.AttributeProto {
		a := map[string]*onnx.AttributeProto{}
		for _, x := range n.GetAttribute() {
			a[x.GetName()] = x
		}
		return a
	}
	ga, wa := attrs(got), attrs(want)
	for name, w := range wa {
		g, ok := ga[name]
		if !ok {
			t.Errorf("attribute %s missing", name)
			continue
		}
		if g.GetType() != w.GetType() {
			t.Errorf("attribute %s is %s, skl2onnx's %s", name, g.GetType(), w.GetType())
		}
	}
	for name := range ga {
		if _, ok := wa[name]; !ok {
			t.Errorf("attribute %s is not in skl2onnx's node", name)
		}
	}
	// Every leaf carries one weight per class, classes in order.
	leaves := 0
	for _, mode := range ga["nodes_modes"].GetStrings() {
		if string(mode) == "LEAF" {
			leaves++
		}
	}
	if n := len(ga["class_ids"].GetInts()); n != 3*leaves {
		t.Errorf("%d class weights for %d leaves of 3 classes", n, leaves)
	}
	for i, id := range ga["class_ids"].GetInts() {
		if id != int64(i%3) {
			t.Fatalf("class_ids[%d] = %d, want %d", i, id, i%3)
		}
	}
	if string(ga["post_transform"].GetS()) != "NONE" {
		t.Errorf("post_transform %q", ga["post_transform"].GetS())
	}
}

// TestBuildEqualsGoModel exports each family through export.Build with the
// serving signatures skl2onnx writes (int64 or string labels with a
// ZipMap of probabilities; a FLOAT or DOUBLE input; a [N, 1] FLOAT or [N]
// DOUBLE value) and checks ONNX Runtime's answers against the Go model's.
func TestBuildEqualsGoModel(t *testing.T) {
	families := map[string]learn.Params{
		DecisionTree:     {"max_depth": 6},
		RandomForest:     {"n_estimators": 20},
		GradientBoosting: {"n_estimators": 25},
	}
	sigs := map[string]*export.Signature{
		"binary int64 labels ZipMap": {Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 4, Task: learn.Classification,
			LabelOutput: "output_label", ProbOutput: "output_probability", ZipMap: true, ClassInts: []int64{9, 3}},
		"binary string labels double input": {Input: "float_input", InputType: onnx.TensorProto_DOUBLE, Features: 4, Task: learn.Classification,
			LabelOutput: "output_label", ProbOutput: "output_probability", ZipMap: true, ClassStrings: []string{"no", "yes"}},
		"3 classes string labels ZipMap": {Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 4, Task: learn.Classification,
			LabelOutput: "output_label", ProbOutput: "output_probability", ZipMap: true, ClassStrings: []string{"setosa", "versicolor", "virginica"}},
		"3 classes int64 labels tensor": {Input: "X", InputType: onnx.TensorProto_DOUBLE, Features: 4, Task: learn.Classification,
			LabelOutput: "label", ProbOutput: "probabilities", ClassInts: []int64{2, 0, 1}},
		"regression float [N,1]": {Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 4, Task: learn.Regression,
			ValueOutput: "variable", ValueType: onnx.TensorProto_FLOAT, ValueRank: 2},
		"regression double [N]": {Input: "input", InputType: onnx.TensorProto_DOUBLE, Features: 4, Task: learn.Regression,
			ValueOutput: "predictions", ValueType: onnx.TensorProto_DOUBLE, ValueRank: 1},
	}
	for family, p := range families {
		for name, sig := range sigs {
			t.Run(family+"/"+name, func(t *testing.T) {
				kind := "regression"
				switch {
				case sig.Task == learn.Regression:
				case max(len(sig.ClassInts), len(sig.ClassStrings)) == 2:
					kind = "binary"
				default:
					kind = "multiclass"
				}
				train, test := synthetic(kind, 250, 21), synthetic(kind, 150, 22)
				m := fit(t, family, train, p, 3)
				model, err := export.Build(m.(export.Exportable), sig, "drover-test")
				if err != nil {
					t.Fatal(err)
				}
				data, err := onnx.Marshal(model)
				if err != nil {
					t.Fatal(err)
				}
				rm := loadBytes(t, data)
				got := rm.Signature()
				if got.Inputs[0].Name != sig.Input {
					t.Errorf("input %q, want %q", got.Inputs[0].Name, sig.Input)
				}
				checkAgainstRuntime(t, m, rm, sig, test)
			})
		}
	}
}
