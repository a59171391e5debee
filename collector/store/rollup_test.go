package store

import (
	"context"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/semconv"
)

func gauge(at time.Time, host, evalMetric string, v float64) GaugeRow {
	return GaugeRow{Point: Point{
		Time: at, Host: host, Model: "iris", ModelVersion: "3", Metric: semconv.MetricEval,
		Attributes: map[string]string{semconv.AttrMetric: evalMetric, semconv.AttrSource: "golden", semconv.AttrClass: ""},
	}, Value: v}
}

func TestGaugeRollups(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	h := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour) // a whole past hour
	sec := func(n int) time.Time { return h.Add(time.Duration(n) * time.Second) }
	first := &Batch{Gauges: []GaugeRow{
		gauge(sec(10), "h1", "accuracy", 1),
		gauge(sec(50), "h1", "accuracy", 3),
		gauge(sec(80), "h1", "accuracy", 5),
		gauge(sec(20), "h1", "f1", 100),
	}}
	// A second insert, with a point earlier than the last one of minute 0:
	// "last" goes by time, not by arrival.
	second := &Batch{Gauges: []GaugeRow{gauge(sec(30), "h1", "accuracy", 2)}}
	if err := s.Insert(ctx, first, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, second, "g2"); err != nil {
		t.Fatal(err)
	}

	type agg struct {
		Time       time.Time `ch:"time"`
		EvalMetric string    `ch:"eval_metric"`
		Avg        float64   `ch:"avg"`
		Min        float64   `ch:"min"`
		Max        float64   `ch:"max"`
		Last       float64   `ch:"last"`
		Points     uint64    `ch:"points"`
	}
	query := func(table string) []agg {
		var out []agg
		// The series' attributes come from attribute_sets (0007).
		err := db.Conn.Select(ctx, &out, `
			SELECT r.time AS time, s.attributes['`+semconv.AttrMetric+`'] AS eval_metric,
			       r.avg AS avg, r.min AS min, r.max AS max, r.last AS last, r.points AS points
			FROM (
			    SELECT time, attributes_hash,
			           avgMerge(value_avg) AS avg, minMerge(value_min) AS min, maxMerge(value_max) AS max,
			           argMaxMerge(value_last) AS last, sum(points) AS points
			    FROM `+table+`
			    WHERE model = 'iris' AND model_version = '3' AND metric = ? AND host = 'h1'
			    GROUP BY time, attributes_hash
			) AS r
			LEFT JOIN (SELECT attributes_hash, any(attributes) AS attributes FROM attribute_sets GROUP BY attributes_hash) AS s
			    USING (attributes_hash)
			ORDER BY time, eval_metric`, semconv.MetricEval)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		return out
	}
	check := func(table string, got, want []agg) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows %+v, want %d %+v", table, len(got), got, len(want), want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.Time.Equal(w.Time) || g.EvalMetric != w.EvalMetric || math.Abs(g.Avg-w.Avg) > 1e-12 ||
				g.Min != w.Min || g.Max != w.Max || g.Last != w.Last || g.Points != w.Points {
				t.Errorf("%s row %d = %+v, want %+v", table, i, g, w)
			}
		}
	}
	check("metrics_gauge_1m", query("metrics_gauge_1m"), []agg{
		{h, "accuracy", 2, 1, 3, 3, 3},
		{h, "f1", 100, 100, 100, 100, 1},
		{h.Add(time.Minute), "accuracy", 5, 5, 5, 5, 1},
	})
	check("metrics_gauge_1h", query("metrics_gauge_1h"), []agg{
		{h, "accuracy", 2.75, 1, 5, 5, 4},
		{h, "f1", 100, 100, 100, 100, 1},
	})

	// The rows stay partial states until merged: after a forced merge the
	// answer is the same.
	if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE metrics_gauge_1m FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge_1m"); n != 3 {
		t.Errorf("metrics_gauge_1m has %d rows after OPTIMIZE FINAL, want 3 (minute × series)", n)
	}
	check("metrics_gauge_1m after merge", query("metrics_gauge_1m"), []agg{
		{h, "accuracy", 2, 1, 3, 3, 3},
		{h, "f1", 100, 100, 100, 100, 1},
		{h.Add(time.Minute), "accuracy", 5, 5, 5, 5, 1},
	})

	// attribute_sets: one row per distinct map after a merge, with the
	// latest time it was seen; the rollups no longer copy the maps.
	if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE attribute_sets FINAL"); err != nil {
		t.Fatal(err)
	}
	var sets []struct {
		Metric   string    `ch:"m"`
		LastSeen time.Time `ch:"last_seen"`
		Hash     uint64    `ch:"attributes_hash"`
		Keys     uint64    `ch:"keys"`
	}
	if err := db.Conn.Select(ctx, &sets, `SELECT attributes['`+semconv.AttrMetric+`'] AS m, last_seen, attributes_hash,
		length(attributes) AS keys FROM attribute_sets ORDER BY m`); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Metric != "accuracy" || !sets[0].LastSeen.Equal(sec(80)) || sets[1].Metric != "f1" ||
		!sets[1].LastSeen.Equal(sec(20)) || sets[0].Keys != 3 || sets[0].Hash == sets[1].Hash {
		t.Errorf("attribute_sets = %+v, want accuracy seen at %s and f1 at %s, 3 keys each", sets, sec(80), sec(20))
	}
	// attributes_hash is the column's DEFAULT, computed as rows are inserted.
	if n := db.Count(t, "SELECT countIf(attributes_hash = cityHash64(mapSort(attributes)) AND attributes_hash != 0) FROM metrics_gauge"); n != 5 {
		t.Errorf("%d of 5 gauge rows hold their attributes' hash", n)
	}
	if n := db.Count(t, "SELECT count() FROM metrics_gauge_1m WHERE length(attributes) > 0"); n != 0 {
		t.Errorf("%d gauge rollup rows carry a map; want none (attribute_sets holds them)", n)
	}
}

