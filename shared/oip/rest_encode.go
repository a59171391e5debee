package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Encoding: InferResponse into a REST response body, and the error body
// (the wire format is described in rest.go).

// EncodeRESTResponse encodes resp as the body of an OIP v2 REST infer
// response. An output is sent binary (its raw bytes after the JSON, with a
// "binary_data_size" parameter and no "data") when req asked for it: the
// requested output's "binary_data" parameter if it has one, else the
// request's "binary_data_output" parameter. req may be nil (all JSON).
//
// jsonLen is -1 when no output is binary (send body as application/json),
// else the length of the JSON part (send it as Inference-Header-Content-Length).
// Outputs must pass Tensor.Validate; an error means resp cannot be sent (a
// server error), e.g. a BYTES output that is not valid UTF-8 and was not
// requested binary. The returned body is a new slice owned by the caller.
func EncodeRESTResponse(resp *InferResponse, req *InferRequest) (body []byte, jsonLen int, err error) {
	if resp == nil {
		return nil, 0, errors.New("nil response")
	}
	binaryAll := false
	var requested []RequestedOutput
	if req != nil {
		binaryAll, _ = req.Parameters[paramBinaryDataOutput].(bool)
		requested = req.Outputs
	}
	var byName map[string]*RequestedOutput
	if len(requested) > 8 && len(resp.Outputs) > 1 {
		byName = make(map[string]*RequestedOutput, len(requested))
		for i := range requested {
			byName[requested[i].Name] = &requested[i]
		}
	}
	isBinary := make([]bool, len(resp.Outputs))
	est, binSize := 128+len(resp.ModelName)+len(resp.ID), 0
	for i := range resp.Outputs {
		t := &resp.Outputs[i]
		if err := t.Validate(); err != nil {
			return nil, 0, fmt.Errorf("output %w", err)
		}
		isBinary[i] = binaryAll
		var ro *RequestedOutput
		if byName != nil {
			ro = byName[t.Name]
		} else {
			for j := range requested {
				if requested[j].Name == t.Name {
					ro = &requested[j]
					break
				}
			}
		}
		if ro != nil {
			if b, ok := ro.Parameters[paramBinaryData].(bool); ok {
				isBinary[i] = b
			}
		}
		est += 96 + len(t.Name) + 12*len(t.Shape)
		if isBinary[i] {
			binSize += RawSize(t.Data)
		} else {
			est += jsonSizeEstimate(t)
		}
	}

	buf := make([]byte, 0, est+binSize)
	buf = append(buf, `{"model_name":`...)
	buf = appendJSONString(buf, resp.ModelName)
	if resp.ModelVersion != "" {
		buf = append(buf, `,"model_version":`...)
		buf = appendJSONString(buf, resp.ModelVersion)
	}
	if resp.ID != "" {
		buf = append(buf, `,"id":`...)
		buf = appendJSONString(buf, resp.ID)
	}
	if len(resp.Parameters) > 0 {
		buf = append(buf, `,"parameters":`...)
		if buf, err = appendJSONValue(buf, resp.Parameters); err != nil {
			return nil, 0, fmt.Errorf("response parameters: %w", err)
		}
	}
	buf = append(buf, `,"outputs":[`...)
	anyBinary := false
	for i := range resp.Outputs {
		t := &resp.Outputs[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = appendJSONString(buf, t.Name)
		buf = append(buf, `,"datatype":`...)
		buf = appendJSONString(buf, string(t.Datatype))
		buf = append(buf, `,"shape":[`...)
		for j, dim := range t.Shape {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, dim, 10)
		}
		buf = append(buf, ']')
		params := t.Parameters
		if isBinary[i] {
			anyBinary = true
			if len(t.Parameters) == 0 {
				// What encoding/json writes for the one key, without a
				// map and reflection on every binary response.
				buf = append(buf, `,"parameters":{"`+paramBinaryDataSize+`":`...)
				buf = strconv.AppendInt(buf, int64(RawSize(t.Data)), 10)
				buf = append(buf, '}')
			} else {
				params = make(map[string]any, len(t.Parameters)+1)
				for k, v := range t.Parameters {
					params[k] = v
				}
				params[paramBinaryDataSize] = RawSize(t.Data)
			}
		}
		if len(params) > 0 {
			buf = append(buf, `,"parameters":`...)
			if buf, err = appendJSONValue(buf, params); err != nil {
				return nil, 0, fmt.Errorf("output %q parameters: %w", t.Name, err)
			}
		}
		if !isBinary[i] {
			buf = append(buf, `,"data":`...)
			if buf, err = appendJSONData(buf, t.Datatype, t.Data); err != nil {
				return nil, 0, fmt.Errorf("output %q: %w", t.Name, err)
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	if !anyBinary {
		return buf, -1, nil
	}
	jsonLen = len(buf)
	for i := range resp.Outputs {
		if isBinary[i] {
			if buf, err = AppendRaw(buf, resp.Outputs[i].Data); err != nil {
				return nil, 0, fmt.Errorf("output %q: %w", resp.Outputs[i].Name, err)
			}
		}
	}
	return buf, jsonLen, nil
}

// EncodeError returns the JSON body of an OIP error response,
// {"error": msg}.
func EncodeError(msg string) []byte {
	buf := make([]byte, 0, len(msg)+16)
	buf = append(buf, `{"error":`...)
	buf = appendJSONString(buf, msg)
	return append(buf, '}')
}

// jsonSizeEstimate guesses the JSON size of t's data, to size the buffer.
func jsonSizeEstimate(t *Tensor) int {
	switch v := t.Data.(type) {
	case [][]byte:
		n := 0
		for _, b := range v {
			n += len(b) + 3
		}
		return n
	case []bool:
		return 6 * len(v)
	case []float32, []float64:
		return 16 * Len(v)
	case []uint16:
		if t.Datatype == FP16 {
			return 10 * len(v)
		}
	}
	return (t.Datatype.Size()*3 + 2) * Len(t.Data)
}

// appendJSONValue appends a parameters map (or any value) with
// encoding/json, whose map keys come out sorted.
func appendJSONValue(buf []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

// appendJSONData appends a Tensor.Data slice of datatype d as a flat JSON
// array.
func appendJSONData(buf []byte, d Datatype, data any) ([]byte, error) {
	if h, ok := data.([]uint16); ok && d == FP16 {
		return appendJSONHalfs(buf, h), nil
	}
	buf = append(buf, '[')
	switch v := data.(type) {
	case []bool:
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendBool(buf, x)
		}
	case []uint8:
		buf = appendUints(buf, v)
	case []uint16:
		buf = appendUints(buf, v)
	case []uint32:
		buf = appendUints(buf, v)
	case []uint64:
		buf = appendUints(buf, v)
	case []int8:
		buf = appendInts(buf, v)
	case []int16:
		buf = appendInts(buf, v)
	case []int32:
		buf = appendInts(buf, v)
	case []int64:
		buf = appendInts(buf, v)
	case []float32:
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			if x-x != 0 { // NaN, ±Inf
				buf = appendFloat(buf, float64(x), 32)
				continue
			}
			buf = appendFloat32(buf, x)
		}
	case []float64:
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendFloat(buf, x, 64)
		}
	case [][]byte:
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			if !utf8.Valid(x) {
				return nil, fmt.Errorf("BYTES element %d is not valid UTF-8 and cannot be sent as a JSON string; request the output with %q: true", i, paramBinaryData)
			}
			buf = appendJSONString(buf, string(x))
		}
	default:
		return nil, fmt.Errorf("unsupported tensor data %T", data)
	}
	return append(buf, ']'), nil
}

