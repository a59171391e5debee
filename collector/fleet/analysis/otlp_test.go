package analysis

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// agentOTLP builds what an agent exports every minute for one version,
// as OTLP: delta drover.requests by status and drover.request.duration,
// a cumulative drover.feedback (joined) and labels-source drover.eval
// gauges.
type agentOTLP struct {
	host, model, version string
	statuses             map[string]int64
	latency              []uint64
	joined               int64
	evals                map[string]float64
}

func (a agentOTLP) export(from, to time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	r := rm.Resource().Attributes()
	r.PutStr(semconv.AttrServiceName, semconv.ServiceNameAgent)
	r.PutStr(semconv.AttrHostName, a.host)
	r.PutStr(semconv.AttrAgentID, "agent-"+a.host)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/drover-ml/drover/agent/telemetry")
	attrs := func(m pcommon.Map, kv ...string) {
		m.PutStr(semconv.AttrModel, a.model)
		m.PutStr(semconv.AttrModelVersion, a.version)
		for i := 0; i+1 < len(kv); i += 2 {
			m.PutStr(kv[i], kv[i+1])
		}
	}
	ts := pcommon.NewTimestampFromTime
	reqs := sm.Metrics().AppendEmpty()
	reqs.SetName(semconv.MetricRequests)
	rs := reqs.SetEmptySum()
	rs.SetIsMonotonic(true)
	rs.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	lat := sm.Metrics().AppendEmpty()
	lat.SetName(semconv.MetricRequestLatency)
	lat.SetUnit("s")
	lh := lat.SetEmptyHistogram()
	lh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	fb := sm.Metrics().AppendEmpty()
	fb.SetName(semconv.MetricFeedback)
	fs := fb.SetEmptySum()
	fs.SetIsMonotonic(true)
	fs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ev := sm.Metrics().AppendEmpty()
	ev.SetName(semconv.MetricEval)
	eg := ev.SetEmptyGauge()
	var joined int64
	for at := from.Add(30 * time.Second); at.Before(to); at = at.Add(time.Minute) {
		for status, n := range a.statuses {
			dp := rs.DataPoints().AppendEmpty()
			dp.SetStartTimestamp(ts(at.Add(-time.Minute)))
			dp.SetTimestamp(ts(at))
			dp.SetIntValue(n)
			attrs(dp.Attributes(), semconv.AttrStatus, status, semconv.AttrProtocol, "rest")
		}
		hp := lh.DataPoints().AppendEmpty()
		hp.SetStartTimestamp(ts(at.Add(-time.Minute)))
		hp.SetTimestamp(ts(at))
		hp.ExplicitBounds().FromRaw(latBounds)
		hp.BucketCounts().FromRaw(a.latency)
		var n uint64
		for _, c := range a.latency {
			n += c
		}
		hp.SetCount(n)
		attrs(hp.Attributes())
		joined += a.joined
		fp := fs.DataPoints().AppendEmpty()
		fp.SetStartTimestamp(ts(from))
		fp.SetTimestamp(ts(at))
		fp.SetIntValue(joined)
		attrs(fp.Attributes(), semconv.AttrStatus, "joined")
		for metric, v := range a.evals {
			gp := eg.DataPoints().AppendEmpty()
			gp.SetTimestamp(ts(at))
			gp.SetDoubleValue(v)
			attrs(gp.Attributes(), semconv.AttrMetric, metric, semconv.AttrSource, "labels")
		}
	}
	return md
}

// TestAnalyzeOTLP sends the agents' telemetry through the collector's
// OTLP conversion (ingest.Convert, what the receivers run) and the store,
// and checks the verdicts of a better and of a worse canary.
func TestAnalyzeOTLP(t *testing.T) {
	db := migrated(t)
	a := NewAnalyzer(db.Conn, db.Name)
	since := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	end := since.Add(12 * time.Minute)
	evals := map[string]float64{"accuracy": 0.95, "f1": 0.9}
	baseLat := []uint64{10, 40, 30, 15, 3, 2, 0}
	agents := []agentOTLP{
		{host: "web-1", model: "good", version: "4", statuses: map[string]int64{"ok": 190, "error": 10}, latency: baseLat, joined: 50, evals: evals},
		{host: "web-1", model: "good", version: "5", statuses: map[string]int64{"ok": 50, "not_found": 3}, latency: baseLat, joined: 50,
			evals: map[string]float64{"accuracy": 0.96, "f1": 0.92}},
		{host: "web-1", model: "bad", version: "4", statuses: map[string]int64{"ok": 198, "error": 2}, latency: baseLat, joined: 50, evals: evals},
		{host: "web-1", model: "bad", version: "5", statuses: map[string]int64{"ok": 45, "timeout": 5}, latency: baseLat, joined: 50, evals: evals},
	}
	b := &store.Batch{}
	for _, ag := range agents {
		payload, err := pmetricotlp.NewExportRequestFromMetrics(ag.export(since, end)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		if err := ingest.Convert(ingest.KindMetrics, payload, b); err != nil {
			t.Fatal(err)
		}
	}
	insert(t, db, b)
	for model, want := range map[string]struct {
		d      Decision
		reason string
	}{
		"good": {Promote, "no regression beyond max_regression: error_rate 0% (canary, n=600) vs 5% (serving, n=2400), -100%"},
		"bad":  {Abort, "regressed: error_rate 10% (canary, n=600) vs 1% (serving, n=2400), +900%"},
	} {
		v, err := a.Analyze(context.Background(), Canary{Model: model, Serving: 4, Version: 5, Started: since}, end)
		if err != nil {
			t.Fatal(err)
		}
		if v.Decision != want.d || !strings.HasPrefix(v.Reason, want.reason) {
			t.Errorf("%s: %s %q, want %s %q…", model, v.Decision, v.Reason, want.d, want.reason)
		}
	}
}
