package oip

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"testing"
)

var envelopeSeeds = []string{
	`{"inputs":[{"name":"X","shape":[1,3],"datatype":"FP32","data":[0.5,-1e3,2]}]}`,
	`{"id":"r1","parameters":{"binary_data_output":true},"inputs":[{"name":"X","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,4]],"parameters":{"a":1}}],"outputs":[{"name":"Y","parameters":{"binary_data":true}}]}`,
	`{"inputs":[{"name":"B","shape":[2],"datatype":"BYTES","data":["a","b"]},{"name":"C","shape":[1],"datatype":"BOOL","data":[true]}]}`,
	` { "inputs" : [ ] } `,
	`{"Inputs":[]}`,
	`{"inputs":[{"name":"X","name":"Y"}]}`,
	`{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[01]}]}`,
	`{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1.]}]}`,
	`{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1,]}]}`,
	`{"inputs":[{"name":"\u0058","shape":[1],"datatype":"FP32","data":[1]}]}`,
	`{"inputs":[]} x`,
	`{"inputs":[{"name":"X","shape":[2,2],"datatype":"INT8","data":[ [ 1 , -2 ] ,[],[[3],4]]}]}`,
	`{"inputs":[{"name":"X","shape":[3],"datatype":"INT8","data":[1,300,2]}]}`,
	`{"inputs":[{"name":"X","shape":[2],"datatype":"FP32","data":[1e39,-0]}]}`,
	`{"inputs":[{"name":"X","shape":[2],"datatype":"UINT16","data":[1.5,2]}]}`,
	`{"inputs":[{"name":"X","shape":[4000],"datatype":"FP64","data":[1    ]}]}`,
	`{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1]]}]}`,
	`{"id":null,"inputs":null}`,
}

// paramSeeds are requests whose "parameters" take each way: read here
// (flat), handed to encoding/json (nested, out of range), or rejected.
var paramSeeds = []struct {
	s    string
	fast bool // decodeRequestFast takes it
}{
	{`{"parameters":{"a":1,"b":"s","c":true,"d":null,"e":-0.5e3,"f":false,"a":2},"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}`, true},
	{`{"parameters":{},"inputs":[]}`, true},
	{`{"parameters":null,"inputs":[]}`, true},
	{`{"parameters":{"x":{"y":[1,2]}},"inputs":[]}`, true},
	{`{"parameters":{"x":[1]},"inputs":[{"name":"X","parameters":{"n":-0}}]}`, true},
	{`{"parameters":{"x":1e400},"inputs":[]}`, false},
	{`{"parameters":{"x":tru},"inputs":[]}`, false},
	{`{"parameters":{"x":01},"inputs":[]}`, false},
	{`{"parameters":{"x":"\u0041"},"inputs":[]}`, false}, // escapes: all of it to encoding/json
	{`{"parameters":{"x":1,},"inputs":[]}`, false},
	{`{"parameters":[1],"inputs":[]}`, false},
}

// TestDecodeRequestFastParameters: flat parameters decode as encoding/json
// decodes them; the rest goes to it or fails as it does.
func TestDecodeRequestFastParameters(t *testing.T) {
	for _, tc := range paramSeeds {
		var w restRequest
		if got := decodeRequestFast([]byte(tc.s), &w); got != tc.fast {
			t.Errorf("decodeRequestFast(%s) = %v, want %v", tc.s, got, tc.fast)
		} else if got {
			checkEnvelope(t, tc.s, &w)
		}
	}
	var w restRequest
	if !decodeRequestFast([]byte(paramSeeds[0].s), &w) {
		t.Fatal("flat parameters not taken")
	}
	want := map[string]any{"a": 2.0, "b": "s", "c": true, "d": nil, "e": -500.0, "f": false}
	if !reflect.DeepEqual(w.Parameters, want) {
		t.Errorf("parameters = %#v, want %#v", w.Parameters, want)
	}
}

