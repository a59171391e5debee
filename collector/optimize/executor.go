package optimize

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/drover-ml/drover/collector/jobs"
)

// Execute runs one attempt of a job (jobs.Executor): it trains on the
// labelled samples of spec.Model since the incident's start, judges the
// best candidate against the serving version (else spec.Version) and,
// only when it is better by the margin, publishes it (source optimize,
// parent the serving version, lineage the incident and the job) and rolls
// it out as an automatic canary unless the model is pinned. The report
// is the job's (jobs.report) whatever the outcome. A job that finds
// nothing better succeeds with Improved false and publishes nothing.
// Failures that retrying cannot cure (bad data, an undetectable family, a
// grid beyond the time budget) are jobs.Permanent; too few labelled rows
// is not (labels may arrive before the retry). When ctx is cancelled (the
// lease lost, the job cancelled) the search stops within one fit.
func (o *Optimizer) Execute(ctx context.Context, spec jobs.Spec) jobs.Result {
	v, err := strconv.ParseUint(spec.Version, 10, 64)
	if err != nil {
		return jobs.Result{Err: jobs.Permanent(fmt.Errorf("job %s: version %q: %v", spec.ID, spec.Version, err))}
	}
	o.o.Logger.Info("optimize: job started", "job", spec.ID, "model", spec.Model, "version", spec.Version, "since", spec.IncidentStart)
	rep, published, err := o.run(ctx, request{
		model: spec.Model, version: v, since: spec.IncidentStart, until: o.o.Now(), rollout: true,
		incident: IncidentRef(spec.Version, spec.IncidentStart), job: spec.ID,
	})
	res := jobs.Result{Version: published, Err: err}
	if b, merr := json.Marshal(rep); merr == nil {
		res.Report = b
	} else {
		o.o.Logger.Error("optimize: encode the report", "job", spec.ID, "err", merr)
	}
	if err != nil {
		o.o.Logger.Warn("optimize: job attempt failed", "job", spec.ID, "model", spec.Model, "err", err)
	} else {
		o.o.Logger.Info("optimize: job done", "job", spec.ID, "model", spec.Model, "improved", rep.Improved, "published", rep.Published, "reason", rep.Reason)
	}
	return res
}

var _ jobs.Executor = (*Optimizer)(nil)
