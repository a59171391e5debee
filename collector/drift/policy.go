package drift

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Reference kinds, the values of Policy.Reference.
const (
	// ReferenceFirstWindow compares with the first Window of data after the
	// version started serving.
	ReferenceFirstWindow = "first_window"
	// ReferenceManifest compares with the distribution that the version's
	// manifest bins imply: bins are training-data quantiles, so every
	// interior bin holds the same share and the two open-ended bins none
	// (categorical features: every category the same share). Metric and
	// operational signals still compare with the first window.
	ReferenceManifest = "manifest"
)

// Policy says how one model is checked for drift and when drift becomes an
// incident. The zero value of a field means "not set": Config.For fills it
// from the default policy, and DefaultPolicy holds the built-in defaults.
type Policy struct {
	// Interval is how often the model is checked.
	Interval time.Duration `yaml:"interval"`
	// Window is the length of the current sliding window [now−Window, now)
	// and of the first-window reference.
	Window time.Duration `yaml:"window"`
	// Reference is ReferenceFirstWindow or ReferenceManifest.
	Reference string `yaml:"reference"`
	// MinSamples is the number of observations a feature needs in each
	// window to get a verdict.
	MinSamples uint64 `yaml:"min_samples"`
	// PSIThreshold and JSThreshold: a feature drifted when its PSI or its
	// Jensen-Shannon divergence reaches its threshold.
	PSIThreshold float64 `yaml:"psi_threshold"`
	JSThreshold  float64 `yaml:"js_threshold"`
	// KSThreshold, WassersteinThreshold and Chi2PValue mark the KS,
	// normed Wasserstein and chi² rows as drifted (chi²: p-value below
	// Chi2PValue); they are recorded for dashboards but do not decide a
	// feature's verdict.
	KSThreshold          float64 `yaml:"ks_threshold"`
	WassersteinThreshold float64 `yaml:"wasserstein_threshold"`
	Chi2PValue           float64 `yaml:"chi2_p_value"`
	// DatasetShare is the share of features (with a verdict) that must
	// drift for the dataset to drift.
	DatasetShare float64 `yaml:"dataset_share"`
	// MetricDegradation maps an evaluation metric (drover.eval.metric) to
	// the degradation that is a signal: an absolute drop for metrics where
	// higher is better (accuracy, precision, recall, f1, auc, r2), a
	// relative increase for error metrics (mse, mae, log_loss, rmse).
	MetricDegradation map[string]float64 `yaml:"metric_degradation"`
	// ErrorRate is the absolute increase of the share of requests with a
	// status other than ok, against the reference window, that is a signal.
	ErrorRate float64 `yaml:"error_rate"`
	// P99Ratio is the ratio of the window's p99 latency to the reference
	// window's that is a signal.
	P99Ratio float64 `yaml:"p99_ratio"`
	// ConfirmM of the last ConfirmN checks must have drifted to open an
	// incident.
	ConfirmM int `yaml:"confirm_m"`
	ConfirmN int `yaml:"confirm_n"`
	// Cooldown is how long no new incident opens after one opened.
	Cooldown time.Duration `yaml:"cooldown"`
}

// DefaultPolicy returns the built-in defaults.
func DefaultPolicy() Policy {
	return Policy{
		Interval:             time.Minute,
		Window:               time.Hour,
		Reference:            ReferenceFirstWindow,
		MinSamples:           1000,
		PSIThreshold:         0.2,
		JSThreshold:          0.1,
		KSThreshold:          0.1,
		WassersteinThreshold: 0.1,
		Chi2PValue:           0.01,
		DatasetShare:         0.5,
		MetricDegradation:    map[string]float64{"accuracy": 0.05, "f1": 0.05, "mse": 0.2, "mae": 0.2},
		ErrorRate:            0.05,
		P99Ratio:             2.0,
		ConfirmM:             3,
		ConfirmN:             5,
		Cooldown:             6 * time.Hour,
	}
}