// TestDecodeRequestFast checks that the fast envelope decoder takes the
// common shapes and gives up on the rest.
func TestDecodeRequestFast(t *testing.T) {
	for i, s := range envelopeSeeds {
		var w restRequest
		got := decodeRequestFast([]byte(s), &w)
		if want := i < 4 || i >= 11 && i < 16; got != want {
			t.Errorf("decodeRequestFast(%s) = %v, want %v", s, got, want)
		}
		if got {
			checkEnvelope(t, s, &w)
		}
	}
}

func checkEnvelope(t *testing.T, s string, fast *restRequest) {
	t.Helper()
	var ref restRequest
	if err := json.Unmarshal([]byte(s), &ref); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json: %v", s, err)
	}
	// Data converted on the way must be what decodeJSONData makes of the
	// text (the reference for values; errors are its alone).
	for i := range fast.Inputs {
		in := &fast.Inputs[i]
		if in.parsed == nil {
			continue
		}
		n, err := NumElements(in.Shape)
		if err != nil {
			t.Fatalf("%q: data converted for input %d, whose shape is bad: %v", s, i, err)
		}
		if want, err := decodeJSONData(in.Datatype, in.Data, n); err == nil && !reflect.DeepEqual(in.parsed, want) {
			t.Fatalf("%q: input %d converted to %v, decodeJSONData gives %v", s, i, in.parsed, want)
		} else if err != nil && Len(in.parsed) == n {
			t.Fatalf("%q: input %d converted to %v, decodeJSONData fails: %v", s, i, in.parsed, err)
		}
		in.parsed = nil
	}
	if !reflect.DeepEqual(fast, &ref) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", s, *fast, ref)
	}
}

// FuzzDecodeEnvelope checks that whatever the fast envelope decoder
// accepts, encoding/json accepts too and decodes the same.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add(s)
	}
	for _, tc := range paramSeeds {
		f.Add(tc.s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var w restRequest
		if decodeRequestFast([]byte(s), &w) {
			checkEnvelope(t, s, &w)
		}
	})
}

// byteOffset is the position an error about malformed JSON names, which
// differs between two orders of the same keys.
var byteOffset = regexp.MustCompile(` at byte [0-9]+`)

// FuzzConvertedData: an input whose data is converted while the envelope
// is read (shape and datatype first) decodes exactly as the same input with
// data first, which keeps the data as text for decodeJSONData: the same
// values, or the same error message.
func FuzzConvertedData(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1,2],[3]]`, `[]`, `[[]]`, `[1e39]`, `[300]`, `[1.5]`, `[-0]`, `[01]`, `[1,]`,
		`[ 1 , 2 ]`, `["a"]`, `[null]`, `[1]]`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`[0.1234567890123456789012345]`, `[1e-400]`, `[18446744073709551616]`, `[-9223372036854775809]`} {
		f.Add(uint8(0), int64(3), s)
	}
	f.Fuzz(func(t *testing.T, dt uint8, n int64, data string) {
		d := Datatypes[int(dt)%len(Datatypes)]
		converted := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%d],"datatype":%q,"data":%s}]}`, n, d, data)
		text := fmt.Sprintf(`{"inputs":[{"name":"x","data":%s,"shape":[%d],"datatype":%q}]}`, data, n, d)
		a, errA := DecodeRESTRequest([]byte(converted), -1)
		b, errB := DecodeRESTRequest([]byte(text), -1)
		if !json.Valid([]byte(data)) {
			// Malformed JSON: both fail, each naming what follows the
			// error, which differs between the orders.
			if errA == nil || errB == nil {
				t.Fatalf("data %s is not JSON: converted: %v; as text: %v", data, errA, errB)
			}
			return
		}
		if (errA == nil) != (errB == nil) || errA != nil && byteOffset.ReplaceAllString(errA.Error(), "") != byteOffset.ReplaceAllString(errB.Error(), "") {
			t.Fatalf("data %s (%s, shape [%d]): converted: %v; as text: %v", data, d, n, errA, errB)
		}
		if errA == nil && !reflect.DeepEqual(a, b) {
			t.Fatalf("data %s (%s, shape [%d]): converted %#v, as text %#v", data, d, n, a.Inputs[0].Data, b.Inputs[0].Data)
		}
	})
}
