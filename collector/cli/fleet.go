package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
)

// Fleet control (docs/fleet.md): the agents, a model's fleet status and
// the changes of its desired state.

// DefaultWaitTimeout bounds --wait when --timeout is not given.
const DefaultWaitTimeout = 10 * time.Minute

// DefaultPollInterval is how often --wait asks for the fleet status.
const DefaultPollInterval = 500 * time.Millisecond

// ChangeFlags are the flags every change of a desired state takes.
type ChangeFlags struct {
	// Reason is recorded with the change (docs/fleet.md: reason).
	Reason string
	// Wait follows GET /v1/models/{model}/status until every selected
	// agent serves the change or one fails, at most Timeout.
	Wait    bool
	Timeout time.Duration
}

// RolloutFlags are the flags of droverctl rollout.
type RolloutFlags struct {
	// Canary is the canary's share as typed ("" for none: every selected
	// agent moves to the version).
	Canary string
	// Auto lets the model's owner promote or abort the canary.
	Auto bool
	// Selector are k=v agent labels (each may hold several, comma-separated).
	Selector []string
	// AnalysisDuration, MinSamples and MaxRegression are the --auto
	// canary's analysis; zero values take the collector's defaults.
	AnalysisDuration time.Duration
	MinSamples       uint64
	MaxRegression    float64
}

// shortDuration writes d as Go does without zero units at its end: 30m,
// 1h, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseShare reads a share: an integer percentage 0–100.
func parseShare(what, s string) (int, error) {
	v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if err != nil || v < 0 || v > 100 {
		return 0, Usagef("%s %q: want a percentage, an integer from 0 to 100", what, s)
	}
	return v, nil
}

// Label syntax, as the collector checks it (collector/fleet.ValidLabels).
var (
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// parseSelector reads --selector k=v[,k=v...] (repeatable) into a map; a
// key given twice with different values is a usage error.
func parseSelector(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	sel := map[string]string{}
	for _, spec := range specs {
		for _, kv := range strings.Split(spec, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || !labelKeyRE.MatchString(k) || !labelValueRE.MatchString(v) {
				return nil, Usagef("--selector %q: want label=value, like zone=eu-1 (a label of letters, digits, '.', '_', '/', '-'; a value of letters, digits, '.', '_', '-')", kv)
			}
			if old, dup := sel[k]; dup && old != v {
				return nil, Usagef("--selector: label %q given twice (%q, %q)", k, old, v)
			}
			sel[k] = v
		}
	}
	return sel, nil
}

func (f ChangeFlags) validate() error {
	if f.Wait && f.Timeout <= 0 {
		return Usagef("--timeout %s: must be positive", f.Timeout)
	}
	return nil
}

// Rollout changes the version every selected agent serves to n, or starts
// a canary of n with --canary.
func (a *App) Rollout(ctx context.Context, model, n string, rf RolloutFlags, cf ChangeFlags) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	req := adminclient.RolloutRequest{Version: v, Reason: cf.Reason}
	if rf.Canary != "" {
		share, err := parseShare("--canary", rf.Canary)
		if err != nil {
			return err
		}
		req.Canary = &adminclient.CanarySpec{Share: share, Auto: rf.Auto}
	} else if rf.Auto {
		return Usagef("--auto needs --canary PCT")
	}
	if rf.AnalysisDuration != 0 || rf.MinSamples != 0 || rf.MaxRegression != 0 {
		switch {
		case !rf.Auto:
			return Usagef("--analysis-duration, --min-samples and --max-regression go with --canary PCT --auto")
		case rf.AnalysisDuration < 0:
			return Usagef("--analysis-duration %s: must be positive", rf.AnalysisDuration)
		case rf.MaxRegression < 0 || rf.MaxRegression >= 1:
			return Usagef("--max-regression %v: want a number in [0, 1)", rf.MaxRegression)
		}
		an := &adminclient.Analysis{MinSamples: rf.MinSamples, MaxRegression: rf.MaxRegression}
		if rf.AnalysisDuration > 0 {
			an.Duration = shortDuration(rf.AnalysisDuration)
		}
		req.Canary.Analysis = an
	}
	if req.Selector, err = parseSelector(rf.Selector); err != nil {
		return err
	}
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Rollout(ctx, model, req)
	})
}

