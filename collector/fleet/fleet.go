package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/forward"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/manifest"
)

// Versions looks up registry versions: a change may name only an active
// version. *registry.Registry implements it.
type Versions interface {
	Version(ctx context.Context, model string, version uint64) (registry.Version, error)
}

// Options configure a Fleet. Zero values take the defaults.
type Options struct {
	// Conn is a connection to a database migrated with store.Migrate; the
	// Fleet does not own it.
	Conn driver.Conn
	// Database holds the tables; default "drover".
	Database string
	// Cluster: the schema was migrated ON CLUSTER (inserts wait for the
	// Distributed table to write to the shard).
	Cluster bool
	// Versions checks the versions a change names (required).
	Versions Versions
	// Node is this collector's name (Drover-Forwarded-By, the agents
	// table's collector column).
	Node string
	// Owner finds a model's ring owner; nil: this collector owns every
	// model (no cluster).
	Owner registry.OwnerFunc
	// Client sends forwarded changes to the owner; default a client
	// without a timeout (each change is bounded by its context and
	// ForwardWait).
	Client *http.Client
	// Scheme of the owners' admin API: "http" (default) or "https".
	Scheme string
	// ForwardWait bounds how long a change looks for an owner that
	// answers; default 30s. ForwardRetry is the pause between attempts;
	// default 250ms.
	ForwardWait, ForwardRetry time.Duration
	// Refresh is how often the desired states are re-read from
	// ClickHouse (and agents' last_seen refreshed); default 1s.
	Refresh time.Duration
	// Heartbeat is the interval agents are told to report at; default
	// 10s. An agent is offline after 3 intervals without a report.
	Heartbeat time.Duration
	// SeenRefresh is how often the last_seen of an agent whose inventory
	// does not change is written to the agents table, for the other
	// collectors of a cluster; default 1m.
	SeenRefresh time.Duration
	// MaxAgents bounds the agents held in memory; default 100000.
	MaxAgents int
	// AgentExpiry is how long an agent may go unseen before it is gone
	// (Config.AgentExpiry): dropped from memory, left out of Agents and
	// Status, ignored by InUse. Default DefaultAgentExpiry.
	AgentExpiry time.Duration
	// CanaryAnalysis fills the analysis of an auto canary whose rollout
	// leaves fields of it unset (Config.CanaryAnalysis), on the owner.
	CanaryAnalysis CanaryAnalysis
	// MaxWait bounds a long-poll's wait; default 60s.
	MaxWait time.Duration
	// OTLP is what a registration answers: where agents send OTLP.
	OTLP OTLPEndpoints
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// maxModelStates bounds the models whose desired state is held.
const maxModelStates = 100000

// Fleet holds the desired states and the agents this collector knows,
// applies changes (on the model's owner) and serves the control channel.
// It is safe for concurrent use. Its Run keeps the desired states in line
// with ClickHouse; until Run's first read the control channel answers 503,
// so an agent is never told that nothing is desired when something is.
type Fleet struct {
	o Options
	t tables

	mu      sync.Mutex
	states  map[string]State
	loaded  chan struct{} // closed after the first read of the states
	changed chan struct{} // closed and replaced at every change of states
	stopped chan struct{} // closed when Run returns: long-polls answer at once
	stop    sync.Once
	agents  map[string]*agentEntry
	swept   time.Time // the last drop of the gone agents (expireLocked)
	locks   map[string]*sync.Mutex
	// w writes the changed inventories to the agents table in batches.
	w *writer
	// remote is the agents table as last read (Run, every Options.Refresh):
	// Agents and Status take the agents reporting to other collectors from
	// it, and the ones reporting here from memory; remoteRead is false
	// until the first read.
	remote     []Agent
	remoteRead bool
}

// New returns a Fleet; call Run to load and follow the desired states.
func New(o Options) (*Fleet, error) {
	if o.Conn == nil || o.Versions == nil {
		return nil, errors.New("fleet: Conn and Versions are required")
	}
	if o.Database == "" {
		o.Database = "drover"
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Scheme == "" {
		o.Scheme = "http"
	}
	if o.ForwardWait <= 0 {
		o.ForwardWait = 30 * time.Second
	}
	if o.ForwardRetry <= 0 {
		o.ForwardRetry = 250 * time.Millisecond
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 10 * time.Second
	}
	if o.SeenRefresh <= 0 {
		o.SeenRefresh = time.Minute
	}
	if o.MaxAgents <= 0 {
		o.MaxAgents = 100000
	}
	if o.AgentExpiry <= 0 {
		o.AgentExpiry = DefaultAgentExpiry
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	q := func(t string) string { return "`" + o.Database + "`.`" + t + "`" }
	f := &Fleet{o: o, t: tables{conn: o.Conn, desired: q(TableDesired), agents: q(TableAgents), cluster: o.Cluster},
		states: map[string]State{}, loaded: make(chan struct{}), changed: make(chan struct{}),
		stopped: make(chan struct{}), agents: map[string]*agentEntry{}, locks: map[string]*sync.Mutex{}}
	f.w = newWriter(o.MaxAgents, f.t.insertAgents)
	return f, nil
}

// Run reads the desired states at once and then every Options.Refresh
// (a change made through another collector reaches this one's long-polls
// within that), and writes the last_seen of live agents every
// Options.SeenRefresh; at each refresh it drops the agents gone for
// Options.AgentExpiry from memory, and re-reads the agents table (the
// agents of other collectors, for Agents and Status). Alongside, it writes
// the changed inventories to the agents table in batches. A failed read is
// logged once until one succeeds again. It returns nil when ctx ends,
// after writing the inventories still queued; long-polls waiting then
// answer 304 at once (so a server shutdown does not wait for them).
func (f *Fleet) Run(ctx context.Context) error {
	t := time.NewTicker(f.o.Refresh)
	defer t.Stop()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		f.runWriter(ctx)
	}()
	defer func() { <-wrote }()
	defer f.stop.Do(func() { close(f.stopped) })
	failing := false
	for {
		err := f.refresh(ctx)
		if err == nil {
			err = f.flushSeen(ctx)
		}
		if err == nil {
			err = f.readRemote(ctx)
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			f.o.Logger.Warn("fleet: reading desired states failed; retried every refresh, logged again once it works", "err", err)
			failing = true
		case err == nil && failing:
			f.o.Logger.Info("fleet: reading desired states works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refresh reads every model's highest revision and the states newer than
// the ones held.
func (f *Fleet) refresh(ctx context.Context) error {
	revs, err := f.t.revisions(ctx, maxModelStates)
	if err != nil {
		return err
	}
	for _, m := range slices.Sorted(maps.Keys(revs)) {
		f.mu.Lock()
		have := f.states[m].Revision
		f.mu.Unlock()
		if revs[m] <= have {
			continue
		}
		s, err := f.t.latest(ctx, m)
		if err != nil {
			return err
		}
		f.publish(s)
	}
	f.mu.Lock()
	select {
	case <-f.loaded:
	default:
		close(f.loaded)
	}
	f.mu.Unlock()
	return nil
}

// publish makes s the held state of its model if it is newer, and wakes
// the long-polls.
func (f *Fleet) publish(s State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Revision <= f.states[s.Model].Revision {
		return
	}
	f.states[s.Model] = s
	close(f.changed)
	f.changed = make(chan struct{})
}

// Loaded is closed once the desired states were first read.
func (f *Fleet) Loaded() <-chan struct{} { return f.loaded }

// State returns the held desired state of model (revision 0 if none). It
// may be up to Options.Refresh older than ClickHouse.
func (f *Fleet) State(model string) State {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.states[model]; ok {
		return s.clone()
	}
	return State{Model: model}
}

// States returns every held desired state, by model.
func (f *Fleet) States() []State {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]State, 0, len(f.states))
	for _, m := range slices.Sorted(maps.Keys(f.states)) {
		out = append(out, f.states[m].clone())
	}
	return out
}

// Owns reports whether this collector is model's ring owner (always
// without a ring).
func (f *Fleet) Owns(model string) bool {
	if f.o.Owner == nil {
		return true
	}
	self, _, _ := f.o.Owner(model)
	return self
}

// AutoCanaries returns the held desired states with an automatic canary
// (not pinned) of the models this collector owns: what the canary
// analysis judges here.
func (f *Fleet) AutoCanaries() []State {
	var out []State
	for _, s := range f.States() {
		if s.Canary != nil && s.Canary.Auto && !s.Pinned && f.Owns(s.Model) {
			out = append(out, s)
		}
	}
	return out
}

// Desired reads model's current desired state from ClickHouse (revision 0
// when none).
func (f *Fleet) Desired(ctx context.Context, model string) (State, error) {
	if !manifest.ValidName(model) {
		return State{}, fmt.Errorf("%w: model name %q", ErrInvalid, model)
	}
	s, err := f.t.latest(ctx, model)
	if err != nil {
		return State{}, err
	}
	f.publish(s)
	return s, nil
}

// History reads model's desired states, newest first, at most limit.
func (f *Fleet) History(ctx context.Context, model string, limit int) ([]State, error) {
	if !manifest.ValidName(model) {
		return nil, fmt.Errorf("%w: model name %q", ErrInvalid, model)
	}
	return f.t.history(ctx, model, limit)
}

// Change applies change (one of Changes, or ChangeAnalysis) with req to
// model's desired state on the model's ring owner (here, or forwarded
// with the caller's credentials) and returns the new state. The author is
// the token of ctx (auth.FromContext). Errors: ErrInvalid, ErrNotFound
// (unknown model or version), ErrConflict (the change does not apply), or
// the owner's answer; while no owner answers it retries for up to
// Options.ForwardWait.
func (f *Fleet) Change(ctx context.Context, model, change string, req Request) (State, error) {
	if !manifest.ValidName(model) {
		return State{}, fmt.Errorf("%w: model name %q", ErrInvalid, model)
	}
	return forward.ToOwner(ctx, forward.Retry{Owner: f.o.Owner, Wait: f.o.ForwardWait, Pause: f.o.ForwardRetry, Now: f.o.Now, Logger: f.o.Logger},
		change, model,
		func() (State, error) { return f.commit(ctx, model, change, req) },
		func(admin string) (State, error) {
			s, err := f.send(ctx, admin, model, change, req)
			if err != nil {
				return State{}, err
			}
			f.publish(s)
			f.o.Logger.Info("fleet: change forwarded to the owner", "model", model, "change", change, "owner", admin, "revision", s.Revision)
			return s, nil
		})
}

func (f *Fleet) modelLock(model string) *sync.Mutex {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.locks[model]
	if !ok {
		l = &sync.Mutex{}
		f.locks[model] = l
	}
	return l
}

// commit applies a change here, on the owner: under the model's lock it
// reads the newest revision from ClickHouse (an owner that just took the
// model over continues its predecessor's numbering), computes the next
// state, checks its versions, and inserts it before anyone sees it.
func (f *Fleet) commit(ctx context.Context, model, change string, req Request) (State, error) {
	lock := f.modelLock(model)
	lock.Lock()
	defer lock.Unlock()
	cur, err := f.t.latest(ctx, model)
	if err != nil {
		return State{}, fmt.Errorf("%s %s: %w", change, model, err)
	}
	cur.Model = model
	now := f.o.Now().UTC().Truncate(time.Millisecond)
	if change == ChangeRollout && req.Canary != nil && req.Canary.Auto {
		c := *req.Canary
		c.Analysis = f.o.CanaryAnalysis.fill(c.Analysis)
		req.Canary = &c
	}
	n, check, err := next(cur, change, req, now)
	if err != nil {
		return State{}, fmt.Errorf("%s %s: %w", change, model, err)
	}
	for _, v := range check {
		rec, err := f.o.Versions.Version(ctx, model, v)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return State{}, fmt.Errorf("%s %s: v%d: %w in the registry", change, model, v, ErrNotFound)
		case err != nil:
			return State{}, fmt.Errorf("%s %s: look up v%d: %w", change, model, v, err)
		case rec.State != registry.StateActive:
			return State{}, fmt.Errorf("%s %s: v%d is deleted: %w", change, model, v, ErrNotFound)
		}
	}
	n.Revision = cur.Revision + 1
	n.ChangedAt = now
	n.ChangedBy = ""
	if p, ok := auth.FromContext(ctx); ok {
		n.ChangedBy = p.Name
	}
	if err := f.t.insertState(ctx, n); err != nil {
		return State{}, err
	}
	f.publish(n)
	f.o.Logger.Info("fleet: desired state changed", "model", model, "change", change, "revision", n.Revision,
		"serving", n.Serving, "by", n.ChangedBy)
	return n.clone(), nil
}

// InUse is the registry's InUse hook: a version is in use while it is
// serving, previous, canary or shadow in its model's current desired
// state, or while the last inventory of an agent that is not gone (seen
// within Options.AgentExpiry) says it serves it.
func (f *Fleet) InUse(ctx context.Context, model string, version uint64) (bool, string, error) {
	s, err := f.t.latest(ctx, model)
	if err != nil {
		return false, "", err
	}
	if as, ok := s.uses(version); ok {
		return true, fmt.Sprintf("v%d is %s in the desired state of %s (revision %d)", version, as, model, s.Revision), nil
	}
	// The agents reporting here, from memory: their last inventory may
	// still wait in the write queue.
	if n, one := f.servingLocal(model, version); n > 0 {
		return true, fmt.Sprintf("%d agents serve v%d of %s (%s among them)", n, version, model, one), nil
	}
	n, one, err := f.t.servingAgents(ctx, model, version, f.goneBefore())
	if err != nil {
		return false, "", err
	}
	if n > 0 {
		return true, fmt.Sprintf("%d agents serve v%d of %s (%s among them)", n, version, model, one), nil
	}
	return false, "", nil
}
