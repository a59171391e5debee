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
