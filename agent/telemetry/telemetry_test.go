package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testResource = ResourceInfo{AgentID: "agent-7", HostName: "host-a", Version: "1.2.3"}

func shutdown(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestExport sends every kind of data to an in-test OTLP receiver and checks
// what arrives, over gRPC with periodic exports and over HTTP/protobuf with
// ForceFlush, with delta (the default) and cumulative temporality. Totals
// are taken as a backend would: a delta series is the sum of its points
// over every export, a cumulative one its latest point.
func TestExport(t *testing.T) {
	for _, tc := range []struct {
		name        string
		protocol    string
		start       func(*testing.T) *receiver
		interval    time.Duration
		flush       bool
		temporality string
	}{
		{"grpc periodic", ProtocolGRPC, startGRPCReceiver, 100 * time.Millisecond, false, ""},
		{"http flush", ProtocolHTTP, startHTTPReceiver, time.Hour, true, ""},
		{"http flush cumulative", ProtocolHTTP, startHTTPReceiver, time.Hour, true, TemporalityCumulative},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantTemporality := pmetric.AggregationTemporalityDelta
			if tc.temporality == TemporalityCumulative {
				wantTemporality = pmetric.AggregationTemporalityCumulative
			}
			rcv := tc.start(t)
			tel, err := New(context.Background(), Config{
				Endpoint: rcv.addr, Protocol: tc.protocol, Interval: tc.interval, Temporality: tc.temporality,
			}, testResource, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t, tel)

			for range 3 {
				tel.RecordRequest("iris", "3", "rest", "ok", 2*time.Millisecond)
			}
			tel.RecordRequest("iris", "3", "grpc", "error", time.Second)

			fixed := tel.Distribution("iris", "3", "petal_length", KindInput, []float64{1, 2, 3})
			if again := tel.Distribution("iris", "3", "petal_length", KindInput, nil); again != fixed {
				t.Error("Distribution did not return the cached *Dist")
			}
			// Buckets (-Inf,1] (1,2] (2,3] (3,+Inf): 0.5 and 1 | 1.5 | 2.5 and 3 | 10.
			for _, v := range []float64{0.5, 1, 1.5, 2.5, 3, 10, math.NaN()} {
				fixed.Observe(v)
			}
			expo := tel.Distribution("iris", "3", "sepal_width", KindInput, nil)
			for _, v := range []float64{1, 2, 4, 4} {
				expo.Observe(v)
			}

			tel.Event(semconv.EventSwapped, "iris", "3", attribute.String(semconv.AttrPrevious, "2"))
			ts := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			tel.Sample("iris", "3", "req-1", []byte(`{"x":[1,2]}`), []byte(`[0.1, 0.9]`), ts)

			if tc.flush {
				if err := tel.ForceFlush(context.Background()); err != nil {
					t.Fatalf("ForceFlush: %v", err)
				}
			}

			featureAttrs := func(f string) map[string]string {
				return map[string]string{
					semconv.AttrModel: "iris", semconv.AttrModelVersion: "3",
					semconv.AttrFeature: f, semconv.AttrFeatureKind: KindInput,
				}
			}
			restOK := map[string]string{semconv.AttrProtocol: "rest", semconv.AttrStatus: "ok"}
			grpcError := map[string]string{semconv.AttrProtocol: "grpc", semconv.AttrStatus: "error"}
			// With periodic exports, the data may arrive over several.
			testenv.Eventually(t, 15*time.Second, "drover.requests = 3 and 1, and both distributions", func() bool {
				em, _, ok := rcv.lastMetric(semconv.MetricDistribution, pmetric.MetricTypeExponentialHistogram, ScopeName)
				expo := false
				for i := 0; ok && i < em.ExponentialHistogram().DataPoints().Len(); i++ {
					ep := em.ExponentialHistogram().DataPoints().At(i)
					expo = expo || (matches(ep.Attributes(), featureAttrs("sepal_width")) && ep.Count() == 4)
				}
				return expo && rcv.sumTotal(t, semconv.MetricRequests, ScopeName, restOK) == 3 &&
					rcv.sumTotal(t, semconv.MetricRequests, ScopeName, grpcError) == 1 &&
					rcv.histTotal(t, semconv.MetricDistribution, ScopeName+"/distribution", featureAttrs("petal_length")).count == 6 &&
					rcv.sumTotal(t, semconv.MetricDistInvalid, ScopeName, featureAttrs("petal_length")) == 1
			})

			// Requests: a counter with all four attributes and the right sums.
			requests, _, _ := rcv.lastMetric(semconv.MetricRequests, pmetric.MetricTypeSum, ScopeName)
			if !requests.Sum().IsMonotonic() || requests.Sum().AggregationTemporality() != wantTemporality {
				t.Errorf("drover.requests: want a monotonic %v sum", wantTemporality)
			}
			want := map[string]string{
				semconv.AttrModel: "iris", semconv.AttrModelVersion: "3",
				semconv.AttrProtocol: "rest", semconv.AttrStatus: "ok",
			}
			if got := rcv.sumTotal(t, semconv.MetricRequests, ScopeName, want); got != 3 {
				t.Errorf("drover.requests with attributes %v: %d, want 3", want, got)
			}

			// Resource.
			_, res, _ := rcv.lastMetric(semconv.MetricRequests, pmetric.MetricTypeSum, ScopeName)
			wantRes := map[string]string{
				semconv.AttrServiceName: semconv.ServiceNameAgent, semconv.AttrHostName: "host-a",
				semconv.AttrAgentID: "agent-7", semconv.AttrServiceVersion: "1.2.3",
			}
			if !matches(res.Attributes(), wantRes) {
				t.Errorf("resource %v, want %v", res.Attributes().AsRaw(), wantRes)
			}

			// Latency histogram.
			lat, _, ok := rcv.lastMetric(semconv.MetricRequestLatency, pmetric.MetricTypeHistogram, ScopeName)
			if !ok {
				t.Fatal("no drover.request.duration histogram")
			}
			if lat.Unit() != "s" {
				t.Errorf("latency unit %q", lat.Unit())
			}
			p := rcv.histTotal(t, semconv.MetricRequestLatency, ScopeName, want)
			if p.count != 3 || math.Abs(p.sum-0.006) > 1e-9 || p.temporality != wantTemporality {
				t.Errorf("latency count %d sum %g %v, want 3 and 0.006 %v", p.count, p.sum, p.temporality, wantTemporality)
			}
			if !slices.Equal(p.bounds, latencyBounds) {
				t.Errorf("latency bounds %v", p.bounds)
			}

			// Fixed-bin distribution: exactly the manifest's bounds.
			dp := rcv.histTotal(t, semconv.MetricDistribution, ScopeName+"/distribution", featureAttrs("petal_length"))
			if dp.temporality != wantTemporality {
				t.Errorf("fixed-bin distribution is %v, want %v", dp.temporality, wantTemporality)
			}
			if !slices.Equal(dp.bounds, []float64{1, 2, 3}) {
				t.Errorf("bounds %v, want [1 2 3]", dp.bounds)
			}
			if !slices.Equal(dp.counts, []uint64{2, 1, 2, 1}) {
				t.Errorf("bucket counts %v, want [2 1 2 1]", dp.counts)
			}
			if dp.count != 6 || dp.sum != 18.5 {
				t.Errorf("count %d sum %g, want 6 18.5", dp.count, dp.sum)
			}
			// Min and max are since the series started: only cumulative
			// points carry them.
			if wantMin := wantTemporality == pmetric.AggregationTemporalityCumulative; dp.hasMin != wantMin ||
				(wantMin && (dp.min != 0.5 || dp.max != 10)) {
				t.Errorf("min %g max %g (present %v), want 0.5 10 only if cumulative", dp.min, dp.max, dp.hasMin)
			}
			dm, _, _ := rcv.lastMetric(semconv.MetricDistribution, pmetric.MetricTypeHistogram, ScopeName+"/distribution")
			if last, ok := histPoint(dm.Histogram().DataPoints(), featureAttrs("petal_length")); !ok ||
				last.StartTimestamp() == 0 || last.StartTimestamp() > last.Timestamp() {
				t.Errorf("start %v, time %v", last.StartTimestamp(), last.Timestamp())
			}

			// Exponential distribution for the feature without bins: the SDK
			// aggregates it, cumulative whatever the configured temporality.
			em, _, ok := rcv.lastMetric(semconv.MetricDistribution, pmetric.MetricTypeExponentialHistogram, ScopeName)
			if !ok {
				t.Fatal("no exponential drover.distribution")
			}
			if tm := em.ExponentialHistogram().AggregationTemporality(); tm != pmetric.AggregationTemporalityCumulative {
				t.Errorf("exponential distribution is %v, want cumulative", tm)
			}
			var found bool
			for i := 0; i < em.ExponentialHistogram().DataPoints().Len(); i++ {
				ep := em.ExponentialHistogram().DataPoints().At(i)
				if matches(ep.Attributes(), featureAttrs("sepal_width")) {
					found = true
					if ep.Count() != 4 || ep.Sum() != 11 {
						t.Errorf("exponential count %d sum %g, want 4 and 11", ep.Count(), ep.Sum())
					}
				}
			}
			if !found {
				t.Error("no sepal_width exponential point")
			}
			inv, _, ok := rcv.lastMetric(semconv.MetricDistInvalid, pmetric.MetricTypeSum, ScopeName)
			if !ok || sumValue(inv, featureAttrs("petal_length")) != 1 {
				t.Error("drover.distribution.invalid: want 1 for petal_length")
			}

			// Event and sample.
			var recs []string
			testenv.Eventually(t, 15*time.Second, "an event and a sample", func() bool {
				lrs, _ := rcv.logRecords()
				return len(lrs) >= 2
			})
			lrs, lres := rcv.logRecords()
			var event, sample bool
			for i, lr := range lrs {
				recs = append(recs, lr.EventName())
				if !matches(lres[i].Attributes(), wantRes) {
					t.Errorf("log resource %v", lres[i].Attributes().AsRaw())
				}
				switch lr.EventName() {
				case semconv.EventSwapped:
					event = true
					want := map[string]string{
						semconv.AttrEventKind: semconv.EventSwapped, semconv.AttrModel: "iris",
						semconv.AttrModelVersion: "3", semconv.AttrPrevious: "2",
					}
					if !matches(lr.Attributes(), want) {
						t.Errorf("event attributes %v, want %v", lr.Attributes().AsRaw(), want)
					}
				case semconv.EventSample:
					sample = true
					want := map[string]string{
						semconv.AttrEventKind: semconv.EventSample, semconv.AttrModel: "iris",
						semconv.AttrModelVersion: "3", semconv.AttrRequestID: "req-1",
					}
					if !matches(lr.Attributes(), want) {
						t.Errorf("sample attributes %v, want %v", lr.Attributes().AsRaw(), want)
					}
					if !lr.Timestamp().AsTime().Equal(ts) {
						t.Errorf("sample time %v, want %v", lr.Timestamp().AsTime(), ts)
					}
					var body struct {
						Inputs  map[string][]float64 `json:"inputs"`
						Outputs []float64            `json:"outputs"`
					}
					if err := json.Unmarshal([]byte(lr.Body().Str()), &body); err != nil {
						t.Fatalf("sample body %q: %v", lr.Body().Str(), err)
					}
					if !slices.Equal(body.Inputs["x"], []float64{1, 2}) || !slices.Equal(body.Outputs, []float64{0.1, 0.9}) {
						t.Errorf("sample body %q", lr.Body().Str())
					}
				}
			}
			if !event || !sample {
				t.Errorf("log records %v, want %s and %s", recs, semconv.EventSwapped, semconv.EventSample)
			}
		})
	}
}

