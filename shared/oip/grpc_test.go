package oip

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"math"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
)

// sample is one tensor of each datatype, with the typed wire contents that
// carry it (nil for FP16, which has none). Values sit at the edges of each
// type's range so that a wrong conversion shows.
type sample struct {
	dt       Datatype
	shape    []int64
	data     any
	contents *pb.InferTensorContents
}

func samples() map[string]sample {
	return map[string]sample{
		"bool": {BOOL, []int64{1, 3}, []bool{true, false, true},
			&pb.InferTensorContents{BoolContents: []bool{true, false, true}}},
		"uint8": {UINT8, []int64{3}, []uint8{0, 255, 7},
			&pb.InferTensorContents{UintContents: []uint32{0, 255, 7}}},
		"uint16": {UINT16, []int64{3}, []uint16{0, math.MaxUint16, 300},
			&pb.InferTensorContents{UintContents: []uint32{0, math.MaxUint16, 300}}},
		"uint32": {UINT32, []int64{2}, []uint32{0, math.MaxUint32},
			&pb.InferTensorContents{UintContents: []uint32{0, math.MaxUint32}}},
		"uint64": {UINT64, []int64{2}, []uint64{0, math.MaxUint64},
			&pb.InferTensorContents{Uint64Contents: []uint64{0, math.MaxUint64}}},
		"int8": {INT8, []int64{3}, []int8{math.MinInt8, math.MaxInt8, -1},
			&pb.InferTensorContents{IntContents: []int32{math.MinInt8, math.MaxInt8, -1}}},
		"int16": {INT16, []int64{3}, []int16{math.MinInt16, math.MaxInt16, -1},
			&pb.InferTensorContents{IntContents: []int32{math.MinInt16, math.MaxInt16, -1}}},
		"int32": {INT32, []int64{2}, []int32{math.MinInt32, math.MaxInt32},
			&pb.InferTensorContents{IntContents: []int32{math.MinInt32, math.MaxInt32}}},
		"int64": {INT64, []int64{2}, []int64{math.MinInt64, math.MaxInt64},
			&pb.InferTensorContents{Int64Contents: []int64{math.MinInt64, math.MaxInt64}}},
		"fp16": {FP16, []int64{2}, []uint16{0x3c00, 0xc000}, nil},
		"fp32": {FP32, []int64{2, 2}, []float32{1.5, -2, float32(math.Inf(1)), math.SmallestNonzeroFloat32},
			&pb.InferTensorContents{Fp32Contents: []float32{1.5, -2, float32(math.Inf(1)), math.SmallestNonzeroFloat32}}},
		"fp64": {FP64, []int64{2}, []float64{math.Pi, -math.MaxFloat64},
			&pb.InferTensorContents{Fp64Contents: []float64{math.Pi, -math.MaxFloat64}}},
		"bytes": {BYTES, []int64{3}, [][]byte{[]byte("a"), {}, []byte("héllo")},
			&pb.InferTensorContents{BytesContents: [][]byte{[]byte("a"), {}, []byte("héllo")}}},
		"empty fp32": {FP32, []int64{0, 4}, []float32{}, nil},
		"scalar int64": {INT64, []int64{}, []int64{42},
			&pb.InferTensorContents{Int64Contents: []int64{42}}},
	}
}

// leRaw encodes data as raw contents with encoding/binary, independently of
// AppendRaw, so that the tests check the codec against the protocol rather
// than against itself.
func leRaw(t testing.TB, data any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if v, ok := data.([][]byte); ok {
		for _, e := range v {
			_ = binary.Write(&buf, binary.LittleEndian, uint32(len(e)))
			buf.Write(e)
		}
		return buf.Bytes()
	}
	if err := binary.Write(&buf, binary.LittleEndian, data); err != nil {
		t.Fatalf("encode %T: %v", data, err)
	}
	return buf.Bytes()
}

