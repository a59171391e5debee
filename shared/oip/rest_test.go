package oip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// restTypedCase is one datatype's data, as flat JSON, nested JSON (shape [2,2])
// and decoded.
type restTypedCase struct {
	dt     Datatype
	flat   string
	nested string
	want   any
}

var restTypedCases = map[string]restTypedCase{
	"BOOL":   {BOOL, `[true,false,false,true]`, `[[true,false],[false,true]]`, []bool{true, false, false, true}},
	"UINT8":  {UINT8, `[0,1,254,255]`, `[[0,1],[254,255]]`, []uint8{0, 1, 254, 255}},
	"UINT16": {UINT16, `[0,1,65534,65535]`, `[[0,1],[65534,65535]]`, []uint16{0, 1, 65534, 65535}},
	"UINT32": {UINT32, `[0,1,7,4294967295]`, `[[0,1],[7,4294967295]]`, []uint32{0, 1, 7, math.MaxUint32}},
	"UINT64": {UINT64, `[0,1,7,18446744073709551615]`, `[[0,1],[7,18446744073709551615]]`, []uint64{0, 1, 7, math.MaxUint64}},
	"INT8":   {INT8, `[-128,-1,0,127]`, `[[-128,-1],[0,127]]`, []int8{-128, -1, 0, 127}},
	"INT16":  {INT16, `[-32768,-1,0,32767]`, `[[-32768,-1],[0,32767]]`, []int16{-32768, -1, 0, 32767}},
	"INT32":  {INT32, `[-2147483648,-1,0,2147483647]`, `[[-2147483648,-1],[0,2147483647]]`, []int32{math.MinInt32, -1, 0, math.MaxInt32}},
	"INT64": {INT64, `[-9223372036854775808,-1,0,9223372036854775807]`, `[[-9223372036854775808,-1],[0,9223372036854775807]]`,
		[]int64{math.MinInt64, -1, 0, math.MaxInt64}},
	"FP16": {FP16, `[1,-2,0.5,65504]`, `[[1,-2],[0.5,65504]]`, []uint16{0x3c00, 0xc000, 0x3800, 0x7bff}},
	"FP32": {FP32, `[1,-2.5,1e-07,3.4028235e+38]`, `[[1,-2.5],[1e-07,3.4028235e+38]]`, []float32{1, -2.5, 1e-7, math.MaxFloat32}},
	"FP64": {FP64, `[1,-2.5,1e-300,1.7976931348623157e+308]`, `[[1,-2.5],[1e-300,1.7976931348623157e+308]]`,
		[]float64{1, -2.5, 1e-300, math.MaxFloat64}},
	"BYTES": {BYTES, `["a","","[x]","é\"\\null"]`, `[["a",""],["[x]","é\"\\null"]]`, [][]byte{[]byte("a"), {}, []byte("[x]"), []byte("é\"\\null")}},
	"FP32 specials": {FP32, `["NaN","Inf","-Inf",-0]`, `[["NaN","Inf"],["-Inf",-0]]`,
		[]float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1))}},
	"FP64 specials": {FP64, `["NaN","+Inf","-Infinity",5e-324]`, `[["NaN","+Inf"],["-Infinity",5e-324]]`,
		[]float64{math.NaN(), math.Inf(1), math.Inf(-1), 5e-324}},
	"FP16 specials": {FP16, `["NaN","Inf","-Inf",1e-8]`, `[["NaN","Inf"],["-Inf",1e-8]]`, []uint16{0x7e00, 0x7c00, 0xfc00, 0}},
}

