package agent_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func publish(t *testing.T, root, model string, version int64, k float32) {
	t.Helper()
	b, err := testmodels.Linear("x", "y", [][]float32{{k}, {k}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testmodels.WriteVersion(root, model, version, b); err != nil {
		t.Fatal(err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunServesAndStops runs an agent with every listener: it serves the
// protocol, /metrics (with the loaded-versions gauge) and pprof, names each
// component once per log line, and returns nil once its context ends.
func TestRunServesAndStops(t *testing.T) {
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	publish(t, root, "lin", 1, 1)
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	httpL, grpcL, debugL := listen(t), listen(t), listen(t)
	base := "http://" + httpL.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{File: agenttest.File(), ModelDir: root, DataDir: t.TempDir(), DrainTimeout: 5 * time.Second},
			agent.Listeners{HTTP: httpL, GRPC: grpcL, Debug: debugL}, log)
	}()
	testenv.Eventually(t, agenttest.Wait, "lin v1 ready", func() bool {
		code, _ := get(t, base+"/v2/models/lin/versions/1/ready")
		return code == http.StatusOK
	})
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `drover_model_loaded_versions{drover_model="lin",`) {
		t.Errorf("/metrics: %d, no loaded-versions gauge for lin:\n%.2000s", code, body)
	}
	if code, body := get(t, "http://"+debugL.Addr().String()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof: %d %.200s", code, body)
	}
	stopRun(t, cancel, done)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	components := map[string]bool{}
	for _, l := range lines {
		if n := strings.Count(l, " component="); n > 1 {
			t.Errorf("log line names its component %d times: %s", n, l)
		}
		if i := strings.Index(l, " component="); i >= 0 {
			components[strings.Fields(l[i+len(" component="):])[0]] = true
		}
	}
	for _, c := range []string{"versions", "serve", "watch"} {
		if !components[c] {
			t.Errorf("no log line from component=%s in:\n%s", c, logs.String())
		}
	}
	if strings.Contains(logs.String(), "registry") {
		t.Errorf("the logs still say registry:\n%s", logs.String())
	}
}

// stopRun cancels an agent's Run and waits for it to return nil, then
// closes the test's idle connections to it.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(agenttest.Wait):
		t.Fatal("Run did not return after its context ended")
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestReload: each value on Config.Reload re-reads the configuration file
// and applies its version policies; a file that does not load changes
// nothing.
func TestReload(t *testing.T) {
	root := t.TempDir()
	for v := int64(1); v <= 2; v++ {
		publish(t, root, "lin", v, float32(v))
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("models: {lin: {policy: {specific: [1]}}}\n")
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	test := agenttest.File()
	test.Models = file.Models
	reload := make(chan struct{})
	a := agenttest.Start(t, agent.Config{File: test, ConfigPath: path, ModelDir: root, Reload: reload}, nil)
	a.WaitServing(t, "lin", 1)

	write("models: {lin: {policy: {specific: [2]}}}\n")
	reload <- struct{}{}
	a.WaitServing(t, "lin", 2)

	write("models: {lin: {policy: {specific: [0]}}}\n") // invalid
	reload <- struct{}{}
	reload <- struct{}{} // the loop has handled the first one
	if st, _ := a.Status(t, "lin"); st.Policy != "specific [2]" || a.Serving(t, "lin") != 2 {
		t.Fatalf("after a bad file: policy %q, serving v%d; want specific [2], v2", st.Policy, a.Serving(t, "lin"))
	}
}

// TestFailingComponentStopsAgent: a component that fails (here the gRPC
// server, whose listener breaks) stops the whole agent, which returns the
// failure after stopping the others.
func TestFailingComponentStopsAgent(t *testing.T) {
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	httpL, grpcL := listen(t), listen(t)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(context.Background(), agent.Config{File: agenttest.File(), ModelDir: t.TempDir(), DataDir: t.TempDir(), DrainTimeout: 5 * time.Second},
			agent.Listeners{HTTP: httpL, GRPC: grpcL}, nil)
	}()
	testenv.Eventually(t, agenttest.Wait, "the agent ready", func() bool {
		code, _ := get(t, "http://"+httpL.Addr().String()+"/v2/health/ready")
		return code == http.StatusOK
	})
	http.DefaultClient.CloseIdleConnections()
	grpcL.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve: grpc") {
			t.Fatalf("Run returned %v, want the gRPC server's failure", err)
		}
	case <-time.After(agenttest.Wait):
		t.Fatal("the agent kept running after a component failed")
	}
}

// TestBuildErrorClosesListeners: an agent that cannot start (no model
// directory) says why and leaves no listener open.
func TestBuildErrorClosesListeners(t *testing.T) {
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	httpL, grpcL := listen(t), listen(t)
	err := agent.Run(context.Background(), agent.Config{File: agenttest.File(), DataDir: t.TempDir()}, agent.Listeners{HTTP: httpL, GRPC: grpcL}, nil)
	if err == nil || !strings.Contains(err.Error(), "root") {
		t.Fatalf("Run without a model directory: %v", err)
	}
	for _, l := range []net.Listener{httpL, grpcL} {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Errorf("listener %s still open", l.Addr())
		}
	}
}
