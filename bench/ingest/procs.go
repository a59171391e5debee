package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-ml/drover/collector/auth"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it is
// 100 on every Linux platform Go supports.
const clkTck = 100

// cpuSeconds returns user+system CPU seconds of pid.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck, nil
}

// statusKB returns a "Vm…:" field of /proc/<pid>/status in bytes.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Proc is a collector under test, run as its own process.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	Log  string
}

func startProc(bin string, args []string, logPath string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: exec.Command(bin, args...), done: make(chan struct{}), Log: logPath}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPU returns the process's user+system CPU seconds so far.
func (p *Proc) CPU() float64 { c, _ := cpuSeconds(p.PID()); return c }

// PeakRSS returns VmHWM, the peak resident set size.
func (p *Proc) PeakRSS() int64 { return statusKB(p.PID(), "VmHWM") }

// waitReady polls check until it succeeds, the process exits or timeout.
func (p *Proc) waitReady(timeout time.Duration, check func() bool) error {
	deadline := time.Now().Add(timeout)
	for !check() {
		select {
		case <-p.done:
			return fmt.Errorf("exited during start: %s", p.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %s", timeout, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (p *Proc) tail() string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop sends SIGTERM, waits up to 60 s, then kills.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// goBuild builds a main package into out; dir is the module directory to
// build in ("" for the current one).
func goBuild(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (in %s): %w", pkg, dir, err)
	}
	return nil
}

// repoRoot is the main module's directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run from inside the drover module")
	}
	return filepath.Dir(mod), nil
}

// Collector is a system under test: a process that takes OTLP/gRPC on
// GRPCAddr and writes to ClickHouse.
type Collector struct {
	*Proc
	Name     string
	GRPCAddr string
	Admin    string // Drover only: admin address for /metrics
	Token    string // Drover only: a reader token for /metrics
	// SendToken is the token senders present (Drover's receivers take an
	// agent token; the OTel Collector ignores it).
	SendToken string
	Database  string
	Tables    []string // the gauge and histogram tables it writes
}

func startDrover(bin, dir, chAddr, database string) (*Collector, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// /metrics needs a reader token: one of our own through auth.tokens_file,
	// so it works whatever tokens the database already holds.
	// The senders need an agent token, the same way.
	token, sum, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	sendToken, sendSum, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "- name: bench\n  role: reader\n  sha256: %s\n- name: bench-agent\n  role: agent\n  sha256: %s\n", sum, sendSum), 0o600); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfg, []byte("clickhouse:\n  database: "+database+"\nauth:\n  tokens_file: "+tokens+"\n"+os.Getenv("DROVER_BENCH_EXTRA_CONFIG")), 0o644); err != nil {
		return nil, err
	}
	c := &Collector{Name: "drover", GRPCAddr: freeAddr(), Admin: freeAddr(), Token: token, SendToken: sendToken, Database: database,
		Tables: []string{database + ".metrics_gauge", database + ".metrics_histogram"}}
	p, err := startProc(bin, []string{"serve", "--config", cfg, "--clickhouse", "clickhouse://" + chAddr + "/default",
		"--data-dir", dir, "--otlp-grpc-addr", c.GRPCAddr, "--otlp-http-addr", freeAddr(), "--admin-addr", c.Admin,
		"--no-gossip", "--log-level", "warn", "--debug-addr", os.Getenv("DROVER_BENCH_PPROF")}, filepath.Join(dir, "collector.log"))
	if err != nil {
		return nil, err
	}
	c.Proc = p
	if err := p.waitReady(2*time.Minute, func() bool { return httpOK("http://" + c.Admin + "/readyz") }); err != nil {
		p.Stop()
		return nil, fmt.Errorf("drover-collector: %w", err)
	}
	return c, nil
}

// otelConfig follows the clickhouseexporter README: no batch processor,
// batching inside the exporter's sending_queue (min_size 5000 rows, flush
// after 5 s, 10 consumers). block_on_overflow makes a full queue push back
// on the receiver instead of dropping data, so stored rows can be exact.
const otelConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
        max_recv_msg_size_mib: 64
exporters:
  clickhouse:
    endpoint: tcp://%s?dial_timeout=10s
    database: %s
    create_schema: true
    timeout: 10s
    sending_queue:
      enabled: true
      num_consumers: 10
      block_on_overflow: true
      batch:
        min_size: 5000
        flush_timeout: 5s
    retry_on_failure:
      enabled: true
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [clickhouse]
`

// otelName is the exporter's name in the results.
const otelName = "otelcol+clickhouseexporter"

func startOtel(bin, dir, chAddr, database string) (*Collector, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Collector{Name: otelName, GRPCAddr: freeAddr(), Database: database,
		Tables: []string{database + ".otel_metrics_gauge", database + ".otel_metrics_histogram"}}
	cfg := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, otelConfig, c.GRPCAddr, chAddr, database), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(bin, []string{"--config", cfg}, filepath.Join(dir, "otelcol.log"))
	if err != nil {
		return nil, err
	}
	c.Proc = p
	// Pipelines start exporters (which create the schema) before receivers,
	// so an open OTLP port means the exporter is ready.
	if err := p.waitReady(2*time.Minute, func() bool { return tcpOpen(c.GRPCAddr) }); err != nil {
		p.Stop()
		return nil, fmt.Errorf("otelcol: %w", err)
	}
	return c, nil
}

// droverMetric reads one un-labelled series (or the sum over labels) from
// the Drover collector's /metrics.
func droverMetric(admin, token, name string) (float64, error) {
	req, err := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s not in /metrics", name)
	}
	return sum, nil
}
