package ingest

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

func sampleMetrics() []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(semconv.AttrHostName, "h")
	rm.Resource().Attributes().PutStr(semconv.AttrModel, "res-model")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("g")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(100, 0)))
	dp.SetIntValue(5)
	dp.Attributes().PutInt("n", 3)
	dp.Attributes().PutStr(semconv.AttrFeature, "f0")
	h := ms.AppendEmpty()
	h.SetName("h")
	hdp := h.SetEmptyHistogram().DataPoints().AppendEmpty()
	hdp.Attributes().PutStr(semconv.AttrModel, "point-model")
	hdp.Attributes().PutStr(semconv.AttrFeature, "f1")
	hdp.ExplicitBounds().FromRaw([]float64{1})
	hdp.BucketCounts().FromRaw([]uint64{1, 2})
	hdp.SetCount(3)
	b, _ := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	return b
}

func TestConvertAttributes(t *testing.T) {
	var b store.Batch
	if err := Convert(KindMetrics, sampleMetrics(), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Gauges) != 1 || len(b.Histograms) != 1 {
		t.Fatalf("rows: %+v", b)
	}
	g := b.Gauges[0]
	// Model from the resource, point attributes kept as strings, and the
	// feature attribute kept on non-histograms.
	if g.Model != "res-model" || g.Host != "h" || g.Value != 5 || g.Attributes["n"] != "3" || g.Attributes[semconv.AttrFeature] != "f0" {
		t.Errorf("gauge %+v", g)
	}
	h := b.Histograms[0]
	if h.Model != "point-model" || h.Feature != "f1" || len(h.Counts) != 2 || h.Min != nil {
		t.Errorf("histogram %+v", h)
	}
	// The resource is one row, its attributes stored there, not on points.
	wantRes := map[string]string{semconv.AttrHostName: "h", semconv.AttrModel: "res-model"}
	if len(b.Resources) != 1 || !maps.Equal(b.Resources[0].Attributes, wantRes) || b.Resources[0].Host != "h" ||
		b.Resources[0].ResourceID != store.ResourceID(wantRes) || b.Resources[0].ResourceID == 0 {
		t.Errorf("resources %+v, want one with %v", b.Resources, wantRes)
	}
	if g.ResourceID != b.Resources[0].ResourceID || h.ResourceID != g.ResourceID {
		t.Errorf("points carry resource ids %d and %d, want %d", g.ResourceID, h.ResourceID, b.Resources[0].ResourceID)
	}
	if err := Convert(KindMetrics, []byte{0xff, 0x01}, &b); err == nil {
		t.Error("garbage converted")
	}
	if err := Convert(Kind(9), nil, &b); err == nil {
		t.Error("unknown kind converted")
	}
}

// FuzzConvert feeds arbitrary bytes to the decode-to-rows path: it must
// never panic, and what decodes yields rows with non-nil arrays.
func FuzzConvert(f *testing.F) {
	f.Add(byte(KindMetrics), sampleMetrics())
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Attributes().PutStr(semconv.AttrEventKind, semconv.EventSample)
	lr.Body().SetStr(`{"inputs":[1],"outputs":[2]}`)
	lb, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	f.Add(byte(KindLogs), lb)
	f.Add(byte(KindLogs), []byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var b store.Batch
		if err := Convert(Kind(kind), data, &b); err != nil {
			return
		}
		for _, h := range b.Histograms {
			if h.Bounds == nil || h.Counts == nil {
				t.Fatal("nil histogram arrays")
			}
		}
		for _, h := range b.ExpHistograms {
			if h.PositiveBucketCounts == nil || h.NegativeBucketCounts == nil {
				t.Fatal("nil bucket arrays")
			}
		}
	})
}

