package serve_test

import (
	"context"
	"testing"

	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testmodels"
)

// BenchmarkGRPCInferBig measures a whole gRPC inference (client and server
// in this process) on a 1000x1000 linear model; bench/overhead compares the
// agent with the raw runtime across processes.
func BenchmarkGRPCInferBig(b *testing.B) {
	root := b.TempDir()
	big, err := testmodels.Big(1000, 1000, 1)
	if err != nil {
		b.Fatal(err)
	}
	publish(b, root, "big", 1, big)
	a := startAgent(b, root, serve.Config{})
	a.WaitServing(b, "big", 1)
	raw, _ := oip.AppendRaw(nil, make([]float32, 1000))
	req := &pb.ModelInferRequest{
		ModelName:        "big",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "X", Datatype: "FP32", Shape: []int64{1, 1000}}},
		RawInputContents: [][]byte{raw},
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.grpc.ModelInfer(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
