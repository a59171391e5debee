package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// Executors, the values of Config.Executor.
const (
	// ExecutorNone runs no jobs: drift incidents are recorded, nothing is
	// scheduled. A Manager cannot be built with it.
	ExecutorNone    = "none"
	ExecutorCommand = "command"
	ExecutorWebhook = "webhook"
	// ExecutorBuiltin runs the collector's own optimizer (collector/optimize,
	// docs/optimize.md) in process; the Manager is given it in
	// Options.Executor. It is the default: a model whose version declares
	// optimize: or whose family the optimizer detects gets a better
	// version with nothing configured; any other model's job fails at once
	// with that reason (not retried).
	ExecutorBuiltin = "builtin"
)

// Config configures a Manager: how jobs run, how often they are retried and
// how many run at once. Start from DefaultConfig (ParseConfig does): an
// omitted key keeps its default, an explicit value is taken literally
// (retries: 0 means no retry), and Validate rejects the values that make no
// sense (max_concurrent: 0). Code that reads a Config never re-defaults it.
type Config struct {
	// Executor is "builtin" (the default: the collector's own optimizer),
	// "none" (no jobs run), "command" or "webhook". Only the chosen executor's section is
	// checked, and builtin always (the CSV search uses it).
	Executor string `yaml:"executor"`
	// Command configures the command executor.
	Command CommandConfig `yaml:"command"`
	// Webhook configures the webhook executor.
	Webhook WebhookConfig `yaml:"webhook"`
	// Builtin configures the built-in optimizer (executor builtin).
	Builtin BuiltinConfig `yaml:"builtin"`
	// Retries is how many times a failed or timed-out attempt is run again;
	// a job runs at most 1+Retries times. Default 3.
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry; it doubles for every
	// further retry (1m, 2m, 4m, ...), up to MaxBackoff. Default 1m.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the wait between retries. Default 1h.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxConcurrent is how many jobs this node runs at once. Default 2.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPerModel is how many jobs of one model this node runs at once.
	// Default 1.
	MaxPerModel int `yaml:"max_per_model"`
	// MaxOpenPerModel is how many jobs of one model may be open (queued or
	// running, in the whole cluster) at once: Schedule refuses an incident
	// of a model that has that many, with an error wrapping
	// ErrTooManyJobs (logged and counted; the incident stays recorded in
	// drift_results). Default 2.
	MaxOpenPerModel int `yaml:"max_open_per_model"`
	// Lease is how long a running job's lease lasts; the runner renews it
	// every Lease/3. A node that dies leaves its jobs to be taken over
	// Lease+MaxClockSkew after its last renewal. Default 2m.
	Lease time.Duration `yaml:"lease"`
	// Settle is how long a node waits between inserting its claim on a job
	// and reading the claims back to see whether it won. It must exceed the
	// time a read followed by an insert takes (see docs/jobs.md); a claim
	// that took longer than Settle is abandoned. Default 1s.
	Settle time.Duration `yaml:"settle"`
	// MaxClockSkew is how far the nodes' clocks may disagree: a lease
	// written by another node counts as lapsed only MaxClockSkew after its
	// lease_until. Default 2s.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// ResumeInterval is how often Run calls Resume. Default 30s.
	ResumeInterval time.Duration `yaml:"resume_interval"`
	// DataWindow is the span of data a job is told to train on, ending when
	// the job is scheduled. Default 24h.
	DataWindow time.Duration `yaml:"data_window"`
	// ModelStore is the model store root given to jobs (Spec.ModelStore);
	// the command executor also looks there for the version a job
	// published. Required unless Executor is none.
	ModelStore string `yaml:"model_store"`
	// ClickHouseDSN is the DSN given to jobs (Spec.ClickHouseDSN); empty
	// means the collector's own ClickHouse.
	ClickHouseDSN string `yaml:"clickhouse_dsn"`
}

// CommandConfig configures the command executor.
type CommandConfig struct {
	// Argv is the program and its arguments, each a text/template executed
	// on the Spec ("{{.Model}}", "{{.Attempt}}"). No shell is involved.
	Argv []string `yaml:"argv"`
	// Dir is the working directory; default the collector's.
	Dir string `yaml:"dir"`
	// Timeout bounds one attempt; the process group is then killed and the
	// attempt is timed_out. Default 1h.
	Timeout time.Duration `yaml:"timeout"`
	// Env adds variables to the command's environment (which is the
	// collector's, plus the DROVER_* variables).
	Env map[string]string `yaml:"env"`
}