// TestConvertSharesAttributeSets: points with the same attributes (and the
// same resource model and version to fall back to) share one map; any
// difference gives a map of its own.
func TestConvertSharesAttributeSets(t *testing.T) {
	md := pmetric.NewMetrics()
	for _, model := range []string{"a", "a", "b"} {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(semconv.AttrModel, model)
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		g := ms.AppendEmpty()
		g.SetName("g")
		dps := g.SetEmptyGauge().DataPoints()
		for _, status := range []string{"ok", "error", "ok"} {
			dp := dps.AppendEmpty()
			dp.Attributes().PutStr(semconv.AttrStatus, status)
			dp.Attributes().PutInt("n", 1)
		}
		h := ms.AppendEmpty()
		h.SetName("h")
		hdp := h.SetEmptyHistogram().DataPoints().AppendEmpty()
		hdp.Attributes().PutStr(semconv.AttrStatus, "ok")
		hdp.Attributes().PutInt("n", 1)
	}
	var b store.Batch
	convertMetrics(md, &b)
	if len(b.Gauges) != 9 || len(b.Histograms) != 3 {
		t.Fatalf("%d gauges, %d histograms", len(b.Gauges), len(b.Histograms))
	}
	same := func(x, y map[string]string) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	g := b.Gauges
	// Resource "a" twice: its ok points share one map across both
	// resources; error differs; model b falls back to another model.
	if !same(g[0].Attributes, g[2].Attributes) || !same(g[0].Attributes, g[3].Attributes) || !same(g[0].Attributes, g[5].Attributes) {
		t.Error("equal attribute sets of model a do not share a map")
	}
	if same(g[0].Attributes, g[1].Attributes) || same(g[0].Attributes, g[6].Attributes) || !same(g[6].Attributes, g[8].Attributes) {
		t.Error("different attributes or resource model share a map")
	}
	for i, r := range g {
		want := map[string]string{semconv.AttrStatus: []string{"ok", "error", "ok"}[i%3], "n": "1"}
		if !maps.Equal(r.Attributes, want) || r.Model != []string{"a", "a", "b"}[i/3] {
			t.Errorf("gauge %d: model %q attributes %v, want %v", i, r.Model, r.Attributes, want)
		}
	}
	if same(b.Histograms[0].Attributes, g[0].Attributes) || b.Histograms[2].Model != "b" {
		t.Error("a histogram shares a gauge's attributes, or lost its model")
	}
}

func TestConvertHistogramValues(t *testing.T) {
	// Bounds are shared between points while they are equal, counts and
	// min/max are each point's own, empty slices are empty, not nil, and a
	// request larger than the arena's chunks keeps every value.
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	m := ms.AppendEmpty()
	m.SetName("h")
	dps := m.SetEmptyHistogram().DataPoints()
	const n = 3000 // 3000 × 11 counts spans several 4096-value chunks
	for i := range n {
		dp := dps.AppendEmpty()
		bounds := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		if i%1000 == 999 {
			bounds[3] = 4.5
		}
		dp.ExplicitBounds().FromRaw(bounds)
		counts := make([]uint64, 11)
		for j := range counts {
			counts[j] = uint64(i*11 + j)
		}
		dp.BucketCounts().FromRaw(counts)
		dp.SetMin(float64(-i))
		dp.SetMax(float64(i))
	}
	empty := ms.AppendEmpty()
	empty.SetName("empty")
	empty.SetEmptyHistogram().DataPoints().AppendEmpty().SetCount(0)
	e := ms.AppendEmpty()
	e.SetName("exp")
	edp := e.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	edp.Positive().BucketCounts().FromRaw([]uint64{4, 5})
	edp.SetMin(-1)

	var b store.Batch
	convertMetrics(md, &b)
	if len(b.Histograms) != n+1 || len(b.ExpHistograms) != 1 {
		t.Fatalf("%d histograms, %d exponential", len(b.Histograms), len(b.ExpHistograms))
	}
	shared := func(x, y []float64) bool { return &x[0] == &y[0] }
	h := b.Histograms
	if !shared(h[0].Bounds, h[998].Bounds) || shared(h[998].Bounds, h[999].Bounds) || shared(h[999].Bounds, h[1000].Bounds) {
		t.Error("bounds are not shared exactly while they are equal")
	}
	for i, r := range h[:n] {
		if r.Bounds[3] != map[bool]float64{true: 4.5, false: 4}[i%1000 == 999] || len(r.Bounds) != 10 {
			t.Fatalf("point %d: bounds %v", i, r.Bounds)
		}
		for j, c := range r.Counts {
			if c != uint64(i*11+j) || len(r.Counts) != 11 {
				t.Fatalf("point %d: counts %v", i, r.Counts)
			}
		}
		if r.Min == nil || *r.Min != float64(-i) || r.Max == nil || *r.Max != float64(i) {
			t.Fatalf("point %d: min %v max %v", i, r.Min, r.Max)
		}
	}
	if last := h[n]; last.Bounds == nil || len(last.Bounds) != 0 || last.Counts == nil || len(last.Counts) != 0 || last.Min != nil {
		t.Errorf("empty histogram point: bounds %#v counts %#v min %v", last.Bounds, last.Counts, last.Min)
	}
	x := b.ExpHistograms[0]
	if !reflect.DeepEqual(x.PositiveBucketCounts, []uint64{4, 5}) || x.NegativeBucketCounts == nil || *x.Min != -1 || x.Max != nil {
		t.Errorf("exponential point: %+v", x)
	}
}

