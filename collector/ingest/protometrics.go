package ingest

import (
	"math"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drover-ml/drover/collector/store"
)

// The metrics an agent exports (OTLP protobuf: gauges, sums, histograms and
// exponential histograms with string attributes) are decoded straight
// into rows by metricsDecoder, without building pdata's objects first:
// at full load pdata's decoding took about a third of the collector's CPU
// and its objects most of what the garbage collector did. The decoder takes
// only what it can decode exactly as pdata would and what passes every
// input rule; for anything else (a malformed request, a point a rule
// rejects, summaries, exemplars, attribute values that are not strings,
// a field that occurs twice where pdata would merge) it gives up and the
// request is decoded by pdata as before. FuzzMetricsDecoder holds the two
// to the same rows.

// metricsDecoder decodes one ExportMetricsServiceRequest into rows. The
// strings it reads are views of the request's bytes while it decodes; what
// rows and caches keep is copied (strs).
type metricsDecoder struct {
	rc   *ResourceCache
	e    *edge // nil: no input rules (a spooled request was screened when it came)
	b    *store.Batch
	own  strs
	sets attrSets
	// raw finds a point's attribute set by the bytes of its attributes
	// (views of the request, as the request's points repeat the same few
	// sets byte for byte) and what else the set depends on: those points'
	// attributes are not read again.
	raw   map[rawKey]*attrSet
	mem   arena
	pairs []string // the attributes being read, as strings: k, v, …

	points int
}

// decodeMetrics appends the rows of the OTLP metrics request in payload
// to b and returns its data points; ok false if the request is one for
// pdata (see metricsDecoder), b then as it was.
func (rc *ResourceCache) decodeMetrics(payload []byte, e *edge, b *store.Batch) (points int, ok bool) {
	mark := batchMark(b)
	growForPayload(payload, b)
	d := metricsDecoder{rc: rc, e: e, b: b, own: strs{}, raw: map[rawKey]*attrSet{}}
	if !d.request(payload) {
		mark.restore(b)
		return 0, false
	}
	return d.points, true
}

// growForPayload makes room in b for the data points of the request in
// payload, as growFor does for pdata's: appending them one by one grew each
// slice by doubling, which allocated and copied about twice the rows (at
// 60 000 points/s, half of what the collector allocated). It reads only the
// messages' framing, down to each point's length, before anything checks
// the request, so what it reserves is bounded by the payload's size: at
// most one row per reservePointBytes bytes (an agent's point takes about
// 290), rows in proportion between the kinds beyond that. A request that
// is refused at once (points of garbage behind valid framing) then costs
// at most a few times its own size, as a valid one does in pdata's path.
func growForPayload(payload []byte, b *store.Batch) {
	n := payloadPoints(payload)
	total := n[0] + n[1] + n[2] + n[3]
	if limit := len(payload) / reservePointBytes; total > limit {
		for k := range n {
			n[k] = int(int64(n[k]) * int64(limit) / int64(total))
		}
	}
	reserveMetricRows(b, n)
}

// reservePointBytes is the payload bytes growForPayload asks for each row
// it reserves: a row takes about 240 (a gauge) to 400 bytes (a histogram).
const reservePointBytes = 128

// payloadPoints counts a request's data points by kind: gauges, sums,
// histograms and exponential histograms. A point shorter than its
// timestamp (a fixed64 field, 9 bytes), which the input rules reject, is
// not counted. What cannot be read ends that level's count; the decoder
// reports it.
func payloadPoints(payload []byte) (n [4]int) {
	for rms := payload; len(rms) > 0; {
		rm, rest, ok := nextBytes(rms, 1) // resource_metrics
		if !ok {
			break
		}
		rms = rest
		for len(rm) > 0 {
			sm, rest, ok := nextBytes(rm, 2) // scope_metrics
			if !ok {
				break
			}
			rm = rest
			for len(sm) > 0 {
				m, rest, ok := nextBytes(sm, 2) // metrics
				if !ok {
					break
				}
				sm = rest
				countPoints(m, &n)
			}
		}
	}
	return n
}

