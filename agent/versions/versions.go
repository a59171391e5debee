// Package versions is the agent's set of loaded model versions: it decides,
// with package route, which versions of each model serve and swaps them in
// without failing a request. It receives the watcher's view of the model
// store, loads versions in the background (bounded), checks and warms them
// up, and publishes each model's serving set atomically. Requests take a
// reference on the version they start on (Route or Acquire, then Release),
// so a retired version is closed only after its last in-flight request ends.
//
// Per model at most one load runs at a time and a new load starts only
// when no retired version is still draining, so during a swap at most the
// serving versions plus one more are resident.
//
// (Not to be confused with the collector's model registry, which stores
// the published versions this package loads once they are on disk.)
package versions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
)

// Errors returned by Acquire, Route and the pin calls; servers map them to
// status codes (not found: 404, not ready: 503).
var (
	ErrModelNotFound   = errors.New("model not found")
	ErrVersionNotFound = errors.New("version not found")
	ErrNotReady        = errors.New("not ready")
	ErrClosed          = errors.New("agent is shutting down: versions closed")
)

// EventKind names a version lifecycle event.
type EventKind string

// Version lifecycle events.
const (
	EventLoaded     EventKind = "loaded"      // loaded, checked and warmed up
	EventSwapped    EventKind = "swapped"     // became the default version
	EventRolledBack EventKind = "rolled_back" // became the default version in place of a newer one
	EventLoadFailed EventKind = "load_failed" // load, check or warm-up failed
	EventRejected   EventKind = "rejected"    // refused (signature changed, gate)
	EventUnloaded   EventKind = "unloaded"    // closed after its last request
)

// Event is reported to Config.OnEvent.
type Event struct {
	Kind     EventKind
	Model    string
	Version  int64
	Previous int64 // for swapped and rolled_back: the version it replaced (0 = none)
	// Reason says why: the error for load_failed and rejected; for
	// rolled_back, what made an older version the default (a pin, the
	// newer version's directory removed, the version policy).
	Reason   string
	Duration time.Duration // for loaded: load + warm-up time
	Time     time.Time
}

// Config configures a Set.
type Config struct {
	Backend runtime.Backend
	// MaxConcurrentLoads bounds loads across all models; default 2.
	MaxConcurrentLoads int
	// WarmupRuns is the number of warm-up inferences when the manifest does
	// not say; default 3.
	WarmupRuns int
	// RetryBackoff is the first delay before a failed version is retried
	// without its directory changing; it doubles up to MaxRetryBackoff,
	// each delay taken at random within ±50 % so that agents that failed
	// together do not retry together. Defaults 5 s and 5 min.
	RetryBackoff, MaxRetryBackoff time.Duration
	// StateFile keeps pins and split overrides across restarts; empty keeps
	// them in memory.
	StateFile string
	// Policies per model; models not listed use "latest".
	Policies map[string]route.Policy
	Logger   *slog.Logger
	// OnEvent, if set, is called for every lifecycle event, synchronously
	// and possibly with internal locks held: it must not block or call back.
	OnEvent func(Event)
	// Gate, if set, decides after warm-up whether a candidate may serve;
	// current is the version serving now (nil for the first), referenced
	// for the duration of the call. A non-nil error rejects the candidate
	// (EventRejected with the error as reason). Pinned versions skip it.
	Gate func(ctx context.Context, candidate, current *Version) error
	// OnLoad, if set, is called as a version starts to load (once it has
	// one of MaxConcurrentLoads), and what it returns once the load,
	// warm-up and gate are done, whatever their outcome: the agent gives
	// its Go code all of its CPUs meanwhile (procenv.Slots.Hold).
	OnLoad func() (done func())
}

// Set holds every model's versions. All methods are safe for concurrent
// use.
type Set struct {
	cfg     Config
	log     *slog.Logger
	routes  *route.Table
	loadSem chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	loads   sync.WaitGroup

	mu     sync.RWMutex
	models map[string]*model
	closed bool
}

