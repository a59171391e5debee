// Package agenttest runs a whole drover-agent, assembled by package agent
// exactly as the command assembles it, on loopback for the tests of the
// packages it is made of, and talks to it through its API.
package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/versions"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// Wait bounds what the helpers poll for (a version serving).
const Wait = 20 * time.Second

// File returns the configuration tests start from: the defaults with one
// ONNX Runtime thread per session, one warm-up run, a 20 ms debounce and
// OTLP export off.
func File() config.Config {
	f := config.Default()
	f.Runtime = runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}
	f.Loading.WarmupRuns = 1
	f.Watch.Debounce = 20 * time.Millisecond
	f.Telemetry.Disabled = true
	return f
}

// Agent is a running agent.
type Agent struct {
	// Base is the REST API's base URL, http://127.0.0.1:port.
	Base string
	// GRPCAddr is the gRPC API's address.
	GRPCAddr string
	// Control is the control API's base URL, http://127.0.0.1:port.
	Control string
	// DataDir is the agent's data dir (its control.token is there).
	DataDir string
	// HTTP is a client for Base and Control; its idle connections close
	// when the test ends.
	HTTP *http.Client
}

// Start runs agent.Run with cfg on loopback listeners until the test ends,
// and fails the test if Run fails. cfg.ModelDir is required; cfg.DataDir
// defaults to a temporary directory, cfg.DrainTimeout to 5 s. The agent
// logs to nowhere unless log is set.
func Start(t testing.TB, cfg agent.Config, log *slog.Logger) *Agent {
	t.Helper()
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	httpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		httpL.Close()
		t.Fatal(err)
	}
	controlL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		httpL.Close()
		grpcL.Close()
		t.Fatal(err)
	}
	a := &Agent{
		Base: "http://" + httpL.Addr().String(), GRPCAddr: grpcL.Addr().String(),
		Control: "http://" + controlL.Addr().String(), DataDir: cfg.DataDir,
		HTTP: &http.Client{Timeout: 30 * time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, cfg, agent.Listeners{HTTP: httpL, GRPC: grpcL, Control: controlL}, log)
	}()
	t.Cleanup(func() {
		a.HTTP.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent.Run: %v", err)
		}
	})
	return a
}

// GRPC returns a client of the agent's gRPC API, closed when the test ends.
func (a *Agent) GRPC(t testing.TB) pb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(a.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn)
}

// Do sends a request to the REST API and returns the status, the headers
// and the body. A transport error fails the test.
func (a *Agent) Do(t testing.TB, method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	return a.do(t, a.Base, method, path, body, hdr)
}

// ControlToken returns the agent's control token (<DataDir>/control.token),
// waiting for the agent to have written it.
func (a *Agent) ControlToken(t testing.TB) string {
	t.Helper()
	var tok string
	testenv.EventuallyNil(t, Wait, "control.token written", func() error {
		b, err := os.ReadFile(filepath.Join(a.DataDir, agent.ControlTokenFile))
		tok = strings.TrimSpace(string(b))
		return err
	})
	return tok
}

// ControlDo sends a request to the control API with the control token and
// returns the status, the headers and the body.
func (a *Agent) ControlDo(t testing.TB, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	return a.do(t, a.Control, method, path, body, map[string]string{"Authorization": "Bearer " + a.ControlToken(t)})
}

func (a *Agent) do(t testing.TB, base, method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// Status returns the model's status (GET /v2/models/{model}/status); ok is
// false when the agent does not answer it with 200 (the model is unknown).
func (a *Agent) Status(t testing.TB, model string) (st versions.ModelStatus, ok bool) {
	t.Helper()
	code, _, body := a.Do(t, "GET", "/v2/models/"+model+"/status", nil, nil)
	if code != http.StatusOK {
		return st, false
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status of %s: %v: %s", model, err, body)
	}
	return st, true
}

// Serving returns the model's default version: the one that answers
// requests that name no version; 0 when none does.
func (a *Agent) Serving(t testing.TB, model string) int64 {
	t.Helper()
	st, _ := a.Status(t, model)
	for _, v := range st.Versions {
		if v.Default && v.State == "serving" {
			return v.Version
		}
	}
	return 0
}

// WaitServing waits until version is the model's default version.
func (a *Agent) WaitServing(t testing.TB, model string, version int64) {
	t.Helper()
	testenv.EventuallyNil(t, Wait, fmt.Sprintf("%s v%d serving", model, version), func() error {
		if a.Serving(t, model) == version {
			return nil
		}
		st, _ := a.Status(t, model)
		return fmt.Errorf("status %+v", st)
	})
}

// Ready reports whether the model's version serves (GET
// .../versions/{v}/ready answers 200).
func (a *Agent) Ready(t testing.TB, model string, version int64) bool {
	t.Helper()
	code, _, _ := a.Do(t, "GET", "/v2/models/"+model+"/versions/"+strconv.FormatInt(version, 10)+"/ready", nil, nil)
	return code == http.StatusOK
}
