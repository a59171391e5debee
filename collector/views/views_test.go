package views

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// withClickHouse runs the tests with the package's ClickHouse engine, for
// goleak.VerifyTestMain.
type withClickHouse struct{ m *testing.M }

func (w withClickHouse) Run() int { return testenv.RunWithClickHouse(w.m) }

func TestMain(m *testing.M) { goleak.VerifyTestMain(withClickHouse{m}) }

// classifier returns a small real ONNX classifier (testmodels.Classifier)
// of features inputs and 3 classes whose weights depend on seed: input X
// FP32 [-1, features], outputs label INT64 [-1] and probabilities FP32
// [-1, 3].
func classifier(t *testing.T, features int, seed float32) []byte {
	t.Helper()
	w := make([][]float32, features)
	for i := range w {
		w[i] = []float32{seed, float32(i), 1}
	}
	m, err := testmodels.Classifier(w, []float32{0, seed, 0})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// housingModel is housing's model: a testmodels.Linear regression.
func housingModel(t *testing.T) []byte {
	t.Helper()
	m, err := testmodels.Linear("x", "price", [][]float32{{1}, {2}}, []float32{3})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// contentID is the registry's content id of a version whose only file
// (drover.yaml aside) is model.onnx.
func contentID(model []byte) string {
	sum := sha256.Sum256(model)
	return registry.ContentID([]registry.FileInfo{{Path: "model.onnx", SHA256: hex.EncodeToString(sum[:])}})
}

// otlp builds the agents' telemetry as OTLP export requests, converted
// into rows by the collector's own ingest (ingest.Convert, what the
// receiver runs on every request): one resource per point or event.
type otlp struct {
	t       *testing.T
	metrics pmetric.Metrics
	logs    plog.Logs
}

func newOTLP(t *testing.T) *otlp {
	return &otlp{t: t, metrics: pmetric.NewMetrics(), logs: plog.NewLogs()}
}

func resource(r pcommon.Resource, host string) {
	r.Attributes().PutStr(semconv.AttrServiceName, semconv.ServiceNameAgent)
	r.Attributes().PutStr(semconv.AttrHostName, host)
	r.Attributes().PutStr(semconv.AttrAgentID, "agent-"+host)
}

func putAttrs(m pcommon.Map, model, version string, kv ...string) {
	m.PutStr(semconv.AttrModel, model)
	if version != "" {
		m.PutStr(semconv.AttrModelVersion, version)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}

func (o *otlp) metric(host, name string) pmetric.Metric {
	rm := o.metrics.ResourceMetrics().AppendEmpty()
	resource(rm.Resource(), host)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/drover-ml/drover/agent/telemetry")
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	return m
}

// requests adds a drover.requests point: delta (start 10 s before at), or
// cumulative since start.
func (o *otlp) requests(host, model, version, status string, start, at time.Time, n int64, cumulative bool) {
	m := o.metric(host, semconv.MetricRequests)
	m.SetUnit("{request}")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	if cumulative {
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	dp := sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetIntValue(n)
	putAttrs(dp.Attributes(), model, version, semconv.AttrStatus, status, semconv.AttrProtocol, "rest")
}

// latency adds a delta drover.request.duration histogram.
func (o *otlp) latency(host, model, version string, at time.Time, bounds []float64, counts []uint64) {
	m := o.metric(host, semconv.MetricRequestLatency)
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := h.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(-10 * time.Second)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.ExplicitBounds().FromRaw(bounds)
	dp.BucketCounts().FromRaw(counts)
	var n uint64
	for _, c := range counts {
		n += c
	}
	dp.SetCount(n)
	putAttrs(dp.Attributes(), model, version, semconv.AttrStatus, "ok", semconv.AttrProtocol, "rest")
}

// gauge adds a gauge point.
func (o *otlp) gauge(host, name, model, version string, at time.Time, v float64, kv ...string) {
	dp := o.metric(host, name).SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	putAttrs(dp.Attributes(), model, version, kv...)
}

// event adds a version event as the agent sends it.
func (o *otlp) event(host, version, kind string, at time.Time, kv ...string) {
	rl := o.logs.ResourceLogs().AppendEmpty()
	resource(rl.Resource(), host)
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(at))
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetSeverityText("INFO")
	lr.Body().SetStr(kind + " iris v" + version)
	putAttrs(lr.Attributes(), "iris", version, append([]string{semconv.AttrEventKind, kind}, kv...)...)
}

// convert appends the rows of the built requests to b.
func (o *otlp) convert(b *store.Batch) {
	o.t.Helper()
	mp, err := pmetricotlp.NewExportRequestFromMetrics(o.metrics).MarshalProto()
	if err != nil {
		o.t.Fatal(err)
	}
	lp, err := plogotlp.NewExportRequestFromLogs(o.logs).MarshalProto()
	if err != nil {
		o.t.Fatal(err)
	}
	if err := ingest.Convert(ingest.KindMetrics, mp, b); err != nil {
		o.t.Fatal(err)
	}
	if err := ingest.Convert(ingest.KindLogs, lp, b); err != nil {
		o.t.Fatal(err)
	}
}

// fill stores a small fleet: the version records through the real
// registry (Publish of real ONNX models, Delete), the agents' telemetry as
// OTLP through the ingest's converter, and the collector's other records
// (drift results, jobs) as the rows their writers insert, through
// store.Insert:
//
//   - iris: v1 (published 40 days ago, deleted), v2 (published 35 days
//     ago, parent v1), v3 (published 72 hours ago, parent v2, serving on
//     serve-1 and serve-2, delta counters, a latency histogram, evaluation
//     gauges, drift checks and an open incident with a running job), v4
//     (optimized by job-1 15 minutes ago, parent v3, one more input than
//     v3, serving on serve-3 through a cumulative counter; serve-4 swapped
//     to it and reports the model without traffic), v5 (rejected by an
//     agent, no record), and an old resolved incident of v2 whose job
//     succeeded;
//   - wine: requests 20 hours ago only;
//   - housing: v1 published 48 hours ago, nothing else.
func fill(t *testing.T, s *store.Store, reg *registry.Registry, clock *testenv.Clock, now time.Time) {
	t.Helper()
	ctx := context.Background()
	drift := func(version, feature, test string, at time.Time, value, threshold float64, drifted bool, ref string) store.DriftRow {
		return store.DriftRow{Time: at, Model: "iris", ModelVersion: version, Feature: feature, Test: test, Value: value,
			Threshold: threshold, Drifted: drifted, WindowStart: at.Add(-time.Hour), WindowEnd: at, Reference: ref, Node: "collector-a"}
	}
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tp := func(t time.Time) *time.Time { return &t }

	publish := func(at time.Time, model string, onnx []byte, meta registry.Meta, want uint64) {
		t.Helper()
		clock.Set(at)
		sum := sha256.Sum256(onnx)
		v, created, err := reg.Publish(ctx, model, registry.Uploads(registry.Upload{Path: "model.onnx",
			SHA256: hex.EncodeToString(sum[:]), Size: int64(len(onnx)), Body: bytes.NewReader(onnx)}), meta)
		if err != nil || !created || v.Version != want {
			t.Fatalf("publish %s: version %d, created %v, %v; want version %d", model, v.Version, created, err, want)
		}
	}
	publish(ago(40*24*time.Hour), "iris", classifier(t, 4, 1), registry.Meta{Author: "ana@example.com", Message: "first"}, 1)
	publish(ago(35*24*time.Hour), "iris", classifier(t, 4, 2), registry.Meta{Author: "ana@example.com", Parents: []uint64{1}}, 2)
	publish(ago(72*time.Hour), "iris", classifier(t, 4, 3),
		registry.Meta{Author: "ana@example.com", Message: "retrain on november data", Parents: []uint64{2}}, 3)
	publish(ago(48*time.Hour), "housing", housingModel(t), registry.Meta{Author: "bo", Message: "first"}, 1)
	publish(ago(15*time.Minute), "iris", classifier(t, 5, 4), registry.Meta{Author: "optimizer", Message: "job-1: max_depth 6",
		Parents: []uint64{3}, Source: registry.SourceOptimize, Incident: "iris-3", Job: "job-1"}, 4)
	clock.Set(now)
	if err := reg.Delete(ctx, "iris", 1); err != nil {
		t.Fatalf("delete iris v1: %v", err)
	}

	b := &store.Batch{
		Drift: []store.DriftRow{
			drift("3", "petal_length", store.DriftTestPSI, ago(20*time.Minute), 0.1, 0.2, false, "first_window"),
			drift("3", "petal_length", store.DriftTestPSI, ago(10*time.Minute), 0.31, 0.2, true, "first_window"),
			drift("3", "petal_length", store.DriftTestKS, ago(10*time.Minute), 0.12, 0.15, false, "first_window"),
			drift("3", "", store.DriftTestErrorRate, ago(10*time.Minute), 0.001, 0.05, false, "first_window"),
			drift("3", "", "dataset", ago(10*time.Minute), math.NaN(), 0.5, false, "first_window"),
			drift("3", "", testCheck, ago(30*time.Minute), 1, 1, true, "petal_length psi 0.31 > 0.2"),
			drift("3", "", testCheck, ago(20*time.Minute), 1, 1, true, "petal_length psi 0.31 > 0.2"),
			drift("3", "", testCheck, ago(10*time.Minute), 1, 1, true, "petal_length psi 0.31 > 0.2"),
			{Time: ago(20 * time.Minute), Model: "iris", ModelVersion: "3", Test: testIncident, Value: 1, Threshold: 1, Drifted: true,
				WindowStart: ago(30 * time.Minute), WindowEnd: ago(20 * time.Minute), Reference: "petal_length psi 0.31 > 0.2", Node: "collector-a"},
			drift("2", "", testCheck, ago(5*time.Hour), 1, 1, true, "accuracy 0.88 < 0.92"),
			drift("2", "", testCheck, ago(4*time.Hour), 0, 1, false, ""),
			drift("2", "", testCheck, ago(3*time.Hour), 0, 1, false, ""),
			{Time: ago(5 * time.Hour), Model: "iris", ModelVersion: "2", Test: testIncident, Value: 1, Threshold: 1, Drifted: true,
				WindowStart: ago(6 * time.Hour), WindowEnd: ago(5 * time.Hour), Reference: "accuracy 0.88 < 0.92; sepal_width ks 0.21 > 0.15", Node: "collector-b"},
		},
		Jobs: []store.JobRow{
			{ID: "job-2", Model: "iris", ModelVersion: "2", IncidentStart: ago(6 * time.Hour), State: "succeeded", Attempt: 1,
				LeaseOwner: "collector-b", Created: ago(5*time.Hour - time.Minute), Updated: ago(4*time.Hour + 30*time.Minute),
				Started: tp(ago(5 * time.Hour)), Finished: tp(ago(4*time.Hour + 30*time.Minute)), ResultVersion: 3, RowVersion: 2},
			{ID: "job-3", Model: "iris", ModelVersion: "3", IncidentStart: ago(30 * time.Minute), State: "queued", Attempt: 1,
				LeaseOwner: "collector-a", Created: ago(19 * time.Minute), Updated: ago(19 * time.Minute), RowVersion: 1},
			{ID: "job-3", Model: "iris", ModelVersion: "3", IncidentStart: ago(30 * time.Minute), State: "running", Attempt: 1,
				LeaseOwner: "collector-a", Created: ago(19 * time.Minute), Updated: ago(18 * time.Minute), Started: tp(ago(18 * time.Minute)), RowVersion: 2},
		},
	}
	o := newOTLP(t)
	delta := func(host, model, version, status string, at time.Time, n int64) {
		o.requests(host, model, version, status, at.Add(-10*time.Second), at, n, false)
	}
	delta("serve-1", "iris", "3", "ok", ago(2*time.Minute), 100)
	delta("serve-1", "iris", "3", "error", ago(2*time.Minute), 2)
	delta("serve-2", "iris", "3", "ok", ago(3*time.Minute), 98)
	delta("serve-1", "iris", "3", "ok", ago(2*time.Hour), 1000)
	o.requests("serve-3", "iris", "4", "ok", ago(10*time.Minute), ago(4*time.Minute), 100, true)
	o.requests("serve-3", "iris", "4", "ok", ago(10*time.Minute), ago(time.Minute), 150, true)
	delta("serve-9", "wine", "1", "ok", ago(20*time.Hour), 7)
	o.latency("serve-1", "iris", "3", ago(2*time.Minute), []float64{0.001, 0.005, 0.01}, []uint64{50, 40, 10, 0})
	eval := func(host, version, source, metric string, at time.Time, v float64) {
		o.gauge(host, semconv.MetricEval, "iris", version, at, v, semconv.AttrSource, source, semconv.AttrMetric, metric)
	}
	eval("serve-1", "3", "labels", "accuracy", ago(3*time.Minute), 0.95)
	eval("serve-1", "3", "labels", "accuracy", ago(time.Minute), 0.96)
	eval("serve-1", "3", "labels", "f1", ago(time.Minute), 0.94)
	eval("serve-1", "3", "golden", "accuracy", ago(time.Minute), 0.97)
	eval("serve-3", "4", "golden", "accuracy", ago(time.Minute), 0.98)
	for _, host := range []string{"serve-1", "serve-2", "serve-3", "serve-4"} {
		o.gauge(host, semconv.MetricLoadedVersions, "iris", "", ago(time.Minute), 1)
	}
	o.event("serve-1", "3", semconv.EventLoaded, ago(50*time.Minute))
	o.event("serve-1", "3", semconv.EventSwapped, ago(50*time.Minute).Add(time.Second), semconv.AttrPrevious, "2")
	o.event("serve-1", "5", semconv.EventRejected, ago(40*time.Minute), semconv.AttrReason, "checksum mismatch")
	o.event("serve-1", "3", semconv.EventRolledBack, ago(35*time.Minute), semconv.AttrPrevious, "4", semconv.AttrReason, "version 3 is pinned")
	o.event("serve-4", "4", semconv.EventSwapped, ago(time.Hour), semconv.AttrPrevious, "3")
	o.convert(b)
	if err := s.Insert(ctx, b, "views-fleet"); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

// setup returns a server with the views' routes over a filled database,
// the views' clock fixed at now.
func setup(t *testing.T) (*httptest.Server, time.Time) {
	t.Helper()
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s := store.New(db.Conn, db.Name, db.Options)
	t.Cleanup(s.Close)
	now := time.Now().UTC().Truncate(time.Millisecond)
	u, err := registry.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := registry.OpenBlobs(ctx, u)
	if err != nil {
		t.Fatalf("open blobs: %v", err)
	}
	t.Cleanup(func() { blobs.Close() })
	clock := testenv.NewClock(now)
	reg := registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	fill(t, s, reg, clock, now)
	owners := map[string]string{"iris": "collector-a"}
	v := New(db.Conn, db.Name, WithClock(func() time.Time { return now }), WithOwner(func(m string) (string, bool) {
		o, ok := owners[m]
		return o, ok
	}))
	mux := http.NewServeMux()
	for p, h := range v.Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, now
}

// get fetches path and returns the status and body.
func get(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, buf.Bytes()
}

// decodeStrict decodes body into v (an adminclient type) rejecting
// unknown fields: the server's JSON is the CLI's contract.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode into %T: %v\n%s", v, err, body)
	}
}

// okJSON fetches path, wants 200, and decodes it strictly into v.
func okJSON(t *testing.T, srv *httptest.Server, path string, v any) []byte {
	t.Helper()
	status, body := get(t, srv, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	decodeStrict(t, body, v)
	return body
}

// keysOf returns the keys of each object of a JSON array (or of a JSON
// object), to check that no documented field is absent.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestViews fills one database and calls every view on it.
func TestViews(t *testing.T) {
	srv, now := setup(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *httptest.Server, time.Time)
	}{
		{"models", testModels}, {"versions", testVersions}, {"diff", testDiff}, {"drift and incidents", testDriftAndIncidents},
		{"history", testHistory}, {"bad requests", testBadRequests}, {"droverctl renders", testCLIRendersViews},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, srv, now) })
	}
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "invalid: " + string(raw)
	}
	return b.String()
}