// WebhookConfig configures the webhook executor.
type WebhookConfig struct {
	// URL receives POST requests with the Spec as JSON body.
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key for X-Drover-Signature, both ways.
	// Required; SecretFile may name a file holding it instead.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Timeout bounds one attempt from the POST until the callback; the
	// attempt is then timed_out. Default 1h.
	Timeout time.Duration `yaml:"timeout"`
	// RequestTimeout bounds the POST itself. Default 30s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// CallbackURL is the base URL of this cluster's admin API as the
	// receiver reaches it, e.g. https://drover.example:7070; the receiver
	// calls back <CallbackURL>/v1/jobs/<id>/status. Required.
	CallbackURL string `yaml:"callback_url"`
}

// BuiltinConfig configures the built-in optimizer (docs/optimize.md).
type BuiltinConfig struct {
	// MinRows is the fewest labelled rows since the incident's start a
	// job trains on; fewer fail the job with that reason. Default 200.
	MinRows int `yaml:"min_rows"`
	// Margin is how much the candidate must beat the serving version on
	// the held-out rows, in the metric's units and better direction, to be
	// published. Default 0.01.
	Margin float64 `yaml:"margin"`
	// Holdout is the share of the most recent rows held out to judge the
	// candidate (a version's optimize.holdout overrides it), in (0, 0.5].
	// Default 0.2.
	Holdout float64 `yaml:"holdout"`
	// Seed makes a search deterministic. Default 1.
	Seed int64 `yaml:"seed"`
	// MaxProcs is how many cores one search uses, so that it does not
	// starve ingest on a small machine. Default half the cores, at least 1.
	MaxProcs int `yaml:"max_procs"`
	// TimeBudget bounds one search (a version's optimize.time_budget
	// overrides it); a grid estimated to exceed it is refused. Default 10m.
	TimeBudget time.Duration `yaml:"time_budget"`
	// CostTolerance: among the candidates whose CV score is within it of
	// the best, the cheapest (ONNX size, then latency) is chosen. 0 picks
	// the best score. Default 0.005.
	CostTolerance float64 `yaml:"cost_tolerance"`
}

// DefaultBuiltin returns the built-in optimizer's defaults.
func DefaultBuiltin() BuiltinConfig {
	return BuiltinConfig{MinRows: 200, Margin: 0.01, Holdout: 0.2, Seed: 1, MaxProcs: max(1, runtime.NumCPU()/2),
		TimeBudget: 10 * time.Minute, CostTolerance: 0.005}
}

