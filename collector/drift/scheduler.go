package drift

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Checks is what a Scheduler needs of the ClickHouse side of drift
// detection; *Checker implements it (and tests may fake it).
type Checks interface {
	// ServingVersions lists the versions of model with requests in
	// [now−window, now).
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
// incident. A Scheduler runs once.
type Scheduler struct {
	cfg SchedulerConfig

	mu      sync.Mutex
	started bool

	// State of the run goroutine.
	last   map[string]time.Time   // model → last round that checked it
	owned  map[[2]string]struct{} // versions whose detector state this node holds
	paused bool                   // ClickHouse unavailable since the last logged warning
	failed map[string]bool        // models whose last check failed permanently (logged)
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
	return &Scheduler{cfg: cfg, last: map[string]time.Time{}, owned: map[[2]string]struct{}{}, failed: map[string]bool{}}, nil
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
	for _, model := range models {
		if !s.cfg.Owns(model) {
			continue
		}
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
		ok := true
		for _, version := range versions {
			owned[[2]string{model, version}] = struct{}{}
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
		}
	}
	s.owned = owned
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
	inc := d.Observe(model, version, r, now)
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
