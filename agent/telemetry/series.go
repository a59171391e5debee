package telemetry

import (
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/drover-ml/drover/shared/semconv"
)

// The per-request instruments (requests, latency, in-flight) and the
// fixed-bin distributions are aggregated here, with atomic counters per
// series, instead of by the SDK: the SDK normalizes the attribute set of
// every measurement (about 0.5µs for four attributes), and it fixes the
// bucket bounds per instrument while each model version brings its own
// bins. The series reach the SDK's readers through producer, as cumulative
// data like the SDK's own (Prometheus, and OTLP with temporality
// cumulative), or through deltaProducer as delta data (OTLP with
// temporality delta, see delta.go).

// maxSeries bounds the request and in-flight series, like the SDK's
// default cardinality limit: beyond it, measurements go to one series with
// the attribute otel.metric.overflow=true.
const maxSeries = 2000

var overflowSet = attribute.NewSet(attribute.Bool("otel.metric.overflow", true))

// cowMap is a map for lookups on hot paths: a read is one atomic load and a
// map lookup, with no lock and no allocation; an insertion copies the map,
// which suits few, long-lived keys.
type cowMap[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (c *cowMap[K, V]) load(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// loadOrStore returns the value of k, storing create() first if there is
// none; when the map holds limit keys (limit > 0) it returns full() and
// stores nothing.
func (c *cowMap[K, V]) loadOrStore(k K, limit int, create, full func() V) V {
	if v, ok := c.load(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	var n map[K]V
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		if limit > 0 && len(*old) >= limit {
			return full()
		}
		n = make(map[K]V, len(*old)+1)
		maps.Copy(n, *old)
	} else {
		n = make(map[K]V)
	}
	v := create()
	n[k] = v
	c.m.Store(&n)
	return v
}

// values returns the current values (a snapshot; the caller may not keep
// the map).
func (c *cowMap[K, V]) values() []V {
	m := c.m.Load()
	if m == nil {
		return nil
	}
	return slices.Collect(maps.Values(*m))
}

func (c *cowMap[K, V]) deleteFunc(del func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old == nil {
		return
	}
	n := maps.Clone(*old)
	maps.DeleteFunc(n, del)
	c.m.Store(&n)
}

// buckets is an explicit-bucket histogram updated with atomic adds. A
// bucket includes its upper bound, as in OTLP and Prometheus.
type buckets struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1: (-Inf,b0], (b0,b1], ..., (bn-1,+Inf)
	sum    atomicFloat
}

func newBuckets(bounds []float64) buckets {
	return buckets{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (b *buckets) observe(v float64) {
	i, _ := slices.BinarySearch(b.bounds, v) // the first bound >= v
	b.counts[i].Add(1)
	b.sum.add(v)
}

// point reads the histogram. Buckets are read one by one, so a point taken
// during updates may hold a few more counts than its sum reflects; count
// is always the sum of the buckets.
func (b *buckets) point(attrs attribute.Set, start, now time.Time) metricdata.HistogramDataPoint[float64] {
	counts := make([]uint64, len(b.counts))
	var total uint64
	for i := range b.counts {
		counts[i] = b.counts[i].Load()
		total += counts[i]
	}
	return metricdata.HistogramDataPoint[float64]{
		Attributes:   attrs,
		StartTime:    start,
		Time:         now,
		Count:        total,
		Bounds:       b.bounds,
		BucketCounts: counts,
		Sum:          b.sum.load(),
	}
}

// requestSeries is one (model, version, protocol, status) series of
// drover.requests and drover.request.duration: the request count is the
// latency histogram's count.
type requestSeries struct {
	attrs   attribute.Set
	start   time.Time
	latency buckets
}

// gaugeSeries is one model's drover.requests.in_flight.
type gaugeSeries struct {
	attrs attribute.Set
	start time.Time
	n     atomic.Int64
}

// producer aggregates the series above and hands them to the readers; it
// implements sdkmetric.Producer.
type producer struct {
	t        *Telemetry
	version  string // the agent's, as the meter's scope version
	requests cowMap[attrKey, *requestSeries]
	inFlight cowMap[string, *gaugeSeries]
	dists    cowMap[attrKey, *Dist]
	delta    *deltaProducer // the OTLP reader's delta view, nil if none; set before any recording

	overflowOnce     sync.Once
	requestsOverflow *requestSeries
	inFlightOverflow *gaugeSeries
}

func (p *producer) init(t *Telemetry, version string) {
	p.t = t
	p.version = version
	start := t.now()
	p.requestsOverflow = &requestSeries{attrs: overflowSet, start: start, latency: newBuckets(latencyBounds)}
	p.inFlightOverflow = &gaugeSeries{attrs: overflowSet, start: start}
}

func (p *producer) request(model, version, protocol, status string) *requestSeries {
	k := attrKey{kind: setRequest, a: model, b: version, c: protocol, d: status}
	if s, ok := p.requests.load(k); ok {
		return s
	}
	return p.requests.loadOrStore(k, maxSeries, func() *requestSeries {
		return &requestSeries{attrs: newAttrOpts(k).set, start: p.t.now(), latency: newBuckets(latencyBounds)}
	}, p.overflowRequests)
}

func (p *producer) overflowRequests() *requestSeries {
	p.overflowOnce.Do(func() { p.t.log.Warn("too many request series; counting the rest as overflow", "limit", maxSeries) })
	return p.requestsOverflow
}

func (p *producer) gauge(model string) *gaugeSeries {
	if s, ok := p.inFlight.load(model); ok {
		return s
	}
	return p.inFlight.loadOrStore(model, maxSeries, func() *gaugeSeries {
		return &gaugeSeries{attrs: newAttrOpts(attrKey{kind: setModel, a: model}).set, start: p.t.now()}
	}, func() *gaugeSeries { return p.inFlightOverflow })
}

// forget stops producing the series of a version. A delta producer is
// handed the fixed-bin ones and the request series, for their last delta.
func (p *producer) forget(model, version string) {
	if p.delta != nil {
		p.delta.mu.Lock()
		defer p.delta.mu.Unlock()
	}
	var reqs []*requestSeries
	var dists []*Dist
	p.requests.deleteFunc(func(k attrKey, s *requestSeries) bool {
		if k.a == model && k.b == version {
			reqs = append(reqs, s)
			return true
		}
		return false
	})
	p.dists.deleteFunc(func(k attrKey, d *Dist) bool {
		if k.a == model && k.b == version {
			if d.bounds != nil {
				dists = append(dists, d)
			}
			return true
		}
		return false
	})
	if p.delta != nil {
		p.delta.retireLocked(reqs, dists)
	}
}

// Produce returns the series as cumulative data: requests, latency and
// in-flight in the scope ScopeName, fixed-bin distributions in
// ScopeName+"/distribution". The readers call it at each collection (the
// OTLP reader calls deltaProducer.Produce instead when the temporality is
// delta).
func (p *producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	return p.produce(p.t.now(), nil), nil
}

// produce reads the series at now. With a nil round the monotonic series
// are cumulative; with a round they are its deltas, series whose delta is
// zero are left out, and the round's retired series are added.
// drover.requests.in_flight is cumulative either way.
func (p *producer) produce(now time.Time, r *deltaRound) []metricdata.ScopeMetrics {
	temporality := metricdata.CumulativeTemporality
	if r != nil {
		temporality = metricdata.DeltaTemporality
	}
	var out []metricdata.ScopeMetrics

	reqs := p.requests.values()
	if hasCounts(&p.requestsOverflow.latency) {
		reqs = append(reqs, p.requestsOverflow)
	}
	if r != nil {
		reqs = append(reqs, r.reqs...)
	}
	gauges := p.inFlight.values()
	var ms []metricdata.Metrics
	if len(reqs) > 0 {
		slices.SortFunc(reqs, func(a, b *requestSeries) int { return compareSets(a.attrs, b.attrs) })
		hists := make([]metricdata.HistogramDataPoint[float64], 0, len(reqs))
		for _, s := range reqs {
			if h, ok := r.point(&s.latency, s.attrs, s.start, now); ok {
				hists = append(hists, h)
			}
		}
		if r != nil {
			hists = mergeSame(hists)
		}
		if len(hists) > 0 {
			counts := make([]metricdata.DataPoint[int64], 0, len(hists))
			for _, h := range hists {
				counts = append(counts, metricdata.DataPoint[int64]{
					Attributes: h.Attributes, StartTime: h.StartTime, Time: h.Time, Value: int64(h.Count), //nolint:gosec // counts stay far below 2^63
				})
			}
			ms = append(ms,
				metricdata.Metrics{
					Name: semconv.MetricRequests, Description: requestsDescription, Unit: "{request}",
					Data: metricdata.Sum[int64]{DataPoints: counts, Temporality: temporality, IsMonotonic: true},
				},
				metricdata.Metrics{
					Name: semconv.MetricRequestLatency, Description: latencyDescription, Unit: "s",
					Data: metricdata.Histogram[float64]{DataPoints: hists, Temporality: temporality},
				})
		}
	}
	if len(gauges) > 0 {
		if p.inFlightOverflow.n.Load() != 0 {
			gauges = append(gauges, p.inFlightOverflow)
		}
		slices.SortFunc(gauges, func(a, b *gaugeSeries) int { return compareSets(a.attrs, b.attrs) })
		pts := make([]metricdata.DataPoint[int64], 0, len(gauges))
		for _, s := range gauges {
			pts = append(pts, metricdata.DataPoint[int64]{Attributes: s.attrs, StartTime: s.start, Time: now, Value: s.n.Load()})
		}
		// An up-down counter stays cumulative: a delta of it is rarely
		// what a reader of the current value wants.
		ms = append(ms, metricdata.Metrics{
			Name: semconv.MetricInFlight, Description: inFlightDescription, Unit: "{request}",
			Data: metricdata.Sum[int64]{DataPoints: pts, Temporality: metricdata.CumulativeTemporality, IsMonotonic: false},
		})
	}
	if len(ms) > 0 {
		out = append(out, metricdata.ScopeMetrics{
			Scope:   instrumentation.Scope{Name: ScopeName, Version: p.version},
			Metrics: ms,
		})
	}

	var dists []*Dist
	for _, d := range p.dists.values() {
		if d.bounds != nil {
			dists = append(dists, d)
		}
	}
	if r != nil {
		dists = append(dists, r.dists...)
	}
	if len(dists) > 0 {
		slices.SortFunc(dists, func(a, b *Dist) int { return compareSets(a.attrs.set, b.attrs.set) })
		pts := make([]metricdata.HistogramDataPoint[float64], 0, len(dists))
		for _, d := range dists {
			pt, ok := r.point(&d.buckets, d.attrs.set, d.start, now)
			if !ok {
				continue
			}
			// Min and max are since the series started: a delta point
			// leaves them out.
			if r == nil && pt.Count > 0 {
				pt.Min = metricdata.NewExtrema(d.min.load())
				pt.Max = metricdata.NewExtrema(d.max.load())
			}
			pts = append(pts, pt)
		}
		if r != nil {
			pts = mergeSame(pts)
		}
		if len(pts) > 0 {
			out = append(out, metricdata.ScopeMetrics{
				Scope: instrumentation.Scope{Name: ScopeName + "/distribution", Version: p.version},
				Metrics: []metricdata.Metrics{{
					Name: semconv.MetricDistribution, Description: distDescription,
					Data: metricdata.Histogram[float64]{DataPoints: pts, Temporality: temporality},
				}},
			})
		}
	}
	return out
}

func hasCounts(b *buckets) bool {
	for i := range b.counts {
		if b.counts[i].Load() != 0 {
			return true
		}
	}
	return false
}

// compareSets orders attribute sets by their encoding, for stable output.
func compareSets(a, b attribute.Set) int {
	ea, eb := a.Encoded(attribute.DefaultEncoder()), b.Encoded(attribute.DefaultEncoder())
	switch {
	case ea < eb:
		return -1
	case ea > eb:
		return 1
	}
	return 0
}

// atomicFloat is a float64 updated with compare-and-swap.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) store(v float64) { f.bits.Store(math.Float64bits(v)) }

func (f *atomicFloat) add(v float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// lower stores v if it is below the current value.
func (f *atomicFloat) lower(v float64) {
	for {
		old := f.bits.Load()
		if v >= math.Float64frombits(old) || f.bits.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

// raise stores v if it is above the current value.
func (f *atomicFloat) raise(v float64) {
	for {
		old := f.bits.Load()
		if v <= math.Float64frombits(old) || f.bits.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}
