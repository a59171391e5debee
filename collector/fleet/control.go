package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Register records an agent's registration (in memory; a new agent or a
// change of host, labels or build is written to the agents table) and
// answers where it sends OTLP. A new agent beyond Options.MaxAgents is
// ErrTooManyAgents.
func (f *Fleet) Register(ctx context.Context, r Registration) (Registered, error) {
	if err := r.validate(); err != nil {
		return Registered{}, err
	}
	now := f.o.Now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	e, ok := f.agents[r.Agent]
	if !ok {
		f.makeRoomLocked(now)
		if len(f.agents) >= f.o.MaxAgents {
			f.mu.Unlock()
			return Registered{}, fmt.Errorf("register %s: %w (%d)", r.Agent, ErrTooManyAgents, f.o.MaxAgents)
		}
		e = &agentEntry{updated: now}
		f.agents[r.Agent] = e
	}
	changed := !ok || !e.local || e.Host != r.Host || e.Build != r.Build || !maps.Equal(e.Labels, r.Labels)
	e.Registration = r
	e.Labels = maps.Clone(r.Labels)
	e.lastSeen, e.local = now, true
	var row agentRow
	if changed {
		e.updated, e.written = now, now
		row = e.row(f.o.Node)
	}
	f.mu.Unlock()
	if changed {
		if err := f.t.insertAgents(ctx, []agentRow{row}); err != nil {
			return Registered{}, fmt.Errorf("register %s: %w", r.Agent, err)
		}
	}
	return Registered{Agent: r.Agent, HeartbeatInterval: f.o.Heartbeat.String(), OTLP: f.o.OTLP}, nil
}

// Report records an agent's inventory in memory (a heartbeat; the record
// Agents and Status read for an agent reporting here) and, only when it
// differs from the last one, queues it for the agents table (written in
// batches by Run; Report never waits for ClickHouse). An agent that has
// not registered with this collector is ErrNotFound.
func (f *Fleet) Report(_ context.Context, id string, inv Inventory) error {
	if !ValidAgentID(id) {
		return fmt.Errorf("%w: agent id %q", ErrInvalid, id)
	}
	if err := inv.validate(); err != nil {
		return err
	}
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	now := f.o.Now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	e, ok := f.agents[id]
	if !ok || !e.local {
		f.mu.Unlock()
		return fmt.Errorf("agent %s is not registered with this collector: %w", id, ErrNotFound)
	}
	e.lastSeen = now
	if inv.Host != "" {
		e.Host = inv.Host
	}
	labelsChanged := inv.Labels != nil && !maps.Equal(e.Labels, inv.Labels)
	if inv.Labels != nil {
		e.Labels = maps.Clone(inv.Labels)
	}
	changed := string(b) != e.invJSON || labelsChanged
	var row agentRow
	if changed {
		e.inv, e.invJSON, e.updated, e.written = &inv, string(b), now, now
		row = e.row(f.o.Node)
	}
	f.mu.Unlock()
	if changed {
		f.w.queue(row)
	}
	return nil
}

// goneBefore is the time before which an agent last seen is gone.
func (f *Fleet) goneBefore() time.Time { return f.o.Now().Add(-f.o.AgentExpiry) }

// expireLocked drops the agents gone at now (not heard of for
// Options.AgentExpiry) from memory, and returns how many.
func (f *Fleet) expireLocked(now time.Time) int {
	f.swept = now
	n := 0
	for id, e := range f.agents {
		if now.Sub(e.seen()) >= f.o.AgentExpiry {
			delete(f.agents, id)
			n++
		}
	}
	return n
}

// makeRoomLocked drops the gone agents before a new one is refused for
// MaxAgents, at most once per Options.Refresh (Run does it at every
// refresh anyway), so that refusals at the cap do not each scan every
// agent.
func (f *Fleet) makeRoomLocked(now time.Time) {
	if len(f.agents) >= f.o.MaxAgents && now.Sub(f.swept) >= f.o.Refresh {
		f.expireLocked(now)
	}
}

// flushSeen drops the agents that are gone from memory, and writes the
// last_seen of the agents reporting here whose row is older than
// Options.SeenRefresh, so the other collectors of a cluster see them
// live.
func (f *Fleet) flushSeen(ctx context.Context) error {
	now := f.o.Now()
	f.mu.Lock()
	gone := f.expireLocked(now)
	var rows []agentRow
	for _, e := range f.agents {
		if e.local && e.lastSeen.Sub(e.written) >= f.o.SeenRefresh {
			e.written = e.lastSeen
			rows = append(rows, e.row(f.o.Node))
		}
	}
	f.mu.Unlock()
	if gone > 0 {
		f.o.Logger.Info("fleet: agents gone (not seen for fleet.agent_expiry) dropped from memory", "agents", gone, "agent_expiry", f.o.AgentExpiry)
	}
	return f.t.insertAgents(ctx, rows)
}