// restSameData reports whether two Tensor.Data slices hold the same elements,
// any NaN being equal to any NaN.
func restSameData(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	switch x := a.(type) {
	case []float32:
		y := b.([]float32)
		for i := range x {
			if x[i] != x[i] && y[i] != y[i] {
				continue
			}
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return len(x) == len(y)
	case []float64:
		y := b.([]float64)
		for i := range x {
			if x[i] != x[i] && y[i] != y[i] {
				continue
			}
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return len(x) == len(y)
	case []uint16: // FP16 NaNs differ only in payload bits
		y := b.([]uint16)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] && !(isHalfNaN(x[i]) && isHalfNaN(y[i])) {
				return false
			}
		}
		return true
	case [][]byte:
		y := b.([][]byte)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func isHalfNaN(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }

func restMustRaw(t testing.TB, data any) []byte {
	t.Helper()
	b, err := AppendRaw(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binaryBody builds a request body with the given inputs' JSON and binary
// blobs, returning the body and jsonLen.
func binaryBody(header string, blobs ...[]byte) ([]byte, int) {
	body := []byte(header)
	for _, b := range blobs {
		body = append(body, b...)
	}
	return body, len(header)
}

func TestDecodeRESTRequestDatatypes(t *testing.T) {
	for name, tc := range restTypedCases {
		forms := map[string]func() ([]byte, int){
			"flat JSON": func() ([]byte, int) {
				return []byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[2,2],"datatype":%q,"data":%s}]}`, tc.dt, tc.flat)), -1
			},
			"nested JSON": func() ([]byte, int) {
				return []byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[2,2],"datatype":%q,"data":%s}]}`, tc.dt, tc.nested)), -1
			},
			"flat JSON, other shape": func() ([]byte, int) {
				// Nesting is only checked against the element count.
				return []byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[4],"datatype":%q,"data":%s}]}`, tc.dt, tc.nested)), -1
			},
			"binary": func() ([]byte, int) {
				raw := restMustRaw(t, tc.want)
				return binaryBody(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[2,2],"datatype":%q,"parameters":{"binary_data_size":%d}}]}`,
					tc.dt, len(raw)), raw)
			},
		}
		for form, build := range forms {
			t.Run(name+"/"+form, func(t *testing.T) {
				body, jsonLen := build()
				req, err := DecodeRESTRequest(body, jsonLen)
				if err != nil {
					t.Fatalf("DecodeRESTRequest(%s): %v", body, err)
				}
				if len(req.Inputs) != 1 {
					t.Fatalf("got %d inputs, want 1", len(req.Inputs))
				}
				in := req.Inputs[0]
				if in.Name != "x" || in.Datatype != tc.dt {
					t.Errorf("got name %q datatype %q, want x %s", in.Name, in.Datatype, tc.dt)
				}
				if !restSameData(in.Data, tc.want) {
					t.Errorf("data = %#v, want %#v", in.Data, tc.want)
				}
				if in.Parameters != nil {
					t.Errorf("parameters = %v, want nil (binary_data_size removed)", in.Parameters)
				}
			})
		}
	}
}

func TestDecodeRESTRequestBinaryBytesLiteral(t *testing.T) {
	// Hand-written raw bytes, independent of AppendRaw.
	fp32 := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0} // 1, -2
	bytesRaw := []byte{2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0, 1, 0, 0, 0, 0xff}
	header := `{"id":"r","inputs":[` +
		`{"name":"f","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8,"other":"kept"}},` +
		`{"name":"j","shape":[1,2],"datatype":"INT32","data":[[5,6]]},` +
		`{"name":"s","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":15}},` +
		`{"name":"k","shape":[],"datatype":"BYTES","data":["txt"]}]}`
	body, jsonLen := binaryBody(header, fp32, bytesRaw)
	req, err := DecodeRESTRequest(body, jsonLen)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tensor{
		{Name: "f", Datatype: FP32, Shape: []int64{2}, Parameters: map[string]any{"other": "kept"}, Data: []float32{1, -2}},
		{Name: "j", Datatype: INT32, Shape: []int64{1, 2}, Data: []int32{5, 6}},
		{Name: "s", Datatype: BYTES, Shape: []int64{3}, Data: [][]byte{[]byte("hi"), {}, {0xff}}},
		{Name: "k", Datatype: BYTES, Shape: []int64{}, Data: [][]byte{[]byte("txt")}},
	}
	if req.ID != "r" {
		t.Errorf("id = %q, want r", req.ID)
	}
	check := func(when string) {
		if len(req.Inputs) != len(want) {
			t.Fatalf("%s: got %d inputs, want %d", when, len(req.Inputs), len(want))
		}
		for i, got := range req.Inputs {
			w := want[i]
			if got.Name != w.Name || got.Datatype != w.Datatype || !reflect.DeepEqual(got.Shape, w.Shape) ||
				!reflect.DeepEqual(got.Parameters, w.Parameters) || !restSameData(got.Data, w.Data) {
				t.Errorf("%s: input %d =\n%#v\nwant\n%#v", when, i, got, w)
			}
		}
	}
	check("decoded")
	// The result must not alias the body.
	for i := range body {
		body[i] = 0
	}
	check("after overwriting the body")
}