// Rollback returns the model to version n, or to the desired state's
// previous version when n is "".
func (a *App) Rollback(ctx context.Context, model, n string, cf ChangeFlags) error {
	req := adminclient.RollbackRequest{Reason: cf.Reason}
	if n != "" {
		v, err := parseVersion(n)
		if err != nil {
			return err
		}
		req.Version = v
	}
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Rollback(ctx, model, req)
	})
}

// Pin makes n the serving version with no canary and no automatic change
// until Unpin.
func (a *App) Pin(ctx context.Context, model, n string, cf ChangeFlags) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Pin(ctx, model, adminclient.PinRequest{Version: v, Reason: cf.Reason})
	})
}

// Unpin lets automatic changes touch the model again.
func (a *App) Unpin(ctx context.Context, model string, cf ChangeFlags) error {
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Unpin(ctx, model, adminclient.ReasonRequest{Reason: cf.Reason})
	})
}

// Canary sends pct percent of the requests to version n.
func (a *App) Canary(ctx context.Context, model, n, pct string, cf ChangeFlags) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	share, err := parseShare("share", pct)
	if err != nil {
		return err
	}
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Canary(ctx, model, adminclient.ShareRequest{Version: v, Share: share, Reason: cf.Reason})
	})
}

// Promote makes the canary the serving version.
func (a *App) Promote(ctx context.Context, model string, cf ChangeFlags) error {
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Promote(ctx, model, adminclient.ReasonRequest{Reason: cf.Reason})
	})
}

// Abort removes the canary.
func (a *App) Abort(ctx context.Context, model string, cf ChangeFlags) error {
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Abort(ctx, model, adminclient.ReasonRequest{Reason: cf.Reason})
	})
}

// Shadow copies pct percent of the requests to version n (0 removes the
// shadow).
func (a *App) Shadow(ctx context.Context, model, n, pct string, cf ChangeFlags) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	share, err := parseShare("share", pct)
	if err != nil {
		return err
	}
	return a.change(ctx, model, cf, func(cl *adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error) {
		return cl.Shadow(ctx, model, adminclient.ShareRequest{Version: v, Share: share, Reason: cf.Reason})
	})
}

// change checks the arguments, makes one change, prints the new desired
// state and, with --wait, follows the fleet until it serves it.
func (a *App) change(ctx context.Context, model string, cf ChangeFlags, call func(*adminclient.Client) (*adminclient.DesiredState, *adminclient.Meta, error)) error {
	if err := checkModel(model); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	d, m, err := call(cl)
	if err != nil {
		return err
	}
	if err := a.render(m.Raw, func(w *writer) { desiredFields(w, d) }); err != nil {
		return err
	}
	if !cf.Wait {
		return nil
	}
	return a.wait(ctx, cl, model, d.Revision, cf.Timeout)
}

