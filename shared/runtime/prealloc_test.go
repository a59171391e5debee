package runtime

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func loadBytes(tb testing.TB, onnx []byte) *onnxModel {
	tb.Helper()
	if err := Init(testenv.ONNXRuntimeLib(tb)); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "model.onnx")
	if err := os.WriteFile(path, onnx, 0o644); err != nil {
		tb.Fatal(err)
	}
	m, err := (&ONNX{Options: Options{IntraOpThreads: 1, InterOpThreads: 1}}).Load(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m.(*onnxModel)
}

func classifier(tb testing.TB) []byte {
	tb.Helper()
	b, err := testmodels.Classifier([][]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}}, []float32{0.1, 0.2, 0.3})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestPreallocatedOutputsSameResults: outputs allocated ahead in Go memory
// give exactly what outputs ONNX Runtime allocates give, for a batch of 1
// and of 3.
func TestPreallocatedOutputsSameResults(t *testing.T) {
	m := loadBytes(t, classifier(t))
	for _, batch := range []int64{1, 3} {
		x := make([]float32, 4*batch)
		for i := range x {
			x[i] = float32(i%5) - 1.5
		}
		in := []oip.Tensor{{Name: testmodels.ClassifierInput, Datatype: oip.FP32, Shape: []int64{batch, 4}, Data: x}}
		m.noPrealloc.Store(true)
		want, err := m.Run(context.Background(), in, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.noPrealloc.Store(false)
		got, err := m.Run(context.Background(), in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.noPrealloc.Load() {
			t.Fatal("preallocation was turned off on a model whose declared shapes are right")
		}
		if len(got) != len(want) {
			t.Fatalf("batch %d: %d outputs, want %d", batch, len(got), len(want))
		}
		for i := range want {
			if got[i].Name != want[i].Name || got[i].Datatype != want[i].Datatype || !equalShape(got[i].Shape, want[i].Shape) ||
				!equalData(got[i].Data, want[i].Data) {
				t.Fatalf("batch %d output %d: preallocated %+v, ORT-allocated %+v", batch, i, got[i], want[i])
			}
		}
	}
}

// TestPreallocationFallsBack: a model whose declared output shape is wrong
// still answers (the run is retried with outputs ONNX Runtime allocates)
// and preallocation is turned off for it.
func TestPreallocationFallsBack(t *testing.T) {
	m := loadBytes(t, classifier(t))
	for i := range m.sig.Outputs {
		if m.sig.Outputs[i].Datatype == oip.FP32 {
			m.sig.Outputs[i].Shape = []int64{-1, 7} // declared wrong: the model gives 3 columns
		}
	}
	in := []oip.Tensor{{Name: testmodels.ClassifierInput, Datatype: oip.FP32, Shape: []int64{2, 4}, Data: make([]float32, 8)}}
	out, err := m.Run(context.Background(), in, nil)
	if err != nil {
		t.Fatalf("run with a wrong declared shape: %v", err)
	}
	if !m.noPrealloc.Load() {
		t.Fatal("preallocation still on after a mismatch")
	}
	for _, o := range out {
		if o.Datatype == oip.FP32 && !equalShape(o.Shape, []int64{2, 3}) {
			t.Fatalf("output %q shape %v, want [2 3]", o.Name, o.Shape)
		}
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalData(a, b any) bool {
	ab, bb := oip.RawSize(a), oip.RawSize(b)
	if ab != bb {
		return false
	}
	x, _ := oip.AppendRaw(nil, a)
	y, _ := oip.AppendRaw(nil, b)
	return string(x) == string(y)
}

// BenchmarkRunOutputs is the A/B of output preallocation in one process:
// "ort" lets ONNX Runtime allocate outputs (onnxruntime_go describes and
// copies them out), "go" allocates them ahead in Go memory; on the tiny
// classifier and on the 1000×1000 model. cpu-µs/op is the process's CPU per
// run (-count interleaves nothing, so compare within one invocation).
func BenchmarkRunOutputs(b *testing.B) {
	big, err := testmodels.Big(1000, 1000, 7)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		onnx  []byte
		input string
		n     int64
	}{{"tiny", classifier(b), testmodels.ClassifierInput, 4}, {"big", big, testmodels.BigInput, 1000}} {
		m := loadBytes(b, tc.onnx)
		in := []oip.Tensor{{Name: tc.input, Datatype: oip.FP32, Shape: []int64{1, tc.n}, Data: make([]float32, tc.n)}}
		for round := 0; round < 3; round++ {
			for _, v := range []string{"ort", "go"} {
				b.Run(tc.name+"/"+v, func(b *testing.B) {
					m.noPrealloc.Store(v == "ort")
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					cpu0 := cpuNow()
					for b.Loop() {
						if _, err := m.Run(ctx, in, nil); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(cpuNow()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
				})
			}
		}
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
