package oip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeRESTResponseJSON(t *testing.T) {
	cases := map[string]struct {
		resp InferResponse
		want string
	}{
		"FP32": {
			InferResponse{ModelName: "m", ModelVersion: "1", ID: "r1",
				Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{1, 3}, Data: []float32{1, 0.5, 1e-7}}}},
			`{"model_name":"m","model_version":"1","id":"r1","outputs":[{"name":"y","datatype":"FP32","shape":[1,3],"data":[1,0.5,1e-07]}]}`,
		},
		"NaN and Inf": {
			InferResponse{ModelName: "m", Outputs: []Tensor{
				{Name: "a", Datatype: FP32, Shape: []int64{3}, Data: []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}},
				{Name: "b", Datatype: FP64, Shape: []int64{2}, Data: []float64{math.NaN(), math.Copysign(0, -1)}},
				{Name: "c", Datatype: FP16, Shape: []int64{2}, Data: []uint16{0x7e00, 0xfc00}},
			}},
			`{"model_name":"m","outputs":[{"name":"a","datatype":"FP32","shape":[3],"data":["NaN","Inf","-Inf"]},` +
				`{"name":"b","datatype":"FP64","shape":[2],"data":["NaN",-0]},` +
				`{"name":"c","datatype":"FP16","shape":[2],"data":["NaN","-Inf"]}]}`,
		},
		"FP16 as numbers": {
			InferResponse{ModelName: "m", Outputs: []Tensor{{Name: "h", Datatype: FP16, Shape: []int64{4}, Data: []uint16{0x3c00, 0x3555, 0x7bff, 0x0001}}}},
			`{"model_name":"m","outputs":[{"name":"h","datatype":"FP16","shape":[4],"data":[1,0.3333,65504,6e-08]}]}`,
		},
		"integers, BOOL, BYTES, parameters": {
			InferResponse{ModelName: "m\"", Parameters: map[string]any{"z": 1, "a": "b"}, Outputs: []Tensor{
				{Name: "i", Datatype: INT8, Shape: []int64{2}, Data: []int8{-128, 127}},
				{Name: "u", Datatype: UINT64, Shape: []int64{1}, Data: []uint64{math.MaxUint64}},
				{Name: "u16", Datatype: UINT16, Shape: []int64{1}, Data: []uint16{0x3c00}},
				{Name: "b", Datatype: BOOL, Shape: []int64{2}, Parameters: map[string]any{"k": true}, Data: []bool{true, false}},
				{Name: "s", Datatype: BYTES, Shape: []int64{3}, Data: [][]byte{[]byte("a\"b\\"), []byte("é\n\x01"), {}}},
				{Name: "empty", Datatype: FP32, Shape: []int64{0, 3}, Data: []float32{}},
			}},
			`{"model_name":"m\"","parameters":{"a":"b","z":1},"outputs":[` +
				`{"name":"i","datatype":"INT8","shape":[2],"data":[-128,127]},` +
				`{"name":"u","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},` +
				`{"name":"u16","datatype":"UINT16","shape":[1],"data":[15360]},` +
				`{"name":"b","datatype":"BOOL","shape":[2],"parameters":{"k":true},"data":[true,false]},` +
				`{"name":"s","datatype":"BYTES","shape":[3],"data":["a\"b\\","é\n\u0001",""]},` +
				`{"name":"empty","datatype":"FP32","shape":[0,3],"data":[]}]}`,
		},
		"no outputs": {InferResponse{ModelName: "m"}, `{"model_name":"m","outputs":[]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			body, jsonLen, err := EncodeRESTResponse(&tc.resp, nil)
			if err != nil {
				t.Fatal(err)
			}
			if jsonLen != -1 {
				t.Errorf("jsonLen = %d, want -1", jsonLen)
			}
			if string(body) != tc.want {
				t.Errorf("body\n%s\nwant\n%s", body, tc.want)
			}
			if !json.Valid(body) {
				t.Errorf("body is not valid JSON")
			}
		})
	}
}

func TestEncodeRESTResponseBinarySelection(t *testing.T) {
	resp := &InferResponse{ModelName: "m", Outputs: []Tensor{
		{Name: "a", Datatype: FP32, Shape: []int64{2}, Data: []float32{1, 2}},
		{Name: "b", Datatype: BYTES, Shape: []int64{1}, Data: [][]byte{{0xff}}},
	}}
	params := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := map[string]struct {
		req        *InferRequest
		wantBinary []string
	}{
		"binary_data_output": {&InferRequest{Parameters: params("binary_data_output", true)}, []string{"a", "b"}},
		"binary_data_output, one opts out": {&InferRequest{Parameters: params("binary_data_output", true),
			Outputs: []RequestedOutput{{Name: "a", Parameters: params("binary_data", false)}, {Name: "b"}}}, []string{"b"}},
		"per output": {&InferRequest{Outputs: []RequestedOutput{{Name: "b", Parameters: params("binary_data", true)}}}, []string{"b"}},
		"per output, many requested": {&InferRequest{Outputs: append(manyRequested(20),
			RequestedOutput{Name: "b", Parameters: params("binary_data", true)})}, []string{"b"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			body, jsonLen, err := EncodeRESTResponse(resp, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if jsonLen < 0 || jsonLen > len(body) || !json.Valid(body[:jsonLen]) {
				t.Fatalf("jsonLen %d does not delimit valid JSON in %q", jsonLen, body)
			}
			var hdr struct {
				Outputs []struct {
					Name       string
					Parameters map[string]any
					Data       json.RawMessage
				}
			}
			if err := json.Unmarshal(body[:jsonLen], &hdr); err != nil {
				t.Fatal(err)
			}
			var gotBinary []string
			var wantTail []byte
			for i, o := range hdr.Outputs {
				if size, ok := o.Parameters["binary_data_size"]; ok {
					gotBinary = append(gotBinary, o.Name)
					if o.Data != nil {
						t.Errorf("binary output %q also has data %s", o.Name, o.Data)
					}
					raw := restMustRaw(t, resp.Outputs[i].Data)
					if size != float64(len(raw)) {
						t.Errorf("output %q binary_data_size = %v, want %d", o.Name, size, len(raw))
					}
					wantTail = append(wantTail, raw...)
				} else if o.Data == nil {
					t.Errorf("JSON output %q has no data", o.Name)
				}
			}
			if !reflect.DeepEqual(gotBinary, tc.wantBinary) {
				t.Errorf("binary outputs %v, want %v", gotBinary, tc.wantBinary)
			}
			if !bytes.Equal(body[jsonLen:], wantTail) {
				t.Errorf("binary part %q, want %q", body[jsonLen:], wantTail)
			}
		})
	}
}

func manyRequested(n int) []RequestedOutput {
	out := make([]RequestedOutput, n)
	for i := range out {
		out[i].Name = fmt.Sprint("other", i)
	}
	return out
}

func TestEncodeRESTResponseErrors(t *testing.T) {
	cases := map[string]struct {
		resp *InferResponse
		req  *InferRequest
		want string
	}{
		"nil response": {nil, nil, "nil response"},
		"shape mismatch": {&InferResponse{Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{3}, Data: []float32{1}}}}, nil,
			`output tensor "y": shape [3] needs 3 elements, got 1`},
		"wrong data type": {&InferResponse{Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{1}, Data: []int32{1}}}}, nil,
			`output tensor "y": data of type []int32 does not hold FP32`},
		"BYTES not UTF-8": {&InferResponse{Outputs: []Tensor{{Name: "s", Datatype: BYTES, Shape: []int64{2}, Data: [][]byte{[]byte("ok"), {0xff}}}}}, nil,
			`output "s": BYTES element 1 is not valid UTF-8 and cannot be sent as a JSON string; request the output with "binary_data": true`},
		"NaN parameter": {&InferResponse{Parameters: map[string]any{"x": math.NaN()}}, nil, "response parameters"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := EncodeRESTResponse(tc.resp, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEncodeError(t *testing.T) {
	cases := map[string]string{
		"plain":      "model not found",
		"escapes":    "bad \"x\"\n\t\\ \x00 <tag>",
		"unicode":    "données ✓",
		"bad UTF-8":  "a\xffb",
		"empty":      "",
		"line seps":  "a\u2028b",
		"long ASCII": strings.Repeat("abc", 100),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			body := EncodeError(msg)
			var got struct{ Error *string }
			if err := json.Unmarshal(body, &got); err != nil || got.Error == nil {
				t.Fatalf("EncodeError(%q) = %s: not {\"error\": string}: %v", msg, body, err)
			}
			want := strings.ToValidUTF8(msg, "\ufffd")
			if *got.Error != want {
				t.Errorf("error %q, want %q", *got.Error, want)
			}
		})
	}
}

// TestEncodeBinarySizeParameter: a binary output without parameters of its
// own gets the text encoding/json writes for {"binary_data_size": n}; one
// with parameters gets them merged with it, as before.
func TestEncodeBinarySizeParameter(t *testing.T) {
	req := &InferRequest{Parameters: map[string]any{paramBinaryDataOutput: true}}
	for _, params := range []map[string]any{nil, {}, {"a": 1.5}} {
		resp := &InferResponse{ModelName: "m", Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{4}, Data: []float32{1, 2, 3, 4}, Parameters: params}}}
		body, jsonLen, err := EncodeRESTResponse(resp, req)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{paramBinaryDataSize: 16}
		for k, v := range params {
			want[k] = v
		}
		wantText, _ := json.Marshal(want)
		if !bytes.Contains(body[:jsonLen], append([]byte(`,"parameters":`), wantText...)) {
			t.Errorf("parameters %v: header %s, want parameters %s", params, body[:jsonLen], wantText)
		}
		back, err := DecodeRESTResponse(body, jsonLen)
		if err != nil || !reflect.DeepEqual(back.Outputs[0].Data, []float32{1, 2, 3, 4}) {
			t.Fatalf("parameters %v: decoded %+v, %v", params, back, err)
		}
	}
}