func histogram(at time.Time, host string, temp Temporality, bounds []float64, counts []uint64, sum float64) HistogramRow {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return HistogramRow{
		Point:   Point{Time: at, Host: host, Model: "iris", ModelVersion: "3", Metric: semconv.MetricRequestLatency, Unit: "s"},
		Feature: "", Temporality: temp, Count: n, Sum: sum, Bounds: bounds, Counts: counts,
	}
}

func TestHistogramRollupsAndQuantiles(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	h := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	bounds := []float64{0.1, 0.5, 1}
	b := &Batch{Histograms: []HistogramRow{
		histogram(h.Add(5*time.Second), "h1", TemporalityDelta, bounds, []uint64{1, 2, 3, 4}, 5),
		histogram(h.Add(15*time.Second), "h2", TemporalityDelta, bounds, []uint64{10, 20, 30, 40}, 50),
		// Cumulative points are not summed into the rollups.
		histogram(h.Add(25*time.Second), "h3", TemporalityCumulative, bounds, []uint64{100, 100, 100, 100}, 500),
		// Other bounds are another row.
		histogram(h.Add(35*time.Second), "h1", TemporalityDelta, []float64{1, 2}, []uint64{7, 0, 0}, 3),
	}}
	if err := s.Insert(ctx, b, "hist"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"metrics_histogram_1m", "metrics_histogram_1h"} {
		var counts []uint64
		var n uint64
		var sum float64
		err := db.Conn.QueryRow(ctx, `
			SELECT sumForEachMerge(counts), sumMerge(count), sumMerge(sum)
			FROM `+table+`
			WHERE model = 'iris' AND metric = ? AND bounds = [0.1, 0.5, 1]
			GROUP BY model, model_version, metric, feature, bounds`, semconv.MetricRequestLatency).Scan(&counts, &n, &sum)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if want := []uint64{11, 22, 33, 44}; len(counts) != 4 || counts[0] != 11 || counts[1] != 22 || counts[2] != 33 || counts[3] != 44 {
			t.Errorf("%s: counts %v, want %v", table, counts, want)
		}
		if n != 110 || sum != 55 {
			t.Errorf("%s: count %d sum %v, want 110 and 55", table, n, sum)
		}
		if rows := db.Count(t, "SELECT count() FROM (SELECT 1 FROM "+table+" GROUP BY bounds)"); rows != 2 {
			t.Errorf("%s: %d bound sets, want 2", table, rows)
		}
	}

	// The quantile query of docs/schema.md: with cumulative counts
	// [11, 33, 66, 110], p50 (rank 55) lies in (0.5, 1] at 0.5 + 22/33*0.5,
	// and p99 (rank 108.9) in the +Inf bucket, reported as the last bound.
	for q, want := range map[float64]float64{0.5: 0.5 + 22.0/33*0.5, 0.99: 1, 0.05: 0.1 * 5.5 / 11} {
		var got float64
		if err := db.Conn.QueryRow(ctx, histogramQuantileSQL, q, semconv.MetricRequestLatency).Scan(&got); err != nil {
			t.Fatalf("quantile %v: %v", q, err)
		}
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("quantile %v = %v, want %v", q, got, want)
		}
	}
}