// AgentDesired is the answer to GET /v1/agents/{agent}/desired: the
// desired state of every model whose selector matches the agent.
type AgentDesired struct {
	Models map[string]State `json:"models"`
}

// labels returns the labels of agent id: from memory, else (an agent that
// registered with another collector) from the agents table, then held.
func (f *Fleet) labels(ctx context.Context, id string) (map[string]string, error) {
	if !ValidAgentID(id) {
		return nil, fmt.Errorf("%w: agent id %q", ErrInvalid, id)
	}
	f.mu.Lock()
	e, ok := f.agents[id]
	if ok {
		l := e.Labels
		f.mu.Unlock()
		return l, nil
	}
	f.mu.Unlock()
	rows, err := f.t.readAgents(ctx, id, 1, time.Time{})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("agent %s: %w; register first", id, ErrNotFound)
	}
	r := rows[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.agents[id]; ok {
		return e.Labels, nil
	}
	now := f.o.Now()
	f.makeRoomLocked(now)
	if len(f.agents) >= f.o.MaxAgents {
		return nil, fmt.Errorf("agent %s: %w (%d)", id, ErrTooManyAgents, f.o.MaxAgents)
	}
	f.agents[id] = &agentEntry{Registration: Registration{Agent: id, Host: r.Host, Labels: r.Labels, Build: r.Build},
		updated: r.Updated.UTC(), lastSeen: r.LastSeen.UTC(), written: r.LastSeen.UTC(), read: now}
	return r.Labels, nil
}

// desiredFor returns the agent's desired document, its etag, and the
// channel closed at the next change.
func (f *Fleet) desiredFor(labels map[string]string) (AgentDesired, string, <-chan struct{}) {
	f.mu.Lock()
	d := AgentDesired{Models: map[string]State{}}
	for m, s := range f.states {
		if s.Serving != 0 && s.Selects(labels) {
			d.Models[m] = s.clone()
		}
	}
	ch := f.changed
	f.mu.Unlock()
	b, _ := json.Marshal(d) // map keys are sorted: the same document, the same bytes
	sum := sha256.Sum256(b)
	return d, `"` + hex.EncodeToString(sum[:12]) + `"`, ch
}

// Agents lists the agents of the fleet that are not gone (seen within
// Options.AgentExpiry; at most Options.MaxAgents): the ones reporting to
// this collector from memory, the others from the agents table as Run
// last read it (every Options.Refresh; read here only before Run's first
// read), so that a listing never waits for ClickHouse.
func (f *Fleet) Agents(ctx context.Context) ([]Agent, error) {
	f.mu.Lock()
	remote, read := f.remote, f.remoteRead
	f.mu.Unlock()
	if !read {
		if err := f.readRemote(ctx); err != nil {
			return nil, err
		}
		f.mu.Lock()
		remote = f.remote
		f.mu.Unlock()
	}
	now := f.o.Now()
	cutoff := now.Add(-f.o.AgentExpiry)
	byID := map[string]Agent{}
	remoteOffline := 3*f.o.Heartbeat + f.o.SeenRefresh
	for _, a := range remote {
		if !a.LastSeen.After(cutoff) {
			continue
		}
		a.Online = now.Sub(a.LastSeen) < remoteOffline
		byID[a.Agent] = a
	}
	f.mu.Lock()
	for id, e := range f.agents {
		if !e.local || !e.lastSeen.After(cutoff) {
			continue
		}
		a := e.view(now.Sub(e.lastSeen) < 3*f.o.Heartbeat, f.o.Node)
		if old, ok := byID[id]; ok && old.LastSeen.After(a.LastSeen) {
			continue // it reports to another collector now
		}
		byID[id] = a
	}
	f.mu.Unlock()
	out := make([]Agent, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, byID[id])
	}
	return out, nil
}

// readRemote reads the agents table (the agents not gone, at most
// Options.MaxAgents) for Agents.
func (f *Fleet) readRemote(ctx context.Context) error {
	rows, err := f.t.readAgents(ctx, "", f.o.MaxAgents, f.goneBefore())
	if err != nil {
		return err
	}
	remote := make([]Agent, 0, len(rows))
	for _, r := range rows {
		a := Agent{Agent: r.Agent, Host: r.Host, Labels: r.Labels, Build: r.Build, Collector: r.Collector,
			LastSeen: r.LastSeen.UTC(), Updated: r.Updated.UTC()}
		if r.Inventory != "" {
			var inv Inventory
			if json.Unmarshal([]byte(r.Inventory), &inv) == nil {
				a.Inventory = &inv
			}
		}
		remote = append(remote, a)
	}
	f.mu.Lock()
	f.remote, f.remoteRead = remote, true
	f.mu.Unlock()
	return nil
}

