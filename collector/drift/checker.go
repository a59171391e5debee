package drift

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
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

// Window is a half-open time range [Start, End).
type Window struct {
	Start, End time.Time
}

func (w Window) String() string {
	return fmt.Sprintf("[%s, %s)", w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339))
}

// FeatureResult is the comparison of one feature's binned distribution.
type FeatureResult struct {
	Feature string
	// Bounds are the histogram bounds shared by both windows.
	Bounds []float64
	// Reference and Current are the bucket counts (Reference: expected
	// counts scaled to Current's total for the manifest reference).
	Reference, Current []float64
	// RefCount and CurCount are the observations in each window.
	RefCount, CurCount uint64
	// Verdict is false when the feature was not judged: NoVerdict says why.
	Verdict   bool
	NoVerdict string
	// Categorical features (bounds 0, 1, …, n−1) also get Chi2 and
	// Chi2P; KS and Wasserstein are computed for numeric features only.
	Categorical              bool
	PSI, JS, KS, Wasserstein float64
	Chi2, Chi2P              float64
	// Drifted: PSI ≥ PSIThreshold or JS ≥ JSThreshold (only with Verdict).
	Drifted bool
}

// Signal is a metric or operational signal: evaluation metric
// degradation, error rate increase or p99 latency ratio.
type Signal struct {
	// Test is store.DriftTestMetric, DriftTestErrorRate or DriftTestP99.
	Test string
	// Name is "<metric>/<source>" for evaluation metrics, empty otherwise.
	Name string
	// Value is the degradation (drop, relative increase, rate increase or
	// latency ratio); Current and Reference are the compared values.
	Value, Current, Reference, Threshold float64
	Drifted                              bool
}

// Result is one check of one model version.
type Result struct {
	Model, Version string
	// Time is when the check ran (its now).
	Time time.Time
	// Window is the current window; ReferenceWindow the first window (also
	// used for signals with the manifest reference). Reference describes
	// what distributions were compared with.
	Window, ReferenceWindow Window
	Reference               string
	// Features are sorted by name.
	Features []FeatureResult
	// DatasetVerdict is false when no feature had a verdict.
	DatasetVerdict bool
	// DriftedShare is the share of features with a verdict that drifted.
	DriftedShare   float64
	DatasetDrifted bool
	Signals        []Signal
	// Drifted is DatasetDrifted or any signal drifted: what the Detector
	// counts. Reasons say why, one line each.
	Drifted bool
	Reasons []string
}

// Checker runs drift checks in ClickHouse and records them in
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

func (c *Checker) table(name string) string { return "`" + c.db + "`.`" + name + "`" }

// nanos renders t as a DateTime64(9) literal.
func nanos(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Nano(%d, 'UTC')", t.UnixNano())
}

// VersionStart returns the time of the first distribution point of a
// version, and false if it has none. Delta points are found through the
// rollups (hour, then minute: the start of the minute of the first delta
// point), cumulative ones in metrics_histogram (the temporality index skips
// the delta granules); the earlier of the two wins.
func (c *Checker) VersionStart(ctx context.Context, model, version string) (time.Time, bool, error) {
	key := [2]string{model, version}
	c.mu.Lock()
	t, ok := c.starts[key]
	c.mu.Unlock()
	if ok {
		return t, true, nil
	}
	op := fmt.Sprintf("version start of %s v%s", model, version)
	var found bool
	var hour time.Time
	var n uint64
	q := fmt.Sprintf(`SELECT min(time), count() FROM %s WHERE model = ? AND model_version = ? AND metric = ?`,
		c.table("metrics_histogram_1h"))
	if err := c.conn.QueryRow(ctx, q, model, version, semconv.MetricDistribution).Scan(&hour, &n); err != nil {
		return time.Time{}, false, wrap(op, err)
	}
	if n > 0 {
		q = fmt.Sprintf(`SELECT min(time), count() FROM %s WHERE model = ? AND model_version = ? AND metric = ? AND time >= %s AND time < %s`,
			c.table("metrics_histogram_1m"), nanos(hour), nanos(hour.Add(time.Hour)))
		if err := c.conn.QueryRow(ctx, q, model, version, semconv.MetricDistribution).Scan(&t, &n); err != nil {
			return time.Time{}, false, wrap(op, err)
		}
		if n == 0 { // merges lag between the two views: the hour will do
			t = hour
		}
		found = true
	}
	var cum time.Time
	q = fmt.Sprintf(`SELECT min(time), count() FROM %s WHERE model = ? AND model_version = ? AND metric = ? AND temporality = 'cumulative'`,
		c.table("metrics_histogram"))
	if err := c.conn.QueryRow(ctx, q, model, version, semconv.MetricDistribution).Scan(&cum, &n); err != nil {
		return time.Time{}, false, wrap(op, err)
	}
	if n > 0 && (!found || cum.Before(t)) {
		t, found = cum, true
	}
	if !found {
		return time.Time{}, false, nil
	}
	t = t.UTC()
	c.mu.Lock()
	c.starts[key] = t
	c.mu.Unlock()
	return t, true, nil
}

