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
// 1000 hosts over 30 days. The volume is generated once, inside
// ClickHouse (INSERT … SELECT FROM numbers()):
//
//   - the two windows a check reads (the reference hour after the version
//     started, 30 days ago, and the current hour, each with Lookback
//     before it) at 60 s resolution;
//   - the 30 days between them at 1 h resolution: they are what partition
//     pruning (by day) and the sorting key skip, so their resolution does
//     not change what a check reads.
//
// Per host: 20 drover.distribution histograms (11 buckets), 2
// drover.requests series (ok, error), a drover.request.duration histogram
// and a drover.eval gauge. DROVER_DRIFT_BENCH_HOSTS and
// DROVER_DRIFT_BENCH_STEP_S (window resolution, seconds) change the size.
// A check's cost grows with the rows inside its two windows, hosts ×
// series × 3600/step: see docs/drift.md for the extrapolation to 10 s.
func BenchmarkCheck(b *testing.B) {
	db := testenv.ClickHouse(b)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name, TTLDays: 60}); err != nil {
		b.Fatal(err)
	}
	hosts := envInt("DROVER_DRIFT_BENCH_HOSTS", 1000)
	step := time.Duration(envInt("DROVER_DRIFT_BENCH_STEP_S", 60)) * time.Second
	const features = 20
	now := time.Now().UTC().Truncate(time.Minute)
	t0 := now.Add(-30 * 24 * time.Hour)
	drift := now.Add(-time.Hour)
	pad := 5 * time.Minute // the checker's default Lookback
	segments := []struct {
		from, to time.Time
		step     time.Duration
	}{
		{t0, t0.Add(time.Hour + pad), step},
		{t0.Add(time.Hour + pad), drift.Add(-pad), time.Hour},
		{drift.Add(-pad), now, step},
	}
	base := "[1, 2, 4, 6, 7, 8, 7, 6, 4, 2, 1]"
	shifted := "[0, 1, 1, 2, 4, 6, 7, 8, 8, 7, 4]"
	bounds := "[-2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2]"
	// Features with an even index drift in the last hour.
	cum := fmt.Sprintf(`arrayMap((x, y) -> toUInt64(least(m, %[1]s) * x + greatest(0, m - %[1]s) * if(s %% 2 = 0, y, x)), %[2]s, %[3]s)`,
		fmt.Sprintf("dateDiff('second', %s, %s) / 60", nanos(t0), nanos(drift)), base, shifted)
	common := "'drover-agent', h, concat('agent-', h), 'bench', '1'"
	start := nanos(t0.Add(-10 * time.Second))
	var generated [4]uint64
	began := time.Now()
	for _, sg := range segments {
		generated[0] += benchSegment(b, db, "metrics_histogram",
			"time, start_time, service, host, agent_id, model, model_version, metric, feature, temporality, bounds, counts, count",
			fmt.Sprintf("t, %s, %s, '%s', concat('f', toString(s)), 'cumulative', %s, %s AS c, arraySum(c)", start, common, semconv.MetricDistribution, bounds, cum),
			hosts, features, sg.from, sg.to, sg.step, t0)
		generated[1] += benchSegment(b, db, "metrics_sum",
			"time, start_time, service, host, agent_id, model, model_version, metric, attributes, temporality, is_monotonic, value",
			fmt.Sprintf("t, %s, %s, '%s', map('%s', if(s = 0, 'ok', 'error')), 'cumulative', true, m * if(s = 0, 600, 3)", start, common, semconv.MetricRequests, semconv.AttrStatus),
			hosts, 2, sg.from, sg.to, sg.step, t0)
		generated[2] += benchSegment(b, db, "metrics_histogram",
			"time, start_time, service, host, agent_id, model, model_version, metric, temporality, bounds, counts, count",
			fmt.Sprintf("t, %s, %s, '%s', 'cumulative', [0.001, 0.01, 0.1, 1], arrayMap(x -> toUInt64(m * x), [300, 250, 45, 5, 0]) AS c, arraySum(c)", start, common, semconv.MetricRequestLatency),
			hosts, 1, sg.from, sg.to, sg.step, t0)
		generated[3] += benchSegment(b, db, "metrics_gauge",
			"time, start_time, service, host, agent_id, model, model_version, metric, attributes, value",
			fmt.Sprintf("t, %s, %s, '%s', map('%s', 'f1', '%s', 'labels'), if(t < %s, 0.9, 0.88)", start, common, semconv.MetricEval, semconv.AttrMetric, semconv.AttrSource, nanos(drift)),
			hosts, 1, sg.from, sg.to, sg.step, t0)
	}
	if err := db.Conn.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.metrics_histogram FINAL", db.Name)); err != nil {
		b.Logf("optimize: %v", err)
	}
	var parts uint64
	_ = db.Conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'metrics_histogram' AND active", db.Name).Scan(&parts)
	inWindows := uint64(hosts*(features+2+1+1)) * uint64(2*(time.Hour+pad)/step)
	b.Logf("generated in %s: %d distribution + %d latency histogram rows, %d counter rows, %d gauge rows "+
		"(%d features × %d hosts, 30 days: windows at %s, the rest at 1h; %d histogram parts); "+
		"a check reads the two %s windows: about %d rows",
		time.Since(began).Round(time.Second), generated[0], generated[2], generated[1], generated[3],
		features, hosts, step, parts, time.Hour, inWindows)

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
	for _, q := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"distributions+latency", func(ctx context.Context) error {
			_, err := c.histograms(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window)
			return err
		}},
		{"eval gauges", func(ctx context.Context) error {
			_, err := c.evals(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window)
			return err
		}},
		{"requests", func(ctx context.Context) error {
			_, err := c.requests(ctx, r.Model, r.Version, r.ReferenceWindow, r.Window)
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