// desiredFields writes a desired state as "key: value" lines.
func desiredFields(w *writer, d *adminclient.DesiredState) {
	if d.Revision == 0 {
		w.printf("%s: no desired state (its agents serve what their model directories hold)\n", d.Model)
		return
	}
	serving := "-"
	if d.Serving != 0 {
		serving = strconv.FormatUint(d.Serving, 10)
	}
	if d.Previous != 0 {
		serving += " (previous " + strconv.FormatUint(d.Previous, 10) + ")"
	}
	canary := "-"
	if cn := d.Canary; cn != nil && cn.Version != 0 {
		canary = fmt.Sprintf("%d at %d%%", cn.Version, cn.Share)
		if cn.Auto {
			canary += ", automatic analysis"
			if an := cn.Analysis; an != nil {
				canary += fmt.Sprintf(" (%s, %d samples, max regression %s)", orDash(an.Duration), an.MinSamples,
					strconv.FormatFloat(an.MaxRegression, 'f', -1, 64))
			}
		}
		if cn.Started != nil && !cn.Started.IsZero() {
			canary += ", since " + tm(*cn.Started)
		}
	}
	shadow := "-"
	if sh := d.Shadow; sh != nil && sh.Version != 0 {
		shadow = fmt.Sprintf("%d at %d%%", sh.Version, sh.Share)
	}
	pinned := "no"
	if d.Pinned {
		pinned = "yes"
	}
	w.fields([][2]string{
		{"model", d.Model},
		{"revision", strconv.FormatUint(d.Revision, 10) + " (" + orDash(d.Change) + ")"},
		{"serving", serving},
		{"canary", canary},
		{"shadow", shadow},
		{"pinned", pinned},
		{"selector", labelsText(d.Selector, "every agent")},
		{"changed", tmp(d.ChangedAt) + " by " + orDash(d.ChangedBy)},
		{"reason", orDash(d.Reason)},
	})
}

// labelsText shows labels as k=v,k=v sorted by key; none as empty.
func labelsText(l map[string]string, empty string) string {
	if len(l) == 0 {
		return empty
	}
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// Agents lists the agents that follow the cluster, with what they serve.
func (a *App) Agents(ctx context.Context) error {
	cl, err := a.Client()
	if err != nil {
		return err
	}
	v, m, err := cl.Agents(ctx)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		rows := make([][]cell, 0, len(v))
		for _, ag := range v {
			var (
				models, errs []string
			)
			if inv := ag.Inventory; inv != nil {
				for _, md := range inv.Models {
					if md.Serving != 0 {
						models = append(models, md.Model+":"+strconv.FormatUint(md.Serving, 10))
					}
					if md.Error != nil && *md.Error != "" {
						errs = append(errs, md.Model+": "+*md.Error)
					}
				}
				if inv.LastError != nil && *inv.LastError != "" && !slices.ContainsFunc(errs, func(e string) bool { return strings.HasSuffix(e, ": "+*inv.LastError) }) {
					errs = append(errs, *inv.LastError)
				}
			}
			slices.Sort(models)
			state := "online"
			if !ag.Online {
				state = "offline"
			}
			errText := strings.Join(errs, "; ")
			errCell := c(orDash(errText))
			if errText != "" {
				errCell.color = red
			}
			rows = append(rows, []cell{c(ag.Agent), c(orDash(ag.Host)), c(labelsText(ag.Labels, "-")), c(list(models)),
				stateCell(state), c(tmp(ag.LastSeen)), errCell})
		}
		w.table([]string{"AGENT", "HOST", "LABELS", "SERVING", "STATE", "LAST SEEN", "ERROR"}, rows)
	})
}

// FleetStatus shows a model's desired state, what each agent serves and
// the rollout's progress.
func (a *App) FleetStatus(ctx context.Context, model string) error {
	if err := checkModel(model); err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	st, m, err := cl.FleetStatus(ctx, model)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		if st.Desired.Model == "" {
			st.Desired.Model = st.Model
		}
		desiredFields(w, &st.Desired)
		w.printf("\n")
		if len(st.Agents) == 0 {
			w.printf("no agent reports %s yet\n", st.Model)
			return
		}
		rows := make([][]cell, 0, len(st.Agents))
		for _, ag := range st.Agents {
			sel := "no"
			if ag.Selected {
				sel = "yes"
			}
			errCell := c(str(ag.Error))
			if ag.Error != nil && *ag.Error != "" {
				errCell.color = red
			}
			rows = append(rows, []cell{c(ag.Agent), c(orDash(ag.Host)), c(labelsText(ag.Labels, "-")), c(sel),
				c(nz(ag.Serving)), c(nz(ag.Canary)), stateCell(ag.State), c(strconv.FormatUint(ag.Revision, 10)), c(tmp(ag.LastSeen)), errCell})
		}
		w.table([]string{"AGENT", "HOST", "LABELS", "SELECTED", "SERVING", "CANARY", "STATE", "REVISION", "LAST SEEN", "ERROR"}, rows)
		p := st.Progress
		w.printf("\nprogress: %d of %d selected agents converged, %d pending, %d failed", p.Converged, p.Selected, p.Pending, p.Failed)
		if p.Offline > 0 {
			w.printf(", %d offline", p.Offline)
		}
		w.printf("\n")
	})
}

