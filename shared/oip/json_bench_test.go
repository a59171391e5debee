package oip_test

import (
	"encoding/json"
	"math/rand"
	"syscall"
	"testing"
	"time"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/drover-ml/drover/shared/oip"
)

// The REST JSON codec against encoding/json and the fastest maintained JSON
// libraries we found: bytedance/sonic (a JIT and SIMD native code on amd64
// and arm64, encoding/json elsewhere; its default configuration, which
// validates input as encoding/json does) and goccy/go-json (pure Go), on
// the case: decode an OIP
// request with a 1000×FP32 input, encode a response with a 1000×FP32
// output. b.SetBytes counts the JSON of both, so MB/s is MB of JSON per
// second of wall time; the "MB/cpu-s" metric divides by the process's CPU
// time instead (getrusage), which is what counts on a loaded machine.

type benchTensor struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float32 `json:"data"`
}

type benchRequest struct {
	ID     string        `json:"id,omitempty"`
	Inputs []benchTensor `json:"inputs"`
}

type benchResponse struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id"`
	Outputs      []benchTensor `json:"outputs"`
}

func benchPayload(b *testing.B) (reqBody []byte, resp *oip.InferResponse, respLen int) {
	rng := rand.New(rand.NewSource(1))
	x := make([]float32, 1000)
	y := make([]float32, 1000)
	for i := range x {
		x[i], y[i] = rng.Float32(), rng.Float32()*10-5
	}
	reqBody, err := json.Marshal(benchRequest{Inputs: []benchTensor{{Name: "X", Shape: []int64{1, 1000}, Datatype: "FP32", Data: x}}})
	if err != nil {
		b.Fatal(err)
	}
	resp = &oip.InferResponse{ModelName: "big", ModelVersion: "1", ID: "0123456789abcdef", Outputs: []oip.Tensor{{Name: "Y", Datatype: oip.FP32, Shape: []int64{1, 1000}, Data: y}}}
	body, _, err := oip.EncodeRESTResponse(resp, nil)
	if err != nil {
		b.Fatal(err)
	}
	return reqBody, resp, len(body)
}

func toBench(r *oip.InferResponse) benchResponse {
	return benchResponse{ModelName: r.ModelName, ModelVersion: r.ModelVersion, ID: r.ID,
		Outputs: []benchTensor{{Name: r.Outputs[0].Name, Shape: r.Outputs[0].Shape, Datatype: string(r.Outputs[0].Datatype), Data: r.Outputs[0].Data.([]float32)}}}
}

// BenchmarkRESTJSON1000FP32 decodes the request and encodes the response.
func BenchmarkRESTJSON1000FP32(b *testing.B) {
	reqBody, resp, respLen := benchPayload(b)
	b.Run("drover", func(b *testing.B) {
		b.SetBytes(int64(len(reqBody) + respLen))
		b.ReportAllocs()
		defer cpuMBps(b, len(reqBody)+respLen)()
		for b.Loop() {
			req, err := oip.DecodeRESTRequest(reqBody, -1)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := oip.EncodeRESTResponse(resp, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	wire := toBench(resp)
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(reqBody) + respLen))
		b.ReportAllocs()
		defer cpuMBps(b, len(reqBody)+respLen)()
		for b.Loop() {
			var r benchRequest
			if err := json.Unmarshal(reqBody, &r); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sonic", func(b *testing.B) {
		b.SetBytes(int64(len(reqBody) + respLen))
		b.ReportAllocs()
		defer cpuMBps(b, len(reqBody)+respLen)()
		for b.Loop() {
			var r benchRequest
			if err := sonic.Unmarshal(reqBody, &r); err != nil {
				b.Fatal(err)
			}
			if _, err := sonic.Marshal(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goccy-go-json", func(b *testing.B) {
		b.SetBytes(int64(len(reqBody) + respLen))
		b.ReportAllocs()
		defer cpuMBps(b, len(reqBody)+respLen)()
		for b.Loop() {
			var r benchRequest
			if err := gojson.Unmarshal(reqBody, &r); err != nil {
				b.Fatal(err)
			}
			if _, err := gojson.Marshal(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuMBps reports, when the returned func runs, the bytes per loop over the
// process CPU time spent meanwhile as "MB/cpu-s".
func cpuMBps(b *testing.B, bytesPerOp int) func() {
	start := cpuTime()
	return func() {
		if cpu := cpuTime() - start; cpu > 0 {
			b.ReportMetric(float64(bytesPerOp)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
