package linear_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/proto"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	_ "github.com/drover-ml/drover/collector/optimize/learn/linear"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// f32 rounds to float32, so the Go model and ONNX Runtime see the same
// inputs whatever the input type.
func f32(v float64) float64 { return float64(float32(v)) }

// blobs is a k-class problem with nf features: class c centred at c on
// every feature, with unit noise.
func blobs(n, nf, k int, seed uint64) *learn.Dataset {
	rng := rand.New(rand.NewPCG(seed, 9))
	x := mat.NewDense(n, nf, nil)
	y := make([]float64, n)
	for i := range n {
		c := i % k
		y[i] = float64(c)
		for j := range nf {
			x.Set(i, j, f32(float64(c)*(1+0.3*float64(j))+rng.NormFloat64()*1.2+5))
		}
	}
	return &learn.Dataset{X: x, Y: y, Task: learn.Classification, Classes: k}
}

// line is a regression with a known linear target plus noise.
func line(n int, seed uint64) *learn.Dataset {
	rng := rand.New(rand.NewPCG(seed, 5))
	x := mat.NewDense(n, 3, nil)
	y := make([]float64, n)
	for i := range n {
		for j := range 3 {
			x.Set(i, j, f32(rng.NormFloat64()*2+float64(j)))
		}
		y[i] = 1.5*x.At(i, 0) - 2*x.At(i, 1) + 0.25*x.At(i, 2) + 0.5 + rng.NormFloat64()*0.1
	}
	return &learn.Dataset{X: x, Y: y, Task: learn.Regression}
}

func fit(t *testing.T, family string, d *learn.Dataset, p learn.Params) export.Exportable {
	t.Helper()
	f, ok := learn.Lookup(family)
	if !ok {
		t.Fatalf("family %s is not registered", family)
	}
	m, err := f.Fit(context.Background(), d, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.(export.Exportable)
	if !ok {
		t.Fatalf("%T is not exportable", m)
	}
	return e
}

// loadORT writes the model to a file and loads it in ONNX Runtime.
func loadORT(t *testing.T, m *onnx.ModelProto) runtime.Model {
	t.Helper()
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rm, err := (&runtime.ONNX{Options: runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}}).Load(context.Background(), path)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the export: %v", err)
	}
	t.Cleanup(func() {
		if err := rm.Close(); err != nil {
			t.Error(err)
		}
	})
	return rm
}

// ortOutputs are one run's outputs: labels as text, probabilities in
// class-index order, values.
type ortOutputs struct {
	labels []string
	probs  [][]float64
	values []float64
}