func TestDecodeRESTRequestEnvelope(t *testing.T) {
	body := `{"id":"42","parameters":{"binary_data_output":true,"priority":3},
		"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],
		"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}]}`
	req, err := DecodeRESTRequest([]byte(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{
		ID:         "42",
		Parameters: map[string]any{"binary_data_output": true, "priority": 3.0},
		Inputs:     []Tensor{{Name: "x", Datatype: FP32, Shape: []int64{1}, Data: []float32{1}}},
		Outputs:    []RequestedOutput{{Name: "a", Parameters: map[string]any{"binary_data": false}}, {Name: "b"}},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got\n%#v\nwant\n%#v", req, want)
	}
}

// restErrorCases are bodies DecodeRESTRequest must refuse, with a substring of
// the expected message.
var restErrorCases = map[string]struct {
	body    string
	bin     string // binary part appended after body (jsonLen = len(body)) when not empty
	jsonLen int    // jsonLen when bin is empty; 0 stands for -1 (no header)
	want    string
}{
	"empty body":               {body: ``, want: "JSON header is empty"},
	"malformed JSON":           {body: `{"inputs":[}`, want: "malformed JSON at byte"},
	"trailing garbage":         {body: `{"inputs":[]} x`, want: "malformed JSON"},
	"two JSON values":          {body: `{"inputs":[]}{}`, want: "malformed JSON"},
	"not an object":            {body: `[1]`, want: "decode JSON"},
	"jsonLen beyond body":      {body: `{}`, jsonLen: 10, want: "Inference-Header-Content-Length is 10 but the body has only 2 bytes"},
	"jsonLen negative":         {body: `{}`, jsonLen: -2, want: "Inference-Header-Content-Length is -2; want a length >= 0"},
	"inputs not an array":      {body: `{"inputs":{}}`, want: "decode JSON"},
	"shape not integers":       {body: `{"inputs":[{"name":"x","shape":[1.5],"datatype":"FP32","data":[1]}]}`, want: "decode JSON"},
	"missing name":             {body: `{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}`, want: "inputs[0] has no name"},
	"missing datatype":         {body: `{"inputs":[{"name":"x","shape":[1],"data":[1]}]}`, want: `input "x" has no datatype`},
	"unknown datatype":         {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP8","data":[1]}]}`, want: `input "x": unknown datatype "FP8"`},
	"missing shape":            {body: `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, want: `input "x" has no shape`},
	"negative dim":             {body: `{"inputs":[{"name":"x","shape":[1,-2],"datatype":"FP32","data":[1]}]}`, want: `input "x": shape[1] is -2`},
	"overflowing shape":        {body: `{"inputs":[{"name":"x","shape":[1099511627776,1099511627776],"datatype":"FP32","data":[1]}]}`, want: `input "x": shape [1099511627776 1099511627776] has too many elements`},
	"huge shape, little data":  {body: `{"inputs":[{"name":"x","shape":[1073741823],"datatype":"FP32","data":[1,2]}]}`, want: `input "x": shape needs 1073741823 elements, data has 2`},
	"too few elements":         {body: `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}`, want: `input "x": shape needs 4 elements, data has 3`},
	"too many elements":        {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"INT64","data":[1,2,3]}]}`, want: `input "x": shape needs 2 elements, data has 3`},
	"nested, too few":          {body: `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3]]}]}`, want: `shape needs 4 elements, data has 3`},
	"nested empty, too few":    {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[[],[]]}]}`, want: `shape needs 1 elements, data has 0`},
	"duplicate input":          {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, want: `input "x" appears twice`},
	"no data":                  {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}`, want: `input "x" has no data`},
	"null data":                {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":null}]}`, want: `input "x" has no data`},
	"data not an array":        {body: `{"inputs":[{"name":"x","shape":[],"datatype":"FP32","data":1}]}`, want: `input "x": data must be a JSON array`},
	"INT8 fraction":            {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[1,1.5]}]}`, want: `input "x": data[1]: 1.5 is not an integer (INT8)`},
	"INT8 exponent":            {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1e2]}]}`, want: `data[0]: 1e2 is not an integer (INT8)`},
	"INT8 out of range":        {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[300,1]}]}`, want: `input "x": data[0]: 300 is out of range for INT8`},
	"INT8 nested out of range": {body: `{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT8","data":[[1,2],[3,-129]]}]}`, want: `data[3]: -129 is out of range for INT8`},
	"UINT8 negative":           {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[-1]}]}`, want: `data[0]: -1 is out of range for UINT8`},
	"UINT64 too big":           {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"UINT64","data":[18446744073709551616]}]}`, want: `out of range for UINT64`},
	"INT32 string":             {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":["1"]}]}`, want: `data[0]: got a string, want an integer (INT32)`},
	"FP32 null":                {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,null]}]}`, want: `input "x": data[1]: got null, want a number`},
	"BOOL null":                {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[null]}]}`, want: `data[0]: got null, want true or false (BOOL)`},
	"BYTES null":               {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[null]}]}`, want: `data[0]: got null, want a string (BYTES)`},
	"FP32 unknown string":      {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["nan"]}]}`, want: `data[0]: got a string, want a number`},
	"FP32 object":              {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[{}]}]}`, want: `data[0]: got an object`},
	"FP32 out of range":        {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}`, want: `data[0]: 1e39 is out of range for FP32`},
	"FP64 out of range":        {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e309]}]}`, want: `data[0]: 1e309 is out of range for FP64`},
	"FP16 out of range":        {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"FP16","data":[1,65520]}]}`, want: `data[1]: 65520 is out of range for FP16`},
	"BOOL number":              {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}`, want: `data[0]: got a number, want true or false`},
	"UINT8 base64":             {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":["AAEC"]}]}`, want: `data[0]: got a string, want an integer (UINT8)`},
	"UINT8 base64 not array":   {body: `{"inputs":[{"name":"x","shape":[3],"datatype":"UINT8","data":"AAEC"}]}`, want: `data must be a JSON array`},
	"jsonLen zero":             {body: ``, bin: `{"inputs":[]}`, want: "JSON header is empty"},
	"BYTES number":             {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[1]}]}`, want: `data[0]: got a number, want a string`},
	"binary size and data": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}`,
		bin: "\x00\x00\x00\x00", want: `input "x" has both "binary_data_size" and JSON data`},
	"binary size fraction": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":1.5}}]}`,
		bin: "\x00\x00\x00\x00", want: `input "x": binary_data_size must be an integer >= 0, got 1.5`},
	"binary size negative": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}`,
		bin: "\x00\x00\x00\x00", want: `binary_data_size must be an integer >= 0, got -4`},
	"binary size string": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}}]}`,
		bin: "\x00\x00\x00\x00", want: `binary_data_size must be an integer >= 0, got "4"`},
	"binary size beyond body": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`,
		bin: "\x00\x00\x00\x00", want: `input "x": binary_data_size 8 exceeds the 4 bytes of binary data after the JSON`},
	"binary sizes beyond body": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}},{"name":"y","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`,
		bin: "\x00\x00\x00\x00\x00\x00", want: `input "y": binary_data_size 4 exceeds the 2 bytes of binary data left`},
	"binary without header": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`,
		want: `binary_data_size 4 exceeds the 0 bytes`},
	"binary unclaimed": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`,
		bin: "\x00\x00\x00\x00\x01", want: `1 bytes of binary data after the JSON were not claimed by any input's binary_data_size (5 bytes in all)`},
	"binary but no binary input": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`,
		bin: "junk", want: `4 bytes of binary data after the JSON were not claimed`},
	"binary size vs shape": {body: `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`,
		bin: "\x00\x00\x00\x00", want: `input "x": binary data: FP32 shape [2] needs 8 bytes of raw data, got 4`},
	"binary BOOL not 0 or 1": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","parameters":{"binary_data_size":1}}]}`,
		bin: "\x02", want: `input "x": binary data: BOOL element 0 is 2`},
	"binary BYTES short": {body: `{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}`,
		bin: "\x09\x00\x00\x00a", want: `input "x": binary data: BYTES element 0: length 9 exceeds the 1 bytes left`},
	"binary huge shape": {body: `{"inputs":[{"name":"x","shape":[1073741823],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}`,
		bin: "\x00\x00\x00\x00", want: `BYTES element 1: raw data ends`},
	"output without name":         {body: `{"inputs":[],"outputs":[{"parameters":{}}]}`, want: "outputs[0] has no name"},
	"output twice":                {body: `{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}`, want: `output "y" is requested twice`},
	"binary_data not a bool":      {body: `{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":1}}]}`, want: `output "y": parameter "binary_data" must be true or false, got 1`},
	"binary_data_output not bool": {body: `{"parameters":{"binary_data_output":"yes"},"inputs":[]}`, want: `request: parameter "binary_data_output" must be true or false, got "yes"`},
}

