package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Checks is what a Scheduler needs of the ClickHouse side of drift
// detection; *Checker implements it (and tests may fake it).
type Checks interface {
	// ServingVersions lists the versions of model with requests in
	// [now−window, now), the most requests first.
	ServingVersions(ctx context.Context, model string, window time.Duration, now time.Time) ([]string, error)
	// Check checks model version under p at now and records the result.
	Check(ctx context.Context, model, version string, p Policy, now time.Time) (Result, error)
	// RecordIncident records the opening of inc.
	RecordIncident(ctx context.Context, inc Incident, opened time.Time) error
	// HistoryReader gives the Detector what it restores a version from.
	HistoryReader
}

// SchedulerConfig holds a Scheduler's dependencies. Checker, Detector,
// Policy, Owns, Models and OnIncident are required.
type SchedulerConfig struct {
	// Checker checks model versions, usually a *Checker. Errors that wrap
	// ErrUnavailable pause the round (see Scheduler).
	Checker  Checks
	Detector *Detector
	// Policy returns a model's complete policy ((*Config).For).
	Policy func(model string) Policy
	// Owns reports whether this node owns model (the ring).
	Owns func(model string) bool
	// Models lists the models with recent data, e.g. Checker.RecentModels.
	Models func(ctx context.Context, now time.Time) ([]string, error)
	// OnIncident is called once per incident this node opens, after the
	// incident is recorded in drift_results; the jobs package schedules the
	// re-optimization. It runs on the scheduler's goroutine.
	OnIncident func(ctx context.Context, inc Incident)
	// Limits bound the models and versions checked, the incidents open
	// per model (applied to Detector) and how long a vanished version's
	// state is kept. Zero: DefaultLimits.
	Limits Limits
	// Registerer, if set, receives the scheduler's metrics (docs/drift.md).
	Registerer prometheus.Registerer
	// Tick is how often the scheduler looks for models whose Interval has
	// passed since their last check. Default 5 s.
	Tick time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Scheduler checks, every policy Interval, each serving version (a version
// with requests in the window) of each model this node owns, feeds the
// Detector and reports incidents. When ClickHouse is unavailable it skips
// the round and logs once per outage; missing data never opens an
// incident. It checks at most Limits.MaxModels models and
// MaxVersionsPerModel versions of each, opens at most
// MaxOpenIncidentsPerModel incidents of a model at once, and drops the
// state of a version (its own, the Detector's, the Checker's caches) that
// has not served for ForgetAfter. A Scheduler runs once.
type Scheduler struct {
	cfg     SchedulerConfig
	metrics schedulerMetrics

	mu      sync.Mutex
	started bool

	// State of the run goroutine.
	last       map[string]time.Time    // model → last round that checked it
	owned      map[[2]string]struct{}  // versions whose detector state this node holds
	seen       map[[2]string]time.Time // version → last round it was serving (ForgetAfter)
	paused     bool                    // ClickHouse unavailable since the last logged warning
	failed     map[string]bool         // models whose last check failed permanently (logged)
	overModels bool                    // MaxModels reached (logged once until it is not)
	overVers   map[string]bool         // models over MaxVersionsPerModel (logged once until they are not)
	suppressed map[[2]string]time.Time // version → start of its suppressed confirmation (logged once per run)
}

// Forgetter is implemented by a Checks that caches per-version state
// (*Checker): the Scheduler calls Forget when it drops a version.
type Forgetter interface {
	Forget(model, version string)
}

// schedulerMetrics are the Scheduler's own metrics; nil fields (no
// Registerer) record nothing.
type schedulerMetrics struct {
	suppressed prometheus.Counter
	skipped    *prometheus.CounterVec
	forgotten  prometheus.Counter
}

func newSchedulerMetrics(reg prometheus.Registerer) schedulerMetrics {
	if reg == nil {
		return schedulerMetrics{}
	}
	m := schedulerMetrics{
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_collector_drift_incidents_suppressed_total",
			Help: "Drift confirmed for a model version while its model had max_open_incidents_per_model incidents open: recorded in drift_results as checks, logged, no incident opened and no job scheduled."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_drift_skipped_total",
			Help: "Models (limit=max_models) and versions (limit=max_versions_per_model) left unchecked in a round because the limit was reached."}, []string{"limit"}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_collector_drift_forgotten_versions_total",
			Help: "Model versions whose drift state was dropped after not serving for forget_after."}),
	}
	reg.MustRegister(m.suppressed, m.skipped, m.forgotten)
	return m
}

