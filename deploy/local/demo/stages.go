package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/optimize"
)

// Stage is one step of the loop, in the order they happen.
type Stage string

// The loop's stages.
const (
	StageDrift     Stage = "drift injected"
	StageIncident  Stage = "drift detected"
	StageJob       Stage = "job started"
	StageSearch    Stage = "search done"
	StagePublished Stage = "version published"
	StageCanary    Stage = "canary"
	StagePromoted  Stage = "promoted"
	StageServing   Stage = "every agent serving"
	StageRestored  Stage = "metric restored"
)

// Stages lists every stage in order.
var Stages = []Stage{StageDrift, StageIncident, StageJob, StageSearch, StagePublished, StageCanary, StagePromoted, StageServing, StageRestored}

// Loop is what the watcher saw of one pass of the loop. Read it after
// Watch returned, or through Snapshot while it runs.
type Loop struct {
	// At is when each stage was first seen through the admin API (the
	// drift: when the workload sent its first drifted row).
	At map[Stage]time.Time
	// Baseline is the version that served when the drift was injected;
	// Version the one the loop published.
	Baseline, Version uint64
	Incident          adminclient.Incident
	Job               adminclient.Job
	// Jobs counts the jobs of the model opened after the drift.
	Jobs   int
	Report *optimize.Report
	Record *adminclient.VersionRecord
	// Promotion is the desired state that made Version serving.
	Promotion adminclient.DesiredState
	// The live accuracy the workload measured: before the drift, on
	// drifted rows answered by Baseline, and on drifted rows answered by
	// Version once every agent served it; N* the answers counted.
	Before, Drifted, After    float64
	NBefore, NDrifted, NAfter int
}

// Watcher follows a model through the collector's admin API (what
// droverctl reads) and prints each stage of the loop as it sees it.
type Watcher struct {
	Client   *adminclient.Client
	Model    string
	Workload *Workload
	// Out receives the stage lines (io.Discard when nil).
	Out io.Writer
	// Start is what elapsed times are counted from (make run's start).
	Start time.Time
	// Poll is how often the admin API is read (500 ms when 0); Report how
	// often the live accuracy is printed (0: never).
	Poll, Report time.Duration
	// RestoreAnswers is how many answers of the new version, once every
	// agent serves it, the restored metric is judged on (200 when 0);
	// Tolerance the relative distance to the accuracy before the drift
	// that counts as restored (0.05 when 0).
	RestoreAnswers int
	Tolerance      float64

	mu   sync.Mutex
	loop Loop
}

// Snapshot returns a copy of what the watcher has seen so far.
func (w *Watcher) Snapshot() Loop {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.loop
	l.At = make(map[Stage]time.Time, len(w.loop.At))
	for k, v := range w.loop.At {
		l.At[k] = v
	}
	return l
}

// ErrNotImproved is returned by Watch when the optimizer found no better
// candidate (its report says why).
var ErrNotImproved = errors.New("the optimizer published no version")

