package analysis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/semconv"
)

// Analyzer reads what a canary and its serving version sent from the
// metric tables and rollups (docs/schema.md) and judges it with Decide. It
// is safe for concurrent use; it owns nothing (the conn is the caller's).
type Analyzer struct {
	conn driver.Conn
	db   string
	// Lookback is how far before the canary's start a cumulative series'
	// last point is looked for (its value there is subtracted): 5 minutes,
	// as drift's.
	Lookback time.Duration
	// Labels, when set, is where the label metrics come from instead of
	// the agents' labels-source drover.eval gauges and their joined
	// drover.feedback counts: metrics computed from the fleet's labels
	// joined with the sampled requests (collector/labels: Store.Join and
	// Evaluate), which count labels that reached any agent or collector.
	Labels LabelMetrics
}

// LabelMetrics returns, for one version of model, the number of labels
// joined to its samples taken in [from, to) and the metrics computed from
// them, keyed as Decide compares them (accuracy, f1 for classification;
// mse for regression). It must be safe for concurrent use.
type LabelMetrics func(ctx context.Context, model, version string, from, to time.Time) (n uint64, values map[string]float64, err error)

// NewAnalyzer returns an Analyzer reading database db through conn.
func NewAnalyzer(conn driver.Conn, db string) *Analyzer {
	return &Analyzer{conn: conn, db: db, Lookback: 5 * time.Minute}
}

// Canary is one automatic canary as the fleet's desired state holds it.
type Canary struct {
	Model string
	// Serving and Version are the serving version and the canary's.
	Serving, Version uint64
	// Started is when the canary started (the desired state's
	// canary.started): both versions are compared on [Started, now).
	Started time.Time
	// Revision is the desired state's revision the canary was read at; a
	// Fleet should promote or abort only if it is still current.
	Revision uint64
	Params   Params
}

// Analyze judges c at now: it reads both versions' metrics in [c.Started,
// now) and returns Decide's verdict, Params defaulted (WithDefaults). An
// error (ClickHouse unreachable, a query refused) returns no verdict; the
// caller tries again later.
func (a *Analyzer) Analyze(ctx context.Context, c Canary, now time.Time) (Verdict, error) {
	o, err := a.Observe(ctx, c.Model, c.Serving, c.Version, c.Started, now)
	if err != nil {
		return Verdict{}, err
	}
	return Decide(o, c.Params.WithDefaults()), nil
}

// Observe reads what Decide judges of model's serving and canary versions
// in [since, now): server-error and ok request counts, the latency
// histogram, labels joined to samples and the labels-source evaluation
// metrics (from Labels when set). Delta points come from the minute
// rollups (minutes that start in the window), cumulative ones as each
// series' increase from the raw tables, as drift reads them.
func (a *Analyzer) Observe(ctx context.Context, model string, serving, canary uint64, since, now time.Time) (Observed, error) {
	if serving == canary {
		return Observed{}, fmt.Errorf("canary analysis of %s: canary v%d is the serving version", model, canary)
	}
	w := window{since, now}
	s, c := strconv.FormatUint(serving, 10), strconv.FormatUint(canary, 10)
	o := Observed{Elapsed: now.Sub(since)}
	sides := map[string]*Side{s: &o.Serving, c: &o.Canary}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs [5]error
	)
	set := func(version string, f func(*Side)) {
		mu.Lock()
		defer mu.Unlock()
		if side := sides[version]; side != nil {
			f(side)
		}
	}
	wg.Go(func() {
		errs[0] = a.counters(ctx, model, s, c, semconv.MetricRequests, w, func(v, status string, n float64) {
			set(v, func(sd *Side) {
				switch {
				case status == semconv.StatusOK:
					sd.Requests += uint64(n)
				case isServerError(status):
					sd.Requests += uint64(n)
					sd.ServerErrors += uint64(n)
				}
			})
		})
	})
	if a.Labels != nil {
		for i, v := range []string{s, c} {
			wg.Go(func() {
				n, values, err := a.Labels(ctx, model, v, since, now)
				if err != nil {
					errs[1+3*i] = fmt.Errorf("labels of v%s: %w", v, err)
					return
				}
				set(v, func(sd *Side) { sd.Labels, sd.Eval = n, values })
			})
		}
	} else {
		wg.Go(func() {
			errs[1] = a.counters(ctx, model, s, c, semconv.MetricFeedback, w, func(v, status string, n float64) {
				if status == "joined" {
					set(v, func(sd *Side) { sd.Labels += uint64(n) })
				}
			})
		})
		wg.Go(func() {
			errs[3] = a.evals(ctx, model, s, c, w, func(v, metric string, x float64) {
				set(v, func(sd *Side) {
					if sd.Eval == nil {
						sd.Eval = map[string]float64{}
					}
					sd.Eval[metric] = x
				})
			})
		})
	}
	wg.Go(func() {
		errs[2] = a.latency(ctx, model, s, c, w, func(v string, h Histogram) { set(v, func(sd *Side) { sd.Latency = h }) })
	})
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return Observed{}, fmt.Errorf("read canary analysis of %s v%s vs v%s: %w", model, c, s, err)
	}
	return o, nil
}

