package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("COLLECTOR_HELPER_DSN") != "" {
		os.Exit(helperCollector())
	}
	code := testenv.RunWithClickHouse(m)
	if code == 0 {
		// No goroutine of a collector outlives its Run.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type collector struct {
	grpcAddr, httpAddr, adminAddr string
	// dataDir holds the tokens the collector bootstrapped (agentCreds).
	dataDir string
	// stop cancels Run and waits for it; an error from Run fails the test.
	stop func()
	// cancel cancels Run; wait waits for it and returns its error.
	cancel func()
	wait   func() error
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startCollector(t *testing.T, cfg Config) *collector {
	t.Helper()
	c := runCollector(t, cfg, hooks{})
	t.Cleanup(c.stop)
	waitReady(t, c)
	return c
}

// runCollector runs a collector with test hooks on free loopback ports
// until the test ends; it does not wait until it is ready.
func runCollector(t *testing.T, cfg Config, h hooks) *collector {
	t.Helper()
	ls := Listeners{OTLPGRPC: listen(t), OTLPHTTP: listen(t), Admin: listen(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, ls, quiet(), h) }()
	var once sync.Once
	var runErr error
	c := &collector{grpcAddr: ls.OTLPGRPC.Addr().String(), httpAddr: ls.OTLPHTTP.Addr().String(), adminAddr: ls.Admin.Addr().String(), dataDir: cfg.DataDir, cancel: cancel}
	c.wait = func() error {
		once.Do(func() { runErr = <-done })
		return runErr
	}
	c.stop = func() {
		cancel()
		if err := c.wait(); err != nil {
			t.Errorf("collector: %v", err)
		}
	}
	return c
}

// waitReady waits until c's /readyz answers 200.
func waitReady(t *testing.T, c *collector) {
	t.Helper()
	testenv.EventuallyNil(t, time.Minute, "the collector to be ready", func() error {
		resp, err := http.Get("http://" + c.adminAddr + "/readyz")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return unless(resp.StatusCode == http.StatusOK, fmt.Sprintf("%s: %s", resp.Status, b))
	})
}

func testConfig(t *testing.T, dsn, db string) Config {
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.ClickHouse.DSN = dsn
	cfg.ClickHouse.Database = db
	cfg.Cluster.Disabled = true
	cfg.Writer.FlushInterval = 200 * time.Millisecond
	return cfg
}

// allTypes builds one request with every OTLP metric type.
func allTypes(model string, base float64, at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(semconv.AttrServiceName, "drover-agent")
	rm.Resource().Attributes().PutStr(semconv.AttrHostName, "host-a")
	rm.Resource().Attributes().PutStr(semconv.AttrAgentID, "agent-1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("test")
	ts := pcommon.NewTimestampFromTime(at)

	g := sm.Metrics().AppendEmpty()
	g.SetName("test.gauge")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(base + 0.5)
	dp.Attributes().PutStr(semconv.AttrModel, model)
	dp.Attributes().PutStr(semconv.AttrModelVersion, "3")
	dp.Attributes().PutStr("unexpected.attribute", "kept")

	s := sm.Metrics().AppendEmpty()
	s.SetName("test.sum")
	sum := s.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sdp := sum.DataPoints().AppendEmpty()
	sdp.SetTimestamp(ts)
	sdp.SetIntValue(int64(base) + 7)
	sdp.Attributes().PutStr(semconv.AttrModel, model)

	h := sm.Metrics().AppendEmpty()
	h.SetName("test.histogram")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetTimestamp(ts)
	hdp.SetCount(6)
	hdp.SetSum(base + 10)
	hdp.SetMin(0.5)
	hdp.SetMax(9)
	hdp.ExplicitBounds().FromRaw([]float64{1, 2, 5})
	hdp.BucketCounts().FromRaw([]uint64{1, 2, 2, 1})
	hdp.Attributes().PutStr(semconv.AttrModel, model)
	hdp.Attributes().PutStr(semconv.AttrFeature, "petal_length")

	e := sm.Metrics().AppendEmpty()
	e.SetName("test.exphistogram")
	eh := e.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	edp := eh.DataPoints().AppendEmpty()
	edp.SetTimestamp(ts)
	edp.SetScale(2)
	edp.SetCount(5)
	edp.SetSum(base)
	edp.SetZeroCount(1)
	edp.Positive().SetOffset(-1)
	edp.Positive().BucketCounts().FromRaw([]uint64{1, 2, 1})
	edp.Attributes().PutStr(semconv.AttrModel, model)

	q := sm.Metrics().AppendEmpty()
	q.SetName("test.summary")
	qdp := q.SetEmptySummary().DataPoints().AppendEmpty()
	qdp.SetTimestamp(ts)
	qdp.SetCount(10)
	qdp.SetSum(base + 20)
	qv := qdp.QuantileValues().AppendEmpty()
	qv.SetQuantile(0.99)
	qv.SetValue(base + 3)
	qdp.Attributes().PutStr(semconv.AttrModel, model)
	return md
}

// unless is nil when ok, else an error that says what was seen instead:
// a condition for testenv.EventuallyNil.
func unless(ok bool, seen string) error {
	if ok {
		return nil
	}
	return errors.New(seen)
}

// count counts rows; a query error fails the test (a count that cannot be
// read must never pass for zero, or an exactly-once assertion cannot fail).
func count(t testing.TB, conn driver.Conn, db, table, where string) uint64 {
	t.Helper()
	return testenv.Count(t, conn, "SELECT count() FROM "+db+"."+table+" WHERE "+where)
}

// TestEveryMetricTypeRoundTrips sends every OTLP metric type and logs over
// gRPC and HTTP (protobuf, JSON, gzip) and reads the values back from
// ClickHouse.
func TestEveryMetricTypeRoundTrips(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startCollector(t, testConfig(t, db.DSN, db.Name))
	conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(agentCreds(c.dataDir)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Recent: otlp.max_age (168h) rejects older points.
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	ctx := context.Background()
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(allTypes("iris", 100, at))); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(semconv.AttrHostName, "host-a")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	lr.Body().SetStr("version.swapped iris v3")
	lr.Attributes().PutStr(semconv.AttrEventKind, semconv.EventSwapped)
	lr.Attributes().PutStr(semconv.AttrModel, "iris")
	lr.Attributes().PutStr(semconv.AttrModelVersion, "3")
	sr := rl.ScopeLogs().At(0).LogRecords().AppendEmpty()
	sr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	sr.Body().SetStr(`{"inputs":{"x":[1,2]},"outputs":{"y":[3]}}`)
	sr.Attributes().PutStr(semconv.AttrEventKind, semconv.EventSample)
	sr.Attributes().PutStr(semconv.AttrModel, "iris")
	sr.Attributes().PutStr(semconv.AttrRequestID, "req-1")
	if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}
	// HTTP: protobuf, JSON, and gzip-compressed protobuf.
	for i, enc := range []string{"proto", "json", "gzip"} {
		req := pmetricotlp.NewExportRequestFromMetrics(allTypes("http-"+enc, float64(i), at))
		var body []byte
		ct := "application/x-protobuf"
		if enc == "json" {
			body, _ = req.MarshalJSON()
			ct = "application/json"
		} else {
			body, _ = req.MarshalProto()
		}
		hreq, _ := http.NewRequest("POST", "http://"+c.httpAddr+"/v1/metrics", bytes.NewReader(body))
		hreq.Header.Set("Content-Type", ct)
		hreq.Header.Set("Authorization", "Bearer "+agentToken(t, c.dataDir))
		if enc == "gzip" {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(body)
			zw.Close()
			hreq.Body = io.NopCloser(&b)
			hreq.ContentLength = int64(b.Len())
			hreq.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", enc, resp.StatusCode)
		}
	}

	testenv.EventuallyNil(t, time.Minute, "rows", func() error {
		n := count(t, db.Conn, db.Name, "metrics_gauge", "1") + count(t, db.Conn, db.Name, "metrics_sum", "1") +
			count(t, db.Conn, db.Name, "metrics_histogram", "1") + count(t, db.Conn, db.Name, "metrics_exp_histogram", "1") +
			count(t, db.Conn, db.Name, "metrics_summary", "1") + count(t, db.Conn, db.Name, "events", "1") + count(t, db.Conn, db.Name, "samples", "1")
		return unless(n == 4*5+2, fmt.Sprintf("%d rows", n))
	})
	var (
		gv               float64
		ver, attr, host  string
		sv               float64
		temporality      string
		mono             bool
		bounds           []float64
		counts           []uint64
		feature          string
		scale            int32
		pos              []uint64
		posOff           int32
		qs, qv           []float64
		event, body, rid string
	)
	row := db.Conn.QueryRow(ctx, "SELECT value, model_version, attributes['unexpected.attribute'], host FROM "+db.Name+".metrics_gauge WHERE model = 'iris'")
	if err := row.Scan(&gv, &ver, &attr, &host); err != nil || gv != 100.5 || ver != "3" || attr != "kept" || host != "host-a" {
		t.Errorf("gauge: %v %v %q %q %q", err, gv, ver, attr, host)
	}
	row = db.Conn.QueryRow(ctx, "SELECT value, toString(temporality), is_monotonic FROM "+db.Name+".metrics_sum WHERE model = 'iris'")
	if err := row.Scan(&sv, &temporality, &mono); err != nil || sv != 107 || temporality != "cumulative" || !mono {
		t.Errorf("sum: %v %v %q %v", err, sv, temporality, mono)
	}
	row = db.Conn.QueryRow(ctx, "SELECT bounds, counts, feature FROM "+db.Name+".metrics_histogram WHERE model = 'iris'")
	if err := row.Scan(&bounds, &counts, &feature); err != nil || fmt.Sprint(bounds) != "[1 2 5]" || fmt.Sprint(counts) != "[1 2 2 1]" || feature != "petal_length" {
		t.Errorf("histogram: %v %v %v %q", err, bounds, counts, feature)
	}
	row = db.Conn.QueryRow(ctx, "SELECT scale, positive_offset, positive_bucket_counts FROM "+db.Name+".metrics_exp_histogram WHERE model = 'iris'")
	if err := row.Scan(&scale, &posOff, &pos); err != nil || scale != 2 || posOff != -1 || fmt.Sprint(pos) != "[1 2 1]" {
		t.Errorf("exp histogram: %v %v %v %v", err, scale, posOff, pos)
	}
	row = db.Conn.QueryRow(ctx, "SELECT quantiles, quantile_values FROM "+db.Name+".metrics_summary WHERE model = 'iris'")
	if err := row.Scan(&qs, &qv); err != nil || fmt.Sprint(qs) != "[0.99]" || fmt.Sprint(qv) != "[103]" {
		t.Errorf("summary: %v %v %v", err, qs, qv)
	}
	row = db.Conn.QueryRow(ctx, "SELECT event, body FROM "+db.Name+".events WHERE model = 'iris'")
	if err := row.Scan(&event, &body); err != nil || event != semconv.EventSwapped || body != "version.swapped iris v3" {
		t.Errorf("event: %v %q %q", err, event, body)
	}
	row = db.Conn.QueryRow(ctx, "SELECT request_id, inputs FROM "+db.Name+".samples WHERE model = 'iris'")
	if err := row.Scan(&rid, &body); err != nil || rid != "req-1" || body != `{"x":[1,2]}` {
		t.Errorf("sample: %v %q %q", err, rid, body)
	}
}

func TestBadInput(t *testing.T) {
	db := testenv.ClickHouse(t)
	cfg := testConfig(t, db.DSN, db.Name)
	cfg.OTLP.MaxRequestBytes = 1 << 16
	c := startCollector(t, cfg)
	post := func(body []byte, ct string) int {
		req, _ := http.NewRequest("POST", "http://"+c.httpAddr+"/v1/metrics", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+agentToken(t, c.dataDir))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post([]byte("\xff\xfe garbage"), "application/x-protobuf"); code != 400 {
		t.Errorf("malformed protobuf: %d", code)
	}
	if code := post([]byte(`{"resourceMetrics": [`), "application/json"); code != 400 {
		t.Errorf("malformed JSON: %d", code)
	}
	if code := post(make([]byte, 1<<17), "application/x-protobuf"); code != 413 {
		t.Errorf("oversize: %d", code)
	}
	if code := post([]byte(`{}`), "text/plain"); code != 415 {
		t.Errorf("content type: %d", code)
	}
	// The same over gRPC: raw bytes on the OTLP Export methods.
	conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(agentCreds(c.dataDir)),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	invoke := func(method string, body []byte) codes.Code {
		var out []byte
		return status.Code(conn.Invoke(context.Background(), method, &body, &out))
	}
	const metricsExport = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
	const logsExport = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
	if code := invoke(metricsExport, []byte("\xff\xfe garbage")); code != codes.InvalidArgument {
		t.Errorf("malformed gRPC metrics: %v, want InvalidArgument", code)
	}
	if code := invoke(logsExport, []byte("\xff\xfe garbage")); code != codes.InvalidArgument {
		t.Errorf("malformed gRPC logs: %v, want InvalidArgument", code)
	}
	if code := invoke(metricsExport, make([]byte, 1<<17)); code != codes.ResourceExhausted {
		t.Errorf("oversize gRPC: %v, want ResourceExhausted", code)
	}

	// Still serving.
	body, _ := pmetricotlp.NewExportRequestFromMetrics(allTypes("after", 1, time.Now())).MarshalProto()
	if code := post(body, "application/x-protobuf"); code != 200 {
		t.Errorf("after bad input: %d", code)
	}
	if code := invoke(metricsExport, body); code != codes.OK {
		t.Errorf("gRPC after bad input: %v", code)
	}
}

// bytesCodec sends and receives *[]byte as they are, for raw gRPC calls.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }

// TestOutageDrill stops ClickHouse while data keeps arriving: every point
// is acknowledged (into the spool) and, after ClickHouse is back, stored
// exactly once.
func TestOutageDrill(t *testing.T) {
	dir := t.TempDir()
	start := func(port int) *chembed.Engine {
		e, err := chembed.Start(context.Background(), chembed.Config{DataDir: dir, TCPPort: port, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	eng := start(0)
	defer func() { eng.Stop(context.Background()) }()
	_, portStr, _ := net.SplitHostPort(eng.Addr())
	port, _ := strconv.Atoi(portStr)
	c := startCollector(t, testConfig(t, eng.DSN("default"), "drill"))
	conn, _ := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(agentCreds(c.dataDir)))
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := client.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(allTypes("drill", float64(i), time.Now()))); err != nil {
				t.Fatalf("export %d: %v", i, err)
			}
		}
	}
	send(0, 20)
	if err := eng.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	send(20, 60) // ClickHouse down: acknowledged from the spool
	resp, err := http.Get("http://" + c.adminAddr + "/readyz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("ready while ClickHouse is down")
		}
	}
	eng = start(port)
	ch := testenv.Open(t, eng.DSN("default"))
	total := func() uint64 {
		return count(t, ch, "drill", "metrics_gauge", "1") + count(t, ch, "drill", "metrics_sum", "1") + count(t, ch, "drill", "metrics_histogram", "1") +
			count(t, ch, "drill", "metrics_exp_histogram", "1") + count(t, ch, "drill", "metrics_summary", "1")
	}
	testenv.EventuallyNil(t, time.Minute, "all points after the outage", func() error {
		n := total()
		return unless(n >= 300, fmt.Sprintf("%d points", n))
	})
	// Exactly once: 60 distinct gauge values and 300 points, also after the
	// writer had time to retry anything twice.
	time.Sleep(time.Second)
	var distinct uint64
	ch.QueryRow(context.Background(), "SELECT uniqExact(value) FROM drill.metrics_gauge").Scan(&distinct)
	if n := total(); distinct != 60 || n != 300 {
		t.Fatalf("after the drill: %d distinct gauge values, %d points; want 60 and 300", distinct, n)
	}
	c.stop()
}

