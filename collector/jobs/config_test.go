package jobs

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestBadConfigs: each testdata/*.bad.yaml has "# error: TEXT" lines that
// its error must contain.
func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg, err := ParseConfig(f)
		if err != nil {
			return err
		}
		return cfg.Validate()
	})
}

func TestGoodConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(`
executor: command
command:
  argv: ["python3", "retrain.py", "{{.Model}}", "--from", "{{.Version}}"]
  timeout: 30m
  env: {CUDA_VISIBLE_DEVICES: "0"}
retries: 0
model_store: /srv/models
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Command.Timeout != 30*time.Minute || cfg.Retries != 0 || cfg.Backoff != time.Minute || cfg.Lease != 2*time.Minute ||
		cfg.MaxConcurrent != 2 || cfg.MaxPerModel != 1 || cfg.Command.Env["CUDA_VISIBLE_DEVICES"] != "0" {
		t.Errorf("config = %+v", cfg)
	}
	// The defaults run the built-in optimizer, and are valid as they are.
	d := DefaultConfig()
	if d.Executor != ExecutorBuiltin {
		t.Errorf("default executor = %q, want %q", d.Executor, ExecutorBuiltin)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	// An empty file, or a section that only tunes limits, keeps executor
	// builtin and every other default.
	for _, doc := range []string{"", "max_concurrent: 4\nretries: 0\n"} {
		cfg, err := ParseConfig(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
		if cfg.Executor != ExecutorBuiltin || cfg.MaxPerModel != 1 || cfg.Lease != 2*time.Minute {
			t.Errorf("%q: config = %+v", doc, cfg)
		}
	}
}

// fakeConn stands in for ClickHouse where nothing is queried.
type fakeConn struct{ driver.Conn }

// TestNoManagerWithoutExecutor: executor none is a valid configuration
// but not one a Manager runs.
func TestNoManagerWithoutExecutor(t *testing.T) {
	c := DefaultConfig()
	c.Executor = ExecutorNone
	_, err := New(Options{Conn: fakeConn{}, Node: "n", Config: c})
	if err == nil || !strings.Contains(err.Error(), `executor "none" runs no jobs`) {
		t.Errorf("New with executor none: %v", err)
	}
	// The default, builtin, needs the optimizer.
	_, err = New(Options{Conn: fakeConn{}, Node: "n", Config: DefaultConfig()})
	if err == nil || !strings.Contains(err.Error(), "executor builtin: no Executor given") {
		t.Errorf("New with the default executor and no Executor: %v", err)
	}
}