// New builds a set and reads the pins and split overrides from StateFile.
func New(cfg Config) (*Set, error) {
	if cfg.Backend == nil {
		return nil, errors.New("versions: Backend is required")
	}
	if cfg.MaxConcurrentLoads <= 0 {
		cfg.MaxConcurrentLoads = 2
	}
	if cfg.WarmupRuns <= 0 {
		cfg.WarmupRuns = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 5 * time.Second
	}
	if cfg.MaxRetryBackoff <= 0 {
		cfg.MaxRetryBackoff = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	routes, err := route.Open(cfg.StateFile, cfg.Policies)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Set{
		cfg: cfg, log: cfg.Logger, routes: routes, loadSem: make(chan struct{}, cfg.MaxConcurrentLoads),
		ctx: ctx, cancel: cancel, models: map[string]*model{},
	}, nil
}

// Version is a loaded model version. Its fields never change after load.
type Version struct {
	Model     string
	Number    int64
	Dir       string
	Manifest  *manifest.Manifest
	Signature runtime.Signature
	Info      map[string]string
	LoadedAt  time.Time
	LoadTime  time.Duration

	rt        runtime.Model
	overrides bool // Signature differs from the runtime's (manifest overrides)
	refs      atomic.Int64
	onClose   func()
}

// Infer runs the version. inputs are checked against the version's
// signature.
func (v *Version) Infer(ctx context.Context, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error) {
	return v.InferBefore(ctx, time.Time{}, inputs, outputs)
}

// InferBefore is Infer that also stops at deadline (zero: none): the
// request path's timeout, without a context per request
// (runtime.Model.RunBefore).
func (v *Version) InferBefore(ctx context.Context, deadline time.Time, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error) {
	if v.overrides {
		if _, err := runtime.CheckInputs(v.Signature, inputs); err != nil {
			return nil, err
		}
	}
	return v.rt.RunBefore(ctx, deadline, inputs, outputs)
}

func (v *Version) tryRef() bool {
	for {
		r := v.refs.Load()
		if r <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// Release drops a reference taken by Acquire or Route. The version closes
// when its last reference is gone and it no longer serves.
func (v *Version) Release() {
	if v.refs.Add(-1) == 0 {
		v.onClose()
	}
}

type servingSet struct {
	def       *Version
	byVersion map[int64]*Version
}

// failure is a version that did not load, and when it is tried again if
// its directory does not change first.
type failure struct {
	fingerprint string
	err         error
	at, retryAt time.Time
	// backoff spaces the retries of this fingerprint; a changed directory
	// drops the failure, and with it the backoff.
	backoff *backoff.ExponentialBackOff
}

type model struct {
	name    string
	serving atomic.Pointer[servingSet]

	mu        sync.Mutex
	available map[int64]watch.Version
	resident  map[int64]*Version // loaded, not retired
	draining  map[int64]*Version // retired, waiting for in-flight requests
	loading   int64
	failures  map[int64]*failure
	timer     *time.Timer
	changed   chan struct{} // closed and replaced after every reconcile
	noticed   string        // last "keeping" log message, to log once
}

func (s *Set) getModel(name string, create bool) *model {
	s.mu.RLock()
	m := s.models[name]
	s.mu.RUnlock()
	if m != nil || !create {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m = s.models[name]; m == nil {
		m = &model{
			name: name, available: map[int64]watch.Version{}, resident: map[int64]*Version{},
			draining: map[int64]*Version{}, failures: map[int64]*failure{}, changed: make(chan struct{}),
		}
		s.models[name] = m
	}
	return m
}

// Sync replaces what is known of a model's version directories (the
// watcher's report) and reconciles what serves.
func (s *Set) Sync(name string, versions []watch.Version) {
	m := s.getModel(name, true)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.available = make(map[int64]watch.Version, len(versions))
	for _, v := range versions {
		m.available[v.Number] = v
		if f := m.failures[v.Number]; f != nil && f.fingerprint != v.Fingerprint {
			delete(m.failures, v.Number) // changed on disk: try again now
		}
		if v.State != watch.Ready && v.Err != nil {
			s.log.Debug("version not loadable", "model", name, "version", v.Number, "state", v.State, "err", v.Err)
		}
	}
	s.reconcile(m)
}

// Acquire returns the version that serves a request for model name and
// version (0 = the default version) with a reference the caller must
// Release. Errors wrap ErrModelNotFound, ErrVersionNotFound or ErrNotReady.
func (s *Set) Acquire(name string, version int64) (*Version, error) {
	m := s.getModel(name, false)
	if m == nil {
		return nil, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	for {
		set := m.serving.Load()
		var v *Version
		if set != nil {
			if version == 0 {
				v = set.def
			} else {
				v = set.byVersion[version]
			}
		}
		if v == nil {
			return nil, s.whyNot(m, version)
		}
		if v.tryRef() {
			return v, nil
		}
		// v was retired between loading the set and taking the reference;
		// the set has been replaced already, so go again.
	}
}

// Route returns the version that answers one request for model that names
// version (0: none), with a reference the caller must Release, and the
// version the request is to be copied to as a shadow (0: none). The route
// table decides (canary share, shadow share, by request id); a canary that
// does not serve yet leaves the request to the default version. Errors are
// Acquire's.
func (s *Set) Route(model string, version int64, requestID string) (v *Version, shadow int64, err error) {
	c := s.routes.Choose(model, version, requestID)
	if c.Canary != 0 {
		if cv, cerr := s.Acquire(model, c.Canary); cerr == nil {
			return cv, c.Shadow(cv.Number), nil
		}
	}
	if v, err = s.Acquire(model, c.Version); err != nil {
		return nil, 0, err
	}
	return v, c.Shadow(v.Number), nil
}

func (s *Set) whyNot(m *model, version int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if version == 0 {
		if len(m.available) == 0 && len(m.resident) == 0 {
			return fmt.Errorf("%w: %q has no versions", ErrModelNotFound, m.name)
		}
		return fmt.Errorf("model %q is %w: no version has loaded yet", m.name, ErrNotReady)
	}
	av, ok := m.available[version]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q version %d", ErrVersionNotFound, m.name, version)
	case m.loading == version:
		return fmt.Errorf("model %q version %d is %w: loading", m.name, version, ErrNotReady)
	case m.failures[version] != nil:
		return fmt.Errorf("model %q version %d is %w: %v", m.name, version, ErrNotReady, m.failures[version].err)
	case av.State != watch.Ready:
		return fmt.Errorf("model %q version %d is %w: %s: %v", m.name, version, ErrNotReady, av.State, av.Err)
	}
	return fmt.Errorf("model %q version %d is %w: not served by the version policy (%s)", m.name, version, ErrNotReady, s.routes.Policy(m.name))
}

func (s *Set) emit(e Event) {
	if s.cfg.OnEvent != nil {
		e.Time = time.Now()
		s.cfg.OnEvent(e)
	}
}

// reconcile computes what should serve from what is available, publishes
// the serving set, retires what no longer serves and starts the next load.
// m.mu must be held.
func (s *Set) reconcile(m *model) {
	defer func() {
		close(m.changed)
		m.changed = make(chan struct{})
	}()
	now := time.Now()
	var candidates []int64
	var nextRetry time.Time
	for n, av := range m.available {
		if av.State != watch.Ready {
			continue
		}
		if f := m.failures[n]; f != nil {
			if now.Before(f.retryAt) {
				if nextRetry.IsZero() || f.retryAt.Before(nextRetry) {
					nextRetry = f.retryAt
				}
				continue
			}
		}
		candidates = append(candidates, n)
	}
	slices.SortFunc(candidates, func(a, b int64) int { return cmp.Compare(b, a) })
	plan := s.routes.Serving(m.name, candidates)
	pinned := plan.Pinned

	// The new serving set: the versions that should serve and are loaded;
	// if none that can be the default is yet, keep what serves now (minus
	// removed directories, but never the last one).
	old := m.serving.Load()
	next := &servingSet{byVersion: map[int64]*Version{}}
	for _, n := range plan.Versions {
		if v := m.resident[n]; v != nil {
			next.byVersion[n] = v
		}
	}
	nothingServes := old == nil || old.def == nil
	if d := plan.Default(func(n int64) bool { return m.resident[n] != nil }, nothingServes); d != 0 {
		next.def = m.resident[d]
	}
	if next.def == nil && old != nil && old.def != nil {
		keep := old.def
		if _, still := m.available[keep.Number]; !still || pinned != 0 && pinned != keep.Number {
			msg := fmt.Sprintf("keeping version %d serving until a replacement loads", keep.Number)
			if !still {
				msg = fmt.Sprintf("version %d's directory is gone but it is the last version serving: keeping it until another loads", keep.Number)
			}
			if m.noticed != msg {
				s.log.Warn(msg, "model", m.name)
				m.noticed = msg
			}
		}
		for n, v := range old.byVersion {
			if _, ok := m.available[n]; ok || v == keep {
				next.byVersion[n] = v
			}
		}
		next.def = keep
	}
	if !sameSet(old, next) {
		m.serving.Store(next)
		var prev int64
		if old != nil && old.def != nil {
			prev = old.def.Number
		}
		if next.def != nil && next.def.Number != prev {
			s.log.Info("version serving", "model", m.name, "version", next.def.Number, "previous", prev)
			s.emit(Event{Kind: EventSwapped, Model: m.name, Version: next.def.Number, Previous: prev})
			// An older version taking over from a newer one is a rollback,
			// unless the newer one was only a canary standing in until the
			// default version loaded.
			if prev != 0 && next.def.Number < prev && !slices.Contains(plan.Splits, prev) {
				reason := rollbackReason(m, plan, next.def.Number, prev, s.routes.Policy(m.name))
				s.log.Info("version rolled back", "model", m.name, "version", next.def.Number, "previous", prev, "reason", reason)
				s.emit(Event{Kind: EventRolledBack, Model: m.name, Version: next.def.Number, Previous: prev, Reason: reason})
			}
		}
	}
	// Retire resident versions that do not serve.
	for n, v := range m.resident {
		if next.byVersion[n] == v {
			continue
		}
		delete(m.resident, n)
		m.draining[n] = v
		v.Release() // the resident reference; closes now if idle
	}

	// Start the next load: the highest desired version not loaded yet.
	if m.loading == 0 && !s.isClosed() {
		for _, n := range plan.Versions {
			if m.resident[n] != nil {
				continue
			}
			if len(m.draining) > 0 {
				break // wait for retired versions to drain (memory bound)
			}
			s.startLoad(m, m.available[n], pinned == n)
			break
		}
	}
	if !nextRetry.IsZero() {
		if m.timer != nil {
			m.timer.Stop()
		}
		m.timer = time.AfterFunc(time.Until(nextRetry)+10*time.Millisecond, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			s.reconcile(m)
		})
	}
}

func sameSet(a, b *servingSet) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.def != b.def || len(a.byVersion) != len(b.byVersion) {
		return false
	}
	for n, v := range a.byVersion {
		if b.byVersion[n] != v {
			return false
		}
	}
	return true
}

// rollbackReason says why version prev stopped being the default in favour
// of the older version cur. m.mu must be held.
func rollbackReason(m *model, plan route.Serving, cur, prev int64, policy route.Policy) string {
	av, ok := m.available[prev]
	switch {
	case plan.Pinned == cur:
		return fmt.Sprintf("version %d is pinned", cur)
	case !ok:
		return fmt.Sprintf("version %d's directory was removed from the model store", prev)
	case av.State != watch.Ready:
		return fmt.Sprintf("version %d's directory is %s", prev, av.State)
	}
	return fmt.Sprintf("the version policy (%s) no longer serves version %d", policy, prev)
}

func (s *Set) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// startLoad loads av in the background. m.mu must be held.
func (s *Set) startLoad(m *model, av watch.Version, forced bool) {
	m.loading = av.Number
	var current *Version
	if set := m.serving.Load(); set != nil && set.def != nil && set.def.tryRef() {
		current = set.def
	}
	s.loads.Add(1)
	go func() {
		defer s.loads.Done()
		v, kind, err := s.load(av, current, forced)
		if current != nil {
			current.Release()
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.loading = 0
		if err != nil {
			f := m.failures[av.Number]
			if f == nil || f.fingerprint != av.Fingerprint {
				f = &failure{fingerprint: av.Fingerprint, backoff: s.newBackoff()}
				m.failures[av.Number] = f
			}
			delay := f.backoff.NextBackOff()
			f.err, f.at = err, time.Now()
			f.retryAt = f.at.Add(delay)
			s.log.Error("version not loaded", "model", m.name, "version", av.Number, "err", err, "retry_in", delay)
			s.emit(Event{Kind: kind, Model: m.name, Version: av.Number, Reason: err.Error()})
		} else {
			delete(m.failures, av.Number)
			v.onClose = func() { s.closeVersion(m, v) }
			m.resident[av.Number] = v
			s.log.Info("version loaded", "model", m.name, "version", av.Number, "load_time", v.LoadTime)
			s.emit(Event{Kind: EventLoaded, Model: m.name, Version: av.Number, Duration: v.LoadTime})
		}
		if !s.isClosed() {
			s.reconcile(m)
		} else if v != nil {
			delete(m.resident, v.Number)
			m.draining[v.Number] = v
			v.Release()
		}
	}()
}

// newBackoff returns the retry schedule of a version that failed to load:
// RetryBackoff, doubling up to MaxRetryBackoff, each delay jittered.
func (s *Set) newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = s.cfg.RetryBackoff
	b.MaxInterval = s.cfg.MaxRetryBackoff
	b.Multiplier = 2
	b.Reset()
	return b
}

// closeVersion runs when a retired version's last reference is gone.
func (s *Set) closeVersion(m *model, v *Version) {
	if err := v.rt.Close(); err != nil {
		s.log.Error("close version", "model", m.name, "version", v.Number, "err", err)
	}
	s.emit(Event{Kind: EventUnloaded, Model: m.name, Version: v.Number})
	// Called from Release, which may run with or without m.mu held (the
	// resident reference is dropped under it); finish asynchronously.
	go func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.draining, v.Number)
		if !s.isClosed() {
			s.reconcile(m)
		} else {
			close(m.changed)
			m.changed = make(chan struct{})
		}
	}()
}

