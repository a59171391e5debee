package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/serve"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
	"github.com/drover-ml/drover/shared/tokens"
)

// TestSecuredAgent runs a whole agent configured as an operator would
// lock it down (serving.auth token, serving.tls, control.tls) and checks
// the wiring end to end: inference and feedback over TLS need a client
// token on REST and gRPC, and pins go through the control listener over
// TLS with the control token.
func TestSecuredAgent(t *testing.T) {
	root := t.TempDir()
	publish(t, root, "lin", 1, 1)
	publish(t, root, "lin", 2, 2)
	ca := tlstest.NewCA(t, "agents")
	cert, key := ca.Issue(t, "agent", "127.0.0.1")
	const client = "a-client-token"
	tokensFile := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(tokensFile, []byte(fmt.Sprintf("- {name: app, role: client, sha256: %s}\n", tokens.Hash(client))), 0o600); err != nil {
		t.Fatal(err)
	}
	file := agenttest.File()
	file.Monitoring.Rate = func(r float64) *float64 { return &r }(1)
	file.Serving.Auth = serve.AuthToken
	file.Serving.TokensFile = tokensFile
	file.Serving.TLS = tlsconfig.Server{CertFile: cert, KeyFile: key}
	file.Control.TLS = tlsconfig.Server{CertFile: cert, KeyFile: key}
	if err := file.Validate(); err != nil {
		t.Fatal(err)
	}
	a := agenttest.Start(t, agent.Config{File: file, ModelDir: root}, nil)
	tlsCfg, err := tlsconfig.Client{CAFile: ca.File}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	t.Cleanup(hc.CloseIdleConnections)
	httpsBase := strings.Replace(a.Base, "http://", "https://", 1)
	httpsControl := strings.Replace(a.Control, "http://", "https://", 1)
	do := func(method, url, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.Eventually(t, agenttest.Wait, "lin v2 ready over TLS", func() bool {
		code, _ := do("GET", httpsBase+"/v2/models/lin/versions/2/ready", "", "")
		return code == http.StatusOK
	})
	const infer = `{"id": "req-1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`
	if code, body := do("POST", httpsBase+"/v2/models/lin/infer", "", infer); code != http.StatusUnauthorized {
		t.Fatalf("infer without a token: %d %s, want 401", code, body)
	}
	if code, body := do("POST", httpsBase+"/v2/models/lin/infer", client, infer); code != 200 || !strings.Contains(body, `"model_version":"2"`) {
		t.Fatalf("infer with a client token: %d %s", code, body)
	}
	if code, body := do("POST", httpsBase+"/v2/models/lin/feedback", "", `{"id": "req-1", "label": 4}`); code != http.StatusUnauthorized {
		t.Fatalf("feedback without a token: %d %s, want 401", code, body)
	}
	if code, body := do("POST", httpsBase+"/v2/models/lin/feedback", client, `{"id": "req-1", "label": 4}`); code != 200 || !strings.Contains(body, `"joined":1`) {
		t.Fatalf("feedback with a client token: %d %s", code, body)
	}

	conn, err := grpc.NewClient(a.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g := pb.NewGRPCInferenceServiceClient(conn)
	req := &pb.ModelInferRequest{ModelName: "lin", Inputs: []*pb.ModelInferRequest_InferInputTensor{{
		Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 1}},
	}}}
	if _, err := g.ModelInfer(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC infer without a token: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+client)
	if resp, err := g.ModelInfer(ctx, req); err != nil || resp.GetModelVersion() != "2" {
		t.Fatalf("gRPC infer with a client token: %v %v", resp, err)
	}

	tok := a.ControlToken(t)
	if code, body := do("POST", httpsControl+"/v2/models/lin/versions/1/pin", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("control pin without the token: %d %s, want 401", code, body)
	}
	if code, body := do("POST", httpsControl+"/v2/models/lin/versions/1/pin", tok, ""); code != 200 || !strings.Contains(body, `"pinned":1`) {
		t.Fatalf("control pin over TLS with the token: %d %s", code, body)
	}
	if code, body := do("POST", httpsBase+"/v2/models/lin/infer", client, infer); code != 200 || !strings.Contains(body, `"model_version":"1"`) {
		t.Fatalf("infer after the pin: %d %s, want v1", code, body)
	}
}