// nz formats a version where null and 0 both mean none.
func nz(p *uint64) string {
	if p == nil || *p == 0 {
		return "-"
	}
	return strconv.FormatUint(*p, 10)
}

// rolloutView is what --wait makes of one fleet status, for revision rev.
type rolloutView struct {
	visible                             bool // the status shows rev or later
	selected                            int
	converged, pending, failed, offline []adminclient.AgentStatus
}

func viewOf(st *adminclient.FleetStatus, rev uint64) rolloutView {
	v := rolloutView{visible: st.Desired.Revision >= rev}
	for _, ag := range st.Agents {
		if !ag.Selected {
			continue
		}
		v.selected++
		switch {
		case !v.visible:
			v.pending = append(v.pending, ag)
		case ag.State == adminclient.StateConverged && (ag.Revision == 0 || ag.Revision >= rev):
			v.converged = append(v.converged, ag)
		case ag.State == adminclient.StateFailed && ag.Revision >= rev:
			// An agent reports the revision it received: a failure at an
			// older one is stale until it has seen this change.
			v.failed = append(v.failed, ag)
		case ag.State == adminclient.StateOffline:
			v.offline = append(v.offline, ag)
		default:
			v.pending = append(v.pending, ag)
		}
	}
	return v
}

func (v rolloutView) line(model string, rev uint64) string {
	if !v.visible {
		return fmt.Sprintf("%s revision %d: waiting for the collector to show it", model, rev)
	}
	s := fmt.Sprintf("%s revision %d: %d of %d selected agents converged, %d pending, %d failed", model, rev,
		len(v.converged), v.selected, len(v.pending), len(v.failed))
	if len(v.offline) > 0 {
		s += fmt.Sprintf(", %d offline", len(v.offline))
	}
	return s
}

func agentName(ag adminclient.AgentStatus) string {
	if ag.Host == "" {
		return ag.Agent
	}
	return ag.Host + " (" + ag.Agent + ")"
}