func near(a *float64, want float64) bool { return a != nil && math.Abs(*a-want) < 1e-9 }

func testModels(t *testing.T, srv *httptest.Server, now time.Time) {
	var got []adminclient.Model
	body := okJSON(t, srv, "/v1/models", &got)
	names := []string{}
	for _, m := range got {
		names = append(names, m.Name)
	}
	if want := []string{"housing", "iris", "wine"}; !slices.Equal(names, want) {
		t.Fatalf("models %q, want %q", names, want)
	}
	iris, wine, housing := got[1], got[2], got[0]
	if iris.Owner == nil || *iris.Owner != "collector-a" || housing.Owner != nil {
		t.Errorf("owners: iris %v, housing %v", iris.Owner, housing.Owner)
	}
	if !slices.Equal(iris.VersionsServing, []uint64{3, 4}) || iris.Hosts != 4 {
		t.Errorf("iris serving %v on %d hosts, want [3 4] on 4 (serve-4 without traffic)", iris.VersionsServing, iris.Hosts)
	}
	// 100 + 2 + 98 delta, 50 cumulative increase, in the last 5 minutes.
	if !near(iris.RequestsPerSecond, 250.0/300) || !near(iris.ErrorRate, 2.0/250) {
		t.Errorf("iris rps %v error rate %v, want %v %v", deref(iris.RequestsPerSecond), deref(iris.ErrorRate), 250.0/300, 2.0/250)
	}
	if iris.LatestVersion == nil || *iris.LatestVersion != 4 {
		t.Errorf("iris latest %v, want 4 (registry)", iris.LatestVersion)
	}
	if len(wine.VersionsServing) != 0 || wine.Hosts != 0 || wine.RequestsPerSecond != nil || wine.ErrorRate != nil ||
		wine.LatestVersion == nil || *wine.LatestVersion != 1 {
		t.Errorf("wine = %+v, want nothing serving, null rates, latest 1 (seen)", wine)
	}
	if housing.LatestVersion == nil || *housing.LatestVersion != 1 || housing.Hosts != 0 {
		t.Errorf("housing = %+v, want latest 1 (registry), 0 hosts", housing)
	}
	var raw []json.RawMessage
	json.Unmarshal(body, &raw)
	want := []string{"error_rate", "hosts", "latest_version", "name", "owner", "requests_per_second", "versions_serving"}
	for _, r := range raw {
		if k := keysOf(t, r); !slices.Equal(k, want) {
			t.Errorf("model fields %q, want %q", k, want)
		}
	}
	if !strings.Contains(string(body), `"versions_serving": []`) {
		t.Errorf("an empty list is not []:\n%s", body)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func testVersions(t *testing.T, srv *httptest.Server, now time.Time) {
	var got []adminclient.Version
	body := okJSON(t, srv, "/v1/models/iris/versions", &got)
	var numbers []uint64
	for _, v := range got {
		numbers = append(numbers, v.Version)
	}
	if !slices.Equal(numbers, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("versions %v, want 1..5 (four records, v5 from the fleet):\n%s", numbers, body)
	}
	v1, v2, v3, v4, v5 := got[0], got[1], got[2], got[3], got[4]
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	if str(v1.ContentID) != contentID(classifier(t, 4, 1)) || v1.Created == nil || !v1.Created.Equal(now.Add(-40*24*time.Hour)) ||
		str(v1.Author) != "ana@example.com" || str(v1.Message) != "first" || len(v1.Parents) != 0 || str(v1.Source) != "publish" ||
		str(v1.State) != "deleted" || v1.Metrics != (adminclient.VersionMetrics{}) {
		t.Errorf("v1 (deleted record, no metrics): %+v", v1)
	}
	if str(v2.ContentID) != contentID(classifier(t, 4, 2)) || !slices.Equal(v2.Parents, []uint64{1}) || v2.Message != nil ||
		str(v2.Source) != "publish" || str(v2.State) != "published" {
		t.Errorf("v2 (active record, not served): %+v", v2)
	}
	if str(v3.ContentID) != contentID(classifier(t, 4, 3)) {
		t.Errorf("v3 content_id %s, want the registry's %s", str(v3.ContentID), contentID(classifier(t, 4, 3)))
	}
	if v3.Created == nil || !v3.Created.Equal(now.Add(-72*time.Hour)) || str(v3.Author) != "ana@example.com" ||
		str(v3.Message) != "retrain on november data" || !slices.Equal(v3.Parents, []uint64{2}) || str(v3.Source) != "publish" || str(v3.State) != "serving" {
		t.Errorf("v3 record: %s", body)
	}
	m := v3.Metrics
	if m.Requests == nil || *m.Requests != 1200 || !near(m.ErrorRate, 2.0/1200) || m.Hosts == nil || *m.Hosts != 2 {
		t.Errorf("v3 requests %v error rate %v hosts %v; want 1200, 2/1200, 2", m.Requests, deref(m.ErrorRate), m.Hosts)
	}
	// 50 of 100 in (0, 1ms], 40 in (1, 5], 10 in (5, 10]: p50 = 1 ms,
	// p99 = 5 + 5 × 9/10 ms.
	if !near(m.LatencyP50Ms, 1) || !near(m.LatencyP99Ms, 9.5) {
		t.Errorf("v3 latency p50 %v p99 %v, want 1 and 9.5", deref(m.LatencyP50Ms), deref(m.LatencyP99Ms))
	}
	if !near(m.Accuracy, 0.96) || !near(m.F1, 0.94) || m.MSE != nil || !near(m.GoldenScore, 0.97) {
		t.Errorf("v3 accuracy %v f1 %v mse %v golden %v; want the latest minute 0.96, 0.94, null, 0.97",
			deref(m.Accuracy), deref(m.F1), deref(m.MSE), deref(m.GoldenScore))
	}
	if !near(m.DriftScore, 0.31/0.2) {
		t.Errorf("v3 drift score %v, want psi 0.31 / 0.2", deref(m.DriftScore))
	}
	if str(v4.ContentID) != contentID(classifier(t, 5, 4)) || v4.Created == nil || !v4.Created.Equal(now.Add(-15*time.Minute)) ||
		str(v4.Author) != "optimizer" || str(v4.Message) != "job-1: max_depth 6" ||
		str(v4.Source) != "optimize" || str(v4.State) != "serving" || !slices.Equal(v4.Parents, []uint64{3}) ||
		v4.Metrics.Requests == nil || *v4.Metrics.Requests != 150 || !near(v4.Metrics.ErrorRate, 0) ||
		*v4.Metrics.Hosts != 1 || v4.Metrics.LatencyP99Ms != nil || !near(v4.Metrics.GoldenScore, 0.98) || v4.Metrics.DriftScore != nil {
		t.Errorf("v4: %s", body)
	}
	if v5.ContentID != nil || v5.Created != nil || v5.Author != nil || v5.Message != nil || len(v5.Parents) != 0 ||
		*v5.Source != "agent" || *v5.State != "rejected" || v5.Metrics != (adminclient.VersionMetrics{}) {
		t.Errorf("v5 (rejected, no record, no metrics): %s", body)
	}
	var raw []json.RawMessage
	json.Unmarshal(body, &raw)
	var last struct{ Metrics json.RawMessage }
	json.Unmarshal(raw[4], &last)
	if k := keysOf(t, raw[4]); !slices.Equal(k, []string{"author", "content_id", "created", "message", "metrics", "parents", "source", "state", "version"}) {
		t.Errorf("version fields %q", k)
	}
	if k := keysOf(t, last.Metrics); len(k) != 10 {
		t.Errorf("metrics fields %q, want all 10 present (null)", k)
	}

	// A shorter window leaves out the traffic of 2 hours ago.
	okJSON(t, srv, "/v1/models/iris/versions?since=1h", &got)
	if r := got[2].Metrics.Requests; len(got) != 5 || got[2].Version != 3 || r == nil || *r != 200 {
		t.Errorf("since=1h: v3 requests %v, want 200", r)
	}
	// housing: a record, no traffic.
	okJSON(t, srv, "/v1/models/housing/versions?since=30m", &got)
	if len(got) != 1 || str(got[0].State) != "published" || str(got[0].ContentID) != contentID(housingModel(t)) ||
		str(got[0].Author) != "bo" || got[0].Metrics.Requests != nil || len(got[0].Parents) != 0 {
		t.Errorf("housing: %+v", got)
	}
}

func testDiff(t *testing.T, srv *httptest.Server, now time.Time) {
	var d adminclient.VersionDiff
	body := okJSON(t, srv, "/v1/models/iris/diff?from=3&to=4", &d)
	if d.Model != "iris" || d.From.Version != 3 || d.To.Version != 4 {
		t.Fatalf("diff: %s", body)
	}
	var fields []string
	for _, f := range d.Records {
		fields = append(fields, f.Field)
	}
	if want := []string{"content_id", "created", "author", "message", "parents", "source"}; !slices.Equal(fields, want) {
		t.Errorf("records %q, want %q (state is serving on both)", fields, want)
	}
	for _, f := range d.Records {
		if f.Field == "parents" && (compact(f.From) != "[2]" || compact(f.To) != "[3]") {
			t.Errorf("parents %s -> %s", f.From, f.To)
		}
	}
	if len(d.Signature) != 1 || d.Signature[0].Field != "inputs.X.shape" || compact(d.Signature[0].From) != "[-1,4]" || compact(d.Signature[0].To) != "[-1,5]" {
		t.Errorf("signature %s", body)
	}
	if len(d.Metrics) != 10 {
		t.Fatalf("metrics: %d, want every metric", len(d.Metrics))
	}
	byName := map[string]adminclient.MetricDelta{}
	for _, m := range d.Metrics {
		byName[m.Name] = m
	}
	if r := byName["requests"]; !near(r.From, 1200) || !near(r.To, 150) || !near(r.Delta, -1050) {
		t.Errorf("requests %+v", r)
	}
	if p := byName["latency_p99_ms"]; !near(p.From, 9.5) || p.To != nil || p.Delta != nil {
		t.Errorf("latency_p99_ms: delta must be null when one side is: %s", body)
	}
	if g := byName["golden_score"]; !near(g.Delta, 0.98-0.97) {
		t.Errorf("golden_score %+v", g)
	}
	// A deleted version against its successor: the same signature (the
	// models' weights differ, not their inputs).
	okJSON(t, srv, "/v1/models/iris/diff?from=1&to=2", &d)
	fields = fields[:0]
	for _, f := range d.Records {
		fields = append(fields, f.Field+" "+compact(f.From)+" -> "+compact(f.To))
	}
	want := []string{
		`content_id "` + contentID(classifier(t, 4, 1)) + `" -> "` + contentID(classifier(t, 4, 2)) + `"`,
		`created "` + now.Add(-40*24*time.Hour).Format(time.RFC3339Nano) + `" -> "` + now.Add(-35*24*time.Hour).Format(time.RFC3339Nano) + `"`,
		`message "first" -> null`,
		`parents [] -> [1]`,
		`state "deleted" -> "published"`,
	}
	if !slices.Equal(fields, want) || len(d.Signature) != 0 {
		t.Errorf("diff 1 -> 2: records\n%s\nwant\n%s\nsignature %v", strings.Join(fields, "\n"), strings.Join(want, "\n"), d.Signature)
	}
}

func testDriftAndIncidents(t *testing.T, srv *httptest.Server, now time.Time) {
	var d adminclient.Drift
	body := okJSON(t, srv, "/v1/models/iris/drift", &d)
	type key struct{ feature, test string }
	var order []key
	for _, c := range d.Checks {
		order = append(order, key{c.Feature, c.Test})
	}
	want := []key{{"petal_length", "psi"}, {"petal_length", "ks"}, {"", "error_rate"}}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("checks %v, want %v (dataset, check and incident rows are not checks):\n%s", order, want, body)
	}
	psi := d.Checks[0]
	if psi.Value != 0.31 || psi.Threshold != 0.2 || !psi.Drifted || psi.ModelVersion != 3 || !psi.Time.Equal(now.Add(-10*time.Minute)) ||
		psi.Node != "collector-a" || psi.Reference != "first_window" || !psi.WindowEnd.Equal(psi.Time) {
		t.Errorf("latest psi: %+v", psi)
	}
	if len(d.Incidents) != 1 || d.Incidents[0].ModelVersion != 3 || d.Incidents[0].State != "open" || d.Incidents[0].End != nil ||
		d.Incidents[0].JobID == nil || *d.Incidents[0].JobID != "job-3" || !d.Incidents[0].Start.Equal(now.Add(-30*time.Minute)) {
		t.Errorf("open incidents: %s", body)
	}

	var incs []adminclient.Incident
	body = okJSON(t, srv, "/v1/incidents?model=iris", &incs)
	if len(incs) != 2 {
		t.Fatalf("incidents: %s", body)
	}
	old := incs[1]
	if incs[0].ModelVersion != 3 || old.ModelVersion != 2 || old.State != "resolved" || old.End == nil ||
		!old.End.Equal(now.Add(-4*time.Hour)) || old.JobID == nil || *old.JobID != "job-2" ||
		!slices.Equal(old.Reasons, []string{"accuracy 0.88 < 0.92", "sepal_width ks 0.21 > 0.15"}) {
		t.Errorf("resolved incident (the first clean check after its opening ends it): %+v", old)
	}
	var all []adminclient.Incident
	okJSON(t, srv, "/v1/incidents", &all)
	if !reflect.DeepEqual(all, incs) {
		t.Errorf("all incidents %+v, want iris's", all)
	}
	okJSON(t, srv, "/v1/incidents?model=housing", &all)
	if len(all) != 0 {
		t.Errorf("housing incidents %+v", all)
	}
	if _, body := get(t, srv, "/v1/incidents?model=housing"); strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("no incidents: %s, want []", body)
	}
}