func runORT(t *testing.T, rm runtime.Model, sig *export.Signature, d *learn.Dataset) ortOutputs {
	t.Helper()
	n, nf := d.X.Dims()
	in := oip.Tensor{Name: sig.Input, Shape: []int64{int64(n), int64(nf)}}
	if sig.InputType == onnx.TensorProto_DOUBLE {
		in.Datatype, in.Data = oip.FP64, append([]float64(nil), d.X.RawMatrix().Data...)
	} else {
		data := make([]float32, n*nf)
		for i, v := range d.X.RawMatrix().Data {
			data[i] = float32(v)
		}
		in.Datatype, in.Data = oip.FP32, data
	}
	outs, err := rm.Run(context.Background(), []oip.Tensor{in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var o ortOutputs
	labelIndex := map[string]int{}
	for j := range sig.Classes() {
		labelIndex[classLabel(sig, j)] = j
	}
	specs := map[string]runtime.TensorSpec{}
	for _, s := range rm.Signature().Outputs {
		specs[s.Name] = s
	}
	for _, out := range outs {
		switch out.Name {
		case sig.LabelOutput:
			switch v := out.Data.(type) {
			case []int64:
				for _, x := range v {
					o.labels = append(o.labels, strconv.FormatInt(x, 10))
				}
			case []int32:
				for _, x := range v {
					o.labels = append(o.labels, strconv.FormatInt(int64(x), 10))
				}
			case [][]byte:
				for _, x := range v {
					o.labels = append(o.labels, string(x))
				}
			default:
				t.Fatalf("labels are %T", out.Data)
			}
		case sig.ProbOutput:
			k := sig.Classes()
			col := make([]int, k) // column -> class index
			for c := range col {
				col[c] = c
			}
			if classes := specs[out.Name].Classes; classes != nil {
				for c, l := range classes {
					col[c] = labelIndex[l]
				}
			}
			vals := floats(t, out.Data)
			for r := range n {
				row := make([]float64, k)
				for c := range k {
					row[col[c]] = vals[r*k+c]
				}
				o.probs = append(o.probs, row)
			}
		case sig.ValueOutput:
			o.values = floats(t, out.Data)
			if want := map[int][]int64{1: {int64(n)}, 2: {int64(n), 1}}[sig.ValueRank]; !reflect.DeepEqual(out.Shape, want) {
				t.Fatalf("value shape %v, want %v", out.Shape, want)
			}
		default:
			t.Fatalf("unexpected output %s", out.Name)
		}
	}
	return o
}

func floats(t *testing.T, d any) []float64 {
	switch v := d.(type) {
	case []float32:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return v
	}
	t.Fatalf("values are %T", d)
	return nil
}

func classLabel(sig *export.Signature, c int) string {
	if len(sig.ClassStrings) > 0 {
		return sig.ClassStrings[c]
	}
	return strconv.FormatInt(sig.ClassInts[c], 10)
}

// TestLogisticExportEqualsModel: labels equal and probabilities within
// 1e-5 of the Go model's, for 2 and 3 classes, integer and string labels,
// with and without ZipMap, FLOAT and DOUBLE inputs.
func TestLogisticExportEqualsModel(t *testing.T) {
	for _, k := range []int{2, 3} {
		d := blobs(90, 4, k, uint64(k))
		m := fit(t, "logistic_regression", d, learn.Params{"C": 10})
		goProbs := learn.PredictAll(m, d)
		for _, strs := range []bool{false, true} {
			for _, zip := range []bool{false, true} {
				for _, it := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE} {
					name := fmt.Sprintf("classes=%d strings=%v zipmap=%v input=%s", k, strs, zip, it)
					t.Run(name, func(t *testing.T) {
						sig := &export.Signature{Input: "float_input", InputType: it, Features: 4, Task: learn.Classification,
							LabelOutput: "output_label", ProbOutput: "output_probability", ZipMap: zip}
						if strs {
							sig.ClassStrings = []string{"no", "yes", "maybe"}[:k]
						} else {
							sig.ClassInts = []int64{3, 7, 11}[:k]
						}
						built, err := export.Build(m, sig, "drover-test")
						if err != nil {
							t.Fatal(err)
						}
						got := runORT(t, loadORT(t, built), sig, d)
						if len(got.labels) != d.Rows() || len(got.probs) != d.Rows() {
							t.Fatalf("%d labels, %d probability rows", len(got.labels), len(got.probs))
						}
						var worst float64
						for i, p := range goProbs {
							best := 0
							for c := range p {
								if p[c] > p[best] {
									best = c
								}
								worst = math.Max(worst, math.Abs(p[c]-got.probs[i][c]))
							}
							if want := classLabel(sig, best); got.labels[i] != want {
								t.Errorf("row %d: ONNX label %s, Go %s (probabilities %v)", i, got.labels[i], want, p)
							}
						}
						if worst > 1e-5 {
							t.Fatalf("probabilities differ by up to %g", worst)
						}
					})
				}
			}
		}
	}
}

// TestRegressionExportEqualsModel: values within 1e-5 for linear and
// ridge regression, FLOAT and DOUBLE inputs and outputs, [N] and [N, 1].
func TestRegressionExportEqualsModel(t *testing.T) {
	d := line(60, 1)
	for _, fam := range []string{"linear_regression", "ridge"} {
		p := learn.Params{}
		if fam == "ridge" {
			p["alpha"] = 10
		}
		m := fit(t, fam, d, p)
		goVals := learn.PredictAll(m, d)
		for _, it := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE} {
			for _, vt := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE} {
				for _, rank := range []int{1, 2} {
					t.Run(fmt.Sprintf("%s input=%s value=%s rank=%d", fam, it, vt, rank), func(t *testing.T) {
						sig := &export.Signature{Input: "X", InputType: it, Features: 3, Task: learn.Regression,
							ValueOutput: "variable", ValueType: vt, ValueRank: rank}
						built, err := export.Build(m, sig, "drover-test")
						if err != nil {
							t.Fatal(err)
						}
						got := runORT(t, loadORT(t, built), sig, d)
						for i, v := range goVals {
							if math.Abs(v[0]-got.values[i]) > 1e-5 {
								t.Fatalf("row %d: ONNX %v, Go %v", i, got.values[i], v[0])
							}
						}
					})
				}
			}
		}
	}
}

