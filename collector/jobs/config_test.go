package jobs

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadConfigs: each testdata/*.bad.yaml starts with "# want: " and the
// substrings, separated by " | ", that its error must contain.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.bad.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			first, _ := bufio.NewReader(fh).ReadString('\n')
			want, ok := strings.CutPrefix(strings.TrimSpace(first), "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be # want: ...", f)
			}
			_, _ = fh.Seek(0, 0)
			cfg, err := ParseConfig(fh)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatalf("accepted %+v", cfg)
			}
			for _, w := range strings.Split(want, " | ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
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
	if err := DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "command.argv") || !strings.Contains(err.Error(), "model_store") {
		t.Errorf("defaults alone: %v, want command.argv and model_store required", err)
	}
}
