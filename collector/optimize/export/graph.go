package export

import (
	"github.com/drover-ml/drover/shared/onnx"
)

// MLDomain is the classical machine-learning operator set (Scaler,
// LinearClassifier, TreeEnsembleClassifier, ZipMap, ...).
const MLDomain = "ai.onnx.ml"

// MLNode returns a node of operator opType in the ai.onnx.ml domain.
func MLNode(name, opType string, inputs, outputs []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	n := onnx.Node(name, opType, inputs, outputs, attrs...)
	n.Domain = MLDomain
	return n
}

// FloatsAttr returns a FLOATS attribute of v rounded to float32.
func FloatsAttr(name string, v []float64) *onnx.AttributeProto {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOATS, Floats: f}
}

// StringAttr returns a STRING attribute.
func StringAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_STRING, S: []byte(v)}
}

// ClassLabelsAttr returns the classlabels_ints or classlabels_strings
// attribute of a classifier node for sig's class labels (prefix
// "classlabels_"), and the number of classes.
func ClassLabelsAttr(sig *Signature) (*onnx.AttributeProto, int) {
	if len(sig.ClassStrings) > 0 {
		return onnx.StringsAttr("classlabels_strings", sig.ClassStrings...), len(sig.ClassStrings)
	}
	return onnx.IntsAttr("classlabels_ints", sig.ClassInts...), len(sig.ClassInts)
}

// Classes returns the number of class labels sig declares.
func (s *Signature) Classes() int {
	if len(s.ClassStrings) > 0 {
		return len(s.ClassStrings)
	}
	return len(s.ClassInts)
}