// cumulativeRecheck is how long a check trusts that a version has no
// cumulative points in its windows. Drover agents send deltas, which the
// rollups answer; cumulative points (other senders, or agents configured
// for cumulative) need the series-increase queries on the raw tables,
// which cost a query each even when the temporality index skips every
// granule, so they run only for versions that have such points.
const cumulativeRecheck = 5 * time.Minute

type cumulativeSeen struct {
	has     bool
	checked time.Time
}

// hasCumulative reports whether the raw tables hold cumulative histogram
// or request-counter points of a version in [ref.Start − Lookback, ref.End)
// or [cur.Start − Lookback, cur.End).
func (c *Checker) hasCumulative(ctx context.Context, model, version string, ref, cur Window) (bool, error) {
	key := [2]string{model, version}
	now := time.Now()
	c.mu.Lock()
	seen, ok := c.cumulative[key]
	c.mu.Unlock()
	if ok && (seen.has || now.Sub(seen.checked) < cumulativeRecheck) {
		return seen.has, nil
	}
	in := func(w Window) string {
		return fmt.Sprintf("(time >= %s AND time < %s)", nanos(w.Start.Add(-c.Lookback)), nanos(w.End))
	}
	where := fmt.Sprintf("model = ? AND model_version = ? AND temporality = 'cumulative' AND (%s OR %s)", in(ref), in(cur))
	q := fmt.Sprintf(`SELECT (SELECT count() FROM %s WHERE %s AND metric IN (?, ?)) + (SELECT count() FROM %s WHERE %s AND metric = ?)`,
		c.table("metrics_histogram"), where, c.table("metrics_sum"), where)
	var n uint64
	if err := c.conn.QueryRow(ctx, q, model, version, semconv.MetricDistribution, semconv.MetricRequestLatency,
		model, version, semconv.MetricRequests).Scan(&n); err != nil {
		return false, err
	}
	c.mu.Lock()
	c.cumulative[key] = cumulativeSeen{has: n > 0, checked: now}
	c.mu.Unlock()
	return n > 0, nil
}

// histogramIncrease renders, for one window, the per-series increase of a
// cumulative histogram (series: host, agent, attributes, start time):
// the last point in the window minus the series' last point before it
// (looked for within Lookback); for a series with no point before the
// window, the whole last point if it started after window start −
// Lookback (it started in or just before the window: a new host, a
// restart, a new version), else the last minus the first point in the
// window (an export gap longer than Lookback).
func (c *Checker) histogramIncrease(tag string, w Window) string {
	ws := nanos(w.Start)
	return fmt.Sprintf(`
    SELECT w, metric, feature, bounds, inc FROM (
    SELECT '%[1]s' AS w, metric, feature, bounds,
           argMaxIf(counts, time, time >= %[2]s) AS last,
           multiIf(countIf(time < %[2]s) > 0,
                   arrayMap((a, b) -> toUInt64(if(a > b, a - b, 0)), last, argMaxIf(counts, time, time < %[2]s)),
                   start_time >= %[4]s, last,
                   arrayMap((a, b) -> toUInt64(if(a > b, a - b, 0)), last, argMinIf(counts, time, time >= %[2]s))) AS inc
    FROM %[3]s
    WHERE model = ? AND model_version = ? AND metric IN (?, ?) AND temporality = 'cumulative'
      AND time >= %[4]s AND time < %[5]s
    GROUP BY metric, feature, bounds, host, agent_id, cityHash64(mapSort(attributes)), start_time
    HAVING countIf(time >= %[2]s) > 0)`,
		tag, ws, c.table("metrics_histogram"), nanos(w.Start.Add(-c.Lookback)), nanos(w.End))
}

