// Package oip is the data model of the Open Inference Protocol v2 (the
// KServe/Triton protocol) as Drover uses it: tensors, infer requests and
// responses, independent of the wire (REST JSON, Triton's binary tensor
// extension, gRPC). The codecs for each wire live beside these types.
package oip

import (
	"fmt"
	"math"
)

// Datatype is an OIP tensor datatype name.
type Datatype string

// The OIP datatypes.
const (
	BOOL   Datatype = "BOOL"
	UINT8  Datatype = "UINT8"
	UINT16 Datatype = "UINT16"
	UINT32 Datatype = "UINT32"
	UINT64 Datatype = "UINT64"
	INT8   Datatype = "INT8"
	INT16  Datatype = "INT16"
	INT32  Datatype = "INT32"
	INT64  Datatype = "INT64"
	FP16   Datatype = "FP16"
	FP32   Datatype = "FP32"
	FP64   Datatype = "FP64"
	BYTES  Datatype = "BYTES"
)

// Datatypes lists every datatype in a fixed order.
var Datatypes = []Datatype{BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES}

// Size returns the size in bytes of one element, or 0 for BYTES (variable)
// and for unknown datatypes.
func (d Datatype) Size() int {
	switch d {
	case BOOL, UINT8, INT8:
		return 1
	case UINT16, INT16, FP16:
		return 2
	case UINT32, INT32, FP32:
		return 4
	case UINT64, INT64, FP64:
		return 8
	}
	return 0
}

// Valid reports whether d is an OIP datatype.
func (d Datatype) Valid() bool {
	for _, x := range Datatypes {
		if d == x {
			return true
		}
	}
	return false
}

// Tensor is one named tensor of a request or a response.
//
// Data holds the elements in row-major order as a typed slice:
// BOOL []bool, UINT8 []uint8, UINT16 []uint16, UINT32 []uint32,
// UINT64 []uint64, INT8 []int8, INT16 []int16, INT32 []int32, INT64 []int64,
// FP16 []uint16 (IEEE 754 half-precision bit patterns), FP32 []float32,
// FP64 []float64, BYTES [][]byte.
type Tensor struct {
	Name       string
	Datatype   Datatype
	Shape      []int64
	Parameters map[string]any
	Data       any
}

// RequestedOutput names an output the client wants, with its parameters
// (e.g. "binary_data": true in Triton's binary extension).
type RequestedOutput struct {
	Name       string
	Parameters map[string]any
}

// InferRequest is an inference request.
type InferRequest struct {
	ID         string
	Parameters map[string]any
	Inputs     []Tensor
	Outputs    []RequestedOutput
}

// InferResponse is an inference response.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   map[string]any
	Outputs      []Tensor
}

// TensorMetadata describes an input or output in model metadata; -1 in
// Shape marks a dynamic dimension.
type TensorMetadata struct {
	Name     string   `json:"name"`
	Datatype Datatype `json:"datatype"`
	Shape    []int64  `json:"shape"`
}

// ModelMetadata is the model metadata response.
type ModelMetadata struct {
	Name       string            `json:"name"`
	Versions   []string          `json:"versions,omitempty"`
	Platform   string            `json:"platform"`
	Inputs     []TensorMetadata  `json:"inputs"`
	Outputs    []TensorMetadata  `json:"outputs"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// NumElements returns the product of shape, or an error if a dimension is
// negative or the product overflows.
func NumElements(shape []int64) (int, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape[%d] is %d; dimensions must be >= 0", i, d)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return int(n), nil
}

// Len returns the number of elements in a typed data slice, or -1 if data
// is not one of the slice types Tensor.Data allows.
func Len(data any) int {
	switch v := data.(type) {
	case []bool:
		return len(v)
	case []uint8:
		return len(v)
	case []uint16:
		return len(v)
	case []uint32:
		return len(v)
	case []uint64:
		return len(v)
	case []int8:
		return len(v)
	case []int16:
		return len(v)
	case []int32:
		return len(v)
	case []int64:
		return len(v)
	case []float32:
		return len(v)
	case []float64:
		return len(v)
	case [][]byte:
		return len(v)
	}
	return -1
}

// dataMatches reports whether data's Go type is the one d uses.
func dataMatches(d Datatype, data any) bool {
	switch data.(type) {
	case []bool:
		return d == BOOL
	case []uint8:
		return d == UINT8
	case []uint16:
		return d == UINT16 || d == FP16
	case []uint32:
		return d == UINT32
	case []uint64:
		return d == UINT64
	case []int8:
		return d == INT8
	case []int16:
		return d == INT16
	case []int32:
		return d == INT32
	case []int64:
		return d == INT64
	case []float32:
		return d == FP32
	case []float64:
		return d == FP64
	case [][]byte:
		return d == BYTES
	}
	return false
}

// Validate checks that the tensor has a name, a known datatype, a valid
// shape, and data of the datatype's Go type with as many elements as the
// shape says. Errors name the tensor.
func (t *Tensor) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("tensor has no name")
	}
	if !t.Datatype.Valid() {
		return fmt.Errorf("tensor %q: unknown datatype %q", t.Name, t.Datatype)
	}
	n, err := NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if !dataMatches(t.Datatype, t.Data) {
		return fmt.Errorf("tensor %q: data of type %T does not hold %s", t.Name, t.Data, t.Datatype)
	}
	if got := Len(t.Data); got != n {
		return fmt.Errorf("tensor %q: shape %v needs %d elements, got %d", t.Name, t.Shape, n, got)
	}
	return nil
}

// MakeData returns a zeroed data slice of datatype d with n elements.
func MakeData(d Datatype, n int) (any, error) {
	switch d {
	case BOOL:
		return make([]bool, n), nil
	case UINT8:
		return make([]uint8, n), nil
	case UINT16, FP16:
		return make([]uint16, n), nil
	case UINT32:
		return make([]uint32, n), nil
	case UINT64:
		return make([]uint64, n), nil
	case INT8:
		return make([]int8, n), nil
	case INT16:
		return make([]int16, n), nil
	case INT32:
		return make([]int32, n), nil
	case INT64:
		return make([]int64, n), nil
	case FP32:
		return make([]float32, n), nil
	case FP64:
		return make([]float64, n), nil
	case BYTES:
		return make([][]byte, n), nil
	}
	return nil, fmt.Errorf("unknown datatype %q", d)
}
