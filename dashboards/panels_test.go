package dashboards_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/optimize"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// dashboardFile is the part of a generated dashboard the test reads.
type dashboardFile struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RawSQL     string `json:"rawSql"`
			Format     int    `json:"format"`
			QueryType  string `json:"queryType"`
			EditorType string `json:"editorType"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboards(t *testing.T) []dashboardFile {
	t.Helper()
	paths, err := filepath.Glob("*.json")
	if err != nil || len(paths) != 4 {
		t.Fatalf("dashboards: %v (%v), want the 4 generated files", paths, err)
	}
	var out []dashboardFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboardFile
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, d)
	}
	return out
}

// What the test sends, and so what the panels must show.
const (
	demo       = "demo"
	okV1       = 90.0 // delta requests of v1 answered ok, host-a
	errorsV1   = 10.0 // delta requests of v1 answered error, host-a
	okV2Delta  = 40.0 // delta requests of v2 answered ok, host-a
	okV2Cumul  = 30.0 // increase of host-b's cumulative v2 counter in the range
	inFlight   = 3.0
	accuracyV1 = 0.95
	accuracyV2 = 0.97
	oldScore   = 0.81
	newScore   = 0.93
)

// TestEveryPanelQueryReturnsWhatWasSent fills the schema the way a running
// collector does (agent telemetry through the real OTLP/HTTP receiver,
// spool and writer; registry versions, desired states and agents through
// the registry and fleet control; drift results, an incident and jobs
// through the store and the drift checker), then runs every panel's query
// and the $model variable's on the real engine, with the template
// variables and the data source's macros expanded as Grafana and the
// plugin do. Each must return a non-null, non-zero value; the panels whose
// numbers follow from what was sent are checked against them.
func TestEveryPanelQueryReturnsWhatWasSent(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	now := time.Now().UTC()
	sendTelemetry(t, db, now)
	incidentStart := fillControlPlane(t, db, now)
	fillDriftAndJobs(t, db, now, incidentStart)

	// The range ends after the fill: the rows it stamps with the time they
	// are written (registry, fleet, jobs) are in it however long it took.
	g := grafanaQuery{From: now.Add(-time.Hour), To: time.Now().UTC().Add(time.Minute), Interval: time.Minute, Vars: map[string]string{"model": demo}}
	want := expectations()
	seen := map[string]bool{}
	panels := 0
	for _, d := range readDashboards(t) {
		for _, v := range d.Templating.List {
			t.Run(d.UID+"/$"+v.Name, func(t *testing.T) {
				rows := runQuery(t, db, g, v.Query)
				if len(rows) != 1 || rows[0][0] != demo {
					t.Errorf("variable $%s lists %v, want [%s]", v.Name, rows, demo)
				}
			})
		}
		titles := map[string]bool{}
		for _, p := range d.Panels {
			key := d.UID + "/" + p.Title
			if titles[p.Title] {
				t.Errorf("%s: two panels with that title", key)
			}
			titles[p.Title] = true
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", key)
			}
			for _, q := range p.Targets {
				panels++
				t.Run(key, func(t *testing.T) {
					if q.Datasource.Type != "grafana-clickhouse-datasource" || q.Datasource.UID != "drover-clickhouse" || q.EditorType != "sql" {
						t.Errorf("target on %+v, editor %q: want the provisioned ClickHouse data source's SQL editor", q.Datasource, q.EditorType)
					}
					if wantTS := p.Type == "timeseries"; wantTS != (q.Format == 0 && q.QueryType == "timeSeries") {
						t.Errorf("%s panel with format %d, queryType %q", p.Type, q.Format, q.QueryType)
					}
					rows := runQuery(t, db, g, q.RawSQL)
					checkNonZero(t, rows)
					if w, ok := want[key]; ok {
						seen[key] = true
						w(t, rows)
					}
				})
			}
		}
	}
	if panels < 25 {
		t.Errorf("%d panel queries, want every panel of the 4 dashboards (25 or more)", panels)
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no panel %q: the expectations name a panel the dashboards do not have", key)
		}
	}
}

// runQuery expands sql and runs it, returning its rows by column name and,
// at [0], the first column's value in order (for variables).
func runQuery(t *testing.T, db *testenv.DB, g grafanaQuery, sql string) []map[any]any {
	t.Helper()
	q, err := g.Expand(sql)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.Conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query failed: %v\n%s", err, q)
	}
	defer rs.Close()
	cols := rs.Columns()
	types := rs.ColumnTypes()
	var out []map[any]any
	for rs.Next() {
		dest := make([]any, len(cols))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rs.Scan(dest...); err != nil {
			t.Fatalf("scan: %v\n%s", err, q)
		}
		r := map[any]any{}
		for i, c := range cols {
			v := reflect.ValueOf(dest[i]).Elem()
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					r[c], r[i] = nil, nil
					goto next
				}
				v = v.Elem()
			}
			r[c], r[i] = v.Interface(), v.Interface()
		next:
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("rows: %v\n%s", err, q)
	}
	return out
}

// checkNonZero: at least one row, no NULL anywhere, and a value that is
// not zero (a number, a time, a string) in some row: a panel that Grafana
// would draw empty or as zeros fails.
func checkNonZero(t *testing.T, rows []map[any]any) {
	t.Helper()
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	nonZero := false
	for _, r := range rows {
		for k, v := range r {
			if _, named := k.(string); !named {
				continue
			}
			if v == nil {
				t.Errorf("column %s is NULL in %v", k, r)
				continue
			}
			if f, ok := number(v); ok {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					t.Errorf("column %s is %v in %v", k, f, r)
				}
				nonZero = nonZero || f != 0
			}
			switch x := v.(type) {
			case time.Time:
				nonZero = nonZero || x.Unix() > 0
			case string:
				nonZero = nonZero || x != ""
			}
		}
	}
	if !nonZero {
		t.Errorf("every value is zero or empty: %v", rows)
	}
}

func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.Bool:
		if rv.Bool() {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// expectations are the values that follow from what the test sent, by
// dashboard uid and panel title.
func expectations() map[string]func(t *testing.T, rows []map[any]any) {
	total := okV1 + errorsV1 + okV2Delta + okV2Cumul
	sumOf := func(col string) func(rows []map[any]any) float64 {
		return func(rows []map[any]any) float64 {
			s := 0.0
			for _, r := range rows {
				f, _ := number(r[col])
				s += f
			}
			return s
		}
	}
	single := func(col string, want float64) func(t *testing.T, rows []map[any]any) {
		return func(t *testing.T, rows []map[any]any) {
			t.Helper()
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1: %v", len(rows), rows)
			}
			if got, _ := number(rows[0][col]); math.Abs(got-want) > 1e-9 {
				t.Errorf("%s = %v, want %v", col, got, want)
			}
		}
	}
	summed := func(col string, want float64) func(t *testing.T, rows []map[any]any) {
		return func(t *testing.T, rows []map[any]any) {
			t.Helper()
			if got := sumOf(col)(rows); math.Abs(got-want) > 1e-9 {
				t.Errorf("sum of %s over %d rows = %v, want %v", col, len(rows), got, want)
			}
		}
	}
	return map[string]func(t *testing.T, rows []map[any]any){
		"drover-fleet/Agents reporting": single("agents", 1),
		"drover-fleet/Models":           single("models", 1),
		"drover-fleet/Requests":         single("requests", total),
		"drover-fleet/Error share":      single("error_share", errorsV1/total),
		// Every request falls in one or two minutes: rps × 60 adds up to them.
		"drover-fleet/Requests per second by model": func(t *testing.T, rows []map[any]any) {
			if got := sumOf("rps")(rows) * 60; math.Abs(got-total) > 1e-9 {
				t.Errorf("rps × 60 adds up to %v, want %v", got, total)
			}
		},
		"drover-fleet/Versions desired and serving": func(t *testing.T, rows []map[any]any) {
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1: %v", len(rows), rows)
			}
			r := rows[0]
			if r["model"] != demo || r["desired"] != uint64(1) || r["canary"] != uint64(2) || r["serving"] != uint64(2) || r["agents"] != uint64(1) {
				t.Errorf("row %v, want demo desired 1, canary 2, one agent serving 2", r)
			}
		},
		"drover-model/Versions side by side": func(t *testing.T, rows []map[any]any) {
			if len(rows) != 2 {
				t.Fatalf("%d rows, want v1 and v2: %v", len(rows), rows)
			}
			v1, v2 := rows[0], rows[1]
			if v1["version"] != "1" || v1["requests"] != okV1+errorsV1 || v1["error_share"] != errorsV1/(okV1+errorsV1) ||
				math.Abs(v1["accuracy"].(float64)-accuracyV1) > 1e-9 || v1["source"] != "publish" {
				t.Errorf("v1 = %v", v1)
			}
			if v2["version"] != "2" || v2["requests"] != okV2Delta+okV2Cumul || v2["error_share"] != 0.0 ||
				math.Abs(v2["accuracy"].(float64)-accuracyV2) > 1e-9 || v2["source"] != "optimize" {
				t.Errorf("v2 = %v", v2)
			}
			// 99 % of v1's 100 latencies are at most 0.05 s, in (0.01, 0.05].
			if p := v1["p99_seconds"].(float64); p <= 0.01 || p > 0.05 {
				t.Errorf("v1 p99 = %v s, want in (0.01, 0.05]", p)
			}
		},
		"drover-model/Requests in flight":              summed("in_flight", inFlight),
		"drover-model/Errors per second by status":     func(t *testing.T, rows []map[any]any) { summed("rps", errorsV1/60)(t, rows) },
		"drover-model/Requests per second by version":  func(t *testing.T, rows []map[any]any) { summed("rps", total/60)(t, rows) },
		"drover-drift/Incidents":                       single("incidents", 1),
		"drover-drift/Drifted checks":                  single("drifted", 1),
		"drover-drift/Drifted features (latest check)": single("share", 0.5),
		"drover-drift/Highest score over threshold":    single("ratio", 0.31/0.2),
		"drover-drift/Incidents and jobs": func(t *testing.T, rows []map[any]any) {
			if len(rows) != 1 || rows[0]["job"] != "job-1" || rows[0]["job_state"] != "succeeded" || rows[0]["version"] != "1" {
				t.Errorf("incidents %v, want v1's incident answered by job-1 (succeeded)", rows)
			}
		},
		"drover-jobs/Jobs created":               single("jobs", 2),
		"drover-jobs/Jobs":                       func(t *testing.T, rows []map[any]any) { testJobsRows(t, rows) },
		"drover-jobs/Versions published by jobs": single("published", 1),
		"drover-jobs/Mean held-out gain":         single("gain", newScore-oldScore),
		"drover-jobs/Failed jobs":                single("failed", 1),
		"drover-jobs/Optimizer reports": func(t *testing.T, rows []map[any]any) {
			if len(rows) != 1 {
				t.Fatalf("%d reports, want 1: %v", len(rows), rows)
			}
			r := rows[0]
			if r["old_score"] != oldScore || r["new_score"] != newScore || r["improved"] != uint8(1) || r["published"] != uint64(2) || r["family"] != "logistic" {
				t.Errorf("report row %v", r)
			}
		},
		"drover-jobs/Lineage": func(t *testing.T, rows []map[any]any) {
			if len(rows) != 2 || rows[1]["parents"] != "1" || rows[1]["source"] != "optimize" || rows[1]["job"] != "job-1" {
				t.Errorf("lineage %v, want v2 from v1 by job-1", rows)
			}
		},
	}
}

func testJobsRows(t *testing.T, rows []map[any]any) {
	t.Helper()
	states := map[any]any{}
	for _, r := range rows {
		states[r["id"]] = r["state"]
	}
	if len(rows) != 2 || states["job-1"] != "succeeded" || states["job-2"] != "failed" {
		t.Errorf("jobs %v, want job-1 succeeded and job-2 failed", rows)
	}
}

// sendTelemetry runs the collector's OTLP/HTTP receiver, spool and writer
// on db and sends two agents' metrics and an event through it, as
// drover-agent names them (shared/semconv, docs/metrics.md): host-a with
// delta temporality (the agent's default), host-b with cumulative.
func sendTelemetry(t *testing.T, db *testenv.DB, now time.Time) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	sp, err := spool.Open(t.TempDir(), spool.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(db.Conn, db.Name, db.Options)
	stats := ingest.NewStats(prometheus.NewRegistry())
	rows := ingest.NewRowCache(1 << 16)
	recv := ingest.NewReceiver(ingest.ReceiverConfig{}, &ingest.SpoolSink{Spool: sp, Stats: stats, Rows: rows}, stats, log)
	w := ingest.NewWriter(ingest.WriterConfig{FlushInterval: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, sp, rows, st, stats, log)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- recv.Serve(ctx, gl, hl) }()
	go func() { defer wg.Done(); errs <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("receiver or writer: %v", err)
			}
		}
		st.Close()
		sp.Close()
	})

	post := func(path string, body []byte) {
		t.Helper()
		resp, err := http.Post("http://"+hl.Addr().String()+path, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	for _, md := range []pmetric.Metrics{agentMetricsDelta(now), agentMetricsCumulative(now)} {
		b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		post("/v1/metrics", b)
	}
	b, err := plogotlp.NewExportRequestFromLogs(agentEvents(now)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	post("/v1/logs", b)
	testenv.EventuallyNil(t, 30*time.Second, "the sent telemetry in ClickHouse", func() error {
		var counts []uint64
		for _, table := range []string{"metrics_sum", "events", "metrics_histogram", "metrics_gauge"} {
			n, err := testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+"."+table)
			if err != nil {
				return err
			}
			counts = append(counts, n)
		}
		if want := []uint64{6, 2, 1, 2}; !slices.Equal(counts, want) {
			return fmt.Errorf("rows in metrics_sum, events, metrics_histogram, metrics_gauge: %v, want %v (spool acked up to %d)", counts, want, sp.Acked())
		}
		return nil
	})
}

func resource(rm pmetric.ResourceMetrics, host string) {
	a := rm.Resource().Attributes()
	a.PutStr(semconv.AttrServiceName, semconv.ServiceNameAgent)
	a.PutStr(semconv.AttrServiceVersion, "test")
	a.PutStr(semconv.AttrHostName, host)
	a.PutStr(semconv.AttrAgentID, "agent-"+host)
}

func ts(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

// agentMetricsDelta is host-a's export: delta requests and latency of v1
// and v2, in-flight requests and the live accuracy of both versions.
func agentMetricsDelta(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	resource(rm, "host-a")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/drover-ml/drover/agent/telemetry")
	start, at := now.Add(-3*time.Minute), now.Add(-2*time.Minute)

	req := sm.Metrics().AppendEmpty()
	req.SetName(semconv.MetricRequests)
	req.SetUnit("{request}")
	sum := req.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	for _, p := range []struct {
		version, status string
		n               float64
	}{{"1", "ok", okV1}, {"1", "error", errorsV1}, {"2", "ok", okV2Delta}} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(ts(start))
		dp.SetTimestamp(ts(at))
		dp.SetIntValue(int64(p.n))
		dp.Attributes().PutStr(semconv.AttrModel, demo)
		dp.Attributes().PutStr(semconv.AttrModelVersion, p.version)
		dp.Attributes().PutStr(semconv.AttrProtocol, "rest")
		dp.Attributes().PutStr(semconv.AttrStatus, p.status)
	}

	lat := sm.Metrics().AppendEmpty()
	lat.SetName(semconv.MetricRequestLatency)
	lat.SetUnit("s")
	h := lat.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := h.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(ts(start))
	dp.SetTimestamp(ts(at))
	dp.ExplicitBounds().FromRaw([]float64{0.001, 0.005, 0.01, 0.05})
	dp.BucketCounts().FromRaw([]uint64{10, 50, 30, 10, 0})
	dp.SetCount(100)
	dp.SetSum(1.2)
	dp.Attributes().PutStr(semconv.AttrModel, demo)
	dp.Attributes().PutStr(semconv.AttrModelVersion, "1")
	dp.Attributes().PutStr(semconv.AttrProtocol, "rest")
	dp.Attributes().PutStr(semconv.AttrStatus, "ok")

	fl := sm.Metrics().AppendEmpty()
	fl.SetName(semconv.MetricInFlight)
	fl.SetUnit("{request}")
	fs := fl.SetEmptySum()
	fs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	fs.SetIsMonotonic(false)
	fdp := fs.DataPoints().AppendEmpty()
	fdp.SetStartTimestamp(ts(now.Add(-2 * time.Hour)))
	fdp.SetTimestamp(ts(at))
	fdp.SetIntValue(int64(inFlight))
	fdp.Attributes().PutStr(semconv.AttrModel, demo)

	ev := sm.Metrics().AppendEmpty()
	ev.SetName(semconv.MetricEval)
	g := ev.SetEmptyGauge()
	for _, p := range []struct {
		version string
		v       float64
	}{{"1", accuracyV1}, {"2", accuracyV2}} {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(at))
		dp.SetDoubleValue(p.v)
		dp.Attributes().PutStr(semconv.AttrModel, demo)
		dp.Attributes().PutStr(semconv.AttrModelVersion, p.version)
		dp.Attributes().PutStr(semconv.AttrMetric, "accuracy")
		dp.Attributes().PutStr(semconv.AttrSource, "labels")
	}
	return md
}

// agentMetricsCumulative is host-b's export with temporality cumulative:
// v2's request counter, whose series started before the range, at 100 and
// then 130 (an increase of okV2Cumul in the range).
func agentMetricsCumulative(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	resource(rm, "host-b")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(semconv.MetricRequests)
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sum.SetIsMonotonic(true)
	for i, v := range []int64{100, 100 + int64(okV2Cumul)} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(ts(now.Add(-2 * time.Hour)))
		dp.SetTimestamp(ts(now.Add(time.Duration(i-3) * time.Minute)))
		dp.SetIntValue(v)
		dp.Attributes().PutStr(semconv.AttrModel, demo)
		dp.Attributes().PutStr(semconv.AttrModelVersion, "2")
		dp.Attributes().PutStr(semconv.AttrProtocol, "grpc")
		dp.Attributes().PutStr(semconv.AttrStatus, "ok")
	}
	return md
}

// agentEvents: host-a loaded v2 and swapped it in for v1.
func agentEvents(now time.Time) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	a := rl.Resource().Attributes()
	a.PutStr(semconv.AttrServiceName, semconv.ServiceNameAgent)
	a.PutStr(semconv.AttrHostName, "host-a")
	a.PutStr(semconv.AttrAgentID, "agent-host-a")
	for i, e := range []string{semconv.EventLoaded, semconv.EventSwapped} {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(ts(now.Add(time.Duration(i-2) * time.Minute)))
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Body().SetStr(e + " demo v2")
		lr.Attributes().PutStr(semconv.AttrEventKind, e)
		lr.Attributes().PutStr(semconv.AttrModel, demo)
		lr.Attributes().PutStr(semconv.AttrModelVersion, "2")
		lr.Attributes().PutStr(semconv.AttrPrevious, "1")
	}
	return ld
}

// fillControlPlane publishes demo v1 and v2 (v2 by job-1 for an incident)
// through the registry, rolls v1 out and v2 as a canary through fleet
// control, and registers an agent that reports serving v2. It returns the
// incident's start.
func fillControlPlane(t *testing.T, db *testenv.DB, now time.Time) time.Time {
	t.Helper()
	ctx := context.Background()
	blobURL, err := registry.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := registry.OpenBlobs(ctx, blobURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	log := slog.New(slog.DiscardHandler)
	reg := registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Logger: log})
	incidentStart := now.Add(-20 * time.Minute).Truncate(time.Millisecond)
	for i, meta := range []registry.Meta{
		{Author: "trainer", Message: "first"},
		{Author: "drover-optimizer", Message: "re-optimized", Parents: []uint64{1}, Source: registry.SourceOptimize,
			Incident: fmt.Sprintf("%s/1/%d", demo, incidentStart.UnixNano()), Job: "job-1"},
	} {
		m, err := testmodels.Linear("X", "Y", [][]float32{{1, float32(i)}, {2, 3}}, []float32{0, 1})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(m)
		u := registry.Upload{Path: "model.onnx", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(m)), Body: bytes.NewReader(m)}
		if _, _, err := reg.Publish(ctx, demo, registry.Uploads(u), meta); err != nil {
			t.Fatalf("publish %s v%d: %v", demo, i+1, err)
		}
	}

	f, err := fleet.New(fleet.Options{Conn: db.Conn, Database: db.Name, Versions: reg, Node: "collector-a", Logger: log,
		Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(fctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("fleet: %v", err)
		}
	}()
	select {
	case <-f.Loaded():
	case <-time.After(30 * time.Second):
		t.Fatal("fleet did not load the desired states")
	}
	if _, err := f.Change(ctx, demo, fleet.ChangeRollout, fleet.Request{Version: 1, Reason: "first version"}); err != nil {
		t.Fatalf("rollout v1: %v", err)
	}
	share := 10
	if _, err := f.Change(ctx, demo, fleet.ChangeCanary, fleet.Request{Version: 2, Share: &share, Reason: "re-optimized"}); err != nil {
		t.Fatalf("canary v2: %v", err)
	}
	reged, err := f.Register(ctx, fleet.Registration{Agent: "agent-host-a", Host: "host-a", Build: "test"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	inv := fleet.Inventory{Host: "host-a", Models: []fleet.ModelInventory{{Model: demo, Serving: 2,
		Versions: []fleet.VersionInventory{{Version: 1, State: "loaded"}, {Version: 2, State: "serving"}}}}}
	if err := f.Report(ctx, reged.Agent, inv); err != nil {
		t.Fatalf("report inventory: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "the agent's inventory in the agents table", func() bool {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+".agents FINAL WHERE serving['demo'] = 2")
		return err == nil && n == 1
	})
	return incidentStart
}

// fillDriftAndJobs writes a drift check of demo v1 (a feature over its
// PSI threshold, the check and dataset rows), the incident it opened
// (through the drift checker) and two jobs: job-1 succeeded with the
// optimizer's report and published v2, job-2 failed.
func fillDriftAndJobs(t *testing.T, db *testenv.DB, now, incidentStart time.Time) {
	t.Helper()
	ctx := context.Background()
	st := store.New(db.Conn, db.Name, db.Options)
	defer st.Close()
	checked := now.Add(-21 * time.Minute).Truncate(time.Millisecond)
	base := store.DriftRow{Time: checked, Model: demo, ModelVersion: "1", WindowStart: checked.Add(-10 * time.Minute),
		WindowEnd: checked, Reference: "training data", Node: "collector-a"}
	rows := []store.DriftRow{}
	for _, r := range []struct {
		feature, test string
		value, thr    float64
		drifted       bool
	}{
		{"petal_length", store.DriftTestPSI, 0.31, 0.2, true},
		{"petal_width", store.DriftTestPSI, 0.05, 0.2, false},
		{"petal_length", store.DriftTestKS, 0.12, 0.3, false},
		{"", drift.TestCheck, 1, 1, true},
		{"", drift.TestDataset, 0.5, 0.3, true},
	} {
		row := base
		row.Feature, row.Test, row.Value, row.Threshold, row.Drifted = r.feature, r.test, r.value, r.thr, r.drifted
		rows = append(rows, row)
	}
	if err := st.Insert(ctx, &store.Batch{Drift: rows}, "dashboards-test/drift"); err != nil {
		t.Fatalf("insert drift results: %v", err)
	}
	checker := drift.NewChecker(db.Conn, db.Name, "collector-a", nil)
	if err := checker.RecordIncident(ctx, drift.Incident{Model: demo, Version: "1", Start: incidentStart,
		Reasons: []string{"petal_length psi 0.31 > 0.2"}}, incidentStart.Add(time.Minute)); err != nil {
		t.Fatalf("record incident: %v", err)
	}

	report, err := json.Marshal(optimize.Report{Model: demo, Baseline: "1", Metric: "accuracy", Family: "logistic",
		Params: map[string]float64{"c": 1}, Folds: 5, CVMean: 0.9, CVStd: 0.02,
		Holdout: optimize.Holdout{Old: oldScore, New: newScore}, Improved: true, Rows: 600, HoldoutRows: 120, Seconds: 4.5, Published: "2"})
	if err != nil {
		t.Fatal(err)
	}
	created := incidentStart.Add(2 * time.Minute)
	started, finished := created.Add(time.Second), created.Add(40*time.Second)
	jobs := []store.JobRow{
		{ID: "job-1", Model: demo, ModelVersion: "1", IncidentStart: incidentStart, State: "succeeded", Attempt: 1,
			LeaseOwner: "collector-a", Created: created, Updated: finished, Started: &started, Finished: &finished,
			ResultVersion: 2, Spec: `{"executor":"builtin"}`, Report: string(report), RowVersion: 3},
		{ID: "job-2", Model: demo, ModelVersion: "2", IncidentStart: created, State: "failed", Attempt: 2,
			LeaseOwner: "collector-a", Created: created.Add(time.Minute), Updated: finished.Add(time.Minute),
			Started: &started, Finished: &finished, ExitCode: 1, Error: "exit status 1", Spec: `{"executor":"command"}`, RowVersion: 5},
	}
	if err := st.Insert(ctx, &store.Batch{Jobs: jobs}, "dashboards-test/jobs"); err != nil {
		t.Fatalf("insert jobs: %v", err)
	}
}