func isServerError(status string) bool {
	for _, s := range semconv.ServerErrorStatuses {
		if s == status {
			return true
		}
	}
	return false
}

type window struct{ start, end time.Time }

func (a *Analyzer) table(name string) string { return "`" + a.db + "`.`" + name + "`" }

// nanos renders t as a DateTime64(9) literal (a literal, not a parameter,
// so that ClickHouse prunes day partitions).
func nanos(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Nano(%d, 'UTC')", t.UnixNano())
}

// counters sums metric (a monotonic counter) by version and status over
// w: delta points from metrics_sum_1m, plus each cumulative series'
// increase from metrics_sum (the last point in w minus the series' last
// point before it within Lookback; a series with none counts whole if it
// started after w.start − Lookback, else from its first point in w).
func (a *Analyzer) counters(ctx context.Context, model, s, c, metric string, w window, each func(version, status string, n float64)) error {
	ws, lb := nanos(w.start), nanos(w.start.Add(-a.Lookback))
	q := fmt.Sprintf(`SELECT model_version, status, sum(inc) FROM (
    SELECT model_version, attributes['%[1]s'] AS status, sum(value) AS inc
    FROM %[2]s
    WHERE model = ? AND model_version IN (?, ?) AND metric = ? AND time >= %[4]s AND time < %[6]s
    GROUP BY model_version, status
    UNION ALL
    SELECT model_version, attributes['%[1]s'] AS status,
           greatest(0, argMaxIf(value, time, time >= %[4]s) -
               multiIf(countIf(time < %[4]s) > 0, argMaxIf(value, time, time < %[4]s),
                       start_time >= %[5]s, 0,
                       argMinIf(value, time, time >= %[4]s))) AS inc
    FROM %[3]s
    WHERE model = ? AND model_version IN (?, ?) AND metric = ? AND temporality = 'cumulative'
      AND time >= %[5]s AND time < %[6]s
    GROUP BY model_version, status, host, agent_id, cityHash64(mapSort(attributes)), start_time
    HAVING countIf(time >= %[4]s) > 0)
GROUP BY model_version, status`, semconv.AttrStatus, a.table("metrics_sum_1m"), a.table("metrics_sum"), ws, lb, nanos(w.end))
	rows, err := a.conn.Query(ctx, q, model, s, c, metric, model, s, c, metric)
	if err != nil {
		return fmt.Errorf("%s: %w", metric, err)
	}
	defer rows.Close()
	for rows.Next() {
		var version, status string
		var n float64
		if err := rows.Scan(&version, &status, &n); err != nil {
			return fmt.Errorf("%s: %w", metric, err)
		}
		each(version, status, n)
	}
	return rows.Err()
}

