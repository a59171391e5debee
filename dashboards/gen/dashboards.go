package main

//lint:file-ignore SA1019 the v1 dashboard schema (dashboard.DashboardBuilder) is the one Grafana's file provisioning loads without the v2 feature flag; the v2 builder is not adopted yet

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The dashboards read the tables of docs/schema.md. Time filters and
// buckets use the data source's macros ($__timeFilter, $__timeInterval,
// $__fromTime, $__interval_s); dashboards with a model variable filter on
// '${model}'. A time bucket of a column named time is aliased t, never
// time: ClickHouse lets WHERE see SELECT's aliases, and the range filter
// would then compare the bucket instead of the row's time. Every query is run against the real engine by the tests in
// dashboards/ with the macros expanded as the plugin does.

// newDashboard starts a dashboard with Drover's common settings.
func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"drover"}).
		Editable().
		Time("now-6h", "now").
		Refresh("30s").
		Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
}

// modelVariable is the $model variable: the models of the registry.
func modelVariable() *dashboard.QueryVariableBuilder {
	q := "SELECT DISTINCT model FROM registry_versions FINAL WHERE state = 'active' ORDER BY model"
	return dashboard.NewQueryVariableBuilder("model").
		Label("Model").
		Datasource(*datasource()).
		Query(dashboard.StringOrMap{String: &q}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

func timeSeries(title, description, unit, sql string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(*datasource()).
		WithTarget(SQL(sql).TimeSeries()).
		Unit(unit).
		Height(8).Span(12).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever)
}

func tablePanel(title, description, sql string, span uint32) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(*datasource()).
		WithTarget(SQL(sql)).
		Height(8).Span(span)
}

