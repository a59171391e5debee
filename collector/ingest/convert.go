package ingest

import (
	"container/list"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// Convert decodes an OTLP export request (protobuf) of the given kind and
// appends its rows to b. Attributes are data: missing or unexpected ones are
// stored as they come; only undecodable payloads are errors. It uses the
// package's default ResourceCache; (*ResourceCache).Convert uses another.
func Convert(kind Kind, payload []byte, b *store.Batch) error {
	return defaultResources.Convert(kind, payload, b)
}

// resourceInfo is what every row takes from its resource.
type resourceInfo struct {
	service, host, agent, model, version string
	id                                   uint64
}

// resourceOf reads a resource, given as its attributes (pairs, see flat),
// and appends its resources row to b (the writer leaves out the ones it
// wrote recently). An agent sends the same resource with every export, so
// what a resource's attributes give (the map, the id, the columns) is kept
// in rc and looked up by the attributes as they arrive, instead of being
// rebuilt for every request. own keeps the strings it stores.
func (rc *ResourceCache) resourceOf(pairs []string, own strs, b *store.Batch) resourceInfo {
	rc = rc.orDefault()
	h := hashPairs(fnvOffset, pairs)
	c := rc.get(h, func(c *knownResource) bool { return slices.Equal(c.pairs, pairs) })
	if c == nil {
		c = &knownResource{pairs: make([]string, len(pairs)), attrs: make(map[string]string, len(pairs)/2)}
		for i := 0; i < len(pairs); i += 2 {
			k, v := own.own(pairs[i]), own.own(pairs[i+1])
			c.pairs[i], c.pairs[i+1] = k, v
			c.attrs[k] = v
		}
		c.info = resourceInfo{
			service: c.attrs[semconv.AttrServiceName],
			host:    c.attrs[semconv.AttrHostName],
			agent:   c.attrs[semconv.AttrAgentID],
			model:   c.attrs[semconv.AttrModel],
			version: c.attrs[semconv.AttrModelVersion],
			id:      store.ResourceID(c.attrs),
		}
		c = rc.put(h, c)
	}
	if c.info.id != 0 {
		b.Resources = append(b.Resources, store.ResourceRow{ResourceID: c.info.id, LastSeen: time.Now(),
			Service: c.info.service, Host: c.info.host, AgentID: c.info.agent, Attributes: c.attrs})
	}
	return c.info
}

// knownResource is what a resource's attributes give; nothing modifies it
// once cached (rows share attrs), but the cache's own fields.
type knownResource struct {
	pairs []string // the attributes as strings, in the order they came: k, v, k, v, …
	attrs map[string]string
	info  resourceInfo

	hash uint64        // the attribute hash it is cached under
	size int64         // estimated bytes (sizeOf)
	elem *list.Element // in the cache's LRU list; nil once evicted (under the cache's lock)
}

// flat appends m's attributes to dst as the strings they are stored as,
// in the order they came: k, v, k, v, … Non-string values are rendered as
// OTel renders them (numbers as decimals, slices and maps as JSON).
func flat(dst []string, m pcommon.Map) []string {
	for k, v := range m.All() {
		dst = append(dst, k, attrString(v))
	}
	return dst
}

// strs keeps the strings of a request that rows and caches hold on to.
// nil keeps them as they are (pdata's are already strings of their own);
// the protobuf decoder's are views of the request's bytes, copied here
// once per request each.
type strs map[string]string

func (s strs) own(x string) string {
	if s == nil {
		return x
	}
	if v, ok := s[x]; ok {
		return v
	}
	c := strings.Clone(x)
	s[c] = c
	return c
}

// attrSets shares one attributes map among the points of a request whose
// attributes are the same (every agent's points carry the same few sets of
// protocol, status, role): converting them then allocates a map per set,
// not per point. Rows may share a map; nothing modifies it after
// conversion.
type attrSets struct {
	m map[uint64][]*attrSet
}

type attrSet struct {
	pairs                   []string // the point's attributes as strings, in order: k, v, k, v, …
	resModel, resVersion    string   // the resource's, which model and version fall back to
	histogram               bool
	attrs                   map[string]string
	model, version, feature string
}

func attrString(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString()
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return (h ^ 0xff) * fnvPrime // a separator: ("ab", "c") ≠ ("a", "bc")
}

func hashPairs(h uint64, pairs []string) uint64 {
	for _, s := range pairs {
		h = fnvString(h, s)
	}
	return h
}

// lookup finds the set of a point's attributes (pairs), with the
// resource's model and version to fall back to; nil and the hash to add
// it under if the request has none yet.
func (c *attrSets) lookup(pairs []string, res *resourceInfo, histogram bool) (*attrSet, uint64) {
	h := fnvString(fnvString(uint64(fnvOffset), res.model), res.version)
	if histogram {
		h ^= 1
	}
	h = hashPairs(h, pairs)
	for _, set := range c.m[h] {
		if set.matches(pairs, res, histogram) {
			return set, h
		}
	}
	return nil, h
}

func (c *attrSets) add(h uint64, set *attrSet) {
	if c.m == nil {
		c.m = map[uint64][]*attrSet{}
	}
	c.m[h] = append(c.m[h], set)
}

// pointAttrs returns the set of a point's attributes (pairs): the
// attributes without the ones that become columns, and those column values
// (falling back to the resource's). On a point that is not a histogram
// (only histograms have a feature column) drover.feature stays an
// attribute.
func (c *attrSets) pointAttrs(pairs []string, own strs, res *resourceInfo, histogram bool) *attrSet {
	set, h := c.lookup(pairs, res, histogram)
	if set == nil {
		set = newAttrSet(pairs, own, res, histogram)
		c.add(h, set)
	}
	return set
}

// newAttrSet reads a point's attributes (see pointAttrs) into a new set.
func newAttrSet(pairs []string, own strs, res *resourceInfo, histogram bool) *attrSet {
	set := &attrSet{resModel: res.model, resVersion: res.version, histogram: histogram, model: res.model, version: res.version,
		pairs: make([]string, len(pairs)), attrs: make(map[string]string, len(pairs)/2)}
	for i := 0; i < len(pairs); i += 2 {
		k, s := own.own(pairs[i]), own.own(pairs[i+1])
		set.pairs[i], set.pairs[i+1] = k, s
		switch k {
		case semconv.AttrModel:
			set.model = s
		case semconv.AttrModelVersion:
			set.version = s
		case semconv.AttrFeature:
			set.feature = s
			if !histogram {
				set.attrs[k] = s
			}
		default:
			set.attrs[k] = s
		}
	}
	return set
}

// recordAttrs is pointAttrs for a log record, whose map the caller may
// change: a map of its own, drover.feature pulled out.
func recordAttrs(m pcommon.Map, res *resourceInfo) (attrs map[string]string, model, version, feature string) {
	set := newAttrSet(flat(nil, m), nil, res, true)
	return set.attrs, set.model, set.version, set.feature
}

func (set *attrSet) matches(pairs []string, res *resourceInfo, histogram bool) bool {
	return set.histogram == histogram && set.resModel == res.model && set.resVersion == res.version && slices.Equal(set.pairs, pairs)
}

// pointOf is the columns every row of a data point has.
func pointOf(set *attrSet, res *resourceInfo, t, start uint64, metric, unit, scopeName, scopeVersion string) store.Point {
	return store.Point{
		Time: ts(t), StartTime: ts(start), Service: res.service, Host: res.host, AgentID: res.agent,
		Model: set.model, ModelVersion: set.version, Metric: metric, Unit: unit,
		Attributes: set.attrs, ResourceID: res.id, ScopeName: scopeName, ScopeVersion: scopeVersion,
	}
}

// temporality maps OTLP's aggregation temporality to the column's; a value
// OTLP does not define (a sender's bug) is unspecified, not a wrapped int8.
func temporality(t pmetric.AggregationTemporality) store.Temporality {
	switch t {
	case pmetric.AggregationTemporalityDelta:
		return store.TemporalityDelta
	case pmetric.AggregationTemporalityCumulative:
		return store.TemporalityCumulative
	}
	return store.TemporalityUnspecified
}

func ts(t uint64) time.Time {
	if t == 0 {
		return time.Unix(0, 0).UTC()
	}
	return pcommon.Timestamp(t).AsTime()
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// growFor makes room in b for the points of md, so that appending the
// rows of a large request copies each row once.
func growFor(md pmetric.Metrics, b *store.Batch) {
	var n [5]int
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeGauge:
					n[0] += m.Gauge().DataPoints().Len()
				case pmetric.MetricTypeSum:
					n[1] += m.Sum().DataPoints().Len()
				case pmetric.MetricTypeHistogram:
					n[2] += m.Histogram().DataPoints().Len()
				case pmetric.MetricTypeExponentialHistogram:
					n[3] += m.ExponentialHistogram().DataPoints().Len()
				case pmetric.MetricTypeSummary:
					n[4] += m.Summary().DataPoints().Len()
				}
			}
		}
	}
	b.Resources = slices.Grow(b.Resources, rms.Len())
	reserveMetricRows(b, [4]int(n[:4]))
	b.Summaries = slices.Grow(b.Summaries, n[4])
}

