package oip

import (
	"errors"
	"fmt"
	"math"

	"github.com/drover-ml/drover/shared/oip/inferencepb"
)

// The gRPC codec: conversion between the OIP v2 gRPC messages of package
// inferencepb and this package's types. It sits on the inference path, so it
// copies as little as it can: typed contents whose Go type already matches
// Tensor.Data (bool, int32, int64, uint32, uint64, float32, float64, bytes)
// are shared rather than copied, raw contents are decoded with one copy, and
// only narrowing conversions (INT8, INT16, UINT8, UINT16) allocate a new
// slice.

// RequestFromProto converts a ModelInferRequest into an InferRequest.
//
// Input data comes either from every input's typed contents or, when
// raw_input_contents is set, from raw contents for every input (one entry per
// input, in order, and then no input may carry typed contents). FP16 has no
// typed field in the protocol, so an FP16 input must come raw. Typed values
// are range checked when narrowed (INT8, INT16, UINT8, UINT16), the element
// count must match the shape, and input names must be present and unique.
// On success every input passes Tensor.Validate.
//
// The result shares slices with m (typed contents and shapes), so m must not
// be modified while the result is in use; raw contents are copied. Errors
// describe bad client data, name the offending tensor, and are never worth
// retrying; a server reports them as InvalidArgument. m.ModelName and
// m.ModelVersion are not part of InferRequest; the caller routes on them.
func RequestFromProto(m *inferencepb.ModelInferRequest) (*InferRequest, error) {
	if m == nil {
		return nil, errors.New("infer request is nil")
	}
	params, err := paramsFromProto(m.Parameters)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	req := &InferRequest{ID: m.Id, Parameters: params}

	raw := m.RawInputContents
	if len(raw) > 0 && len(raw) != len(m.Inputs) {
		return nil, fmt.Errorf("raw_input_contents has %d entries for %d inputs; it must have one per input", len(raw), len(m.Inputs))
	}
	if len(m.Inputs) > 0 {
		req.Inputs = make([]Tensor, len(m.Inputs))
	}
	for i, in := range m.Inputs {
		if in == nil || in.Name == "" {
			return nil, fmt.Errorf("input %d has no name", i)
		}
		if dupName(m.Inputs[:i], in.Name) {
			return nil, fmt.Errorf("duplicate input %q", in.Name)
		}
		t := &req.Inputs[i]
		t.Name = in.Name
		t.Datatype = Datatype(in.Datatype)
		t.Shape = in.Shape
		if !t.Datatype.Valid() {
			return nil, fmt.Errorf("input %q: unknown datatype %q", in.Name, in.Datatype)
		}
		n, err := NumElements(in.Shape)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		if t.Parameters, err = paramsFromProto(in.Parameters); err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		if len(raw) > 0 {
			if contentsLen(in.Contents) > 0 {
				return nil, fmt.Errorf("input %q: has typed contents although raw_input_contents is used; the protocol allows one or the other", in.Name)
			}
			if t.Data, err = DecodeRaw(t.Datatype, in.Shape, raw[i]); err != nil {
				return nil, fmt.Errorf("input %q: raw_input_contents[%d]: %w", in.Name, i, err)
			}
			continue
		}
		if t.Data, err = typedFromProto(t.Datatype, in.Shape, n, in.Contents); err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
	}

	if len(m.Outputs) > 0 {
		req.Outputs = make([]RequestedOutput, len(m.Outputs))
	}
	for i, out := range m.Outputs {
		if out == nil || out.Name == "" {
			return nil, fmt.Errorf("requested output %d has no name", i)
		}
		for _, prev := range m.Outputs[:i] {
			if prev.Name == out.Name {
				return nil, fmt.Errorf("duplicate requested output %q", out.Name)
			}
		}
		req.Outputs[i].Name = out.Name
		if req.Outputs[i].Parameters, err = paramsFromProto(out.Parameters); err != nil {
			return nil, fmt.Errorf("requested output %q: %w", out.Name, err)
		}
	}
	return req, nil
}

// dupName reports whether name is among the names of prev. A linear scan
// beats a map for the handful of inputs a model has, and allocates nothing.
func dupName(prev []*inferencepb.ModelInferRequest_InferInputTensor, name string) bool {
	for _, p := range prev {
		if p.Name == name {
			return true
		}
	}
	return false
}

// contentField is one repeated field of InferTensorContents, by name.
type contentField struct {
	name string
	n    int
}

func contentFields(c *inferencepb.InferTensorContents) [8]contentField {
	return [8]contentField{
		{"bool_contents", len(c.GetBoolContents())},
		{"int_contents", len(c.GetIntContents())},
		{"int64_contents", len(c.GetInt64Contents())},
		{"uint_contents", len(c.GetUintContents())},
		{"uint64_contents", len(c.GetUint64Contents())},
		{"fp32_contents", len(c.GetFp32Contents())},
		{"fp64_contents", len(c.GetFp64Contents())},
		{"bytes_contents", len(c.GetBytesContents())},
	}
}

