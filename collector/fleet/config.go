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
	return errors.Join(errs...)
}