// reserveMetricRows makes room in b for n more gauges, sums, histograms and
// exponential histograms, in that order.
func reserveMetricRows(b *store.Batch, n [4]int) {
	b.Gauges = slices.Grow(b.Gauges, n[0])
	b.Sums = slices.Grow(b.Sums, n[1])
	b.Histograms = slices.Grow(b.Histograms, n[2])
	b.ExpHistograms = slices.Grow(b.ExpHistograms, n[3])
}

func (rc *ResourceCache) convertMetrics(md pmetric.Metrics, b *store.Batch) {
	growFor(md, b)
	var sets attrSets
	var mem arena
	var pairs []string
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		pairs = flat(pairs[:0], rm.Resource().Attributes())
		res := rc.resourceOf(pairs, nil, b)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			scopeName, scopeVersion := sm.Scope().Name(), sm.Scope().Version()
			ms := sm.Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				histogram := m.Type() == pmetric.MetricTypeHistogram || m.Type() == pmetric.MetricTypeExponentialHistogram
				base := func(attrs pcommon.Map, t, start pcommon.Timestamp) (store.Point, string) {
					pairs = flat(pairs[:0], attrs)
					set := sets.pointAttrs(pairs, nil, &res, histogram)
					return pointOf(set, &res, uint64(t), uint64(start), m.Name(), m.Unit(), scopeName, scopeVersion), set.feature
				}
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps := m.Gauge().DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						pt, _ := base(dp.Attributes(), dp.Timestamp(), dp.StartTimestamp())
						b.Gauges = append(b.Gauges, store.GaugeRow{Point: pt, Value: numberValue(dp)})
					}
				case pmetric.MetricTypeSum:
					s := m.Sum()
					dps := s.DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						pt, _ := base(dp.Attributes(), dp.Timestamp(), dp.StartTimestamp())
						b.Sums = append(b.Sums, store.SumRow{Point: pt, Temporality: temporality(s.AggregationTemporality()),
							IsMonotonic: s.IsMonotonic(), Value: numberValue(dp)})
					}
				case pmetric.MetricTypeHistogram:
					h := m.Histogram()
					dps := h.DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						pt, feature := base(dp.Attributes(), dp.Timestamp(), dp.StartTimestamp())
						row := store.HistogramRow{Point: pt, Feature: feature, Temporality: temporality(h.AggregationTemporality()),
							Count: dp.Count(), Sum: finite(dp.Sum()), Bounds: mem.bounds(dp.ExplicitBounds().Len(), dp.ExplicitBounds().At),
							Counts: mem.uint64s(dp.BucketCounts().Len(), dp.BucketCounts().At)}
						row.Min, row.Max = mem.opt(dp.HasMin(), dp.Min()), mem.opt(dp.HasMax(), dp.Max())
						b.Histograms = append(b.Histograms, row)
					}
				case pmetric.MetricTypeExponentialHistogram:
					h := m.ExponentialHistogram()
					dps := h.DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						pt, feature := base(dp.Attributes(), dp.Timestamp(), dp.StartTimestamp())
						pos, neg := dp.Positive().BucketCounts(), dp.Negative().BucketCounts()
						row := store.ExpHistogramRow{Point: pt, Feature: feature, Temporality: temporality(h.AggregationTemporality()),
							Count: dp.Count(), Sum: finite(dp.Sum()), Scale: dp.Scale(), ZeroCount: dp.ZeroCount(), ZeroThreshold: dp.ZeroThreshold(),
							PositiveOffset: dp.Positive().Offset(), PositiveBucketCounts: mem.uint64s(pos.Len(), pos.At),
							NegativeOffset: dp.Negative().Offset(), NegativeBucketCounts: mem.uint64s(neg.Len(), neg.At)}
						row.Min, row.Max = mem.opt(dp.HasMin(), dp.Min()), mem.opt(dp.HasMax(), dp.Max())
						b.ExpHistograms = append(b.ExpHistograms, row)
					}
				case pmetric.MetricTypeSummary:
					dps := m.Summary().DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						pt, _ := base(dp.Attributes(), dp.Timestamp(), dp.StartTimestamp())
						qs := dp.QuantileValues()
						row := store.SummaryRow{Point: pt, Count: dp.Count(), Sum: finite(dp.Sum()),
							Quantiles: make([]float64, qs.Len()), QuantileValues: make([]float64, qs.Len())}
						for q := 0; q < qs.Len(); q++ {
							row.Quantiles[q] = qs.At(q).Quantile()
							row.QuantileValues[q] = qs.At(q).Value()
						}
						b.Summaries = append(b.Summaries, row)
					}
				}
			}
		}
	}
}