// unionAll joins the subqueries of a check, each taking args, into one
// UNION ALL and returns it with the arguments of all of them.
func unionAll(parts []string, args ...any) (string, []any) {
	all := make([]any, 0, len(parts)*len(args))
	for range parts {
		all = append(all, args...)
	}
	return strings.Join(parts, "\n    UNION ALL"), all
}

// histogramDelta renders, for one window, the sum of the delta histograms
// from the minute rollup: every minute that starts in the window.
func (c *Checker) histogramDelta(tag string, w Window) string {
	return fmt.Sprintf(`
    SELECT '%s' AS w, metric, feature, bounds, sumForEachMerge(counts) AS inc
    FROM %s
    WHERE model = ? AND model_version = ? AND metric IN (?, ?) AND time >= %s AND time < %s
    GROUP BY metric, feature, bounds`, tag, c.table("metrics_histogram_1m"), nanos(w.Start), nanos(w.End))
}

// counterDelta renders, for one window, the sum of the delta
// drover.requests points by version and status from the minute rollup.
func (c *Checker) counterDelta(tag string, w Window, byVersion bool) string {
	version := "AND model_version = ?"
	if !byVersion {
		version = ""
	}
	return fmt.Sprintf(`
    SELECT '%s' AS w, model_version, attributes['%s'] AS status, sum(value) AS inc
    FROM %s
    WHERE model = ? %s AND metric = ? AND time >= %s AND time < %s
    GROUP BY model_version, status`, tag, semconv.AttrStatus, c.table("metrics_sum_1m"), version, nanos(w.Start), nanos(w.End))
}

// counterIncrease renders, for one window, the increase of each
// drover.requests series (same rules as histogramIncrease) with its
// version and status.
func (c *Checker) counterIncrease(tag string, w Window, byVersion bool) string {
	ws := nanos(w.Start)
	version := "AND model_version = ?"
	if !byVersion {
		version = ""
	}
	return fmt.Sprintf(`
    SELECT '%[1]s' AS w, model_version, attributes['%[6]s'] AS status,
           greatest(0, argMaxIf(value, time, time >= %[2]s) -
               multiIf(countIf(time < %[2]s) > 0, argMaxIf(value, time, time < %[2]s),
                       start_time >= %[4]s, 0,
                       argMinIf(value, time, time >= %[2]s))) AS inc
    FROM %[3]s
    WHERE model = ? %[7]s AND metric = ? AND temporality = 'cumulative'
      AND time >= %[4]s AND time < %[5]s
    GROUP BY model_version, status, host, agent_id, cityHash64(mapSort(attributes)), start_time
    HAVING countIf(time >= %[2]s) > 0`,
		tag, ws, c.table("metrics_sum"), nanos(w.Start.Add(-c.Lookback)), nanos(w.End), semconv.AttrStatus, version)
}

// ServingVersions returns the versions of model that answered requests in
// [now−window, now), sorted.
func (c *Checker) ServingVersions(ctx context.Context, model string, window time.Duration, now time.Time) ([]string, error) {
	w := Window{now.Add(-window), now}
	src, args := unionAll([]string{c.counterIncrease("cur", w, false), c.counterDelta("cur", w, false)}, model, semconv.MetricRequests)
	q := fmt.Sprintf(`SELECT model_version FROM (%s)
GROUP BY model_version HAVING sum(inc) > 0 ORDER BY model_version`, src)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap("serving versions of "+model, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, wrap("serving versions of "+model, err)
		}
		out = append(out, v)
	}
	return out, wrap("serving versions of "+model, rows.Err())
}

// RecentModels returns the models with request counters in [now−window,
// now), sorted: a default for the Scheduler's Models.
func (c *Checker) RecentModels(ctx context.Context, window time.Duration, now time.Time) ([]string, error) {
	q := fmt.Sprintf(`SELECT DISTINCT model FROM %s WHERE metric = ? AND time >= %s AND time < %s AND model != '' ORDER BY model`,
		c.table("metrics_sum"), nanos(now.Add(-window)), nanos(now))
	rows, err := c.conn.Query(ctx, q, semconv.MetricRequests)
	if err != nil {
		return nil, wrap("recent models", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, wrap("recent models", err)
		}
		out = append(out, m)
	}
	return out, wrap("recent models", rows.Err())
}

