package analysis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Fleet is what a Runner needs of the fleet's desired state; the fleet
// package implements it. Its methods are called from the Runner's
// goroutine only, one at a time.
type Fleet interface {
	// AutoCanaries lists the canaries with auto set that this collector
	// decides (the models whose ring owner it is).
	AutoCanaries(ctx context.Context) ([]Canary, error)
	// Promote makes c.Version the serving version, Abort removes the
	// canary; both record v.Reason (desired-state change "analysis"). Each
	// should apply only if the model's desired state is still at
	// c.Revision (a person's change in between wins), answering
	// ErrStale otherwise.
	Promote(ctx context.Context, c Canary, v Verdict) error
	Abort(ctx context.Context, c Canary, v Verdict) error
}

// ErrStale is what a Fleet answers when the desired state changed since the
// canary was listed; the Runner drops it silently.
var ErrStale = errors.New("desired state changed since the canary was read")

// Judge analyzes one canary at a time; *Analyzer is one.
type Judge interface {
	Analyze(ctx context.Context, c Canary, now time.Time) (Verdict, error)
}

// DefaultInterval is how often a Runner checks by default.
const DefaultInterval = 30 * time.Second

// Runner checks every automatic canary of a Fleet every Interval and
// hands each Promote or Abort back to it. Configure the fields before Run;
// it is not safe to change them after.
type Runner struct {
	Fleet Fleet
	Judge Judge
	// Interval between checks (DefaultInterval if 0).
	Interval time.Duration
	// Logger (slog.Default() if nil).
	Logger *slog.Logger
}

// Run checks at once and then every Interval, until ctx is cancelled; it
// returns nil then. Errors of one check are logged (one line per check,
// not per model) and the next check tries again. It starts no goroutine;
// its time comes from time.Now and a time.Ticker, so testing/synctest
// drives it.
func (r *Runner) Run(ctx context.Context) error {
	every := r.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Check(ctx); err != nil && ctx.Err() == nil {
			r.logger().Warn("canary analysis", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Result is what one check did with one canary.
type Result struct {
	Canary  Canary
	Verdict Verdict
	// Applied is true when the Fleet took the Promote or Abort.
	Applied bool
}

// Check analyzes every automatic canary once, at time.Now, and applies
// the Promote and Abort verdicts. It returns what it did with each canary
// it could analyze and the errors of the others, joined; a stale canary
// (ErrStale) is neither.
func (r *Runner) Check(ctx context.Context) ([]Result, error) {
	canaries, err := r.Fleet.AutoCanaries(ctx)
	if err != nil {
		return nil, fmt.Errorf("list automatic canaries: %w", err)
	}
	var out []Result
	var errs []error
	for _, c := range canaries {
		v, err := r.Judge.Analyze(ctx, c, time.Now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res := Result{Canary: c, Verdict: v}
		switch v.Decision {
		case Promote:
			err = r.Fleet.Promote(ctx, c, v)
		case Abort:
			err = r.Fleet.Abort(ctx, c, v)
		default:
			out = append(out, res)
			continue
		}
		switch {
		case errors.Is(err, ErrStale):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %s v%d: %w", v.Decision, c.Model, c.Version, err))
			continue
		}
		res.Applied = true
		r.logger().Info("canary analysis", "model", c.Model, "canary", c.Version, "serving", c.Serving,
			"decision", string(v.Decision), "reason", v.Reason)
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}