// appendJSONHalfs appends FP16 bit patterns as a JSON array of numbers.
func appendJSONHalfs(buf []byte, v []uint16) []byte {
	buf = append(buf, '[')
	for i, h := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendHalf(buf, h)
	}
	return append(buf, ']')
}

// appendHalf appends the half h as the shortest JSON number that reads back
// to h: the float32 text of its value (always exact), or a rounder one with
// at most 5 significant digits if that is shorter ("0.3333", not
// "0.33325195").
func appendHalf(buf []byte, h uint16) []byte {
	f := float64(HalfToFloat32(h))
	start := len(buf)
	buf = appendFloat(buf, f, 32)
	if f != f || math.IsInf(f, 0) || f == math.Trunc(f) {
		return buf
	}
	exact := len(buf) - start
	var tmp [32]byte
	for prec := 1; prec <= 5; prec++ {
		s := strconv.AppendFloat(tmp[:0], f, 'g', prec, 64)
		if len(s) >= exact {
			break
		}
		if v, err := strconv.ParseFloat(string(s), 64); err == nil && Float64ToHalf(v) == h {
			return append(buf[:start], s...)
		}
	}
	return buf
}

func appendUints[T uint8 | uint16 | uint32 | uint64](buf []byte, v []T) []byte {
	for i, x := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendUint(buf, uint64(x), 10)
	}
	return buf
}

func appendInts[T int8 | int16 | int32 | int64](buf []byte, v []T) []byte {
	for i, x := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(x), 10)
	}
	return buf
}

// appendFloat appends f as the shortest JSON number that reads back to the
// same value at the given bit size, or as "NaN", "Inf" or "-Inf".
func appendFloat(buf []byte, f float64, bits int) []byte {
	switch {
	case f != f:
		return append(buf, `"NaN"`...)
	case f > math.MaxFloat64:
		return append(buf, `"Inf"`...)
	case f < -math.MaxFloat64:
		return append(buf, `"-Inf"`...)
	}
	if bits == 32 {
		return appendFloat32(buf, float32(f))
	}
	return strconv.AppendFloat(buf, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
