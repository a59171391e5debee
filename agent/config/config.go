// Package config is drover-agent's YAML configuration. Restart-only
// settings (addresses, directories) are flags; what is here can change at
// run time: SIGHUP re-reads the file and applies the version policies.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/fieldpath"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/tlsconfig"
)

// Config is the agent's configuration file. It is read over Default: a key
// the file omits keeps its default, a key it sets is taken literally, and
// Validate rejects the values that make no sense, naming the field from
// the file's root ("serving.max_batch: must be >= 1, got 0"). Unknown
// fields are errors in every section.
type Config struct {
	Runtime    runtime.Options        `yaml:"runtime"`
	Serving    serve.Config           `yaml:"serving"`
	Loading    Loading                `yaml:"loading"`
	Watch      Watch                  `yaml:"watch"`
	Telemetry  telemetry.Config       `yaml:"telemetry"`
	Monitoring monitor.Config         `yaml:"monitoring"`
	Control    Control                `yaml:"control"`
	Models     map[string]ModelConfig `yaml:"models"`
	Process    Process                `yaml:"process"`
}

// DefaultControlAddr is the control listener's default address: loopback
// only, so that reaching the agent's public ports is not enough to change
// what it serves.
const DefaultControlAddr = "127.0.0.1:8082"

// DefaultHeartbeatInterval is control.heartbeat_interval's default.
const DefaultHeartbeatInterval = 10 * time.Second

// Control is the control: section: how the agent is controlled. Its
// control listener (pin, canary, shadow, promote) requires the token the
// agent keeps in <data-dir>/control.token; with collectors, the agent also
// follows the fleet's desired state (docs/fleet.md, package agent/fleet).
// These settings take effect at start.
type Control struct {
	// Addr is the control listener's address (default 127.0.0.1:8082);
	// the --control-addr flag, when given, wins.
	Addr string `yaml:"addr"`
	// TLS is the control listener's TLS; off by default.
	TLS tlsconfig.Server `yaml:"tls"`
	// Collectors are the base URLs (http or https) of the collectors'
	// admin listeners the agent follows, tried in turn; none: the agent
	// runs from its model directory alone. --collector, when given, wins.
	Collectors []string `yaml:"collectors"`
	// TokenFile holds the agent's bearer token for the collectors (role
	// agent); required with collectors. --token-file wins.
	TokenFile string `yaml:"token_file"`
	// Labels describe this agent to the collectors' selectors; --label
	// entries are added over them.
	Labels map[string]string `yaml:"labels"`
	// HeartbeatInterval is the longest time between two inventory reports
	// (default 10s); the collector's registration answer may change it.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// CollectorTLS is how https collectors are verified (ca_file; empty:
	// the system's roots) and the agent's client certificate if they ask.
	CollectorTLS tlsconfig.Client `yaml:"collector_tls"`
}

// Validate checks the control section; paths are relative to it.
func (c Control) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: want host:port (default %s), got %q: %v", DefaultControlAddr, c.Addr, err))
	}
	errs = append(errs, fieldpath.Prefix("tls", c.TLS.Validate()))
	for i, u := range c.Collectors {
		if err := ValidCollectorURL(u); err != nil {
			errs = append(errs, fmt.Errorf("collectors[%d]: %w", i, err))
		}
	}
	if len(c.Collectors) > 0 && c.TokenFile == "" {
		errs = append(errs, errors.New("token_file: required with collectors (the agent's token for the collectors)"))
	}
	if len(c.Labels) > MaxLabels {
		errs = append(errs, fmt.Errorf("labels: %d labels, at most %d", len(c.Labels), MaxLabels))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if err := ValidLabel(k, c.Labels[k]); err != nil {
			errs = append(errs, fmt.Errorf("labels.%s: %w", k, err))
		}
	}
	errs = append(errs, fieldpath.Prefix("collector_tls", c.CollectorTLS.Validate()))
	if c.HeartbeatInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat_interval: must be at least 100ms, got %s", c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}

// ValidCollectorURL checks a collector's base URL: http or https, a host,
// no query or fragment.
func ValidCollectorURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("want an http(s) URL, got %q: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("want an http(s) URL such as https://collector:8090, got %q", s)
	}
	return nil
}