// helperCollector runs a collector in this process (for the SIGKILL test)
// and prints its OTLP address.
func helperCollector() int {
	cfg := Default()
	cfg.DataDir = os.Getenv("COLLECTOR_HELPER_DIR")
	cfg.ClickHouse.DSN = os.Getenv("COLLECTOR_HELPER_DSN")
	cfg.ClickHouse.Database = os.Getenv("COLLECTOR_HELPER_DB")
	cfg.Cluster.Disabled = true
	cfg.Spool.Sync = spool.SyncAlways
	cfg.Writer.FlushInterval = time.Hour // keep everything in the spool
	cfg.Writer.BatchRows = 1 << 30
	if os.Getenv("COLLECTOR_HELPER_FLUSH") != "" {
		cfg.Writer.FlushInterval = 100 * time.Millisecond
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	fmt.Printf("ADMIN=%s\n", al.Addr())
	fmt.Printf("OTLP=%s\n", gl.Addr())
	if err := Run(context.Background(), cfg, Listeners{OTLPGRPC: gl, OTLPHTTP: hl, Admin: al}, quiet()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runHelper starts a helper collector and returns it with its OTLP and
// admin addresses.
func runHelper(t *testing.T, env []string) (cmd *exec.Cmd, otlp, admin string) {
	cmd = exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADMIN="); ok {
			admin = addr
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "OTLP="); ok {
			go io.Copy(io.Discard, out)
			return cmd, addr, admin
		}
	}
	t.Fatal("helper collector printed no address")
	return nil, "", ""
}

// TestAcknowledgedDataSurvivesSIGKILL acknowledges requests into the
// spool, kills the collector with SIGKILL before it writes them, restarts
// it, and finds every acknowledged point in ClickHouse exactly once.
func TestAcknowledgedDataSurvivesSIGKILL(t *testing.T) {
	db := testenv.ClickHouse(t)
	dir := t.TempDir()
	env := []string{"COLLECTOR_HELPER_DSN=" + db.DSN, "COLLECTOR_HELPER_DB=" + db.Name, "COLLECTOR_HELPER_DIR=" + dir}
	cmd, addr, admin := runHelper(t, env)
	// Killed once its schema is applied: the point is acknowledged data in
	// the spool. A client killed in the middle of the migrations' DDL has
	// made the embedded engine abort ("shutting down due to a fatal
	// error"), a fault of the engine this test is not about.
	testenv.EventuallyNil(t, time.Minute, "the helper collector ready", func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return unless(resp.StatusCode == http.StatusOK, resp.Status)
	})
	conn, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(agentCreds(dir)))
	client := pmetricotlp.NewGRPCClient(conn)
	acked := 0
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(allTypes("killed", float64(i), time.Now())), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		acked++
	}
	conn.Close()
	if n := count(t, db.Conn, db.Name, "metrics_gauge", "1"); n != 0 {
		t.Logf("%d rows were written before the kill", n)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cmd2, _, _ := runHelper(t, append(env, "COLLECTOR_HELPER_FLUSH=1"))
	defer func() { cmd2.Process.Signal(syscall.SIGTERM); cmd2.Wait() }()
	testenv.EventuallyNil(t, time.Minute, "acknowledged points after restart", func() error {
		n := count(t, db.Conn, db.Name, "metrics_gauge", "model = 'killed'")
		return unless(n == uint64(acked), fmt.Sprintf("%d of %d", n, acked))
	})
}