// contentsLen returns the number of values in all of c's fields.
func contentsLen(c *inferencepb.InferTensorContents) int {
	total := 0
	for _, f := range contentFields(c) {
		total += f.n
	}
	return total
}

// typedField returns the InferTensorContents field that carries d, or "" for
// FP16, which has none.
func typedField(d Datatype) string {
	switch d {
	case BOOL:
		return "bool_contents"
	case INT8, INT16, INT32:
		return "int_contents"
	case INT64:
		return "int64_contents"
	case UINT8, UINT16, UINT32:
		return "uint_contents"
	case UINT64:
		return "uint64_contents"
	case FP32:
		return "fp32_contents"
	case FP64:
		return "fp64_contents"
	case BYTES:
		return "bytes_contents"
	}
	return ""
}

// typedFromProto takes the n elements of a d tensor from its typed contents.
func typedFromProto(d Datatype, shape []int64, n int, c *inferencepb.InferTensorContents) (any, error) {
	want := typedField(d)
	if want == "" {
		return nil, fmt.Errorf("%s data must be sent in raw_input_contents; the protocol has no typed contents field for it", d)
	}
	got := 0
	for _, f := range contentFields(c) {
		if f.n == 0 {
			continue
		}
		if f.name != want {
			return nil, fmt.Errorf("%s data belongs in %s, but %s is set", d, want, f.name)
		}
		got = f.n
	}
	if got != n {
		return nil, fmt.Errorf("shape %v needs %d elements, %s has %d", shape, n, want, got)
	}
	switch d {
	case BOOL:
		return nonNil(c.GetBoolContents()), nil
	case INT8:
		return narrow[int8](c.GetIntContents(), math.MinInt8, math.MaxInt8, d)
	case INT16:
		return narrow[int16](c.GetIntContents(), math.MinInt16, math.MaxInt16, d)
	case INT32:
		return nonNil(c.GetIntContents()), nil
	case INT64:
		return nonNil(c.GetInt64Contents()), nil
	case UINT8:
		return narrow[uint8](c.GetUintContents(), 0, math.MaxUint8, d)
	case UINT16:
		return narrow[uint16](c.GetUintContents(), 0, math.MaxUint16, d)
	case UINT32:
		return nonNil(c.GetUintContents()), nil
	case UINT64:
		return nonNil(c.GetUint64Contents()), nil
	case FP32:
		return nonNil(c.GetFp32Contents()), nil
	case FP64:
		return nonNil(c.GetFp64Contents()), nil
	case BYTES:
		return nonNil(c.GetBytesContents()), nil
	}
	return nil, fmt.Errorf("unknown datatype %q", d)
}

// nonNil returns s, or an empty slice for a nil s, so that empty tensors
// hold a non-nil slice whichever way they arrived.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// narrow converts wire values to a narrower element type, rejecting any
// value outside [lo, hi].
func narrow[T int8 | int16 | uint8 | uint16, W int32 | uint32](src []W, lo, hi int64, d Datatype) ([]T, error) {
	out := make([]T, len(src))
	for i, v := range src {
		if int64(v) < lo || int64(v) > hi {
			return nil, fmt.Errorf("element %d is %d, out of range for %s", i, v, d)
		}
		out[i] = T(v)
	}
	return out, nil
}

// ResponseToProto converts an InferResponse into a ModelInferResponse.
//
// With raw set, every output goes to raw_output_contents. Without it,
// outputs use typed contents, except that FP16 has no typed field: if any
// output is FP16, every output goes raw, because the protocol allows raw
// contents for all outputs or for none. Each output must pass
// Tensor.Validate, and parameters must hold bool, string, signed or unsigned
// integers or floats; otherwise the error names the output or parameter and
// no message is returned.
//
// The message shares memory with r (shapes, typed data and, on
// little-endian machines, the raw bytes of fixed-size numeric data), so r
// must not be modified until the message has been sent.
func ResponseToProto(r *InferResponse, raw bool) (*inferencepb.ModelInferResponse, error) {
	if r == nil {
		return nil, errors.New("infer response is nil")
	}
	params, err := paramsToProto(r.Parameters)
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	m := &inferencepb.ModelInferResponse{
		ModelName:    r.ModelName,
		ModelVersion: r.ModelVersion,
		Id:           r.ID,
		Parameters:   params,
	}
	for i := range r.Outputs {
		t := &r.Outputs[i]
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("output %d: %w", i, err)
		}
		if t.Datatype == FP16 {
			raw = true
		}
	}
	if len(r.Outputs) == 0 {
		return m, nil
	}
	outs := make([]inferencepb.ModelInferResponse_InferOutputTensor, len(r.Outputs))
	m.Outputs = make([]*inferencepb.ModelInferResponse_InferOutputTensor, len(r.Outputs))
	if raw {
		m.RawOutputContents = make([][]byte, len(r.Outputs))
	}
	for i := range r.Outputs {
		t := &r.Outputs[i]
		o := &outs[i]
		m.Outputs[i] = o
		o.Name = t.Name
		o.Datatype = string(t.Datatype)
		o.Shape = t.Shape
		if o.Parameters, err = paramsToProto(t.Parameters); err != nil {
			return nil, fmt.Errorf("output %q: %w", t.Name, err)
		}
		if raw {
			if m.RawOutputContents[i], err = rawOutput(t.Data); err != nil {
				return nil, fmt.Errorf("output %q: %w", t.Name, err)
			}
			continue
		}
		o.Contents = typedToProto(t.Data)
	}
	return m, nil
}

