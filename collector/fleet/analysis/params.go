package analysis

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Params, applied by WithDefaults to fields left zero
// (documented in docs/fleet.md).
const (
	DefaultDuration      = 10 * time.Minute
	DefaultMinSamples    = 500
	DefaultMaxRegression = 0.02
	// LatencySlack is the p99 increase that never counts as a regression,
	// whatever the ratio: a model answering in 0.3 ms against 0.1 ms is
	// three times slower and no worse for anyone, and p99s that small move
	// with the host's load, not with the model.
	LatencySlack = 5 * time.Millisecond
	// Alpha is the significance level of the error-rate test once the
	// duration has passed: the probability of aborting a canary whose
	// error rate is within the tolerance.
	Alpha = 0.01
	// EarlyAlpha is the level before the duration has passed. The test is
	// repeated at every check, so an early abort needs stronger evidence:
	// with the default 10 minutes checked every 30 s, 20 early looks at
	// 0.001 add at most 0.02 (Bonferroni) to the false aborts.
	EarlyAlpha = 0.001
)

// Params are a canary's analysis settings (the desired state's
// canary.analysis).
type Params struct {
	// Duration is how long the canary serves before it may be promoted
	// (an error-rate regression aborts it earlier).
	Duration time.Duration
	// MinSamples is the fewest observations each side needs before a
	// metric is judged: requests for the error rate, latency observations
	// for p99, labels joined to samples for accuracy, F1 and MSE.
	MinSamples uint64
	// MaxRegression is the worsening tolerated, a fraction: relative for
	// the error rate, latency p99 and MSE (0.02: 2 % more than the serving
	// version's), absolute for accuracy and F1 (0.02: two points lower).
	MaxRegression float64
}

// DefaultParams returns the default analysis settings.
func DefaultParams() Params {
	return Params{Duration: DefaultDuration, MinSamples: DefaultMinSamples, MaxRegression: DefaultMaxRegression}
}

// WithDefaults returns p with every zero field set to its default.
func (p Params) WithDefaults() Params {
	d := DefaultParams()
	if p.Duration == 0 {
		p.Duration = d.Duration
	}
	if p.MinSamples == 0 {
		p.MinSamples = d.MinSamples
	}
	if p.MaxRegression == 0 {
		p.MaxRegression = d.MaxRegression
	}
	return p
}

// Validate reports every field out of range, joined, each with its name as
// in the desired state's canary.analysis.
func (p Params) Validate() error {
	var errs []error
	if p.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration: must be > 0, got %s", p.Duration))
	}
	if p.MinSamples < 1 {
		errs = append(errs, errors.New("min_samples: must be ≥ 1"))
	}
	if !(p.MaxRegression >= 0 && p.MaxRegression < 1) {
		errs = append(errs, fmt.Errorf("max_regression: must be in [0, 1), got %g", p.MaxRegression))
	}
	return errors.Join(errs...)
}

// ParseParams builds Params from the desired state's canary.analysis
// fields (duration as time.ParseDuration reads it, "" for the default),
// applies the defaults to the fields left zero and validates the result.
func ParseParams(duration string, minSamples uint64, maxRegression float64) (Params, error) {
	var p Params
	if duration != "" {
		d, err := time.ParseDuration(duration)
		if err != nil {
			return Params{}, fmt.Errorf("duration: %w", err)
		}
		if d <= 0 {
			return Params{}, fmt.Errorf("duration: must be > 0, got %s", duration)
		}
		p.Duration = d
	}
	p.MinSamples, p.MaxRegression = minSamples, maxRegression
	if maxRegression < 0 {
		return Params{}, fmt.Errorf("max_regression: must be in [0, 1), got %g", maxRegression)
	}
	p = p.WithDefaults()
	return p, p.Validate()
}
