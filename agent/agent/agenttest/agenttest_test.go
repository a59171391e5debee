package agenttest_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStart: an agent started for a test answers on both APIs, and its
// helpers read what serves.
func TestStart(t *testing.T) {
	root := t.TempDir()
	lin, err := testmodels.Linear("x", "y", [][]float32{{1}, {1}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testmodels.WriteVersion(root, "lin", 3, lin); err != nil {
		t.Fatal(err)
	}
	a := agenttest.Start(t, agent.Config{File: agenttest.File(), ModelDir: root}, nil)
	a.WaitServing(t, "lin", 3)
	if !a.Ready(t, "lin", 3) || a.Ready(t, "lin", 2) {
		t.Fatal("Ready: want v3 ready and v2 not")
	}
	if _, ok := a.Status(t, "nope"); ok {
		t.Fatal("Status of an unknown model: ok")
	}
	if a.Serving(t, "nope") != 0 {
		t.Fatal("an unknown model serves")
	}
	r, err := a.GRPC(t).ModelReady(context.Background(), &pb.ModelReadyRequest{Name: "lin"})
	if err != nil || !r.Ready {
		t.Fatalf("gRPC ModelReady: %v %v", r, err)
	}
}
