package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Decoding: REST request and response bodies into InferRequest and
// InferResponse (the wire format is described in rest.go).

// DecodeRESTRequest decodes the body of an OIP v2 REST infer request.
// jsonLen is the value of the Inference-Header-Content-Length header, or -1
// when the header is absent (the whole body is JSON); the bytes after the
// JSON are the binary data of the inputs that have a "binary_data_size"
// parameter, in the order of those inputs.
//
// Every error is the client's fault (answer 400) and its message names the
// input concerned. On success every input passes Tensor.Validate, the
// "binary_data_size" parameter is removed from the inputs' parameters
// (a nil map when nothing is left), and nothing in the result aliases body.
// It never panics, whatever body holds.
func DecodeRESTRequest(body []byte, jsonLen int) (*InferRequest, error) {
	header, bin, err := splitBody(body, jsonLen)
	if err != nil {
		return nil, err
	}
	var w restRequest
	if !decodeRequestFast(header, &w) {
		w = restRequest{}
		if err := unmarshalHeader(header, &w); err != nil {
			return nil, err
		}
	}
	if err := checkBoolParam(w.Parameters, paramBinaryDataOutput, "request", ""); err != nil {
		return nil, err
	}
	req := &InferRequest{ID: w.ID, Parameters: w.Parameters}
	if req.Inputs, err = decodeTensors(w.Inputs, "input", bin); err != nil {
		return nil, err
	}
	if len(w.Outputs) > 0 {
		req.Outputs = make([]RequestedOutput, len(w.Outputs))
	}
	seen := newNameSet(len(w.Outputs))
	for i, o := range w.Outputs {
		if o.Name == "" {
			return nil, fmt.Errorf("outputs[%d] has no name", i)
		}
		if seen.add(o.Name) {
			return nil, fmt.Errorf("output %q is requested twice", o.Name)
		}
		if err := checkBoolParam(o.Parameters, paramBinaryData, "output", o.Name); err != nil {
			return nil, err
		}
		req.Outputs[i] = RequestedOutput(o)
	}
	return req, nil
}

// DecodeRESTResponse decodes the body of an OIP v2 REST infer response, as
// EncodeRESTResponse writes it (for clients and tests); jsonLen is as for
// DecodeRESTRequest. Outputs pass Tensor.Validate and lose their
// "binary_data_size" parameter. It never panics.
func DecodeRESTResponse(body []byte, jsonLen int) (*InferResponse, error) {
	header, bin, err := splitBody(body, jsonLen)
	if err != nil {
		return nil, err
	}
	var w restResponse
	if err := unmarshalHeader(header, &w); err != nil {
		return nil, err
	}
	resp := &InferResponse{ModelName: w.ModelName, ModelVersion: w.ModelVersion, ID: w.ID, Parameters: w.Parameters}
	if resp.Outputs, err = decodeTensors(w.Outputs, "output", bin); err != nil {
		return nil, err
	}
	return resp, nil
}

// splitBody splits body into its JSON header and the binary data after it.
func splitBody(body []byte, jsonLen int) (header, bin []byte, err error) {
	switch {
	case jsonLen == -1:
		return body, nil, nil
	case jsonLen < 0:
		return nil, nil, fmt.Errorf("%s is %d; want a length >= 0", HeaderContentLength, jsonLen)
	case jsonLen > len(body):
		return nil, nil, fmt.Errorf("%s is %d but the body has only %d bytes", HeaderContentLength, jsonLen, len(body))
	}
	return body[:jsonLen], body[jsonLen:], nil
}

func unmarshalHeader(header []byte, v any) error {
	if len(bytes.TrimSpace(header)) == 0 {
		return errors.New("JSON header is empty")
	}
	if err := json.Unmarshal(header, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("malformed JSON at byte %d: %w", syn.Offset, err)
		}
		return fmt.Errorf("decode JSON: %w", err)
	}
	return nil
}