func sumValue(m pmetric.Metric, want map[string]string) int64 {
	pts := m.Sum().DataPoints()
	for i := 0; i < pts.Len(); i++ {
		if matches(pts.At(i).Attributes(), want) {
			return pts.At(i).IntValue()
		}
	}
	return -1
}

func histPoint(pts pmetric.HistogramDataPointSlice, want map[string]string) (pmetric.HistogramDataPoint, bool) {
	for i := 0; i < pts.Len(); i++ {
		if matches(pts.At(i).Attributes(), want) {
			return pts.At(i), true
		}
	}
	return pmetric.HistogramDataPoint{}, false
}

// TestPrometheus scrapes the handler with OTLP export disabled.
func TestPrometheus(t *testing.T) {
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)

	tel.RecordRequest("iris", "3", "rest", "ok", 3*time.Millisecond)
	tel.RecordRequest("iris", "3", "rest", "ok", 4*time.Millisecond)
	tel.InFlight("iris", 2)
	tel.InFlight("iris", -1)
	tel.RecordLoad("iris", "3", 1500*time.Millisecond, nil)
	tel.RecordLoad("iris", "4", time.Second, errors.New("bad checksum"))
	tel.RecordSwap("iris")
	tel.RecordSample("iris", "3")
	tel.RecordFeedback("iris", "3", FeedbackJoined)
	tel.RecordShadow("iris", "4", 0.75, math.NaN(), 5*time.Millisecond)
	tel.ShadowDropped("iris")
	tel.SetLoadedVersions(func() map[string]int { return map[string]int{"iris": 2} })
	tel.SetEvalSource(func(yield func(model, version, source, metric, class string, value float64)) {
		yield("iris", "3", "labels", "accuracy", "", 0.9)
		yield("iris", "3", "labels", "f1", "setosa", 0.8)
	})
	d := tel.Distribution("iris", "3", "petal_length", KindInput, []float64{1, 2, 3})
	for _, v := range []float64{0.5, 1, 1.5, 2.5, 3, 10} {
		d.Observe(v)
	}
	tel.Distribution("iris", "3", "sepal_width", KindInput, nil).Observe(2)
	tel.Event(semconv.EventLoaded, "iris", "3") // disabled: nothing happens

	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`drover_requests_total{drover_model="iris",drover_model_version="3",drover_protocol="rest",drover_status="ok",`,
		`drover_request_duration_seconds_bucket{drover_model="iris",drover_model_version="3",drover_protocol="rest",drover_status="ok",`,
		`drover_requests_in_flight{drover_model="iris",`,
		`drover_model_load_duration_seconds_count{drover_model="iris",drover_model_version="3",drover_status="ok",`,
		`drover_model_load_failures_total{drover_model="iris",drover_model_version="4",`,
		`drover_model_swaps_total{drover_model="iris",`,
		`drover_model_loaded_versions{drover_model="iris",`,
		`drover_samples_total{drover_model="iris",drover_model_version="3",`,
		`drover_feedback_total{drover_model="iris",drover_model_version="3",drover_status="joined",`,
		`drover_shadow_agreement_ratio{drover_model="iris",drover_model_version="4",`,
		`drover_shadow_duration_seconds_count{drover_model="iris",drover_model_version="4",`,
		`drover_shadow_dropped_total{drover_model="iris",`,
		`drover_eval{drover_eval_metric="accuracy",drover_eval_source="labels",drover_model="iris",drover_model_version="3",`,
		`drover_eval{drover_eval_class="setosa",drover_eval_metric="f1",`,
		`drover_distribution_bucket{drover_feature="petal_length",drover_feature_kind="input",drover_model="iris",drover_model_version="3",`,
		`target_info{`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	const petal = `drover_distribution_bucket{drover_feature="petal_length",drover_feature_kind="input",drover_model="iris",drover_model_version="3"`
	for _, want := range []struct{ prefix, value string }{
		{`drover_requests_total{drover_model="iris"`, "2"},
		{`drover_requests_in_flight{drover_model="iris"`, "1"},
		{`drover_model_loaded_versions{drover_model="iris"`, "2"},
		{`drover_shadow_agreement_ratio{`, "0.75"},
		// Prometheus buckets are cumulative: le=1: 2, le=2: 3, le=3: 5, +Inf: 6.
		{petal + `,*le="1"}`, "2"},
		{petal + `,*le="2"}`, "3"},
		{petal + `,*le="3"}`, "5"},
		{petal + `,*le="+Inf"}`, "6"},
	} {
		if got := promValue(text, want.prefix); got != want.value {
			t.Errorf("%s... = %q, want %s", want.prefix, got, want.value)
		}
	}
	if strings.Contains(text, "drover_shadow_mean_abs_diff") {
		t.Error("a NaN mean absolute difference was recorded")
	}
	if t.Failed() {
		t.Log(text)
	}
}

