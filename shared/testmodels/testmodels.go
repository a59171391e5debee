// Package testmodels builds small, real ONNX models for tests and benchmarks,
// and publishes them into a model store the way a trainer would.
//
// The models are assembled with package shared/onnx and serialized with
// protobuf, so no Python or exporter is needed. Each targets
// IR version IRVersion and the default ONNX operator set at version Opset,
// which ONNX Runtime 1.30 loads. Builders are deterministic: the same
// arguments always give the same bytes. All functions are safe for
// concurrent use.
//
//   - Linear: Y = X·W + B. Versions built with different W or B have the same
//     signature and different outputs, so a test can tell which one answered.
//   - Classifier: label and class probabilities (Softmax, ArgMax).
//   - Big: a Linear model with pseudo-random weights, a few MB on disk.
//   - Identity: one input copied to one output, for every tensor datatype of
//     the Open Inference Protocol.
//   - ReshapeByInput: reshapes its data input to the shape given by its
//     other input, so zero-filled inputs fail (a model that must be warmed
//     up with real inputs).
//   - WriteVersion: publishes model bytes as <root>/<model>/<version>/model.onnx.
package testmodels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/drover-ml/drover/shared/durable"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
)

const (
	// IRVersion is the ONNX IR version every model here declares.
	IRVersion = 8
	// Opset is the version of the default ("ai.onnx") operator set every
	// model here imports.
	Opset = 13
	// ProducerName is written into every model's producer_name.
	ProducerName = "drover-testmodels"
)

// Names of the inputs and outputs of the models whose names are fixed.
const (
	// ClassifierInput is Classifier's input: FP32 [batch, features].
	ClassifierInput = "X"
	// ClassifierLabel is Classifier's label output: INT64 [batch].
	ClassifierLabel = "label"
	// ClassifierProbabilities is Classifier's probabilities output:
	// FP32 [batch, classes].
	ClassifierProbabilities = "probabilities"
	// BigInput and BigOutput are Big's input and output (FP32).
	BigInput  = "X"
	BigOutput = "Y"
	// ReshapeData is ReshapeByInput's data input: FP32 [batch, 4].
	ReshapeData = "x"
	// ReshapeShape is ReshapeByInput's shape input: INT64 [2], the shape
	// of the output.
	ReshapeShape = "shape"
	// ReshapeOutput is ReshapeByInput's output: FP32 [-1, -1].
	ReshapeOutput = "y"
	// ReshapeOpset is the operator set version ReshapeByInput imports
	// (Reshape's allowzero attribute needs 14).
	ReshapeOpset = 14
)

// Linear returns a model computing Y = X·W + B, with input inputName of type
// FP32 [batch, in] and output outputName of type FP32 [batch, out], where the
// batch dimension is dynamic (named "batch"), in = len(w) and out = len(w[i])
// = len(b). W and B are stored as initializers, so models built with
// different weights share a signature. It fails if w is empty or ragged, if
// len(b) != out, or if the names are empty, equal, or clash with the
// model's internal names (which start with "linear.").
func Linear(inputName, outputName string, w [][]float32, b []float32) ([]byte, error) {
	g, err := linearGraph(inputName, outputName, w, b)
	if err != nil {
		return nil, fmt.Errorf("build linear model: %w", err)
	}
	return marshal(g)
}