// checkBoolParam checks that params[key], if present, is a bool; kind and
// name say whose parameters they are.
func checkBoolParam(params map[string]any, key, kind, name string) error {
	v, ok := params[key]
	if !ok {
		return nil
	}
	if _, ok := v.(bool); ok {
		return nil
	}
	if name != "" {
		kind = fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Errorf("%s: parameter %q must be true or false, got %s", kind, key, jsonText(v))
}

// decodeTensors turns wire tensors into Tensors, taking the data of those
// with binary_data_size from bin in order. kind ("input" or "output") names
// them in errors.
func decodeTensors(ws []restTensor, kind string, bin []byte) ([]Tensor, error) {
	out := make([]Tensor, len(ws))
	seen := newNameSet(len(ws))
	total := len(bin)
	for i := range ws {
		w := &ws[i]
		t := &out[i]
		if w.Name == "" {
			return nil, fmt.Errorf("%ss[%d] has no name", kind, i)
		}
		if seen.add(w.Name) {
			return nil, fmt.Errorf("%s %q appears twice", kind, w.Name)
		}
		if w.Datatype == "" {
			return nil, fmt.Errorf("%s %q has no datatype", kind, w.Name)
		}
		if !w.Datatype.Valid() {
			return nil, fmt.Errorf("%s %q: unknown datatype %q", kind, w.Name, w.Datatype)
		}
		if w.Shape == nil {
			return nil, fmt.Errorf("%s %q has no shape", kind, w.Name)
		}
		n, err := NumElements(w.Shape)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, w.Name, err)
		}
		t.Name, t.Datatype, t.Shape, t.Parameters = w.Name, w.Datatype, w.Shape, w.Parameters
		hasData := len(w.Data) > 0 && !bytes.Equal(w.Data, []byte("null"))
		size, isBinary, err := binarySize(w.Parameters, total)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, w.Name, err)
		}
		switch {
		case isBinary && hasData:
			return nil, fmt.Errorf("%s %q has both %q and JSON data", kind, w.Name, paramBinaryDataSize)
		case isBinary:
			if size > len(bin) {
				return nil, fmt.Errorf("%s %q: %s %d exceeds the %d bytes of binary data left after the JSON",
					kind, w.Name, paramBinaryDataSize, size, len(bin))
			}
			t.Data, err = DecodeRaw(w.Datatype, w.Shape, bin[:size])
			if err != nil {
				return nil, fmt.Errorf("%s %q: binary data: %w", kind, w.Name, err)
			}
			bin = bin[size:]
			delete(t.Parameters, paramBinaryDataSize)
			if len(t.Parameters) == 0 {
				t.Parameters = nil
			}
		case w.parsed != nil:
			if got := Len(w.parsed); got != n {
				return nil, fmt.Errorf("%s %q: shape needs %d elements, data has %d", kind, w.Name, n, got)
			}
			t.Data = w.parsed
		case hasData:
			t.Data, err = decodeJSONData(w.Datatype, w.Data, n)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", kind, w.Name, err)
			}
		default:
			return nil, fmt.Errorf("%s %q has no data (neither \"data\" nor %q)", kind, w.Name, paramBinaryDataSize)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%s %w", kind, err)
		}
	}
	if len(bin) != 0 {
		return nil, fmt.Errorf("%d bytes of binary data after the JSON were not claimed by any %s's %s (%d bytes in all)",
			len(bin), kind, paramBinaryDataSize, total)
	}
	return out, nil
}

// binarySize returns the binary_data_size parameter, if present; it must be
// an integer in [0, limit].
func binarySize(params map[string]any, limit int) (int, bool, error) {
	v, ok := params[paramBinaryDataSize]
	if !ok {
		return 0, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || f < 0 || f != math.Trunc(f) {
		return 0, true, fmt.Errorf("%s must be an integer >= 0, got %s", paramBinaryDataSize, jsonText(v))
	}
	if f > float64(limit) {
		return 0, true, fmt.Errorf("%s %s exceeds the %d bytes of binary data after the JSON", paramBinaryDataSize, jsonText(v), limit)
	}
	return int(f), true, nil
}

// jsonText renders a decoded JSON value for an error message.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 64 {
		return fmt.Sprintf("a %T", v)
	}
	return string(b)
}

// nameSet detects duplicate names: a linear scan of an inline array for a
// few (no allocation), a map for many (no quadratic scan).
type nameSet struct {
	few  [16]string
	n    int
	many map[string]struct{}
}

func newNameSet(n int) nameSet {
	if n > len(nameSet{}.few) {
		return nameSet{many: make(map[string]struct{}, n)}
	}
	return nameSet{}
}

// add adds name and reports whether it was already there.
func (s *nameSet) add(name string) bool {
	if s.many != nil {
		if _, dup := s.many[name]; dup {
			return true
		}
		s.many[name] = struct{}{}
		return false
	}
	for _, x := range s.few[:s.n] {
		if x == name {
			return true
		}
	}
	s.few[s.n] = name
	s.n++
	return false
}