// histogramQuantileSQL is the quantile query documented in docs/schema.md,
// with the quantile and the metric as parameters.
const histogramQuantileSQL = `
WITH
    sumForEachMerge(counts)              AS c,
    arrayCumSum(c)                       AS cum,
    cum[-1] * ?                          AS rank,
    arrayFirstIndex(x -> x >= rank, cum) AS i,
    if(i = 1, 0, bounds[i - 1])          AS lower,
    if(i = 1, 0, cum[i - 1])             AS below
SELECT if(i > length(bounds), bounds[-1], lower + (bounds[i] - lower) * (rank - below) / c[i]) AS quantile
FROM metrics_histogram_1m
WHERE model = 'iris' AND model_version = '3' AND metric = ? AND bounds = [0.1, 0.5, 1]
  AND time >= now() - INTERVAL 3 HOUR
GROUP BY model, model_version, bounds`

func TestRequestRateQuery(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	sum := func(at time.Time, host string, start time.Time, status string, v float64) SumRow {
		return SumRow{Point: Point{
			Time: at, StartTime: start, Host: host, Model: "iris", ModelVersion: "3", Metric: semconv.MetricRequests,
			Attributes: map[string]string{semconv.AttrProtocol: "grpc", semconv.AttrStatus: status},
		}, Temporality: TemporalityCumulative, IsMonotonic: true, Value: v}
	}
	start := now.Add(-time.Hour)
	restart := now.Add(-90 * time.Second)
	b := &Batch{Sums: []SumRow{
		sum(now.Add(-4*time.Minute), "h1", start, "ok", 100),
		sum(now.Add(-1*time.Minute), "h1", start, "ok", 160), // +60
		sum(now.Add(-4*time.Minute), "h1", start, "error", 5),
		sum(now.Add(-1*time.Minute), "h1", start, "error", 8), // +3
		// h2 restarted: the counter began again at restart.
		sum(now.Add(-4*time.Minute), "h2", start, "ok", 1000),
		sum(now.Add(-2*time.Minute), "h2", start, "ok", 1012), // +12
		sum(now.Add(-1*time.Minute), "h2", restart, "ok", 15), // +15 (since the restart)
		sum(now.Add(-30*time.Minute), "h2", start, "ok", 10),  // outside the window
	}}
	if err := s.Insert(ctx, b, "rate"); err != nil {
		t.Fatal(err)
	}
	var model string
	var rate float64
	if err := db.Conn.QueryRow(ctx, requestRateSQL).Scan(&model, &rate); err != nil {
		t.Fatal(err)
	}
	if want := (60.0 + 3 + 12 + 15) / 300; model != "iris" || math.Abs(rate-want) > 1e-12 {
		t.Errorf("request rate of %s = %v, want %v", model, rate, want)
	}
}

