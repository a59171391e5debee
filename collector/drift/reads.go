package drift

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// Every query drift makes: what a check reads of the metric tables
// (metrics_histogram, metrics_sum and their minute and hour rollups,
// metrics_eval_1m) and what a new owner reads back of drift_results. The
// schema is collector/store's (migrations, docs/schema.md); the listing of
// models is store.RecentModels. Times are rendered as literals (nanos), not
// parameters, so that ClickHouse prunes day partitions and uses the sorting
// keys.

func (c *Checker) table(name string) string { return "`" + c.db + "`.`" + name + "`" }

// nanos renders t as a DateTime64(9) literal.
func nanos(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Nano(%d, 'UTC')", t.UnixNano())
}

// RecentModels returns the models with request counters in [now−window,
// now), sorted: a default for the Scheduler's Models (store.RecentModels).
func (c *Checker) RecentModels(ctx context.Context, window time.Duration, now time.Time) ([]string, error) {
	models, err := store.RecentModels(ctx, c.conn, c.db, now.Add(-window), now)
	return models, wrap("list models", err)
}

// ServingVersions returns the versions of model that answered requests in
// [now−window, now), the most requests first (then by version).
func (c *Checker) ServingVersions(ctx context.Context, model string, window time.Duration, now time.Time) ([]string, error) {
	w := Window{now.Add(-window), now}
	src, args := unionAll([]string{c.counterIncrease("cur", w, false), c.counterDelta("cur", w, false)}, model, semconv.MetricRequests)
	q := fmt.Sprintf(`SELECT model_version FROM (%s)
GROUP BY model_version HAVING sum(inc) > 0 ORDER BY sum(inc) DESC, model_version`, src)
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

// VersionStart returns the time of the first distribution point of a
// version, and false if it has none. Delta points are found through the
// rollups (hour, then minute: the start of the minute of the first delta
// point), cumulative ones in metrics_histogram (the temporality index skips
// the delta granules); the earlier of the two wins. A start once found is
// kept for the life of the Checker.
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

// read reads what a check of model version compares: the histograms,
// evaluation metrics (with the joined labels behind them) and request
// counts of the reference and the current window, three queries in parallel (each with the cumulative sources only
// when hasCumulative says the windows hold such points).
func (c *Checker) read(ctx context.Context, model, version string, ref, cur Window) (checkData, error) {
	cumulative, err := c.hasCumulative(ctx, model, version, ref, cur)
	if err != nil {
		return checkData{}, err
	}
	var (
		wg         sync.WaitGroup
		refD, curD windowData
		refE, curE map[evalKey]float64
		refR, curR reqCounts
		refL, curL float64
		e1, e2, e3 error
	)
	wg.Go(func() { refD, curD, e1 = c.histograms(ctx, model, version, ref, cur, cumulative) })
	wg.Go(func() {
		if refE, curE, e2 = c.evals(ctx, model, version, ref, cur); e2 == nil && len(curE) > 0 {
			refL, curL, e2 = c.joinedLabels(ctx, model, version, ref, cur)
		}
	})
	wg.Go(func() { refR, curR, e3 = c.requests(ctx, model, version, ref, cur, cumulative) })
	var refJ, curJ labels.Metrics
	var e4 error
	wg.Go(func() { refJ, curJ, e4 = c.joined(ctx, model, version, ref, cur) })
	wg.Wait()
	refE, refL = fromJoin(refE, refL, refJ)
	curE, curL = fromJoin(curE, curL, curJ)
	refD.evals, refD.requests, refD.labels = refE, refR, refL
	curD.evals, curD.requests, curD.labels = curE, curR, curL
	return checkData{ref: refD, cur: curD}, errors.Join(e1, e2, e3, e4)
}

// joined computes the metrics of source labels of both windows from the
// fleet-wide join of the labels table with the version's samples
// (collector/labels): the samples taken in the window, and the labels
// received since its start.
func (c *Checker) joined(ctx context.Context, model, version string, ref, cur Window) (refM, curM labels.Metrics, err error) {
	st := labels.NewStore(c.conn, c.db)
	one := func(w Window) (labels.Metrics, error) {
		js, err := st.Join(ctx, model, version, w.Start, w.End)
		if err != nil {
			return labels.Metrics{}, err
		}
		return labels.Evaluate(js)[version], nil
	}
	if refM, err = one(ref); err != nil {
		return refM, curM, err
	}
	curM, err = one(cur)
	return refM, curM, err
}

// fromJoin makes the label join authoritative for a window's metrics of
// source labels: when it scored labels, its values and count replace
// those the agents reported (drover.eval with source labels and
// drover.feedback joined), which count only the labels each agent joined
// itself. Without joined labels the agents' values stay.
func fromJoin(evals map[evalKey]float64, n float64, m labels.Metrics) (map[evalKey]float64, float64) {
	if m.N == 0 {
		return evals, n
	}
	if evals == nil {
		evals = map[evalKey]float64{}
	}
	for k := range evals {
		if k.source == sourceLabels {
			delete(evals, k)
		}
	}
	for name, v := range m.Values {
		evals[evalKey{metric: name, source: sourceLabels}] = v
	}
	return evals, float64(m.N)
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

// histograms reads the drover.distribution histograms (features) and the
// drover.request.duration histogram (latency) of both windows: delta sums from
// metrics_histogram_1m, plus cumulative series increases from
// metrics_histogram when cumulative. A window whose histogram of a metric
// and feature comes with several bounds keeps the bounds with the most
// observations, marked mixed.
func (c *Checker) histograms(ctx context.Context, model, version string, ref, cur Window, cumulative bool) (refW, curW windowData, err error) {
	parts := []string{c.histogramDelta("ref", ref), c.histogramDelta("cur", cur)}
	if cumulative {
		parts = append(parts, c.histogramIncrease("ref", ref), c.histogramIncrease("cur", cur))
	}
	src, args := unionAll(parts, model, version, semconv.MetricDistribution, semconv.MetricRequestLatency)
	q := fmt.Sprintf(`SELECT w, metric, feature, bounds, sumForEach(inc) AS counts FROM (%s)
GROUP BY w, metric, feature, bounds`, src)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return windowData{}, windowData{}, err
	}
	defer rows.Close()
	type key struct{ w, metric, feature string }
	all := map[key]*hist{}
	for rows.Next() {
		var k key
		var bounds []float64
		var counts []uint64
		if err := rows.Scan(&k.w, &k.metric, &k.feature, &bounds, &counts); err != nil {
			return windowData{}, windowData{}, err
		}
		var n uint64
		f := make([]float64, len(counts))
		for i, v := range counts {
			f[i] = float64(v)
			n += v
		}
		h := &hist{bounds: bounds, counts: f, n: n}
		if prev, ok := all[k]; ok { // keep the bounds with most observations
			h.mixed = true
			if prev.n > n {
				prev.mixed = true
				continue
			}
		}
		all[k] = h
	}
	if err := rows.Err(); err != nil {
		return windowData{}, windowData{}, err
	}
	refW.features, curW.features = map[string]*hist{}, map[string]*hist{}
	for k, h := range all {
		w := &refW
		if k.w == "cur" {
			w = &curW
		}
		switch {
		case k.metric == semconv.MetricDistribution:
			w.features[k.feature] = h
		case k.metric == semconv.MetricRequestLatency && k.feature == "":
			w.latency = h
		}
	}
	return refW, curW, nil
}

// evals averages the evaluation metrics of each window from the minute
// rollup metrics_eval_1m (minutes that start in the window; non-finite
// values left out), across hosts; per-class values are not compared.
func (c *Checker) evals(ctx context.Context, model, version string, ref, cur Window) (refE, curE map[evalKey]float64, err error) {
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
		return nil, nil, err
	}
	defer rows.Close()
	refE, curE = map[evalKey]float64{}, map[evalKey]float64{}
	for rows.Next() {
		var w string
		var k evalKey
		var v float64
		if err := rows.Scan(&w, &k.metric, &k.source, &v); err != nil {
			return nil, nil, err
		}
		if w == "cur" {
			curE[k] = v
		} else {
			refE[k] = v
		}
	}
	return refE, curE, rows.Err()
}

