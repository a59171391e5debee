package serve

import (
	"context"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	agentruntime "github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// BenchmarkGRPCServerOptions is an A/B of gRPC server options in one
// process, on a tiny and on a 1000-input model with 4 clients: "old" is
// NewGRPCServer as it is; "workers" adds NumStreamWorkers (goroutines whose
// stacks have grown, instead of one per RPC: copystack shows in the agent's
// profile), "window" a 1 MiB flow-control window (no BDP pings). Besides
// ns/op it reports the process's CPU per request (cpu-µs/op), the number to
// compare on a loaded machine. Neither variant was adopted: alternating
// runs on the 2-CPU development machine gave 97.5 vs 100.6 cpu-µs/op
// (workers, tiny) and mixed ±15 % (window); run it again on a quiet one.
func BenchmarkGRPCServerOptions(b *testing.B) {
	tiny, err := testmodels.Linear("x", "y", [][]float32{{1}, {2}}, []float32{0})
	if err != nil {
		b.Fatal(err)
	}
	big, err := testmodels.Big(1000, 1000, 1)
	if err != nil {
		b.Fatal(err)
	}
	s := benchServer(b, map[string][]byte{"tiny": tiny, "big": big})
	variants := []struct {
		name string
		opts []grpc.ServerOption
	}{{"old", nil}, {"workers", []grpc.ServerOption{grpc.NumStreamWorkers(2)}},
		{"window", []grpc.ServerOption{grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(1 << 20)}}}
	reqs := map[string]*pb.ModelInferRequest{}
	for name, in := range map[string]struct {
		input string
		n     int
	}{"tiny": {"x", 2}, "big": {testmodels.BigInput, 1000}} {
		raw, _ := oip.AppendRaw(nil, make([]float32, in.n))
		reqs[name] = &pb.ModelInferRequest{ModelName: name,
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: in.input, Datatype: "FP32", Shape: []int64{1, int64(in.n)}}},
			RawInputContents: [][]byte{raw}}
	}
	for _, model := range []string{"tiny", "big"} {
		for _, v := range variants {
			b.Run(model+"/"+v.name, func(b *testing.B) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				g := s.NewGRPCServer(v.opts...)
				go g.Serve(l)
				defer g.Stop()
				conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				c := pb.NewGRPCInferenceServiceClient(conn)
				req := reqs[model]
				if _, err := c.ModelInfer(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				cpu0 := processCPU()
				b.ResetTimer()
				b.SetParallelism(2) // 4 clients on 2 CPUs
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.ModelInfer(context.Background(), req); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServer is a Server (no telemetry, no monitor) over a versions set
// of ONNX Runtime with one thread per session, serving version 1 of each
// model once it is ready.
func benchServer(b *testing.B, models map[string][]byte) *Server {
	b.Helper()
	if err := agentruntime.Init(testenv.ONNXRuntimeLib(b)); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	set, err := versions.New(versions.Config{Backend: &agentruntime.ONNX{Options: agentruntime.Options{IntraOpThreads: 1, InterOpThreads: 1}}, WarmupRuns: 1, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	for name, m := range models {
		if _, err := testmodels.WriteVersion(root, name, 1, m); err != nil {
			b.Fatal(err)
		}
	}
	snap, err := watch.Scan(root)
	if err != nil {
		b.Fatal(err)
	}
	for name := range models {
		set.Sync(name, snap[name])
	}
	s := New(Config{}, set, nil, log)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = set.Close(ctx)
	})
	testenv.Eventually(b, 60*time.Second, "models serving", func() bool {
		for name := range models {
			if ok, _ := s.ModelReady(name, 1); !ok {
				return false
			}
		}
		return true
	})
	return s
}