func statPanel(title, description, unit, sql string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(*datasource()).
		WithTarget(SQL(sql)).
		Unit(unit).
		Height(4).Span(6).
		GraphMode(common.BigValueGraphModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

// requests is a subquery of the requests answered per minute (t), model,
// model_version and status (drover.status), over the dashboard's range,
// from both kinds of senders: delta counters (drover-agent's default) from
// the minute rollup, and cumulative ones (temporality: cumulative, other
// OTLP senders) as each series' increase point to point (a series that
// starts inside the range counts from 0). filter is an extra condition on
// the raw and rollup rows ("1" for none).
func requests(filter string) string {
	return sqlText(`
SELECT toDateTime(toStartOfMinute(time)) AS t, model, model_version, status, sum(inc) AS inc
FROM (
    SELECT time, model, model_version, attributes['drover.status'] AS status,
           if(row_number() OVER w = 1, if(start_time >= $__fromTime, value, 0), value - lagInFrame(value) OVER w) AS inc
    FROM metrics_sum
    WHERE metric = 'drover.requests' AND temporality = 'cumulative' AND $__timeFilter(time) AND FILTER
    WINDOW w AS (PARTITION BY model, model_version, host, attributes_hash, start_time ORDER BY time
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))
GROUP BY t, model, model_version, status
UNION ALL
SELECT time AS t, model, model_version, attributes['drover.status'] AS status, sum(value) AS inc
FROM metrics_sum_1m
WHERE metric = 'drover.requests' AND $__timeFilter(time) AND FILTER
GROUP BY t, model, model_version, status`, "FILTER", filter)
}

// p99 computes the 99th percentile of the delta latency histograms
// (drover-agent's default) summed over the rows of each group, as
// docs/schema.md explains: the bucket holding the rank, interpolated
// linearly; a rank in the +Inf bucket is reported as the last bound.
const p99With = `WITH
    sumForEachMerge(counts)              AS c,
    arrayCumSum(c)                       AS cum,
    cum[-1] * 0.99                       AS rank,
    arrayFirstIndex(x -> x >= rank, cum) AS i,
    if(i = 1, 0, bounds[i - 1])          AS lower,
    if(i = 1, 0, cum[i - 1])             AS below`

const p99Expr = `if(i > length(bounds), bounds[-1], lower + (bounds[i] - lower) * (rank - below) / c[i])`

// driftTests are the per-feature (and per-signal) tests of drift_results.
const driftTests = `('psi', 'js', 'ks', 'wasserstein', 'chi2', 'metric', 'error_rate', 'p99')`

// sqlText trims a query and replaces each old with its new (pairs).
func sqlText(q string, oldNew ...string) string {
	return strings.TrimSpace(strings.NewReplacer(oldNew...).Replace(q))
}

func fleet() *dashboard.DashboardBuilder {
	all := requests("1")
	return newDashboard("drover-fleet", "Drover fleet",
		"Every agent, model and version: what is desired and what is serving, requests and errors, version changes.").
		WithPanel(statPanel("Agents reporting", "Agents whose last inventory (fleet agents table) is in the range.", "none",
			`SELECT count() AS agents FROM agents FINAL WHERE last_seen >= $__fromTime`)).
		WithPanel(statPanel("Models", "Models with an active version in the registry.", "none",
			`SELECT uniqExact(model) AS models FROM registry_versions FINAL WHERE state = 'active'`)).
		WithPanel(statPanel("Requests", "Inference requests answered in the range, every model.", "short",
			sqlText(`SELECT sum(inc) AS requests FROM (REQ)`, "REQ", all))).
		WithPanel(statPanel("Error share", "Share of requests answered with a status other than ok.", "percentunit",
			sqlText(`SELECT if(sum(inc) > 0, sumIf(inc, status != 'ok') / sum(inc), 0) AS error_share FROM (REQ)`, "REQ", all))).
		WithPanel(tablePanel("Versions desired and serving",
			"Each model's desired state (latest revision) and, per version, the agents that report serving it.",
			sqlText(`
SELECT d.model AS model, d.serving AS desired, d.canary AS canary, d.canary_share AS canary_share,
       d.last_revision AS revision, a.version AS serving, a.agents AS agents
FROM (SELECT model, argMax(serving, revision) AS serving, argMax(canary_version, revision) AS canary,
             argMax(canary_share, revision) AS canary_share, max(revision) AS last_revision
      FROM desired_state GROUP BY model) AS d
LEFT JOIN (SELECT model, version, count() AS agents
           FROM agents FINAL ARRAY JOIN mapKeys(serving) AS model, mapValues(serving) AS version
           WHERE last_seen >= $__fromTime
           GROUP BY model, version) AS a ON a.model = d.model
ORDER BY model, serving`), 12)).
		WithPanel(tablePanel("Agents", "Each agent's last inventory: host, build, what it serves, when it last reported.",
			`SELECT agent, host, build, toString(serving) AS serving, collector, last_seen FROM agents FINAL WHERE last_seen >= $__fromTime ORDER BY agent`, 12)).
		WithPanel(timeSeries("Requests per second by model", "", "reqps",
			sqlText(`SELECT $__timeInterval(t) AS time, model, sum(inc) / greatest($__interval_s, 60) AS rps FROM (REQ) GROUP BY time, model ORDER BY time`,
				"REQ", all))).
		WithPanel(timeSeries("Error share by model", "Share of requests answered with a status other than ok.", "percentunit",
			sqlText(`SELECT $__timeInterval(t) AS time, model, sumIf(inc, status != 'ok') / sum(inc) AS errors FROM (REQ) GROUP BY time, model HAVING sum(inc) > 0 ORDER BY time`,
				"REQ", all))).
		WithPanel(tablePanel("Version changes", "Versions loaded, swapped, rejected and rolled back on each host (events).",
			sqlText(`
SELECT time, host, model, model_version, event, attributes['drover.model.previous_version'] AS previous,
       attributes['drover.reason'] AS reason
FROM events
WHERE $__timeFilter(time) AND event != ''
ORDER BY time DESC
LIMIT 200`), 24))
}

func model() *dashboard.DashboardBuilder {
	req := requests("model = '${model}'")
	return newDashboard("drover-model", "Drover model",
		"One model ($model): its versions side by side, live metrics, latency, requests and version changes.").
		WithVariable(modelVariable()).
		WithPanel(tablePanel("Versions side by side",
			"Each active version of the registry with what it did in the range: requests, error share, p99 latency (delta histograms) and the live accuracy (labels or golden sets).",
			sqlText(`
SELECT v.version AS version, v.source AS source, v.created AS published,
       r.requests AS requests, r.error_share AS error_share, l.p99 AS p99_seconds, e.accuracy AS accuracy
FROM (SELECT toString(version) AS version, source, created
      FROM registry_versions FINAL WHERE model = '${model}' AND state = 'active') AS v
LEFT JOIN (SELECT model_version, sum(inc) AS requests, if(sum(inc) > 0, sumIf(inc, status != 'ok') / sum(inc), 0) AS error_share
           FROM (REQ) GROUP BY model_version) AS r ON r.model_version = v.version
LEFT JOIN (P99WITH
           SELECT model_version, P99 AS p99
           FROM metrics_histogram_1m
           WHERE metric = 'drover.request.duration' AND model = '${model}' AND $__timeFilter(time)
           GROUP BY model_version, bounds) AS l ON l.model_version = v.version
LEFT JOIN (SELECT model_version, avgMerge(value_avg) AS accuracy
           FROM metrics_eval_1m
           WHERE model = '${model}' AND attributes['drover.eval.metric'] = 'accuracy'
             AND attributes['drover.eval.class'] = '' AND $__timeFilter(time)
           GROUP BY model_version) AS e ON e.model_version = v.version
ORDER BY toUInt64(version)`, "REQ", req, "P99WITH", p99With, "P99", p99Expr), 24)).
		WithPanel(timeSeries("Live metrics", "Evaluation metrics per version, metric and source (labels, golden), per-class values left out.", "none",
			sqlText(`
SELECT $__timeInterval(time) AS t,
       concat('v', model_version, ' ', attributes['drover.eval.metric'], ' (', attributes['drover.eval.source'], ')') AS series,
       avgMerge(value_avg) AS value
FROM metrics_eval_1m
WHERE model = '${model}' AND attributes['drover.eval.class'] = '' AND $__timeFilter(time)
GROUP BY t, series
ORDER BY t`))).
		WithPanel(timeSeries("p99 latency by version", "From the delta latency histograms (drover-agent's default).", "s",
			sqlText(`
P99WITH
SELECT $__timeInterval(time) AS t, concat('v', model_version) AS version, P99 AS p99
FROM metrics_histogram_1m
WHERE metric = 'drover.request.duration' AND model = '${model}' AND $__timeFilter(time)
GROUP BY t, model_version, bounds
ORDER BY t`, "P99WITH", p99With, "P99", p99Expr))).
		WithPanel(timeSeries("Requests per second by version", "", "reqps",
			sqlText(`SELECT $__timeInterval(t) AS time, concat('v', model_version) AS version, sum(inc) / greatest($__interval_s, 60) AS rps FROM (REQ) GROUP BY time, version ORDER BY time`,
				"REQ", req))).
		WithPanel(timeSeries("Errors per second by status", "Requests answered with a status other than ok.", "reqps",
			sqlText(`SELECT $__timeInterval(t) AS time, status, sum(inc) / greatest($__interval_s, 60) AS rps FROM (REQ) WHERE status != 'ok' GROUP BY time, status ORDER BY time`,
				"REQ", req))).
		WithPanel(timeSeries("Requests in flight", "Requests in progress, summed over hosts (each host's last value in the interval).", "short",
			sqlText(`
SELECT t AS time, sum(v) AS in_flight
FROM (SELECT $__timeInterval(time) AS t, host, argMax(value, metrics_sum.time) AS v
      FROM metrics_sum
      WHERE metric = 'drover.requests.in_flight' AND model = '${model}' AND $__timeFilter(time)
      GROUP BY t, host)
GROUP BY time
ORDER BY time`))).
		WithPanel(tablePanel("Version changes", "Versions loaded, swapped, rejected and rolled back on each host (events).",
			sqlText(`
SELECT time, host, model_version, event, attributes['drover.model.previous_version'] AS previous,
       attributes['drover.reason'] AS reason
FROM events
WHERE model = '${model}' AND $__timeFilter(time) AND event != ''
ORDER BY time DESC
LIMIT 200`), 24))
}

func drift() *dashboard.DashboardBuilder {
	return newDashboard("drover-drift", "Drover drift",
		"Drift checks of one model ($model): the score of each feature and signal against its threshold, and the incidents they opened.").
		WithVariable(modelVariable()).
		WithPanel(statPanel("Incidents", "Incidents opened in the range.", "none",
			`SELECT count() AS incidents FROM drift_results WHERE model = '${model}' AND test = 'incident' AND $__timeFilter(time)`)).
		WithPanel(statPanel("Drifted checks", "Checks that counted as drifted for the incident detector.", "none",
			`SELECT countIf(drifted = 1) AS drifted FROM drift_results WHERE model = '${model}' AND test = 'check' AND $__timeFilter(time)`)).
		WithPanel(statPanel("Drifted features (latest check)", "Share of features with a verdict that drifted, in the latest check.", "percentunit",
			`SELECT argMax(value, time) AS share FROM drift_results WHERE model = '${model}' AND test = 'dataset' AND $__timeFilter(time)`)).
		WithPanel(statPanel("Highest score over threshold", "The highest value / threshold of a feature test in the range (above 1: drifted).", "none",
			`SELECT max(value / threshold) AS ratio FROM drift_results WHERE model = '${model}' AND test IN `+driftTests+` AND threshold > 0 AND isFinite(value) AND $__timeFilter(time)`)).
		WithPanel(timeSeries("Score per feature and test", "Each check's value; compare with the thresholds in the table.", "none",
			sqlText(`
SELECT $__timeInterval(time) AS t, concat('v', model_version, ' ', feature, ' ', test) AS series, max(value) AS score
FROM drift_results
WHERE model = '${model}' AND test IN TESTS AND isFinite(value) AND $__timeFilter(time)
GROUP BY t, series
ORDER BY t`, "TESTS", driftTests))).
		WithPanel(tablePanel("Latest score per feature and test", "The latest check of each feature and test, with its threshold.",
			sqlText(`
SELECT model_version, feature, test, argMax(value, time) AS value, argMax(threshold, time) AS threshold,
       argMax(drifted, time) AS drifted, max(time) AS checked
FROM drift_results
WHERE model = '${model}' AND test IN TESTS AND $__timeFilter(time)
GROUP BY model_version, feature, test
ORDER BY model_version, feature, test`, "TESTS", driftTests), 12)).
		WithPanel(tablePanel("Incidents and jobs", "Incidents opened in the range, their reasons and the re-optimization job scheduled for each.",
			sqlText(`
SELECT i.time AS opened, i.model_version AS version, i.window_start AS incident_start, i.reference AS reasons,
       i.node AS node, j.id AS job, j.state AS job_state
FROM (SELECT time, model, model_version, window_start, reference, node
      FROM drift_results
      WHERE model = '${model}' AND test = 'incident' AND $__timeFilter(time)) AS i
LEFT JOIN (SELECT model, model_version, incident_start, argMax(id, row_version) AS id, argMax(state, row_version) AS state
           FROM jobs WHERE model = '${model}'
           GROUP BY model, model_version, incident_start) AS j
ON i.model = j.model AND i.model_version = j.model_version AND i.window_start = j.incident_start
ORDER BY opened DESC
LIMIT 100`), 24))
}

func jobs() *dashboard.DashboardBuilder {
	return newDashboard("drover-jobs", "Drover jobs and optimizations",
		"Re-optimization jobs, the optimizer's reports (held-out score of the serving version and of the candidate) and the lineage of every version.").
		WithPanel(statPanel("Jobs created", "Jobs created in the range.", "none",
			`SELECT count() AS jobs FROM jobs FINAL WHERE $__timeFilter(created)`)).
		WithPanel(statPanel("Versions published by jobs", "Jobs of the range whose report says improved and that published a version.", "none",
			`SELECT countIf(JSONExtractBool(report, 'improved') AND result_version > 0) AS published FROM jobs FINAL WHERE $__timeFilter(created)`)).
		WithPanel(statPanel("Mean held-out gain", "Mean of new − old held-out score over the reports of the range (in each report's metric).", "none",
			`SELECT avg(JSONExtractFloat(report, 'holdout', 'new') - JSONExtractFloat(report, 'holdout', 'old')) AS gain FROM jobs FINAL WHERE report != '' AND $__timeFilter(created)`)).
		WithPanel(statPanel("Failed jobs", "Jobs of the range that failed or timed out.", "none",
			`SELECT count() AS failed FROM jobs FINAL WHERE state IN ('failed', 'timed_out') AND $__timeFilter(created)`)).
		WithPanel(tablePanel("Jobs", "Every job of the range, latest state.",
			sqlText(`
SELECT id, model, model_version, state, attempt, lease_owner, created, updated,
       dateDiff('second', started, finished) AS seconds, result_version, error
FROM jobs FINAL
WHERE $__timeFilter(created)
ORDER BY created DESC
LIMIT 200`), 24)).
		WithPanel(tablePanel("Optimizer reports", "The built-in optimizer's report of each job: the chosen family, the held-out scores and whether it published.",
			sqlText(`
SELECT id, model, model_version AS baseline, JSONExtractString(report, 'family') AS family,
       JSONExtractString(report, 'metric') AS metric,
       JSONExtractFloat(report, 'holdout', 'old') AS old_score, JSONExtractFloat(report, 'holdout', 'new') AS new_score,
       JSONExtractBool(report, 'improved') AS improved, JSONExtractInt(report, 'rows') AS rows,
       JSONExtractFloat(report, 'seconds') AS search_seconds, result_version AS published,
       JSONExtractString(report, 'reason') AS reason
FROM jobs FINAL
WHERE report != '' AND $__timeFilter(created)
ORDER BY created DESC
LIMIT 100`), 24)).
		WithPanel(timeSeries("Jobs by state", "Jobs created per interval, by their latest state.", "none",
			`SELECT $__timeInterval(created) AS time, state, count() AS jobs FROM jobs FINAL WHERE $__timeFilter(created) GROUP BY time, state ORDER BY time`)).
		WithPanel(tablePanel("Lineage", "Every active version: its parents, where it came from (publish, optimize, merge) and the incident and job behind it.",
			sqlText(`
SELECT model, version, arrayStringConcat(arrayMap(p -> toString(p), parents), ', ') AS parents, source,
       incident, job, author, created, message
FROM registry_versions FINAL
WHERE state = 'active'
ORDER BY model, version
LIMIT 500`), 12))
}