type histKey struct{ w, metric, feature string }

type hist struct {
	bounds []float64
	counts []float64
	n      uint64
	mixed  bool // several bounds in one window
}

func (c *Checker) histograms(ctx context.Context, model, version string, ref, cur Window, cumulative bool) (map[histKey]*hist, error) {
	parts := []string{c.histogramDelta("ref", ref), c.histogramDelta("cur", cur)}
	if cumulative {
		parts = append(parts, c.histogramIncrease("ref", ref), c.histogramIncrease("cur", cur))
	}
	src, args := unionAll(parts, model, version, semconv.MetricDistribution, semconv.MetricRequestLatency)
	q := fmt.Sprintf(`SELECT w, metric, feature, bounds, sumForEach(inc) AS counts FROM (%s)
GROUP BY w, metric, feature, bounds`, src)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[histKey]*hist{}
	for rows.Next() {
		var k histKey
		var bounds []float64
		var counts []uint64
		if err := rows.Scan(&k.w, &k.metric, &k.feature, &bounds, &counts); err != nil {
			return nil, err
		}
		var n uint64
		f := make([]float64, len(counts))
		for i, v := range counts {
			f[i] = float64(v)
			n += v
		}
		h := &hist{bounds: bounds, counts: f, n: n}
		if prev, ok := out[k]; ok { // keep the bounds with most observations
			h.mixed = true
			if prev.n > n {
				prev.mixed = true
				continue
			}
		}
		out[k] = h
	}
	return out, rows.Err()
}

type evalKey struct{ w, metric, source string }

