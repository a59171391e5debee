package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestMain runs the tests on one ClickHouse engine and then fails if any
// goroutine they started is still running.
func TestMain(m *testing.M) {
	code := testenv.RunWithClickHouse(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestServeExitsNonZeroWhenAComponentFails: the admin API cannot listen
// (its address is taken) while the other components are already running;
// serve stops them all and exits 1, naming the failure.
func TestServeExitsNonZeroWhenAComponentFails(t *testing.T) {
	db := testenv.ClickHouse(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// Without jobs, as without a cluster, the admin listener opens after
	// the receivers (jobs and the ring need its address before they start:
	// then a taken address fails the start instead).
	conf := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(conf, []byte("jobs: {executor: none}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := &testenv.Buffer{}, &testenv.Buffer{}
	code := make(chan int, 1)
	go func() {
		code <- realMain([]string{"serve", "--config", conf, "--clickhouse", db.DSN, "--data-dir", t.TempDir(), "--no-gossip",
			"--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--admin-addr", taken.Addr().String()}, stdout, stderr)
	}()
	select {
	case c := <-code:
		if c != 1 {
			t.Errorf("exit code %d, want 1; stderr:\n%s", c, stderr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve still running a minute after its admin API failed; stderr:\n%s", stderr)
	}
	out := stderr.String()
	last := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	if !strings.HasPrefix(last, "drover-collector: admin: admin listen") || !strings.Contains(last, "address already in use") {
		t.Errorf("last line %q, want the admin API's listen error; stderr:\n%s", last, out)
	}
	if !strings.Contains(out, "OTLP receivers listening") {
		t.Errorf("the receivers never started, so this was not a failure after start; stderr:\n%s", out)
	}
}
