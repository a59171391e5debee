package testmodels_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

var (
	ortOnce sync.Once
	ortErr  error
)

// initORT loads the real ONNX Runtime once per test binary. The environment
// is never destroyed: other tests in the binary may still use it.
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

// run runs model on inputs and returns its outputs, in the order of
// outputNames. A nil entry in outputs is allocated by ONNX Runtime. Inputs
// and outputs are destroyed when t ends.
func run(t *testing.T, model []byte, inputNames []string, inputs []ort.Value, outputNames []string, outputs []ort.Value) []ort.Value {
	t.Helper()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputNames, outputNames, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the model: %v", err)
	}
	defer s.Destroy()
	for _, v := range inputs {
		t.Cleanup(func() { _ = v.Destroy() })
	}
	if outputs == nil {
		outputs = make([]ort.Value, len(outputNames))
	}
	if err := s.Run(inputs, outputs); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, v := range outputs {
		t.Cleanup(func() { _ = v.Destroy() })
	}
	return outputs
}

func tensor[T ort.TensorData](t *testing.T, shape ort.Shape, data []T) *ort.Tensor[T] {
	t.Helper()
	x, err := ort.NewTensor(shape, data)
	if err != nil {
		t.Fatalf("new tensor: %v", err)
	}
	return x
}

func data[T ort.TensorData](t *testing.T, v ort.Value) []T {
	t.Helper()
	x, ok := v.(*ort.Tensor[T])
	if !ok {
		t.Fatalf("output is a %T, want *ort.Tensor[%T]", v, *new(T))
	}
	return x.GetData()
}

// affine returns x·w + b for a row-major x of len(w) columns.
func affine(x []float32, w [][]float32, b []float32) []float32 {
	in, out := len(w), len(b)
	y := make([]float32, 0, len(x)/in*out)
	for r := 0; r < len(x)/in; r++ {
		for j := range out {
			s := float64(b[j])
			for i := range in {
				s += float64(x[r*in+i]) * float64(w[i][j])
			}
			y = append(y, float32(s))
		}
	}
	return y
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol {
			if len(got) <= 16 {
				t.Fatalf("%s[%d] = %v, want %v (±%v); all: %v, want %v", what, i, got[i], want[i], tol, got, want)
			}
			t.Fatalf("%s[%d] = %v, want %v (±%v)", what, i, got[i], want[i], tol)
		}
	}
}

// signature returns the model's inputs and outputs as ONNX Runtime reads them.
func signature(t *testing.T, model []byte) (in, out []ort.InputOutputInfo) {
	t.Helper()
	in, out, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatalf("read signature: %v", err)
	}
	return in, out
}

func TestLinear(t *testing.T) {
	initORT(t)
	// Two versions: same shapes, different weights.
	w1 := [][]float32{{1, 2, 3}, {4, 5, 6}}
	b1 := []float32{0.5, -0.5, 1}
	w2 := [][]float32{{-1, 0, 2}, {0.25, 3, -2}}
	b2 := []float32{10, 20, 30}
	v1, err := testmodels.Linear("features", "scores", w1, b1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := testmodels.Linear("features", "scores", w2, b2)
	if err != nil {
		t.Fatal(err)
	}

	x := []float32{1, 2, -3, 0.5}
	want1 := affine(x, w1, b1) // hand check: row 0 = [1+8+.5, 2+10-.5, 3+12+1]
	assertClose(t, "hand-computed X·W+B", want1[:3], []float32{9.5, 11.5, 16}, 0)
	out1 := run(t, v1, []string{"features"}, []ort.Value{tensor(t, ort.NewShape(2, 2), x)}, []string{"scores"}, nil)
	out2 := run(t, v2, []string{"features"}, []ort.Value{tensor(t, ort.NewShape(2, 2), x)}, []string{"scores"}, nil)
	if got := out1[0].GetShape(); !got.Equals(ort.NewShape(2, 3)) {
		t.Fatalf("v1 output shape %v, want [2 3]", got)
	}
	assertClose(t, "v1 Y", data[float32](t, out1[0]), want1, 1e-5)
	assertClose(t, "v2 Y", data[float32](t, out2[0]), affine(x, w2, b2), 1e-5)
	if slices.Equal(data[float32](t, out1[0]), data[float32](t, out2[0])) {
		t.Fatal("v1 and v2 gave the same output; versions must be distinguishable")
	}

	in1, o1 := signature(t, v1)
	in2, o2 := signature(t, v2)
	if !slices.EqualFunc(append(in1, o1...), append(in2, o2...), func(a, b ort.InputOutputInfo) bool { return a.String() == b.String() }) {
		t.Fatalf("signatures differ: v1 %v %v, v2 %v %v", in1, o1, in2, o2)
	}
	if len(in1) != 1 || in1[0].Name != "features" || in1[0].DataType != ort.TensorElementDataTypeFloat || !in1[0].Dimensions.Equals(ort.NewShape(-1, 2)) {
		t.Fatalf("input = %v, want features FP32 [-1 2]", in1)
	}
	if len(o1) != 1 || o1[0].Name != "scores" || o1[0].DataType != ort.TensorElementDataTypeFloat || !o1[0].Dimensions.Equals(ort.NewShape(-1, 3)) {
		t.Fatalf("output = %v, want scores FP32 [-1 3]", o1)
	}
}

func TestLinearRejectsBadArguments(t *testing.T) {
	w := [][]float32{{1, 2}, {3, 4}}
	b := []float32{1, 2}
	for name, tc := range map[string]struct {
		in, out string
		w       [][]float32
		b       []float32
	}{
		"no rows":         {"x", "y", nil, b},
		"empty row":       {"x", "y", [][]float32{{}}, nil},
		"ragged":          {"x", "y", [][]float32{{1, 2}, {3}}, b},
		"bias too short":  {"x", "y", w, b[:1]},
		"bias too long":   {"x", "y", w, []float32{1, 2, 3}},
		"empty input":     {"", "y", w, b},
		"same names":      {"x", "x", w, b},
		"reserved name":   {"linear.W", "y", w, b},
		"reserved output": {"x", "linear.XW", w, b},
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := testmodels.Linear(tc.in, tc.out, tc.w, tc.b); err == nil {
				t.Fatalf("got a %d-byte model, want an error", len(m))
			}
		})
	}
	if _, err := testmodels.Classifier([][]float32{{1, 2}}, []float32{1}); err == nil {
		t.Fatal("Classifier with 2 classes and 1 bias: want an error")
	}
}