// evals averages the evaluation metrics of each window from the minute
// rollup metrics_eval_1m (minutes that start in the window; non-finite
// values left out), across hosts; per-class values are not compared.
func (c *Checker) evals(ctx context.Context, model, version string, ref, cur Window) (map[evalKey]float64, error) {
	one := func(tag string, w Window) string {
		return fmt.Sprintf(`
    SELECT '%s' AS w, attributes['%s'] AS m, attributes['%s'] AS src, avgMerge(value_avg) AS v
    FROM %s
    WHERE model = ? AND model_version = ? AND attributes['%s'] = '' AND time >= %s AND time < %s
    GROUP BY m, src`, tag, semconv.AttrMetric, semconv.AttrSource, c.table("metrics_eval_1m"), semconv.AttrClass,
			nanos(w.Start), nanos(w.End))
	}
	q := one("ref", ref) + "\n    UNION ALL" + one("cur", cur)
	rows, err := c.conn.Query(ctx, q, model, version, model, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[evalKey]float64{}
	for rows.Next() {
		var k evalKey
		var v float64
		if err := rows.Scan(&k.w, &k.metric, &k.source, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

type reqCounts struct{ errors, total float64 }

func (c *Checker) requests(ctx context.Context, model, version string, ref, cur Window, cumulative bool) (map[string]reqCounts, error) {
	parts := []string{c.counterDelta("ref", ref, true), c.counterDelta("cur", cur, true)}
	if cumulative {
		parts = append(parts, c.counterIncrease("ref", ref, true), c.counterIncrease("cur", cur, true))
	}
	src, args := unionAll(parts, model, version, semconv.MetricRequests)
	q := fmt.Sprintf(`SELECT w, sumIf(inc, status != 'ok'), sum(inc) FROM (%s)
GROUP BY w`, src)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]reqCounts{}
	for rows.Next() {
		var w string
		var r reqCounts
		if err := rows.Scan(&w, &r.errors, &r.total); err != nil {
			return nil, err
		}
		out[w] = r
	}
	return out, rows.Err()
}

// higherIsBetter lists evaluation metrics where a drop is a degradation;
// for every other metric an increase is (mse, mae, log_loss, …).
var higherIsBetter = map[string]bool{
	"accuracy": true, "precision": true, "recall": true, "f1": true, "auc": true, "r2": true,
}

// isCategorical reports whether bounds are 0, 1, …, n−1: the bins of a
// categorical feature (docs/metrics.md).
func isCategorical(bounds []float64) bool {
	if len(bounds) < 2 {
		return false
	}
	for i, b := range bounds {
		if b != float64(i) {
			return false
		}
	}
	return true
}

// manifestReference returns the expected counts, for n observations, of
// the distribution that manifest bins imply (see ReferenceManifest).
func manifestReference(bounds []float64, n float64) []float64 {
	ref := make([]float64, len(bounds)+1)
	if isCategorical(bounds) {
		for i := range bounds {
			ref[i] = n / float64(len(bounds))
		}
		return ref
	}
	for i := 1; i < len(bounds); i++ {
		ref[i] = n / float64(len(bounds)-1)
	}
	return ref
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
	refReady := !r.ReferenceWindow.End.After(now)

	var (
		wg         sync.WaitGroup
		hists      map[histKey]*hist
		evals      map[evalKey]float64
		reqs       map[string]reqCounts
		e1, e2, e3 error
		ref, cur   = r.ReferenceWindow, r.Window
	)
	cumulative, err := c.hasCumulative(ctx, model, version, ref, cur)
	if err != nil {
		return Result{}, wrap(op, err)
	}
	wg.Go(func() { hists, e1 = c.histograms(ctx, model, version, ref, cur, cumulative) })
	wg.Go(func() { evals, e2 = c.evals(ctx, model, version, ref, cur) })
	wg.Go(func() { reqs, e3 = c.requests(ctx, model, version, ref, cur, cumulative) })
	wg.Wait()
	if err := errors.Join(e1, e2, e3); err != nil {
		return Result{}, wrap(op, err)
	}

	c.compareFeatures(&r, p, hists, refReady)
	if refReady {
		c.signals(&r, p, hists, evals, reqs)
	}
	for _, s := range r.Signals {
		if s.Drifted {
			r.Drifted = true
			r.Reasons = append(r.Reasons, s.reason())
		}
	}
	if r.DatasetDrifted {
		var names []string
		for _, f := range r.Features {
			if f.Drifted {
				names = append(names, f.Feature)
			}
		}
		r.Drifted = true
		r.Reasons = append([]string{fmt.Sprintf("dataset drift: %d of %d features drifted (%s)",
			len(names), r.judged(), strings.Join(names, ", "))}, r.Reasons...)
	}
	if err := c.store.Insert(ctx, &store.Batch{Drift: c.rows(r, p)}, fmt.Sprintf("drift/%s/%s/%d", model, version, now.UnixNano())); err != nil {
		return r, wrap(op+": record", err)
	}
	return r, nil
}

func (r *Result) judged() int {
	n := 0
	for _, f := range r.Features {
		if f.Verdict {
			n++
		}
	}
	return n
}

func (s Signal) reason() string {
	switch s.Test {
	case store.DriftTestMetric:
		return fmt.Sprintf("%s degraded by %.4g (%.4g → %.4g, threshold %.4g)", s.Name, s.Value, s.Reference, s.Current, s.Threshold)
	case store.DriftTestErrorRate:
		return fmt.Sprintf("error rate up by %.4g (%.4g → %.4g, threshold %.4g)", s.Value, s.Reference, s.Current, s.Threshold)
	default:
		return fmt.Sprintf("p99 latency ×%.3g (%.4gs → %.4gs, threshold ×%.3g)", s.Value, s.Reference, s.Current, s.Threshold)
	}
}

func (c *Checker) compareFeatures(r *Result, p Policy, hists map[histKey]*hist, refReady bool) {
	features := map[string]bool{}
	for k := range hists {
		if k.metric == semconv.MetricDistribution && k.w == "cur" {
			features[k.feature] = true
		}
	}
	drifted := 0
	for _, name := range slices.Sorted(maps.Keys(features)) {
		cur := hists[histKey{"cur", semconv.MetricDistribution, name}]
		f := FeatureResult{Feature: name, Bounds: cur.bounds, Current: cur.counts, CurCount: cur.n, Categorical: isCategorical(cur.bounds)}
		refH := hists[histKey{"ref", semconv.MetricDistribution, name}]
		switch {
		case p.Reference == ReferenceManifest:
			f.Reference = manifestReference(cur.bounds, float64(cur.n))
			f.RefCount = cur.n
		case !refReady:
			f.NoVerdict = "reference window not complete"
		case refH != nil:
			f.Reference, f.RefCount = refH.counts, refH.n
		}
		switch {
		case f.NoVerdict != "":
		case cur.mixed || (refH != nil && refH.mixed) || (p.Reference != ReferenceManifest && refH != nil && !slices.Equal(refH.bounds, cur.bounds)):
			f.NoVerdict = "bounds differ"
		case f.CurCount < p.MinSamples || f.RefCount < p.MinSamples:
			f.NoVerdict = fmt.Sprintf("%d observations, below min_samples %d", min(f.CurCount, f.RefCount), p.MinSamples)
		case len(cur.bounds) < 2 && !f.Categorical:
			f.NoVerdict = "fewer than 2 bounds"
		}
		if f.NoVerdict == "" {
			f.Verdict = true
			f.PSI, _ = PSI(f.Reference, f.Current)
			f.JS, _ = JS(f.Reference, f.Current)
			f.KS, _ = KSBinned(f.Reference, f.Current)
			if f.Categorical {
				f.Chi2, _, f.Chi2P, _ = Chi2(f.Reference, f.Current)
			} else {
				f.Wasserstein, _ = Wasserstein(f.Bounds, f.Reference, f.Current)
			}
			f.Drifted = f.PSI >= p.PSIThreshold || f.JS >= p.JSThreshold
			if f.Drifted {
				drifted++
			}
		}
		r.Features = append(r.Features, f)
	}
	if n := r.judged(); n > 0 {
		r.DatasetVerdict = true
		r.DriftedShare = float64(drifted) / float64(n)
		r.DatasetDrifted = r.DriftedShare >= p.DatasetShare
	}
}

func (c *Checker) signals(r *Result, p Policy, hists map[histKey]*hist, evals map[evalKey]float64, reqs map[string]reqCounts) {
	var keys []evalKey
	for k := range evals {
		if k.w == "cur" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b evalKey) int { return strings.Compare(a.metric+"/"+a.source, b.metric+"/"+b.source) })
	for _, k := range keys {
		th, ok := p.MetricDegradation[k.metric]
		refV, hasRef := evals[evalKey{"ref", k.metric, k.source}]
		if !ok || !hasRef {
			continue
		}
		curV := evals[k]
		s := Signal{Test: store.DriftTestMetric, Name: k.metric + "/" + k.source, Current: curV, Reference: refV, Threshold: th}
		if higherIsBetter[k.metric] {
			s.Value = refV - curV
		} else if refV != 0 {
			s.Value = (curV - refV) / math.Abs(refV)
		} else {
			s.Value = math.Inf(1)
			if curV == 0 {
				s.Value = 0
			}
		}
		s.Drifted = s.Value > th
		r.Signals = append(r.Signals, s)
	}
	if cr := reqs["cur"]; cr.total > 0 {
		rr := reqs["ref"]
		s := Signal{Test: store.DriftTestErrorRate, Current: cr.errors / cr.total, Threshold: p.ErrorRate}
		if rr.total > 0 {
			s.Reference = rr.errors / rr.total
		}
		s.Value = s.Current - s.Reference
		s.Drifted = s.Value > p.ErrorRate
		r.Signals = append(r.Signals, s)
	}
	curL := hists[histKey{"cur", semconv.MetricRequestLatency, ""}]
	refL := hists[histKey{"ref", semconv.MetricRequestLatency, ""}]
	if curL != nil && refL != nil && curL.n > 0 && refL.n > 0 {
		s := Signal{Test: store.DriftTestP99, Threshold: p.P99Ratio,
			Current: Quantile(curL.bounds, curL.counts, 0.99), Reference: Quantile(refL.bounds, refL.counts, 0.99)}
		if s.Reference > 0 && !math.IsNaN(s.Current) {
			s.Value = s.Current / s.Reference
			s.Drifted = s.Value > p.P99Ratio
			r.Signals = append(r.Signals, s)
		}
	}
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
			if f.NoVerdict == "bounds differ" || f.NoVerdict == "reference window not complete" {
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
		out = append(out, row(s.Name, s.Test, s.Value, s.Threshold, s.Drifted, sigRef))
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