// servingLocal counts the agents reporting here, not gone, whose last
// inventory (in memory) says they serve model at version, and returns one
// of their ids.
func (f *Fleet) servingLocal(model string, version uint64) (int, string) {
	if version == 0 {
		return 0, ""
	}
	cutoff := f.goneBefore()
	f.mu.Lock()
	defer f.mu.Unlock()
	n, one := 0, ""
	for id, e := range f.agents {
		if !e.local || e.inv == nil || !e.lastSeen.After(cutoff) {
			continue
		}
		for _, m := range e.inv.Models {
			if m.Model == model && m.Serving == version {
				if n++; one == "" || id < one {
					one = id
				}
			}
		}
	}
	return n, one
}

// Agent states in a fleet status.
const (
	StateConverged = "converged"
	StatePending   = "pending"
	StateFailed    = "failed"
	StateOffline   = "offline"
)

// AgentStatus is one agent in a model's fleet status.
type AgentStatus struct {
	Agent    string            `json:"agent"`
	Host     string            `json:"host"`
	Labels   map[string]string `json:"labels"`
	Selected bool              `json:"selected"`
	Serving  uint64            `json:"serving"`
	Canary   uint64            `json:"canary"`
	State    string            `json:"state"`
	Error    *string           `json:"error"`
	LastSeen time.Time         `json:"last_seen"`
	Revision uint64            `json:"revision"`
}

// Progress counts the selected agents by state.
type Progress struct {
	Selected  int `json:"selected"`
	Converged int `json:"converged"`
	Pending   int `json:"pending"`
	Failed    int `json:"failed"`
	Offline   int `json:"offline"`
}

// Status is a model's fleet status: its desired state, and each agent's
// actual state against it.
type Status struct {
	Model    string        `json:"model"`
	Desired  State         `json:"desired"`
	Agents   []AgentStatus `json:"agents"`
	Progress Progress      `json:"progress"`
}

// Status returns model's fleet status.
func (f *Fleet) Status(ctx context.Context, model string) (Status, error) {
	d, err := f.Desired(ctx, model)
	if err != nil {
		return Status{}, err
	}
	agents, err := f.Agents(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Model: model, Desired: d, Agents: []AgentStatus{}}
	for _, a := range agents {
		as := agentStatus(d, a)
		st.Agents = append(st.Agents, as)
		if !as.Selected {
			continue
		}
		st.Progress.Selected++
		switch as.State {
		case StateConverged:
			st.Progress.Converged++
		case StatePending:
			st.Progress.Pending++
		case StateFailed:
			st.Progress.Failed++
		case StateOffline:
			st.Progress.Offline++
		}
	}
	return st, nil
}

// agentStatus compares an agent's inventory with the desired state d.
func agentStatus(d State, a Agent) AgentStatus {
	as := AgentStatus{Agent: a.Agent, Host: a.Host, Labels: a.Labels, LastSeen: a.LastSeen,
		Selected: d.Serving != 0 && d.Selects(a.Labels)}
	var mi *ModelInventory
	if inv := a.Inventory; inv != nil {
		as.Revision = inv.Revision[d.Model]
		for i := range inv.Models {
			if inv.Models[i].Model == d.Model {
				mi = &inv.Models[i]
			}
		}
	}
	if mi != nil {
		as.Serving = mi.Serving
		for _, v := range mi.Versions {
			if v.State == "canary" {
				as.Canary = v.Version
			}
		}
	}
	switch {
	case !a.Online:
		as.State = StateOffline
	case !as.Selected:
		as.State = StateConverged // nothing is desired of it
	case failure(d, mi) != nil:
		as.State, as.Error = StateFailed, failure(d, mi)
	case as.Revision >= d.Revision && as.Serving == d.Serving && (d.Canary == nil || as.Canary == d.Canary.Version):
		as.State = StateConverged
	default:
		as.State = StatePending
	}
	return as
}

// failure is why an agent fails to serve what d says: the model's error,
// or the error of a desired version.
func failure(d State, mi *ModelInventory) *string {
	if mi == nil {
		return nil
	}
	if mi.Error != nil {
		return mi.Error
	}
	for _, v := range mi.Versions {
		if _, desired := d.uses(v.Version); desired && v.Version != d.Previous && (v.Error != nil || v.State == "failed") {
			if v.Error != nil {
				return v.Error
			}
			s := fmt.Sprintf("v%d failed", v.Version)
			return &s
		}
	}
	return nil
}