// Watch polls until every stage was seen, ctx is done (its error is
// returned), or the loop cannot complete (the job failed for good, the
// report says not improved, the canary was aborted).
func (w *Watcher) Watch(ctx context.Context) error {
	if w.Out == nil {
		w.Out = io.Discard
	}
	poll := w.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	if w.RestoreAnswers <= 0 {
		w.RestoreAnswers = 200
	}
	if w.Tolerance <= 0 {
		w.Tolerance = 0.05
	}
	if w.Start.IsZero() {
		w.Start = time.Now()
	}
	w.mu.Lock()
	w.loop.At = map[Stage]time.Time{}
	w.mu.Unlock()
	t := time.NewTicker(poll)
	defer t.Stop()
	lastReport := time.Now()
	var lastErr string
	for {
		done, err := w.step(ctx)
		if done || (err != nil && errors.Is(err, ErrNotImproved)) {
			return err
		}
		if err != nil && err.Error() != lastErr {
			// The admin API may be briefly unavailable (ClickHouse busy):
			// said once, retried.
			w.printf("watch: %v (retrying)", err)
			lastErr = err.Error()
		}
		if w.Report > 0 && time.Since(lastReport) >= w.Report {
			w.liveLine()
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *Watcher) printf(format string, args ...any) {
	el := time.Since(w.Start).Round(time.Second)
	fmt.Fprintf(w.Out, "demo [%6s] %s\n", el, fmt.Sprintf(format, args...))
}

func (w *Watcher) seen(s Stage) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.loop.At[s]
	return ok
}

// mark records stage s now and prints msg.
func (w *Watcher) mark(s Stage, format string, args ...any) {
	w.mu.Lock()
	now := time.Now()
	if s == StageDrift {
		now = w.Workload.DriftAt()
	}
	w.loop.At[s] = now
	drift := w.loop.At[StageDrift]
	w.mu.Unlock()
	since := ""
	if s != StageDrift && !drift.IsZero() {
		since = fmt.Sprintf(" (drift +%s)", now.Sub(drift).Round(100*time.Millisecond))
	}
	w.printf("%-20s%s %s", s+":", since, fmt.Sprintf(format, args...))
}

// liveLine prints the workload's accuracy over the last Report interval.
func (w *Watcher) liveLine() {
	rs := w.Workload.Responses(time.Now().Add(-w.Report))
	acc, n := LiveAccuracy(rs, nil)
	vs := map[string]int{}
	for _, r := range rs {
		vs[r.Version]++
	}
	keys := make([]string, 0, len(vs))
	for k := range vs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var by []string
	for _, k := range keys {
		by = append(by, fmt.Sprintf("v%s %d%%", k, 100*vs[k]/max(n, 1)))
	}
	errs, lastErr := w.Workload.Errors()
	e := ""
	if errs > 0 {
		e = fmt.Sprintf(", %d errors so far (last: %v)", errs, lastErr)
	}
	w.printf("live: %d answers in %s, accuracy %.3f, served by %s%s", n, w.Report, acc, strings.Join(by, ", "), e)
}

// step reads what it needs for the next unseen stage; done when all were
// seen.
func (w *Watcher) step(ctx context.Context) (bool, error) {
	c := w.Client
	if !w.seen(StageDrift) {
		if w.Workload.DriftAt().IsZero() {
			d, _, err := c.Desired(ctx, w.Model)
			if err == nil {
				w.mu.Lock()
				w.loop.Baseline = d.Serving
				w.mu.Unlock()
			}
			return false, err
		}
		w.mark(StageDrift, "rows now arrive with a covariate shift (size features ×%.2f) and a concept change (concave points inverted)", w.Workload.cfg.SizeFactor)
	}
	l := w.Snapshot()
	driftAt := l.At[StageDrift]
	if !w.seen(StageIncident) {
		incs, _, err := c.Incidents(ctx, w.Model)
		if err != nil {
			return false, err
		}
		for _, in := range incs {
			if in.Start.Before(driftAt.Add(-5*time.Second)) || (l.Baseline != 0 && in.ModelVersion != l.Baseline) {
				continue
			}
			w.mu.Lock()
			w.loop.Incident = in
			w.mu.Unlock()
			w.mark(StageIncident, "incident on v%d (first drifted check %s): %s", in.ModelVersion,
				in.Start.Local().Format("15:04:05"), clip(strings.Join(in.Reasons, "; "), 300))
			break
		}
		return false, nil
	}
	if !w.seen(StageSearch) {
		jobs, _, err := c.Jobs(ctx, adminclient.JobFilter{Model: w.Model})
		if err != nil {
			return false, err
		}
		var job *adminclient.Job
		n := 0
		for i := range jobs {
			if jobs[i].IncidentStart.Before(driftAt.Add(-5 * time.Second)) {
				continue
			}
			n++
			if jobs[i].IncidentStart.Equal(l.Incident.Start) {
				job = &jobs[i]
			}
		}
		w.mu.Lock()
		w.loop.Jobs = n
		w.mu.Unlock()
		if job == nil {
			return false, nil
		}
		if !w.seen(StageJob) && job.State != "queued" {
			w.mark(StageJob, "job %s (attempt %d) on %s", job.ID, job.Attempt, deref(job.LeaseOwner))
		}
		switch job.State {
		case "succeeded":
		case "failed", "timed_out", "cancelled":
			return false, fmt.Errorf("%w: job %s %s: %s", ErrNotImproved, job.ID, job.State, clip(deref(job.Error), 500))
		default:
			return false, nil
		}
		full, _, err := c.Job(ctx, job.ID)
		if err != nil {
			return false, err
		}
		var rep optimize.Report
		if len(full.Report) == 0 || json.Unmarshal(full.Report, &rep) != nil {
			return false, fmt.Errorf("%w: job %s succeeded without a report", ErrNotImproved, job.ID)
		}
		w.mu.Lock()
		w.loop.Job, w.loop.Report = *full, &rep
		w.mu.Unlock()
		if !w.seen(StageJob) {
			w.mark(StageJob, "job %s (attempt %d)", job.ID, job.Attempt)
		}
		w.mark(StageSearch, "%s %s, %d-fold CV %.3f ± %.3f over %d grid points on %d rows (%.1fs); held out (%d rows): v%s %s %.3f, candidate %.3f, improved: %v",
			rep.Family, paramString(rep.Params), rep.Folds, rep.CVMean, rep.CVStd, len(rep.Grid), rep.Rows, rep.Seconds,
			rep.HoldoutRows, rep.Baseline, rep.Metric, rep.Holdout.Old, rep.Holdout.New, rep.Improved)
		if !rep.Improved || full.ResultVersion == nil {
			return false, fmt.Errorf("%w: %s", ErrNotImproved, rep.Reason)
		}
		w.mu.Lock()
		w.loop.Version = *full.ResultVersion
		w.mu.Unlock()
		return false, nil
	}
	if !w.seen(StagePublished) {
		rec, _, err := c.Version(ctx, w.Model, l.Version)
		if err != nil {
			return false, err
		}
		w.mu.Lock()
		w.loop.Record = rec
		w.mu.Unlock()
		w.mark(StagePublished, "v%d (source %s, parents %v, incident %s, job %s)", rec.Version, rec.Source, rec.Parents,
			deref(rec.Incident), deref(rec.Job))
	}
	if !w.seen(StagePromoted) {
		d, _, err := c.Desired(ctx, w.Model)
		if err != nil {
			return false, err
		}
		if !w.seen(StageCanary) && (d.Canary != nil && d.Canary.Version == l.Version || d.Serving == l.Version) {
			share, analysis := 0, ""
			if d.Canary != nil && d.Canary.Version == l.Version {
				share = d.Canary.Share
				if a := d.Canary.Analysis; a != nil {
					analysis = fmt.Sprintf(", automatic analysis: duration %s, min_samples %d, max_regression %g", a.Duration, a.MinSamples, a.MaxRegression)
				}
			}
			w.mark(StageCanary, "v%d gets %d%% of the requests%s", l.Version, share, analysis)
		}
		switch {
		case d.Serving == l.Version:
			w.mu.Lock()
			w.loop.Promotion = *d
			w.mu.Unlock()
			w.mark(StagePromoted, "v%d serving (%s by %s): %s", l.Version, d.Change, d.ChangedBy, clip(d.Reason, 400))
		case w.seen(StageCanary) && d.Canary == nil:
			return false, fmt.Errorf("%w: the canary of v%d ended without a promotion: revision %d serves v%d (%s by %s: %s)", ErrNotImproved,
				l.Version, d.Revision, d.Serving, d.Change, d.ChangedBy, clip(d.Reason, 400))
		case w.seen(StageCanary) && d.Canary.Version != l.Version:
			return false, fmt.Errorf("%w: the canary of v%d was replaced by v%d in revision %d (%s by %s: %s)", ErrNotImproved,
				l.Version, d.Canary.Version, d.Revision, d.Change, d.ChangedBy, clip(d.Reason, 400))
		}
		return false, nil
	}
	if !w.seen(StageServing) {
		st, _, err := c.FleetStatus(ctx, w.Model)
		if err != nil {
			return false, err
		}
		if len(st.Agents) == 0 {
			return false, nil
		}
		var hosts []string
		for _, a := range st.Agents {
			if a.State != adminclient.StateConverged || a.Serving == nil || *a.Serving != l.Version {
				return false, nil
			}
			hosts = append(hosts, a.Host+"/"+a.Agent[:min(8, len(a.Agent))])
		}
		w.mark(StageServing, "v%d on %d agents (%s)", l.Version, len(st.Agents), strings.Join(hosts, ", "))
	}
	// The metric: every answer after all agents serve the new version.
	l = w.Measure()
	if l.NAfter < w.RestoreAnswers || l.After < l.Before*(1-w.Tolerance) {
		// Not yet (or not at all): judged again on the next answers.
		return false, nil
	}
	w.mark(StageRestored, "accuracy %.3f before the drift (%d answers), %.3f on drifted rows by v%d (%d), %.3f by v%d (%d): within %.0f%%",
		l.Before, l.NBefore, l.Drifted, l.Baseline, l.NDrifted, l.After, l.Version, l.NAfter, 100*w.Tolerance)
	return true, nil
}

// Measure computes the live accuracy from the workload's answers so far
// (before the drift; drifted rows answered by the baseline; drifted rows
// answered by the new version once every agent served it) and returns
// the snapshot with them.
func (w *Watcher) Measure() Loop {
	l := w.Snapshot()
	all := w.Workload.Responses(time.Time{})
	var accAfter float64
	var nAfter int
	if at, ok := l.At[StageServing]; ok {
		accAfter, nAfter = LiveAccuracy(w.Workload.Responses(at), func(r Response) bool { return r.Drifted && r.Version == fmt.Sprint(l.Version) })
	}
	before, nBefore := LiveAccuracy(all, func(r Response) bool { return !r.Drifted })
	drifted, nDrifted := LiveAccuracy(all, func(r Response) bool { return r.Drifted && r.Version == fmt.Sprint(l.Baseline) })
	w.mu.Lock()
	w.loop.Before, w.loop.NBefore = before, nBefore
	w.loop.Drifted, w.loop.NDrifted = drifted, nDrifted
	w.loop.After, w.loop.NAfter = accAfter, nAfter
	w.mu.Unlock()
	return w.Snapshot()
}

// Summary writes the loop's timings and metrics.
func (l *Loop) Summary(out io.Writer, start time.Time) {
	fmt.Fprintln(out, "demo: the loop, timed (from make run's start; + from the drift):")
	drift := l.At[StageDrift]
	for _, s := range Stages {
		at, ok := l.At[s]
		if !ok {
			fmt.Fprintf(out, "  %-20s -\n", s)
			continue
		}
		fmt.Fprintf(out, "  %-20s %7s  +%s\n", s, at.Sub(start).Round(100*time.Millisecond), at.Sub(drift).Round(100*time.Millisecond))
	}
	fmt.Fprintf(out, "demo: live accuracy: before the drift %.3f (%d answers), after the drift on v%d %.3f (%d), on v%d %.3f (%d)\n",
		l.Before, l.NBefore, l.Baseline, l.Drifted, l.NDrifted, l.Version, l.After, l.NAfter)
}

func paramString(p map[string]float64) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s=%g", k, p[k]))
	}
	return strings.Join(s, " ")
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
