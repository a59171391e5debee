package telemetry

import (
	"context"
	"errors"
	"math"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// captureMetrics is a metric exporter that keeps what it exported, and
// fails the exports it is told to, like a collector that is down.
type captureMetrics struct {
	mu        sync.Mutex
	fail      int // the next fail exports fail
	failEvery int // and, if > 0, every failEvery-th one
	tried     int
	got       []metricdata.ResourceMetrics // the successful exports
}

func (e *captureMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (e *captureMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (e *captureMetrics) ForceFlush(context.Context) error { return nil }
func (e *captureMetrics) Shutdown(context.Context) error   { return nil }

func (e *captureMetrics) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tried++
	if e.fail > 0 || (e.failEvery > 0 && e.tried%e.failEvery == 0) {
		e.fail = max(e.fail-1, 0)
		return errors.New("collector down")
	}
	// The reader reuses rm itself, not the slices of the data this package
	// produces.
	e.got = append(e.got, metricdata.ResourceMetrics{ScopeMetrics: slices.Clone(rm.ScopeMetrics)})
	return nil
}

func (e *captureMetrics) failNext(n int) {
	e.mu.Lock()
	e.fail = n
	e.mu.Unlock()
}

// last returns the latest successful export.
func (e *captureMetrics) last(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.got) == 0 {
		t.Fatal("nothing exported")
	}
	return e.got[len(e.got)-1]
}

func (e *captureMetrics) exports() []metricdata.ResourceMetrics {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// discardLogs is a log exporter that drops everything.
type discardLogs struct{}

func (discardLogs) Export(context.Context, []sdklog.Record) error { return nil }
func (discardLogs) Shutdown(context.Context) error                { return nil }
func (discardLogs) ForceFlush(context.Context) error              { return nil }

// metricIn returns the metric of that scope and name in rm.
func metricIn(rm metricdata.ResourceMetrics, scope, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scope {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// requestsIn returns the drover.requests sum of rm and its only point,
// failing the test unless there is exactly one.
func requestsIn(t *testing.T, rm metricdata.ResourceMetrics) (metricdata.Sum[int64], metricdata.DataPoint[int64]) {
	t.Helper()
	m, ok := metricIn(rm, ScopeName, semconv.MetricRequests)
	if !ok {
		t.Fatal("no drover.requests")
	}
	s := m.Data.(metricdata.Sum[int64])
	if len(s.DataPoints) != 1 {
		t.Fatalf("drover.requests has %d points, want 1", len(s.DataPoints))
	}
	return s, s.DataPoints[0]
}

// histIn returns the only point of the histogram of that scope and name in
// rm, and its temporality.
func histIn(t *testing.T, rm metricdata.ResourceMetrics, scope, name string) (metricdata.HistogramDataPoint[float64], metricdata.Temporality) {
	t.Helper()
	m, ok := metricIn(rm, scope, name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	h := m.Data.(metricdata.Histogram[float64])
	if len(h.DataPoints) != 1 {
		t.Fatalf("%s has %d points, want 1", name, len(h.DataPoints))
	}
	return h.DataPoints[0], h.Temporality
}

func inFlightIn(t *testing.T, rm metricdata.ResourceMetrics) (metricdata.Temporality, int64) {
	t.Helper()
	m, ok := metricIn(rm, ScopeName, semconv.MetricInFlight)
	if !ok {
		t.Fatal("no drover.requests.in_flight")
	}
	s := m.Data.(metricdata.Sum[int64])
	if len(s.DataPoints) != 1 {
		t.Fatalf("drover.requests.in_flight has %d points, want 1", len(s.DataPoints))
	}
	return s.Temporality, s.DataPoints[0].Value
}

// newCaptured returns a Telemetry that exports its metrics to exp only on
// ForceFlush, with the clock clock.
func newCaptured(t *testing.T, temporality string, exp *captureMetrics, clock *testenv.Clock) *Telemetry {
	t.Helper()
	tel, err := New(context.Background(), Config{Interval: time.Hour, Temporality: temporality}, testResource, nil,
		WithMetricExporter(exp), WithLogExporter(discardLogs{}), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, tel) })
	return tel
}

func flush(t *testing.T, tel *Telemetry) {
	t.Helper()
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
}

func scrape(tel *Telemetry) string {
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestDeltaRequests checks that each export carries the requests since the
// previous one, with start times that chain, while in-flight stays
// cumulative.
func TestDeltaRequests(t *testing.T) {
	clock := testenv.NewClock(t0)
	exp := &captureMetrics{}
	tel := newCaptured(t, "", exp, clock) // delta is the default
	tel.InFlight("iris", 1)
	for range 3 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	clock.Advance(10 * time.Second)
	t1 := clock.Now()
	flush(t, tel)

	s, p := requestsIn(t, exp.last(t))
	if s.Temporality != metricdata.DeltaTemporality || !s.IsMonotonic {
		t.Errorf("drover.requests: %v, monotonic %v; want a monotonic delta sum", s.Temporality, s.IsMonotonic)
	}
	if p.Value != 3 || !p.StartTime.Equal(t0) || !p.Time.Equal(t1) {
		t.Errorf("first point %d [%v, %v], want 3 [%v, %v]", p.Value, p.StartTime, p.Time, t0, t1)
	}
	h, temporality := histIn(t, exp.last(t), ScopeName, semconv.MetricRequestLatency)
	if temporality != metricdata.DeltaTemporality || h.Count != 3 || !h.StartTime.Equal(t0) {
		t.Errorf("latency %v count %d start %v, want delta 3 %v", temporality, h.Count, h.StartTime, t0)
	}
	if temporality, n := inFlightIn(t, exp.last(t)); temporality != metricdata.CumulativeTemporality || n != 1 {
		t.Errorf("in-flight %v %d, want cumulative 1", temporality, n)
	}

	for range 2 {
		tel.RecordRequest("iris", "3", "rest", "ok", 2*time.Millisecond)
	}
	clock.Advance(10 * time.Second)
	t2 := clock.Now()
	flush(t, tel)
	_, p = requestsIn(t, exp.last(t))
	if p.Value != 2 || !p.StartTime.Equal(t1) || !p.Time.Equal(t2) {
		t.Errorf("second point %d [%v, %v], want 2 [%v, %v]", p.Value, p.StartTime, p.Time, t1, t2)
	}
	h, _ = histIn(t, exp.last(t), ScopeName, semconv.MetricRequestLatency)
	if h.Count != 2 || math.Abs(h.Sum-0.004) > 1e-12 || !h.StartTime.Equal(t1) {
		t.Errorf("latency count %d sum %g start %v, want 2 0.004 %v", h.Count, h.Sum, h.StartTime, t1)
	}
	if want := []uint64{0, 0, 0, 0, 0, 2}; !slices.Equal(h.BucketCounts[:len(want)], want) {
		t.Errorf("latency buckets %v, want 2 in (1ms, 2.5ms]", h.BucketCounts)
	}

	// Nothing new: the counter is left out, the in-flight gauge is not.
	clock.Advance(10 * time.Second)
	flush(t, tel)
	if _, ok := metricIn(exp.last(t), ScopeName, semconv.MetricRequests); ok {
		t.Error("an interval without requests exported drover.requests")
	}
	if _, n := inFlightIn(t, exp.last(t)); n != 1 {
		t.Errorf("in-flight %d, want 1", n)
	}
	// The next point covers the empty interval too.
	tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	clock.Advance(10 * time.Second)
	flush(t, tel)
	if _, p = requestsIn(t, exp.last(t)); p.Value != 1 || !p.StartTime.Equal(t2) {
		t.Errorf("point after an empty interval %d from %v, want 1 from %v", p.Value, p.StartTime, t2)
	}
}

// TestDeltaExportFailure fails one export: the next one carries the counts
// of both intervals, from the end of the last successful one.
func TestDeltaExportFailure(t *testing.T) {
	clock := testenv.NewClock(t0)
	exp := &captureMetrics{}
	tel := newCaptured(t, TemporalityDelta, exp, clock)
	d := tel.Distribution("iris", "3", "x", KindInput, []float64{1})
	tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	d.Observe(0)
	clock.Advance(10 * time.Second)
	acked := clock.Now()
	flush(t, tel)
	if _, p := requestsIn(t, exp.last(t)); p.Value != 2 {
		t.Fatalf("first export %d, want 2", p.Value)
	}

	exp.failNext(1)
	for range 3 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	d.Observe(5)
	clock.Advance(10 * time.Second)
	if err := tel.ForceFlush(context.Background()); err == nil {
		t.Fatal("ForceFlush succeeded, want the export's error")
	}

	for range 4 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	d.Observe(0)
	clock.Advance(10 * time.Second)
	flush(t, tel)
	_, p := requestsIn(t, exp.last(t))
	if p.Value != 7 || !p.StartTime.Equal(acked) {
		t.Errorf("export after the failure %d from %v, want 3+4 from %v", p.Value, p.StartTime, acked)
	}
	h, _ := histIn(t, exp.last(t), ScopeName, semconv.MetricRequestLatency)
	if h.Count != 7 {
		t.Errorf("latency count %d, want 7", h.Count)
	}
	dp, _ := histIn(t, exp.last(t), ScopeName+"/distribution", semconv.MetricDistribution)
	if !slices.Equal(dp.BucketCounts, []uint64{1, 1}) || dp.Sum != 5 || !dp.StartTime.Equal(acked) {
		t.Errorf("distribution %v sum %g from %v, want [1 1] 5 from %v", dp.BucketCounts, dp.Sum, dp.StartTime, acked)
	}
	// Across the successful exports, every request is counted once.
	var total int64
	for _, rm := range exp.exports() {
		if m, ok := metricIn(rm, ScopeName, semconv.MetricRequests); ok {
			total += m.Data.(metricdata.Sum[int64]).DataPoints[0].Value
		}
	}
	if total != 9 {
		t.Errorf("exported %d requests in all, want 9", total)
	}
	if v := promValue(scrape(tel), `drover_requests_total{drover_model="iris"`); v != "9" {
		t.Errorf("prometheus drover_requests_total %q, want 9", v)
	}
}

// TestDeltaDistribution checks fixed-bin buckets as deltas, without min and
// max, while Prometheus keeps showing the totals.
func TestDeltaDistribution(t *testing.T) {
	clock := testenv.NewClock(t0)
	exp := &captureMetrics{}
	tel := newCaptured(t, TemporalityDelta, exp, clock)
	d := tel.Distribution("iris", "3", "petal_length", KindInput, []float64{1, 2, 3})
	for _, v := range []float64{0.5, 1.5, 2.5, 10} {
		d.Observe(v)
	}
	for range 3 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	clock.Advance(10 * time.Second)
	t1 := clock.Now()
	flush(t, tel)
	p, temporality := histIn(t, exp.last(t), ScopeName+"/distribution", semconv.MetricDistribution)
	if temporality != metricdata.DeltaTemporality {
		t.Errorf("distribution is %v, want delta", temporality)
	}
	if !slices.Equal(p.BucketCounts, []uint64{1, 1, 1, 1}) || p.Count != 4 || p.Sum != 14.5 || !p.StartTime.Equal(t0) {
		t.Errorf("first point %v count %d sum %g from %v, want [1 1 1 1] 4 14.5 from %v", p.BucketCounts, p.Count, p.Sum, p.StartTime, t0)
	}
	if _, ok := p.Min.Value(); ok {
		t.Error("a delta point has a min")
	}
	if _, ok := p.Max.Value(); ok {
		t.Error("a delta point has a max")
	}

	for _, v := range []float64{0.5, 0.75, 3} {
		d.Observe(v)
	}
	tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	clock.Advance(10 * time.Second)
	flush(t, tel)
	p, _ = histIn(t, exp.last(t), ScopeName+"/distribution", semconv.MetricDistribution)
	if !slices.Equal(p.BucketCounts, []uint64{2, 0, 1, 0}) || p.Count != 3 || p.Sum != 4.25 || !p.StartTime.Equal(t1) {
		t.Errorf("second point %v count %d sum %g from %v, want [2 0 1 0] 3 4.25 from %v", p.BucketCounts, p.Count, p.Sum, p.StartTime, t1)
	}
	if !slices.Equal(p.Bounds, []float64{1, 2, 3}) {
		t.Errorf("bounds %v", p.Bounds)
	}

	// Prometheus reads the same series, cumulative.
	text := scrape(tel)
	const petal = `drover_distribution_bucket{drover_feature="petal_length",drover_feature_kind="input",drover_model="iris",drover_model_version="3"`
	for _, want := range []struct{ prefix, value string }{
		{`drover_requests_total{drover_model="iris"`, "5"},
		{`drover_request_duration_seconds_count{drover_model="iris"`, "5"},
		{petal + `,*le="1"}`, "3"},
		{petal + `,*le="2"}`, "4"},
		{petal + `,*le="3"}`, "6"},
		{petal + `,*le="+Inf"}`, "7"},
		{`drover_distribution_count{drover_feature="petal_length"`, "7"},
	} {
		if got := promValue(text, want.prefix); got != want.value {
			t.Errorf("%s... = %q, want %s", want.prefix, got, want.value)
		}
	}
}

// TestDeltaForget checks that a forgotten version's last counts are
// exported once, merged with a series that replaced it, and that its state
// is then dropped.
func TestDeltaForget(t *testing.T) {
	clock := testenv.NewClock(t0)
	exp := &captureMetrics{}
	tel := newCaptured(t, TemporalityDelta, exp, clock)
	record := func(n int) {
		for range n {
			tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
		}
		tel.Distribution("iris", "3", "x", KindInput, []float64{1}).Observe(float64(n))
	}
	record(1)
	clock.Advance(10 * time.Second)
	t1 := clock.Now()
	flush(t, tel)

	record(2)
	tel.ForgetVersion("iris", "3")
	exp.failNext(1) // the last delta survives a failed export too
	if err := tel.ForceFlush(context.Background()); err == nil {
		t.Fatal("ForceFlush succeeded, want the export's error")
	}
	record(5) // the same version again: new series
	clock.Advance(10 * time.Second)
	flush(t, tel)
	_, p := requestsIn(t, exp.last(t))
	if p.Value != 7 || !p.StartTime.Equal(t1) {
		t.Errorf("requests %d from %v, want 2 (forgotten) + 5 (new) from %v", p.Value, p.StartTime, t1)
	}
	dp, _ := histIn(t, exp.last(t), ScopeName+"/distribution", semconv.MetricDistribution)
	if !slices.Equal(dp.BucketCounts, []uint64{0, 2}) || dp.Sum != 7 {
		t.Errorf("distribution %v sum %g, want [0 2] 7", dp.BucketCounts, dp.Sum)
	}

	dl := tel.series.delta
	dl.mu.Lock()
	retired, acked := len(dl.retiredReqs)+len(dl.retiredDists), len(dl.acked)
	dl.mu.Unlock()
	if retired != 0 || acked != 2 {
		t.Errorf("%d retired series, %d acked; want 0 and 2 (the new request series and distribution)", retired, acked)
	}

	tel.ForgetVersion("iris", "3")
	clock.Advance(10 * time.Second)
	flush(t, tel)
	if _, ok := metricIn(exp.last(t), ScopeName, semconv.MetricRequests); ok {
		t.Error("a forgotten version without new requests is still exported")
	}
	dl.mu.Lock()
	retired, acked = len(dl.retiredReqs)+len(dl.retiredDists), len(dl.acked)
	dl.mu.Unlock()
	if retired != 0 || acked != 0 {
		t.Errorf("after forgetting everything: %d retired series, %d acked; want none", retired, acked)
	}
}

// TestCumulativeTemporality checks that temporality cumulative exports
// totals, as before delta existed.
func TestCumulativeTemporality(t *testing.T) {
	clock := testenv.NewClock(t0)
	exp := &captureMetrics{}
	tel := newCaptured(t, TemporalityCumulative, exp, clock)
	if tel.series.delta != nil {
		t.Fatal("a delta producer with temporality cumulative")
	}
	d := tel.Distribution("iris", "3", "x", KindInput, []float64{1})
	for range 3 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	d.Observe(0.5)
	clock.Advance(10 * time.Second)
	flush(t, tel)
	for range 2 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
	}
	d.Observe(4)
	clock.Advance(10 * time.Second)
	t2 := clock.Now()
	flush(t, tel)

	s, p := requestsIn(t, exp.last(t))
	if s.Temporality != metricdata.CumulativeTemporality || p.Value != 5 || !p.StartTime.Equal(t0) || !p.Time.Equal(t2) {
		t.Errorf("drover.requests %v %d [%v, %v], want cumulative 5 [%v, %v]", s.Temporality, p.Value, p.StartTime, p.Time, t0, t2)
	}
	dp, temporality := histIn(t, exp.last(t), ScopeName+"/distribution", semconv.MetricDistribution)
	lo, okMin := dp.Min.Value()
	hi, okMax := dp.Max.Value()
	if temporality != metricdata.CumulativeTemporality || !slices.Equal(dp.BucketCounts, []uint64{1, 1}) ||
		!okMin || !okMax || lo != 0.5 || hi != 4 {
		t.Errorf("distribution %v %v min %g max %g, want cumulative [1 1] 0.5 4", temporality, dp.BucketCounts, lo, hi)
	}
	// Nothing new: the totals are exported again.
	flush(t, tel)
	if _, p = requestsIn(t, exp.last(t)); p.Value != 5 {
		t.Errorf("drover.requests %d, want 5 again", p.Value)
	}
}

// TestDeltaConcurrent records from several goroutines while exports, some
// failing, run: the successful exports add up to exactly what was
// recorded.
func TestDeltaConcurrent(t *testing.T) {
	exp := &captureMetrics{failEvery: 3}
	tel, err := New(context.Background(), Config{Interval: time.Hour}, testResource, nil,
		WithMetricExporter(exp), WithLogExporter(discardLogs{}))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			d := tel.Distribution("iris", "3", "x", KindInput, []float64{0.5})
			for i := range each {
				tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
				d.Observe(float64((w + i) % 2))
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	flushes := 0
	for running := true; running; flushes++ {
		select {
		case <-done:
			running = false
		default:
		}
		_ = tel.ForceFlush(context.Background()) // every third fails
	}
	exp.mu.Lock()
	exp.failEvery = 0
	exp.mu.Unlock()
	flush(t, tel)

	var requests, latency, dist uint64
	var buckets [2]uint64
	for _, rm := range exp.exports() {
		if m, ok := metricIn(rm, ScopeName, semconv.MetricRequests); ok {
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				requests += uint64(p.Value)
			}
		}
		if m, ok := metricIn(rm, ScopeName, semconv.MetricRequestLatency); ok {
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				latency += p.Count
			}
		}
		if m, ok := metricIn(rm, ScopeName+"/distribution", semconv.MetricDistribution); ok {
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				dist += p.Count
				buckets[0] += p.BucketCounts[0]
				buckets[1] += p.BucketCounts[1]
			}
		}
	}
	if requests != workers*each || latency != workers*each || dist != workers*each || buckets != [2]uint64{workers * each / 2, workers * each / 2} {
		t.Errorf("after %d flushes: requests %d, latency count %d, distribution %d %v; want %d each, buckets halved",
			flushes, requests, latency, dist, buckets, workers*each)
	}
}
