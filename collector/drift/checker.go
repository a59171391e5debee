package drift

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/collector/store"
)

// Tests written to drift_results besides the per-feature ones of
// collector/store (psi, js, ks, wasserstein, chi2, metric, error_rate, p99).
const (
	// TestNoVerdict: the feature had too few observations (value: the
	// smaller window's count, threshold: MinSamples) or its bounds differ
	// between the windows (value NaN); never drifted.
	TestNoVerdict = "no_verdict"
	// TestDataset: the share of features with a verdict that drifted
	// (threshold: DatasetShare); feature is empty. NaN when no feature had
	// a verdict.
	TestDataset = "dataset"
	// TestCheck: one row per check, feature empty, drifted when the check
	// counts as drifted for the incident detector (dataset or any signal);
	// reference holds the reasons. The detector restores from these rows.
	TestCheck = "check"
	// TestIncident: an incident opened; window_start is the incident start,
	// time when it was opened, reference its reasons.
	TestIncident = "incident"
)

// ErrUnavailable is wrapped by every error that Check, Restore and the
// other queries return when ClickHouse cannot be reached or is overloaded:
// the same call can succeed later. errors.Is(err, ErrUnavailable) and
// store.IsRetryable(err) are both true for them.
var ErrUnavailable = errors.New("ClickHouse unavailable")

type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("%s: ClickHouse unavailable: %v", e.op, e.err)
}
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// wrap says what was being done and marks retryable failures.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if store.IsRetryable(err) {
		return &unavailableError{op: op, err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Checker runs drift checks: it reads a model version's windows from
// ClickHouse (reads.go), judges them (verdict.go) and records the result in
// drift_results. It is safe for concurrent use.
type Checker struct {
	conn  driver.Conn
	db    string
	node  string
	clock func() time.Time
	store *store.Store

	// Lookback is how far before a window's start a series' last point is
	// looked for (the cumulative baseline); it must exceed the agents'
	// export interval. Default 5 minutes. Set before the first check.
	Lookback time.Duration

	// Caches of reads.go.
	mu     sync.Mutex
	starts map[[2]string]time.Time // version start, once known for good
	// cumulative: whether a version's windows hold cumulative points; a
	// "no" is looked at again after cumulativeRecheck, a "yes" never.
	cumulative map[[2]string]cumulativeSeen
}

// NewChecker returns a Checker on database of conn, recording node as the
// node that ran each check. clock is used for the time of records that
// have no check time (nil: time.Now).
func NewChecker(conn driver.Conn, database, node string, clock func() time.Time) *Checker {
	if clock == nil {
		clock = time.Now
	}
	return &Checker{
		conn: conn, db: database, node: node, clock: clock,
		store:    store.New(conn, database, nil),
		Lookback: 5 * time.Minute,
		starts:   map[[2]string]time.Time{},

		cumulative: map[[2]string]cumulativeSeen{},
	}
}

// Forget drops what the Checker caches of model version (its start, whether
// its windows hold cumulative points); the next check reads them again.
// The Scheduler calls it for versions that stopped serving (Forgetter).
func (c *Checker) Forget(model, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.starts, [2]string{model, version})
	delete(c.cumulative, [2]string{model, version})
}

// cached is the number of versions the Checker caches something of.
func (c *Checker) cached() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := map[[2]string]bool{}
	for k := range c.starts {
		keys[k] = true
	}
	for k := range c.cumulative {
		keys[k] = true
	}
	return len(keys)
}

// Check compares the current window [now−Window, now) of a model version
// with its reference under policy p, computes the signals, and records
// every result in drift_results (one insert, deduplicated by the check's
// model, version and time, so a retried Check with the same now writes
// nothing twice). p must be complete (Config.For). A version with no
// distribution data yet, or whose first window has not ended, gets a
// Result without verdicts. When ClickHouse is unavailable it returns an
// error wrapping ErrUnavailable and writes nothing; if only the final write
// fails, the Result is returned with the error.
func (c *Checker) Check(ctx context.Context, model, version string, p Policy, now time.Time) (Result, error) {
	r := Result{Model: model, Version: version, Time: now, Window: Window{now.Add(-p.Window), now}}
	op := fmt.Sprintf("drift check %s v%s", model, version)
	start, ok, err := c.VersionStart(ctx, model, version)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		start = now // no data: an empty reference
	}
	r.ReferenceWindow = Window{start, start.Add(p.Window)}
	r.Reference = ReferenceFirstWindow + " " + r.ReferenceWindow.String()
	if p.Reference == ReferenceManifest {
		r.Reference = ReferenceManifest
	}
	d, err := c.read(ctx, model, version, r.ReferenceWindow, r.Window)
	if err != nil {
		return Result{}, wrap(op, err)
	}
	r = verdict(r, p, d)
	if err := c.store.Insert(ctx, &store.Batch{Drift: c.rows(r, p)}, fmt.Sprintf("drift/%s/%s/%d", model, version, now.UnixNano())); err != nil {
		return r, wrap(op+": record", err)
	}
	return r, nil
}