func TestRequestFromProtoTyped(t *testing.T) {
	for name, s := range samples() {
		if s.dt == FP16 {
			continue // FP16 can only come raw; see the error table
		}
		t.Run(name, func(t *testing.T) {
			m := &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
				{Name: "x", Datatype: string(s.dt), Shape: s.shape, Contents: s.contents},
			}}
			req, err := RequestFromProto(m)
			if err != nil {
				t.Fatal(err)
			}
			checkInputs(t, req, []Tensor{{Name: "x", Datatype: s.dt, Shape: s.shape, Data: s.data}})
		})
	}
}

func TestRequestFromProtoRaw(t *testing.T) {
	for name, s := range samples() {
		t.Run(name, func(t *testing.T) {
			m := &pb.ModelInferRequest{
				Inputs: []*pb.ModelInferRequest_InferInputTensor{
					{Name: "x", Datatype: string(s.dt), Shape: s.shape},
				},
				RawInputContents: [][]byte{leRaw(t, s.data)},
			}
			req, err := RequestFromProto(m)
			if err != nil {
				t.Fatal(err)
			}
			checkInputs(t, req, []Tensor{{Name: "x", Datatype: s.dt, Shape: s.shape, Data: s.data}})
		})
	}
}

func checkInputs(t *testing.T, req *InferRequest, want []Tensor) {
	t.Helper()
	if len(req.Inputs) != len(want) {
		t.Fatalf("got %d inputs, want %d", len(req.Inputs), len(want))
	}
	for i := range want {
		got := req.Inputs[i]
		if err := got.Validate(); err != nil {
			t.Errorf("input %d does not validate: %v", i, err)
		}
		if got.Name != want[i].Name || got.Datatype != want[i].Datatype || !sameShape(got.Shape, want[i].Shape) {
			t.Errorf("input %d is %s %s %v, want %s %s %v", i, got.Name, got.Datatype, got.Shape, want[i].Name, want[i].Datatype, want[i].Shape)
		}
		if !dataEqual(got.Data, want[i].Data) {
			t.Errorf("input %q data is %#v, want %#v", got.Name, got.Data, want[i].Data)
		}
		if !reflect.DeepEqual(got.Parameters, want[i].Parameters) {
			t.Errorf("input %q parameters are %#v, want %#v", got.Name, got.Parameters, want[i].Parameters)
		}
	}
}

// dataEqual compares tensor data; an empty BYTES element equals another
// whether or not its slice is nil.
func dataEqual(a, b any) bool {
	x, ok1 := a.([][]byte)
	y, ok2 := b.([][]byte)
	if ok1 && ok2 {
		return slices.EqualFunc(x, y, bytes.Equal)
	}
	return reflect.DeepEqual(a, b)
}

func sameShape(a, b []int64) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// requestToProto builds the wire form of req, as a client would, with raw
// or typed contents.
func requestToProto(t testing.TB, req *InferRequest, raw bool) *pb.ModelInferRequest {
	t.Helper()
	params, err := paramsToProto(req.Parameters)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.ModelInferRequest{ModelName: "m", Id: req.ID, Parameters: params}
	for _, in := range req.Inputs {
		p, err := paramsToProto(in.Parameters)
		if err != nil {
			t.Fatal(err)
		}
		w := &pb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: string(in.Datatype), Shape: in.Shape, Parameters: p}
		if raw {
			m.RawInputContents = append(m.RawInputContents, leRaw(t, in.Data))
		} else {
			w.Contents = typedToProto(in.Data)
		}
		m.Inputs = append(m.Inputs, w)
	}
	for _, out := range req.Outputs {
		p, err := paramsToProto(out.Parameters)
		if err != nil {
			t.Fatal(err)
		}
		m.Outputs = append(m.Outputs, &pb.ModelInferRequest_InferRequestedOutputTensor{Name: out.Name, Parameters: p})
	}
	return m
}

