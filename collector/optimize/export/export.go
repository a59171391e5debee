// Package export writes the optimizer's trained models as ONNX graphs with
// the ai.onnx.ml operators skl2onnx emits, keeping the serving version's
// signature (input and output names, element types, shapes, class labels,
// ZipMap) so clients see no change; it also reads that signature from a
// serving version's graph and detects its model family.
package export

import (
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// Signature is what an exported graph must keep from the serving version.
type Signature struct {
	// Input is the name of the one input tensor, [N, Features], of element
	// type InputType (FLOAT or DOUBLE).
	Input     string
	InputType onnx.TensorProto_DataType
	Features  int

	Task learn.Task

	// Classification. Exactly one of ClassInts and ClassStrings is set:
	// the class labels in the order of the learn.Dataset's class indices.
	LabelOutput  string
	ClassInts    []int64
	ClassStrings []string
	// LabelType is the label output's element type (INT64 or STRING as
	// skl2onnx writes; another integer type gets a Cast) and LabelRank
	// its rank, 1 ([N]) or 2 ([N, 1]). Zero values mean INT64 (STRING
	// when ClassStrings is set) and 1.
	LabelType onnx.TensorProto_DataType
	LabelRank int
	// ProbOutput is the probabilities output; ZipMap says it is a
	// sequence of maps from class label to probability (skl2onnx's
	// default) rather than a [N, K] float tensor. Empty: the serving
	// version has no probabilities output.
	ProbOutput string
	ZipMap     bool
	// ProbType is the element type of a tensor (non-ZipMap) probability
	// output, FLOAT or DOUBLE; zero means FLOAT.
	ProbType onnx.TensorProto_DataType

	// Regression: the value output, of element type ValueType, shape
	// [N, 1] (ValueRank 2) or [N] (ValueRank 1).
	ValueOutput string
	ValueType   onnx.TensorProto_DataType
	ValueRank   int

	// The serving graph's IR version and opset versions of ai.onnx and
	// ai.onnx.ml, which the export keeps when they are new enough.
	IRVersion      int64
	OpsetVersion   int64
	MLOpsetVersion int64

	// Outputs are the serving graph's output declarations, in its order,
	// as ReadSignature found them; Build copies them verbatim (names,
	// types, shapes with their dimension names) when set.
	Outputs []*onnx.ValueInfoProto
	// InputInfo is the serving graph's input declaration, copied by Build
	// when set.
	InputInfo *onnx.ValueInfoProto
}

// Core is what a trained model contributes to an exported graph: nodes and
// initializers that read the FLOAT tensor In ([N, Features]; Build inserts
// a Cast first when the serving input is DOUBLE) and write, for a
// classifier, Label (the class label, of the signature's label type, from
// the node's classlabels_ints or classlabels_strings) and Probs ([N, K]
// FLOAT, columns in class-index order); for a regressor, Value ([N, 1]
// FLOAT). Build adds the ZipMap, casts, reshapes and output names the
// signature asks for.
type Core struct {
	Nodes        []*onnx.NodeProto
	Initializers []*onnx.TensorProto
	Label        string
	Probs        string
	Value        string
	// MLOpset is the lowest ai.onnx.ml opset version the nodes need (0
	// means 1); Build imports at least it.
	MLOpset int64
}

// Exportable is a learn.Model that can be written as ONNX. Every model the
// learn families return implements it.
type Exportable interface {
	learn.Model
	// ExportCore returns the model's nodes reading the FLOAT input in, for
	// the signature sig. Node and tensor names it creates start with
	// prefix, so cores never collide with the names Build adds.
	ExportCore(in, prefix string, sig *Signature) (Core, error)
}
