package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
)

// OptimizeFlags are the flags of `droverctl optimize MODEL`: a manual
// incident (Since, Wait, Timeout), or with Data the search on a CSV file
// (Label, Family, Folds, DryRun).
type OptimizeFlags struct {
	// Since is how long ago the manual incident starts (a Go duration);
	// SinceSet says whether --since was given.
	Since    string
	SinceSet bool
	// Wait follows the job until it ends; Timeout bounds the wait (0:
	// none).
	Wait    bool
	Timeout time.Duration
	// Data is a CSV file with a header row; Label its label column.
	Data, Label string
	// Family limits the search to one family.
	Family string
	// Folds is the number of cross-validation folds; FoldsSet says
	// whether --folds was given.
	Folds    int
	FoldsSet bool
	// DryRun publishes nothing.
	DryRun bool
}

// validate checks the flags' combinations; every error is a usage error.
func (f OptimizeFlags) validate() error {
	if f.Data == "" {
		var csvOnly []string
		if f.Label != "" {
			csvOnly = append(csvOnly, "--label")
		}
		if f.Family != "" {
			csvOnly = append(csvOnly, "--family")
		}
		if f.FoldsSet {
			csvOnly = append(csvOnly, "--folds")
		}
		if f.DryRun {
			csvOnly = append(csvOnly, "--dry-run")
		}
		if len(csvOnly) > 0 {
			return Usagef("%s: only with --data CSV", strings.Join(csvOnly, ", "))
		}
		if f.Timeout != 0 && !f.Wait {
			return Usagef("--timeout: only with --wait")
		}
		d, err := time.ParseDuration(f.Since)
		if err != nil || d <= 0 {
			return Usagef("--since %q: want a positive duration such as 24h or 90m", f.Since)
		}
		return nil
	}
	switch {
	case f.Label == "":
		return Usagef("--data needs --label COLUMN: the CSV's label column")
	case f.SinceSet || f.Wait:
		return Usagef("--since and --wait start a job by hand; with --data the search runs at once and its report is the answer")
	case f.FoldsSet && f.Folds < 2:
		return Usagef("--folds %d: want at least 2", f.Folds)
	case f.Timeout != 0:
		return Usagef("--timeout: only with --wait")
	}
	return nil
}

// Optimize starts a re-optimization of model by hand (a manual incident:
// POST /v1/models/{model}/optimize, and with Wait follows its job until it
// ends, then prints its report), or with Data uploads the CSV and prints
// the report of the search on it (POST /v1/models/{model}/optimize/csv).
func (a *App) Optimize(ctx context.Context, model string, f OptimizeFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	if f.Data != "" {
		if st, err := os.Stat(f.Data); err != nil {
			return fmt.Errorf("--data: %w", err)
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("--data %s: not a regular file", f.Data)
		}
		r, m, err := cl.OptimizeCSV(ctx, model, f.Data, adminclient.OptimizeCSVOptions{
			Label: f.Label, Family: f.Family, Folds: f.Folds, DryRun: f.DryRun})
		if err != nil {
			return err
		}
		return a.render(m.Raw, func(w *writer) { reportFields(w, r) })
	}
	st, m, err := cl.Optimize(ctx, model, adminclient.OptimizeRequest{Since: f.Since})
	if err != nil {
		return err
	}
	if !f.Wait {
		return a.render(m.Raw, func(w *writer) {
			created := "yes"
			if !st.Created {
				created = "no: the job of this incident existed already"
			}
			w.fields([][2]string{
				{"job", st.ID},
				{"model", st.Model},
				{"version", st.Version},
				{"incident", tm(st.IncidentStart)},
				{"reasons", strings.Join(st.Reasons, "; ")},
				{"created", created},
			})
			w.printf("\nFollow it with `droverctl jobs show %s`, or start it with --wait.\n", st.ID)
		})
	}
	fmt.Fprintf(a.Err, "started job %s for %s v%s: manual incident since %s\n", st.ID, st.Model, st.Version, tm(st.IncidentStart))
	return a.followJob(ctx, cl, st.ID, f.Timeout)
}