func TestRequestRoundTrip(t *testing.T) {
	var all []Tensor
	var typed []Tensor
	for _, name := range slices.Sorted(maps.Keys(samples())) {
		s := samples()[name]
		in := Tensor{Name: name, Datatype: s.dt, Shape: s.shape, Data: s.data}
		if name == "int8" {
			in.Parameters = map[string]any{"note": "edge values", "scale": 0.5}
		}
		all = append(all, in)
		if s.dt != FP16 {
			typed = append(typed, in)
		}
	}
	base := InferRequest{
		ID:         "req-1",
		Parameters: map[string]any{"priority": int64(3), "sequence_id": uint64(math.MaxUint64), "sequence_start": true},
		Outputs: []RequestedOutput{
			{Name: "probs", Parameters: map[string]any{"binary_data": true, "classification": int64(2)}},
			{Name: "logits"},
		},
	}
	for name, tc := range map[string]struct {
		inputs []Tensor
		raw    bool
	}{
		"raw, every datatype": {all, true},
		"typed, all but FP16": {typed, false},
		"raw, no inputs":      {nil, true},
		"typed, single input": {typed[:1], false},
	} {
		t.Run(name, func(t *testing.T) {
			want := base
			want.Inputs = tc.inputs
			m := requestToProto(t, &want, tc.raw)
			// Through the wire bytes, as a server sees it.
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var back pb.ModelInferRequest
			if err := proto.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, err := RequestFromProto(&back)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != want.ID || !reflect.DeepEqual(got.Parameters, want.Parameters) || !reflect.DeepEqual(got.Outputs, want.Outputs) {
				t.Errorf("got id %q params %#v outputs %#v; want %q %#v %#v", got.ID, got.Parameters, got.Outputs, want.ID, want.Parameters, want.Outputs)
			}
			checkInputs(t, got, want.Inputs)
		})
	}
}

func TestRequestFromProtoSharesTypedSlices(t *testing.T) {
	fp := []float32{1, 2, 3}
	m := &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{3}, Contents: &pb.InferTensorContents{Fp32Contents: fp}},
	}}
	req, err := RequestFromProto(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Inputs[0].Data.([]float32); &got[0] != &fp[0] {
		t.Error("FP32 typed contents were copied; want the message's slice reused")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := RequestFromProto(m); err != nil {
			t.Fatal(err)
		}
	})
	// The InferRequest, its Inputs slice and the slice header boxed in
	// Tensor.Data; nothing per element.
	if allocs > 3 {
		t.Errorf("RequestFromProto of one typed FP32 input made %v allocations, want <= 3", allocs)
	}
}

func TestRequestFromProtoRawDoesNotAlias(t *testing.T) {
	raw := leRaw(t, []float32{1, 2})
	m := &pb.ModelInferRequest{
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2}}},
		RawInputContents: [][]byte{raw},
	}
	req, err := RequestFromProto(m)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw)
	if got := req.Inputs[0].Data.([]float32); got[0] != 1 || got[1] != 2 {
		t.Errorf("data changed with the message's raw bytes: %v", got)
	}
}