// requestRateSQL is the per-model request rate of docs/schema.md for
// cumulative counters: the increase of every series (and every counter
// start, so that restarts count) over the last 5 minutes.
const requestRateSQL = `
SELECT model, sum(increase) / 300 AS requests_per_second
FROM
(
    SELECT model, max(value) - if(start_time >= now() - INTERVAL 5 MINUTE, 0, min(value)) AS increase
    FROM metrics_sum
    WHERE metric = 'drover.requests' AND time >= now() - INTERVAL 5 MINUTE
    GROUP BY model, model_version, host, cityHash64(mapSort(attributes)), start_time
)
GROUP BY model`

func TestTTLDropsExpiredParts(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	old := time.Now().UTC().Add(-40 * 24 * time.Hour)
	b := &Batch{Gauges: []GaugeRow{gauge(old, "h1", "accuracy", 1), gauge(recent(0), "h1", "accuracy", 2)}}
	if err := s.Insert(ctx, b, "ttl"); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE metrics_gauge FINAL"); err != nil {
		t.Fatal(err)
	}
	var values []float64
	rows, err := db.Conn.Query(ctx, "SELECT value FROM metrics_gauge")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	if len(values) != 1 || values[0] != 2 {
		t.Errorf("after TTL: values %v, want only the recent point [2]", values)
	}
}

func TestCumulativeHistogramQuantileQuery(t *testing.T) {
	// Agents export cumulative histograms: the raw-table query takes each
	// series' increase over the window (last minus first snapshot, or the
	// whole last snapshot for a series that started inside the window).
	db, s := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	bounds := []float64{0.1, 0.5, 1}
	start := now.Add(-2 * time.Hour)
	cum := func(at time.Time, host string, start time.Time, counts []uint64) HistogramRow {
		h := histogram(at, host, TemporalityCumulative, bounds, counts, 0)
		h.StartTime = start
		return h
	}
	b := &Batch{Histograms: []HistogramRow{
		cum(now.Add(-50*time.Minute), "h1", start, []uint64{100, 100, 100, 100}),
		cum(now.Add(-10*time.Minute), "h1", start, []uint64{110, 122, 133, 144}), // +[10 22 33 44]
		cum(now.Add(-20*time.Minute), "h2", now.Add(-30*time.Minute), []uint64{1, 0, 0, 0}),
		cum(now.Add(-5*time.Minute), "h2", now.Add(-30*time.Minute), []uint64{1, 0, 0, 0}), // started inside: +[1 0 0 0]
	}}
	if err := s.Insert(ctx, b, "cumulative"); err != nil {
		t.Fatal(err)
	}
	// Window counts [11 22 33 44], as in TestHistogramRollupsAndQuantiles.
	for q, want := range map[float64]float64{0.5: 0.5 + 22.0/33*0.5, 0.99: 1} {
		var got float64
		if err := db.Conn.QueryRow(ctx, cumulativeQuantileSQL, q, semconv.MetricRequestLatency).Scan(&got); err != nil {
			t.Fatalf("quantile %v: %v", q, err)
		}
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("quantile %v = %v, want %v", q, got, want)
		}
	}
}

