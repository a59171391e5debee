package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/shared/buildinfo"
)

// Version prints droverctl's version; it needs no collector.
func (a *App) Version() error {
	_, err := fmt.Fprintln(a.Out, buildinfo.String("droverctl"))
	return err
}

// Status is the health check: GET /healthz, then GET /readyz on the
// collector that answered. It needs no token and prints
// "collector URL: alive and ready"; -o does not apply.
func (a *App) Status(ctx context.Context) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	m, err := cl.Probe(ctx, "/healthz")
	if err != nil {
		a.statusError("collector not alive", err)
		return &reportedError{err}
	}
	if err := cl.At(m.URL).Ready(ctx); err != nil {
		a.statusError("collector alive but not ready", err)
		return &reportedError{err}
	}
	_, err = fmt.Fprintf(a.Out, "collector %s: alive and ready\n", m.URL)
	return err
}

// statusError prints a failed health check the way droverctl status
// always has: "droverctl: collector not alive: REASON".
func (a *App) statusError(what string, err error) {
	var (
		ae *adminclient.APIError
		ue *adminclient.UnreachableError
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(a.Err, "droverctl: %s; tried:\n", what)
		for _, at := range ue.Attempts {
			fmt.Fprintf(a.Err, "  %s: %v\n", at.URL, at.Err)
		}
	case errors.As(err, &ae):
		fmt.Fprintf(a.Err, "droverctl: %s: %s (%s: %d %s)\n", what, ae.Message, ae.URL, ae.Status, http.StatusText(ae.Status))
	default:
		fmt.Fprintf(a.Err, "droverctl: %s: %v\n", what, err)
	}
}

// Cluster shows the members of the cluster, their state and owned models.
func (a *App) Cluster(ctx context.Context) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Cluster(ctx)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v.Members))
		for _, mb := range v.Members {
			name := mb.Name
			if name == v.Node {
				name += " *"
			}
			rows = append(rows, []cell{c(name), c(mb.Addr), stateCell(mb.State), c(list(mb.Models))})
		}
		w.table([]string{"MEMBER", "ADDR", "STATE", "MODELS"}, rows)
	})
}

// Models shows every model the fleet reports.
func (a *App) Models(ctx context.Context) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Models(ctx)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, md := range v {
			rows = append(rows, []cell{c(md.Name), c(list(md.VersionsServing)), c(strconv.Itoa(md.Hosts)),
				c(num(md.RequestsPerSecond, 1)), c(pct(md.ErrorRate)), c(u64(md.LatestVersion)), c(str(md.Owner))})
		}
		w.table([]string{"MODEL", "SERVING", "HOSTS", "REQ/S", "ERRORS", "LATEST", "OWNER"}, rows)
	})
}

// Versions shows a model's versions side by side with their metrics over
// the last since (0: the server's default).
func (a *App) Versions(ctx context.Context, model string, since time.Duration) error {
	if since < 0 {
		return Usagef("--since %s: must be positive", since)
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Versions(ctx, model, since)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, vr := range v {
			mt := vr.Metrics
			rows = append(rows, []cell{
				c(strconv.FormatUint(vr.Version, 10)), stateCell(deref(vr.State)), c(tmp(vr.Created)), c(str(vr.Author)), c(str(vr.Source)),
				c(u64(mt.Requests)), c(pct(mt.ErrorRate)), c(ms(mt.LatencyP50Ms)), c(ms(mt.LatencyP99Ms)),
				c(num(mt.Accuracy, 3)), c(num(mt.F1, 3)), c(num(mt.MSE, 4)), c(num(mt.GoldenScore, 3)), driftCell(mt.DriftScore), c(intp(mt.Hosts)),
			})
		}
		// Accuracy/F1 are for classifiers, MSE for regressors: a column
		// without a value in any version is left out.
		w.table([]string{"VERSION", "STATE", "CREATED", "AUTHOR", "SOURCE", "REQUESTS", "ERRORS", "P50", "P99", "ACCURACY", "F1", "MSE", "GOLDEN", "DRIFT", "HOSTS"}, rows, 9, 10, 11)
	})
}

// driftCell shows a drift score, red at or above 1 (the threshold).
func driftCell(p *float64) cell {
	cl := c(num(p, 2))
	if p != nil && *p >= 1 {
		cl.color = red
	}
	return cl
}

