package fleet

import (
	"errors"
	"fmt"
	"time"
)

// Config is the fleet section of the collector's configuration
// (docs/fleet.md, "Agents that are gone").
type Config struct {
	// AgentExpiry is how long an agent may go unseen (no registration or
	// inventory reaching any collector of the cluster) before it is gone:
	// dropped from memory (it no longer counts toward the agent cap), left
	// out of GET /v1/agents and the fleet status, and no longer holding a
	// version it served against `versions delete`. Its row stays in the
	// agents table; an agent that comes back registers again.
	AgentExpiry time.Duration `yaml:"agent_expiry"`
	// CanaryAnalysis sets, field by field, the automatic analysis of an
	// auto canary whose change leaves it unset (`droverctl rollout
	// --canary P --auto` without analysis flags, the built-in optimizer's
	// canaries), and how often the analysis runs. Zero fields keep the
	// analysis' defaults (docs/fleet.md).
	CanaryAnalysis CanaryAnalysis `yaml:"canary_analysis"`
}

// CanaryAnalysis is fleet.canary_analysis: defaults for the automatic
// analysis of canaries (0: the analysis package's default).
type CanaryAnalysis struct {
	// Duration, MinSamples and MaxRegression are a canary's
	// analysis.duration, min_samples and max_regression when its change
	// does not set them (10m, 500, 0.02 when 0).
	Duration      time.Duration `yaml:"duration"`
	MinSamples    uint64        `yaml:"min_samples"`
	MaxRegression float64       `yaml:"max_regression"`
	// Interval is how often the model's owner judges its auto canaries
	// (30s when 0).
	Interval time.Duration `yaml:"interval"`
}

// fill sets a's empty fields from c and returns the result (nil when a
// and c set nothing).
func (c CanaryAnalysis) fill(a *Analysis) *Analysis {
	var n Analysis
	if a != nil {
		n = *a
	}
	if n.Duration == "" && c.Duration > 0 {
		n.Duration = c.Duration.String()
	}
	if n.MinSamples == 0 {
		n.MinSamples = c.MinSamples
	}
	if n.MaxRegression == 0 {
		n.MaxRegression = c.MaxRegression
	}
	if n == (Analysis{}) {
		return nil
	}
	return &n
}

// DefaultAgentExpiry is fleet.agent_expiry's default.
const DefaultAgentExpiry = 24 * time.Hour

// MinAgentExpiry is the shortest fleet.agent_expiry: longer than an agent
// takes to be offline on every collector of a cluster (3 heartbeats plus
// the minute between refreshes of its last_seen), so that an agent is
// offline before it is gone.
const MinAgentExpiry = 5 * time.Minute

// DefaultConfig returns the defaults: agents are gone after 24 h unseen.
func DefaultConfig() Config { return Config{AgentExpiry: DefaultAgentExpiry} }

// Validate reports every invalid field, joined, each with its path
// relative to the fleet section ("agent_expiry: ...").
func (c Config) Validate() error {
	var errs []error
	if c.AgentExpiry < MinAgentExpiry {
		errs = append(errs, fmt.Errorf("agent_expiry: must be >= %s (longer than an agent takes to go offline), got %s", MinAgentExpiry, c.AgentExpiry))
	}
	a := c.CanaryAnalysis
	if a.Duration < 0 {
		errs = append(errs, fmt.Errorf("canary_analysis.duration: must be >= 0, got %s", a.Duration))
	}
	if !(a.MaxRegression >= 0 && a.MaxRegression < 1) {
		errs = append(errs, fmt.Errorf("canary_analysis.max_regression: must be in [0, 1), got %v", a.MaxRegression))
	}
	if a.Interval < 0 {
		errs = append(errs, fmt.Errorf("canary_analysis.interval: must be >= 0, got %s", a.Interval))
	}
	return errors.Join(errs...)
}
