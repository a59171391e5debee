package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// everyKind is an agent's request with each kind of metric the decoder
// takes: string attributes, several resources and scopes, values that are
// ints, doubles and NaN, histograms with and without min and max.
func everyKind(at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	ts := pcommon.NewTimestampFromTime(at)
	for r, model := range []string{"iris", "wine"} {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		ra := rm.Resource().Attributes()
		ra.PutStr(semconv.AttrServiceName, "drover-agent")
		ra.PutStr(semconv.AttrHostName, fmt.Sprintf("host-%d", r))
		ra.PutStr(semconv.AttrAgentID, "agent-1")
		ra.PutStr(semconv.AttrModel, model)
		for s := range 2 {
			sm := rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName(fmt.Sprintf("scope-%d", s))
			sm.Scope().SetVersion("1.2.3")
			g := sm.Metrics().AppendEmpty()
			g.SetName("drover.gauge")
			g.SetUnit("s")
			g.SetDescription("a gauge")
			gdps := g.SetEmptyGauge().DataPoints()
			for i, v := range []float64{1.5, math.NaN(), math.Inf(1), 0} {
				dp := gdps.AppendEmpty()
				dp.SetTimestamp(ts)
				dp.SetStartTimestamp(ts - 1000)
				if i == 3 {
					dp.SetIntValue(-42)
				} else {
					dp.SetDoubleValue(v)
				}
				dp.Attributes().PutStr(semconv.AttrStatus, []string{"ok", "error"}[i%2])
				dp.Attributes().PutStr(semconv.AttrFeature, "f0")
			}
			g.Gauge().DataPoints().At(1).Attributes().PutStr(semconv.AttrModelVersion, "7")
			sum := sm.Metrics().AppendEmpty()
			sum.SetName("drover.sum")
			ss := sum.SetEmptySum()
			ss.SetIsMonotonic(true)
			ss.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			sdp := ss.DataPoints().AppendEmpty()
			sdp.SetTimestamp(ts)
			sdp.SetIntValue(9)
			sdp.Attributes().PutStr(semconv.AttrModel, "override")
			h := sm.Metrics().AppendEmpty()
			h.SetName("drover.hist")
			hh := h.SetEmptyHistogram()
			hh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			for i := range 3 {
				hdp := hh.DataPoints().AppendEmpty()
				hdp.SetTimestamp(ts)
				hdp.SetCount(uint64(6 + i))
				hdp.SetSum(12.5)
				if i != 1 {
					hdp.SetMin(0.5)
					hdp.SetMax(9)
				}
				hdp.ExplicitBounds().FromRaw([]float64{1, 2, float64(5 + i/2)})
				hdp.BucketCounts().FromRaw([]uint64{1, 2, 2, uint64(1 + i)})
				hdp.Attributes().PutStr(semconv.AttrFeature, fmt.Sprintf("f%d", i))
			}
			e := sm.Metrics().AppendEmpty()
			e.SetName("drover.exp")
			eh := e.SetEmptyExponentialHistogram()
			eh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			edp := eh.DataPoints().AppendEmpty()
			edp.SetTimestamp(ts)
			edp.SetScale(-3)
			edp.SetCount(5)
			edp.SetSum(math.NaN())
			edp.SetZeroCount(1)
			edp.SetZeroThreshold(1e-9)
			edp.SetMin(-2)
			edp.Positive().SetOffset(-1)
			edp.Positive().BucketCounts().FromRaw([]uint64{1, 300, 1 << 40})
			edp.Negative().SetOffset(4)
			edp.Negative().BucketCounts().FromRaw([]uint64{2})
			edp.Attributes().PutStr(semconv.AttrFeature, "f9")
			sm.Metrics().AppendEmpty().SetName("no.data")
		}
	}
	return md
}