func TestRequestFromProtoErrors(t *testing.T) {
	in := func(name, dt string, shape []int64, c *pb.InferTensorContents) *pb.ModelInferRequest_InferInputTensor {
		return &pb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape, Contents: c}
	}
	ints := func(v ...int32) *pb.InferTensorContents { return &pb.InferTensorContents{IntContents: v} }
	uints := func(v ...uint32) *pb.InferTensorContents { return &pb.InferTensorContents{UintContents: v} }
	fp32 := &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}
	noValue := map[string]*pb.InferParameter{"p": {}}
	for name, tc := range map[string]struct {
		m    *pb.ModelInferRequest
		want string
	}{
		"nil request": {nil, "infer request is nil"},
		"input without name": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("", "FP32", []int64{2}, fp32)}}, "input 0 has no name"},
		"nil input": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{nil}}, "input 0 has no name"},
		"duplicate input": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{2}, fp32), in("x", "FP32", []int64{2}, fp32)}}, `duplicate input "x"`},
		"unknown datatype": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP8", []int64{2}, fp32)}}, `input "x": unknown datatype "FP8"`},
		"lower-case datatype": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "fp32", []int64{2}, fp32)}}, `input "x": unknown datatype "fp32"`},
		"negative dimension": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{-1, 2}, fp32)}}, `input "x": shape[0] is -1`},
		"shape overflow": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{1 << 20, 1 << 20}, fp32)}}, `input "x": shape [1048576 1048576] has too many elements`},
		"too few typed elements": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{3}, fp32)}}, `input "x": shape [3] needs 3 elements, fp32_contents has 2`},
		"too many typed elements": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{1}, fp32)}}, `input "x": shape [1] needs 1 elements, fp32_contents has 2`},
		"no contents": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT64", []int64{2}, nil)}}, `input "x": shape [2] needs 2 elements, int64_contents has 0`},
		"wrong typed field": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "FP32", []int64{2}, ints(1, 2))}}, `input "x": FP32 data belongs in fp32_contents, but int_contents is set`},
		"two typed fields": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT32", []int64{2}, &pb.InferTensorContents{IntContents: []int32{1, 2}, Int64Contents: []int64{1, 2}})}},
			`input "x": INT32 data belongs in int_contents, but int64_contents is set`},
		"INT8 too large": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT8", []int64{2}, ints(1, 300))}}, `input "x": element 1 is 300, out of range for INT8`},
		"INT8 too small": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT8", []int64{1}, ints(-129))}}, `input "x": element 0 is -129, out of range for INT8`},
		"INT16 too large": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT16", []int64{1}, ints(40000))}}, `input "x": element 0 is 40000, out of range for INT16`},
		"INT16 too small": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "INT16", []int64{1}, ints(-40000))}}, `input "x": element 0 is -40000, out of range for INT16`},
		"UINT8 too large": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "UINT8", []int64{1}, uints(256))}}, `input "x": element 0 is 256, out of range for UINT8`},
		"UINT16 too large": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("x", "UINT16", []int64{1}, uints(70000))}}, `input "x": element 0 is 70000, out of range for UINT16`},
		"FP16 typed": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("h", "FP16", []int64{2}, uints(0x3c00, 0))}}, `input "h": FP16 data must be sent in raw_input_contents`},
		"FP16 without contents": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			in("h", "FP16", []int64{2}, nil)}}, `input "h": FP16 data must be sent in raw_input_contents`},
		"fewer raw entries than inputs": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("a", "UINT8", []int64{1}, nil), in("b", "UINT8", []int64{1}, nil)},
			RawInputContents: [][]byte{{1}}}, "raw_input_contents has 1 entries for 2 inputs"},
		"more raw entries than inputs": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("a", "UINT8", []int64{1}, nil)},
			RawInputContents: [][]byte{{1}, {2}}}, "raw_input_contents has 2 entries for 1 inputs"},
		"raw entries without inputs": {&pb.ModelInferRequest{RawInputContents: [][]byte{{1}}},
			"raw_input_contents has 1 entries for 0 inputs"},
		"raw and typed mixed": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("a", "UINT8", []int64{1}, nil), in("b", "UINT8", []int64{1}, uints(1))},
			RawInputContents: [][]byte{{1}, {2}}}, `input "b": has typed contents although raw_input_contents is used`},
		"raw size mismatch": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("x", "FP32", []int64{2}, nil)},
			RawInputContents: [][]byte{make([]byte, 7)}}, `input "x": raw_input_contents[0]: FP32 shape [2] needs 8 bytes of raw data, got 7`},
		"raw BOOL not 0 or 1": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("x", "BOOL", []int64{2}, nil)},
			RawInputContents: [][]byte{{1, 2}}}, `input "x": raw_input_contents[0]: BOOL element 1 is 2`},
		"raw BYTES truncated": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("s", "BYTES", []int64{1}, nil)},
			RawInputContents: [][]byte{{5, 0, 0, 0, 'a'}}}, `input "s": raw_input_contents[0]: BYTES element 0: length 5 exceeds the 1 bytes left`},
		"raw BYTES trailing data": {&pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{in("s", "BYTES", []int64{1}, nil)},
			RawInputContents: [][]byte{{1, 0, 0, 0, 'a', 'b'}}}, `input "s": raw_input_contents[0]: BYTES raw data has 1 bytes after its 1 elements`},
		"request parameter without value": {&pb.ModelInferRequest{Parameters: noValue},
			`request: parameter "p" has no value`},
		"input parameter without value": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{2}, Contents: fp32, Parameters: noValue}}},
			`input "x": parameter "p" has no value`},
		"nil input parameter": {&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{2}, Contents: fp32, Parameters: map[string]*pb.InferParameter{"p": nil}}}},
			`input "x": parameter "p" has no value`},
		"requested output without name": {&pb.ModelInferRequest{Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{}}},
			"requested output 0 has no name"},
		"duplicate requested output": {&pb.ModelInferRequest{Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}, {Name: "y"}}},
			`duplicate requested output "y"`},
		"requested output parameter without value": {&pb.ModelInferRequest{Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{
			{Name: "y", Parameters: noValue}}}, `requested output "y": parameter "p" has no value`},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := RequestFromProto(tc.m)
			if err == nil {
				t.Fatalf("got request %+v, want error containing %q", req, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParameters(t *testing.T) {
	for name, tc := range map[string]struct {
		wire *pb.InferParameter
		goV  any
	}{
		"bool":   {&pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: true}}, true},
		"int64":  {&pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: math.MinInt64}}, int64(math.MinInt64)},
		"string": {&pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: "x"}}, "x"},
		"double": {&pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: 0.25}}, 0.25},
		"uint64": {&pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: math.MaxUint64}}, uint64(math.MaxUint64)},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := paramsFromProto(map[string]*pb.InferParameter{"k": tc.wire})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, map[string]any{"k": tc.goV}) {
				t.Errorf("from wire: got %#v, want %#v", got["k"], tc.goV)
			}
			back, err := paramsToProto(got)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back["k"], tc.wire) {
				t.Errorf("to wire: got %v, want %v", back["k"], tc.wire)
			}
		})
	}
	// Go types without a wire type of their own map to the nearest one.
	for name, tc := range map[string]struct {
		goV  any
		wire *pb.InferParameter
	}{
		"int":     {-7, &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: -7}}},
		"int32":   {int32(-7), &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: -7}}},
		"uint":    {uint(7), &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: 7}}},
		"uint32":  {uint32(7), &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: 7}}},
		"float32": {float32(0.5), &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: 0.5}}},
	} {
		t.Run("widen "+name, func(t *testing.T) {
			got, err := paramsToProto(map[string]any{"k": tc.goV})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got["k"], tc.wire) {
				t.Errorf("got %v, want %v", got["k"], tc.wire)
			}
		})
	}
	if got, err := paramsFromProto(nil); got != nil || err != nil {
		t.Errorf("no parameters gave %#v, %v; want nil map and no error", got, err)
	}
}