// VersionDiff shows what differs between two versions of a model:
// records, signatures, metrics and their deltas.
// N1 and N2 are version numbers as typed; anything but a positive integer
// is a usage error.
func (a *App) VersionDiff(ctx context.Context, model, n1, n2 string) error {
	var n [2]uint64
	for i, s := range []string{n1, n2} {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v == 0 {
			return Usagef("version %q: want a positive integer", s)
		}
		n[i] = v
	}
	from, to := n[0], n[1]
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.VersionDiff(ctx, model, from, to)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		w.printf("%s: version %d → %d\n", v.Model, v.From.Version, v.To.Version)
		changes := func(title string, fc []adminclient.FieldChange) {
			w.printf("\n")
			if len(fc) == 0 {
				w.printf("%s: no change\n", strings.ToLower(title))
				return
			}
			rows := make([][]cell, 0, len(fc))
			for _, f := range fc {
				rows = append(rows, []cell{c(f.Field), c(jsonText(f.From)), c(jsonText(f.To))})
			}
			w.table([]string{title, "FROM", "TO"}, rows)
		}
		changes("RECORD", v.Records)
		changes("SIGNATURE", v.Signature)
		w.printf("\n")
		rows := make([][]cell, 0, len(v.Metrics))
		for _, md := range v.Metrics {
			d := c(num(md.Delta, 4))
			if md.Delta != nil && *md.Delta > 0 {
				d.text = "+" + d.text
			}
			rows = append(rows, []cell{c(md.Name), c(num(md.From, 4)), c(num(md.To, 4)), d})
		}
		w.table([]string{"METRIC", "FROM", "TO", "DELTA"}, rows)
	})
}

// jsonText shows a JSON value compactly: strings without quotes, null as
// "-".
func jsonText(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(t, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, t) == nil {
		return buf.String()
	}
	return string(t)
}

// driftTests are the columns of the drift table, in order; other tests
// follow, sorted.
var driftTests = []string{"psi", "js", "ks", "wasserstein", "chi2"}

// Drift shows the latest drift check per feature and the open incidents.
func (a *App) Drift(ctx context.Context, model string) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Drift(ctx, model)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		tests := slices.Clone(driftTests)
		var extra []string
		type key struct{ feature, test string }
		byKey := map[key]adminclient.DriftCheck{}
		var features []string
		checked := map[string]time.Time{}
		for _, ch := range v.Checks {
			if !slices.Contains(tests, ch.Test) && !slices.Contains(extra, ch.Test) {
				extra = append(extra, ch.Test)
			}
			if _, ok := checked[ch.Feature]; !ok {
				features = append(features, ch.Feature)
			}
			if ch.Time.After(checked[ch.Feature]) {
				checked[ch.Feature] = ch.Time
			}
			byKey[key{ch.Feature, ch.Test}] = ch
		}
		sort.Strings(extra)
		sort.Strings(features)
		tests = append(tests, extra...)
		headers := []string{"FEATURE"}
		for _, t := range tests {
			headers = append(headers, strings.ToUpper(t))
		}
		headers = append(headers, "CHECKED")
		if len(v.Checks) == 0 {
			w.printf("no drift checks for %s yet\n", v.Model)
		} else {
			rows := make([][]cell, 0, len(features))
			for _, f := range features {
				name := f
				if name == "" {
					name = "(model)"
				}
				row := []cell{c(name)}
				for _, t := range tests {
					ch, ok := byKey[key{f, t}]
					switch {
					case !ok:
						row = append(row, c("-"))
					case ch.Drifted:
						row = append(row, cell{text: strconv.FormatFloat(ch.Value, 'f', 3, 64) + "!", color: red})
					default:
						row = append(row, c(strconv.FormatFloat(ch.Value, 'f', 3, 64)))
					}
				}
				rows = append(rows, append(row, c(tm(checked[f]))))
			}
			w.table(headers, rows)
			w.printf("(! marks a value past its threshold)\n")
		}
		w.printf("\n")
		if len(v.Incidents) == 0 {
			w.printf("no open incidents\n")
			return
		}
		w.printf("open incidents:\n")
		incidentTable(w, v.Incidents)
	})
}

// Incidents lists drift incidents, of one model when model is not "".
func (a *App) Incidents(ctx context.Context, model string) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Incidents(ctx, model)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) { incidentTable(w, v) })
}

func incidentTable(w *writer, v []adminclient.Incident) {
	rows := make([][]cell, 0, len(v))
	for _, in := range v {
		rows = append(rows, []cell{c(in.Model), c(strconv.FormatUint(in.ModelVersion, 10)), stateCell(in.State),
			c(tm(in.Start)), c(tmp(in.End)), c(str(in.JobID)), c(strings.Join(in.Reasons, "; "))})
	}
	w.table([]string{"MODEL", "VERSION", "STATE", "START", "END", "JOB", "REASONS"}, rows)
}

// Jobs lists re-optimization jobs.
func (a *App) Jobs(ctx context.Context, f adminclient.JobFilter) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Jobs(ctx, f)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, j := range v {
			rows = append(rows, []cell{c(j.ID), c(j.Model), c(strconv.FormatUint(j.ModelVersion, 10)), stateCell(j.State),
				c(strconv.FormatUint(uint64(j.Attempt), 10)), c(tm(j.Updated)), c(u64(j.ResultVersion))})
		}
		w.table([]string{"ID", "MODEL", "VERSION", "STATE", "ATTEMPT", "UPDATED", "RESULT"}, rows)
	})
}