func TestClassifier(t *testing.T) {
	initORT(t)
	w := [][]float32{{1, -1, 0.5}, {0, 2, -1}, {-0.5, 0.5, 3}, {1, 1, 1}}
	b := []float32{0.1, 0, -0.2}
	m, err := testmodels.Classifier(w, b)
	if err != nil {
		t.Fatal(err)
	}
	// Rows chosen so each class wins once and the margins are clear.
	x := []float32{
		3, 0, 0, 0, // class 0: logits 3.1, -3, 1.3
		0, 2, 0, 0, // class 1: logits 0.1, 4, -2.2
		0, 0, 2, 0, // class 2: logits -0.9, 1, 5.8
	}
	out := run(t, m, []string{testmodels.ClassifierInput}, []ort.Value{tensor(t, ort.NewShape(3, 4), x)},
		[]string{testmodels.ClassifierLabel, testmodels.ClassifierProbabilities}, nil)
	labels := data[int64](t, out[0])
	probs := data[float32](t, out[1])
	if got := out[0].GetShape(); !got.Equals(ort.NewShape(3)) {
		t.Fatalf("label shape %v, want [3]", got)
	}
	if got := out[1].GetShape(); !got.Equals(ort.NewShape(3, 3)) {
		t.Fatalf("probabilities shape %v, want [3 3]", got)
	}
	logits := affine(x, w, b)
	for r := range 3 {
		row := probs[3*r : 3*r+3]
		var sum float64
		for _, p := range row {
			sum += float64(p)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("row %d: probabilities %v sum to %v, want 1", r, row, sum)
		}
		argmax := int64(0)
		for j := range row {
			if row[j] > row[argmax] {
				argmax = int64(j)
			}
		}
		if labels[r] != argmax || labels[r] != int64(r) {
			t.Errorf("row %d: label %d, argmax of probabilities %d, want %d", r, labels[r], argmax, r)
		}
		// Softmax computed here from the logits.
		lr := logits[3*r : 3*r+3]
		mx := slices.Max(lr)
		var z float64
		want := make([]float32, 3)
		for j, l := range lr {
			want[j] = float32(math.Exp(float64(l - mx)))
			z += float64(want[j])
		}
		for j := range want {
			want[j] = float32(float64(want[j]) / z)
		}
		assertClose(t, "probabilities row", row, want, 1e-5)
	}
}