// latency reads drover.request.duration by version over w (delta sums
// from metrics_histogram_1m plus cumulative series increases from
// metrics_histogram). A version whose points come with several bounds
// keeps the bounds with the most observations.
func (a *Analyzer) latency(ctx context.Context, model, s, c string, w window, each func(version string, h Histogram)) error {
	ws, lb := nanos(w.start), nanos(w.start.Add(-a.Lookback))
	q := fmt.Sprintf(`SELECT model_version, bounds, sumForEach(inc) FROM (
    SELECT model_version, bounds, sumForEachMerge(counts) AS inc
    FROM %[1]s
    WHERE model = ? AND model_version IN (?, ?) AND metric = ? AND feature = '' AND time >= %[3]s AND time < %[5]s
    GROUP BY model_version, bounds
    UNION ALL
    SELECT model_version, bounds, inc FROM (
    SELECT model_version, bounds,
           argMaxIf(counts, time, time >= %[3]s) AS last,
           multiIf(countIf(time < %[3]s) > 0,
                   arrayMap((x, y) -> toUInt64(if(x > y, x - y, 0)), last, argMaxIf(counts, time, time < %[3]s)),
                   start_time >= %[4]s, last,
                   arrayMap((x, y) -> toUInt64(if(x > y, x - y, 0)), last, argMinIf(counts, time, time >= %[3]s))) AS inc
    FROM %[2]s
    WHERE model = ? AND model_version IN (?, ?) AND metric = ? AND feature = '' AND temporality = 'cumulative'
      AND time >= %[4]s AND time < %[5]s
    GROUP BY model_version, bounds, host, agent_id, cityHash64(mapSort(attributes)), start_time
    HAVING countIf(time >= %[3]s) > 0))
GROUP BY model_version, bounds`, a.table("metrics_histogram_1m"), a.table("metrics_histogram"), ws, lb, nanos(w.end))
	m := semconv.MetricRequestLatency
	rows, err := a.conn.Query(ctx, q, model, s, c, m, model, s, c, m)
	if err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	defer rows.Close()
	best := map[string]Histogram{}
	for rows.Next() {
		var version string
		var bounds []float64
		var counts []uint64
		if err := rows.Scan(&version, &bounds, &counts); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		if len(counts) != len(bounds)+1 {
			continue // not a well-formed histogram
		}
		h := Histogram{Bounds: bounds, Counts: make([]float64, len(counts))}
		for i, v := range counts {
			h.Counts[i] = float64(v)
		}
		if prev, ok := best[version]; !ok || h.N() > prev.N() {
			best[version] = h
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	for v, h := range best {
		each(v, h)
	}
	return nil
}

// evals averages the labels-source drover.eval values (not per class) by
// version and metric over the minutes of w from metrics_eval_1m: every
// host's point weighs the same, as in drift.
func (a *Analyzer) evals(ctx context.Context, model, s, c string, w window, each func(version, metric string, v float64)) error {
	q := fmt.Sprintf(`SELECT model_version, attributes['%s'] AS m, avgMerge(value_avg)
FROM %s
WHERE model = ? AND model_version IN (?, ?) AND attributes['%s'] = 'labels' AND attributes['%s'] = ''
  AND time >= %s AND time < %s
GROUP BY model_version, m`, semconv.AttrMetric, a.table("metrics_eval_1m"), semconv.AttrSource, semconv.AttrClass,
		nanos(w.start), nanos(w.end))
	rows, err := a.conn.Query(ctx, q, model, s, c)
	if err != nil {
		return fmt.Errorf("%s: %w", semconv.MetricEval, err)
	}
	defer rows.Close()
	for rows.Next() {
		var version, metric string
		var v float64
		if err := rows.Scan(&version, &metric, &v); err != nil {
			return fmt.Errorf("%s: %w", semconv.MetricEval, err)
		}
		each(version, strings.ToLower(metric), v)
	}
	return rows.Err()
}
