// Package agentproc builds drover-agent and runs it as a separate process on
// loopback for benchmarks, so its CPU and memory are its own.
package agentproc

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/drover-ml/drover/bench/internal/proc"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
)

// Agent is a running drover-agent.
type Agent struct {
	cmd      *exec.Cmd
	HTTPAddr string
	GRPCAddr string
	// ControlAddr is the control listener (pin, canary, shadow); its
	// requests need ControlToken (the agent's <data-dir>/control.token).
	ControlAddr string
	ModelDir    string
	DataDir     string
	Log         string
}

// ControlToken returns the agent's control token, which it wrote in its
// data dir on start.
func (a *Agent) ControlToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.DataDir, "control.token"))
	return strings.TrimSpace(string(b)), err
}

// Build compiles drover-agent into dir and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "drover-agent")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/drover-ml/drover/agent/cmd/drover-agent")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build drover-agent: %w", err)
	}
	return bin, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs bin on modelDir with config (the agent's YAML, written to
// dataDir/agent.yaml; empty for none) and extra flags (e.g. --debug-addr)
// and waits until it reports ready.
func Start(bin, modelDir, dataDir, config string, extra ...string) (*Agent, error) {
	h, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := freeAddr()
	if err != nil {
		return nil, err
	}
	a := &Agent{HTTPAddr: h, GRPCAddr: g, ControlAddr: c, ModelDir: modelDir, DataDir: dataDir, Log: filepath.Join(dataDir, "agent.log")}
	// Each agent gets its own control port: the default (127.0.0.1:8082)
	// may be taken by another agent on this machine.
	args := []string{"--model-dir", modelDir, "--http-addr", h, "--grpc-addr", g, "--control-addr", c, "--data-dir", dataDir, "--log-level", "warn"}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if config != "" {
		path := filepath.Join(dataDir, "agent.yaml")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config", path)
	}
	args = append(args, extra...)
	logf, err := os.Create(a.Log)
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + h + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			a.Stop()
			b, _ := os.ReadFile(a.Log)
			return nil, fmt.Errorf("agent not ready after 60s: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client dials the agent's gRPC port; close the connection when done.
func (a *Agent) Client() (pb.GRPCInferenceServiceClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient(a.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return pb.NewGRPCInferenceServiceClient(conn), conn, nil
}

// RSS returns the agent's resident set size in bytes.
func (a *Agent) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// CPUSeconds returns the agent's user+system CPU time.
func (a *Agent) CPUSeconds() (float64, error) { return proc.CPUSeconds(a.cmd.Process.Pid) }

// Stop sends SIGTERM and waits for the agent to drain and exit; after 30 s
// it is killed.
func (a *Agent) Stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	kill := time.AfterFunc(30*time.Second, func() { _ = a.cmd.Process.Kill() })
	defer kill.Stop()
	return a.cmd.Wait()
}