func add(c prometheus.Counter, n int) {
	if c != nil && n > 0 {
		c.Add(float64(n))
	}
}

// NewScheduler returns a Scheduler, or an error naming a missing
// dependency.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	var errs []error
	for name, missing := range map[string]bool{
		"Checker": cfg.Checker == nil, "Detector": cfg.Detector == nil, "Policy": cfg.Policy == nil,
		"Owns": cfg.Owns == nil, "Models": cfg.Models == nil, "OnIncident": cfg.OnIncident == nil,
	} {
		if missing {
			errs = append(errs, errors.New("drift scheduler: "+name+" is required"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("drift scheduler: limits: %w", err)
	}
	cfg.Detector.SetMaxOpenPerModel(cfg.Limits.MaxOpenIncidentsPerModel)
	return &Scheduler{cfg: cfg, metrics: newSchedulerMetrics(cfg.Registerer),
		last: map[string]time.Time{}, owned: map[[2]string]struct{}{}, seen: map[[2]string]time.Time{},
		failed: map[string]bool{}, overVers: map[string]bool{}, suppressed: map[[2]string]time.Time{}}, nil
}

// Run checks models until ctx is cancelled, then returns nil (no check is
// left running). It returns an error if called a second time.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("drift scheduler: Run called twice")
	}
	s.started = true
	s.mu.Unlock()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		s.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// unavailable logs the first failure of an outage and reports whether err
// was one.
func (s *Scheduler) unavailable(err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	if !s.paused {
		s.paused = true
		s.cfg.Log.Warn("drift checks paused: ClickHouse unavailable", "err", err)
	}
	return true
}

func (s *Scheduler) round(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	now := s.cfg.Now()
	models, err := s.cfg.Models(ctx, now)
	if err != nil {
		if ctx.Err() == nil && !s.unavailable(err) {
			s.cfg.Log.Error("drift checks: list models", "err", err)
		}
		return
	}
	owned := map[[2]string]struct{}{}
	for _, model := range s.limitModels(models) {
		p := s.cfg.Policy(model)
		if last, ok := s.last[model]; ok && now.Sub(last) < p.Interval {
			for k := range s.owned {
				if k[0] == model {
					owned[k] = struct{}{}
				}
			}
			continue
		}
		versions, err := s.cfg.Checker.ServingVersions(ctx, model, p.Window, now)
		if err != nil {
			if ctx.Err() != nil || s.unavailable(err) {
				return
			}
			s.cfg.Log.Error("drift checks: serving versions", "model", model, "err", err)
			continue
		}
		versions = s.limitVersions(model, versions)
		ok := true
		for _, version := range versions {
			owned[[2]string{model, version}] = struct{}{}
			s.seen[[2]string{model, version}] = now
			if err := s.check(ctx, model, version, p, now); err != nil {
				if ctx.Err() != nil || s.unavailable(err) {
					return
				}
				ok = false
				if !s.failed[model] {
					s.failed[model] = true
					s.cfg.Log.Error("drift check failed", "model", model, "version", version, "err", err)
				}
			}
		}
		if ok {
			delete(s.failed, model)
		}
		s.last[model] = now
	}
	// Versions no longer owned or serving: their next owner restores them.
	for k := range s.owned {
		if _, ok := owned[k]; !ok {
			s.cfg.Detector.Forget(k[0], k[1])
		}
	}
	for model := range s.last {
		if !slices.ContainsFunc(models, func(m string) bool { return m == model && s.cfg.Owns(m) }) {
			delete(s.last, model)
			delete(s.failed, model)
			delete(s.overVers, model)
		}
	}
	s.owned = owned
	s.forget(now)
	if s.paused {
		s.paused = false
		s.cfg.Log.Info("drift checks resumed: ClickHouse available")
	}
}

func (s *Scheduler) check(ctx context.Context, model, version string, p Policy, now time.Time) error {
	d := s.cfg.Detector
	if !d.Known(model, version) {
		if err := d.Restore(ctx, s.cfg.Checker, model, version, now); err != nil {
			return err
		}
	}
	r, err := s.cfg.Checker.Check(ctx, model, version, p, now)
	if err != nil {
		return err
	}
	inc, suppressed := d.observe(model, version, r, now)
	k := [2]string{model, version}
	if suppressed == nil {
		delete(s.suppressed, k) // the run of suppressed confirmations, if any, is over
	} else {
		// Logged and counted once per run of confirmations that the limit
		// holds back (the start moves as old checks leave the last N).
		if _, ok := s.suppressed[k]; !ok {
			s.suppressed[k] = suppressed.Start
			add(s.metrics.suppressed, 1)
			s.cfg.Log.Warn("drift incident suppressed: the model has max_open_incidents_per_model incidents open",
				"model", model, "version", version, "start", suppressed.Start, "reasons", suppressed.Reasons,
				"max_open_incidents_per_model", s.cfg.Limits.MaxOpenIncidentsPerModel)
		}
		return nil
	}
	if inc == nil {
		return nil
	}
	s.cfg.Log.Warn("drift incident", "model", model, "version", version, "start", inc.Start, "reasons", inc.Reasons)
	if err := s.cfg.Checker.RecordIncident(ctx, *inc, now); err != nil {
		// The incident stands: the jobs package deduplicates by its start.
		s.cfg.Log.Error("drift incident not recorded", "model", model, "version", version, "err", err)
	}
	s.cfg.OnIncident(ctx, *inc)
	return nil
}

// limitModels returns the owned models of the listing that this round may
// check: at most MaxModels, the ones already tracked first (a flood of
// new names cannot push them out), then new ones in listing order.
func (s *Scheduler) limitModels(models []string) []string {
	var known, fresh []string
	for _, m := range models {
		if !s.cfg.Owns(m) {
			continue
		}
		if _, ok := s.last[m]; ok {
			known = append(known, m)
		} else {
			fresh = append(fresh, m)
		}
	}
	out := append(known, fresh...)
	if len(out) <= s.cfg.Limits.MaxModels {
		s.overModels = false
		return out
	}
	skipped := len(out) - s.cfg.Limits.MaxModels
	s.metrics.skip("max_models", skipped)
	if !s.overModels {
		s.overModels = true
		s.cfg.Log.Warn("drift checks: more models than max_models; the rest are not checked",
			"models", len(out), "max_models", s.cfg.Limits.MaxModels)
	}
	return out[:s.cfg.Limits.MaxModels]
}

// limitVersions keeps at most MaxVersionsPerModel of a model's serving
// versions, in the order ServingVersions gives them (most requests first).
func (s *Scheduler) limitVersions(model string, versions []string) []string {
	limit := s.cfg.Limits.MaxVersionsPerModel
	if len(versions) <= limit {
		delete(s.overVers, model)
		return versions
	}
	s.metrics.skip("max_versions_per_model", len(versions)-limit)
	if !s.overVers[model] {
		s.overVers[model] = true
		s.cfg.Log.Warn("drift checks: more serving versions than max_versions_per_model; the ones with the fewest requests are not checked",
			"model", model, "versions", len(versions), "max_versions_per_model", limit)
	}
	return versions[:limit]
}

func (m schedulerMetrics) skip(limit string, n int) {
	if m.skipped != nil {
		add(m.skipped.WithLabelValues(limit), n)
	}
}

// forget drops the state of the versions that have not served for
// ForgetAfter: the scheduler's, the Detector's and the Checker's caches.
func (s *Scheduler) forget(now time.Time) {
	n := 0
	for k, at := range s.seen {
		if now.Sub(at) <= s.cfg.Limits.ForgetAfter {
			continue
		}
		delete(s.seen, k)
		delete(s.suppressed, k)
		delete(s.owned, k)
		s.cfg.Detector.Forget(k[0], k[1])
		if f, ok := s.cfg.Checker.(Forgetter); ok {
			f.Forget(k[0], k[1])
		}
		n++
	}
	add(s.metrics.forgotten, n)
}
