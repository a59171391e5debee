package drift

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchSegment inserts, server-side, one point per series every step in
// [from, to) into table: hosts × series-per-host series, the columns
// rendered by cols from the SQL names h (host), s (series index), t (time)
// and m (minutes since the version started, Float64).
func benchSegment(b *testing.B, db *testenv.DB, table, columns, cols string, hosts, series int, from, to time.Time, step time.Duration, t0 time.Time) uint64 {
	b.Helper()
	points := int(to.Sub(from) / step)
	if points <= 0 {
		return 0
	}
	n := uint64(hosts * series * points)
	q := fmt.Sprintf(`INSERT INTO %s.%s (%s)
SELECT %s FROM (
    SELECT concat('host-', toString(number %% %d)) AS h,
           intDiv(number, %d) %% %d AS s,
           addSeconds(%s, intDiv(number, %d) * %d) AS t,
           dateDiff('second', %s, t) / 60 AS m
    FROM numbers(%d))`,
		db.Name, table, columns, cols, hosts, hosts, series, nanos(from), hosts*series, int(step/time.Second), nanos(t0), n)
	if err := db.Conn.Exec(context.Background(), q); err != nil {
		b.Fatalf("generate %s: %v", table, err)
	}
	return n
}

// BenchmarkCheck measures one Check of a model with 20 features served by
// 1000 hosts over 30 days, in two sub-benchmarks:
//
//   - delta: what drover agents send (docs/metrics.md), the windows at 10 s
//     resolution; a check reads the minute rollups;
//   - cumulative: what other OTLP senders may send, the windows at 60 s
//     resolution; a check reads every point of its windows in
//     metrics_histogram and metrics_sum.
//
// The volume is generated once per sub-benchmark, inside ClickHouse
// (INSERT … SELECT FROM numbers(), through the rollup views):
//
//   - the two windows a check reads (the reference hour after the version
//     started, 30 days ago, and the current hour, each with Lookback
//     before it) at the resolution above;
//   - the 30 days between them: for delta, one host every minute, which
//     fills the minute rollups as the whole fleet would (one row per minute
//     and feature); for cumulative, all hosts every hour: what partition
//     pruning (by day) and the sorting key skip.
//
// Per host: 20 drover.distribution histograms (11 buckets), 2
// drover.requests series (ok, error), a drover.request.duration histogram
// and a drover.eval gauge. DROVER_DRIFT_BENCH_HOSTS and
// DROVER_DRIFT_BENCH_STEP_S (window resolution, seconds) change the size.
func BenchmarkCheck(b *testing.B) {
	b.Run("delta", func(b *testing.B) { benchmarkCheck(b, "delta", 10*time.Second) })
	b.Run("cumulative", func(b *testing.B) { benchmarkCheck(b, "cumulative", 60*time.Second) })
}

