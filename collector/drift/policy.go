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
// incident. A Policy is complete: every field is taken literally (a zero
// threshold is invalid, a zero cooldown means none). Build one from
// DefaultPolicy; in a file, omitted keys inherit (see Config).
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
	// MinRequests is the number of requests the error rate needs in each
	// window (counting ok and server errors only), the number of latency
	// observations p99 needs, and the number of requests an evaluation
	// metric not computed from labels (golden, shadow) needs, to get a
	// verdict.
	MinRequests uint64 `yaml:"min_requests"`
	// MinLabels is the number of labels joined to samples (drover.feedback
	// status joined) that an evaluation metric of source labels needs in
	// each window to get a verdict.
	MinLabels uint64 `yaml:"min_labels"`
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
	// Cooldown is how long no new incident opens after one opened; 0
	// means none.
	Cooldown time.Duration `yaml:"cooldown"`
}

// DefaultPolicy returns the built-in defaults.
func DefaultPolicy() Policy {
	return Policy{
		Interval:             time.Minute,
		Window:               time.Hour,
		Reference:            ReferenceFirstWindow,
		MinSamples:           1000,
		MinRequests:          1000,
		MinLabels:            100,
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

// Validate reports every invalid field, joined, each prefixed with path and
// the field's yaml name ("policies.iris.psi_threshold: must be > 0").
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
	if p.MinSamples < 1 {
		bad("min_samples", "must be >= 1")
	}
	if p.MinRequests < 1 {
		bad("min_requests", "must be >= 1")
	}
	if p.MinLabels < 1 {
		bad("min_labels", "must be >= 1")
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
// policies. Both are complete policies: in a file, the default's omitted
// keys take DefaultPolicy's values and a model's omitted keys take the
// default's (metric_degradation entries merge, the model's winning), while
// every explicit value is taken literally. Start from DefaultConfig.
// Config is read-only once loaded: safe for concurrent use.
type Config struct {
	// Default applies to every model without a policy of its own.
	Default Policy `yaml:"default"`
	// Models holds the policies of the models that have one.
	Models map[string]Policy `yaml:"policies"`
	// Limits bound what one collector tracks and opens, whatever the
	// senders invent.
	Limits `yaml:",inline"`
}

// Limits bound the drift state of one collector and the incidents it
// opens, so that senders inventing models and versions, or drifting many
// versions of one model, cannot make it grow without bound or open
// incidents (and re-optimization jobs) without bound. Every field must be
// positive.
type Limits struct {
	// MaxModels is how many models this node checks; the models it already
	// tracks keep their place, new ones get the free places in the order
	// the listing gives them. Default 1000.
	MaxModels int `yaml:"max_models"`
	// MaxVersionsPerModel is how many serving versions of one model are
	// checked: the ones with the most requests in the window. Default 4.
	MaxVersionsPerModel int `yaml:"max_versions_per_model"`
	// MaxOpenIncidentsPerModel is how many incidents of one model (all
	// versions) may be open at once; an incident is open for its cooldown
	// (at least one window) after it opened. A confirmation beyond it is
	// suppressed: logged, counted, not opened (and no job scheduled); it
	// opens once a place is free if it still holds. Default 2.
	MaxOpenIncidentsPerModel int `yaml:"max_open_incidents_per_model"`
	// ForgetAfter is how long a model version that stopped serving keeps
	// its state in this node (scheduler, checker caches); then it is
	// dropped, and restored from drift_results if it comes back. Default
	// 24h.
	ForgetAfter time.Duration `yaml:"forget_after"`
}

// DefaultLimits returns the built-in limits.
func DefaultLimits() Limits {
	return Limits{MaxModels: 1000, MaxVersionsPerModel: 4, MaxOpenIncidentsPerModel: 2, ForgetAfter: 24 * time.Hour}
}

// Validate reports every invalid limit, joined, each with its yaml name.
func (l Limits) Validate() error {
	var errs []error
	for name, v := range map[string]int{"max_models": l.MaxModels, "max_versions_per_model": l.MaxVersionsPerModel,
		"max_open_incidents_per_model": l.MaxOpenIncidentsPerModel} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s: must be >= 1, got %d", name, v))
		}
	}
	if l.ForgetAfter <= 0 {
		errs = append(errs, fmt.Errorf("forget_after: must be > 0, got %s", l.ForgetAfter))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// DefaultConfig returns the default policy for every model and the
// default limits.
func DefaultConfig() Config {
	return Config{Default: DefaultPolicy(), Limits: DefaultLimits()}
}

// UnmarshalYAML decodes default over c.Default and each model's policy
// over the decoded default, so that an omitted key inherits and an
// explicit one (0 included) is taken literally. It uses the calling
// decoder, so unknown fields are errors when the caller asked for that.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	// Strict pass: unknown fields and wrong types, with their lines.
	var check struct {
		Default  Policy            `yaml:"default"`
		Policies map[string]Policy `yaml:"policies"`
		Limits   `yaml:",inline"`
	}
	check.Limits = c.Limits
	if err := unmarshal(&check); err != nil {
		return err
	}
	c.Limits = check.Limits
	// Layering pass: which keys each section sets.
	var raw struct {
		Default  yaml.Node            `yaml:"default"`
		Policies map[string]yaml.Node `yaml:"policies"`
		Limits   `yaml:",inline"`     // decoded by the strict pass
	}
	if err := unmarshal(&raw); err != nil {
		return err
	}
	d := c.Default.clone()
	if raw.Default.Kind != 0 {
		if err := raw.Default.Decode(&d); err != nil {
			return err
		}
	}
	models := make(map[string]Policy, len(c.Models)+len(raw.Policies))
	for m, p := range c.Models {
		models[m] = p.clone()
	}
	for m, n := range raw.Policies {
		p := d.clone()
		if err := n.Decode(&p); err != nil {
			return err
		}
		models[m] = p
	}
	c.Default, c.Models = d, models
	return nil
}

// clone returns p with a map of its own.
func (p Policy) clone() Policy {
	p.MetricDegradation = maps.Clone(p.MetricDegradation)
	return p
}

// For returns the policy of model: its own, else the default. The result
// shares no map with c.
func (c *Config) For(model string) Policy {
	if p, ok := c.Models[model]; ok {
		return p.clone()
	}
	return c.Default.clone()
}

// Validate reports every invalid field, joined, with paths such as
// "default.window", "policies.iris.psi_threshold" and "max_models".
func (c *Config) Validate() error {
	errs := []error{c.Default.Validate("default"), c.Limits.Validate()}
	for _, m := range slices.Sorted(maps.Keys(c.Models)) {
		if strings.TrimSpace(m) == "" {
			errs = append(errs, errors.New("policies: empty model name"))
			continue
		}
		errs = append(errs, c.Models[m].Validate("policies."+m))
	}
	return errors.Join(errs...)
}

// ParseConfig decodes a YAML drift configuration over DefaultConfig,
// rejecting unknown fields, and validates it.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
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