func restErrorCaseBody(body, bin string, jsonLen int) ([]byte, int) {
	switch {
	case bin != "":
		return binaryBody(body, []byte(bin))
	case jsonLen == 0:
		return []byte(body), -1
	}
	return []byte(body), jsonLen
}

func TestDecodeRESTRequestErrors(t *testing.T) {
	for name, tc := range restErrorCases {
		t.Run(name, func(t *testing.T) {
			body, jsonLen := restErrorCaseBody(tc.body, tc.bin, tc.jsonLen)
			req, err := DecodeRESTRequest(body, jsonLen)
			if err == nil {
				t.Fatalf("DecodeRESTRequest(%q, %d) = %+v, want error containing %q", body, jsonLen, req, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRESTRequestHugeShapeDoesNotAllocate(t *testing.T) {
	cases := map[string]struct {
		body []byte
		len  int
	}{
		"JSON": {[]byte(`{"inputs":[{"name":"x","shape":[1073741823],"datatype":"FP64","data":[1,2,3]}]}`), -1},
		"JSON nested": {[]byte(`{"inputs":[{"name":"x","shape":[1073741823],"datatype":"INT64","data":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}`),
			-1},
	}
	body, jsonLen := binaryBody(`{"inputs":[{"name":"x","shape":[1073741823],"datatype":"FP64","parameters":{"binary_data_size":8}}]}`, make([]byte, 8))
	cases["binary"] = struct {
		body []byte
		len  int
	}{body, jsonLen}
	body, jsonLen = binaryBody(`{"inputs":[{"name":"x","shape":[1073741823],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}`, make([]byte, 8))
	cases["binary BYTES"] = struct {
		body []byte
		len  int
	}{body, jsonLen}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := DecodeRESTRequest(tc.body, tc.len)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("want an error")
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes refusing a shape the body cannot fill", grew)
			}
		})
	}
}

func TestDecodeRESTRequestManyInputs(t *testing.T) {
	const n = 10000
	body := manyInputsBody(n)
	req, err := DecodeRESTRequest(body, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Inputs) != n || req.Inputs[n-1].Name != fmt.Sprint("in", n-1) || req.Inputs[n-1].Data.([]float32)[0] != n-1 {
		t.Fatalf("got %d inputs, last %+v", len(req.Inputs), req.Inputs[len(req.Inputs)-1])
	}
	// A duplicate at the very end is found (by the map, not a scan per input).
	dup := bytes.Replace(body, []byte(fmt.Sprintf(`"in%d"`, n-1)), []byte(`"in0"`), 1)
	if _, err := DecodeRESTRequest(dup, -1); err == nil || !strings.Contains(err.Error(), `input "in0" appears twice`) {
		t.Errorf("duplicate among %d inputs: err = %v", n, err)
	}
}

func manyInputsBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"inputs":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"in%d","shape":[1],"datatype":"FP32","data":[%d]}`, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestRESTResponseRoundTrip encodes every datatype as JSON and as binary and
// decodes it back.
func TestRESTResponseRoundTrip(t *testing.T) {
	var outs []Tensor
	for name, tc := range restTypedCases {
		outs = append(outs, Tensor{Name: name, Datatype: tc.dt, Shape: []int64{2, 2}, Data: tc.want})
	}
	outs = append(outs, Tensor{Name: "scalar", Datatype: INT32, Shape: []int64{}, Data: []int32{7}},
		Tensor{Name: "empty", Datatype: BYTES, Shape: []int64{0}, Data: [][]byte{}},
		Tensor{Name: "with params", Datatype: FP32, Shape: []int64{1}, Parameters: map[string]any{"p": "q"}, Data: []float32{3}})
	resp := &InferResponse{ModelName: "m", ModelVersion: "3", ID: "id", Parameters: map[string]any{"k": "v"}, Outputs: outs}
	reqs := map[string]*InferRequest{
		"JSON":   nil,
		"binary": {Parameters: map[string]any{"binary_data_output": true}},
		"mixed":  {Outputs: []RequestedOutput{{Name: "BYTES", Parameters: map[string]any{"binary_data": true}}, {Name: "FP16"}}},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			body, jsonLen, err := EncodeRESTResponse(resp, req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRESTResponse(body, jsonLen)
			if err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if got.ModelName != "m" || got.ModelVersion != "3" || got.ID != "id" || !reflect.DeepEqual(got.Parameters, resp.Parameters) {
				t.Errorf("envelope %+v", got)
			}
			if len(got.Outputs) != len(outs) {
				t.Fatalf("got %d outputs, want %d", len(got.Outputs), len(outs))
			}
			for i, o := range got.Outputs {
				w := outs[i]
				if o.Name != w.Name || o.Datatype != w.Datatype || !reflect.DeepEqual(o.Shape, w.Shape) ||
					!reflect.DeepEqual(o.Parameters, w.Parameters) || !restSameData(o.Data, w.Data) {
					t.Errorf("output %d = %+v, want %+v", i, o, w)
				}
			}
		})
	}
}

// requestFromResponse turns an encoded response into an equivalent request
// body, so that what the encoder writes can be fed to the request decoder.
func requestFromResponse(body []byte, jsonLen int) []byte {
	end := len(body)
	if jsonLen >= 0 {
		end = jsonLen
	}
	i := bytes.Index(body[:end], []byte(`"outputs":[`))
	out := append([]byte(`{"inputs":`), body[i+len(`"outputs":`):]...)
	return out
}

func TestEncodedOutputsDecodeAsInputs(t *testing.T) {
	for name, tc := range restTypedCases {
		t.Run(name, func(t *testing.T) {
			resp := &InferResponse{ModelName: "m", Outputs: []Tensor{{Name: "x", Datatype: tc.dt, Shape: []int64{4}, Data: tc.want}}}
			for _, binary := range []bool{false, true} {
				body, jsonLen, err := EncodeRESTResponse(resp, &InferRequest{Parameters: map[string]any{"binary_data_output": binary}})
				if err != nil {
					t.Fatal(err)
				}
				reqBody := requestFromResponse(body, jsonLen)
				reqJSONLen := -1
				if jsonLen >= 0 {
					reqJSONLen = jsonLen - (len(body) - len(reqBody))
				}
				req, err := DecodeRESTRequest(reqBody, reqJSONLen)
				if err != nil {
					t.Fatalf("binary=%v: %v", binary, err)
				}
				if !restSameData(req.Inputs[0].Data, tc.want) {
					t.Errorf("binary=%v: %#v, want %#v", binary, req.Inputs[0].Data, tc.want)
				}
			}
		})
	}
}

// TestDecodeJSONDataPaths checks that the fast and slow paths agree.
func TestDecodeJSONDataPaths(t *testing.T) {
	for name, tc := range restTypedCases {
		for form, raw := range map[string]string{"flat": tc.flat, "nested": tc.nested, "spaced": " [ " + strings.ReplaceAll(tc.nested, ",", " , ") + " ] "} {
			t.Run(name+"/"+form, func(t *testing.T) {
				slow, err := decodeSlow(tc.dt, bytes.TrimSpace([]byte(raw)), 4)
				if err != nil {
					t.Fatal(err)
				}
				if !restSameData(slow, tc.want) {
					t.Errorf("slow path %#v, want %#v", slow, tc.want)
				}
				fast, ok := decodeFast(tc.dt, bytes.TrimSpace([]byte(raw)), 4)
				if ok && !restSameData(fast, tc.want) {
					t.Errorf("fast path %#v, want %#v", fast, tc.want)
				}
			})
		}
	}
}

func restFuzzSeeds(f *testing.F) {
	for _, tc := range restTypedCases {
		f.Add([]byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[2,2],"datatype":%q,"data":%s}]}`, tc.dt, tc.nested)), -1)
		f.Add([]byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[4],"datatype":%q,"data":%s}]}`, tc.dt, tc.flat)), -1)
		raw, _ := AppendRaw(nil, tc.want)
		body, jsonLen := binaryBody(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[2,2],"datatype":%q,"parameters":{"binary_data_size":%d}}]}`,
			tc.dt, len(raw)), raw)
		f.Add(body, jsonLen)
	}
	for _, tc := range restErrorCases {
		body, jsonLen := restErrorCaseBody(tc.body, tc.bin, tc.jsonLen)
		f.Add(body, jsonLen)
	}
}