// load loads, checks and warms up one version. The error kind is
// EventRejected for a refused signature change, else EventLoadFailed.
func (s *Set) load(av watch.Version, current *Version, forced bool) (*Version, EventKind, error) {
	select {
	case s.loadSem <- struct{}{}:
		defer func() { <-s.loadSem }()
	case <-s.ctx.Done():
		return nil, EventLoadFailed, ErrClosed
	}
	if s.cfg.OnLoad != nil {
		defer s.cfg.OnLoad()()
	}
	start := time.Now()
	rt, err := s.cfg.Backend.Load(s.ctx, filepath.Join(av.Dir, manifest.ModelFile))
	if err != nil {
		return nil, EventLoadFailed, err
	}
	v := &Version{
		Model: av.Model, Number: av.Number, Dir: av.Dir, Manifest: av.Manifest,
		Signature: rt.Signature(), Info: rt.Info(), rt: rt,
	}
	v.refs.Store(1)
	fail := func(kind EventKind, err error) (*Version, EventKind, error) {
		rt.Close()
		return nil, kind, err
	}
	if av.Manifest != nil && av.Manifest.Signature != nil {
		sig, err := applyOverrides(v.Signature, av.Manifest.Signature)
		if err != nil {
			return fail(EventLoadFailed, fmt.Errorf("manifest signature: %w", err))
		}
		v.overrides = !sig.Equal(v.Signature)
		v.Signature = sig
	}
	intended := av.Manifest != nil && av.Manifest.Signature != nil && av.Manifest.Signature.IntendedChange
	if current != nil && !forced && !intended && !current.Signature.Equal(v.Signature) {
		return fail(EventRejected, fmt.Errorf("signature changed from the serving version's (%s -> %s); set signature.intended_change in drover.yaml or pin the version to accept it",
			describe(current.Signature), describe(v.Signature)))
	}
	if err := s.warmup(v); err != nil {
		return fail(EventLoadFailed, fmt.Errorf("warm-up: %w", err))
	}
	if s.cfg.Gate != nil && !forced {
		if current != nil && current.Number == v.Number {
			current = nil
		}
		if err := s.cfg.Gate(s.ctx, v, current); err != nil {
			return fail(EventRejected, fmt.Errorf("gate: %w", err))
		}
	}
	v.LoadedAt = time.Now()
	v.LoadTime = v.LoadedAt.Sub(start)
	return v, "", nil
}