func testHistory(t *testing.T, srv *httptest.Server, now time.Time) {
	var h []adminclient.HistoryEvent
	body := okJSON(t, srv, "/v1/models/iris/history", &h)
	type ev struct {
		ago  time.Duration
		kind string
		ver  uint64
	}
	want := []ev{
		{72 * time.Hour, "published", 3},
		{6 * time.Hour, "incident_opened", 2},
		{5*time.Hour - time.Minute, "job_scheduled", 2},
		{4*time.Hour + 30*time.Minute, "job_finished", 2},
		{4 * time.Hour, "incident_resolved", 2},
		{time.Hour, "swapped", 4},
		{50 * time.Minute, "loaded", 3},
		{50*time.Minute - time.Second, "swapped", 3},
		{40 * time.Minute, "rejected", 5},
		{35 * time.Minute, "pinned", 3},
		{30 * time.Minute, "incident_opened", 3},
		{19 * time.Minute, "job_scheduled", 3},
		{15 * time.Minute, "published", 4},
	}
	var got []ev
	for _, e := range h {
		var n uint64
		if e.Version != nil {
			n = *e.Version
		}
		got = append(got, ev{now.Sub(e.Time), e.Kind, n})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history\n got %v\nwant %v\n%s", got, want, body)
	}
	if !strings.Contains(string(body), `"detail": "petal_length psi 0.31 > 0.2"`) {
		t.Errorf("reasons are not written as they are (no HTML escapes):\n%s", body)
	}
	if e := h[7]; e.Detail != "2 -> 3" || e.Host == nil || *e.Host != "serve-1" || e.Actor != nil {
		t.Errorf("swap: %+v", e)
	}
	if e := h[3]; e.Detail != "succeeded, published version 3" || *e.JobID != "job-2" || *e.Actor != "collector-b" {
		t.Errorf("job finished: %+v", e)
	}
	if e := h[12]; *e.Actor != "optimizer" || *e.JobID != "job-1" || e.Detail != "optimize: job-1: max_depth 6" || e.Host != nil {
		t.Errorf("published by a job: %+v", e)
	}
	if e := h[0]; *e.Actor != "ana@example.com" || e.JobID != nil || e.Detail != "publish: retrain on november data" || e.Host != nil {
		t.Errorf("published: %+v", e)
	}
	// Bounded: the newest 3, oldest first; and a window.
	okJSON(t, srv, "/v1/models/iris/history?limit=3", &h)
	if len(h) != 3 || h[0].Kind != "incident_opened" || h[2].Kind != "published" {
		t.Errorf("limit=3: %+v", h)
	}
	okJSON(t, srv, "/v1/models/iris/history?since=20m", &h)
	if len(h) != 2 || h[0].Kind != "job_scheduled" {
		t.Errorf("since=20m: %+v", h)
	}
}