// restCheckDecoded is the fuzz property of a successful decode: every input is
// valid, and it survives encoding (binary and JSON) and decoding unchanged.
func restCheckDecoded(t *testing.T, req *InferRequest) {
	for i := range req.Inputs {
		if err := req.Inputs[i].Validate(); err != nil {
			t.Fatalf("decoded input fails Validate: %v", err)
		}
	}
	resp := &InferResponse{ModelName: "m", Outputs: req.Inputs}
	for _, binary := range []bool{true, false} {
		body, jsonLen, err := EncodeRESTResponse(resp, &InferRequest{Parameters: map[string]any{"binary_data_output": binary}})
		if err != nil {
			if !binary && strings.Contains(err.Error(), "not valid UTF-8") {
				continue
			}
			t.Fatalf("encode decoded inputs (binary %v): %v", binary, err)
		}
		back, err := DecodeRESTResponse(body, jsonLen)
		if err != nil {
			t.Fatalf("decode encoded inputs (binary %v): %v\n%q", binary, err, body)
		}
		for i, o := range back.Outputs {
			if !restSameData(o.Data, req.Inputs[i].Data) {
				t.Fatalf("input %q (binary %v) round trip: %#v, want %#v", o.Name, binary, o.Data, req.Inputs[i].Data)
			}
		}
	}
}