// wait polls the model's fleet status until every selected agent serves
// revision rev (or a later one): nil; or one failed, or timeout passed:
// an error already printed (exit 1) naming the agents and why. A
// collector that cannot be reached is asked again until the timeout (the
// client tries every URL each time).
func (a *App) wait(ctx context.Context, cl *adminclient.Client, model string, rev uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	poll := a.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	start := time.Now()
	line := a.statusLine()
	defer line.finish()
	var (
		last      *rolloutView
		lastErr   error
		unreached bool
		timer     = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			line.finish()
			return a.waitEnded(ctx, model, rev, timeout, last, lastErr)
		case <-timer.C:
		}
		st, _, err := cl.FleetStatus(ctx, model)
		switch {
		case err != nil && ctx.Err() != nil:
			// The loop's select reports it.
		case err != nil:
			var ue *adminclient.UnreachableError
			if !errors.As(err, &ue) {
				line.finish()
				return fmt.Errorf("follow %s revision %d: %w", model, rev, err)
			}
			lastErr = err
			if !unreached {
				line.finish()
				fmt.Fprintf(a.Err, "droverctl: no collector answers %s's status; trying again until the timeout\n", model)
				unreached = true
			}
		default:
			unreached, lastErr = false, nil
			v := viewOf(st, rev)
			last = &v
			line.show(v.line(model, rev) + fmt.Sprintf(" (%s)", time.Since(start).Round(time.Second)))
			switch {
			case v.visible && len(v.failed) > 0:
				line.finish()
				fmt.Fprintf(a.Err, "droverctl: %s revision %d failed on %d of %d selected agents (they keep serving their old version):\n",
					model, rev, len(v.failed), v.selected)
				for _, ag := range v.failed {
					fmt.Fprintf(a.Err, "  %s: %s\n", agentName(ag), orDash(deref(ag.Error)))
				}
				fmt.Fprintf(a.Err, "The change stays in effect: see `droverctl status %s`; `droverctl rollback %s` undoes it.\n", model, model)
				return &reportedError{}
			case v.visible && len(v.converged) == v.selected:
				line.finish()
				done := a.Out
				if a.Opts.Output == OutputJSON || a.Opts.Output == OutputYAML {
					done = a.Err
				}
				if v.selected == 0 {
					fmt.Fprintf(a.Err, "droverctl: no agent is selected for %s yet; agents converge when they join\n", model)
					return nil
				}
				_, err := fmt.Fprintf(done, "%s revision %d: all %d selected agents converged in %s\n", model, rev, v.selected,
					time.Since(start).Round(100*time.Millisecond))
				return err
			}
		}
		timer.Reset(poll)
	}
}

// waitEnded reports a wait that the timeout or an interrupt ended.
func (a *App) waitEnded(ctx context.Context, model string, rev uint64, timeout time.Duration, last *rolloutView, lastErr error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(a.Err, "droverctl: timed out after %s waiting for %s revision %d", timeout, model, rev)
	} else {
		fmt.Fprintf(a.Err, "droverctl: interrupted while waiting for %s revision %d", model, rev)
	}
	switch {
	case last == nil && lastErr != nil:
		fmt.Fprintf(a.Err, ": %v\n", lastErr)
	case last == nil:
		fmt.Fprintln(a.Err)
	case !last.visible:
		fmt.Fprintf(a.Err, ": the collector does not show revision %d yet\n", rev)
	default:
		fmt.Fprintf(a.Err, ": %d of %d selected agents converged; not yet:\n", len(last.converged), last.selected)
		for _, ag := range append(slices.Clone(last.pending), last.offline...) {
			why := ag.State
			if ag.Error != nil && *ag.Error != "" {
				why += ": " + *ag.Error
			}
			fmt.Fprintf(a.Err, "  %s: %s\n", agentName(ag), orDash(why))
		}
	}
	fmt.Fprintf(a.Err, "The change stays in effect: follow it with `droverctl status %s`.\n", model)
	return &reportedError{}
}

// statusLine shows one progress line on stderr: redrawn in place on a
// terminal, else written again each time it changes.
type statusLine struct {
	w        io.Writer
	terminal bool
	last     string
	drawn    bool
}

func (a *App) statusLine() *statusLine {
	term := a.IsTerminal
	if term == nil {
		term = isCharDevice
	}
	if a.Err == nil {
		return &statusLine{w: io.Discard}
	}
	return &statusLine{w: a.Err, terminal: term(a.Err)}
}

// show draws s; on a terminal the elapsed time in it changes every poll,
// elsewhere only a change of the counts writes a line.
func (l *statusLine) show(s string) {
	if l.terminal {
		fmt.Fprintf(l.w, "\r\x1b[K%s", s)
		l.drawn = true
		return
	}
	key, _, _ := strings.Cut(s, " (")
	if key != l.last {
		fmt.Fprintln(l.w, s)
		l.last = key
	}
}

func (l *statusLine) finish() {
	if l.terminal && l.drawn {
		fmt.Fprintln(l.w)
		l.drawn = false
	}
}
