package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// edgePoint describes one gauge point of a test request.
type edgePoint struct {
	at    time.Time
	attrs map[string]string
}

func edgeMetrics(res map[string]string, pts ...edgePoint) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range res {
		rm.Resource().Attributes().PutStr(k, v)
	}
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("edge.test")
	dps := g.SetEmptyGauge().DataPoints()
	for i, p := range pts {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(p.at))
		dp.SetDoubleValue(float64(i))
		for k, v := range p.attrs {
			dp.Attributes().PutStr(k, v)
		}
	}
	return md
}

func TestEdgeRules(t *testing.T) {
	now := time.Now()
	lim := Limits{}.withDefaults()
	many := map[string]string{}
	for i := range DefaultMaxAttributes + 1 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	for name, c := range map[string]struct {
		res    map[string]string
		pt     edgePoint
		reason string // "" accepted
	}{
		"now":                  {nil, edgePoint{at: now}, ""},
		"max_age ago":          {nil, edgePoint{at: now.Add(-lim.MaxAge + time.Minute)}, ""},
		"older":                {nil, edgePoint{at: now.Add(-lim.MaxAge - time.Minute)}, "too_old"},
		"400 days ago":         {nil, edgePoint{at: now.Add(-400 * 24 * time.Hour)}, "too_old"},
		"no timestamp":         {nil, edgePoint{at: time.Unix(0, 0)}, "too_old"},
		"within max_future":    {nil, edgePoint{at: now.Add(lim.MaxFuture - time.Minute)}, ""},
		"beyond max_future":    {nil, edgePoint{at: now.Add(lim.MaxFuture + time.Minute)}, "too_new"},
		"valid model":          {nil, edgePoint{now, map[string]string{semconv.AttrModel: "iris-v2.onnx_1", semconv.AttrModelVersion: "12"}}, ""},
		"model with slash":     {nil, edgePoint{now, map[string]string{semconv.AttrModel: "../etc"}}, "model"},
		"reserved model":       {nil, edgePoint{now, map[string]string{semconv.AttrModel: "show"}}, "model"},
		"long model":           {nil, edgePoint{now, map[string]string{semconv.AttrModel: strings.Repeat("a", 129)}}, "model"},
		"version not a number": {nil, edgePoint{now, map[string]string{semconv.AttrModelVersion: "3; DROP"}}, "version"},
		"empty model":          {nil, edgePoint{now, map[string]string{semconv.AttrModel: ""}}, ""},
		"resource model bad":   {map[string]string{semconv.AttrModel: "a b"}, edgePoint{at: now}, "model"},
		"too many attributes":  {nil, edgePoint{now, many}, "attributes"},
		"long key":             {nil, edgePoint{now, map[string]string{strings.Repeat("k", DefaultMaxKeyBytes+1): "v"}}, "attributes"},
		"long value":           {nil, edgePoint{now, map[string]string{"k": strings.Repeat("v", DefaultMaxValueBytes+1)}}, "attributes"},
		"value at the limit":   {nil, edgePoint{now, map[string]string{"k": strings.Repeat("v", DefaultMaxValueBytes)}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			good := edgePoint{at: now, attrs: map[string]string{semconv.AttrModel: "iris"}}
			md := edgeMetrics(c.res, good, c.pt, good)
			e := newEdge(lim, now)
			n := e.metrics(md)
			want := 0
			if c.reason != "" {
				want = 1
				if c.res != nil {
					want = 3 // the resource takes its points with it
				}
			}
			if n != want || md.DataPointCount() != 3-want {
				t.Fatalf("rejected %d, %d points left; want %d rejected", n, md.DataPointCount(), want)
			}
			for r, label := range reasonLabels {
				got := e.counts[r]
				if (label == c.reason) != (got > 0) {
					t.Errorf("counts[%s] = %d (want reason %q)", label, got, c.reason)
				}
			}
			if want > 0 && !strings.Contains(e.message("data points", 3), "rejected") {
				t.Errorf("message %q", e.message("data points", 3))
			}
		})
	}
}

func TestEdgeLogs(t *testing.T) {
	now := time.Now()
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	ok := lrs.AppendEmpty()
	ok.SetTimestamp(pcommon.NewTimestampFromTime(now))
	observed := lrs.AppendEmpty() // no timestamp: its observed time counts
	observed.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
	none := lrs.AppendEmpty() // neither
	none.Attributes().PutStr(semconv.AttrModel, "iris")
	old := lrs.AppendEmpty()
	old.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-30 * 24 * time.Hour)))
	e := newEdge(Limits{}.withDefaults(), now)
	if n := e.logs(ld); n != 2 || ld.LogRecordCount() != 2 {
		t.Fatalf("rejected %d, %d left; want 2 and 2", n, ld.LogRecordCount())
	}
	msg := e.message("log records", 4)
	if !strings.HasPrefix(msg, "2 of 4 log records rejected: 2 with a timestamp more than 168h0m0s old (otlp.max_age), first 1970-01-01T00:00:00Z") {
		t.Errorf("message = %q", msg)
	}
}