// agentCreds sends the agent token that the collector with this data dir
// bootstrapped (read at each call: the file exists once it is ready).
type agentCreds string

func (d agentCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(string(d), auth.AgentTokenFile))
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + strings.TrimSpace(string(b))}, nil
}

func (agentCreds) RequireTransportSecurity() bool { return false }

// agentToken is the agent token the collector with this data dir
// bootstrapped.
func agentToken(t testing.TB, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, auth.AgentTokenFile))
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestOTLPNeedsAnAgentToken: the receivers refuse data without a token or
// with a token of another role (gRPC Unauthenticated / PermissionDenied,
// HTTP 401 / 403), and nothing of it is stored; an agent token is taken.
func TestOTLPNeedsAnAgentToken(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startCollector(t, testConfig(t, db.DSN, db.Name))
	ctx := context.Background()
	adminTok, err := os.ReadFile(filepath.Join(c.dataDir, auth.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	cl := adminclient.New("http://"+c.adminAddr, strings.TrimSpace(string(adminTok)))
	defer cl.Close()
	reader, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "grafana", Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	req := pmetricotlp.NewExportRequestFromMetrics(allTypes("forged", 1, time.Now()))
	for name, tc := range map[string]struct {
		creds grpc.DialOption
		code  codes.Code
	}{
		"no token":     {grpc.EmptyDialOption{}, codes.Unauthenticated},
		"reader token": {grpc.WithPerRPCCredentials(staticToken(reader.Token)), codes.PermissionDenied},
		"agent token":  {grpc.WithPerRPCCredentials(agentCreds(c.dataDir)), codes.OK},
	} {
		conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), tc.creds)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, req)
		conn.Close()
		if status.Code(err) != tc.code {
			t.Errorf("gRPC with %s: %v, want %s", name, err, tc.code)
		}
	}
	body, _ := req.MarshalProto()
	for name, tc := range map[string]struct {
		token string
		code  int
	}{"no token": {"", 401}, "bad token": {auth.TokenPrefix + "nope", 401}, "reader token": {reader.Token, 403}} {
		hreq, _ := http.NewRequest("POST", "http://"+c.httpAddr+"/v1/metrics", bytes.NewReader(body))
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		if tc.token != "" {
			hreq.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("HTTP with %s: %d, want %d", name, resp.StatusCode, tc.code)
		}
	}
	// Only the agent's request was stored (one request of allTypes).
	testenv.EventuallyNil(t, 30*time.Second, "the agent's points", func() error {
		n := db.Count(t, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE model = 'forged'")
		return unless(n > 0, "none yet")
	})
}

