package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// The REST wire: the OIP v2 JSON infer request and response, and Triton's
// binary tensor extension, in which a tensor's data leaves the JSON and
// follows it in the body as raw bytes (see raw.go), the JSON's length being
// sent in the Inference-Header-Content-Length header.
//
// JSON representation of data, per datatype (decoding and encoding agree, so
// whatever EncodeRESTResponse writes, the decoders read back unchanged, NaN
// payloads aside):
//
//   - BOOL: true / false.
//   - Integer types: integer literals within the type's range; 1.0, 1e2 and
//     "1" are refused.
//   - FP32, FP64: numbers; NaN and infinities, which JSON numbers cannot
//     express, are the strings "NaN", "Inf" and "-Inf" ("+Inf", "Infinity"
//     and "-Infinity" are also read). A finite number that rounds to an
//     infinity in the datatype is out of range, an error.
//   - FP16: numbers, rounded to the nearest half-precision value (ties to
//     even; values below half the smallest subnormal become ±0), with the
//     same NaN/Inf strings and range rule; written as the shortest decimal
//     that reads back to the same half.
//   - BYTES: strings, their UTF-8 bytes being the element (Triton sends
//     BYTES as strings too). JSON cannot carry arbitrary bytes: in a request,
//     invalid UTF-8 inside a string becomes U+FFFD (as encoding/json
//     decodes it); a response element that is not valid UTF-8 is not
//     mangled but refused: encoding that output as JSON is an error that
//     tells the client to ask for it with "binary_data": true.
//
// Data may be flat or nested in row-major order; nesting is not checked
// against the shape, only the total element count is (as Triton does).

const (
	// HeaderContentLength is the HTTP header that carries the length of the
	// JSON part of a body that has binary tensor data after it.
	HeaderContentLength = "Inference-Header-Content-Length"

	paramBinaryDataSize   = "binary_data_size"
	paramBinaryData       = "binary_data"
	paramBinaryDataOutput = "binary_data_output"
)

// restTensor is an input of a request or an output of a response on the
// wire. Data stays raw until the datatype and shape are known.
type restTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   Datatype        `json:"datatype"`
	Parameters map[string]any  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type restRequest struct {
	ID         string         `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Inputs     []restTensor   `json:"inputs"`
	Outputs    []restOutput   `json:"outputs"`
}

type restResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id"`
	Parameters   map[string]any `json:"parameters"`
	Outputs      []restTensor   `json:"outputs"`
}

type restOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters"`
}

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
	if err := unmarshalHeader(header, &w); err != nil {
		return nil, err
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

var nullLiteral = []byte("null")

func decodeFast(d Datatype, raw []byte, n int) (any, bool) {
	inner := raw[1:]
	if d == BYTES {
		if bytes.IndexByte(inner, '[') >= 0 || bytes.Contains(inner, nullLiteral) {
			return nil, false
		}
		strs := make([]string, 0, n)
		if json.Unmarshal(raw, &strs) != nil {
			return nil, false
		}
		return stringsToBytes(strs), true
	}
	if bytes.IndexByte(inner, '"') >= 0 || bytes.Contains(inner, nullLiteral) {
		return nil, false
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
			params = make(map[string]any, len(t.Parameters)+1)
			for k, v := range t.Parameters {
				params[k] = v
			}
			params[paramBinaryDataSize] = RawSize(t.Data)
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
			buf = appendFloat(buf, float64(x), 32)
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

// Float64ToHalf converts f to the nearest IEEE 754 half-precision value
// (ties to even) and returns its bits. Values beyond the half range become
// ±Inf, values below half the smallest subnormal ±0; NaN stays NaN (quiet).
// Converting directly from float64 avoids the double rounding of going
// through float32.
func Float64ToHalf(f float64) uint16 {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0x7ff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 1023
	switch {
	case e > 15:
		return sign | 0x7c00
	case e >= -14: // a normal half, unless rounding carries it to Inf
		m := mant >> 42
		rem := mant & (1<<42 - 1)
		h := uint32(e+15)<<10 | uint32(m)
		if rem > 1<<41 || (rem == 1<<41 && m&1 == 1) {
			h++ // a carry out of the mantissa increments the exponent, as it should
		}
		return sign | uint16(h)
	case e < -25: // below 2^-25, half the smallest subnormal: rounds to 0
		return sign
	}
	// A subnormal half: count units of 2^-24. The value is
	// (mant|1<<52) * 2^(e-52), so the count is that shifted right by 28-e.
	full := mant | 1<<52
	shift := uint(28 - e) // 43..53
	m := full >> shift
	rem := full & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || (rem == half && m&1 == 1) {
		m++ // may become 0x400, the smallest normal: the right encoding
	}
	return sign | uint16(m)
}

// HalfToFloat32 returns the value of the IEEE 754 half-precision bits h
// (exact: every half is a float32).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