// TestEdgeAllocatesNothingPerPoint: checking a request costs a fixed
// number of allocations, whatever its number of points.
func TestEdgeAllocatesNothingPerPoint(t *testing.T) {
	now := time.Now()
	mk := func(n int) pmetric.Metrics {
		pts := make([]edgePoint, n)
		for i := range pts {
			pts[i] = edgePoint{now, map[string]string{semconv.AttrModel: "iris", semconv.AttrModelVersion: "3", semconv.AttrStatus: "ok"}}
		}
		return edgeMetrics(map[string]string{semconv.AttrHostName: "h"}, pts...)
	}
	small, large := mk(10), mk(1000)
	lim := Limits{}.withDefaults()
	a := testing.AllocsPerRun(20, func() { newEdge(lim, now).metrics(small) })
	b := testing.AllocsPerRun(20, func() { newEdge(lim, now).metrics(large) })
	if b > a {
		t.Errorf("%v allocations for 1000 points, %v for 10: the check allocates per point", b, a)
	}
}

func BenchmarkEdge(b *testing.B) {
	now := time.Now()
	pts := make([]edgePoint, 1000)
	for i := range pts {
		pts[i] = edgePoint{now, map[string]string{semconv.AttrModel: "iris", semconv.AttrModelVersion: "3", semconv.AttrStatus: "ok"}}
	}
	md := edgeMetrics(map[string]string{semconv.AttrHostName: "h"}, pts...)
	lim := Limits{}.withDefaults()
	b.ReportAllocs()
	for b.Loop() {
		newEdge(lim, now).metrics(md)
	}
}

// TestDrillEdgeEndToEnd (issue 16, first finding, at the edge): one OTLP
// request whose points span 400 days, among good ones, through the real
// receivers, spool, writer and ClickHouse. The points older than
// otlp.max_age are rejected per point in the partial-success answer; the
// rest of that request and the good requests are stored; a request whose
// every point is rejected is answered, not spooled.
func TestDrillEdgeEndToEnd(t *testing.T) {
	db := testenv.ClickHouse(t)
	s := migratedStore(t, db)
	sp := openTestSpool(t, spool.Options{})
	stats := NewStats(prometheus.NewRegistry())
	sink := &SpoolSink{Spool: sp, Stats: stats}
	recv := NewReceiver(ReceiverConfig{}, sink, stats, slog.New(slog.DiscardHandler))
	conn, httpAddr := serve(t, recv, nil)
	runWriter(t, WriterConfig{FlushInterval: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}, sp, nil, s, stats)

	client := pmetricotlp.NewGRPCClient(conn)
	now := time.Now()
	res := map[string]string{semconv.AttrHostName: "host-a"}
	model := map[string]string{semconv.AttrModel: "iris", semconv.AttrModelVersion: "3"}
	good := edgeMetrics(res, edgePoint{now, model}, edgePoint{now.Add(-time.Minute), model})
	var span []edgePoint
	for d := range 400 {
		span = append(span, edgePoint{now.Add(-time.Duration(d)*24*time.Hour - 12*time.Hour), model})
	}
	for i, md := range []pmetric.Metrics{good, edgeMetrics(res, span...), good} {
		resp, err := client.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		ps := resp.PartialSuccess()
		if i != 1 {
			if ps.RejectedDataPoints() != 0 || ps.ErrorMessage() != "" {
				t.Errorf("good request %d: partial success %d %q", i, ps.RejectedDataPoints(), ps.ErrorMessage())
			}
			continue
		}
		if ps.RejectedDataPoints() != 393 || !strings.Contains(ps.ErrorMessage(), "393 of 400 data points rejected: 393 with a timestamp more than 168h0m0s old (otlp.max_age)") {
			t.Errorf("400-day request: partial success %d %q; want 393 rejected as older than otlp.max_age", ps.RejectedDataPoints(), ps.ErrorMessage())
		}
	}

	// Over HTTP (JSON), a request whose every point is rejected.
	bad := pmetricotlp.NewExportRequestFromMetrics(edgeMetrics(res, edgePoint{now, map[string]string{semconv.AttrModel: "no such/model"}}))
	body, err := bad.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	hresp, err := http.Post("http://"+httpAddr+"/v1/metrics", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer hresp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(hresp.Body)
	answer := pmetricotlp.NewExportResponse()
	if err := answer.UnmarshalJSON(buf.Bytes()); err != nil || hresp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP answer %d %q: %v", hresp.StatusCode, buf.String(), err)
	}
	if answer.PartialSuccess().RejectedDataPoints() != 1 || !strings.Contains(answer.PartialSuccess().ErrorMessage(), `invalid drover.model "no such/model"`) {
		t.Errorf("HTTP partial success = %d %q", answer.PartialSuccess().RejectedDataPoints(), answer.PartialSuccess().ErrorMessage())
	}

	waitAcked(t, sp, 3) // the all-rejected request was not spooled
	if got := sp.Committed(); got != 3 {
		t.Errorf("%d requests spooled, want 3", got)
	}
	if got := countRows(t, db, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE metric = 'edge.test'"); got != 2+7+2 {
		t.Errorf("metrics_gauge holds %d points, want the 11 accepted", got)
	}
	if got := testutil.ToFloat64(stats.Invalid.WithLabelValues("metrics", "too_old")); got != 393 {
		t.Errorf("invalid{too_old} = %v, want 393", got)
	}
	if got := testutil.ToFloat64(stats.Invalid.WithLabelValues("metrics", "model")); got != 1 {
		t.Errorf("invalid{model} = %v, want 1", got)
	}
}