// promValue returns the value of the first sample line starting with
// prefix. In prefix, ",*" stands for any other labels before the rest.
func promValue(text, prefix string) string {
	head, tail, _ := strings.Cut(prefix, ",*")
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, head) && strings.Contains(line, tail) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableLogsOncePerInterval points the exporters at a closed port
// and checks that the failures of several exports within one interval make
// one error line, interval after interval, with the count of the others.
func TestUnreachableLogsOncePerInterval(t *testing.T) {
	logs := &logCapture{}
	clock := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	interval := time.Hour // the clock is fake; the SDK's own ticks never fire
	tel, err := New(context.Background(), Config{
		Endpoint: closedAddr(t), Interval: interval, Timeout: 200 * time.Millisecond,
	}, testResource, slog.New(logs), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	const rounds, flushes = 3, 3
	for round := 1; round <= rounds; round++ {
		for range flushes {
			tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
			tel.Event(semconv.EventLoaded, "iris", "3")
			if err := tel.ForceFlush(context.Background()); err == nil {
				t.Fatal("ForceFlush to a closed port succeeded")
			}
		}
		errs := logs.at(slog.LevelError)
		if len(errs) != round {
			for _, r := range errs {
				t.Log(r.Message, attrOf(r, "signal"), attrOf(r, "err"))
			}
			t.Fatalf("round %d: %d error lines, want %d", round, len(errs), round)
		}
		// Each round fails 2 signals x 3 flushes; one line tells, the rest
		// are counted in the next line.
		if round > 1 {
			if got := attrOf(errs[round-1], "suppressed").Int64(); got != 2*flushes-1 {
				t.Errorf("round %d: suppressed = %d, want %d", round, got, 2*flushes-1)
			}
		}
		clock.Advance(interval)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx) // its final export fails too; it must still return
	if n := len(logs.at(slog.LevelError)); n != rounds+1 {
		t.Errorf("after shutdown: %d error lines, want %d", n, rounds+1)
	}
}

// TestCallersNotBlocked points the exporters at a server that accepts
// connections and never answers, so exports hang; recording, events and
// samples must still return, and Shutdown must return by its deadline.
func TestCallersNotBlocked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()

	tel, err := New(context.Background(), Config{
		Endpoint: ln.Addr().String(), Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond, MaxQueue: 8,
	}, testResource, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- tel.ForceFlush(flushCtx) }() // hangs in the export
	for i := range 10000 {
		tel.RecordRequest("iris", "3", "rest", "ok", time.Duration(i)*time.Microsecond)
		tel.Distribution("iris", "3", "x", KindInput, []float64{0, 1}).Observe(float64(i))
	}
	for range 100 {
		tel.Event(semconv.EventLoaded, "iris", "3")
		tel.Sample("iris", "3", "r", []byte(`1`), []byte(`2`), time.Now())
	}
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := promValue(rec.Body.String(), `drover_requests_total{drover_model="iris"`); got != "10000" {
		t.Errorf("requests = %q while exports hang, want 10000", got)
	}
	// At most MaxQueue of the 200 records wait; the rest are counted.
	dropped := 0
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "drover_events_dropped_total{") {
			f := strings.Fields(line)
			var n float64
			_ = json.Unmarshal([]byte(f[len(f)-1]), &n)
			dropped += int(n)
		}
	}
	if dropped < 200-8 {
		t.Errorf("dropped %d events, want at least %d", dropped, 200-8)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tel.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	stopFlush()
	<-flushed
}