// decodeJSONData decodes the "data" array of a tensor of datatype d that
// must have n elements. raw is valid JSON (the envelope was decoded) and is
// owned by the caller's wire struct, not by the request body.
//
// Fast path: a flat array without strings or nulls is unmarshalled straight
// into the typed slice; a nested one too, after its inner brackets are
// blanked out (outside strings, brackets can only be array delimiters, and
// flattening is all nesting means here). Anything else, and any failure of
// the fast path, goes to the slow path, which decodes into generic values,
// flattens them and converts each, and so gives precise errors.
func decodeJSONData(d Datatype, raw []byte, n int) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("data must be a JSON array")
	}
	// Every element takes at least two bytes ("1," or "1]"): refuse a shape
	// the data cannot fill before allocating for it.
	if n > (len(raw)-1)/2 {
		got, err := countLeaves(raw)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("shape needs %d elements, data has %d", n, got)
	}
	if data, ok := decodeFast(d, raw, n); ok {
		if got := Len(data); got != n {
			return nil, fmt.Errorf("shape needs %d elements, data has %d", n, got)
		}
		return data, nil
	}
	return decodeSlow(d, raw, n)
}

var (
	nullLiteral = []byte("null")
	comma       = []byte(",")
)

func decodeFast(d Datatype, raw []byte, n int) (any, bool) {
	inner := raw[1:]
	if d == BYTES {
		if bytes.IndexByte(inner, '[') >= 0 || bytes.Contains(inner, nullLiteral) {
			return nil, false
		}
		strs := make([]string, 0, min(n, bytes.Count(inner, comma)+1))
		if json.Unmarshal(raw, &strs) != nil {
			return nil, false
		}
		return stringsToBytes(strs), true
	}
	if bytes.IndexByte(inner, '"') >= 0 || bytes.Contains(inner, nullLiteral) {
		return nil, false
	}
	// Room for the elements the data can hold (one more than its commas),
	// not for what the shape claims: a short array padded with spaces must
	// not reserve the shape's size.
	n = min(n, bytes.Count(inner, comma)+1)
	p := fastParser{b: raw}
	if data, ok := p.numbers(d, n); ok && p.i == len(raw) {
		return data, true
	}
	if bytes.IndexByte(inner, '[') >= 0 {
		flat := make([]byte, len(raw))
		flat[0] = '['
		for i, c := range inner {
			if c == '[' || c == ']' {
				c = ' '
			}
			flat[i+1] = c
		}
		flat[len(flat)-1] = ']'
		raw = flat
	}
	var err error
	var data any
	switch d {
	case BOOL:
		data, err = unmarshalSlice[bool](raw, n)
	case UINT8:
		data, err = unmarshalSlice[uint8](raw, n)
	case UINT16:
		data, err = unmarshalSlice[uint16](raw, n)
	case UINT32:
		data, err = unmarshalSlice[uint32](raw, n)
	case UINT64:
		data, err = unmarshalSlice[uint64](raw, n)
	case INT8:
		data, err = unmarshalSlice[int8](raw, n)
	case INT16:
		data, err = unmarshalSlice[int16](raw, n)
	case INT32:
		data, err = unmarshalSlice[int32](raw, n)
	case INT64:
		data, err = unmarshalSlice[int64](raw, n)
	case FP32:
		data, err = unmarshalSlice[float32](raw, n)
	case FP64:
		data, err = unmarshalSlice[float64](raw, n)
	case FP16:
		var fs []float64
		if fs, err = unmarshalSlice[float64](raw, n); err != nil {
			return nil, false
		}
		hs := make([]uint16, len(fs))
		for i, f := range fs {
			h := Float64ToHalf(f)
			if h&0x7fff == 0x7c00 {
				return nil, false // out of range: let the slow path say where
			}
			hs[i] = h
		}
		data = hs
	default:
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	return data, true
}

// unmarshalSlice unmarshals a JSON array into a []T with room for n
// elements (encoding/json appends within the capacity it is given).
func unmarshalSlice[T any](raw []byte, n int) ([]T, error) {
	s := make([]T, 0, n)
	err := json.Unmarshal(raw, &s)
	return s, err
}

// stringsToBytes copies strs into one backing array; each element is capped
// so that appending to it cannot overwrite the next.
func stringsToBytes(strs []string) [][]byte {
	total := 0
	for _, s := range strs {
		total += len(s)
	}
	buf := make([]byte, 0, total)
	out := make([][]byte, len(strs))
	for i, s := range strs {
		start := len(buf)
		buf = append(buf, s...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// countLeaves counts the non-array values in a valid JSON array.
func countLeaves(raw []byte) (int, error) {
	leaves, err := flattenJSON(raw)
	return len(leaves), err
}

// flattenJSON decodes a JSON array and returns its leaves (the values that
// are not arrays) in document order; numbers stay json.Number.
func flattenJSON(raw []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("data must be a JSON array")
	}
	var leaves []any
	var walk func([]any)
	walk = func(a []any) {
		for _, x := range a {
			if sub, ok := x.([]any); ok {
				walk(sub)
			} else {
				leaves = append(leaves, x)
			}
		}
	}
	walk(arr)
	return leaves, nil
}

func decodeSlow(d Datatype, raw []byte, n int) (any, error) {
	leaves, err := flattenJSON(raw)
	if err != nil {
		return nil, err
	}
	if len(leaves) != n {
		return nil, fmt.Errorf("shape needs %d elements, data has %d", n, len(leaves))
	}
	data, err := MakeData(d, n)
	if err != nil {
		return nil, err
	}
	for i, x := range leaves {
		if err := setElem(d, data, i, x); err != nil {
			return nil, fmt.Errorf("data[%d]: %w", i, err)
		}
	}
	return data, nil
}

// setElem converts the decoded JSON value x to an element of datatype d and
// stores it at data[i].
func setElem(d Datatype, data any, i int, x any) error {
	switch d {
	case BOOL:
		b, ok := x.(bool)
		if !ok {
			return notA(x, d)
		}
		data.([]bool)[i] = b
		return nil
	case BYTES:
		s, ok := x.(string)
		if !ok {
			return notA(x, d)
		}
		data.([][]byte)[i] = []byte(s)
		return nil
	case FP16, FP32, FP64:
		f, err := jsonFloat(d, x)
		if err != nil {
			return err
		}
		switch v := data.(type) {
		case []uint16:
			v[i] = Float64ToHalf(f)
		case []float32:
			v[i] = float32(f)
		case []float64:
			v[i] = f
		}
		return nil
	}
	num, ok := x.(json.Number)
	if !ok {
		return notA(x, d)
	}
	s := string(num)
	signed := d == INT8 || d == INT16 || d == INT32 || d == INT64
	var iv int64
	var uv uint64
	var err error
	if signed {
		iv, err = strconv.ParseInt(s, 10, d.Size()*8)
	} else {
		uv, err = strconv.ParseUint(s, 10, d.Size()*8)
	}
	if err != nil {
		if bytes.ContainsAny([]byte(s), ".eE") {
			return fmt.Errorf("%s is not an integer (%s)", s, d)
		}
		return fmt.Errorf("%s is out of range for %s", s, d)
	}
	switch v := data.(type) {
	case []int8:
		v[i] = int8(iv)
	case []int16:
		v[i] = int16(iv)
	case []int32:
		v[i] = int32(iv)
	case []int64:
		v[i] = iv
	case []uint8:
		v[i] = uint8(uv)
	case []uint16:
		v[i] = uint16(uv)
	case []uint32:
		v[i] = uint32(uv)
	case []uint64:
		v[i] = uv
	}
	return nil
}

// jsonFloat reads a float element: a number, or one of the NaN/Inf strings.
// A finite number that rounds to infinity in d is out of range.
func jsonFloat(d Datatype, x any) (float64, error) {
	switch v := x.(type) {
	case string:
		switch v {
		case "NaN":
			return math.NaN(), nil
		case "Inf", "+Inf", "Infinity":
			return math.Inf(1), nil
		case "-Inf", "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, notA(x, d)
	case json.Number:
		bits := 64
		if d == FP32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(string(v), bits)
		if err != nil || (d == FP16 && Float64ToHalf(f)&0x7fff == 0x7c00) {
			return 0, fmt.Errorf("%s is out of range for %s", v, d)
		}
		return f, nil
	}
	return 0, notA(x, d)
}

// notA is the error for a JSON value of the wrong kind for datatype d.
func notA(x any, d Datatype) error {
	got := "a number"
	switch x.(type) {
	case nil:
		got = "null"
	case bool:
		got = "a boolean"
	case string:
		got = "a string"
	case map[string]any:
		got = "an object"
	}
	want := "an integer"
	switch d {
	case BOOL:
		want = "true or false"
	case BYTES:
		want = "a string"
	case FP16, FP32, FP64:
		want = `a number, "NaN", "Inf" or "-Inf"`
	}
	return fmt.Errorf("got %s, want %s (%s)", got, want, d)
}