// withDefaults returns p with every unset field taken from d. Metric
// degradation maps are merged, p's entries winning.
func (p Policy) withDefaults(d Policy) Policy {
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD(&p.Interval, d.Interval)
	setD(&p.Window, d.Window)
	setD(&p.Cooldown, d.Cooldown)
	if p.Reference == "" {
		p.Reference = d.Reference
	}
	if p.MinSamples == 0 {
		p.MinSamples = d.MinSamples
	}
	setF(&p.PSIThreshold, d.PSIThreshold)
	setF(&p.JSThreshold, d.JSThreshold)
	setF(&p.KSThreshold, d.KSThreshold)
	setF(&p.WassersteinThreshold, d.WassersteinThreshold)
	setF(&p.Chi2PValue, d.Chi2PValue)
	setF(&p.DatasetShare, d.DatasetShare)
	setF(&p.ErrorRate, d.ErrorRate)
	setF(&p.P99Ratio, d.P99Ratio)
	setI(&p.ConfirmM, d.ConfirmM)
	setI(&p.ConfirmN, d.ConfirmN)
	m := maps.Clone(d.MetricDegradation)
	if m == nil && p.MetricDegradation != nil {
		m = map[string]float64{}
	}
	maps.Copy(m, p.MetricDegradation)
	p.MetricDegradation = m
	return p
}

// Validate reports every invalid field of a complete policy (defaults
// applied), joined, each prefixed with path and the field's yaml name.
func (p Policy) Validate(path string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			bad(field, "must be > 0")
		}
	}
	if p.Interval <= 0 {
		bad("interval", "must be > 0")
	}
	if p.Window <= 0 {
		bad("window", "must be > 0")
	} else if p.Interval > p.Window {
		bad("interval", "%s must not be longer than the window %s", p.Interval, p.Window)
	}
	if p.Reference != ReferenceFirstWindow && p.Reference != ReferenceManifest {
		bad("reference", "%q: want %s or %s", p.Reference, ReferenceFirstWindow, ReferenceManifest)
	}
	positive("psi_threshold", p.PSIThreshold)
	if !(p.JSThreshold > 0 && p.JSThreshold <= 1) {
		bad("js_threshold", "must be in (0, 1]")
	}
	if !(p.KSThreshold > 0 && p.KSThreshold <= 1) {
		bad("ks_threshold", "must be in (0, 1]")
	}
	positive("wasserstein_threshold", p.WassersteinThreshold)
	if !(p.Chi2PValue > 0 && p.Chi2PValue < 1) {
		bad("chi2_p_value", "must be in (0, 1)")
	}
	if !(p.DatasetShare > 0 && p.DatasetShare <= 1) {
		bad("dataset_share", "must be in (0, 1]")
	}
	for _, k := range slices.Sorted(maps.Keys(p.MetricDegradation)) {
		if v := p.MetricDegradation[k]; !(v > 0) || math.IsInf(v, 0) {
			bad("metric_degradation."+k, "must be > 0")
		}
	}
	if !(p.ErrorRate > 0 && p.ErrorRate <= 1) {
		bad("error_rate", "must be in (0, 1]")
	}
	if !(p.P99Ratio > 1) || math.IsInf(p.P99Ratio, 0) {
		bad("p99_ratio", "must be > 1")
	}
	if p.ConfirmN < 1 {
		bad("confirm_n", "must be >= 1")
	}
	if p.ConfirmM < 1 || p.ConfirmM > p.ConfirmN {
		bad("confirm_m", "must be in [1, confirm_n=%d]", p.ConfirmN)
	}
	if p.Cooldown < 0 {
		bad("cooldown", "must be >= 0")
	}
	return errors.Join(errs...)
}

// Config is the drift configuration: a default policy and per-model
// overrides on top of it. Config is read-only once loaded: safe for
// concurrent use.
type Config struct {
	// Default applies to every model; its unset fields take DefaultPolicy's.
	Default Policy `yaml:"default"`
	// Models override Default field by field for one model each.
	Models map[string]Policy `yaml:"policies"`
}

// For returns the complete policy of model: its override on top of the
// default on top of DefaultPolicy.
func (c *Config) For(model string) Policy {
	d := c.Default.withDefaults(DefaultPolicy())
	if p, ok := c.Models[model]; ok {
		return p.withDefaults(d)
	}
	return d
}

// Validate reports every invalid field, joined, with paths such as
// "default.window" and "policies.iris.psi_threshold".
func (c *Config) Validate() error {
	errs := []error{c.Default.withDefaults(DefaultPolicy()).Validate("default")}
	for _, m := range slices.Sorted(maps.Keys(c.Models)) {
		if strings.TrimSpace(m) == "" {
			errs = append(errs, errors.New("policies: empty model name"))
			continue
		}
		errs = append(errs, c.For(m).Validate("policies."+m))
	}
	return errors.Join(errs...)
}

// ParseConfig decodes a YAML drift configuration, rejecting unknown
// fields, and validates it.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("drift config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("drift config: %w", err)
	}
	return &c, nil
}