func encode(t testing.TB, md pmetric.Metrics) []byte {
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rowsText renders the metric rows of b to compare two batches: values,
// not pointers; NaN equal to NaN; a resource row's LastSeen (the clock at
// conversion) left out.
func rowsText(b *store.Batch) string {
	var sb strings.Builder
	for _, r := range b.Resources {
		r.LastSeen = time.Time{}
		fmt.Fprintf(&sb, "resource %+v\n", r)
	}
	for _, r := range b.Gauges {
		fmt.Fprintf(&sb, "gauge %+v\n", r)
	}
	for _, r := range b.Sums {
		fmt.Fprintf(&sb, "sum %+v\n", r)
	}
	deref := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	for _, r := range b.Histograms {
		lo, hi := deref(r.Min), deref(r.Max)
		r.Min, r.Max = nil, nil
		fmt.Fprintf(&sb, "histogram %+v min %s max %s\n", r, lo, hi)
	}
	for _, r := range b.ExpHistograms {
		lo, hi := deref(r.Min), deref(r.Max)
		r.Min, r.Max = nil, nil
		fmt.Fprintf(&sb, "exphistogram %+v min %s max %s\n", r, lo, hi)
	}
	fmt.Fprintf(&sb, "summaries %d\n", len(b.Summaries))
	return sb.String()
}

// viaPdata is what the receiver and the writer did before the decoder:
// pdata's decoding, the input rules (e, if not nil), the conversion.
func viaPdata(t testing.TB, payload []byte, e *edge) (b *store.Batch, points, rejected int, err error) {
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(payload); err != nil {
		return nil, 0, 0, err
	}
	points = req.Metrics().DataPointCount()
	if e != nil {
		rejected = e.metrics(req.Metrics())
	}
	b = &store.Batch{}
	NewResourceCache(0, nil).convertMetrics(req.Metrics(), b)
	return b, points, rejected, nil
}

// checkSame: what the decoder takes, pdata decodes the same, with no point
// rejected, to the same rows. Returns whether the decoder took it.
func checkSame(t testing.TB, payload []byte, lim Limits, now time.Time) bool {
	fast := &store.Batch{}
	points, ok := NewResourceCache(0, nil).decodeMetrics(payload, newEdge(lim, now), fast)
	if !ok {
		if fast.Rows() != 0 {
			t.Fatalf("the decoder gave up but left %d rows", fast.Rows())
		}
		return false
	}
	slow, want, rejected, err := viaPdata(t, payload, newEdge(lim, now))
	if err != nil {
		t.Fatalf("the decoder took a request pdata refuses: %v", err)
	}
	if rejected != 0 || points != want {
		t.Fatalf("the decoder took %d points; pdata has %d and the rules reject %d", points, want, rejected)
	}
	if got, want := rowsText(fast), rowsText(slow); got != want {
		t.Fatalf("rows differ:\ndecoder:\n%s\npdata:\n%s", got, want)
	}
	// What growForPayload counted is what the decoder made.
	if n, rows := payloadPoints(payload), [4]int{len(fast.Gauges), len(fast.Sums), len(fast.Histograms), len(fast.ExpHistograms)}; n != rows {
		t.Fatalf("counted %v points (gauges, sums, histograms, exponential), decoded %v", n, rows)
	}
	// Without rules (the writer's replay), the same rows.
	again := &store.Batch{}
	if p, ok := NewResourceCache(0, nil).decodeMetrics(payload, nil, again); !ok || p != points || rowsText(again) != rowsText(fast) {
		t.Fatalf("without rules: ok %v, %d points, rows differ: %v", ok, p, rowsText(again) != rowsText(fast))
	}
	return true
}

func TestDecodeMetricsAsPdata(t *testing.T) {
	now := time.Now()
	lim := Limits{}.withDefaults()
	for name, payload := range map[string][]byte{
		"every kind":   encode(t, everyKind(now)),
		"agents":       agentRequest(),
		"empty":        {},
		"no resources": encode(t, pmetric.NewMetrics()),
	} {
		t.Run(name, func(t *testing.T) {
			if !checkSame(t, payload, lim, now.Add(-time.Minute)) {
				t.Fatal("the decoder gave up on a request it is for")
			}
		})
	}
	fast := &store.Batch{}
	points, _ := NewResourceCache(0, nil).decodeMetrics(encode(t, everyKind(now)), newEdge(lim, now), fast)
	if points != 2*2*(4+1+3+1) || len(fast.Gauges) != 16 || len(fast.ExpHistograms) != 4 || len(fast.Resources) != 2 {
		t.Fatalf("%d points; rows %d gauges, %d exponential histograms, %d resources", points, len(fast.Gauges), len(fast.ExpHistograms), len(fast.Resources))
	}
	if e := fast.ExpHistograms[0]; e.Scale != -3 || e.PositiveOffset != -1 || e.PositiveBucketCounts[2] != 1<<40 || e.NegativeOffset != 4 ||
		e.Sum != 0 || e.Min == nil || *e.Min != -2 || e.Max != nil || e.Feature != "f9" || e.Model != "iris" {
		t.Errorf("exponential histogram %+v", e)
	}
	if g := fast.Gauges[3]; g.Value != -42 || g.Attributes[semconv.AttrFeature] != "f0" || g.Unit != "s" || g.ScopeName != "scope-0" {
		t.Errorf("gauge %+v", g)
	}
}

// TestDecodeMetricsReservesItsRows: the decoder makes room for a request's
// points before it decodes them (no slice grows while it appends); points
// too short to pass the input rules are not counted, and what a request
// reserves is bounded by its size, whatever its framing holds.
func TestDecodeMetricsReservesItsRows(t *testing.T) {
	now := time.Now()
	lim := Limits{}.withDefaults()
	for name, payload := range map[string][]byte{"every kind": encode(t, everyKind(now)), "agents": agentRequest()} {
		t.Run(name, func(t *testing.T) {
			n := payloadPoints(payload)
			want := &store.Batch{}
			growForPayload(payload, want)
			reserved := [4]int{cap(want.Gauges), cap(want.Sums), cap(want.Histograms), cap(want.ExpHistograms)}
			b := &store.Batch{}
			if _, ok := NewResourceCache(0, nil).decodeMetrics(payload, newEdge(lim, now), b); !ok {
				t.Fatal("the decoder gave up")
			}
			for i, k := range []struct {
				name     string
				len, cap int
			}{
				{"gauges", len(b.Gauges), cap(b.Gauges)},
				{"sums", len(b.Sums), cap(b.Sums)},
				{"histograms", len(b.Histograms), cap(b.Histograms)},
				{"exponential histograms", len(b.ExpHistograms), cap(b.ExpHistograms)},
			} {
				if n[i] != k.len {
					t.Errorf("%s: %d rows, %d counted", k.name, k.len, n[i])
				}
				// An agent's points (about 290 bytes each) are all reserved;
				// the small points of everyKind are partly, within the bound.
				if name == "agents" && k.cap != reserved[i] {
					t.Errorf("%s: capacity %d reserved, %d after decoding", k.name, reserved[i], k.cap)
				}
			}
			if len(b.Gauges) == 0 || len(b.Histograms) == 0 {
				t.Fatalf("no rows: %d gauges, %d histograms", len(b.Gauges), len(b.Histograms))
			}
		})
	}

	// A point of 9 bytes (a timestamp) counts, one of 8 does not.
	if got := payloadPoints(pointsRequest(5, 9, 8, 9, 2, 0)); got != [4]int{2, 0, 0, 0} {
		t.Errorf("gauge points of 9, 8, 9, 2 and 0 bytes: counted %v, want 2 gauges", got)
	}
	if got := payloadPoints(pointsRequest(10, 9, 20)); got != [4]int{0, 0, 0, 2} {
		t.Errorf("two exponential histogram points: counted %v", got)
	}
	// 100 000 empty gauge points (2 bytes each).
	md := pmetric.NewMetrics()
	dps := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints()
	for range 100000 {
		dps.AppendEmpty()
	}
	if n := payloadPoints(encode(t, md)); n != [4]int{} {
		t.Errorf("100 000 empty points: %v rows counted", n)
	}

	// 1 MiB of 11-byte points behind a field the decoder refuses at once:
	// counted, but not reserved beyond the bound.
	sizes := make([]int, 1<<20/13)
	for i := range sizes {
		sizes[i] = 11
	}
	hostile := append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 0), pointsRequest(10, sizes...)...)
	if n := payloadPoints(hostile); n[3] != len(sizes) {
		t.Fatalf("counted %v, want %d exponential histograms", n, len(sizes))
	}
	b := &store.Batch{}
	if _, ok := NewResourceCache(0, nil).decodeMetrics(hostile, newEdge(lim, now), b); ok {
		t.Fatal("the decoder took a request whose first field is a varint resource_metrics")
	}
	growForPayload(hostile, b)
	if limit := len(hostile) / reservePointBytes; cap(b.ExpHistograms) > limit+limit/8 {
		t.Errorf("a %d-byte request reserved %d exponential histogram rows, more than %d", len(hostile), cap(b.ExpHistograms), limit)
	}

	// What cannot be read ends the count without a panic, and a cut
	// request counts no more points than its bytes hold (9 at least each).
	payload := agentRequest()
	for i := range payload[:4096] {
		if n := payloadPoints(payload[:i]); 9*(n[0]+n[1]+n[2]+n[3]) > i {
			t.Fatalf("%d bytes of a 500-point request: %v counted", i, n)
		}
	}
}

