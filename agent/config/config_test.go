package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		_, err := Load(path)
		return err
	})
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.good.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValues(t *testing.T) {
	b, err := os.ReadFile("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.RequestTimeout != 5*time.Second || c.Serving.MaxBatch != 64 || c.Watch.Debounce != 50*time.Millisecond {
		t.Errorf("serving/watch = %+v %+v", c.Serving, c.Watch)
	}
	if c.Process.GoMaxProcs != 2 || !c.Process.AdaptiveGoMaxProcs || c.Process.TimerSlack != time.Millisecond || c.Process.SysmonTimerSlack != 4*time.Millisecond || c.Process.GCMinHeapBytes != 32<<20 {
		t.Errorf("process = %+v, want gomaxprocs 2, adaptive_gomaxprocs, timer_slack 1ms, sysmon_timer_slack 4ms, gc_min_heap_bytes 32 MiB", c.Process)
	}
	p := c.Policies()
	if p["iris"].String() != "latest" || p["fraud"].Latest != 2 || len(p["price"].Specific) != 2 {
		t.Errorf("policies = %+v", p)
	}
	// Defaults survive a file that does not mention them.
	c, err = Parse([]byte("models: {iris: {policy: latest}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.MaxInFlight != Default().Serving.MaxInFlight || c.Runtime.IntraOpThreads != 1 {
		t.Errorf("defaults lost: %+v", c)
	}
}

// TestLiteralValues: an explicit 0 that means something is kept, and a
// file's sections are complete without any defaulting by their readers.
func TestLiteralValues(t *testing.T) {
	c, err := Parse([]byte("monitoring: {rate: 0}\nruntime: {intra_op_threads: 0}\ntelemetry: {protocol: http/protobuf}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Monitoring.Rate == nil || *c.Monitoring.Rate != 0 || c.Runtime.IntraOpThreads != 0 {
		t.Errorf("explicit zeros lost: rate %v, threads %d", c.Monitoring.Rate, c.Runtime.IntraOpThreads)
	}
	if c.Telemetry.Endpoint != "localhost:4318" || c.Telemetry.Interval != 10*time.Second {
		t.Errorf("telemetry = %+v, want the http default endpoint and the default interval", c.Telemetry)
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Errorf("Default: %v", err)
	}
	if d.Serving != d.Serving.WithDefaults() || d.Monitoring.ShadowQueue != 256 || d.Watch.Rescan != 30*time.Second {
		t.Errorf("Default is not complete: %+v", d)
	}
	if d.Control.Addr != "127.0.0.1:8082" || d.Control.TLS.Enabled() || d.Serving.Auth != "none" || d.Serving.TLS.Enabled() || d.Serving.MaxConnections != 4096 {
		t.Errorf("listener defaults: control %+v, serving %+v", d.Control, d.Serving)
	}
	c, err = Load("testdata/auth-token.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.Auth != "token" || c.Serving.TokensFile != "testdata/tokens-client.txt" || c.Control.Addr != "127.0.0.1:9082" || c.Serving.MaxConnections != 4096 {
		t.Errorf("auth-token.good.yaml: serving %+v, control %+v", c.Serving, c.Control)
	}
}
