package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/bench/internal/proc"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

// Collector is a system under test: a process that takes OTLP/gRPC on
// GRPCAddr and writes to ClickHouse.
type Collector struct {
	*proc.Proc
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
	conf := "clickhouse:\n  database: " + database + "\nauth:\n  tokens_file: " + tokens + "\n"
	if serverTLS != nil {
		conf += "otlp:\n  tls:\n    cert_file: " + serverTLS.cert + "\n    key_file: " + serverTLS.key + "\n"
	}
	if err := os.WriteFile(cfg, []byte(conf+os.Getenv("DROVER_BENCH_EXTRA_CONFIG")), 0o644); err != nil {
		return nil, err
	}
	c := &Collector{Name: "drover", GRPCAddr: proc.FreeAddr(), Admin: proc.FreeAddr(), Token: token, SendToken: sendToken, Database: database,
		Tables: []string{database + ".metrics_gauge", database + ".metrics_histogram"}}
	p, err := proc.Start(bin, []string{"serve", "--config", cfg, "--clickhouse", "clickhouse://" + chAddr + "/default",
		"--data-dir", dir, "--otlp-grpc-addr", c.GRPCAddr, "--otlp-http-addr", proc.FreeAddr(), "--admin-addr", c.Admin,
		"--no-gossip", "--log-level", "warn", "--debug-addr", os.Getenv("DROVER_BENCH_PPROF")}, filepath.Join(dir, "collector.log"))
	if err != nil {
		return nil, err
	}
	c.Proc = p
	if err := p.WaitReady(2*time.Minute, func() bool { return proc.HTTPOK("http://" + c.Admin + "/readyz") }); err != nil {
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
%sexporters:
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
	c := &Collector{Name: otelName, GRPCAddr: proc.FreeAddr(), Database: database,
		Tables: []string{database + ".otel_metrics_gauge", database + ".otel_metrics_histogram"}}
	cfg := filepath.Join(dir, "otelcol.yaml")
	tlsConf := ""
	if serverTLS != nil {
		tlsConf = "        tls:\n          cert_file: " + serverTLS.cert + "\n          key_file: " + serverTLS.key + "\n"
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, otelConfig, c.GRPCAddr, tlsConf, chAddr, database), 0o644); err != nil {
		return nil, err
	}
	p, err := proc.Start(bin, []string{"--config", cfg}, filepath.Join(dir, "otelcol.log"))
	if err != nil {
		return nil, err
	}
	c.Proc = p
	// Pipelines start exporters (which create the schema) before receivers,
	// so an open OTLP port means the exporter is ready.
	if err := p.WaitReady(2*time.Minute, func() bool { return proc.TCPOpen(c.GRPCAddr) }); err != nil {
		p.Stop()
		return nil, fmt.Errorf("otelcol: %w", err)
	}
	return c, nil
}

// tlsFiles are the OTLP receivers' certificate and key and the CA the
// senders verify them with.
type tlsFiles struct{ ca, cert, key string }

// serverTLS is set with -tls: every system serves OTLP/gRPC over TLS.
var serverTLS *tlsFiles

func newTLSFiles(dir string) (*tlsFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := tlstest.NewCAIn(dir, "bench")
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.IssueFiles("collector", "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	return &tlsFiles{ca: ca.File, cert: cert, key: key}, nil
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