// blockingExporter holds every export until released.
type blockingExporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (e *blockingExporter) Export(ctx context.Context, recs []sdklog.Record) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	e.got += len(recs)
	e.mu.Unlock()
	return nil
}
func (e *blockingExporter) Shutdown(context.Context) error   { return nil }
func (e *blockingExporter) ForceFlush(context.Context) error { return nil }

// TestEventsQueueBounded fills the event queue while the exporter is stuck:
// exactly MaxQueue events are kept, the others are dropped and counted.
func TestEventsQueueBounded(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	tel, err := New(context.Background(), Config{Interval: time.Hour, MaxQueue: 4},
		testResource, nil, WithLogExporter(exp), WithMetricExporter(discardMetrics{}))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		tel.Event(semconv.EventLoaded, "iris", "3")
	}
	close(exp.release)
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	got := exp.got
	exp.mu.Unlock()
	if got != 4 {
		t.Errorf("exported %d events, want 4", got)
	}
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if v := promValue(rec.Body.String(), `drover_events_dropped_total{drover_event="version.loaded"`); v != "6" {
		t.Errorf("dropped = %q, want 6", v)
	}
	// The queue is free again.
	tel.Event(semconv.EventLoaded, "iris", "3")
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	got = exp.got
	exp.mu.Unlock()
	if got != 5 {
		t.Errorf("exported %d events, want 5", got)
	}
	shutdown(t, tel)
}