// nextBytes returns the value of the next length-delimited field number
// num in msg, skipping the others, and the rest of msg after it; ok false
// when there is none or msg cannot be read.
func nextBytes(msg []byte, num protowire.Number) (v, rest []byte, ok bool) {
	for len(msg) > 0 {
		f, r, ok := next(msg)
		if !ok {
			return nil, nil, false
		}
		msg = r
		if f.num == num && f.typ == protowire.BytesType {
			return f.v, msg, true
		}
	}
	return nil, nil, false
}

// countPoints adds a Metric's data points of at least 9 bytes to n by kind
// (gauge 5, sum 7, histogram 9, exponential histogram 10).
func countPoints(m []byte, n *[4]int) {
	for len(m) > 0 {
		f, rest, ok := next(m)
		if !ok {
			return
		}
		m = rest
		k := -1
		switch f.num {
		case 5:
			k = 0
		case 7:
			k = 1
		case 9:
			k = 2
		case 10:
			k = 3
		}
		if k < 0 || f.typ != protowire.BytesType {
			continue
		}
		for data := f.v; len(data) > 0; {
			dp, r, ok := nextBytes(data, 1) // data_points
			if !ok {
				break
			}
			data = r
			if len(dp) >= 9 {
				n[k]++
			}
		}
	}
}

// mark is the lengths of a Batch's metric rows, to put them back.
type mark struct{ res, g, s, h, eh int }

func batchMark(b *store.Batch) mark {
	return mark{len(b.Resources), len(b.Gauges), len(b.Sums), len(b.Histograms), len(b.ExpHistograms)}
}

func (m mark) restore(b *store.Batch) {
	clear(b.Resources[m.res:])
	b.Resources = b.Resources[:m.res]
	clear(b.Gauges[m.g:])
	b.Gauges = b.Gauges[:m.g]
	clear(b.Sums[m.s:])
	b.Sums = b.Sums[:m.s]
	clear(b.Histograms[m.h:])
	b.Histograms = b.Histograms[:m.h]
	clear(b.ExpHistograms[m.eh:])
	b.ExpHistograms = b.ExpHistograms[:m.eh]
}

// The decoder's loops read fields with next, spelled out in each: a
// range-over-func iterator over the fields made it 18 % slower
// (BenchmarkConvert).

// field is one field of a protobuf message: its number and wire type and
// its value (u for varint and fixed-size values, v for length-delimited).
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	v   []byte
}

// next reads the field at the start of b and returns the rest of b; ok
// false for malformed wire data and for groups (left to pdata).
func next(b []byte) (f field, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, nil, false
	}
	b = b[n:]
	f.num, f.typ = num, typ
	switch typ {
	case protowire.VarintType:
		f.u, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.u, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var u uint32
		u, n = protowire.ConsumeFixed32(b)
		f.u = uint64(u)
	case protowire.BytesType:
		f.v, n = protowire.ConsumeBytes(b)
	default:
		return f, nil, false
	}
	if n < 0 {
		return f, nil, false
	}
	return f, b[n:], true
}

// view is b as a string without copying; valid while b is unchanged.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func zigzag32(u uint64) int32 { return int32(uint32(u>>1) ^ uint32(int32((u&1)<<31)>>31)) }

// ExportMetricsServiceRequest: 1 resource_metrics.
func (d *metricsDecoder) request(b []byte) bool {
	for len(b) > 0 {
		f, rest, ok := next(b)
		if !ok {
			return false
		}
		b = rest
		if f.num == 1 && (f.typ != protowire.BytesType || !d.resourceMetrics(f.v)) {
			return false
		}
	}
	return true
}