// responseFromProto decodes a response the way a client would.
func responseFromProto(t *testing.T, m *pb.ModelInferResponse) []Tensor {
	t.Helper()
	if len(m.RawOutputContents) > 0 && len(m.RawOutputContents) != len(m.Outputs) {
		t.Fatalf("%d raw outputs for %d outputs", len(m.RawOutputContents), len(m.Outputs))
	}
	var out []Tensor
	for i, o := range m.Outputs {
		x := Tensor{Name: o.Name, Datatype: Datatype(o.Datatype), Shape: o.Shape}
		var err error
		if len(m.RawOutputContents) > 0 {
			if o.Contents != nil {
				t.Errorf("output %q has typed contents in a raw response", o.Name)
			}
			x.Data, err = DecodeRaw(x.Datatype, x.Shape, m.RawOutputContents[i])
		} else {
			n, _ := NumElements(x.Shape)
			x.Data, err = typedFromProto(x.Datatype, x.Shape, n, o.Contents)
		}
		if err != nil {
			t.Fatalf("output %q: %v", o.Name, err)
		}
		if x.Parameters, err = paramsFromProto(o.Parameters); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func TestResponseToProto(t *testing.T) {
	for name, s := range samples() {
		for _, raw := range []bool{false, true} {
			mode := map[bool]string{false: "typed", true: "raw"}[raw]
			t.Run(mode+" "+name, func(t *testing.T) {
				r := &InferResponse{ModelName: "m", ModelVersion: "3", ID: "id",
					Outputs: []Tensor{{Name: "y", Datatype: s.dt, Shape: s.shape, Data: s.data}}}
				m, err := ResponseToProto(r, raw)
				if err != nil {
					t.Fatal(err)
				}
				if m.ModelName != "m" || m.ModelVersion != "3" || m.Id != "id" {
					t.Errorf("got model %q version %q id %q", m.ModelName, m.ModelVersion, m.Id)
				}
				o := m.Outputs[0]
				if o.Name != "y" || o.Datatype != string(s.dt) || !sameShape(o.Shape, s.shape) {
					t.Errorf("got output %s %s %v", o.Name, o.Datatype, o.Shape)
				}
				if raw || s.dt == FP16 {
					if o.Contents != nil {
						t.Errorf("raw response has typed contents %v", o.Contents)
					}
					if len(m.RawOutputContents) != 1 || !bytes.Equal(m.RawOutputContents[0], leRaw(t, s.data)) {
						t.Errorf("raw contents are %v, want %v", m.RawOutputContents, leRaw(t, s.data))
					}
					return
				}
				if m.RawOutputContents != nil {
					t.Errorf("typed response has raw contents")
				}
				want := s.contents
				if want == nil {
					want = &pb.InferTensorContents{}
				}
				if !proto.Equal(o.Contents, want) {
					t.Errorf("contents are %v, want %v", o.Contents, want)
				}
			})
		}
	}
}

func TestResponseFP16MakesAllOutputsRaw(t *testing.T) {
	r := &InferResponse{
		Parameters: map[string]any{"took_ms": 1.5},
		Outputs: []Tensor{
			{Name: "a", Datatype: FP32, Shape: []int64{2}, Data: []float32{1, 2}},
			{Name: "h", Datatype: FP16, Shape: []int64{1}, Data: []uint16{0x3c00}, Parameters: map[string]any{"scale": int64(2)}},
			{Name: "s", Datatype: BYTES, Shape: []int64{1}, Data: [][]byte{[]byte("ok")}},
		},
	}
	m, err := ResponseToProto(r, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.RawOutputContents) != 3 {
		t.Fatalf("got %d raw outputs, want all 3", len(m.RawOutputContents))
	}
	// Through the wire bytes, as a client sees it.
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.ModelInferResponse
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := responseFromProto(t, &back)
	if !reflect.DeepEqual(got, r.Outputs) {
		t.Errorf("outputs came back as %#v, want %#v", got, r.Outputs)
	}
	if p, _ := paramsFromProto(back.Parameters); !reflect.DeepEqual(p, r.Parameters) {
		t.Errorf("parameters came back as %#v, want %#v", p, r.Parameters)
	}
}

func TestResponseToProtoErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		r    *InferResponse
		want string
	}{
		"nil response": {nil, "infer response is nil"},
		"data of the wrong type": {&InferResponse{Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{1}, Data: []float64{1}}}},
			`output 0: tensor "y": data of type []float64 does not hold FP32`},
		"shape mismatch": {&InferResponse{Outputs: []Tensor{{Name: "y", Datatype: INT32, Shape: []int64{3}, Data: []int32{1}}}},
			`output 0: tensor "y": shape [3] needs 3 elements, got 1`},
		"unnamed output": {&InferResponse{Outputs: []Tensor{{Datatype: INT32, Shape: []int64{1}, Data: []int32{1}}}},
			"output 0: tensor has no name"},
		"response parameter of unknown type": {&InferResponse{Parameters: map[string]any{"p": []int{1}}},
			`response: parameter "p": type []int has no InferParameter form`},
		"output parameter of unknown type": {&InferResponse{Outputs: []Tensor{{Name: "y", Datatype: INT32, Shape: []int64{1}, Data: []int32{1},
			Parameters: map[string]any{"p": nil}}}}, `output "y": parameter "p": type <nil> has no InferParameter form`},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := ResponseToProto(tc.r, false)
			if err == nil {
				t.Fatalf("got %v, want error containing %q", m, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestModelMetadataToProto(t *testing.T) {
	md := &ModelMetadata{
		Name: "resnet", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:     []TensorMetadata{{Name: "x", Datatype: FP32, Shape: []int64{-1, 3, 224, 224}}},
		Outputs:    []TensorMetadata{{Name: "y", Datatype: FP32, Shape: []int64{-1, 1000}}, {Name: "label", Datatype: BYTES, Shape: []int64{-1}}},
		Parameters: map[string]string{"not": "on the wire"},
	}
	want := &pb.ModelMetadataResponse{
		Name: "resnet", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs: []*pb.ModelMetadataResponse_TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs: []*pb.ModelMetadataResponse_TensorMetadata{
			{Name: "y", Datatype: "FP32", Shape: []int64{-1, 1000}}, {Name: "label", Datatype: "BYTES", Shape: []int64{-1}},
		},
	}
	if got := ModelMetadataToProto(md); !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := ModelMetadataToProto(nil); !proto.Equal(got, &pb.ModelMetadataResponse{}) {
		t.Errorf("nil metadata gave %v, want an empty message", got)
	}
}

// fuzzSeeds are marshalled requests, valid and invalid, for the fuzzer.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	add := func(m *pb.ModelInferRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	var inputs []Tensor
	var typed []Tensor
	for _, name := range slices.Sorted(maps.Keys(samples())) {
		s := samples()[name]
		x := Tensor{Name: name, Datatype: s.dt, Shape: s.shape, Data: s.data}
		inputs = append(inputs, x)
		if s.dt != FP16 {
			typed = append(typed, x)
		}
	}
	req := &InferRequest{ID: "1", Parameters: map[string]any{"a": true, "b": int64(1), "c": "s", "d": 1.5, "e": uint64(2)},
		Outputs: []RequestedOutput{{Name: "y", Parameters: map[string]any{"binary_data": true}}}}
	req.Inputs = inputs
	add(requestToProto(t, req, true))
	req.Inputs = typed
	add(requestToProto(t, req, false))
	add(&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "INT8", Shape: []int64{2}, Contents: &pb.InferTensorContents{IntContents: []int32{1, 300}}}}})
	add(&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "s", Datatype: "BYTES", Shape: []int64{2}}}, RawInputContents: [][]byte{{1, 0, 0, 0, 'a', 9, 9, 9, 9}}})
	add(&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP16", Shape: []int64{-1}}}})
	return seeds
}