func TestRegressionFits(t *testing.T) {
	d := line(200, 2)
	lin := fit(t, "linear_regression", d, nil)
	out := make([]float64, 1)
	lin.Predict([]float64{1, 1, 1}, out)
	if want := 1.5 - 2 + 0.25 + 0.5; math.Abs(out[0]-want) > 0.05 {
		t.Fatalf("linear regression predicts %v at (1,1,1), want about %v", out[0], want)
	}
	// A strong ridge penalty shrinks the slope towards 0: predictions move
	// to the mean target.
	heavy := fit(t, "ridge", d, learn.Params{"alpha": 1e6})
	var mean float64
	for _, y := range d.Y {
		mean += y / float64(len(d.Y))
	}
	heavy.Predict([]float64{10, -10, 0}, out)
	if math.Abs(out[0]-mean) > 0.5 {
		t.Fatalf("ridge alpha=1e6 predicts %v far from the mean %v", out[0], mean)
	}
	// A constant feature leaves the fit defined (the minimum-norm solution).
	c := mat.DenseCopyOf(d.X)
	for i := range d.Rows() {
		c.Set(i, 2, 4)
	}
	if _, err := learn.Lookup("linear_regression"); !err {
		t.Fatal("no linear_regression")
	}
	fit(t, "linear_regression", &learn.Dataset{X: c, Y: d.Y, Task: learn.Regression}, nil)
}

func readIris(t *testing.T) *learn.Dataset {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "iris.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	var xs []float64
	var y []float64
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ",")
		for i, s := range fields {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatal(err)
			}
			if i < 4 {
				xs = append(xs, v)
			} else {
				y = append(y, v)
			}
		}
	}
	return &learn.Dataset{X: mat.NewDense(len(y), 4, xs), Y: y, Task: learn.Classification, Classes: 3}
}