type staticToken string

func (s staticToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(s)}, nil
}

func (staticToken) RequireTransportSecurity() bool { return false }

// TestCollectorsSharingADatabaseLoseNothing: collectors that write to one
// database (a cluster, or several collectors in front of one ClickHouse)
// number their spool records independently, so the same range of seqs
// comes from each; the deduplication tokens of their inserts must differ,
// or ClickHouse drops one node's batch as a retry of the other's.
func TestCollectorsSharingADatabaseLoseNothing(t *testing.T) {
	db := testenv.ClickHouse(t)
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var tokens string // the first collector makes the database's tokens
	for i, model := range []string{"node-a", "node-b"} {
		c := startCollector(t, testConfig(t, db.DSN, db.Name))
		if tokens == "" {
			tokens = c.dataDir
		}
		conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(agentCreds(tokens)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pmetricotlp.NewGRPCClient(conn).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(allTypes(model, float64(i), at))); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		// Each collector's first request is its spool's record 1: the
		// same range, in every table.
		testenv.EventuallyNil(t, time.Minute, model+"'s points stored", func() error {
			var missing []string
			for _, table := range []string{"metrics_gauge", "metrics_sum", "metrics_histogram", "metrics_exp_histogram", "metrics_summary"} {
				if n := count(t, db.Conn, db.Name, table, "model = '"+model+"'"); n != 1 {
					missing = append(missing, fmt.Sprintf("%s: %d rows", table, n))
				}
			}
			return unless(len(missing) == 0, strings.Join(missing, ", "))
		})
	}
}