// pointsRequest is an OTLP metrics request (protobuf) of one metric of
// kind (5 gauge, 7 sum, 9 histogram, 10 exponential histogram) whose data
// points are sizes bytes long (zeros: only their framing is real).
func pointsRequest(kind protowire.Number, sizes ...int) []byte {
	bytesField := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	var data []byte
	for _, n := range sizes {
		data = bytesField(data, 1, make([]byte, n))
	}
	metric := bytesField(bytesField(nil, 1, []byte("m")), kind, data)
	scope := bytesField(nil, 2, metric)
	resource := bytesField(nil, 2, scope)
	return bytesField(nil, 1, resource)
}

// TestDecodeMetricsLeavesToPdata: each request the decoder is not for goes
// to pdata, and the batch it was given is as it was.
func TestDecodeMetricsLeavesToPdata(t *testing.T) {
	now := time.Now()
	lim := Limits{}.withDefaults()
	cases := map[string]func(md pmetric.Metrics){
		"an int attribute": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutInt("n", 1)
		},
		"a bool resource attribute": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(1).Resource().Attributes().PutBool("b", true)
		},
		"a summary": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(1).Metrics().AppendEmpty().SetEmptySummary().DataPoints().AppendEmpty()
		},
		"an exemplar": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(2).Histogram().DataPoints().At(0).Exemplars().AppendEmpty()
		},
		"a point too old": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(1).ScopeMetrics().At(1).Metrics().At(1).Sum().DataPoints().At(0).SetTimestamp(1)
		},
		"a point too new": func(md pmetric.Metrics) {
			dp := md.ResourceMetrics().At(1).ScopeMetrics().At(0).Metrics().At(3).ExponentialHistogram().DataPoints().At(0)
			dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(2 * time.Hour)))
		},
		"an invalid model": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(2).Attributes().PutStr(semconv.AttrModel, "Bad Name!")
		},
		"an invalid resource version": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(1).Resource().Attributes().PutStr(semconv.AttrModelVersion, "v1")
		},
		"a long key": func(md pmetric.Metrics) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutStr(strings.Repeat("k", 200), "v")
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			md := everyKind(now)
			change(md)
			payload := encode(t, md)
			b := &store.Batch{Gauges: []store.GaugeRow{{Value: 1}}}
			if _, ok := NewResourceCache(0, nil).decodeMetrics(payload, newEdge(lim, now), b); ok {
				t.Fatal("the decoder took it")
			}
			if b.Rows() != 1 || b.Gauges[0].Value != 1 {
				t.Fatalf("the batch was changed: %d rows", b.Rows())
			}
		})
	}
	for name, payload := range map[string][]byte{
		"truncated":            encode(t, everyKind(now))[:100],
		"a group":              {0x0b, 0x0c},
		"field zero":           {0x02, 0x00},
		"resource as a varint": {0x08, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := NewResourceCache(0, nil).decodeMetrics(payload, newEdge(lim, now), &store.Batch{}); ok {
				t.Fatal("the decoder took it")
			}
		})
	}
}

