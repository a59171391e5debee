package telemetry

import (
	"context"
	"errors"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/drover-ml/drover/shared/semconv"
)

// Bucket boundaries, in seconds.
var (
	// latencyBounds covers inference from 50µs to 10s, about three
	// buckets per decade.
	latencyBounds = []float64{
		0.00005, 0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
		0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	}
	// loadBounds covers load + check + warm-up, from 10ms to 10 minutes.
	loadBounds = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

const (
	requestsDescription = "Inference requests by model, version, protocol and outcome."
	latencyDescription  = "Inference latency, from request decoded to response ready."
	inFlightDescription = "Inference requests in progress."
)

// instruments are the SDK instruments; the per-request ones live in
// producer (see series.go).
type instruments struct {
	loadDuration  metric.Float64Histogram
	loadFailures  metric.Int64Counter
	swaps         metric.Int64Counter
	samples       metric.Int64Counter
	feedback      metric.Int64Counter
	dist          metric.Float64Histogram // without bins: base-2 exponential (a view)
	distInvalid   metric.Int64Counter
	shadowAgree   metric.Float64Gauge
	shadowMAD     metric.Float64Gauge
	shadowLatency metric.Float64Histogram
	shadowDropped metric.Int64Counter
	eventsDropped metric.Int64Counter
	panics        metric.Int64Counter
}

func (in *instruments) init(m metric.Meter, t *Telemetry) error {
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	in.loadDuration, err = m.Float64Histogram(semconv.MetricLoadDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to load, check and warm up a model version, by outcome."),
		metric.WithExplicitBucketBoundaries(loadBounds...))
	check(err)
	in.loadFailures, err = m.Int64Counter(semconv.MetricLoadFailures, metric.WithUnit("{failure}"),
		metric.WithDescription("Model version loads that failed."))
	check(err)
	in.swaps, err = m.Int64Counter(semconv.MetricSwaps, metric.WithUnit("{swap}"),
		metric.WithDescription("Changes of the version serving a model."))
	check(err)
	_, err = m.Int64ObservableGauge(semconv.MetricLoadedVersions, metric.WithUnit("{version}"),
		metric.WithDescription("Versions of each model loaded in memory."),
		metric.WithInt64Callback(t.observeLoaded))
	check(err)
	_, err = m.Float64ObservableGauge(semconv.MetricEval,
		metric.WithDescription("Evaluation metric of a model version over its current window."),
		metric.WithFloat64Callback(t.observeEval))
	check(err)
	in.samples, err = m.Int64Counter(semconv.MetricSamples, metric.WithUnit("{request}"),
		metric.WithDescription("Requests sampled for evaluation and training data."))
	check(err)
	in.feedback, err = m.Int64Counter(semconv.MetricFeedback, metric.WithUnit("{label}"),
		metric.WithDescription("Labels received through feedback, by outcome."))
	check(err)
	in.dist, err = m.Float64Histogram(semconv.MetricDistribution,
		metric.WithDescription(distDescription))
	check(err)
	in.distInvalid, err = m.Int64Counter(semconv.MetricDistInvalid, metric.WithUnit("{value}"),
		metric.WithDescription("NaN or infinite values left out of a distribution."))
	check(err)
	in.shadowAgree, err = m.Float64Gauge(semconv.MetricShadowAgree, metric.WithUnit("1"),
		metric.WithDescription("Share of shadow answers that agree with the primary's."))
	check(err)
	in.shadowMAD, err = m.Float64Gauge(semconv.MetricShadowMAD,
		metric.WithDescription("Mean absolute difference between shadow and primary outputs."))
	check(err)
	in.shadowLatency, err = m.Float64Histogram(semconv.MetricShadowLatency, metric.WithUnit("s"),
		metric.WithDescription("Latency of shadow inferences."),
		metric.WithExplicitBucketBoundaries(latencyBounds...))
	check(err)
	in.shadowDropped, err = m.Int64Counter(semconv.MetricShadowDropped, metric.WithUnit("{request}"),
		metric.WithDescription("Shadow copies dropped because the shadow queue was full (monitoring.shadow_queue copies or monitoring.shadow_queue_bytes bytes)."))
	check(err)
	in.eventsDropped, err = m.Int64Counter(semconv.MetricEventsDropped, metric.WithUnit("{event}"),
		metric.WithDescription("Events and samples dropped because the export queue was full."))
	check(err)
	in.panics, err = m.Int64Counter(semconv.MetricPanics, metric.WithUnit("{panic}"),
		metric.WithDescription("Request handler panics recovered and answered 500 / Internal, by protocol."))
	check(err)
	return errors.Join(errs...)
}

// Kinds of cached attribute sets.
const (
	setRequest  uint8 = iota // model, version, protocol, status
	setModel                 // model
	setVersion               // model, version
	setStatus                // model, version, status
	setFeature               // model, version, feature, kind
	setEventKnd              // event kind
	setProtocol              // protocol
)

// attrKey names one cached attribute set.
type attrKey struct {
	kind       uint8
	a, b, c, d string
}

// attrOpts is an attribute set with the option slices that carry it, built
// once so that recording allocates nothing.
type attrOpts struct {
	set attribute.Set
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
}

func newAttrOpts(k attrKey) *attrOpts {
	var kv []attribute.KeyValue
	switch k.kind {
	case setRequest:
		kv = []attribute.KeyValue{
			attribute.String(semconv.AttrModel, k.a), attribute.String(semconv.AttrModelVersion, k.b),
			attribute.String(semconv.AttrProtocol, k.c), attribute.String(semconv.AttrStatus, k.d),
		}
	case setModel:
		kv = []attribute.KeyValue{attribute.String(semconv.AttrModel, k.a)}
	case setVersion:
		kv = []attribute.KeyValue{
			attribute.String(semconv.AttrModel, k.a), attribute.String(semconv.AttrModelVersion, k.b),
		}
	case setStatus:
		kv = []attribute.KeyValue{
			attribute.String(semconv.AttrModel, k.a), attribute.String(semconv.AttrModelVersion, k.b),
			attribute.String(semconv.AttrStatus, k.c),
		}
	case setFeature:
		kv = []attribute.KeyValue{
			attribute.String(semconv.AttrModel, k.a), attribute.String(semconv.AttrModelVersion, k.b),
			attribute.String(semconv.AttrFeature, k.c), attribute.String(semconv.AttrFeatureKind, k.d),
		}
	case setEventKnd:
		kv = []attribute.KeyValue{attribute.String(semconv.AttrEventKind, k.a)}
	case setProtocol:
		kv = []attribute.KeyValue{attribute.String(semconv.AttrProtocol, k.a)}
	}
	set := attribute.NewSet(kv...)
	opt := metric.WithAttributeSet(set)
	return &attrOpts{
		set: set,
		add: []metric.AddOption{opt},
		rec: []metric.RecordOption{opt},
		obs: []metric.ObserveOption{opt},
	}
}

// maxCachedSets bounds the attribute cache; sets beyond it are built per
// call (correct, but allocating).
const maxCachedSets = 4096

// attrCache maps keys to prebuilt attribute sets.
type attrCache struct{ m cowMap[attrKey, *attrOpts] }

func (c *attrCache) get(k attrKey) *attrOpts {
	if v, ok := c.m.load(k); ok {
		return v
	}
	return c.m.loadOrStore(k, maxCachedSets, func() *attrOpts { return newAttrOpts(k) }, func() *attrOpts { return newAttrOpts(k) })
}

// forget drops the sets of one model version.
func (c *attrCache) forget(model, version string) {
	c.m.deleteFunc(func(k attrKey, _ *attrOpts) bool {
		return k.kind != setModel && k.kind != setEventKnd && k.kind != setProtocol && k.a == model && k.b == version
	})
}

// RecordRequest counts one inference request and records its latency.
// status is one of ok, bad_request, not_found, unavailable, timeout, error;
// protocol is rest or grpc. After the first call with the same arguments
// it does not allocate or lock: it costs a map lookup and two atomic adds.
func (t *Telemetry) RecordRequest(model, version, protocol, status string, d time.Duration) {
	if t == nil {
		return
	}
	t.series.request(model, version, protocol, status).latency.observe(d.Seconds())
}

// InFlight adds delta (+1 when a request starts, -1 when it ends) to the
// model's requests in progress.
func (t *Telemetry) InFlight(model string, delta int64) {
	if t == nil {
		return
	}
	t.series.gauge(model).n.Add(delta)
}

// RecordLoad records one load attempt of a version: its duration (with
// status ok or error) and, when err is not nil, a load failure.
func (t *Telemetry) RecordLoad(model, version string, d time.Duration, err error) {
	if t == nil {
		return
	}
	ctx := context.Background()
	status := "ok"
	if err != nil {
		status = "error"
		t.inst.loadFailures.Add(ctx, 1, t.attrs.get(attrKey{kind: setVersion, a: model, b: version}).add...)
	}
	a := t.attrs.get(attrKey{kind: setStatus, a: model, b: version, c: status})
	t.inst.loadDuration.Record(ctx, d.Seconds(), a.rec...)
}

// RecordSwap counts a change of the version serving model.
func (t *Telemetry) RecordSwap(model string) {
	if t == nil {
		return
	}
	t.inst.swaps.Add(context.Background(), 1, t.attrs.get(attrKey{kind: setModel, a: model}).add...)
}

// SetLoadedVersions sets the function that the drover.model.loaded_versions
// gauge calls at each collection: model name to the number of its versions
// in memory. It is called from the exporters' goroutines and must be safe
// for that; nil removes it.
func (t *Telemetry) SetLoadedVersions(f func() map[string]int) {
	if t == nil {
		return
	}
	if f == nil {
		t.loaded.Store(nil)
		return
	}
	t.loaded.Store(&f)
}

func (t *Telemetry) observeLoaded(_ context.Context, o metric.Int64Observer) error {
	f := t.loaded.Load()
	if f == nil {
		return nil
	}
	for model, n := range (*f)() {
		o.Observe(int64(n), t.attrs.get(attrKey{kind: setModel, a: model}).obs...)
	}
	return nil
}

// SetEvalSource sets the function that the drover.eval gauge calls at each
// collection; it calls yield once per current (model, version, source,
// metric, class) value, class empty for metrics over all classes. It is
// called from the exporters' goroutines; nil removes it.
func (t *Telemetry) SetEvalSource(f func(yield func(model, version, source, metric, class string, value float64))) {
	if t == nil {
		return
	}
	if f == nil {
		t.eval.Store(nil)
		return
	}
	t.eval.Store(&f)
}

func (t *Telemetry) observeEval(_ context.Context, o metric.Float64Observer) error {
	f := t.eval.Load()
	if f == nil {
		return nil
	}
	(*f)(func(model, version, source, name, class string, value float64) {
		if math.IsNaN(value) || math.IsInf(value, 0) {
			return
		}
		kv := make([]attribute.KeyValue, 0, 5)
		kv = append(kv,
			attribute.String(semconv.AttrModel, model),
			attribute.String(semconv.AttrModelVersion, version),
			attribute.String(semconv.AttrSource, source),
			attribute.String(semconv.AttrMetric, name),
		)
		if class != "" {
			kv = append(kv, attribute.String(semconv.AttrClass, class))
		}
		o.Observe(value, metric.WithAttributes(kv...))
	})
	return nil
}

// RecordSample counts a request sampled for evaluation.
func (t *Telemetry) RecordSample(model, version string) {
	if t == nil {
		return
	}
	t.inst.samples.Add(context.Background(), 1, t.attrs.get(attrKey{kind: setVersion, a: model, b: version}).add...)
}

// Feedback outcomes, the status of RecordFeedback.
const (
	FeedbackJoined  = "joined"  // matched a sampled request
	FeedbackUnknown = "unknown" // no sampled request with that id
	FeedbackExpired = "expired" // the sampled request left the join window
	FeedbackInvalid = "invalid" // the label did not fit the model's output
)

// RecordFeedback counts a label received through feedback; status is one
// of the Feedback* constants.
func (t *Telemetry) RecordFeedback(model, version, status string) {
	if t == nil {
		return
	}
	a := t.attrs.get(attrKey{kind: setStatus, a: model, b: version, c: status})
	t.inst.feedback.Add(context.Background(), 1, a.add...)
}

// RecordShadow records one comparison of a shadow version with the
// primary: agreement (share of equal answers, classification) and mad (mean
// absolute difference, regression) as gauges, each left out when NaN, and
// the shadow's latency.
func (t *Telemetry) RecordShadow(model, version string, agreement, mad float64, latency time.Duration) {
	if t == nil {
		return
	}
	ctx := context.Background()
	a := t.attrs.get(attrKey{kind: setVersion, a: model, b: version})
	if !math.IsNaN(agreement) && !math.IsInf(agreement, 0) {
		t.inst.shadowAgree.Record(ctx, agreement, a.rec...)
	}
	if !math.IsNaN(mad) && !math.IsInf(mad, 0) {
		t.inst.shadowMAD.Record(ctx, mad, a.rec...)
	}
	if latency >= 0 {
		t.inst.shadowLatency.Record(ctx, latency.Seconds(), a.rec...)
	}
}

// ShadowDropped counts a shadow copy dropped because its queue was full,
// in count or in bytes.
func (t *Telemetry) ShadowDropped(model string) {
	if t == nil {
		return
	}
	t.inst.shadowDropped.Add(context.Background(), 1, t.attrs.get(attrKey{kind: setModel, a: model}).add...)
}

// RecordPanic counts a request handler panic that was recovered; protocol
// is rest or grpc.
func (t *Telemetry) RecordPanic(protocol string) {
	if t == nil {
		return
	}
	t.inst.panics.Add(context.Background(), 1, t.attrs.get(attrKey{kind: setProtocol, a: protocol}).add...)
}

// ForgetVersion releases what t holds for a version that is gone: its
// cached attribute sets, request series and fixed-bin distributions (which
// stop being exported; with delta temporality, once their counts since the
// last successful export have been). Series that the SDK aggregates stay
// until the agent restarts.
func (t *Telemetry) ForgetVersion(model, version string) {
	if t == nil {
		return
	}
	t.attrs.forget(model, version)
	t.series.forget(model, version)
}