// Label rules, as the collectors check them (docs/fleet.md: labels as
// selectors).
var (
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// MaxLabels is the most labels an agent may have.
const MaxLabels = 32

// ValidLabel checks one agent label: a key of letters, digits, '.', '_',
// '/' and '-', 1 to 63, starting with a letter or digit; a value of
// letters, digits, '.', '_' and '-', at most 63.
func ValidLabel(k, v string) error {
	if !labelKeyRE.MatchString(k) {
		return fmt.Errorf("key %q: letters, digits, '.', '_', '/' and '-', 1 to 63, starting with a letter or digit", k)
	}
	if !labelValueRE.MatchString(v) {
		return fmt.Errorf("value %q: letters, digits, '.', '_' and '-', at most 63", v)
	}
	return nil
}

// Loading configures how versions are loaded.
type Loading struct {
	// MaxConcurrentLoads bounds loads across models (default 2).
	MaxConcurrentLoads int `yaml:"max_concurrent_loads"`
	// WarmupRuns is the default number of warm-up inferences, 1 to 10000
	// (default 3).
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
	// Rescan is the period of the full rescan, at least 100ms (default
	// 30s).
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

// Default returns the configuration used when there is no file, and the
// one a file is read over.
func Default() Config {
	return Config{
		Runtime:    runtime.Options{IntraOpThreads: 1, InterOpThreads: 1},
		Serving:    serve.DefaultConfig(),
		Loading:    Loading{MaxConcurrentLoads: 2, WarmupRuns: 3, RetryBackoff: 5 * time.Second},
		Watch:      Watch{Debounce: watch.DefaultDebounce, Rescan: watch.DefaultRescan},
		Telemetry:  telemetry.DefaultConfig(),
		Monitoring: monitor.DefaultConfig(),
		Control:    Control{Addr: DefaultControlAddr, HeartbeatInterval: DefaultHeartbeatInterval},
		Process:    Process{TimerSlack: DefaultTimerSlack, GCMinHeapBytes: DefaultGCMinHeapBytes},
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

// Validate returns every problem, each prefixed with its field path from
// the file's root.
func (c Config) Validate() error {
	var errs []error
	if c.Runtime.IntraOpThreads < 0 {
		errs = append(errs, fmt.Errorf("runtime.intra_op_threads: must be >= 0 (0: ONNX Runtime chooses), got %d", c.Runtime.IntraOpThreads))
	}
	if c.Runtime.InterOpThreads < 0 {
		errs = append(errs, fmt.Errorf("runtime.inter_op_threads: must be >= 0 (0: ONNX Runtime chooses), got %d", c.Runtime.InterOpThreads))
	}
	errs = append(errs,
		fieldpath.Prefix("serving", c.Serving.Validate()),
		fieldpath.Prefix("loading", c.Loading.Validate()),
		fieldpath.Prefix("watch", c.Watch.Validate()),
		fieldpath.Prefix("telemetry", c.Telemetry.Validate()),
		fieldpath.Prefix("monitoring", c.Monitoring.Validate()),
		fieldpath.Prefix("control", c.Control.Validate()),
		fieldpath.Prefix("process", c.Process.Validate()),
	)
	for _, n := range slices.Sorted(maps.Keys(c.Models)) {
		if !manifest.ValidName(n) {
			errs = append(errs, fmt.Errorf("models.%s: not a valid model name", n))
			continue
		}
		errs = append(errs, fieldpath.Prefix("models."+n, c.Models[n].Validate()))
	}
	return errors.Join(errs...)
}

// Validate checks the loading section; paths are relative to it.
func (l Loading) Validate() error {
	var errs []error
	if l.MaxConcurrentLoads < 1 {
		errs = append(errs, fmt.Errorf("max_concurrent_loads: must be >= 1, got %d", l.MaxConcurrentLoads))
	}
	if l.WarmupRuns < 1 || l.WarmupRuns > 10000 {
		errs = append(errs, fmt.Errorf("warmup_runs: must be between 1 and 10000, got %d", l.WarmupRuns))
	}
	if l.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("retry_backoff: must be > 0, got %s", l.RetryBackoff))
	}
	return errors.Join(errs...)
}

// Validate checks the watch section; paths are relative to it.
func (w Watch) Validate() error {
	var errs []error
	if w.Debounce <= 0 {
		errs = append(errs, fmt.Errorf("debounce: must be > 0, got %s", w.Debounce))
	}
	if w.Rescan < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("rescan: must be at least 100ms, got %s", w.Rescan))
	}
	return errors.Join(errs...)
}

// Validate checks one model's settings; paths are relative to them.
func (m ModelConfig) Validate() error {
	var errs []error
	errs = append(errs, fieldpath.Prefix("policy", m.Policy.Validate()))
	if m.Task != "" && m.Task != manifest.TaskClassification && m.Task != manifest.TaskRegression {
		errs = append(errs, fmt.Errorf("task: must be %q or %q, got %q", manifest.TaskClassification, manifest.TaskRegression, m.Task))
	}
	if r := m.SampleRate; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, fmt.Errorf("sample_rate: must be in [0, 1], got %v", *r))
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