func FuzzDecodeRESTRequest(f *testing.F) {
	restFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, jsonLen int) {
		req, err := DecodeRESTRequest(body, jsonLen)
		if err != nil {
			return
		}
		restCheckDecoded(t, req)
	})
}

// FuzzDecodeRESTBinary builds well-formed headers around fuzzed binary data
// and sizes: two binary inputs (one of a fuzzed datatype and shape) with a
// JSON input between them.
func FuzzDecodeRESTBinary(f *testing.F) {
	for _, tc := range restTypedCases {
		raw, _ := AppendRaw(nil, tc.want)
		dt := uint8(0)
		for i, d := range Datatypes {
			if d == tc.dt {
				dt = uint8(i)
			}
		}
		f.Add(dt, int64(2), int64(2), raw, len(raw), []byte{1, 0, 0, 0}, 4)
	}
	f.Add(uint8(12), int64(1), int64(0), []byte{}, 0, []byte{}, 0)
	f.Add(uint8(12), int64(1<<40), int64(1<<40), []byte{1, 2, 3}, 3, []byte{1, 0, 0, 0}, 4)
	f.Add(uint8(10), int64(-1), int64(2), []byte{1, 2, 3, 4}, 4, []byte{1, 0, 0, 0}, 4)
	f.Add(uint8(0), int64(3), int64(1), []byte{0, 1, 2}, 3, []byte{1, 0, 0}, 3)
	f.Fuzz(func(t *testing.T, dt uint8, d0, d1 int64, blob []byte, size int, blob2 []byte, size2 int) {
		datatype := Datatypes[int(dt)%len(Datatypes)]
		header := fmt.Sprintf(`{"inputs":[`+
			`{"name":"a","datatype":%q,"shape":[%d,%d],"parameters":{"binary_data_size":%d}},`+
			`{"name":"j","datatype":"INT8","shape":[2],"data":[[1],[2]]},`+
			`{"name":"b","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":%d}}]}`, datatype, d0, d1, size, size2)
		body, jsonLen := binaryBody(header, blob, blob2)
		req, err := DecodeRESTRequest(body, jsonLen)
		if err != nil {
			return
		}
		// The decoder sees only the concatenation: sizes must add up to it.
		bin := body[jsonLen:]
		if size < 0 || size2 < 0 || size+size2 != len(bin) {
			t.Fatalf("accepted sizes %d, %d for %d bytes of binary data", size, size2, len(bin))
		}
		if got := restMustRaw(t, req.Inputs[0].Data); !bytes.Equal(got, bin[:size]) {
			t.Fatalf("input a re-encodes as %x, sent %x", got, bin[:size])
		}
		if got := restMustRaw(t, req.Inputs[2].Data); !bytes.Equal(got, bin[size:]) {
			t.Fatalf("input b re-encodes as %x, sent %x", got, bin[size:])
		}
		restCheckDecoded(t, req)
	})
}

