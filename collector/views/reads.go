package views

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// Every query of the views but those of the registry's records, which
// collector/registry's Reader runs. The schema is collector/store's
// (migrations, docs/schema.md). Times are rendered as literals (nanoseconds) so that
// ClickHouse prunes day partitions and uses the sorting keys; model names
// and every other value that comes from a request are query parameters.
// Every query that returns rows per host, series or version has a LIMIT.

func (v *Views) table(name string) string { return "`" + v.db + "`.`" + name + "`" }

// nanos renders t as a DateTime64(9) literal.
func nanos(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Nano(%d, 'UTC')", t.UnixNano())
}

// modelFilter returns " AND model = ?" and its argument when model is set.
func modelFilter(model string) (string, []any) {
	if model == "" {
		return "", nil
	}
	return " AND model = ?", []any{model}
}

// modelExists reports whether anything is stored about model: a registry
// record, metrics, events or drift results. Each probe reads at most one
// row through the tables' sorting keys, which start with model.
func (v *Views) modelExists(ctx context.Context, model string) (bool, error) {
	ok, err := v.records.Has(ctx, model)
	if err != nil || ok {
		if err != nil {
			err = fmt.Errorf("look up model %s: %w", model, err)
		}
		return ok, err
	}
	tables := []string{store.TableSum, store.TableGauge, store.TableEvents, store.TableDrift}
	parts := make([]string, len(tables))
	args := make([]any, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("(SELECT 1 FROM %s WHERE model = ? LIMIT 1)", v.table(t))
		args[i] = model
	}
	q := "SELECT count() FROM (" + strings.Join(parts, " UNION ALL ") + ")"
	var n uint64
	if err := v.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return false, fmt.Errorf("look up model %s: %w", model, err)
	}
	return n > 0, nil
}

// vkey is a model version.
type vkey struct{ model, version string }

// reqCounts are the drover.requests of a model version over a window: all
// of them, those whose status is not ok, and the hosts that counted some.
type reqCounts struct {
	total, errors float64
	hosts         map[string]bool
}

// requestStats reads drover.requests of model (all models when "") in
// [from, to) per version. Totals: delta points from the minute rollup
// metrics_sum_1m (the minutes that start in the window), plus the increase
// of each cumulative series in the raw table (a series that started in the
// window counts from 0; the temporality index skips delta granules).
// Hosts: the raw table's host column, a host counting when it has a delta
// point or a cumulative series that grew.
func (v *Views) requestStats(ctx context.Context, model string, from, to time.Time) (map[vkey]*reqCounts, error) {
	mf, margs := modelFilter(model)
	window := fmt.Sprintf("time >= %s AND time < %s", nanos(from), nanos(to))
	q := fmt.Sprintf(`SELECT model, model_version, sum(inc) AS total, sumIf(inc, status != 'ok') AS errs FROM (
    SELECT model, model_version, attributes['%[1]s'] AS status, sum(value) AS inc
    FROM %[7]s
    WHERE metric = ? AND model != '' AND %[3]s%[4]s
    GROUP BY model, model_version, status
    UNION ALL
    SELECT model, model_version, attributes['%[1]s'] AS status,
           greatest(0, max(value) - if(start_time >= %[5]s, 0, min(value))) AS inc
    FROM %[2]s
    WHERE metric = ? AND temporality = 'cumulative' AND model != '' AND %[3]s%[4]s
    GROUP BY model, model_version, host, status, attributes_hash, start_time)
GROUP BY model, model_version
LIMIT %[6]d`, semconv.AttrStatus, v.table(store.TableSum), window, mf, nanos(from), maxRows, v.table("metrics_sum_1m"))
	args := append(append([]any{semconv.MetricRequests}, margs...), append([]any{semconv.MetricRequests}, margs...)...)
	out := map[vkey]*reqCounts{}
	if err := v.each(ctx, "read requests", q, args, func(scan func(...any) error) error {
		var k vkey
		c := &reqCounts{hosts: map[string]bool{}}
		if err := scan(&k.model, &k.version, &c.total, &c.errors); err != nil {
			return err
		}
		out[k] = c
		return nil
	}); err != nil {
		return nil, err
	}
	q = fmt.Sprintf(`SELECT model, model_version, host FROM %[1]s
WHERE metric = ? AND model != '' AND %[2]s%[3]s
GROUP BY model, model_version, host
HAVING countIf(temporality = 'delta' AND value > 0) > 0
    OR maxIf(value, temporality = 'cumulative') > minIf(value, temporality = 'cumulative')
    OR (minIf(start_time, temporality = 'cumulative') >= %[4]s AND maxIf(value, temporality = 'cumulative') > 0)
ORDER BY model, model_version, host
LIMIT %[5]d`, v.table(store.TableSum), window, mf, nanos(from), maxRows)
	err := v.each(ctx, "read serving hosts", q, append([]any{semconv.MetricRequests}, margs...), func(scan func(...any) error) error {
		var k vkey
		var host string
		if err := scan(&k.model, &k.version, &host); err != nil {
			return err
		}
		c := out[k]
		if c == nil {
			c = &reqCounts{hosts: map[string]bool{}}
			out[k] = c
		}
		c.hosts[host] = true
		return nil
	})
	return out, err
}