// FuzzMetricsDecoder holds the decoder to pdata: whatever it takes, pdata
// decodes too, with the same points, none rejected, to the same rows.
func FuzzMetricsDecoder(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	f.Add(encode(f, everyKind(now)))
	f.Add(agentRequest())
	f.Add(sampleMetrics())
	one := pmetric.NewMetrics()
	dp := one.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.Attributes().PutStr("k", "v")
	f.Add(encode(f, one))
	lim := Limits{}.withDefaults()
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkSame(t, payload, lim, now)
	})
}

// decodedSink records what the receiver handed it.
type decodedSink struct {
	mu       sync.Mutex
	got      []any
	pts      []int
	payloads [][]byte
}

func (s *decodedSink) Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, decoded)
	s.pts = append(s.pts, points)
	s.payloads = append(s.payloads, bytes.Clone(payload))
	return nil
}

// TestReceiverDecodesAgentsMetricsToRows: through the real receivers, an
// agent's protobuf metrics (gRPC and HTTP) reach the sink as rows, a JSON
// request and one with a rejected point as pdata's, that point left out.
func TestReceiverDecodesAgentsMetricsToRows(t *testing.T) {
	sink := &decodedSink{}
	recv := NewReceiver(ReceiverConfig{Resources: NewResourceCache(0, nil)}, sink, NewStats(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	conn, httpAddr := serve(t, recv, nil)
	now := time.Now()
	md := everyKind(now)
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
	post := func(ct string, body []byte) {
		t.Helper()
		resp, err := http.Post("http://"+httpAddr+"/v1/metrics", ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", ct, resp.StatusCode, answer)
		}
	}
	post(ctProtobuf, encode(t, md))
	js, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	post(ctJSON, js)
	old := everyKind(now)
	old.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).SetTimestamp(1)
	post(ctProtobuf, encode(t, old))

	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != 4 {
		t.Fatalf("%d requests reached the sink", len(sink.got))
	}
	for i, want := range []string{"*store.Batch", "*store.Batch", "pmetric.Metrics", "pmetric.Metrics"} {
		if got := fmt.Sprintf("%T", sink.got[i]); got != want {
			t.Errorf("request %d reached the sink as %s, want %s", i, got, want)
		}
	}
	if rows, ok := sink.got[0].(*store.Batch); !ok || len(rows.Gauges) != 16 || len(rows.Histograms) != 12 || sink.pts[0] != 36 {
		t.Errorf("gRPC: %d points", sink.pts[0])
	}
	if sink.pts[2] != 36 || sink.pts[3] != 35 {
		t.Errorf("JSON %d points, with one rejected %d; want 36 and 35", sink.pts[2], sink.pts[3])
	}
}

// TestOTelSDKExportTakesTheDecoder: what the OTel Go SDK exports (as the
// agent does: string attributes, no exemplars; gauges, sums, explicit and
// exponential histograms, delta and cumulative) reaches the sink as rows,
// the same rows pdata gives.
func TestOTelSDKExportTakesTheDecoder(t *testing.T) {
	for _, temporality := range []metricdata.Temporality{metricdata.CumulativeTemporality, metricdata.DeltaTemporality} {
		t.Run(temporality.String(), func(t *testing.T) {
			sink := &decodedSink{}
			recv := NewReceiver(ReceiverConfig{Resources: NewResourceCache(0, nil)}, sink, NewStats(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
			conn, _ := serve(t, recv, nil)
			ctx := context.Background()
			exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithGRPCConn(conn),
				otlpmetricgrpc.WithTemporalitySelector(func(sdkmetric.InstrumentKind) metricdata.Temporality { return temporality }))
			if err != nil {
				t.Fatal(err)
			}
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
				sdkmetric.WithResource(resource.NewSchemaless(attribute.String(semconv.AttrServiceName, "drover-agent"),
					attribute.String(semconv.AttrHostName, "host-a"), attribute.String(semconv.AttrAgentID, "host-a:/var/lib/drover"))),
				sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "drover.feature"},
					sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
			defer mp.Shutdown(ctx)
			meter := mp.Meter("github.com/drover-ml/drover/agent")
			counter, _ := meter.Int64Counter("drover.requests")
			hist, _ := meter.Float64Histogram("drover.latency", metric.WithUnit("s"))
			feature, _ := meter.Float64Histogram("drover.feature")
			gauge, _ := meter.Float64Gauge("drover.accuracy")
			model := metric.WithAttributes(attribute.String(semconv.AttrModel, "iris"), attribute.String(semconv.AttrModelVersion, "3"))
			for i := range 50 {
				status := attribute.String(semconv.AttrStatus, []string{"ok", "error"}[i%2])
				counter.Add(ctx, 1, model, metric.WithAttributes(status))
				hist.Record(ctx, float64(i)/1000, model, metric.WithAttributes(status))
				feature.Record(ctx, float64(i)-20.5, model, metric.WithAttributes(attribute.String(semconv.AttrFeature, "petal_length")))
				gauge.Record(ctx, 0.9, model)
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			if err := exp.Export(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if len(sink.got) != 1 {
				t.Fatalf("%d requests reached the sink", len(sink.got))
			}
			rows, ok := sink.got[0].(*store.Batch)
			if !ok {
				t.Fatalf("the SDK's request reached the sink as %T, not as rows", sink.got[0])
			}
			if sink.pts[0] != 2+2+1+1 || len(rows.Sums) != 2 || len(rows.Histograms) != 2 || len(rows.ExpHistograms) != 1 || len(rows.Gauges) != 1 {
				t.Fatalf("%d points: %d sums, %d histograms, %d exponential histograms, %d gauges", sink.pts[0],
					len(rows.Sums), len(rows.Histograms), len(rows.ExpHistograms), len(rows.Gauges))
			}
			if !checkSame(t, sink.payloads[0], Limits{}.withDefaults(), time.Now()) {
				t.Fatal("the decoder gave up on the SDK's request")
			}
			if e := rows.ExpHistograms[0]; e.Count != 50 || e.Feature != "petal_length" || e.Model != "iris" || len(e.PositiveBucketCounts) == 0 || len(e.NegativeBucketCounts) == 0 {
				t.Errorf("exponential histogram %+v", e)
			}
		})
	}
}