// FuzzDecodeJSONData checks that the fast path for "data" (typed unmarshal,
// nesting brackets blanked out) never disagrees with the slow path.
func FuzzDecodeJSONData(f *testing.F) {
	for _, tc := range restTypedCases {
		f.Add(uint8(0), tc.flat)
		f.Add(uint8(9), tc.nested)
		f.Add(uint8(12), tc.nested)
	}
	f.Add(uint8(7), `[[],[1,[2]],[[[3]]]]`)
	f.Add(uint8(7), `[1,"[2]"]`)
	f.Fuzz(func(t *testing.T, dt uint8, raw string) {
		d := Datatypes[int(dt)%len(Datatypes)]
		b := bytes.TrimSpace([]byte(raw))
		if !json.Valid(b) || len(b) == 0 || b[0] != '[' {
			return
		}
		leaves, err := flattenJSON(b)
		if err != nil {
			t.Fatalf("flatten valid JSON %q: %v", b, err)
		}
		n := len(leaves)
		slow, slowErr := decodeSlow(d, b, n)
		fast, ok := decodeFast(d, append([]byte(nil), b...), n)
		if ok {
			if slowErr != nil {
				t.Fatalf("%s %s: fast path accepted %#v, slow path: %v", d, b, fast, slowErr)
			}
			if !restSameData(fast, slow) {
				t.Fatalf("%s %s: fast %#v, slow %#v", d, b, fast, slow)
			}
		}
	})
}

// Benchmarks.

func fp32Data(n int) []float32 {
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([]float32, n)
	for i := range out {
		out[i] = rng.Float32()*2 - 1
	}
	return out
}

func fp32JSON(data []float32, cols int) (flat, nested string) {
	var f, n strings.Builder
	f.WriteByte('[')
	n.WriteByte('[')
	for i, v := range data {
		s := strconv.FormatFloat(float64(v), 'g', -1, 32)
		if i > 0 {
			f.WriteByte(',')
		}
		f.WriteString(s)
		if i%cols == 0 {
			if i > 0 {
				n.WriteString("],")
			}
			n.WriteByte('[')
		} else {
			n.WriteByte(',')
		}
		n.WriteString(s)
	}
	f.WriteByte(']')
	n.WriteString("]]")
	return f.String(), n.String()
}

