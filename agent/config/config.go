// Package config is drover-agent's YAML configuration. Restart-only
// settings (addresses, directories) are flags; what is here can change at
// run time: SIGHUP re-reads the file and applies the version policies.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/runtime"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/shared/manifest"
)

// Config is the agent's configuration file.
type Config struct {
	Runtime    runtime.Options        `yaml:"runtime"`
	Serving    serve.Config           `yaml:"serving"`
	Loading    Loading                `yaml:"loading"`
	Watch      Watch                  `yaml:"watch"`
	Telemetry  telemetry.Config       `yaml:"telemetry"`
	Monitoring monitor.Config         `yaml:"monitoring"`
	Models     map[string]ModelConfig `yaml:"models"`
}

// Loading configures how versions are loaded.
type Loading struct {
	// MaxConcurrentLoads bounds loads across models (default 2).
	MaxConcurrentLoads int `yaml:"max_concurrent_loads"`
	// WarmupRuns is the default number of warm-up inferences (default 3).
	WarmupRuns int `yaml:"warmup_runs"`
	// RetryBackoff is the first delay before retrying a failed version whose
	// directory did not change (default 5s, doubling up to 5m).
	RetryBackoff time.Duration `yaml:"retry_backoff"`
}

// Watch configures the model store watcher.
type Watch struct {
	// Debounce is the quiet time after a change before a model is
	// rescanned (default 50ms).
	Debounce time.Duration `yaml:"debounce"`
	// Rescan is the period of the full rescan (default 30s).
	Rescan time.Duration `yaml:"rescan"`
	// DisableNotify relies on rescans only (for NFS).
	DisableNotify bool `yaml:"disable_notify"`
}

// ModelConfig is one model's settings.
type ModelConfig struct {
	// Policy: latest (default), {latest: N} or {specific: [..]}, each with
	// optional canary: {version, percent} and shadow: {version, percent}.
	Policy route.Policy `yaml:"policy"`
	// Task: classification or regression (default: the manifest's golden
	// set task, else inferred from the outputs).
	Task string `yaml:"task"`
	// SampleRate overrides monitoring.rate for this model.
	SampleRate *float64 `yaml:"sample_rate"`
	// Output is the output predictions are read from.
	Output string `yaml:"output"`
}

// Default returns the configuration used when there is no file.
func Default() Config {
	return Config{
		Runtime:    runtime.Options{IntraOpThreads: 1, InterOpThreads: 1},
		Serving:    serve.Config{}.WithDefaults(),
		Loading:    Loading{MaxConcurrentLoads: 2, WarmupRuns: 3, RetryBackoff: 5 * time.Second},
		Watch:      Watch{Debounce: 50 * time.Millisecond, Rescan: 30 * time.Second},
		Telemetry:  telemetry.Config{}.WithDefaults(),
		Monitoring: monitor.Config{}.WithDefaults(),
	}
}

// Load reads path over the defaults; an empty path gives the defaults.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	cfg, err = Parse(b)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a configuration over the defaults and validates it.
// Unknown fields are errors.
func Parse(b []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("decode config: %w", err)
	}
	return cfg, cfg.Validate()
}

// Validate returns every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if c.Runtime.IntraOpThreads < 0 {
		add("runtime.intra_op_threads", errors.New("must be >= 0"))
	}
	if c.Runtime.InterOpThreads < 0 {
		add("runtime.inter_op_threads", errors.New("must be >= 0"))
	}
	add("serving", c.Serving.Validate())
	add("telemetry", c.Telemetry.Validate())
	add("monitoring", c.Monitoring.Validate())
	if c.Loading.MaxConcurrentLoads < 0 {
		add("loading.max_concurrent_loads", errors.New("must be >= 0"))
	}
	if c.Loading.WarmupRuns < 0 || c.Loading.WarmupRuns > 10000 {
		add("loading.warmup_runs", errors.New("must be between 0 and 10000"))
	}
	if c.Loading.RetryBackoff < 0 {
		add("loading.retry_backoff", errors.New("must be >= 0"))
	}
	if c.Watch.Debounce < 0 {
		add("watch.debounce", errors.New("must be >= 0"))
	}
	if c.Watch.Rescan < 0 || (c.Watch.Rescan > 0 && c.Watch.Rescan < 100*time.Millisecond) {
		add("watch.rescan", errors.New("must be at least 100ms"))
	}
	names := make([]string, 0, len(c.Models))
	for n := range c.Models {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !manifest.ValidName(n) {
			add("models."+n, errors.New("not a valid model name"))
		}
		mc := c.Models[n]
		add("models."+n+".policy", mc.Policy.Validate())
		if mc.Task != "" && mc.Task != manifest.TaskClassification && mc.Task != manifest.TaskRegression {
			add("models."+n+".task", fmt.Errorf("must be %q or %q, got %q", manifest.TaskClassification, manifest.TaskRegression, mc.Task))
		}
		if r := mc.SampleRate; r != nil && (*r < 0 || *r > 1) {
			add("models."+n+".sample_rate", fmt.Errorf("must be in [0, 1], got %v", *r))
		}
	}
	return errors.Join(errs...)
}

// MonitorSettings returns the per-model monitoring settings.
func (c Config) MonitorSettings() map[string]monitor.ModelSettings {
	out := make(map[string]monitor.ModelSettings, len(c.Models))
	for n, m := range c.Models {
		out[n] = monitor.ModelSettings{Task: m.Task, Rate: m.SampleRate, Output: m.Output}
	}
	return out
}

// Policies returns the per-model version policies.
func (c Config) Policies() map[string]route.Policy {
	p := make(map[string]route.Policy, len(c.Models))
	for n, m := range c.Models {
		p[n] = m.Policy
	}
	return p
}