// FuzzRequestFromProto feeds arbitrary bytes through the server's decode
// path: it must never panic, and whatever it accepts must be valid.
func FuzzRequestFromProto(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m pb.ModelInferRequest
		if err := proto.Unmarshal(b, &m); err != nil {
			return
		}
		req, err := RequestFromProto(&m)
		if err != nil {
			return
		}
		for i := range req.Inputs {
			if err := req.Inputs[i].Validate(); err != nil {
				t.Fatalf("accepted input %d does not validate: %v", i, err)
			}
		}
		if len(req.Inputs) != len(m.Inputs) || len(req.Outputs) != len(m.Outputs) {
			t.Fatalf("got %d inputs and %d outputs from %d and %d", len(req.Inputs), len(req.Outputs), len(m.Inputs), len(m.Outputs))
		}
	})
}

// echoServer is a GRPCInferenceServiceServer whose one model returns its
// inputs as outputs, answering raw when asked raw.
type echoServer struct {
	pb.UnimplementedGRPCInferenceServiceServer
}

func (echoServer) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

func (echoServer) ModelMetadata(_ context.Context, r *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	if r.Name != "echo" {
		return nil, status.Errorf(codes.NotFound, "model %q not found", r.Name)
	}
	return ModelMetadataToProto(&ModelMetadata{Name: "echo", Platform: "test",
		Inputs: []TensorMetadata{{Name: "x", Datatype: FP32, Shape: []int64{-1}}}}), nil
}