// Validate reports every invalid field, each prefixed with its path
// relative to the builtin section.
func (b BuiltinConfig) Validate() error {
	var errs []error
	b.check(func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

func (b BuiltinConfig) check(bad func(field, format string, args ...any)) {
	if b.MinRows < 10 {
		bad("min_rows", "must be >= 10, got %d", b.MinRows)
	}
	if !(b.Margin >= 0) || math.IsInf(b.Margin, 0) {
		bad("margin", "must be a finite number >= 0, got %v", b.Margin)
	}
	if !(b.Holdout > 0 && b.Holdout <= 0.5) {
		bad("holdout", "must be in (0, 0.5], got %v", b.Holdout)
	}
	if b.MaxProcs < 1 {
		bad("max_procs", "must be >= 1, got %d", b.MaxProcs)
	}
	if b.TimeBudget <= 0 {
		bad("time_budget", "must be > 0, got %s", b.TimeBudget)
	}
	if !(b.CostTolerance >= 0 && b.CostTolerance < 1) {
		bad("cost_tolerance", "must be in [0, 1), got %v", b.CostTolerance)
	}
}

// DefaultConfig returns the defaults: the builtin executor, 1h attempt
// timeouts, 3 retries from 1m backoff, 2 jobs at once and 1 per model, 2m
// leases.
func DefaultConfig() Config {
	return Config{
		Executor:        ExecutorBuiltin,
		Command:         CommandConfig{Timeout: time.Hour},
		Webhook:         WebhookConfig{Timeout: time.Hour, RequestTimeout: 30 * time.Second},
		Builtin:         DefaultBuiltin(),
		Retries:         3,
		Backoff:         time.Minute,
		MaxBackoff:      time.Hour,
		MaxConcurrent:   2,
		MaxPerModel:     1,
		MaxOpenPerModel: 2,
		Lease:           2 * time.Minute,
		Settle:          time.Second,
		MaxClockSkew:    2 * time.Second,
		ResumeInterval:  30 * time.Second,
		DataWindow:      24 * time.Hour,
	}
}

// ParseConfig reads a YAML config over DefaultConfig; unknown fields are
// errors. It does not validate: call Validate.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse jobs config: %w", err)
	}
	return c, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every invalid field, joined, each prefixed with its path
// relative to the jobs section ("command.argv[1]: ...").
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Executor {
	case ExecutorNone:
	case ExecutorCommand:
		if len(c.Command.Argv) == 0 {
			bad("command.argv", "must name a program to run")
		}
		for i, a := range c.Command.Argv {
			if _, err := template.New("").Option("missingkey=error").Parse(a); err != nil {
				bad(fmt.Sprintf("command.argv[%d]", i), "%v", err)
			} else if i == 0 && a == "" {
				bad("command.argv[0]", "empty program")
			}
		}
		if c.Command.Timeout <= 0 {
			bad("command.timeout", "must be > 0, got %s", c.Command.Timeout)
		}
		for k := range c.Command.Env {
			if !envName.MatchString(k) {
				bad("command.env."+k, "not a valid environment variable name")
			} else if strings.HasPrefix(k, "DROVER_") {
				bad("command.env."+k, "DROVER_ variables are set by the collector")
			}
		}
	case ExecutorWebhook:
		w := c.Webhook
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhook.url", "%q: want an http or https URL", w.URL)
		}
		if w.Secret == "" && w.SecretFile == "" {
			bad("webhook.secret", "required (or webhook.secret_file): callbacks must be signed")
		} else if w.Secret != "" && w.SecretFile != "" {
			bad("webhook.secret", "set secret or secret_file, not both")
		}
		if u, err := url.Parse(w.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhook.callback_url", "%q: want the http or https base URL of the admin API", w.CallbackURL)
		}
		if w.Timeout <= 0 {
			bad("webhook.timeout", "must be > 0, got %s", w.Timeout)
		}
		if w.RequestTimeout <= 0 {
			bad("webhook.request_timeout", "must be > 0, got %s", w.RequestTimeout)
		}
	case ExecutorBuiltin:
	default:
		bad("executor", "%q: want %q, %q, %q or %q", c.Executor, ExecutorNone, ExecutorCommand, ExecutorWebhook, ExecutorBuiltin)
	}
	// Checked whatever the executor: the admin API's CSV search uses it.
	c.Builtin.check(func(field, format string, args ...any) { bad("builtin."+field, format, args...) })
	if c.Retries < 0 {
		bad("retries", "must be >= 0, got %d", c.Retries)
	}
	if c.MaxConcurrent < 1 {
		bad("max_concurrent", "must be >= 1, got %d", c.MaxConcurrent)
	}
	if c.MaxPerModel < 1 {
		bad("max_per_model", "must be >= 1, got %d", c.MaxPerModel)
	}
	if c.MaxOpenPerModel < 1 {
		bad("max_open_per_model", "must be >= 1, got %d", c.MaxOpenPerModel)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"backoff", c.Backoff}, {"max_backoff", c.MaxBackoff}, {"lease", c.Lease}, {"settle", c.Settle},
		{"resume_interval", c.ResumeInterval}, {"data_window", c.DataWindow},
	} {
		if d.v <= 0 {
			bad(d.name, "must be > 0, got %s", d.v)
		}
	}
	if c.MaxClockSkew < 0 {
		bad("max_clock_skew", "must not be negative, got %s", c.MaxClockSkew)
	}
	if c.Lease > 0 && c.Settle > 0 && c.Settle*3 >= c.Lease {
		bad("settle", "must be shorter than lease/3 (%s), got %s", c.Lease/3, c.Settle)
	}
	if c.ModelStore == "" && (c.Executor == ExecutorCommand || c.Executor == ExecutorWebhook) {
		bad("model_store", "required: the model store root that jobs publish into")
	}
	return errors.Join(errs...)
}

// secret returns the webhook key, reading SecretFile if set.
func (w WebhookConfig) secret() ([]byte, error) {
	if w.SecretFile == "" {
		return []byte(w.Secret), nil
	}
	b, err := os.ReadFile(w.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook.secret_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("webhook.secret_file %s: empty", w.SecretFile)
	}
	return b, nil
}