// ResourceMetrics: 1 resource, 2 scope_metrics, 3 schema_url; 1000 (the
// deprecated scope metrics) is pdata's.
func (d *metricsDecoder) resourceMetrics(b []byte) bool {
	var resource []byte
	hasResource := false
	for rest := b; len(rest) > 0; {
		f, r, ok := next(rest)
		if !ok {
			return false
		}
		rest = r
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType || hasResource {
				return false
			}
			resource, hasResource = f.v, true
		case 2, 3:
			if f.typ != protowire.BytesType {
				return false
			}
		case 1000:
			return false
		}
	}
	// Resource: 1 attributes, 2 dropped_attributes_count; 3 entity_refs
	// is pdata's.
	d.pairs = d.pairs[:0]
	for len(resource) > 0 {
		f, r, ok := next(resource)
		if !ok {
			return false
		}
		resource = r
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType || !d.keyValue(f.v) {
				return false
			}
		case 2:
			if f.typ != protowire.VarintType {
				return false
			}
		case 3:
			return false
		}
	}
	if d.e != nil {
		if _, _, bad := d.e.pairsBad(d.pairs); bad {
			return false
		}
	}
	res := d.rc.resourceOf(d.pairs, d.own, d.b)
	for len(b) > 0 {
		f, r, _ := next(b) // read above
		b = r
		if f.num == 2 && !d.scopeMetrics(f.v, &res) {
			return false
		}
	}
	return true
}

// keyValue appends a KeyValue (1 key, 2 value) with a string value to
// d.pairs; any other value, none, or key_strindex (3) is pdata's.
func (d *metricsDecoder) keyValue(b []byte) bool {
	var key, value []byte
	hasValue := false
	for len(b) > 0 {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		b = r
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType {
				return false
			}
			key = f.v
		case 2:
			if f.typ != protowire.BytesType || hasValue {
				return false
			}
			// AnyValue: only string_value (1); the other kinds (2 to 8) are
			// pdata's.
			for v := f.v; len(v) > 0; {
				g, r, ok := next(v)
				if !ok {
					return false
				}
				v = r
				switch {
				case g.num == 1 && g.typ == protowire.BytesType && !hasValue:
					value, hasValue = g.v, true
				case g.num >= 1 && g.num <= 8:
					return false
				}
			}
			if !hasValue {
				return false
			}
		case 3:
			return false
		}
	}
	if !hasValue {
		return false
	}
	d.pairs = append(d.pairs, view(key), view(value))
	return true
}

// ScopeMetrics: 1 scope (InstrumentationScope: 1 name, 2 version, 3
// attributes, 4 dropped_attributes_count), 2 metrics, 3 schema_url.
func (d *metricsDecoder) scopeMetrics(b []byte, res *resourceInfo) bool {
	var name, version []byte
	hasScope := false
	for rest := b; len(rest) > 0; {
		f, r, ok := next(rest)
		if !ok {
			return false
		}
		rest = r
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType || hasScope {
				return false
			}
			hasScope = true
			d.pairs = d.pairs[:0] // the scope's attributes: checked, not stored
			for s := f.v; len(s) > 0; {
				g, r, ok := next(s)
				if !ok {
					return false
				}
				s = r
				switch g.num {
				case 1, 2:
					if g.typ != protowire.BytesType {
						return false
					}
					if g.num == 1 {
						name = g.v
					} else {
						version = g.v
					}
				case 3:
					if g.typ != protowire.BytesType || !d.keyValue(g.v) {
						return false
					}
				case 4:
					if g.typ != protowire.VarintType {
						return false
					}
				}
			}
		case 2, 3:
			if f.typ != protowire.BytesType {
				return false
			}
		}
	}
	scopeName, scopeVersion := d.own.own(view(name)), d.own.own(view(version))
	for len(b) > 0 {
		f, r, _ := next(b)
		b = r
		if f.num == 2 && !d.metric(f.v, res, scopeName, scopeVersion) {
			return false
		}
	}
	return true
}