// cumulativeQuantileSQL is the raw-table quantile query of docs/schema.md for
// cumulative histograms.
const cumulativeQuantileSQL = `
WITH
    sumForEach(increase)                 AS c,
    arrayCumSum(c)                       AS cum,
    cum[-1] * ?                          AS rank,
    arrayFirstIndex(x -> x >= rank, cum) AS i,
    if(i = 1, 0, bounds[i - 1])          AS lower,
    if(i = 1, 0, cum[i - 1])             AS below
SELECT if(i > length(bounds), bounds[-1], lower + (bounds[i] - lower) * (rank - below) / c[i]) AS quantile
FROM
(
    SELECT model, model_version, bounds,
           if(start_time >= now() - INTERVAL 1 HOUR,
              argMax(counts, time),
              arrayMap((last, first) -> toUInt64(last - first), argMax(counts, time), argMin(counts, time))) AS increase
    FROM metrics_histogram
    WHERE metric = ? AND temporality = 'cumulative' AND time >= now() - INTERVAL 1 HOUR
    GROUP BY model, model_version, bounds, host, cityHash64(mapSort(attributes)), start_time
)
GROUP BY model, model_version, bounds`

func TestSumRollups(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	m := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	sum := func(at time.Time, host, status string, temp Temporality, monotonic bool, v float64) SumRow {
		return SumRow{Point: Point{
			Time: at, StartTime: at.Add(-10 * time.Second), Host: host, Model: "iris", ModelVersion: "3", Metric: semconv.MetricRequests,
			Attributes: map[string]string{semconv.AttrProtocol: "grpc", semconv.AttrStatus: status},
		}, Temporality: temp, IsMonotonic: monotonic, Value: v}
	}
	b := &Batch{Sums: []SumRow{
		sum(m.Add(10*time.Second), "h1", "ok", TemporalityDelta, true, 100),
		sum(m.Add(20*time.Second), "h1", "ok", TemporalityDelta, true, 50),
		sum(m.Add(15*time.Second), "h2", "ok", TemporalityDelta, true, 7),
		sum(m.Add(15*time.Second), "h2", "error", TemporalityDelta, true, 2),
		sum(m.Add(70*time.Second), "h1", "ok", TemporalityDelta, true, 1), // the next minute
		// Neither cumulative nor non-monotonic sums are rolled up.
		sum(m.Add(30*time.Second), "h3", "ok", TemporalityCumulative, true, 1000),
		sum(m.Add(30*time.Second), "h3", "ok", TemporalityDelta, false, 1000),
	}}
	if err := s.Insert(ctx, b, "sums"); err != nil {
		t.Fatal(err)
	}
	type key struct {
		table, minute, status string
	}
	got := map[key]float64{}
	points := map[key]uint64{}
	for _, table := range []string{"metrics_sum_1m", "metrics_sum_1h"} {
		rows, err := db.Conn.Query(ctx, `SELECT formatDateTime(time, '%H:%i'), attributes['drover.status'], sum(value), sum(points)
			FROM `+table+` WHERE model = 'iris' AND model_version = '3' AND metric = ? GROUP BY time, attributes_hash, attributes`,
			semconv.MetricRequests)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k key
			var v float64
			var n uint64
			if err := rows.Scan(&k.minute, &k.status, &v, &n); err != nil {
				t.Fatal(err)
			}
			k.table = table
			got[k], points[k] = v, n
		}
		rows.Close()
	}
	hm := m.Format("15:04")
	want := map[key]float64{
		{"metrics_sum_1m", hm, "ok"}:                                 157,
		{"metrics_sum_1m", hm, "error"}:                              2,
		{"metrics_sum_1m", m.Add(time.Minute).Format("15:04"), "ok"}: 1,
		{"metrics_sum_1h", hm, "ok"}:                                 158,
		{"metrics_sum_1h", hm, "error"}:                              2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("rollups %v, want %v", got, want)
	}
	if n := points[key{"metrics_sum_1m", hm, "ok"}]; n != 3 {
		t.Errorf("%d points in the first minute's ok row, want 3", n)
	}

	// Every table with a temporality column has the skip index.
	if n := db.Count(t, "SELECT count() FROM system.data_skipping_indices WHERE database = currentDatabase() AND name = 'temporality_idx' AND type = 'set'"); n != 3 {
		t.Errorf("%d temporality indexes, want 3", n)
	}
}