// serverErrors is the SQL list of the statuses the error rate counts as
// errors (semconv.ServerErrorStatuses); ok and these are its denominator.
var serverErrors = func() string {
	quoted := make([]string, len(semconv.ServerErrorStatuses))
	for i, s := range semconv.ServerErrorStatuses {
		quoted[i] = "'" + s + "'"
	}
	return strings.Join(quoted, ", ")
}()

// requests counts the drover.requests of both windows that the error rate
// judges: those the server answers for (ok, and the server errors of
// semconv.ServerErrorStatuses), and of them the server errors. Client-caused
// outcomes (bad_request, not_found, cancelled, any other status) are left
// out. Delta sums come from metrics_sum_1m, plus cumulative series increases
// from metrics_sum when cumulative.
func (c *Checker) requests(ctx context.Context, model, version string, ref, cur Window, cumulative bool) (refR, curR reqCounts, err error) {
	parts := []string{c.counterDelta("ref", ref, true), c.counterDelta("cur", cur, true)}
	if cumulative {
		parts = append(parts, c.counterIncrease("ref", ref, true), c.counterIncrease("cur", cur, true))
	}
	src, args := unionAll(parts, model, version, semconv.MetricRequests)
	q := fmt.Sprintf(`SELECT w, sumIf(inc, status IN (%[2]s)), sumIf(inc, status = '%[3]s' OR status IN (%[2]s)) FROM (%[1]s)
GROUP BY w`, src, serverErrors, semconv.StatusOK)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return refR, curR, err
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		var r reqCounts
		if err := rows.Scan(&w, &r.errors, &r.total); err != nil {
			return reqCounts{}, reqCounts{}, err
		}
		if w == "cur" {
			curR = r
		} else {
			refR = r
		}
	}
	return refR, curR, rows.Err()
}

