package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"
)

// BatchDim names the dynamic first dimension TensorValueInfo declares.
const BatchDim = "batch"

// NewModel wraps g in a ModelProto declaring IR version irVersion, the
// producer name producer and the operator sets opsets (see Opset).
func NewModel(g *GraphProto, irVersion int64, producer string, opsets ...*OperatorSetIdProto) *ModelProto {
	return &ModelProto{
		IrVersion:    irVersion,
		OpsetImport:  opsets,
		ProducerName: producer,
		Graph:        g,
	}
}

// Opset imports version version of the operator set domain ("" is the
// default "ai.onnx" set, "ai.onnx.ml" the classical machine-learning one).
func Opset(domain string, version int64) *OperatorSetIdProto {
	return &OperatorSetIdProto{Domain: domain, Version: version}
}

// Marshal serializes m deterministically: the same model always gives the
// same bytes, so content digests of built models are stable.
func Marshal(m *ModelProto) ([]byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s model: %w", m.GetGraph().GetName(), err)
	}
	return data, nil
}

// ErrNotModel is returned (wrapped) by Unmarshal for bytes that are not an
// ONNX model.
var ErrNotModel = errors.New("not an ONNX model")

// Unmarshal parses an ONNX model. It fails with an error wrapping
// ErrNotModel if data does not decode as a ModelProto, or decodes to one
// without an IR version, a graph, or any graph output (protobuf decodes
// many byte strings into some message, so these are checked too).
func Unmarshal(data []byte) (*ModelProto, error) {
	var m ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotModel, err)
	}
	switch {
	case m.GetIrVersion() <= 0:
		return nil, fmt.Errorf("%w: no IR version", ErrNotModel)
	case m.GetGraph() == nil:
		return nil, fmt.Errorf("%w: no graph", ErrNotModel)
	case len(m.GetGraph().GetOutput()) == 0:
		return nil, fmt.Errorf("%w: graph has no outputs", ErrNotModel)
	}
	return &m, nil
}

// OpsetVersion returns the version of operator set domain that m imports,
// and false if it imports none.
func OpsetVersion(m *ModelProto, domain string) (int64, bool) {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == domain || (domain == "ai.onnx" && o.GetDomain() == "") || (domain == "" && o.GetDomain() == "ai.onnx") {
			return o.GetVersion(), true
		}
	}
	return 0, false
}

// TensorValueInfo declares a tensor named name of element type dt and the
// given shape. A negative dimension is dynamic: the first is named BatchDim,
// the others "dim<i>" with i their index. An empty shape declares a scalar.
func TensorValueInfo(name string, dt TensorProto_DataType, shape []int64) *ValueInfoProto {
	dims := make([]*TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		switch {
		case d >= 0:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: d}}
		case i == 0:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: BatchDim}}
		default:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: "dim" + strconv.Itoa(i)}}
		}
	}
	return &ValueInfoProto{
		Name: name,
		Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{
			ElemType: int32(dt),
			Shape:    &TensorShapeProto{Dim: dims},
		}}},
	}
}

// FloatTensor returns an FP32 tensor (an initializer or a constant's value)
// with its values in raw_data, little-endian IEEE 754 as the ONNX spec
// requires. It does not check that dims multiply to len(values).
func FloatTensor(name string, dims []int64, values []float32) *TensorProto {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &TensorProto{Name: name, Dims: dims, DataType: int32(TensorProto_FLOAT), RawData: raw}
}

// Int64Tensor returns an INT64 tensor with its values in raw_data.
func Int64Tensor(name string, dims []int64, values []int64) *TensorProto {
	raw := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &TensorProto{Name: name, Dims: dims, DataType: int32(TensorProto_INT64), RawData: raw}
}

// Node returns a node of operator opType in the default operator set.
func Node(name, opType string, inputs, outputs []string, attrs ...*AttributeProto) *NodeProto {
	return &NodeProto{Name: name, OpType: opType, Input: inputs, Output: outputs, Attribute: attrs}
}

// IntAttr returns an INT attribute.
func IntAttr(name string, v int64) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_INT, I: v}
}

// FloatAttr returns a FLOAT attribute.
func FloatAttr(name string, v float32) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_FLOAT, F: v}
}

// IntsAttr returns an INTS attribute.
func IntsAttr(name string, v ...int64) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_INTS, Ints: v}
}

// StringsAttr returns a STRINGS attribute.
func StringsAttr(name string, v ...string) *AttributeProto {
	s := make([][]byte, len(v))
	for i, x := range v {
		s[i] = []byte(x)
	}
	return &AttributeProto{Name: name, Type: AttributeProto_STRINGS, Strings: s}
}

// TensorAttr returns a TENSOR attribute (a Constant's value).
func TensorAttr(name string, t *TensorProto) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_TENSOR, T: t}
}

// StringTensor returns a STRING tensor (string_data).
func StringTensor(name string, dims []int64, values []string) *TensorProto {
	s := make([][]byte, len(values))
	for i, v := range values {
		s[i] = []byte(v)
	}
	return &TensorProto{Name: name, Dims: dims, DataType: int32(TensorProto_STRING), StringData: s}
}

// Constant returns a Constant node producing t as output.
func Constant(output string, t *TensorProto) *NodeProto {
	return Node(output, "Constant", nil, []string{output}, TensorAttr("value", t))
}

// TensorElemType returns the element type of a tensor-typed value, and
// false for other types (sequences, maps) or none.
func TensorElemType(v *ValueInfoProto) (TensorProto_DataType, bool) {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return TensorProto_UNDEFINED, false
	}
	return TensorProto_DataType(tt.GetElemType()), true
}

// TensorRank returns the rank of a tensor-typed value, and false if the
// value has no tensor type or no shape.
func TensorRank(v *ValueInfoProto) (int, bool) {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return 0, false
	}
	return len(tt.GetShape().GetDim()), true
}

// oipDatatypes maps ONNX tensor element types to Open Inference Protocol
// datatypes.
var oipDatatypes = map[TensorProto_DataType]string{
	TensorProto_BOOL: "BOOL", TensorProto_UINT8: "UINT8", TensorProto_UINT16: "UINT16",
	TensorProto_UINT32: "UINT32", TensorProto_UINT64: "UINT64", TensorProto_INT8: "INT8",
	TensorProto_INT16: "INT16", TensorProto_INT32: "INT32", TensorProto_INT64: "INT64",
	TensorProto_FLOAT16: "FP16", TensorProto_FLOAT: "FP32", TensorProto_DOUBLE: "FP64",
	TensorProto_STRING: "BYTES",
}

// OIPDatatype returns the Open Inference Protocol datatype of an ONNX
// tensor element type (STRING is BYTES), and false for types OIP lacks.
func OIPDatatype(dt TensorProto_DataType) (string, bool) {
	s, ok := oipDatatypes[dt]
	return s, ok
}

// TensorShape returns a tensor-typed value's shape with -1 for every
// dimension that has no fixed size, and false if it has no tensor type or
// no shape.
func TensorShape(v *ValueInfoProto) ([]int64, bool) {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return nil, false
	}
	dims := tt.GetShape().GetDim()
	shape := make([]int64, len(dims))
	for i, d := range dims {
		if dv, ok := d.GetValue().(*TensorShapeProto_Dimension_DimValue); ok {
			shape[i] = dv.DimValue
		} else {
			shape[i] = -1
		}
	}
	return shape, true
}