// Classifier returns a model that scores X·W + B and outputs, for input
// "X" FP32 [batch, features]:
//
//   - "probabilities" FP32 [batch, classes]: Softmax(X·W + B) over axis 1;
//   - "label" INT64 [batch]: the index of the largest probability in each row
//     (ArgMax, keepdims=0; ties go to the first index).
//
// features = len(w) and classes = len(w[i]) = len(b); it fails if w is empty
// or ragged or if len(b) != classes.
func Classifier(w [][]float32, b []float32) ([]byte, error) {
	const logits = "classifier.logits"
	g, err := linearGraph(ClassifierInput, logits, w, b)
	if err != nil {
		return nil, fmt.Errorf("build classifier model: %w", err)
	}
	classes := int64(len(b))
	g.Node = append(g.Node,
		&onnx.NodeProto{
			Name: "softmax", OpType: "Softmax",
			Input: []string{logits}, Output: []string{ClassifierProbabilities},
			Attribute: []*onnx.AttributeProto{onnx.IntAttr("axis", 1)},
		},
		&onnx.NodeProto{
			Name: "argmax", OpType: "ArgMax",
			Input: []string{ClassifierProbabilities}, Output: []string{ClassifierLabel},
			Attribute: []*onnx.AttributeProto{onnx.IntAttr("axis", 1), onnx.IntAttr("keepdims", 0)},
		},
	)
	g.Name = "classifier"
	g.Output = []*onnx.ValueInfoProto{
		onnx.TensorValueInfo(ClassifierLabel, onnx.TensorProto_INT64, []int64{-1}),
		onnx.TensorValueInfo(ClassifierProbabilities, onnx.TensorProto_FLOAT, []int64{-1, classes}),
	}
	return marshal(g)
}

// Big returns a Linear model from BigInput FP32 [batch, inDim] to BigOutput
// FP32 [batch, outDim] whose weights are BigWeights(inDim, outDim, seed).
// The weights take 4·inDim·outDim bytes, so Big(1000, 1000, seed) is about
// 4 MB. The same arguments always give the same bytes.
func Big(inDim, outDim int, seed int64) ([]byte, error) {
	if inDim <= 0 || outDim <= 0 {
		return nil, fmt.Errorf("build big model: dimensions must be > 0, got %dx%d", inDim, outDim)
	}
	w, b := BigWeights(inDim, outDim, seed)
	return Linear(BigInput, BigOutput, w, b)
}

// BigWeights returns the weights Big(inDim, outDim, seed) uses: W is inDim
// rows of outDim values and B has outDim values, all drawn uniformly from
// [-1/√inDim, 1/√inDim) by a PCG generator seeded with seed, so outputs stay
// of the order of the inputs. It returns nil slices for non-positive
// dimensions.
func BigWeights(inDim, outDim int, seed int64) (w [][]float32, b []float32) {
	if inDim <= 0 || outDim <= 0 {
		return nil, nil
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x64726f766572)) // "drover"
	scale := 1 / math.Sqrt(float64(inDim))
	draw := func() float32 { return float32((2*r.Float64() - 1) * scale) }
	flat := make([]float32, inDim*outDim)
	w = make([][]float32, inDim)
	for i := range w {
		w[i] = flat[i*outDim : (i+1)*outDim : (i+1)*outDim]
		for j := range w[i] {
			w[i][j] = draw()
		}
	}
	b = make([]float32, outDim)
	for j := range b {
		b[j] = draw()
	}
	return w, b
}

// datatypes maps the Open Inference Protocol's tensor datatypes to ONNX's.
var datatypes = map[string]onnx.TensorProto_DataType{
	"BOOL":   onnx.TensorProto_BOOL,
	"UINT8":  onnx.TensorProto_UINT8,
	"UINT16": onnx.TensorProto_UINT16,
	"UINT32": onnx.TensorProto_UINT32,
	"UINT64": onnx.TensorProto_UINT64,
	"INT8":   onnx.TensorProto_INT8,
	"INT16":  onnx.TensorProto_INT16,
	"INT32":  onnx.TensorProto_INT32,
	"INT64":  onnx.TensorProto_INT64,
	"FP16":   onnx.TensorProto_FLOAT16,
	"FP32":   onnx.TensorProto_FLOAT,
	"FP64":   onnx.TensorProto_DOUBLE,
	"BYTES":  onnx.TensorProto_STRING,
}