// warmup runs the version before it serves. The inputs come from the
// manifest when it gives them (its warm-up request, else the first rows of
// its golden set) and a failure then rejects the version: its owner said
// what valid input looks like. Otherwise the inputs are synthetic, zero-filled
// with batch 1, which a valid model may refuse (an input that is a shape, a
// divisor or a scale): a failure is logged and the version serves.
func (s *Set) warmup(v *Version) error {
	runs := s.cfg.WarmupRuns
	var inputs []oip.Tensor
	var outputs []string
	source := ""
	if mf := v.Manifest; mf != nil {
		if mf.Warmup != nil && mf.Warmup.Runs > 0 {
			runs = mf.Warmup.Runs
		}
		switch {
		case mf.Warmup != nil && mf.Warmup.Request != "":
			req, err := readWarmupRequest(filepath.Join(v.Dir, filepath.FromSlash(mf.Warmup.Request)))
			if err != nil {
				return err
			}
			inputs, source = req.Inputs, "warmup.request"
			for _, o := range req.Outputs {
				outputs = append(outputs, o.Name)
			}
		case mf.GoldenSet != nil:
			gs, err := evaluate.LoadGoldenSet(v.Dir, mf.GoldenSet, v.Signature)
			if err != nil {
				// The gate reports it (and rejects the version); a pinned
				// version, which skips the gate, still warms up.
				s.log.Info("golden set unusable for warm-up; warming up on zero inputs", "model", v.Model, "version", v.Number, "err", err)
				break
			}
			inputs, source = gs.WarmupInputs(), "golden set"
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	if inputs == nil {
		err := s.syntheticWarmup(ctx, v, runs)
		if err != nil {
			s.log.Warn("warm-up on zero inputs failed; the version serves without it (give it real inputs with warmup.request or golden_set in drover.yaml)",
				"model", v.Model, "version", v.Number, "err", err)
		}
		return nil
	}
	for i := 0; i < runs; i++ {
		if _, err := v.Infer(ctx, inputs, outputs); err != nil {
			return fmt.Errorf("%s, run %d: %w", source, i+1, err)
		}
	}
	return nil
}

// syntheticWarmup runs the version runs times on zero-filled inputs of
// batch 1.
func (s *Set) syntheticWarmup(ctx context.Context, v *Version, runs int) error {
	var inputs []oip.Tensor
	for _, spec := range v.Signature.Inputs {
		t, err := runtime.ZeroTensor(spec, 1)
		if err != nil {
			return err
		}
		inputs = append(inputs, t)
	}
	for i := 0; i < runs; i++ {
		if _, err := v.Infer(ctx, inputs, nil); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
	}
	return nil
}

func describe(s runtime.Signature) string {
	out := "inputs"
	for _, t := range s.Inputs {
		out += fmt.Sprintf(" %s:%s%v", t.Name, t.Datatype, t.Shape)
	}
	out += " outputs"
	for _, t := range s.Outputs {
		out += fmt.Sprintf(" %s:%s%v", t.Name, t.Datatype, t.Shape)
	}
	return out
}

// applyOverrides checks the manifest's declared signature against the
// model's and returns the model's signature with the declared shapes.
func applyOverrides(sig runtime.Signature, decl *manifest.Signature) (runtime.Signature, error) {
	apply := func(kind string, specs []runtime.TensorSpec, decls []manifest.Tensor) ([]runtime.TensorSpec, error) {
		out := slices.Clone(specs)
		for _, d := range decls {
			i := slices.IndexFunc(out, func(s runtime.TensorSpec) bool { return s.Name == d.Name })
			if i < 0 {
				return nil, fmt.Errorf("%s %q is not in the model", kind, d.Name)
			}
			if string(out[i].Datatype) != d.Datatype {
				return nil, fmt.Errorf("%s %q is %s in the model, the manifest says %s", kind, d.Name, out[i].Datatype, d.Datatype)
			}
			if len(d.Shape) != len(out[i].Shape) {
				return nil, fmt.Errorf("%s %q has shape %v in the model, the manifest says %v", kind, d.Name, out[i].Shape, d.Shape)
			}
			for j, dim := range out[i].Shape {
				if dim >= 0 && d.Shape[j] != dim {
					return nil, fmt.Errorf("%s %q has shape %v in the model, the manifest says %v", kind, d.Name, out[i].Shape, d.Shape)
				}
			}
			out[i].Shape = slices.Clone(d.Shape)
		}
		return out, nil
	}
	var err error
	res := sig
	if res.Inputs, err = apply("input", sig.Inputs, decl.Inputs); err != nil {
		return sig, err
	}
	if res.Outputs, err = apply("output", sig.Outputs, decl.Outputs); err != nil {
		return sig, err
	}
	return res, nil
}