func (echoServer) ModelInfer(_ context.Context, m *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	req, err := RequestFromProto(m)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := ResponseToProto(&InferResponse{ModelName: m.ModelName, ID: req.ID, Parameters: req.Parameters, Outputs: req.Inputs},
		len(m.RawInputContents) > 0)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resp, nil
}

func TestGRPCEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGRPCInferenceServiceServer(srv, echoServer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	live, err := client.ServerLive(ctx, &pb.ServerLiveRequest{})
	if err != nil || !live.Live {
		t.Fatalf("ServerLive: %v, %v", live, err)
	}
	md, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "echo"})
	if err != nil || md.Name != "echo" || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" {
		t.Fatalf("ModelMetadata: %v, %v", md, err)
	}
	if _, err := client.ServerReady(ctx, &pb.ServerReadyRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("ServerReady of a server without it: got %v, want Unimplemented", err)
	}

	var all, typed []Tensor
	for _, name := range slices.Sorted(maps.Keys(samples())) {
		s := samples()[name]
		x := Tensor{Name: name, Datatype: s.dt, Shape: s.shape, Data: s.data}
		all = append(all, x)
		if s.dt != FP16 {
			typed = append(typed, x)
		}
	}
	for name, tc := range map[string]struct {
		inputs []Tensor
		raw    bool
	}{
		"raw":   {all, true},
		"typed": {typed, false},
	} {
		t.Run(name, func(t *testing.T) {
			req := &InferRequest{ID: "e2e-" + name, Parameters: map[string]any{"n": int64(1)}, Inputs: tc.inputs}
			resp, err := client.ModelInfer(ctx, requestToProto(t, req, tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Id != req.ID || resp.ModelName != "m" {
				t.Errorf("got id %q model %q", resp.Id, resp.ModelName)
			}
			if gotRaw := len(resp.RawOutputContents) > 0; gotRaw != tc.raw {
				t.Errorf("response raw is %v, want %v", gotRaw, tc.raw)
			}
			got := responseFromProto(t, resp)
			if len(got) != len(tc.inputs) {
				t.Fatalf("got %d outputs, want %d", len(got), len(tc.inputs))
			}
			for i := range got {
				w := tc.inputs[i]
				if got[i].Name != w.Name || got[i].Datatype != w.Datatype || !sameShape(got[i].Shape, w.Shape) || !dataEqual(got[i].Data, w.Data) {
					t.Errorf("output %d is %+v, want %+v", i, got[i], w)
				}
			}
		})
	}

	bad := &pb.ModelInferRequest{ModelName: "echo", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "INT8", Shape: []int64{1}, Contents: &pb.InferTensorContents{IntContents: []int32{300}}}}}
	_, err = client.ModelInfer(ctx, bad)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "out of range for INT8") {
		t.Errorf("bad request: got %v, want InvalidArgument naming the range", err)
	}
}

func BenchmarkRequestFromProto(b *testing.B) {
	data := make([]float32, 3*224*224)
	for i := range data {
		data[i] = float32(i)
	}
	req := &InferRequest{Inputs: []Tensor{{Name: "x", Datatype: FP32, Shape: []int64{1, 3, 224, 224}, Data: data}}}
	for _, raw := range []bool{false, true} {
		m := requestToProto(b, req, raw)
		b.Run(map[bool]string{false: "typed", true: "raw"}[raw], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := RequestFromProto(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkResponseToProto(b *testing.B) {
	data := make([]float32, 1000)
	r := &InferResponse{Outputs: []Tensor{{Name: "y", Datatype: FP32, Shape: []int64{1, 1000}, Data: data}}}
	for _, raw := range []bool{false, true} {
		b.Run(map[bool]string{false: "typed", true: "raw"}[raw], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ResponseToProto(r, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