func TestConvertRemembersResources(t *testing.T) {
	// The same resource in two requests gives the same (shared) attributes
	// map and id; a changed value or an added attribute does not; the same
	// attributes in another order give the same id.
	req := func(kv ...string) *store.Batch {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		for i := 0; i+1 < len(kv); i += 2 {
			rm.Resource().Attributes().PutStr(kv[i], kv[i+1])
		}
		rm.Resource().Attributes().PutInt("pid", 7)
		g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		g.SetName("g")
		g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
		var b store.Batch
		convertMetrics(md, &b)
		if len(b.Resources) != 1 || len(b.Gauges) != 1 {
			t.Fatalf("%d resources, %d gauges", len(b.Resources), len(b.Gauges))
		}
		return &b
	}
	a := req(semconv.AttrHostName, "memo-h1", semconv.AttrServiceName, "svc")
	b := req(semconv.AttrHostName, "memo-h1", semconv.AttrServiceName, "svc")
	c := req(semconv.AttrHostName, "memo-h2", semconv.AttrServiceName, "svc")
	d := req(semconv.AttrServiceName, "svc", semconv.AttrHostName, "memo-h1")
	e := req(semconv.AttrHostName, "memo-h1", semconv.AttrServiceName, "svc", "extra", "")
	same := func(x, y map[string]string) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	if !same(a.Resources[0].Attributes, b.Resources[0].Attributes) || a.Gauges[0].ResourceID != b.Gauges[0].ResourceID {
		t.Error("the same resource in two requests is not remembered")
	}
	want := map[string]string{semconv.AttrHostName: "memo-h1", semconv.AttrServiceName: "svc", "pid": "7"}
	if !maps.Equal(a.Resources[0].Attributes, want) || a.Gauges[0].Host != "memo-h1" || a.Gauges[0].Service != "svc" {
		t.Errorf("resource %+v, gauge host %q service %q", a.Resources[0], a.Gauges[0].Host, a.Gauges[0].Service)
	}
	if c.Gauges[0].Host != "memo-h2" || c.Gauges[0].ResourceID == a.Gauges[0].ResourceID {
		t.Errorf("another host: %+v", c.Gauges[0].Point)
	}
	if d.Gauges[0].ResourceID != a.Gauges[0].ResourceID || same(d.Resources[0].Attributes, a.Resources[0].Attributes) {
		t.Error("the same attributes in another order: want the same id from their own entry")
	}
	if e.Gauges[0].ResourceID == a.Gauges[0].ResourceID || len(e.Resources[0].Attributes) != 4 {
		t.Errorf("an added attribute: %+v", e.Resources[0])
	}
}

func TestConvertUndefinedTemporalityIsUnspecified(t *testing.T) {
	// OTLP defines 0, 1 and 2; another value from a buggy sender must not
	// wrap around into delta or cumulative (257 would be 1 as an int8).
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	for _, v := range []int32{257, 2, -1} {
		s := ms.AppendEmpty()
		s.SetName("s")
		s.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporality(v))
		s.Sum().DataPoints().AppendEmpty().SetIntValue(1)
		h := ms.AppendEmpty()
		h.SetName("h")
		h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporality(v))
		h.Histogram().DataPoints().AppendEmpty()
	}
	var b store.Batch
	convertMetrics(md, &b)
	want := []store.Temporality{store.TemporalityUnspecified, store.TemporalityCumulative, store.TemporalityUnspecified}
	for i, w := range want {
		if b.Sums[i].Temporality != w || b.Histograms[i].Temporality != w {
			t.Errorf("case %d: sum %d, histogram %d, want %d", i, b.Sums[i].Temporality, b.Histograms[i].Temporality, w)
		}
	}
}