// TestNil checks that a nil *Telemetry records nothing and does not panic.
func TestNil(t *testing.T) {
	var tel *Telemetry
	tel.RecordRequest("m", "1", "rest", "ok", time.Millisecond)
	tel.InFlight("m", 1)
	tel.RecordLoad("m", "1", time.Second, nil)
	tel.RecordSwap("m")
	tel.SetLoadedVersions(nil)
	tel.SetEvalSource(nil)
	tel.RecordSample("m", "1")
	tel.RecordFeedback("m", "1", FeedbackJoined)
	tel.RecordShadow("m", "1", 1, 0, time.Millisecond)
	tel.ShadowDropped("m")
	tel.Distribution("m", "1", "x", KindInput, nil).Observe(1)
	tel.Event(semconv.EventLoaded, "m", "1")
	tel.Sample("m", "1", "r", nil, nil, time.Now())
	tel.ForgetVersion("m", "1")
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Error(err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Errorf("nil handler status %d", rec.Code)
	}
}

// TestForgetVersion checks that a forgotten version's fixed-bin
// distributions stop being exported and that a new one starts from zero.
func TestForgetVersion(t *testing.T) {
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)
	tel.Distribution("iris", "3", "x", KindInput, []float64{1}).Observe(0)
	tel.Distribution("iris", "4", "x", KindInput, []float64{1}).Observe(0)
	tel.ForgetVersion("iris", "3")
	scrape := func() string {
		rec := httptest.NewRecorder()
		tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	text := scrape()
	if strings.Contains(text, `drover_model_version="3"`) {
		t.Error("version 3 still exported")
	}
	if !strings.Contains(text, `drover_model_version="4"`) {
		t.Error("version 4 not exported")
	}
	tel.Distribution("iris", "3", "x", KindInput, []float64{1}).Observe(5)
	if v := promValue(scrape(), `drover_distribution_count{drover_feature="x",drover_feature_kind="input",drover_model="iris",drover_model_version="3"`); v != "1" {
		t.Errorf("re-created version 3 count %q, want 1", v)
	}
}