// rows renders a Result as drift_results rows.
func (c *Checker) rows(r Result, p Policy) []store.DriftRow {
	row := func(feature, test string, v, th float64, drifted bool, ref string) store.DriftRow {
		return store.DriftRow{Time: r.Time, Model: r.Model, ModelVersion: r.Version, Feature: feature, Test: test,
			Value: v, Threshold: th, Drifted: drifted, WindowStart: r.Window.Start, WindowEnd: r.Window.End,
			Reference: ref, Node: c.node}
	}
	var out []store.DriftRow
	for _, f := range r.Features {
		if !f.Verdict {
			v := float64(min(f.CurCount, f.RefCount))
			if f.NoVerdict == noVerdictBounds || f.NoVerdict == noVerdictRefIncomplete {
				v = math.NaN()
			}
			out = append(out, row(f.Feature, TestNoVerdict, v, float64(p.MinSamples), false, r.Reference+": "+f.NoVerdict))
			continue
		}
		out = append(out,
			row(f.Feature, store.DriftTestPSI, f.PSI, p.PSIThreshold, f.PSI >= p.PSIThreshold, r.Reference),
			row(f.Feature, store.DriftTestJS, f.JS, p.JSThreshold, f.JS >= p.JSThreshold, r.Reference),
			row(f.Feature, store.DriftTestKS, f.KS, p.KSThreshold, f.KS >= p.KSThreshold, r.Reference))
		if f.Categorical {
			out = append(out, row(f.Feature, store.DriftTestChi2, f.Chi2P, p.Chi2PValue, f.Chi2P < p.Chi2PValue,
				fmt.Sprintf("%s: chi2=%.6g", r.Reference, f.Chi2)))
		} else {
			out = append(out, row(f.Feature, store.DriftTestWasserstein, f.Wasserstein, p.WassersteinThreshold,
				f.Wasserstein >= p.WassersteinThreshold, r.Reference))
		}
	}
	share := r.DriftedShare
	if !r.DatasetVerdict {
		share = math.NaN()
	}
	out = append(out, row("", TestDataset, share, p.DatasetShare, r.DatasetDrifted, r.Reference))
	sigRef := ReferenceFirstWindow + " " + r.ReferenceWindow.String()
	for _, s := range r.Signals {
		ref := sigRef
		if s.NoVerdict != "" {
			ref += ": no verdict: " + s.NoVerdict
		}
		out = append(out, row(s.Name, s.Test, s.Value, s.Threshold, s.Drifted, ref))
	}
	drifted := 0.0
	if r.Drifted {
		drifted = 1
	}
	out = append(out, row("", TestCheck, drifted, 1, r.Drifted, strings.Join(r.Reasons, "; ")))
	return out
}

// RecordIncident writes the opening of inc to drift_results (test
// "incident"), so that Detector.Restore on another node finds it. It is
// idempotent for the same incident and opening time.
func (c *Checker) RecordIncident(ctx context.Context, inc Incident, opened time.Time) error {
	row := store.DriftRow{Time: opened, Model: inc.Model, ModelVersion: inc.Version, Test: TestIncident, Value: 1,
		Threshold: 1, Drifted: true, WindowStart: inc.Start, WindowEnd: opened,
		Reference: strings.Join(inc.Reasons, "; "), Node: c.node}
	token := fmt.Sprintf("drift-incident/%s/%s/%d", inc.Model, inc.Version, inc.Start.UnixNano())
	return wrap(fmt.Sprintf("record incident %s v%s", inc.Model, inc.Version),
		c.store.Insert(ctx, &store.Batch{Drift: []store.DriftRow{row}}, token))
}