// Datatypes returns the Open Inference Protocol datatypes Identity accepts,
// in a fixed order: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32,
// INT64, FP16, FP32, FP64, BYTES. The caller owns the returned slice.
func Datatypes() []string {
	return []string{"BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
		"INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}
}

// Identity returns a model with one input, name, and one output,
// name+"_out", that returns its input unchanged. datatype is an Open
// Inference Protocol datatype (see Datatypes; BYTES is an ONNX string
// tensor) and shape the shape of both, where a negative dimension is
// dynamic: the first is named "batch", the others "dim<i>" with i their
// index. An empty shape declares a scalar. It fails for an unknown datatype
// or an empty name.
func Identity(name string, datatype string, shape []int64) ([]byte, error) {
	dt, ok := datatypes[datatype]
	if !ok {
		return nil, fmt.Errorf("build identity model: unsupported datatype %q (want one of %v)", datatype, Datatypes())
	}
	if name == "" {
		return nil, errors.New("build identity model: empty input name")
	}
	out := name + "_out"
	return marshal(&onnx.GraphProto{
		Name: "identity",
		Node: []*onnx.NodeProto{{
			Name: "identity", OpType: "Identity",
			Input: []string{name}, Output: []string{out},
		}},
		Input:  []*onnx.ValueInfoProto{onnx.TensorValueInfo(name, dt, shape)},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo(out, dt, shape)},
	})
}

// Chain returns a model of n MatMuls by the dim×dim identity matrix, one
// after the other, from BigInput FP32 [batch, dim] to BigOutput: its
// output equals its input, and its run time grows with n and the batch.
// ONNX Runtime looks at a run's terminate flag between nodes, and a chain
// cannot be fused into one, so a long run of it can be stopped.
func Chain(dim, n int) ([]byte, error) {
	if dim <= 0 || n <= 0 {
		return nil, fmt.Errorf("build chain model: dim and n must be > 0, got %d, %d", dim, n)
	}
	w := make([]float32, dim*dim)
	for i := range dim {
		w[i*dim+i] = 1
	}
	g := &onnx.GraphProto{
		Name:        "chain",
		Initializer: []*onnx.TensorProto{onnx.FloatTensor("W", []int64{int64(dim), int64(dim)}, w)},
		Input:       []*onnx.ValueInfoProto{onnx.TensorValueInfo(BigInput, onnx.TensorProto_FLOAT, []int64{-1, int64(dim)})},
		Output:      []*onnx.ValueInfoProto{onnx.TensorValueInfo(BigOutput, onnx.TensorProto_FLOAT, []int64{-1, int64(dim)})},
	}
	prev := BigInput
	for i := range n {
		out := fmt.Sprintf("h%d", i)
		if i == n-1 {
			out = BigOutput
		}
		g.Node = append(g.Node, &onnx.NodeProto{Name: out, OpType: "MatMul", Input: []string{prev, "W"}, Output: []string{out}})
		prev = out
	}
	return marshal(g)
}

// ReshapeByInput returns a model that reshapes its input ReshapeData
// (FP32 [batch, 4]) to the shape held by its input ReshapeShape (INT64 [2])
// and returns it as ReshapeOutput. Reshape's allowzero is set, so a 0 in
// the shape means an empty dimension: zero-filled inputs ([1, 4] to
// [0, 0]) fail at run time, as a model whose inputs carry a shape, a
// divisor or a scale fails on zeros, while x [1, 4] with shape [2, 2]
// answers the same four values as [2, 2]. It imports operator set
// ReshapeOpset.
func ReshapeByInput() ([]byte, error) {
	g := &onnx.GraphProto{
		Name: "reshape_by_input",
		Node: []*onnx.NodeProto{
			onnx.Node("reshape", "Reshape", []string{ReshapeData, ReshapeShape}, []string{ReshapeOutput}, onnx.IntAttr("allowzero", 1)),
		},
		Input: []*onnx.ValueInfoProto{
			onnx.TensorValueInfo(ReshapeData, onnx.TensorProto_FLOAT, []int64{-1, 4}),
			onnx.TensorValueInfo(ReshapeShape, onnx.TensorProto_INT64, []int64{2}),
		},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo(ReshapeOutput, onnx.TensorProto_FLOAT, []int64{-1, -1})},
	}
	return onnx.Marshal(onnx.NewModel(g, IRVersion, ProducerName, onnx.Opset("", ReshapeOpset)))
}