// TestBadBins checks that bins that are not strictly increasing fall back
// to an exponential histogram, with a warning.
func TestBadBins(t *testing.T) {
	logs := &logCapture{}
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)
	for name, bins := range map[string][]float64{
		"equal":      {1, 1, 2},
		"decreasing": {3, 2},
		"nan":        {1, math.NaN()},
		"inf":        {1, math.Inf(1)},
	} {
		if d := tel.Distribution("m", "1", name, KindOutput, bins); d.Bounds() != nil {
			t.Errorf("%s: bins %v accepted", name, bins)
		}
	}
	if n := len(logs.at(slog.LevelWarn)); n != 4 {
		t.Errorf("%d warnings, want 4", n)
	}
	bins := []float64{1, 2}
	d := tel.Distribution("m", "1", "ok", KindOutput, bins)
	bins[0] = 100
	if !slices.Equal(d.Bounds(), []float64{1, 2}) {
		t.Errorf("bounds %v follow the caller's slice", d.Bounds())
	}
}

// discardMetrics is a metric exporter that drops everything.
type discardMetrics struct{}

func (discardMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (discardMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (discardMetrics) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (discardMetrics) ForceFlush(context.Context) error                          { return nil }
func (discardMetrics) Shutdown(context.Context) error                            { return nil }

// TestSampleBody checks the JSON body for JSON and empty parts.
func TestSampleBody(t *testing.T) {
	for _, tc := range []struct{ in, out, want string }{
		{`{"a":1}`, `[1]`, `{"inputs":{"a":1},"outputs":[1]}`},
		{``, `2`, `{"inputs":null,"outputs":2}`},
	} {
		var b []byte
		b = append(b, `{"inputs":`...)
		b = appendJSON(b, []byte(tc.in))
		b = append(b, `,"outputs":`...)
		b = appendJSON(b, []byte(tc.out))
		b = append(b, '}')
		if string(b) != tc.want || !json.Valid(b) {
			t.Errorf("body %s, want %s", b, tc.want)
		}
	}
}

// TestConcurrentRecording records from several goroutines while scraping,
// and checks the totals.
func TestConcurrentRecording(t *testing.T) {
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tel.PrometheusHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		}
	}()
	for w := range workers {
		wg.Go(func() {
			d := tel.Distribution("iris", "3", "x", KindInput, []float64{0.5})
			for i := range each {
				tel.InFlight("iris", 1)
				tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
				d.Observe(float64((w + i) % 2))
				tel.InFlight("iris", -1)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-scraped
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []struct{ prefix, value string }{
		{`drover_requests_total{drover_model="iris"`, "8000"},
		{`drover_request_duration_seconds_count{drover_model="iris"`, "8000"},
		{`drover_requests_in_flight{drover_model="iris"`, "0"},
		{`drover_distribution_bucket{drover_feature="x",*le="0.5"}`, "4000"},
		{`drover_distribution_count{drover_feature="x"`, "8000"},
	} {
		if got := promValue(text, want.prefix); got != want.value {
			t.Errorf("%s = %q, want %s", want.prefix, got, want.value)
		}
	}
	sum, err := strconv.ParseFloat(promValue(text, `drover_request_duration_seconds_sum{drover_model="iris"`), 64)
	if err != nil || math.Abs(sum-8) > 1e-6 {
		t.Errorf("latency sum %g (%v), want 8", sum, err)
	}
}

// TestRequestSeriesLimit checks that series beyond the limit are counted
// in one overflow series rather than lost or kept without bound.
func TestRequestSeriesLimit(t *testing.T) {
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, tel)
	for v := range maxSeries + 5 {
		tel.RecordRequest("m", strconv.Itoa(v), "rest", "ok", time.Millisecond)
	}
	tel.RecordRequest("m", "0", "rest", "ok", time.Millisecond) // an existing series still counts on its own
	sms, err := tel.series.Produce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sms[0].Metrics {
		if m.Name != semconv.MetricRequests {
			continue
		}
		pts := m.Data.(metricdata.Sum[int64]).DataPoints
		if len(pts) != maxSeries+1 {
			t.Fatalf("%d series, want %d", len(pts), maxSeries+1)
		}
		var overflow, first int64
		for _, p := range pts {
			if v, ok := p.Attributes.Value("otel.metric.overflow"); ok && v.AsBool() {
				overflow = p.Value
			}
			if v, ok := p.Attributes.Value(semconv.AttrModelVersion); ok && v.AsString() == "0" {
				first = p.Value
			}
		}
		if overflow != 5 || first != 2 {
			t.Errorf("overflow %d, version 0 %d; want 5 and 2", overflow, first)
		}
		return
	}
	t.Fatal("no drover.requests")
}

// TestTokenFile: telemetry.token_file's token is sent as a bearer token
// with every export; a missing or malformed file is a start error.
func TestTokenFile(t *testing.T) {
	rcv := startGRPCReceiver(t)
	path := filepath.Join(t.TempDir(), "agent.token")
	if err := os.WriteFile(path, []byte("drover_secret_token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tel, err := New(context.Background(), Config{Endpoint: rcv.addr, Interval: time.Hour, TokenFile: path}, testResource, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	got := slices.Clone(rcv.auth)
	rcv.mu.Unlock()
	if len(got) == 0 || slices.ContainsFunc(got, func(a string) bool { return a != "Bearer drover_secret_token" }) {
		t.Errorf("authorization sent: %q", got)
	}
	for _, content := range []string{"", "two tokens\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(context.Background(), Config{Endpoint: rcv.addr, TokenFile: path}, testResource, nil); err == nil || !strings.Contains(err.Error(), "token_file") {
			t.Errorf("token file %q: %v", content, err)
		}
	}
	if _, err := New(context.Background(), Config{Endpoint: rcv.addr, TokenFile: path + ".missing"}, testResource, nil); err == nil {
		t.Error("a missing token file was accepted")
	}
}