// followJob polls job id until it is final, writing each change of state
// to a.Err, then prints the job's report (or the job, when it has none).
// A job that did not succeed is an error (exit 1) once reported.
func (a *App) followJob(ctx context.Context, cl *adminclient.Client, id string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	poll := a.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last string
	unreached := false
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprintf(a.Err, "droverctl: timed out after %s waiting for job %s (last seen %s); it goes on: `droverctl jobs show %s`\n", timeout, id, orDash(last), id)
			} else {
				fmt.Fprintf(a.Err, "droverctl: interrupted while waiting for job %s (last seen %s); it goes on: `droverctl jobs show %s`\n", id, orDash(last), id)
			}
			return &reportedError{}
		case <-timer.C:
		}
		j, m, err := cl.Job(ctx, id)
		var ue *adminclient.UnreachableError
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil && errors.As(err, &ue):
			if !unreached {
				fmt.Fprintf(a.Err, "droverctl: no collector answers for job %s; trying again\n", id)
				unreached = true
			}
		case err != nil:
			return fmt.Errorf("follow job %s: %w", id, err)
		default:
			unreached = false
			state := fmt.Sprintf("%s (attempt %d)", j.State, j.Attempt)
			if state != last {
				fmt.Fprintf(a.Err, "%s  job %s: %s\n", time.Now().UTC().Format(timeLayout), id, state)
				last = state
			}
			if terminal(j.State) {
				return a.jobEnded(j, m)
			}
		}
		timer.Reset(poll)
	}
}

func terminal(state string) bool {
	return slices.Contains([]string{"succeeded", "failed", "timed_out", "cancelled"}, state)
}

// jobEnded prints a final job's report (or the job) and says how it ended.
func (a *App) jobEnded(j *adminclient.Job, m *adminclient.Meta) error {
	var err error
	if r, ok := decodeReport(j.Report); ok {
		err = a.render(j.Report, func(w *writer) { reportFields(w, r) })
	} else {
		err = a.render(m.Raw, func(w *writer) { jobFields(w, j) })
	}
	if err != nil {
		return err
	}
	if j.State != "succeeded" {
		fmt.Fprintf(a.Err, "droverctl: job %s %s: %s\n", j.ID, j.State, orDash(deref(j.Error)))
		return &reportedError{}
	}
	return nil
}

// decodeReport decodes a job's report; false when there is none or it is
// not a report.
func decodeReport(raw json.RawMessage) (*adminclient.Report, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil, false
	}
	var r adminclient.Report
	if err := json.Unmarshal(t, &r); err != nil || r.Metric == "" {
		return nil, false
	}
	return &r, true
}

// reportFields writes a report: the chosen candidate, its effect on the
// held-out rows, what was published, then the grid.
func reportFields(w *writer, r *adminclient.Report) {
	better := "higher is better"
	if r.LowerIsBetter {
		better = "lower is better"
	}
	improved := "no"
	if r.Improved {
		improved = "yes"
	}
	if w.color {
		if r.Improved {
			improved = green.wrap(improved)
		} else {
			improved = yellow.wrap(improved)
		}
	}
	published := orDash(r.Published)
	if r.Published != "" {
		published = "v" + r.Published
	}
	if r.DryRun {
		published = "- (dry run)"
	}
	if r.Reason != "" {
		published += ": " + r.Reason
	}
	level := r.CI.Level
	if level == 0 {
		level = 0.95
	}
	w.fields([][2]string{
		{"model", r.Model},
		{"baseline", orDash(r.Baseline)},
		{"metric", r.Metric + " (" + better + ")"},
		{"family", orDash(r.Family)},
		{"params", params(r.Params)},
		{"cv", fmt.Sprintf("%s ± %s (%d folds)", f4(r.CVMean), f4(r.CVStd), r.Folds)},
		{"holdout", fmt.Sprintf("old %s → new %s", f4(r.Holdout.Old), f4(r.Holdout.New))},
		{"improved", improved},
		{"ci", fmt.Sprintf("[%s, %s] of new − old at %s%%", f4(r.CI.Low), f4(r.CI.High), strconv.FormatFloat(level*100, 'f', -1, 64))},
		{"traded", orDash(r.Traded)},
		{"rows", fmt.Sprintf("%d (%d held out)", r.Rows, r.HoldoutRows)},
		{"seconds", strconv.FormatFloat(r.Seconds, 'f', 2, 64)},
		{"published", published},
	})
	if len(r.Grid) == 0 {
		return
	}
	w.printf("\ngrid:\n")
	rows := make([][]cell, 0, len(r.Grid))
	for _, p := range r.Grid {
		score := f4(p.Mean) + " ± " + f4(p.Std)
		if p.Error != "" {
			score = "-"
		}
		size, lat := "-", "-"
		if p.ONNXBytes > 0 {
			size = strconv.Itoa(p.ONNXBytes)
		}
		if p.LatencyMicros > 0 {
			lat = strconv.FormatFloat(p.LatencyMicros, 'f', 1, 64)
		}
		rows = append(rows, []cell{c(p.Family), c(params(p.Params)), c(score), c(size), c(lat), c(orDash(p.Error))})
	}
	w.table([]string{"FAMILY", "PARAMS", "CV MEAN ± STD", "ONNX BYTES", "LATENCY µs", "ERROR"}, rows, 3, 4, 5)
}

func f4(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// params writes hyper-parameters as k=v, sorted by name.
func params(p map[string]float64) string {
	if len(p) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(p[k], 'g', -1, 64)
	}
	return strings.Join(parts, " ")
}
