package fleet

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"
)

// ErrTooManyAgents: the in-memory agent registry is full (Options.MaxAgents).
var ErrTooManyAgents = errors.New("too many agents")

// Registration is the body of POST /v1/agents/register.
type Registration struct {
	Agent  string            `json:"agent"`
	Host   string            `json:"host"`
	Labels map[string]string `json:"labels,omitempty"`
	Build  string            `json:"build,omitempty"`
}

// OTLPEndpoints are where an agent sends its OTLP data (with its token).
type OTLPEndpoints struct {
	GRPC string `json:"grpc"`
	HTTP string `json:"http"`
}

// Registered is the answer to a registration.
type Registered struct {
	Agent             string        `json:"agent"`
	HeartbeatInterval string        `json:"heartbeat_interval"`
	OTLP              OTLPEndpoints `json:"otlp"`
}

// VersionInventory is one version in an agent's model directory.
type VersionInventory struct {
	Version uint64  `json:"version"`
	State   string  `json:"state"`
	Error   *string `json:"error"`
}

// ModelInventory is what an agent reports of one model.
type ModelInventory struct {
	Model    string             `json:"model"`
	Serving  uint64             `json:"serving"`
	Versions []VersionInventory `json:"versions"`
	Error    *string            `json:"error"`
}

// Inventory is the body of PUT /v1/agents/{agent}/inventory.
type Inventory struct {
	Host      string            `json:"host"`
	Labels    map[string]string `json:"labels,omitempty"`
	Revision  map[string]uint64 `json:"revision,omitempty"`
	Models    []ModelInventory  `json:"models"`
	LastError *string           `json:"last_error"`
}

// Agent is an agent as GET /v1/agents lists it.
type Agent struct {
	Agent     string            `json:"agent"`
	Host      string            `json:"host"`
	Labels    map[string]string `json:"labels"`
	Build     string            `json:"build,omitempty"`
	Collector string            `json:"collector,omitempty"`
	Online    bool              `json:"online"`
	LastSeen  time.Time         `json:"last_seen"`
	Updated   time.Time         `json:"updated"`
	Inventory *Inventory        `json:"inventory,omitempty"`
}

// Limits of what an agent sends, checked at the edge.
const (
	maxAgentID       = 128
	maxHost          = 255
	maxBuild         = 256
	maxInventoryBody = 1 << 20
	maxModels        = 1024
	maxVersions      = 64
)

var agentIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidAgentID reports whether id is an agent id: letters, digits, '.',
// '_' and '-', 1 to 128, starting with a letter or digit.
func ValidAgentID(id string) bool { return len(id) <= maxAgentID && agentIDRE.MatchString(id) }

func (r Registration) validate() error {
	if !ValidAgentID(r.Agent) {
		return fmt.Errorf("%w: agent id %q: letters, digits, '.', '_' and '-', 1 to %d, starting with a letter or digit", ErrInvalid, r.Agent, maxAgentID)
	}
	if len(r.Host) > maxHost || len(r.Build) > maxBuild {
		return fmt.Errorf("%w: host or build too long (at most %d and %d bytes)", ErrInvalid, maxHost, maxBuild)
	}
	return ValidLabels(r.Labels)
}

func (inv Inventory) validate() error {
	if len(inv.Host) > maxHost {
		return fmt.Errorf("%w: host too long (at most %d bytes)", ErrInvalid, maxHost)
	}
	if err := ValidLabels(inv.Labels); err != nil {
		return err
	}
	if len(inv.Models) > maxModels || len(inv.Revision) > maxModels {
		return fmt.Errorf("%w: more than %d models", ErrInvalid, maxModels)
	}
	for _, m := range inv.Models {
		if len(m.Versions) > maxVersions {
			return fmt.Errorf("%w: model %q: more than %d versions", ErrInvalid, m.Model, maxVersions)
		}
	}
	return nil
}

// agentEntry is an agent known to this collector: registered here, or
// read from the agents table for a long-poll.
type agentEntry struct {
	Registration
	inv      *Inventory
	invJSON  string // as last written to the agents table
	updated  time.Time
	lastSeen time.Time
	written  time.Time // last row written to the agents table
	read     time.Time // when it was read from the table (not local)
	local    bool      // reported to this collector (not only read from the table)
}

// seen is when this collector last heard of the agent: its last report
// here, or, for an agent read from the agents table, its last_seen there
// or the read, the later.
func (e *agentEntry) seen() time.Time {
	if !e.local && e.read.After(e.lastSeen) {
		return e.read
	}
	return e.lastSeen
}

func (e *agentEntry) row(node string) agentRow {
	r := agentRow{Agent: e.Agent, Host: e.Host, Labels: maps.Clone(e.Labels), Build: e.Build, Inventory: e.invJSON,
		Collector: node, Updated: e.updated, LastSeen: e.lastSeen, Serving: map[string]uint64{}}
	if e.inv != nil {
		for _, m := range e.inv.Models {
			if m.Serving != 0 {
				r.Serving[m.Model] = m.Serving
			}
		}
	}
	return r
}

func (e *agentEntry) view(online bool, node string) Agent {
	return Agent{Agent: e.Agent, Host: e.Host, Labels: maps.Clone(e.Labels), Build: e.Build, Collector: node,
		Online: online, LastSeen: e.lastSeen, Updated: e.updated, Inventory: e.inv}
}