// arena hands out the slices and values of one request's histogram rows
// from a few large allocations instead of several per point (fewer objects
// for the garbage collector). Rows keep their pieces; nothing modifies them
// after conversion. Bounds equal to the previous point's are shared, as the
// points of one metric usually have the same.
type arena struct {
	f64        []float64
	u64        []uint64
	lastBounds []float64
}

const arenaChunk = 4096

func (a *arena) float64s(n int) []float64 {
	if n == 0 {
		return []float64{}
	}
	if n > arenaChunk/4 {
		return make([]float64, n)
	}
	if len(a.f64) < n {
		a.f64 = make([]float64, arenaChunk)
	}
	s := a.f64[:n:n]
	a.f64 = a.f64[n:]
	return s
}

// opt is an optional column's value: v in a, or nil if it is absent.
func (a *arena) opt(has bool, v float64) *float64 {
	if !has {
		return nil
	}
	s := a.float64s(1)
	s[0] = v
	return &s[0]
}

// uint64s is a copy of the n values at gives, never nil.
func (a *arena) uint64s(n int, at func(int) uint64) []uint64 {
	var s []uint64
	switch {
	case n == 0:
		return []uint64{}
	case n > arenaChunk/4:
		s = make([]uint64, n)
	default:
		if len(a.u64) < n {
			a.u64 = make([]uint64, arenaChunk)
		}
		s = a.u64[:n:n]
		a.u64 = a.u64[n:]
	}
	for i := range s {
		s[i] = at(i)
	}
	return s
}