// rawOutput returns data's raw contents, sharing data's memory where the
// in-memory layout already is the wire layout.
func rawOutput(data any) ([]byte, error) {
	switch data.(type) {
	case []bool, [][]byte:
	default:
		if littleEndian {
			if b := rawBytes(data); b != nil {
				return b, nil
			}
			return []byte{}, nil
		}
	}
	return AppendRaw(make([]byte, 0, RawSize(data)), data)
}

// typedToProto puts validated, non-FP16 data into typed contents.
func typedToProto(data any) *inferencepb.InferTensorContents {
	c := &inferencepb.InferTensorContents{}
	switch v := data.(type) {
	case []bool:
		c.BoolContents = v
	case []int8:
		c.IntContents = widen[int32](v)
	case []int16:
		c.IntContents = widen[int32](v)
	case []int32:
		c.IntContents = v
	case []int64:
		c.Int64Contents = v
	case []uint8:
		c.UintContents = widen[uint32](v)
	case []uint16:
		c.UintContents = widen[uint32](v)
	case []uint32:
		c.UintContents = v
	case []uint64:
		c.Uint64Contents = v
	case []float32:
		c.Fp32Contents = v
	case []float64:
		c.Fp64Contents = v
	case [][]byte:
		c.BytesContents = v
	}
	return c
}

func widen[W int32 | uint32, T int8 | int16 | uint8 | uint16](src []T) []W {
	out := make([]W, len(src))
	for i, v := range src {
		out[i] = W(v)
	}
	return out
}

// paramsFromProto converts wire parameters; it returns nil for none.
func paramsFromProto(in map[string]*inferencepb.InferParameter) (map[string]any, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(in))
	for k, p := range in {
		switch v := p.GetParameterChoice().(type) {
		case *inferencepb.InferParameter_BoolParam:
			out[k] = v.BoolParam
		case *inferencepb.InferParameter_Int64Param:
			out[k] = v.Int64Param
		case *inferencepb.InferParameter_StringParam:
			out[k] = v.StringParam
		case *inferencepb.InferParameter_DoubleParam:
			out[k] = v.DoubleParam
		case *inferencepb.InferParameter_Uint64Param:
			out[k] = v.Uint64Param
		default:
			return nil, fmt.Errorf("parameter %q has no value", k)
		}
	}
	return out, nil
}

// paramsToProto converts parameters to the wire; it returns nil for none.
// Signed integers become int64_param, unsigned ones uint64_param, floats
// double_param.
func paramsToProto(in map[string]any) (map[string]*inferencepb.InferParameter, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]*inferencepb.InferParameter, len(in))
	for k, v := range in {
		p := &inferencepb.InferParameter{}
		switch x := v.(type) {
		case bool:
			p.ParameterChoice = &inferencepb.InferParameter_BoolParam{BoolParam: x}
		case string:
			p.ParameterChoice = &inferencepb.InferParameter_StringParam{StringParam: x}
		case int64:
			p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: x}
		case int:
			p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(x)}
		case int32:
			p.ParameterChoice = &inferencepb.InferParameter_Int64Param{Int64Param: int64(x)}
		case uint64:
			p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: x}
		case uint:
			p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: uint64(x)}
		case uint32:
			p.ParameterChoice = &inferencepb.InferParameter_Uint64Param{Uint64Param: uint64(x)}
		case float64:
			p.ParameterChoice = &inferencepb.InferParameter_DoubleParam{DoubleParam: x}
		case float32:
			p.ParameterChoice = &inferencepb.InferParameter_DoubleParam{DoubleParam: float64(x)}
		default:
			return nil, fmt.Errorf("parameter %q: type %T has no InferParameter form", k, v)
		}
		out[k] = p
	}
	return out, nil
}

// ModelMetadataToProto converts model metadata to its wire message. The
// protocol's ModelMetadataResponse has no parameters field, so
// m.Parameters is not carried. The message shares shapes with m. A nil m
// gives an empty message.
func ModelMetadataToProto(m *ModelMetadata) *inferencepb.ModelMetadataResponse {
	if m == nil {
		return &inferencepb.ModelMetadataResponse{}
	}
	return &inferencepb.ModelMetadataResponse{
		Name:     m.Name,
		Versions: m.Versions,
		Platform: m.Platform,
		Inputs:   tensorMetadataToProto(m.Inputs),
		Outputs:  tensorMetadataToProto(m.Outputs),
	}
}

func tensorMetadataToProto(ts []TensorMetadata) []*inferencepb.ModelMetadataResponse_TensorMetadata {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*inferencepb.ModelMetadataResponse_TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.Datatype), Shape: t.Shape}
	}
	return out
}