func testBadRequests(t *testing.T, srv *httptest.Server, now time.Time) {
	long := strings.Repeat("a", 129)
	cases := []struct {
		path   string
		status int
		in     string // in the error
	}{
		{"/v1/models/nope/versions", 404, `model "nope" not found`},
		{"/v1/models/nope/drift", 404, "not found"},
		{"/v1/models/nope/history", 404, "not found"},
		{"/v1/models/nope/diff?from=1&to=2", 404, "not found"},
		{"/v1/incidents?model=nope", 404, "not found"},
		{"/v1/models/iris/diff?from=3&to=9", 404, `has no version 9`},
		{"/v1/models/iris/diff?from=0&to=3", 400, "positive integers"},
		{"/v1/models/iris/diff?from=3", 400, "positive integers"},
		{"/v1/models/iris/diff?from=-3&to=4", 400, "positive integers"},
		{"/v1/models/iris/versions?since=abc", 400, "invalid since"},
		{"/v1/models/iris/versions?since=-1h", 400, "invalid since"},
		{"/v1/models/iris/versions?since=0s", 400, "invalid since"},
		{"/v1/models/iris/versions?since=100000h", 400, "invalid since"},
		{"/v1/models/iris/history?limit=0", 400, "invalid limit"},
		{"/v1/models/iris/history?limit=x", 400, "invalid limit"},
		{"/v1/models/iris/history?since=1", 400, "invalid since"},
		{"/v1/models/" + long + "/versions", 400, "invalid model name"},
	}
	// Names that reach a query only as parameters, and never do: each is
	// rejected by the manifest's name rules first.
	for _, name := range []string{`iris'`, "iris`", `iris"`, `a' OR '1'='1`, "a`; DROP TABLE x", "ïris", "名前", "a b", ".hidden", "-x",
		"iris\\", "iris%00", "iris\n", "{model}", `\'`} {
		esc := url.PathEscape(name)
		cases = append(cases,
			struct {
				path   string
				status int
				in     string
			}{"/v1/models/" + esc + "/versions", 400, "invalid model name"},
			struct {
				path   string
				status int
				in     string
			}{"/v1/models/" + esc + "/history", 400, "invalid model name"},
			struct {
				path   string
				status int
				in     string
			}{"/v1/incidents?model=" + url.QueryEscape(name), 400, "invalid model name"})
	}
	for _, tc := range cases {
		status, body := get(t, srv, tc.path)
		var e struct {
			Error string `json:"error"`
		}
		decodeStrict(t, body, &e)
		if status != tc.status || !strings.Contains(e.Error, tc.in) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, status, e.Error, tc.status, tc.in)
		}
	}
}

