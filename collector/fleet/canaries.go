package fleet

import (
	"context"
	"errors"
	"log/slog"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet/analysis"
)

// AnalysisToken is the author (changed_by) of the desired-state changes
// the automatic canary analysis makes.
const AnalysisToken = "canary-analysis"

// canaries is fleet control as the canary analysis sees it
// (analysis.Fleet): the automatic canaries of the models this collector
// owns, and their promotion or abort as a change "analysis" at the
// revision that was judged.
//
// Canaries returns it for the analysis runner; log gets a line when a
// canary's analysis settings do not parse (the defaults then apply).
func (f *Fleet) Canaries(log *slog.Logger) analysis.Fleet { return canaries{f: f, log: log} }

type canaries struct {
	f   *Fleet
	log *slog.Logger
}

func (c canaries) AutoCanaries(ctx context.Context) ([]analysis.Canary, error) {
	var out []analysis.Canary
	for _, s := range c.f.AutoCanaries() {
		var p analysis.Params
		if a := s.Canary.Analysis; a != nil {
			var err error
			if p, err = analysis.ParseParams(a.Duration, a.MinSamples, a.MaxRegression); err != nil {
				c.log.Warn("canary analysis: bad analysis settings; the defaults apply", "model", s.Model, "err", err)
				p = analysis.Params{}
			}
		}
		out = append(out, analysis.Canary{Model: s.Model, Serving: s.Serving, Version: s.Canary.Version,
			Started: s.Canary.Started, Revision: s.Revision, Params: p})
	}
	return out, nil
}

func (c canaries) Promote(ctx context.Context, can analysis.Canary, v analysis.Verdict) error {
	return c.decide(ctx, can, v, true)
}

func (c canaries) Abort(ctx context.Context, can analysis.Canary, v analysis.Verdict) error {
	return c.decide(ctx, can, v, false)
}

func (c canaries) decide(ctx context.Context, can analysis.Canary, v analysis.Verdict, promote bool) error {
	reason := v.Reason
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	ctx = auth.WithPrincipal(ctx, auth.Principal{Name: AnalysisToken, Role: auth.Admin})
	_, err := c.f.Change(ctx, can.Model, ChangeAnalysis, Request{Promote: promote, Reason: reason, Revision: can.Revision})
	if errors.Is(err, ErrStale) {
		return analysis.ErrStale
	}
	return err
}

var _ analysis.Fleet = canaries{}