// TestLogisticIrisCV: scikit-learn's
// cross_val_score(make_pipeline(StandardScaler(), LogisticRegression()),
// iris, cv=StratifiedKFold(5, shuffle=True)) scores about 0.95–0.97; the
// Go fit must be as good.
func TestLogisticIrisCV(t *testing.T) {
	d := readIris(t)
	if err := learn.Validate(d); err != nil {
		t.Fatal(err)
	}
	cands, err := learn.Candidates("logistic_regression", learn.Classification, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 7 || cands[0].Params["C"] != 0.001 || cands[6].Params["C"] != 1000 {
		t.Fatalf("default grid %v", cands)
	}
	res, err := learn.Search(context.Background(), d, cands, learn.SearchOptions{Folds: 5, Procs: 2, Seed: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Results {
		t.Logf("C=%g accuracy %.4f ± %.4f", r.Params["C"], r.Mean, r.Std)
	}
	c1 := res.Results[3]
	if c1.Params["C"] != 1 || c1.Mean < 0.93 {
		t.Fatalf("C=1 CV accuracy %.4f, want ≥ 0.93 (scikit-learn: about 0.95)", c1.Mean)
	}
	if best := res.Results[res.Best]; best.Mean < 0.95 {
		t.Fatalf("best CV accuracy %.4f (C=%g), want ≥ 0.95", best.Mean, best.Params["C"])
	}
	if res.Results[0].Mean > c1.Mean {
		t.Fatalf("C=0.001 (%.4f) beats C=1 (%.4f): the penalty is not applied as scikit-learn's", res.Results[0].Mean, c1.Mean)
	}
}

func TestFamiliesRefuse(t *testing.T) {
	cls, reg := blobs(30, 2, 2, 1), line(30, 1)
	cases := map[string]struct {
		family string
		d      *learn.Dataset
		p      learn.Params
		want   string
	}{
		"negative C":        {"logistic_regression", cls, learn.Params{"C": -1}, "C = -1"},
		"fractional iters":  {"logistic_regression", cls, learn.Params{"max_iter": 2.5}, "max_iter = 2.5"},
		"negative alpha":    {"ridge", reg, learn.Params{"alpha": -1}, "alpha = -1"},
		"linear params":     {"linear_regression", reg, learn.Params{"alpha": 1}, "takes no parameters"},
		"logistic on reals": {"logistic_regression", reg, nil, "classification"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f, _ := learn.Lookup(tc.family)
			_, err := f.Fit(context.Background(), tc.d, tc.p, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := learn.Lookup("logistic_regression")
	if _, err := f.Fit(ctx, cls, nil, 0); err != context.Canceled {
		t.Fatalf("cancelled fit: %v", err)
	}
}

// servingLogistic is a graph shaped as skl2onnx converts
// Pipeline(StandardScaler, LogisticRegression) on 4 features: Scaler →
// LinearClassifier → ZipMap.
func servingLogistic(zip bool) *onnx.ModelProto {
	nodes := []*onnx.NodeProto{
		export.MLNode("Scaler", "Scaler", []string{"float_input"}, []string{"variable"},
			export.FloatsAttr("offset", []float64{5.8, 3, 3.7, 1.2}), export.FloatsAttr("scale", []float64{1.2, 2.3, 0.6, 1.3})),
		export.MLNode("LinearClassifier", "LinearClassifier", []string{"variable"}, []string{"label", "probability_tensor"},
			onnx.IntsAttr("classlabels_ints", 0, 1, 2),
			export.FloatsAttr("coefficients", []float64{-1, 1, -2, -2, 0.5, -0.3, 0.2, -0.7, 0.5, -0.7, 1.8, 2.7}),
			export.FloatsAttr("intercepts", []float64{-0.2, 1.9, -1.7}),
			onnx.IntAttr("multi_class", 1), export.StringAttr("post_transform", "SOFTMAX")),
	}
	probOut := onnx.TensorValueInfo("output_probability", onnx.TensorProto_FLOAT, []int64{-1, 3})
	if zip {
		nodes = append(nodes, onnx.Node("Identity", "Identity", []string{"label"}, []string{"output_label"}),
			export.MLNode("ZipMap", "ZipMap", []string{"probability_tensor"}, []string{"output_probability"}, onnx.IntsAttr("classlabels_int64s", 0, 1, 2)))
		probOut = &onnx.ValueInfoProto{Name: "output_probability", Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{
			ElemType: &onnx.TypeProto{Value: &onnx.TypeProto_MapType{MapType: &onnx.TypeProto_Map{KeyType: int32(onnx.TensorProto_INT64),
				ValueType: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: int32(onnx.TensorProto_FLOAT)}}}}}},
		}}}}
	} else {
		nodes = append(nodes, onnx.Node("Identity", "Identity", []string{"label"}, []string{"output_label"}),
			onnx.Node("Identity1", "Identity", []string{"probability_tensor"}, []string{"output_probability"}))
	}
	g := &onnx.GraphProto{
		Name:   "pipeline_logistic",
		Node:   nodes,
		Input:  []*onnx.ValueInfoProto{onnx.TensorValueInfo("float_input", onnx.TensorProto_FLOAT, []int64{-1, 4})},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo("output_label", onnx.TensorProto_INT64, []int64{-1}), probOut},
	}
	return onnx.NewModel(g, 8, "skl2onnx", onnx.Opset("", 17), onnx.Opset(export.MLDomain, 1))
}