// testCLIRendersViews runs droverctl's commands (collector/cli, through
// collector/adminclient) against the views, as tables and as JSON.
func testCLIRendersViews(t *testing.T, srv *httptest.Server, now time.Time) {
	ctx := context.Background()
	run := func(output string, cmd func(a *cli.App) error) string {
		t.Helper()
		var out, errOut bytes.Buffer
		a := &cli.App{Opts: cli.Options{Collector: srv.URL, Token: "t", Output: output}, Out: &out, Err: &errOut,
			Getenv: func(string) string { return "" }}
		defer a.Close()
		if err := cmd(a); err != nil {
			t.Fatalf("command: %v\n%s", err, errOut.String())
		}
		return out.String()
	}
	models := run("table", func(a *cli.App) error { return a.Models(ctx) })
	if !strings.Contains(models, "MODEL") || !regexpLine(models, "iris", "3,4", "4", "collector-a") {
		t.Errorf("models table:\n%s", models)
	}
	versions := run("table", func(a *cli.App) error { return a.Versions(ctx, "iris", 0) })
	if !regexpLine(versions, "3", "serving", "ana@example.com", "1200") || !regexpLine(versions, "5", "rejected", "agent") {
		t.Errorf("versions table:\n%s", versions)
	}
	for _, tc := range []struct {
		name, want string
		cmd        func(a *cli.App) error
	}{
		{"diff", "inputs.X.shape", func(a *cli.App) error { return a.VersionDiff(ctx, "iris", "3", "4") }},
		{"drift", "petal_length", func(a *cli.App) error { return a.Drift(ctx, "iris") }},
		{"incidents", "job-3", func(a *cli.App) error { return a.Incidents(ctx, "") }},
		{"history", "pinned", func(a *cli.App) error { return a.History(ctx, "iris") }},
	} {
		if out := run("table", tc.cmd); !strings.Contains(out, tc.want) {
			t.Errorf("%s table without %q:\n%s", tc.name, tc.want, out)
		}
		if out := run("json", tc.cmd); !json.Valid([]byte(out)) {
			t.Errorf("%s -o json is not JSON:\n%s", tc.name, out)
		}
	}
}

