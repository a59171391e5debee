package drift

import (
	"context"
	"sync"
	"time"
)

// Incident is confirmed drift of one model version: the event that the
// jobs package answers with one re-optimization job.
type Incident struct {
	Model, Version string
	// Start is the time of the first drifted check of the run of checks
	// that confirmed it. Every owner that sees the same checks computes the
	// same Start, so it identifies the incident across owner changes.
	Start time.Time
	// Reasons are the confirming checks' reasons, deduplicated, in order.
	Reasons []string
}

type observation struct {
	at      time.Time // ms precision, as stored
	drifted bool
	reasons []string
}

type versionState struct {
	checks []observation // the last ConfirmN, oldest first
	last   *Incident     // the last incident opened
	opened time.Time     // when last was opened
	window time.Duration // the policy's, when last was opened
	cool   time.Duration // the policy's cooldown, when last was opened
}

// open reports whether the version's last incident is still open at now:
// for its cooldown, and at least one window, after it opened.
func (s *versionState) open(now time.Time) bool {
	return s.last != nil && now.Before(s.opened.Add(max(s.cool, s.window)))
}

// Detector turns check results into incidents with hysteresis: an incident
// opens when ConfirmM of the last ConfirmN checks of a model version
// drifted, and no other opens for that version during Cooldown after it.
// Checks at or before the last incident's opening never count for the
// next. At most MaxOpenPerModel incidents of one model are open at once
// (see Limits.MaxOpenIncidentsPerModel). It is safe for concurrent use.
type Detector struct {
	policy func(model string) Policy

	mu      sync.Mutex
	state   map[[2]string]*versionState
	maxOpen int
}

// NewDetector returns a Detector that reads each model's policy from
// policy (for example (*Config).For), with DefaultLimits'
// MaxOpenIncidentsPerModel (a Scheduler sets its own limits').
func NewDetector(policy func(model string) Policy) *Detector {
	return &Detector{policy: policy, state: map[[2]string]*versionState{}, maxOpen: DefaultLimits().MaxOpenIncidentsPerModel}
}

// SetMaxOpenPerModel sets how many incidents of one model may be open at
// once (n < 1: no limit).
func (d *Detector) SetMaxOpenPerModel(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maxOpen = n
}

// Observe adds the check r of model version (r.Time, else now, is the
// check's time) and returns the incident it opens, or nil. A check without
// a verdict counts as not drifted: missing data never opens an incident.
// A confirmation while the model has MaxOpenPerModel incidents open opens
// nothing (the scheduler logs and counts it, see observe).
func (d *Detector) Observe(model, version string, r Result, now time.Time) *Incident {
	inc, _ := d.observe(model, version, r, now)
	return inc
}

// observe is Observe that also returns the incident that was confirmed
// but suppressed by the limit on open incidents (then inc is nil).
func (d *Detector) observe(model, version string, r Result, now time.Time) (inc, suppressed *Incident) {
	p := d.policy(model)
	at := r.Time
	if at.IsZero() {
		at = now
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.get(model, version)
	s.add(observation{at: at.UTC().Truncate(time.Millisecond), drifted: r.Drifted, reasons: r.Reasons}, p.ConfirmN)
	if s.last != nil && now.Before(s.opened.Add(p.Cooldown)) {
		return nil, nil
	}
	var run []observation
	for _, o := range s.checks {
		if s.last != nil && !o.at.After(s.opened) {
			continue
		}
		if o.drifted {
			run = append(run, o)
		}
	}
	if len(run) < p.ConfirmM {
		return nil, nil
	}
	inc = &Incident{Model: model, Version: version, Start: run[0].at}
	seen := map[string]bool{}
	for _, o := range run {
		for _, reason := range o.reasons {
			if !seen[reason] {
				seen[reason] = true
				inc.Reasons = append(inc.Reasons, reason)
			}
		}
	}
	if d.maxOpen > 0 && d.openLocked(model, now) >= d.maxOpen {
		return nil, inc
	}
	s.last, s.opened, s.window, s.cool = inc, now.UTC().Truncate(time.Millisecond), p.Window, p.Cooldown
	return inc, nil
}

// openLocked counts the open incidents of model's versions at now.
func (d *Detector) openLocked(model string, now time.Time) int {
	n := 0
	for k, s := range d.state {
		if k[0] == model && s.open(now) {
			n++
		}
	}
	return n
}

// Len is the number of versions the Detector holds state for.
func (d *Detector) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.state)
}

func (s *versionState) add(o observation, n int) {
	s.checks = append(s.checks, o)
	if len(s.checks) > n {
		s.checks = append(s.checks[:0], s.checks[len(s.checks)-n:]...)
	}
}

func (d *Detector) get(model, version string) *versionState {
	k := [2]string{model, version}
	s := d.state[k]
	if s == nil {
		s = &versionState{}
		d.state[k] = s
	}
	return s
}

// Known reports whether the Detector has state for model version (it
// observed or restored it).
func (d *Detector) Known(model, version string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.state[[2]string{model, version}]
	return ok
}

// Last returns the last incident opened for model version and when it was
// opened, if any.
func (d *Detector) Last(model, version string) (Incident, time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state[[2]string{model, version}]
	if s == nil || s.last == nil {
		return Incident{}, time.Time{}, false
	}
	return *s.last, s.opened, true
}

// Forget drops the state of model version, e.g. when this node no longer
// owns the model; a later owner restores it from drift_results.
func (d *Detector) Forget(model, version string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.state, [2]string{model, version})
}

// RecordedCheck is a check as drift_results holds it (its "check" row).
type RecordedCheck struct {
	Time    time.Time
	Drifted bool
	Reasons []string
}

// History is what drift_results holds of a model version's recent checks:
// where a new owner's Detector continues from.
type History struct {
	// Checks are the last checks, oldest first.
	Checks []RecordedCheck
	// Last is the last incident opened (nil: none) and Opened when.
	Last   *Incident
	Opened time.Time
}

// HistoryReader reads a model version's History in [since, until]: its
// last n checks and its last incident. *Checker implements it on
// drift_results.
type HistoryReader interface {
	History(ctx context.Context, model, version string, since, until time.Time, n int) (History, error)
}

// Restore replaces the state of model version with what h reads: the last
// ConfirmN checks before now and the last incident, so that a new owner
// continues where the old one stopped and the same incident gets the same
// start. It looks back max(Cooldown, 10·ConfirmN·Interval). On error (from
// a *Checker, wrapping ErrUnavailable when ClickHouse is down) the state is
// left as it was.
func (d *Detector) Restore(ctx context.Context, h HistoryReader, model, version string, now time.Time) error {
	p := d.policy(model)
	since := now.Add(-max(p.Cooldown, 10*time.Duration(p.ConfirmN)*p.Interval))
	hist, err := h.History(ctx, model, version, since, now, p.ConfirmN)
	if err != nil {
		return err
	}
	s := &versionState{last: hist.Last, opened: hist.Opened, window: p.Window, cool: p.Cooldown}
	for _, c := range hist.Checks {
		s.checks = append(s.checks, observation{at: c.Time, drifted: c.Drifted, reasons: c.Reasons})
	}
	if hist.Last != nil {
		inc := *hist.Last
		s.last = &inc
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state[[2]string{model, version}] = s
	return nil
}