// bounds is a copy of the n values at gives, never nil, or the previous
// point's bounds if they are the same.
func (a *arena) bounds(n int, at func(int) float64) []float64 {
	if a.lastBounds != nil && len(a.lastBounds) == n {
		same := true
		for i := 0; i < n && same; i++ {
			same = math.Float64bits(a.lastBounds[i]) == math.Float64bits(at(i))
		}
		if same {
			return a.lastBounds
		}
	}
	s := a.float64s(n)
	for i := range s {
		s[i] = at(i)
	}
	a.lastBounds = s
	return s
}

func numberValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// sampleBody is the body of a semconv.EventSample log record.
type sampleBody struct {
	Inputs  json.RawMessage `json:"inputs"`
	Outputs json.RawMessage `json:"outputs"`
	Label   json.RawMessage `json:"label,omitempty"`
}

func (rc *ResourceCache) convertLogs(ld plog.Logs, b *store.Batch) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rc.resourceOf(flat(nil, rl.Resource().Attributes()), nil, b)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				attrs, model, version, _ := recordAttrs(lr.Attributes(), &res)
				event := attrs[semconv.AttrEventKind]
				t := ts(uint64(lr.Timestamp()))
				if lr.Timestamp() == 0 {
					t = ts(uint64(lr.ObservedTimestamp()))
				}
				if event == semconv.EventSample {
					var body sampleBody
					raw := lr.Body().AsString()
					if err := json.Unmarshal([]byte(raw), &body); err == nil {
						reqID := attrs[semconv.AttrRequestID]
						delete(attrs, semconv.AttrEventKind)
						delete(attrs, semconv.AttrRequestID)
						b.Samples = append(b.Samples, store.SampleRow{
							Time: t, Model: model, ModelVersion: version, Host: res.host, RequestID: reqID,
							Inputs: string(body.Inputs), Outputs: string(body.Outputs), Label: string(body.Label), Attributes: attrs,
						})
						continue
					}
					// A sample whose body is not the expected JSON is kept as an event.
				}
				delete(attrs, semconv.AttrEventKind)
				row := store.EventRow{
					Time: t, ObservedTime: ts(uint64(lr.ObservedTimestamp())), Service: res.service, Host: res.host, AgentID: res.agent,
					Model: model, ModelVersion: version, Event: event, SeverityNumber: uint8(lr.SeverityNumber()),
					SeverityText: lr.SeverityText(), Body: lr.Body().AsString(), Attributes: attrs, ResourceID: res.id,
				}
				if id := lr.TraceID(); !id.IsEmpty() {
					row.TraceID = id.String()
				}
				if id := lr.SpanID(); !id.IsEmpty() {
					row.SpanID = id.String()
				}
				b.Events = append(b.Events, row)
			}
		}
	}
}
