package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/fleet/analysis"
	"github.com/drover-ml/drover/collector/labels"
)

// analysisToken is the author (changed_by) of the desired-state changes
// the automatic canary analysis makes.
const analysisToken = "canary-analysis"

// canaries is fleet control as the canary analysis sees it
// (analysis.Fleet): the automatic canaries of the models this collector
// owns, and their promotion or abort as a change "analysis" at the
// revision that was judged.
type canaries struct {
	f   *fleet.Fleet
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
	ctx = auth.WithPrincipal(ctx, auth.Principal{Name: analysisToken, Role: auth.Admin})
	_, err := c.f.Change(ctx, can.Model, fleet.ChangeAnalysis, fleet.Request{Promote: promote, Reason: reason, Revision: can.Revision})
	if errors.Is(err, fleet.ErrStale) {
		return analysis.ErrStale
	}
	return err
}

var _ analysis.Fleet = canaries{}

// fleetLabelMetrics is the analysis' LabelMetrics from the labels table
// joined with the samples: the labels joined to the version's samples
// taken in [from, to), and their accuracy and F1 or MSE and MAE.
func fleetLabelMetrics(st *labels.Store) analysis.LabelMetrics {
	return func(ctx context.Context, model, version string, from, to time.Time) (uint64, map[string]float64, error) {
		js, err := st.Join(ctx, model, version, from, to)
		if err != nil {
			return 0, nil, err
		}
		m := labels.Evaluate(js)[version]
		return uint64(m.N), m.Values, nil
	}
}