// regexpLine reports whether one line of s holds every part, in order.
func regexpLine(s string, parts ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

func TestQuantile(t *testing.T) {
	h := latencyHist{bounds: []float64{1, 2}, counts: []uint64{0, 0, 4}, n: 4}
	if q := quantile(h, 0.99); q != 2 {
		t.Errorf("quantile in +Inf bucket = %v, want the last bound 2", q)
	}
	h = latencyHist{bounds: []float64{1, 2}, counts: []uint64{0, 4, 0}, n: 4}
	if q := quantile(h, 0.5); q != 1.5 {
		t.Errorf("median of (1, 2] = %v, want 1.5", q)
	}
}

// TestClickHouseDown: a view that cannot query answers 503 with what it
// was doing; a bad name is still 400 (checked before any query).
func TestClickHouseDown(t *testing.T) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mux := http.NewServeMux()
	for p, h := range New(conn, "drover").Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{
		"/v1/models":                      "list models",
		"/v1/models/iris/versions":        "look up model iris",
		"/v1/incidents":                   "read incidents",
		"/v1/models/iris'/versions":       "invalid model name",
		"/v1/models/iris/history?limit=0": "invalid limit",
	} {
		status, body := get(t, srv, path)
		var e struct {
			Error string `json:"error"`
		}
		decodeStrict(t, body, &e)
		wantStatus := http.StatusServiceUnavailable
		if strings.HasPrefix(want, "invalid") {
			wantStatus = http.StatusBadRequest
		}
		if status != wantStatus || !strings.Contains(e.Error, want) {
			t.Errorf("GET %s: %d %q, want %d with %q", path, status, e.Error, wantStatus, want)
		}
	}
}

// TestRoutes: the patterns the admin server mounts, exactly.
func TestRoutes(t *testing.T) {
	var got []string
	for p := range New(nil, "").Routes() {
		got = append(got, p)
	}
	slices.Sort(got)
	want := []string{"GET /v1/incidents", "GET /v1/models", "GET /v1/models/{model}/diff", "GET /v1/models/{model}/drift",
		"GET /v1/models/{model}/history", "GET /v1/models/{model}/versions"}
	if !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
}