// WriteVersion publishes onnx as version version of model in the model
// store at root, following the store's contract: it writes
// <root>/<model>/.tmp-<version>-<random>/model.onnx, syncs it, and renames
// the directory to <root>/<model>/<version> in one atomic step, creating
// <root>/<model> if needed. It returns the published directory.
//
// It fails, leaving no temporary directory behind, if the version
// directory already exists or model is not a single path element. It does
// not check that model and version are ones the agent accepts
// (manifest.ValidName, version > 0), so tests can also publish entries the
// agent must ignore.
func WriteVersion(root, model string, version int64, onnx []byte) (dir string, err error) {
	if model == "" || model == "." || filepath.Base(model) != model || !filepath.IsLocal(model) {
		return "", fmt.Errorf("write %s v%d: model name must be a single path element", model, version)
	}
	modelDir := filepath.Join(root, model)
	v := strconv.FormatInt(version, 10)
	dir = filepath.Join(modelDir, v)
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return "", fmt.Errorf("write %s v%d: %w", model, version, err)
	}
	tmp, err := os.MkdirTemp(modelDir, ".tmp-"+v+"-")
	if err != nil {
		return "", fmt.Errorf("write %s v%d: %w", model, version, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("write %s v%d: %w", model, version, err)
	}
	if err := writeSynced(filepath.Join(tmp, manifest.ModelFile), onnx); err != nil {
		return "", fmt.Errorf("write %s v%d: %w", model, version, err)
	}
	// rename(2) would replace an empty directory; refuse to, as a publisher
	// never overwrites a published version.
	if _, err := os.Lstat(dir); err == nil {
		return "", fmt.Errorf("write %s v%d: %s: %w", model, version, dir, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("write %s v%d: %w", model, version, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("write %s v%d: publish: %w", model, version, err)
	}
	if err := durable.SyncDir(modelDir); err != nil {
		return dir, fmt.Errorf("write %s v%d: published, but %w", model, version, err)
	}
	return dir, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// linearGraph returns a graph computing output = input·W + B, with input
// FP32 [batch, len(w)] and output FP32 [batch, len(b)].
func linearGraph(input, output string, w [][]float32, b []float32) (*onnx.GraphProto, error) {
	const (
		wName  = "linear.W"
		bName  = "linear.B"
		xwName = "linear.XW"
	)
	if input == "" || output == "" {
		return nil, errors.New("empty input or output name")
	}
	if input == output {
		return nil, fmt.Errorf("input and output are both named %q", input)
	}
	for _, n := range []string{input, output} {
		if n == wName || n == bName || n == xwName {
			return nil, fmt.Errorf("name %q is reserved", n)
		}
	}
	if len(w) == 0 || len(w[0]) == 0 {
		return nil, errors.New("w must have at least one row and one column")
	}
	in, out := len(w), len(w[0])
	flat := make([]float32, 0, in*out)
	for i, row := range w {
		if len(row) != out {
			return nil, fmt.Errorf("w row %d has %d values, row 0 has %d", i, len(row), out)
		}
		flat = append(flat, row...)
	}
	if len(b) != out {
		return nil, fmt.Errorf("b has %d values, w has %d columns", len(b), out)
	}
	return &onnx.GraphProto{
		Name: "linear",
		Node: []*onnx.NodeProto{
			{Name: "matmul", OpType: "MatMul", Input: []string{input, wName}, Output: []string{xwName}},
			{Name: "add", OpType: "Add", Input: []string{xwName, bName}, Output: []string{output}},
		},
		Initializer: []*onnx.TensorProto{
			onnx.FloatTensor(wName, []int64{int64(in), int64(out)}, flat),
			onnx.FloatTensor(bName, []int64{int64(out)}, b),
		},
		Input:  []*onnx.ValueInfoProto{onnx.TensorValueInfo(input, onnx.TensorProto_FLOAT, []int64{-1, int64(in)})},
		Output: []*onnx.ValueInfoProto{onnx.TensorValueInfo(output, onnx.TensorProto_FLOAT, []int64{-1, int64(out)})},
	}, nil
}

// marshal wraps g in a ModelProto and serializes it deterministically.
func marshal(g *onnx.GraphProto) ([]byte, error) {
	return onnx.Marshal(onnx.NewModel(g, IRVersion, ProducerName, onnx.Opset("", Opset)))
}