// Metric: 1 name, 2 description, 3 unit, 5 gauge, 7 sum, 9 histogram, 10
// exponential_histogram, 12 metadata; 11 summary is pdata's, and so is a
// metric with two kinds of data.
func (d *metricsDecoder) metric(b []byte, res *resourceInfo, scopeName, scopeVersion string) bool {
	var name, unit, data []byte
	var kind protowire.Number
	for len(b) > 0 {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		b = r
		switch f.num {
		case 1, 2, 3, 5, 7, 9, 10, 11, 12:
			if f.typ != protowire.BytesType {
				return false
			}
		}
		switch f.num {
		case 1:
			name = f.v
		case 2:
		case 3:
			unit = f.v
		case 5, 7, 9, 10:
			if kind != 0 {
				return false
			}
			kind, data = f.num, f.v
		case 11:
			return false
		case 12:
			d.pairs = d.pairs[:0] // checked, not stored
			if !d.keyValue(f.v) {
				return false
			}
		}
	}
	if kind == 0 {
		return true // no data: no points
	}
	m := metricInfo{name: d.own.own(view(name)), unit: d.own.own(view(unit)), scopeName: scopeName, scopeVersion: scopeVersion,
		histogram: kind == 9 || kind == 10}
	// Gauge: 1 data_points. Sum: 1, 2 aggregation_temporality, 3
	// is_monotonic. Histogram and ExponentialHistogram: 1, 2.
	for rest := data; len(rest) > 0; {
		f, r, ok := next(rest)
		if !ok {
			return false
		}
		rest = r
		switch {
		case f.num == 1:
			if f.typ != protowire.BytesType {
				return false
			}
		case f.num == 2 && kind != 5:
			if f.typ != protowire.VarintType {
				return false
			}
			m.temporality = temporality(pmetric.AggregationTemporality(int32(f.u))) // as pdata reads it
		case f.num == 3 && kind == 7:
			if f.typ != protowire.VarintType {
				return false
			}
			m.monotonic = f.u != 0
		}
	}
	for len(data) > 0 {
		f, r, _ := next(data)
		data = r
		if f.num != 1 {
			continue
		}
		var ok bool
		switch kind {
		case 5, 7:
			ok = d.numberPoint(f.v, res, &m, kind == 7)
		case 9:
			ok = d.histogramPoint(f.v, res, &m)
		case 10:
			ok = d.expHistogramPoint(f.v, res, &m)
		}
		if !ok {
			return false
		}
		d.points++
	}
	return true
}

// metricInfo is what a metric gives each of its rows.
type metricInfo struct {
	name, unit, scopeName, scopeVersion string
	histogram, monotonic                bool
	temporality                         store.Temporality
}

// attrSpan is where a point's attribute fields are in its message: from
// start to end, unless other fields come between them (split).
type attrSpan struct {
	start, end int
	split      bool
}

// add notes an attribute field from at to end in the point's message.
func (s *attrSpan) add(at, end int) {
	switch {
	case s.end == 0:
		s.start = at
	case at != s.end:
		s.split = true
	}
	s.end = end
}

// rawKey is what a point's attribute set depends on, its attributes as
// they are in the request.
type rawKey struct {
	attrs, resModel, resVersion string
	histogram                   bool
}

// point checks a point's time and attributes (fields attrNum of msg, at
// span) against the input rules and returns its common columns and
// feature; ok false if a rule rejects it (pdata's path then says which) or
// an attribute is one for pdata.
func (d *metricsDecoder) point(msg []byte, attrNum protowire.Number, span attrSpan, res *resourceInfo, m *metricInfo, t, start uint64) (store.Point, string, bool) {
	if d.e != nil && (t < d.e.min || t > d.e.max) {
		return store.Point{}, "", false
	}
	var set *attrSet
	key := rawKey{resModel: res.model, resVersion: res.version, histogram: m.histogram}
	if !span.split {
		key.attrs = view(msg[span.start:span.end])
		set = d.raw[key]
	}
	if set == nil {
		if span.split {
			span.start, span.end = 0, len(msg) // the other fields were read already
		}
		d.pairs = d.pairs[:0]
		for b := msg[span.start:span.end]; len(b) > 0; {
			f, r, _ := next(b) // read already
			b = r
			if f.num == attrNum && !d.keyValue(f.v) {
				return store.Point{}, "", false
			}
		}
		var h uint64
		set, h = d.sets.lookup(d.pairs, res, m.histogram)
		if set == nil {
			if d.e != nil {
				if _, _, bad := d.e.pairsBad(d.pairs); bad {
					return store.Point{}, "", false
				}
			}
			set = newAttrSet(d.pairs, d.own, res, m.histogram)
			d.sets.add(h, set)
		}
		if !span.split {
			d.raw[key] = set
		}
	}
	return pointOf(set, res, t, start, m.name, m.unit, m.scopeName, m.scopeVersion), set.feature, true
}