func TestBig(t *testing.T) {
	initORT(t)
	const in, out = 1000, 1000
	m, err := testmodels.Big(in, out, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) <= 3<<20 {
		t.Fatalf("Big(%d, %d) is %d bytes, want > 3 MiB", in, out, len(m))
	}
	again, err := testmodels.Big(in, out, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, again) {
		t.Fatal("Big is not deterministic: two calls with the same seed differ")
	}
	other, err := testmodels.Big(in, out, 43)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(m, other) {
		t.Fatal("Big with seeds 42 and 43 gave the same model")
	}

	x := make([]float32, 2*in)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	res := run(t, m, []string{testmodels.BigInput}, []ort.Value{tensor(t, ort.NewShape(2, in), x)}, []string{testmodels.BigOutput}, nil)
	w, b := testmodels.BigWeights(in, out, 42)
	assertClose(t, "Big Y", data[float32](t, res[0]), affine(x, w, b), 1e-3)

	if _, err := testmodels.Big(0, 10, 1); err == nil {
		t.Fatal("Big(0, 10): want an error")
	}
}

func TestChain(t *testing.T) {
	initORT(t)
	const dim = 8
	m, err := testmodels.Chain(dim, 5)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*dim)
	for i := range x {
		x[i] = float32(i) - 5
	}
	res := run(t, m, []string{testmodels.BigInput}, []ort.Value{tensor(t, ort.NewShape(3, dim), x)}, []string{testmodels.BigOutput}, nil)
	assertClose(t, "Chain Y", data[float32](t, res[0]), x, 0)
	for _, bad := range [][2]int{{0, 1}, {1, 0}} {
		if _, err := testmodels.Chain(bad[0], bad[1]); err == nil {
			t.Fatalf("Chain(%d, %d): want an error", bad[0], bad[1])
		}
	}
}