func benchmarkCheck(b *testing.B, temporality string, step time.Duration) {
	db := testenv.ClickHouse(b)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name, TTLDays: 60}); err != nil {
		b.Fatal(err)
	}
	hosts := envInt("DROVER_DRIFT_BENCH_HOSTS", 1000)
	if s := envInt("DROVER_DRIFT_BENCH_STEP_S", 0); s > 0 {
		step = time.Duration(s) * time.Second
	}
	const features = 20
	now := time.Now().UTC().Truncate(time.Minute)
	t0 := now.Add(-30 * 24 * time.Hour)
	drift := now.Add(-time.Hour)
	pad := 5 * time.Minute // the checker's default Lookback
	segments := []struct {
		from, to time.Time
		step     time.Duration
		hosts    int
	}{
		{t0, t0.Add(time.Hour + pad), step, hosts},
		{t0.Add(time.Hour + pad), drift.Add(-pad), time.Hour, hosts},
		{drift.Add(-pad), now, step, hosts},
	}
	if temporality == "delta" {
		// The minute rollup a delta check reads holds one row per minute
		// and feature whatever the number of hosts: one host every minute
		// gives the 30 days between the windows the rollup of the real
		// fleet (and the raw tables the rows the sorting key skips).
		segments[1].step, segments[1].hosts = time.Minute, 1
	}
	base := "[1, 2, 4, 6, 7, 8, 7, 6, 4, 2, 1]"
	shifted := "[0, 1, 1, 2, 4, 6, 7, 8, 8, 7, 4]"
	bounds := "[-2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2]"
	// Features with an even index drift in the last hour. Cumulative
	// counts grow by base (shifted) per minute; a delta point holds one
	// minute's counts whatever the step (only shapes matter to a check).
	counts := fmt.Sprintf(`arrayMap((x, y) -> toUInt64(least(m, %[1]s) * x + greatest(0, m - %[1]s) * if(s %% 2 = 0, y, x)), %[2]s, %[3]s)`,
		fmt.Sprintf("dateDiff('second', %s, %s) / 60", nanos(t0), nanos(drift)), base, shifted)
	requests := "m * if(s = 0, 600, 3)"
	latency := "arrayMap(x -> toUInt64(m * x), [300, 250, 45, 5, 0])"
	start := nanos(t0.Add(-10 * time.Second))
	if temporality == "delta" {
		counts = fmt.Sprintf("CAST(if(t >= %s AND s %% 2 = 0, %s, %s), 'Array(UInt64)')", nanos(drift), shifted, base)
		requests = "if(s = 0, 600, 3)"
		latency = "CAST([300, 250, 45, 5, 0], 'Array(UInt64)')"
		start = fmt.Sprintf("t - INTERVAL %d SECOND", int(step/time.Second))
	}
	common := "'drover-agent', h, concat('agent-', h), 'bench', '1'"
	var generated [4]uint64
	began := time.Now()
	for _, sg := range segments {
		generated[0] += benchSegment(b, db, "metrics_histogram",
			"time, start_time, service, host, agent_id, model, model_version, metric, feature, temporality, bounds, counts, count",
			fmt.Sprintf("t, %s, %s, '%s', concat('f', toString(s)), '%s', %s, %s AS c, arraySum(c)", start, common, semconv.MetricDistribution, temporality, bounds, counts),
			sg.hosts, features, sg.from, sg.to, sg.step, t0)
		generated[1] += benchSegment(b, db, "metrics_sum",
			"time, start_time, service, host, agent_id, model, model_version, metric, attributes, temporality, is_monotonic, value",
			fmt.Sprintf("t, %s, %s, '%s', map('%s', if(s = 0, 'ok', 'error')), '%s', true, %s", start, common, semconv.MetricRequests, semconv.AttrStatus, temporality, requests),
			sg.hosts, 2, sg.from, sg.to, sg.step, t0)
		generated[2] += benchSegment(b, db, "metrics_histogram",
			"time, start_time, service, host, agent_id, model, model_version, metric, temporality, bounds, counts, count",
			fmt.Sprintf("t, %s, %s, '%s', '%s', [0.001, 0.01, 0.1, 1], %s AS c, arraySum(c)", start, common, semconv.MetricRequestLatency, temporality, latency),
			sg.hosts, 1, sg.from, sg.to, sg.step, t0)
		generated[3] += benchSegment(b, db, "metrics_gauge",
			"time, start_time, service, host, agent_id, model, model_version, metric, attributes, value",
			fmt.Sprintf("t, %s, %s, '%s', map('%s', 'f1', '%s', 'labels'), if(t < %s, 0.9, 0.88)", start, common, semconv.MetricEval, semconv.AttrMetric, semconv.AttrSource, nanos(drift)),
			sg.hosts, 1, sg.from, sg.to, sg.step, t0)
	}
	for _, table := range []string{"metrics_histogram", "metrics_histogram_1m", "metrics_sum_1m", "metrics_eval_1m"} {
		if err := db.Conn.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", db.Name, table)); err != nil {
			b.Logf("optimize %s: %v", table, err)
		}
	}
	var parts uint64
	_ = db.Conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'metrics_histogram' AND active", db.Name).Scan(&parts)
	inWindows := uint64(hosts*(features+2+1+1)) * uint64(2*(time.Hour+pad)/step)
	b.Logf("%s: generated in %s: %d distribution + %d latency histogram rows, %d counter rows, %d gauge rows "+
		"(%d features × %d hosts, 30 days: windows at %s, the rest at %s from %d hosts; %d histogram parts); "+
		"the two %s windows hold about %d raw rows",
		temporality, time.Since(began).Round(time.Second), generated[0], generated[2], generated[1], generated[3],
		features, hosts, step, segments[1].step, segments[1].hosts, parts, time.Hour, inWindows)

	c := NewChecker(db.Conn, db.Name, "bench", nil)
	p := DefaultPolicy()
	first := time.Now()
	r, err := c.Check(ctx, "bench", "1", p, now)
	if err != nil {
		b.Fatal(err)
	}
	firstMs := float64(time.Since(first).Microseconds()) / 1000
	var drifted []string
	for _, f := range r.Features {
		if f.Drifted {
			drifted = append(drifted, f.Feature)
		}
	}
	if len(r.Features) != features || len(drifted) != features/2 || !r.DatasetDrifted {
		b.Fatalf("check found %d features, drifted %v (dataset %v); want %d, half drifted", len(r.Features), drifted, r.DatasetDrifted, features)
	}
	b.Logf("first check (finds the version start): %.1f ms; drifted features: %s", firstMs, strings.Join(drifted, " "))
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Check(ctx, "bench", "1", p, now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/check")
	logQueries(b, c, r)
	b.ReportMetric(float64(inWindows), "rows-in-windows")
}

// logQueries logs, for each query a check runs, its time (median of 5)
// and the rows ClickHouse read.
func logQueries(b *testing.B, c *Checker, r Result) {
	cumulative, err := c.hasCumulative(context.Background(), r.Model, r.Version, r.ReferenceWindow, r.Window)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"distributions+latency", func(ctx context.Context) error {
			_, _, err := c.histograms(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window, cumulative)
			return err
		}},
		{"eval gauges", func(ctx context.Context) error {
			_, _, err := c.evals(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window)
			return err
		}},
		{"requests", func(ctx context.Context) error {
			_, _, err := c.requests(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window, cumulative)
			return err
		}},
	} {
		var times []time.Duration
		var read uint64
		for range 5 {
			read = 0
			ctx := clickhouse.Context(context.Background(), clickhouse.WithProgress(func(p *clickhouse.Progress) { read += p.Rows }))
			began := time.Now()
			if err := q.run(ctx); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(began))
		}
		slices.Sort(times)
		b.Logf("%-22s median %6.1f ms, %9d rows read", q.name, float64(times[2].Microseconds())/1000, read)
	}
}