// NumberDataPoint: 7 attributes, 2 start_time_unix_nano, 3
// time_unix_nano, 4 as_double, 6 as_int, 8 flags; 5 exemplars is pdata's.
func (d *metricsDecoder) numberPoint(msg []byte, res *resourceInfo, m *metricInfo, sum bool) bool {
	var t, start uint64
	var value float64
	var span attrSpan
	for b := msg; len(b) > 0; {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		at := len(msg) - len(b)
		b = r
		switch f.num {
		case 7:
			if f.typ != protowire.BytesType {
				return false
			}
			span.add(at, len(msg)-len(b))
		case 2, 3, 4, 6:
			if f.typ != protowire.Fixed64Type {
				return false
			}
			switch f.num {
			case 2:
				start = f.u
			case 3:
				t = f.u
			case 4:
				value = math.Float64frombits(f.u)
			case 6:
				value = float64(int64(f.u))
			}
		case 5:
			return false
		case 8:
			if f.typ != protowire.VarintType {
				return false
			}
		}
	}
	pt, _, ok := d.point(msg, 7, span, res, m, t, start)
	if !ok {
		return false
	}
	if sum {
		d.b.Sums = append(d.b.Sums, store.SumRow{Point: pt, Temporality: m.temporality, IsMonotonic: m.monotonic, Value: value})
	} else {
		d.b.Gauges = append(d.b.Gauges, store.GaugeRow{Point: pt, Value: value})
	}
	return true
}

// HistogramDataPoint: 9 attributes, 2 start_time_unix_nano, 3
// time_unix_nano, 4 count, 5 sum, 6 bucket_counts, 7 explicit_bounds, 10
// flags, 11 min, 12 max; 8 exemplars is pdata's, and so are the arrays
// unpacked or twice.
func (d *metricsDecoder) histogramPoint(msg []byte, res *resourceInfo, m *metricInfo) bool {
	var span attrSpan
	var t, start, count uint64
	var sum float64
	var counts, bounds []byte
	var hasCounts, hasBounds bool
	var minV, maxV float64
	var hasMin, hasMax bool
	for b := msg; len(b) > 0; {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		at := len(msg) - len(b)
		b = r
		switch f.num {
		case 9:
			if f.typ != protowire.BytesType {
				return false
			}
			span.add(at, len(msg)-len(b))
		case 2, 3, 4, 5, 11, 12:
			if f.typ != protowire.Fixed64Type {
				return false
			}
			switch f.num {
			case 2:
				start = f.u
			case 3:
				t = f.u
			case 4:
				count = f.u
			case 5:
				sum = math.Float64frombits(f.u)
			case 11:
				minV, hasMin = math.Float64frombits(f.u), true
			case 12:
				maxV, hasMax = math.Float64frombits(f.u), true
			}
		case 6, 7:
			if f.typ != protowire.BytesType || len(f.v)%8 != 0 {
				return false
			}
			if f.num == 6 {
				if hasCounts {
					return false
				}
				counts, hasCounts = f.v, true
			} else {
				if hasBounds {
					return false
				}
				bounds, hasBounds = f.v, true
			}
		case 8:
			return false
		case 10:
			if f.typ != protowire.VarintType {
				return false
			}
		}
	}
	pt, feature, ok := d.point(msg, 9, span, res, m, t, start)
	if !ok {
		return false
	}
	row := store.HistogramRow{Point: pt, Feature: feature, Temporality: m.temporality, Count: count, Sum: finite(sum),
		Bounds: d.mem.bounds(len(bounds)/8, func(i int) float64 { return math.Float64frombits(fixed64At(bounds, i)) }),
		Counts: d.mem.uint64s(len(counts)/8, func(i int) uint64 { return fixed64At(counts, i) })}
	row.Min, row.Max = d.mem.opt(hasMin, minV), d.mem.opt(hasMax, maxV)
	d.b.Histograms = append(d.b.Histograms, row)
	return true
}