// each runs q and calls row for every row; errors say what was being done
// (op) and wrap the driver's, so store.IsRetryable classifies them.
func (v *Views) each(ctx context.Context, op, q string, args []any, row func(scan func(...any) error) error) error {
	rows, err := v.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// hostVersion is a host that reports a model now, with the version its
// last swap put in place ("" when none is known).
type hostVersion struct{ model, host, version string }

// reportingHosts returns the hosts that reported model (all models when
// "") in [from, to) through the drover.model.loaded_versions gauge, which
// agents send at every export whether or not the model has traffic, each
// with the version of its last version.swapped or version.rolled_back
// event within lookback before to.
func (v *Views) reportingHosts(ctx context.Context, model string, from, to time.Time, lookback time.Duration) ([]hostVersion, error) {
	mf, margs := modelFilter(model)
	q := fmt.Sprintf(`SELECT g.model, g.host, e.version FROM (
    SELECT model, host FROM %[1]s
    WHERE metric = ? AND model != '' AND time >= %[2]s AND time < %[3]s%[4]s
    GROUP BY model, host HAVING max(value) > 0) AS g
LEFT JOIN (
    SELECT model, host, argMax(model_version, time) AS version FROM %[5]s
    WHERE event IN (?, ?) AND model != '' AND time >= %[6]s AND time < %[3]s%[4]s
    GROUP BY model, host) AS e
ON g.model = e.model AND g.host = e.host
ORDER BY g.model, g.host
LIMIT %[7]d`, v.table(store.TableGauge), nanos(from), nanos(to), mf, v.table(store.TableEvents), nanos(to.Add(-lookback)), maxRows)
	args := append(append([]any{semconv.MetricLoadedVersions}, margs...), append([]any{semconv.EventSwapped, semconv.EventRolledBack}, margs...)...)
	var out []hostVersion
	err := v.each(ctx, "read reporting hosts", q, args, func(scan func(...any) error) error {
		var h hostVersion
		if err := scan(&h.model, &h.host, &h.version); err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// seenModels returns the models with drover.requests, the loaded-versions
// gauge or version events in [from, to), each with the highest version
// seen there, sorted by name.
func (v *Views) seenModels(ctx context.Context, from, to time.Time) (map[string]uint64, error) {
	window := fmt.Sprintf("model != '' AND time >= %s AND time < %s", nanos(from), nanos(to))
	q := fmt.Sprintf(`SELECT model, max(toUInt64OrZero(model_version)) FROM (
    SELECT model, model_version FROM %[1]s WHERE metric = ? AND %[4]s GROUP BY model, model_version
    UNION ALL
    SELECT model, model_version FROM %[2]s WHERE metric = ? AND %[4]s GROUP BY model, model_version
    UNION ALL
    SELECT model, model_version FROM %[3]s WHERE startsWith(event, 'version.') AND %[4]s GROUP BY model, model_version)
GROUP BY model ORDER BY model LIMIT %[5]d`,
		v.table(store.TableSum), v.table(store.TableGauge), v.table(store.TableEvents), window, maxList)
	out := map[string]uint64{}
	err := v.each(ctx, "list models", q, []any{semconv.MetricRequests, semconv.MetricLoadedVersions}, func(scan func(...any) error) error {
		var m string
		var max uint64
		if err := scan(&m, &max); err != nil {
			return err
		}
		out[m] = max
		return nil
	})
	return out, err
}

// latencyHist is the drover.request.duration histogram of a version over a
// window: delta points from the minute rollup plus cumulative series'
// increases; of several bucket layouts, the one with most observations.
type latencyHist struct {
	bounds []float64
	counts []uint64
	n      uint64
}

// latency reads the latency histograms of model's versions in [from, to).
func (v *Views) latency(ctx context.Context, model string, from, to time.Time) (map[string]latencyHist, error) {
	q := fmt.Sprintf(`SELECT model_version, bounds, sumForEach(inc) FROM (
    SELECT model_version, bounds, sumForEachMerge(counts) AS inc FROM %[1]s
    WHERE model = ? AND metric = ? AND feature = '' AND time >= %[3]s AND time < %[4]s
    GROUP BY model_version, bounds
    UNION ALL
    SELECT model_version, bounds,
           if(start_time >= %[3]s, argMax(counts, time),
              arrayMap((a, b) -> toUInt64(if(a > b, a - b, 0)), argMax(counts, time), argMin(counts, time))) AS inc
    FROM %[2]s
    WHERE model = ? AND metric = ? AND feature = '' AND temporality = 'cumulative' AND time >= %[3]s AND time < %[4]s
    GROUP BY model_version, bounds, host, agent_id, cityHash64(mapSort(attributes)), start_time)
GROUP BY model_version, bounds
LIMIT %[5]d`, v.table("metrics_histogram_1m"), v.table(store.TableHistogram), nanos(from), nanos(to), maxRows)
	out := map[string]latencyHist{}
	err := v.each(ctx, "read latency of "+model, q, []any{model, semconv.MetricRequestLatency, model, semconv.MetricRequestLatency}, func(scan func(...any) error) error {
		var ver string
		var h latencyHist
		if err := scan(&ver, &h.bounds, &h.counts); err != nil {
			return err
		}
		for _, c := range h.counts {
			h.n += c
		}
		if prev, ok := out[ver]; !ok || h.n > prev.n {
			out[ver] = h
		}
		return nil
	})
	return out, err
}

// evalKey is an evaluation metric from a source (labels, golden, shadow).
type evalKey struct{ metric, source string }

// evals reads the latest minute's value (averaged across hosts, from
// metrics_eval_1m, per-class values left out) of each evaluation metric
// of model's versions in [from, to).
func (v *Views) evals(ctx context.Context, model string, from, to time.Time) (map[string]map[evalKey]float64, error) {
	q := fmt.Sprintf(`SELECT model_version, m, src, argMax(val, t) FROM (
    SELECT time AS t, model_version, attributes['%[1]s'] AS m, attributes['%[2]s'] AS src, avgMerge(value_avg) AS val
    FROM %[3]s
    WHERE model = ? AND attributes['%[4]s'] = '' AND time >= %[5]s AND time < %[6]s
    GROUP BY t, model_version, m, src)
GROUP BY model_version, m, src
LIMIT %[7]d`, semconv.AttrMetric, semconv.AttrSource, v.table("metrics_eval_1m"), semconv.AttrClass, nanos(from), nanos(to), maxRows)
	out := map[string]map[evalKey]float64{}
	err := v.each(ctx, "read evaluation metrics of "+model, q, []any{model}, func(scan func(...any) error) error {
		var ver string
		var k evalKey
		var val float64
		if err := scan(&ver, &k.metric, &k.source, &val); err != nil {
			return err
		}
		if out[ver] == nil {
			out[ver] = map[evalKey]float64{}
		}
		out[ver][k] = val
		return nil
	})
	if err != nil {
		return out, err
	}
	return out, v.joinedLabels(ctx, model, from, to, out)
}

// joinedLabels makes the fleet-wide label join (collector/labels: the
// labels table joined with the samples of [from, to)) authoritative for
// the metrics of source labels: for each version with joined labels, its
// accuracy, f1, mse and mae replace what the agents reported, which count
// only the labels each agent joined itself.
func (v *Views) joinedLabels(ctx context.Context, model string, from, to time.Time, out map[string]map[evalKey]float64) error {
	js, err := labels.NewStore(v.conn, v.db).Join(ctx, model, "", from, to)
	if err != nil {
		return err
	}
	for ver, m := range labels.Evaluate(js) {
		if m.N == 0 {
			continue
		}
		e := out[ver]
		if e == nil {
			e = map[evalKey]float64{}
			out[ver] = e
		}
		for k := range e {
			if k.source == "labels" {
				delete(e, k)
			}
		}
		for name, val := range m.Values {
			e[evalKey{metric: name, source: "labels"}] = val
		}
	}
	return nil
}

// scoreTests are the drift tests whose value over threshold says how far a
// check is from drifting (ks, wasserstein are recorded only; chi2's value
// is a p-value, where lower is worse).
var scoreTests = []string{store.DriftTestPSI, store.DriftTestJS, store.DriftTestMetric, store.DriftTestErrorRate, store.DriftTestP99}

// driftScores returns, per version of model, the highest value/threshold
// of the scoreTests checked in [from, to).
func (v *Views) driftScores(ctx context.Context, model string, from, to time.Time) (map[string]float64, error) {
	q := fmt.Sprintf(`SELECT model_version, max(value / threshold) FROM %s
WHERE model = ? AND test IN (?) AND threshold > 0 AND isFinite(value) AND time >= %s AND time < %s
GROUP BY model_version LIMIT %d`, v.table(store.TableDrift), nanos(from), nanos(to), maxList)
	out := map[string]float64{}
	err := v.each(ctx, "read drift scores of "+model, q, []any{model, scoreTests}, func(scan func(...any) error) error {
		var ver string
		var s float64
		if err := scan(&ver, &s); err != nil {
			return err
		}
		out[ver] = s
		return nil
	})
	return out, err
}

// versionEvent is the last version.* event of a version in a window.
type versionEvent struct {
	event string
	time  time.Time
}

// versionEvents returns, per version of model, its last version.* event
// in [from, to).
func (v *Views) versionEvents(ctx context.Context, model string, from, to time.Time) (map[string]versionEvent, error) {
	q := fmt.Sprintf(`SELECT model_version, argMax(event, time), max(time) FROM %s
WHERE model = ? AND startsWith(event, 'version.') AND time >= %s AND time < %s
GROUP BY model_version LIMIT %d`, v.table(store.TableEvents), nanos(from), nanos(to), maxList)
	out := map[string]versionEvent{}
	err := v.each(ctx, "read version events of "+model, q, []any{model}, func(scan func(...any) error) error {
		var ver string
		var e versionEvent
		if err := scan(&ver, &e.event, &e.time); err != nil {
			return err
		}
		out[ver] = e
		return nil
	})
	return out, err
}

// driftChecks returns the latest row of each (version, feature, test) of
// model checked in [from, to), for the tests the drift view shows.
func (v *Views) driftChecks(ctx context.Context, model string, from, to time.Time) ([]store.DriftRow, error) {
	q := fmt.Sprintf(`SELECT model_version, feature, test, max(time), argMax(value, time), argMax(threshold, time),
       argMax(drifted, time), argMax(window_start, time), argMax(window_end, time), argMax(reference, time), argMax(node, time)
FROM %s
WHERE model = ? AND test IN (?) AND isFinite(value) AND isFinite(threshold) AND time >= %s AND time < %s
GROUP BY model_version, feature, test
LIMIT %d`, v.table(store.TableDrift), nanos(from), nanos(to), maxRows)
	var out []store.DriftRow
	err := v.each(ctx, "read drift checks of "+model, q, []any{model, checkTests}, func(scan func(...any) error) error {
		r := store.DriftRow{Model: model}
		var drifted uint8
		if err := scan(&r.ModelVersion, &r.Feature, &r.Test, &r.Time, &r.Value, &r.Threshold, &drifted,
			&r.WindowStart, &r.WindowEnd, &r.Reference, &r.Node); err != nil {
			return err
		}
		r.Drifted = drifted != 0
		out = append(out, r)
		return nil
	})
	return out, err
}

// checkTests are the tests of the drift view, in the order it lists them.
var checkTests = []string{store.DriftTestPSI, store.DriftTestJS, store.DriftTestKS, store.DriftTestWasserstein,
	store.DriftTestChi2, store.DriftTestMetric, store.DriftTestErrorRate, store.DriftTestP99}

// Tests of drift_results written by collector/drift besides the
// per-feature ones (drift.TestCheck, drift.TestIncident).
const (
	testCheck    = "check"
	testIncident = "incident"
)

// incidentRow is an incident as drift_results and jobs hold it.
type incidentRow struct {
	model, version string
	start, opened  time.Time
	reasons        string
	node           string
	// resolved is the first check of the version after the opening that
	// did not drift (zero while there is none).
	resolved time.Time
	jobID    string
}

// incidentRows returns the newest limit incidents of model (all models
// when ""), newest first, opened in [from, to): each incident row of
// drift_results with the job scheduled for it and the first check of its
// version after the opening that did not drift.
func (v *Views) incidentRows(ctx context.Context, model string, from, to time.Time, limit int) ([]incidentRow, error) {
	mf, margs := modelFilter(model)
	newest := fmt.Sprintf(`SELECT model, model_version, window_start, time, reference, node FROM %s
    WHERE test = ? AND time >= %s AND time < %s%s
    ORDER BY time DESC LIMIT %d`, v.table(store.TableDrift), nanos(from), nanos(to), mf, limit)
	q := fmt.Sprintf(`SELECT i.model, i.model_version, i.window_start, i.time, i.reference, i.node, j.id
FROM (%s) AS i
LEFT JOIN (
    SELECT model, model_version, incident_start, argMax(id, row_version) AS id FROM %s
    WHERE created >= %s%s
    GROUP BY model, model_version, incident_start) AS j
ON i.model = j.model AND i.model_version = j.model_version AND i.window_start = j.incident_start
ORDER BY i.time DESC, i.model, i.model_version`,
		newest, v.table(store.TableJobs), nanos(from.Add(-24*time.Hour)), mf)
	args := append(append([]any{testIncident}, margs...), margs...)
	var out []incidentRow
	type key struct {
		model, version string
		opened         int64
	}
	at := map[key]int{}
	if err := v.each(ctx, "read incidents", q, args, func(scan func(...any) error) error {
		var r incidentRow
		if err := scan(&r.model, &r.version, &r.start, &r.opened, &r.reasons, &r.node, &r.jobID); err != nil {
			return err
		}
		at[key{r.model, r.version, r.opened.UnixNano()}] = len(out)
		out = append(out, r)
		return nil
	}); err != nil || len(out) == 0 {
		return out, err
	}
	// The incidents are the join's right (build) side, so memory holds
	// at most limit of them while the clean checks stream past.
	q = fmt.Sprintf(`SELECT i.model, i.model_version, i.time, min(c.time)
FROM (
    SELECT model, model_version, time FROM %s
    WHERE test = ? AND drifted = 0 AND time >= %s%s) AS c
INNER JOIN (%s) AS i
ON c.model = i.model AND c.model_version = i.model_version
WHERE c.time > i.time
GROUP BY i.model, i.model_version, i.time`, v.table(store.TableDrift), nanos(from), mf, newest)
	args = append(append(append([]any{testCheck}, margs...), testIncident), margs...)
	err := v.each(ctx, "read incident ends", q, args, func(scan func(...any) error) error {
		var k key
		var opened, end time.Time
		if err := scan(&k.model, &k.version, &opened, &end); err != nil {
			return err
		}
		k.opened = opened.UnixNano()
		if i, ok := at[k]; ok {
			out[i].resolved = end
		}
		return nil
	})
	return out, err
}

// eventRow is a version.* event of the events table.
type eventRow struct {
	time                 time.Time
	event, host, version string
	previous, reason     string
}

// historyEvents returns model's newest limit version events (loaded,
// rejected, swapped, rolled back) in [from, to), newest first.
func (v *Views) historyEvents(ctx context.Context, model string, from, to time.Time, limit int) ([]eventRow, error) {
	q := fmt.Sprintf(`SELECT time, event, host, model_version, attributes['%s'], attributes['%s'] FROM %s
WHERE model = ? AND event IN (?) AND time >= %s AND time < %s
ORDER BY time DESC LIMIT %d`, semconv.AttrPrevious, semconv.AttrReason, v.table(store.TableEvents), nanos(from), nanos(to), limit)
	kinds := []string{semconv.EventLoaded, semconv.EventRejected, semconv.EventSwapped, semconv.EventRolledBack}
	var out []eventRow
	err := v.each(ctx, "read events of "+model, q, []any{model, kinds}, func(scan func(...any) error) error {
		var e eventRow
		if err := scan(&e.time, &e.event, &e.host, &e.version, &e.previous, &e.reason); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// historyJobs returns the latest row of model's newest limit jobs created
// in [from, to).
func (v *Views) historyJobs(ctx context.Context, model string, from, to time.Time, limit int) ([]store.JobRow, error) {
	q := fmt.Sprintf(`SELECT id, model_version, state, lease_owner, created, finished, result_version, error FROM %s FINAL
WHERE model = ? AND created >= %s AND created < %s
ORDER BY created DESC LIMIT %d`, v.table(store.TableJobs), nanos(from), nanos(to), limit)
	var out []store.JobRow
	err := v.each(ctx, "read jobs of "+model, q, []any{model}, func(scan func(...any) error) error {
		j := store.JobRow{Model: model}
		if err := scan(&j.ID, &j.ModelVersion, &j.State, &j.LeaseOwner, &j.Created, &j.Finished, &j.ResultVersion, &j.Error); err != nil {
			return err
		}
		out = append(out, j)
		return nil
	})
	return out, err
}