func BenchmarkDecodeRESTRequest(b *testing.B) {
	type bench struct {
		body    []byte
		jsonLen int
	}
	cases := map[string]bench{}
	for _, shape := range [][2]int{{1, 4}, {64, 100}} {
		data := fp32Data(shape[0] * shape[1])
		flat, nested := fp32JSON(data, shape[1])
		key := fmt.Sprintf("%dx%d", shape[0], shape[1])
		hdr := `{"id":"r","inputs":[{"name":"x","shape":[%d,%d],"datatype":"FP32","data":%s}]}`
		cases["flat/"+key] = bench{[]byte(fmt.Sprintf(hdr, shape[0], shape[1], flat)), -1}
		cases["nested/"+key] = bench{[]byte(fmt.Sprintf(hdr, shape[0], shape[1], nested)), -1}
		raw := restMustRaw(b, data)
		body, jsonLen := binaryBody(fmt.Sprintf(`{"id":"r","inputs":[{"name":"x","shape":[%d,%d],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`,
			shape[0], shape[1], len(raw)), raw)
		cases["binary/"+key] = bench{body, jsonLen}
	}
	cases["inputs/1000"] = bench{manyInputsBody(1000), -1}
	cases["inputs/10000"] = bench{manyInputsBody(10000), -1}
	for _, name := range []string{"flat/1x4", "nested/1x4", "binary/1x4", "flat/64x100", "nested/64x100", "binary/64x100", "inputs/1000", "inputs/10000"} {
		tc := cases[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeRESTRequest(tc.body, tc.jsonLen); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeRESTResponse(b *testing.B) {
	binReq := &InferRequest{Parameters: map[string]any{"binary_data_output": true}}
	for _, shape := range [][2]int64{{1, 4}, {64, 100}} {
		resp := &InferResponse{ModelName: "model", ModelVersion: "1", ID: "r", Outputs: []Tensor{
			{Name: "y", Datatype: FP32, Shape: shape[:], Data: fp32Data(int(shape[0] * shape[1]))}}}
		for _, mode := range []string{"json", "binary"} {
			var req *InferRequest
			if mode == "binary" {
				req = binReq
			}
			b.Run(fmt.Sprintf("%s/%dx%d", mode, shape[0], shape[1]), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := EncodeRESTResponse(resp, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestDecodeRESTRequestShortDataReservesLittle: inputs whose shapes claim
// more elements than their arrays hold reserve room for what the arrays
// hold, however many inputs there are (they are all converted before any
// is checked against its shape): shapes of 1024 elements allocate about
// what shapes of 3 do.
func TestDecodeRESTRequestShortDataReservesLittle(t *testing.T) {
	decode := func(shape int, data string) (allocated uint64, bodyLen int) {
		var sb strings.Builder
		sb.WriteString(`{"inputs":[`)
		for i := range 20000 {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"name":"x%d","shape":[%d],"datatype":"INT64","data":%s}`, i, shape, data)
		}
		sb.WriteString(`]}`)
		body := []byte(sb.String())
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodeRESTRequest(body, -1)
		runtime.ReadMemStats(&after)
		if want := fmt.Sprintf("shape needs %d elements", shape); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("shape %d, data %s: err = %v, want %q", shape, data, err, want)
		}
		return after.TotalAlloc - before.TotalAlloc, len(body)
	}
	for _, data := range []string{"[]", "[7]", "[[1],[2]]"} {
		small, _ := decode(3, data)
		large, n := decode(1024, data)
		// Room for the shapes would be 8 KiB per input, 130 times the text.
		if large > small+uint64(n)/4 {
			t.Errorf("data %s: shapes of 1024 elements allocated %d bytes, shapes of 3 %d (body %d bytes)", data, large, small, n)
		}
	}
}

// TestDecodeRESTRequestPaddedDataDoesNotReserveShape: a shape the body
// could fill by its length alone (an array of one element padded with
// spaces) reserves room for what the array holds, not for the shape.
func TestDecodeRESTRequestPaddedDataDoesNotReserveShape(t *testing.T) {
	const pad = 8 << 20
	for _, dt := range []Datatype{FP64, INT64, BYTES} {
		t.Run(string(dt), func(t *testing.T) {
			elem := "1"
			if dt == BYTES {
				elem = `"a"`
			}
			n := pad / 2
			body := []byte(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%d],"datatype":"%s","data":[%s%s]}]}`, n, dt, elem, strings.Repeat(" ", pad)))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := DecodeRESTRequest(body, -1)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "data has 1") {
				t.Fatalf("err = %v, want a count mismatch", err)
			}
			// The envelope keeps a copy of the data (pad bytes) and the
			// slow path flattens it; reserving the shape would add n*8.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 3*pad {
				t.Errorf("allocated %d bytes for a one-element array (shape %d, body %d bytes)", grew, n, len(body))
			}
		})
	}
}