// servingRegressor is skl2onnx's Pipeline(StandardScaler,
// LinearRegression) on 3 DOUBLE features: Scaler → LinearRegressor, the
// value DOUBLE [N, 1] through a Cast.
func servingRegressor() *onnx.ModelProto {
	g := &onnx.GraphProto{
		Name: "pipeline_linear",
		Node: []*onnx.NodeProto{
			onnx.Node("Cast", "Cast", []string{"double_input"}, []string{"cast_input"}, onnx.IntAttr("to", int64(onnx.TensorProto_FLOAT))),
			export.MLNode("Scaler", "Scaler", []string{"cast_input"}, []string{"scaled"},
				export.FloatsAttr("offset", []float64{0, 1, 2}), export.FloatsAttr("scale", []float64{0.5, 0.5, 0.5})),
			export.MLNode("LinearRegressor", "LinearRegressor", []string{"scaled"}, []string{"raw"},
				export.FloatsAttr("coefficients", []float64{1, 2, 3}), export.FloatsAttr("intercepts", []float64{0.5})),
			onnx.Node("Cast1", "Cast", []string{"raw"}, []string{"variable"}, onnx.IntAttr("to", int64(onnx.TensorProto_DOUBLE))),
		},
		Input:  []*onnx.ValueInfoProto{onnx.TensorValueInfo("double_input", onnx.TensorProto_DOUBLE, []int64{-1, 3})},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo("variable", onnx.TensorProto_DOUBLE, []int64{-1, 1})},
	}
	return onnx.NewModel(g, 8, "skl2onnx", onnx.Opset("", 15), onnx.Opset(export.MLDomain, 1))
}

// TestExportKeepsServingSignature: the export of a model trained for a
// serving graph has the same signature as the serving graph, read by
// ReadSignature and as ONNX Runtime serves it (ZipMap classes included),
// and its bytes are deterministic.
func TestExportKeepsServingSignature(t *testing.T) {
	cases := map[string]struct {
		serving *onnx.ModelProto
		family  string
		d       *learn.Dataset
	}{
		"logistic with zipmap":   {servingLogistic(true), "logistic_regression", readIris(t)},
		"logistic without":       {servingLogistic(false), "logistic_regression", readIris(t)},
		"regressor double [N,1]": {servingRegressor(), "ridge", line(40, 3)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sig, err := export.ReadSignature(tc.serving)
			if err != nil {
				t.Fatal(err)
			}
			fam, err := export.DetectFamily(tc.serving)
			if err != nil || fam != tc.family {
				t.Fatalf("DetectFamily = %q, %v; want %s", fam, err, tc.family)
			}
			m := fit(t, fam, tc.d, nil)
			built, err := export.Build(m, sig, "drover")
			if err != nil {
				t.Fatal(err)
			}
			again, err := export.ReadSignature(built)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSignature(sig, again) {
				t.Fatalf("export signature %+v\nserving %+v", again, sig)
			}
			servingRT, builtRT := loadORT(t, tc.serving), loadORT(t, built)
			if !reflect.DeepEqual(servingRT.Signature(), builtRT.Signature()) {
				t.Fatalf("ONNX Runtime signature of the export %+v, of the serving graph %+v", builtRT.Signature(), servingRT.Signature())
			}
			b1, _ := onnx.Marshal(built)
			rebuilt, err := export.Build(m, sig, "drover")
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := onnx.Marshal(rebuilt)
			if string(b1) != string(b2) {
				t.Fatal("two builds of the same model differ")
			}
			// And the export computes what the Go model computes.
			got := runORT(t, builtRT, sig, tc.d)
			want := learn.PredictAll(m, tc.d)
			for i := range want {
				for c := range want[i] {
					var v float64
					if sig.Task == learn.Classification {
						v = got.probs[i][c]
					} else {
						v = got.values[i]
					}
					if math.Abs(v-want[i][c]) > 1e-5 {
						t.Fatalf("row %d: ONNX %v, Go %v", i, v, want[i][c])
					}
				}
			}
		})
	}
}

func sameSignature(a, b *export.Signature) bool {
	if len(a.Outputs) != len(b.Outputs) || !proto.Equal(a.InputInfo, b.InputInfo) {
		return false
	}
	for i := range a.Outputs {
		if !proto.Equal(a.Outputs[i], b.Outputs[i]) {
			return false
		}
	}
	x, y := *a, *b
	x.Outputs, y.Outputs, x.InputInfo, y.InputInfo = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}