func TestIdentity(t *testing.T) {
	initORT(t)
	shape := ort.NewShape(2, 3)
	// Each case round-trips six values through an Identity model with a
	// dynamic batch dimension, and returns what came back and what went in.
	type result struct{ got, want any }
	numeric := func(t *testing.T, m []byte, in ort.Value, want any, get func(ort.Value) any) result {
		out := run(t, m, []string{"x"}, []ort.Value{in}, []string{"x_out"}, nil)
		return result{get(out[0]), want}
	}
	cases := map[string]struct {
		elem ort.TensorElementDataType
		run  func(t *testing.T, m []byte) result
	}{
		"BOOL": {ort.TensorElementDataTypeBool, func(t *testing.T, m []byte) result {
			v := []bool{true, false, false, true, true, false}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[bool](t, o) })
		}},
		"UINT8": {ort.TensorElementDataTypeUint8, func(t *testing.T, m []byte) result {
			v := []uint8{0, 1, 2, 127, 128, 255}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[uint8](t, o) })
		}},
		"UINT16": {ort.TensorElementDataTypeUint16, func(t *testing.T, m []byte) result {
			v := []uint16{0, 1, 300, 32768, 65534, 65535}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[uint16](t, o) })
		}},
		"UINT32": {ort.TensorElementDataTypeUint32, func(t *testing.T, m []byte) result {
			v := []uint32{0, 1, 70000, 1 << 31, math.MaxUint32 - 1, math.MaxUint32}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[uint32](t, o) })
		}},
		"UINT64": {ort.TensorElementDataTypeUint64, func(t *testing.T, m []byte) result {
			v := []uint64{0, 1, 1 << 40, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[uint64](t, o) })
		}},
		"INT8": {ort.TensorElementDataTypeInt8, func(t *testing.T, m []byte) result {
			v := []int8{math.MinInt8, -1, 0, 1, 42, math.MaxInt8}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[int8](t, o) })
		}},
		"INT16": {ort.TensorElementDataTypeInt16, func(t *testing.T, m []byte) result {
			v := []int16{math.MinInt16, -300, 0, 1, 300, math.MaxInt16}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[int16](t, o) })
		}},
		"INT32": {ort.TensorElementDataTypeInt32, func(t *testing.T, m []byte) result {
			v := []int32{math.MinInt32, -70000, 0, 1, 70000, math.MaxInt32}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[int32](t, o) })
		}},
		"INT64": {ort.TensorElementDataTypeInt64, func(t *testing.T, m []byte) result {
			v := []int64{math.MinInt64, -1 << 40, 0, 1, 1 << 40, math.MaxInt64}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[int64](t, o) })
		}},
		"FP16": {ort.TensorElementDataTypeFloat16, func(t *testing.T, m []byte) result {
			// IEEE 754 half bits: 1, -2, 0.5, 65504 (max), -0, smallest subnormal.
			bits := []uint16{0x3C00, 0xC000, 0x3800, 0x7BFF, 0x8000, 0x0001}
			raw := make([]byte, 2*len(bits))
			for i, h := range bits {
				binary.LittleEndian.PutUint16(raw[2*i:], h)
			}
			in, err := ort.NewCustomDataTensor(shape, raw, ort.TensorElementDataTypeFloat16)
			if err != nil {
				t.Fatal(err)
			}
			// Preallocated: onnxruntime_go sizes auto-allocated custom
			// tensors at one byte per element.
			out, err := ort.NewCustomDataTensor(shape, make([]byte, len(raw)), ort.TensorElementDataTypeFloat16)
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, m, []string{"x"}, []ort.Value{in}, []string{"x_out"}, []ort.Value{out})
			return result{bytes.Clone(res[0].(*ort.CustomDataTensor).GetData()), bytes.Clone(raw)}
		}},
		"FP32": {ort.TensorElementDataTypeFloat, func(t *testing.T, m []byte) result {
			v := []float32{-1.5, 0, 3.25, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(-1))}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[float32](t, o) })
		}},
		"FP64": {ort.TensorElementDataTypeDouble, func(t *testing.T, m []byte) result {
			v := []float64{-1.5, 0, math.Pi, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1)}
			return numeric(t, m, tensor(t, shape, v), v, func(o ort.Value) any { return data[float64](t, o) })
		}},
		"BYTES": {ort.TensorElementDataTypeString, func(t *testing.T, m []byte) result {
			v := []string{"", "drover", "héllo wörld", "a b\tc", "{\"k\": 1}", "last"}
			in, err := ort.NewStringTensor(shape)
			if err != nil {
				t.Fatal(err)
			}
			if err := in.SetContents(v); err != nil {
				t.Fatal(err)
			}
			res := run(t, m, []string{"x"}, []ort.Value{in}, []string{"x_out"}, nil)
			st, ok := res[0].(*ort.StringTensor)
			if !ok {
				t.Fatalf("output is a %T, want *ort.StringTensor", res[0])
			}
			got, err := st.GetContents()
			if err != nil {
				t.Fatal(err)
			}
			return result{got, v}
		}},
	}
	if got := testmodels.Datatypes(); len(got) != len(cases) {
		t.Fatalf("Datatypes() = %v; this test covers %d", got, len(cases))
	}
	for _, dt := range testmodels.Datatypes() {
		t.Run(dt, func(t *testing.T) {
			tc, ok := cases[dt]
			if !ok {
				t.Fatalf("no test case for %s", dt)
			}
			m, err := testmodels.Identity("x", dt, []int64{-1, 3})
			if err != nil {
				t.Fatal(err)
			}
			in, out := signature(t, m)
			if len(in) != 1 || in[0].Name != "x" || in[0].DataType != tc.elem || !in[0].Dimensions.Equals(ort.NewShape(-1, 3)) {
				t.Fatalf("input = %v, want x %v [-1 3]", in, tc.elem)
			}
			if len(out) != 1 || out[0].Name != "x_out" || out[0].DataType != tc.elem || !out[0].Dimensions.Equals(ort.NewShape(-1, 3)) {
				t.Fatalf("output = %v, want x_out %v [-1 3]", out, tc.elem)
			}
			r := tc.run(t, m)
			if !equalValues(r.got, r.want) {
				t.Fatalf("round trip: got %v, want %v", r.got, r.want)
			}
		})
	}
}

// equalValues compares slices element by element; floats by bits, so that
// -0 and NaN payloads must survive too.
func equalValues(got, want any) bool {
	switch w := want.(type) {
	case []float32:
		g, ok := got.([]float32)
		return ok && slices.EqualFunc(g, w, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) })
	case []float64:
		g, ok := got.([]float64)
		return ok && slices.EqualFunc(g, w, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	case []bool:
		g, ok := got.([]bool)
		return ok && slices.Equal(g, w)
	case []string:
		g, ok := got.([]string)
		return ok && slices.Equal(g, w)
	case []int8:
		g, ok := got.([]int8)
		return ok && slices.Equal(g, w)
	case []int16:
		g, ok := got.([]int16)
		return ok && slices.Equal(g, w)
	case []int32:
		g, ok := got.([]int32)
		return ok && slices.Equal(g, w)
	case []int64:
		g, ok := got.([]int64)
		return ok && slices.Equal(g, w)
	case []uint16:
		g, ok := got.([]uint16)
		return ok && slices.Equal(g, w)
	case []uint32:
		g, ok := got.([]uint32)
		return ok && slices.Equal(g, w)
	case []uint64:
		g, ok := got.([]uint64)
		return ok && slices.Equal(g, w)
	}
	return false
}