// JobShow shows one job: its row, spec (without credentials), attempts,
// output tail, result version and report.
func (a *App) JobShow(ctx context.Context, id string) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	j, m, err := cl.Job(ctx, id)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		jobFields(w, j)
		if len(j.Attempts) > 0 {
			w.printf("\nattempts:\n")
			rows := make([][]cell, 0, len(j.Attempts))
			for _, at := range j.Attempts {
				rows = append(rows, []cell{c(strconv.FormatUint(uint64(at.Attempt), 10)), c(at.Node), c(tm(at.Started)),
					c(tmp(at.Finished)), c(intp(at.ExitCode)), c(str(at.Error))})
			}
			w.table([]string{"ATTEMPT", "NODE", "STARTED", "FINISHED", "EXIT", "ERROR"}, rows)
		}
		report, isReport := decodeReport(j.Report)
		docs := []struct {
			name string
			raw  json.RawMessage
		}{{"spec", j.Spec}}
		if !isReport {
			docs = append(docs, struct {
				name string
				raw  json.RawMessage
			}{"report", j.Report})
		}
		for _, doc := range docs {
			if t := bytes.TrimSpace(doc.raw); len(t) > 0 && string(t) != "null" {
				var buf bytes.Buffer
				if json.Indent(&buf, t, "  ", "  ") == nil {
					w.printf("\n%s:\n  %s\n", doc.name, buf.String())
				}
			}
		}
		if isReport {
			w.printf("\nreport:\n")
			reportFields(w, report)
		}
		if j.OutputTail != nil && *j.OutputTail != "" {
			w.printf("\noutput (tail):\n")
			for _, l := range strings.Split(strings.TrimRight(*j.OutputTail, "\n"), "\n") {
				w.printf("  %s\n", l)
			}
		}
	})
}

func jobFields(w *writer, j *adminclient.Job) {
	lease := "-"
	if j.LeaseOwner != nil {
		lease = *j.LeaseOwner + " until " + tmp(j.LeaseUntil)
	}
	state := j.State
	if w.color {
		state = stateColor(state).wrap(state)
	}
	w.fields([][2]string{
		{"id", j.ID},
		{"model", j.Model},
		{"version", strconv.FormatUint(j.ModelVersion, 10)},
		{"incident", tm(j.IncidentStart)},
		{"state", state},
		{"attempt", strconv.FormatUint(uint64(j.Attempt), 10)},
		{"lease", lease},
		{"created", tm(j.Created)},
		{"updated", tm(j.Updated)},
		{"started", tmp(j.Started)},
		{"finished", tmp(j.Finished)},
		{"exit code", intp(j.ExitCode)},
		{"result", u64(j.ResultVersion)},
		{"error", str(j.Error)},
	})
}

// JobRetry runs a finished job again.
func (a *App) JobRetry(ctx context.Context, id string) error {
	return a.jobAction(ctx, id, "retried", (*adminclient.Client).RetryJob)
}

// JobCancel cancels a queued or running job.
func (a *App) JobCancel(ctx context.Context, id string) error {
	return a.jobAction(ctx, id, "cancelled", (*adminclient.Client).CancelJob)
}

func (a *App) jobAction(ctx context.Context, id, done string, call func(*adminclient.Client, context.Context, string) (*adminclient.Job, *adminclient.Meta, error)) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	j, m, err := call(cl, ctx, id)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		w.printf("job %s %s: now %s, attempt %d\n", j.ID, done, j.State, j.Attempt)
	})
}

// History shows a model's timeline.
func (a *App) History(ctx context.Context, model string) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.History(ctx, model)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, e := range v {
			rows = append(rows, []cell{c(tm(e.Time)), c(e.Kind), c(u64(e.Version)), c(str(e.Host)), c(str(e.Actor)), c(str(e.JobID)), c(orDash(e.Detail))})
		}
		w.table([]string{"TIME", "EVENT", "VERSION", "HOST", "ACTOR", "JOB", "DETAIL"}, rows)
	})
}

// TokenCreate creates a token and prints its secret, which is shown once.
func (a *App) TokenCreate(ctx context.Context, name, role string) error {
	if name == "" || role == "" {
		return Usagef("token create needs --name and --role (one of %s)", strings.Join(adminclient.Roles, ", "))
	}
	if !slices.Contains(adminclient.Roles, role) {
		return Usagef("--role %q: want one of %s", role, strings.Join(adminclient.Roles, ", "))
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	t, m, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: name, Role: role})
	if err != nil {
		return err
	}
	if err := a.render(m.Raw, func(w *writer) {
		w.fields([][2]string{{"name", t.Name}, {"role", t.Role}, {"token", t.Token}})
	}); err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.Err, "droverctl: the token is shown only now; store it (for example in a file for --token-file).")
	return err
}

// TokenList lists the tokens, never their secrets.
func (a *App) TokenList(ctx context.Context) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Tokens(ctx)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, t := range v {
			state := "active"
			if t.Revoked != nil {
				state = "revoked"
			}
			rows = append(rows, []cell{c(t.Name), c(t.Role), stateCell(state), c(tm(t.Created)), c(str(t.CreatedBy)), c(tmp(t.LastUsed))})
		}
		w.table([]string{"NAME", "ROLE", "STATE", "CREATED", "CREATED BY", "LAST USED"}, rows)
	})
}

// TokenRevoke revokes a token by name.
func (a *App) TokenRevoke(ctx context.Context, name string) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	t, m, err := cl.RevokeToken(ctx, name)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		w.printf("token %s (%s) revoked\n", t.Name, t.Role)
	})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