func fixed64At(b []byte, i int) uint64 {
	u, _ := protowire.ConsumeFixed64(b[8*i:])
	return u
}

// ExponentialHistogramDataPoint: 1 attributes, 2 start_time_unix_nano, 3
// time_unix_nano, 4 count, 5 sum, 6 scale, 7 zero_count, 8 positive, 9
// negative, 10 flags, 12 min, 13 max, 14 zero_threshold; 11 exemplars is
// pdata's, and so are buckets given twice.
func (d *metricsDecoder) expHistogramPoint(msg []byte, res *resourceInfo, m *metricInfo) bool {
	var span attrSpan
	row := store.ExpHistogramRow{Temporality: m.temporality}
	var t, start uint64
	var pos, neg buckets
	var minV, maxV float64
	var hasMin, hasMax, hasPos, hasNeg bool
	for b := msg; len(b) > 0; {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		at := len(msg) - len(b)
		b = r
		switch f.num {
		case 1:
			if f.typ != protowire.BytesType {
				return false
			}
			span.add(at, len(msg)-len(b))
		case 2, 3, 4, 5, 7, 12, 13, 14:
			if f.typ != protowire.Fixed64Type {
				return false
			}
			switch f.num {
			case 2:
				start = f.u
			case 3:
				t = f.u
			case 4:
				row.Count = f.u
			case 5:
				row.Sum = finite(math.Float64frombits(f.u))
			case 7:
				row.ZeroCount = f.u
			case 12:
				minV, hasMin = math.Float64frombits(f.u), true
			case 13:
				maxV, hasMax = math.Float64frombits(f.u), true
			case 14:
				row.ZeroThreshold = math.Float64frombits(f.u)
			}
		case 6, 10:
			if f.typ != protowire.VarintType {
				return false
			}
			if f.num == 6 {
				row.Scale = zigzag32(f.u)
			}
		case 8, 9:
			if f.typ != protowire.BytesType {
				return false
			}
			if f.num == 8 {
				if hasPos || !pos.read(f.v) {
					return false
				}
				hasPos = true
			} else {
				if hasNeg || !neg.read(f.v) {
					return false
				}
				hasNeg = true
			}
		case 11:
			return false
		}
	}
	pt, feature, ok := d.point(msg, 1, span, res, m, t, start)
	if !ok {
		return false
	}
	row.Point, row.Feature = pt, feature
	row.PositiveOffset, row.PositiveBucketCounts = pos.offset, d.mem.uint64s(pos.n, pos.at)
	row.NegativeOffset, row.NegativeBucketCounts = neg.offset, d.mem.uint64s(neg.n, neg.at)
	row.Min, row.Max = d.mem.opt(hasMin, minV), d.mem.opt(hasMax, maxV)
	d.b.ExpHistograms = append(d.b.ExpHistograms, row)
	return true
}

// buckets is an exponential histogram's Buckets (1 offset, 2
// bucket_counts, packed varints) as read: the counts still packed.
type buckets struct {
	offset int32
	counts []byte
	n      int
	has    bool // bucket_counts seen
	last   int  // where at reads the next count
}

// read reads a Buckets message; false for what is pdata's (counts unpacked
// or given twice) or malformed.
func (k *buckets) read(b []byte) bool {
	for len(b) > 0 {
		f, r, ok := next(b)
		if !ok {
			return false
		}
		b = r
		switch f.num {
		case 1:
			if f.typ != protowire.VarintType {
				return false
			}
			k.offset = zigzag32(f.u)
		case 2:
			if f.typ != protowire.BytesType || k.has {
				return false
			}
			k.has, k.counts = true, f.v
			for v := f.v; len(v) > 0; k.n++ {
				_, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return false
				}
				v = v[n:]
			}
		}
	}
	return true
}

// at is the i-th count; arena.uint64s asks for them in order.
func (k *buckets) at(i int) uint64 {
	if i == 0 {
		k.last = 0
	}
	u, n := protowire.ConsumeVarint(k.counts[k.last:])
	k.last += n
	return u
}