func TestIdentityShapes(t *testing.T) {
	initORT(t)
	for name, tc := range map[string]struct {
		shape []int64
		want  ort.Shape
	}{
		"fixed":        {[]int64{2, 3}, ort.NewShape(2, 3)},
		"all dynamic":  {[]int64{-1, -1, 4}, ort.NewShape(-1, -1, 4)},
		"vector batch": {[]int64{-1}, ort.NewShape(-1)},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := testmodels.Identity("in", "FP32", tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			in, out := signature(t, m)
			if !in[0].Dimensions.Equals(tc.want) || !out[0].Dimensions.Equals(tc.want) || out[0].Name != "in_out" {
				t.Fatalf("signature %v -> %v, want %v", in, out, tc.want)
			}
		})
	}
	for _, dt := range []string{"", "fp32", "FLOAT", "BF16", "COMPLEX64"} {
		if _, err := testmodels.Identity("x", dt, []int64{1}); err == nil {
			t.Errorf("Identity with datatype %q: want an error", dt)
		}
	}
	if _, err := testmodels.Identity("", "FP32", []int64{1}); err == nil {
		t.Error("Identity with an empty name: want an error")
	}
}

// tree lists every path under root, relative to it.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err == nil && rel != "." {
			paths = append(paths, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestWriteVersion(t *testing.T) {
	root := t.TempDir()
	m, err := testmodels.Linear("x", "y", [][]float32{{1}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := testmodels.WriteVersion(root, "iris", 7, m)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "iris", "7"); dir != want {
		t.Fatalf("dir = %s, want %s", dir, want)
	}
	if got, want := tree(t, root), []string{"iris", "iris/7", "iris/7/model.onnx"}; !slices.Equal(got, want) {
		t.Fatalf("store holds %v, want %v", got, want)
	}
	got, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, m) {
		t.Fatal("model.onnx differs from the bytes written")
	}

	// A second version joins the first; the model directory exists already.
	if _, err := testmodels.WriteVersion(root, "iris", 8, []byte("v8")); err != nil {
		t.Fatal(err)
	}
	// Publishing an existing version fails and leaves it and nothing else.
	if _, err := testmodels.WriteVersion(root, "iris", 7, []byte("other")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("rewriting v7: err = %v, want os.ErrExist", err)
	}
	if got, want := tree(t, root), []string{"iris", "iris/7", "iris/7/model.onnx", "iris/8", "iris/8/model.onnx"}; !slices.Equal(got, want) {
		t.Fatalf("store holds %v, want %v", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "model.onnx")); !bytes.Equal(got, m) {
		t.Fatal("a failed rewrite changed v7's model.onnx")
	}

	for _, bad := range []string{"", ".", "..", "a/b", "../escape", "/abs"} {
		if _, err := testmodels.WriteVersion(root, bad, 1, m); err == nil {
			t.Errorf("model %q: want an error", bad)
		}
	}
	if got := tree(t, root); len(got) != 5 {
		t.Fatalf("bad names changed the store: %v", got)
	}
}

func TestReshapeByInput(t *testing.T) {
	initORT(t)
	m, err := testmodels.ReshapeByInput()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := testmodels.ReshapeByInput(); !bytes.Equal(m, again) {
		t.Fatal("ReshapeByInput is not deterministic")
	}
	x := []float32{1, 2, 3, 4}
	out := run(t, m, []string{testmodels.ReshapeData, testmodels.ReshapeShape},
		[]ort.Value{tensor(t, ort.NewShape(1, 4), x), tensor(t, ort.NewShape(2), []int64{2, 2})},
		[]string{testmodels.ReshapeOutput}, nil)
	if got := out[0].GetShape(); !got.Equals(ort.NewShape(2, 2)) {
		t.Fatalf("output shape %v, want [2 2]", got)
	}
	assertClose(t, "y", data[float32](t, out[0]), x, 0)

	// Zero-filled inputs, as a synthetic warm-up makes them, fail.
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(m, []string{testmodels.ReshapeData, testmodels.ReshapeShape}, []string{testmodels.ReshapeOutput}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	outs := []ort.Value{nil}
	if err := s.Run([]ort.Value{tensor(t, ort.NewShape(1, 4), make([]float32, 4)), tensor(t, ort.NewShape(2), []int64{0, 0})}, outs); err == nil {
		if outs[0] != nil {
			outs[0].Destroy()
		}
		t.Fatal("zero inputs ran; want a reshape error")
	}
	in, o := signature(t, m)
	if len(in) != 2 || in[1].DataType != ort.TensorElementDataTypeInt64 || !in[1].Dimensions.Equals(ort.NewShape(2)) || len(o) != 1 {
		t.Fatalf("signature %v %v", in, o)
	}
}