// joinedLabels counts the labels joined to a sample (drover.feedback with
// status joined) of both windows: the observations behind the evaluation
// metrics of source labels. drover.feedback is cumulative as the agent
// sends it, so the series-increase query always runs, plus delta sums from
// metrics_sum_1m for other senders.
func (c *Checker) joinedLabels(ctx context.Context, model, version string, ref, cur Window) (refN, curN float64, err error) {
	parts := []string{c.counterDelta("ref", ref, true), c.counterDelta("cur", cur, true),
		c.counterIncrease("ref", ref, true), c.counterIncrease("cur", cur, true)}
	src, args := unionAll(parts, model, version, semconv.MetricFeedback)
	q := fmt.Sprintf(`SELECT w, sumIf(inc, status = 'joined') FROM (%s)
GROUP BY w`, src)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		var n float64
		if err := rows.Scan(&w, &n); err != nil {
			return 0, 0, err
		}
		if w == "cur" {
			curN = n
		} else {
			refN = n
		}
	}
	return refN, curN, rows.Err()
}

// History reads what drift_results holds of model version in [since,
// until]: its last n "check" rows, oldest first, and its last "incident"
// row. Errors wrap ErrUnavailable when ClickHouse is down.
func (c *Checker) History(ctx context.Context, model, version string, since, until time.Time, n int) (History, error) {
	op := fmt.Sprintf("read drift history of %s v%s", model, version)
	var h History
	q := fmt.Sprintf(`SELECT time, drifted, reference FROM %s
WHERE model = ? AND model_version = ? AND feature = '' AND test = ? AND time >= %s AND time <= %s
ORDER BY time DESC LIMIT %d`, c.table(store.TableDrift), nanos(since), nanos(until), n)
	rows, err := c.conn.Query(ctx, q, model, version, TestCheck)
	if err != nil {
		return History{}, wrap(op, err)
	}
	for rows.Next() {
		var rc RecordedCheck
		var ref string
		if err := rows.Scan(&rc.Time, &rc.Drifted, &ref); err != nil {
			rows.Close()
			return History{}, wrap(op, err)
		}
		if ref != "" {
			rc.Reasons = strings.Split(ref, "; ")
		}
		rc.Time = rc.Time.UTC()
		h.Checks = append([]RecordedCheck{rc}, h.Checks...)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return History{}, wrap(op, err)
	}
	q = fmt.Sprintf(`SELECT time, window_start, reference FROM %s
WHERE model = ? AND model_version = ? AND feature = '' AND test = ? AND time >= %s AND time <= %s
ORDER BY time DESC LIMIT 1`, c.table(store.TableDrift), nanos(since), nanos(until))
	rows, err = c.conn.Query(ctx, q, model, version, TestIncident)
	if err != nil {
		return History{}, wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		inc := Incident{Model: model, Version: version}
		var ref string
		var opened time.Time
		if err := rows.Scan(&opened, &inc.Start, &ref); err != nil {
			return History{}, wrap(op, err)
		}
		if ref != "" {
			inc.Reasons = strings.Split(ref, "; ")
		}
		inc.Start = inc.Start.UTC()
		h.Last, h.Opened = &inc, opened.UTC()
	}
	if err := rows.Err(); err != nil {
		return History{}, wrap(op, err)
	}
	return h, nil
}
