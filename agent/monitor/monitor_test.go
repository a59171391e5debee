package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// otlpSink is an OTLP/gRPC receiver that keeps what agents send.
type otlpSink struct {
	addr    string
	mu      sync.Mutex
	metrics []pmetric.Metrics
	logs    []plog.Logs
}

type metricsSvc struct {
	pmetricotlp.UnimplementedGRPCServer
	s *otlpSink
}

func (m *metricsSvc) Export(_ context.Context, r pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := pmetric.NewMetrics()
	r.Metrics().CopyTo(md)
	m.s.mu.Lock()
	m.s.metrics = append(m.s.metrics, md)
	m.s.mu.Unlock()
	return pmetricotlp.NewExportResponse(), nil
}

type logsSvc struct {
	plogotlp.UnimplementedGRPCServer
	s *otlpSink
}

func (l *logsSvc) Export(_ context.Context, r plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := plog.NewLogs()
	r.Logs().CopyTo(ld)
	l.s.mu.Lock()
	l.s.logs = append(l.s.logs, ld)
	l.s.mu.Unlock()
	return plogotlp.NewExportResponse(), nil
}

func startSink(t *testing.T) *otlpSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &otlpSink{addr: ln.Addr().String()}
	g := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(g, &metricsSvc{s: s})
	plogotlp.RegisterGRPCServer(g, &logsSvc{s: s})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return s
}

// sumPoints returns the total of a sum per attribute set (rendered
// "k=v,k=v" over the given keys), as a backend would: the latest value of a
// cumulative sum, the sum of the points of a delta one (the agent's
// default for drover.requests).
func (s *otlpSink) sumPoints(name string, keys ...string) map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for _, md := range s.metrics {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != name || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					dps := m.Sum().DataPoints()
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						var parts []string
						for _, key := range keys {
							v, _ := dp.Attributes().Get(key)
							parts = append(parts, key+"="+v.AsString())
						}
						val := dp.DoubleValue()
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							val = float64(dp.IntValue())
						}
						key := strings.Join(parts, ",")
						if m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
							out[key] += val
						} else {
							out[key] = val
						}
					}
				}
			}
		}
	}
	return out
}

// events returns "kind model version" of every event log record.
func (s *otlpSink) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ld := range s.logs {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					a := lrs.At(k).Attributes()
					kind, _ := a.Get(semconv.AttrEventKind)
					model, _ := a.Get(semconv.AttrModel)
					version, _ := a.Get(semconv.AttrModelVersion)
					out = append(out, kind.AsString()+" "+model.AsString()+" "+version.AsString())
				}
			}
		}
	}
	return out
}

// testAgent is a complete agent (package agent) on loopback.
type testAgent struct {
	*agenttest.Agent
}

// wait bounds every polled condition.
const wait = 20 * time.Second

// startAgent runs an agent on root whose telemetry goes to the OTLP
// receiver at sinkAddr ("" for no export).
func startAgent(t *testing.T, root string, sinkAddr string, mcfg monitor.Config) *testAgent {
	t.Helper()
	file := agenttest.File()
	file.Monitoring = mcfg
	if sinkAddr != "" {
		file.Telemetry.Disabled = false
		file.Telemetry.Endpoint = sinkAddr
		file.Telemetry.Interval = 200 * time.Millisecond
	}
	return &testAgent{agenttest.Start(t, agent.Config{File: file, ModelDir: root}, nil)}
}

func (a *testAgent) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	code, _, out := a.Do(t, method, path, b, nil)
	return code, out
}

// control calls the control API (pin, canary, shadow) with the token.
func (a *testAgent) control(t *testing.T, method, path string, body string) (int, []byte) {
	t.Helper()
	code, _, out := a.ControlDo(t, method, path, []byte(body))
	return code, out
}

// golden returns a version's golden-set result, from its evaluation.
func (a *testAgent) golden(t *testing.T, model string, version int64) evaluate.Result {
	t.Helper()
	code, body := a.call(t, "GET", fmt.Sprintf("/v2/models/%s/versions/%d/evaluation", model, version), nil)
	var ev struct{ Golden *evaluate.Result }
	if code != 200 || json.Unmarshal(body, &ev) != nil || ev.Golden == nil {
		t.Fatalf("golden result of %s v%d: %d %s", model, version, code, body)
	}
	return *ev.Golden
}

func rate(r float64) *float64 { return &r }

// macroF1 is sklearn's f1_score(average="macro") over the classes present
// in the labels or the predictions.
func macroF1(pred, label []string) float64 {
	classes := map[string]bool{}
	for i := range pred {
		classes[pred[i]] = true
		classes[label[i]] = true
	}
	sum := 0.0
	for c := range classes {
		tp, fp, fn := 0.0, 0.0, 0.0
		for i := range pred {
			switch {
			case pred[i] == c && label[i] == c:
				tp++
			case pred[i] == c:
				fp++
			case label[i] == c:
				fn++
			}
		}
		p, r := 0.0, 0.0
		if tp+fp > 0 {
			p = tp / (tp + fp)
		}
		if tp+fn > 0 {
			r = tp / (tp + fn)
		}
		if p+r > 0 {
			sum += 2 * p * r / (p + r)
		}
	}
	return sum / float64(len(classes))
}

// TestF1FromFeedbackMatchesOffline serves the scikit-learn iris classifier,
// labels its answers through the feedback call, and compares the agent's
// windowed F1 and accuracy with an offline computation on the same rows.
func TestF1FromFeedbackMatchesOffline(t *testing.T) {
	root := t.TempDir()
	iris, err := os.ReadFile(filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testmodels.WriteVersion(root, "iris", 1, iris); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, root, "", monitor.Config{Rate: rate(1)})
	a.WaitServing(t, "iris", 1)

	var preds, labels []string
	var fb []map[string]any
	for i := 0; i < 60; i++ {
		x := []float64{4.5 + float64(i%9)*0.4, 2.2 + float64(i%5)*0.3, 1.0 + float64(i%11)*0.55, 0.1 + float64(i%7)*0.35}
		id := fmt.Sprintf("req-%d", i)
		code, body := a.call(t, "POST", "/v2/models/iris/infer", map[string]any{
			"id": id, "inputs": []map[string]any{{"name": "X", "shape": []int{1, 4}, "datatype": "FP32", "data": x}},
		})
		if code != 200 {
			t.Fatalf("infer: %d %s", code, body)
		}
		resp, err := oip.DecodeRESTResponse(body, -1)
		if err != nil {
			t.Fatal(err)
		}
		pred := strconv.FormatInt(resp.Outputs[0].Data.([]int64)[0], 10)
		label := pred
		if i%4 == 0 { // a quarter of the answers are wrong
			p, _ := strconv.Atoi(pred)
			label = strconv.Itoa((p + 1) % 3)
		}
		preds, labels = append(preds, pred), append(labels, label)
		lv, _ := strconv.Atoi(label)
		fb = append(fb, map[string]any{"id": id, "label": lv})
	}
	fb = append(fb, map[string]any{"id": "never-sent", "label": 1})
	code, body := a.call(t, "POST", "/v2/models/iris/feedback", fb)
	if code != 200 {
		t.Fatalf("feedback: %d %s", code, body)
	}
	var res monitor.FeedbackResult
	json.Unmarshal(body, &res)
	if res.Joined != 60 || res.Unknown != 1 {
		t.Fatalf("feedback result %+v, want 60 joined and 1 unknown", res)
	}
	// Wrong label type for a classifier: 400, nothing joined.
	if code, body := a.call(t, "POST", "/v2/models/iris/feedback", `{"id": "x", "label": {"a": 1}}`); code != 400 {
		t.Fatalf("bad label: %d %s", code, body)
	}

	code, body = a.call(t, "GET", "/v2/models/iris/versions/1/evaluation", nil)
	var ev struct {
		Labels struct {
			Count   int
			Metrics map[string]float64
		}
	}
	if code != 200 || json.Unmarshal(body, &ev) != nil {
		t.Fatalf("evaluation: %d %s", code, body)
	}
	want := macroF1(preds, labels)
	if ev.Labels.Count != 60 || math.Abs(ev.Labels.Metrics["f1"]-want) > 1e-9 {
		t.Fatalf("f1 = %v over %d rows, offline %v", ev.Labels.Metrics["f1"], ev.Labels.Count, want)
	}
	if math.Abs(ev.Labels.Metrics["accuracy"]-45.0/60) > 1e-9 {
		t.Fatalf("accuracy = %v, want 0.75", ev.Labels.Metrics["accuracy"])
	}
	t.Logf("agent f1 %.6f, offline %.6f", ev.Labels.Metrics["f1"], want)
}

// publishGated writes a classifier version with a golden set and a gate.
func publishGated(t *testing.T, root string, version int64, w [][]float32, b []float32, golden string) {
	t.Helper()
	model, err := testmodels.Classifier(w, b)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "clf", fmt.Sprintf(".tmp-%d", version))
	if err := os.MkdirAll(filepath.Join(dir, "eval"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644)
	os.WriteFile(filepath.Join(dir, "eval", "golden.csv"), []byte(golden), 0o644)
	files, err := manifest.FilesOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	mf := &manifest.Manifest{
		Model: "clf", Version: version, Files: files,
		GoldenSet: &manifest.GoldenSet{Path: "eval/golden.csv", Task: manifest.TaskClassification, Features: []string{"x0", "x1"}, Label: "y"},
		Gate:      &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.02}},
	}
	out, err := mf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifest.FileName), out, 0o644)
	if err := os.Rename(dir, filepath.Join(root, "clf", strconv.FormatInt(version, 10))); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenSetGate: a candidate worse on its golden set than the serving
// version is rejected (the old one keeps serving, the reason is recorded
// and sent as an event); a better one is admitted.
func TestGoldenSetGate(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "clf"), 0o755)
	// Rows with x0 - x1 spread over [-1, 1); the label is the larger one.
	var g strings.Builder
	g.WriteString("x0,x1,y\n")
	for i := 0; i < 80; i++ {
		d := -1 + float64(i)/40
		y := 0
		if d < 0 {
			y = 1
		}
		fmt.Fprintf(&g, "%g,%g,%d\n", 0.5+d/2, 0.5-d/2, y)
	}
	sink := startSink(t)
	a := startAgent(t, root, sink.addr, monitor.Config{Rate: rate(0)})
	ident := [][]float32{{1, 0}, {0, 1}}
	// v1 favours class 1 by 0.5: a quarter of the rows are wrong.
	publishGated(t, root, 1, ident, []float32{0, 0.5}, g.String())
	a.WaitServing(t, "clf", 1)
	// v2 is inverted: worse, rejected.
	publishGated(t, root, 2, [][]float32{{0, 1}, {1, 0}}, []float32{0, 0}, g.String())
	testenv.Eventually(t, wait, "v2 rejected", func() bool {
		st, _ := a.Status(t, "clf")
		for _, v := range st.Versions {
			if v.Version == 2 && v.State == "failed" {
				return strings.Contains(v.Reason, "gate") && strings.Contains(v.Reason, "f1")
			}
		}
		return false
	})
	if v := a.Serving(t, "clf"); v != 1 {
		t.Fatalf("v%d serves after v2 was rejected, want v1", v)
	}
	// v1's golden result, read while it serves (an unloaded version's
	// results are forgotten).
	g1 := a.golden(t, "clf", 1)
	// v3 is unbiased: better, admitted.
	publishGated(t, root, 3, ident, []float32{0, 0}, g.String())
	a.WaitServing(t, "clf", 3)
	g3 := a.golden(t, "clf", 3)
	if !(g3.Metrics["f1"] > g1.Metrics["f1"]) || g3.Metrics["accuracy"] != 1 {
		t.Fatalf("golden f1 v1 %v, v3 %v", g1.Metrics["f1"], g3.Metrics["f1"])
	}
	testenv.Eventually(t, wait, "rejection event", func() bool {
		for _, e := range sink.events() {
			if e == semconv.EventRejected+" clf 2" {
				return true
			}
		}
		return false
	})
}

// TestTelemetryReachesOTLP checks that an OTLP receiver sees the request
// metrics with their attributes and the version events.
func TestTelemetryReachesOTLP(t *testing.T) {
	root := t.TempDir()
	lin, _ := testmodels.Linear("x", "y", [][]float32{{1}, {1}}, []float32{0})
	testmodels.WriteVersion(root, "lin", 1, lin)
	sink := startSink(t)
	a := startAgent(t, root, sink.addr, monitor.Config{Rate: rate(1)})
	a.WaitServing(t, "lin", 1)
	for i := 0; i < 5; i++ {
		if code, body := a.call(t, "POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	a.call(t, "POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}`)
	testenv.Eventually(t, wait, "request counters", func() bool {
		p := sink.sumPoints(semconv.MetricRequests, semconv.AttrModel, semconv.AttrModelVersion, semconv.AttrProtocol, semconv.AttrStatus)
		return p["drover.model=lin,drover.model.version=1,drover.protocol=rest,drover.status=ok"] == 5 &&
			p["drover.model=lin,drover.model.version=1,drover.protocol=rest,drover.status=bad_request"] == 1
	})
	testenv.Eventually(t, wait, "version events", func() bool {
		got := strings.Join(sink.events(), "|")
		return strings.Contains(got, semconv.EventLoaded+" lin 1") && strings.Contains(got, semconv.EventSwapped+" lin 1") &&
			strings.Contains(got, semconv.EventSample+" lin 1")
	})
	code, body := a.call(t, "GET", "/metrics", nil)
	if code != 200 || !strings.Contains(string(body), "drover_requests_total") {
		t.Fatalf("/metrics: %d %.300s", code, body)
	}
}

// TestCanaryShareAndShadow routes a canary share and checks it statistically,
// promotes it, then shadows the old version.
func TestCanaryShareAndShadow(t *testing.T) {
	root := t.TempDir()
	for v := int64(1); v <= 2; v++ {
		m, _ := testmodels.Linear("x", "y", [][]float32{{float32(v)}, {float32(v)}}, []float32{0})
		testmodels.WriteVersion(root, "lin", v, m)
	}
	a := startAgent(t, root, "", monitor.Config{Rate: rate(0)})
	a.WaitServing(t, "lin", 2)
	// Make v1 the default by pinning, then send 20% to v2 as a canary.
	if code, body := a.control(t, "POST", "/v2/models/lin/versions/1/pin", ""); code != 200 {
		t.Fatalf("pin: %d %s", code, body)
	}
	if code, body := a.control(t, "PUT", "/v2/models/lin/canary", `{"version": 2, "percent": 20}`); code != 200 {
		t.Fatalf("canary: %d %s", code, body)
	}
	if code, body := a.control(t, "DELETE", "/v2/models/lin/pin", ""); code != 200 {
		t.Fatalf("unpin: %d %s", code, body)
	}
	a.WaitServing(t, "lin", 1) // with v2 as canary, the default is v1
	const n = 2000
	count := map[string]int{}
	for i := 0; i < n; i++ {
		code, body := a.call(t, "POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		resp, _ := oip.DecodeRESTResponse(body, -1)
		count[resp.ModelVersion]++
		if want := float32(2 * mustAtoi(resp.ModelVersion)); resp.Outputs[0].Data.([]float32)[0] != want {
			t.Fatalf("version %s answered %v", resp.ModelVersion, resp.Outputs[0].Data)
		}
	}
	share := float64(count["2"]) / n
	sd := math.Sqrt(0.2 * 0.8 / n)
	if math.Abs(share-0.2) > 4*sd {
		t.Fatalf("canary share %.3f, want 0.2 ± %.3f (counts %v)", share, 4*sd, count)
	}
	t.Logf("canary share %.3f over %d requests (0.2 ± %.3f)", share, n, 4*sd)
	// The same id is sticky.
	var first string
	for i := 0; i < 20; i++ {
		_, body := a.call(t, "POST", "/v2/models/lin/infer", `{"id": "sticky-7", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
		resp, _ := oip.DecodeRESTResponse(body, -1)
		if first == "" {
			first = resp.ModelVersion
		} else if resp.ModelVersion != first {
			t.Fatal("a request id moved between versions")
		}
	}

	if code, body := a.control(t, "POST", "/v2/models/lin/canary/promote", ""); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	a.WaitServing(t, "lin", 2)

	// Shadow every request to v1: the primary answers, v1's answers are
	// compared off the request path.
	if code, body := a.control(t, "PUT", "/v2/models/lin/shadow", `{"version": 1, "percent": 100}`); code != 200 {
		t.Fatalf("shadow: %d %s", code, body)
	}
	testenv.Eventually(t, wait, "v1 loaded for the shadow", func() bool {
		return a.Ready(t, "lin", 1)
	})
	for i := 0; i < 30; i++ {
		_, body := a.call(t, "POST", "/v2/models/lin/infer", `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
		if resp, _ := oip.DecodeRESTResponse(body, -1); resp.ModelVersion != "2" {
			t.Fatalf("primary answered with %s", resp.ModelVersion)
		}
	}
	testenv.Eventually(t, wait, "shadow difference", func() bool {
		_, body := a.call(t, "GET", "/metrics", nil)
		// |v2 - v1| = |4 - 2| = 2 on every shadowed request.
		return strings.Contains(string(body), "drover_shadow_mean_abs_diff") && strings.Contains(string(body), `drover_model_version="1"`)
	})
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestGoldenSetNotMatchingSignatureIsRejected: golden data with the wrong
// number of feature columns is a clear load-time rejection.
func TestGoldenSetNotMatchingSignatureIsRejected(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "clf"), 0o755)
	a := startAgent(t, root, "", monitor.Config{Rate: rate(0)})
	model, _ := testmodels.Classifier([][]float32{{1, 0}, {0, 1}}, []float32{0, 0})
	dir := filepath.Join(root, "clf", ".tmp-1")
	os.MkdirAll(filepath.Join(dir, "eval"), 0o755)
	os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644)
	os.WriteFile(filepath.Join(dir, "eval", "golden.csv"), []byte("x0,x1,x2,y\n1,2,3,0\n"), 0o644)
	mf := &manifest.Manifest{Model: "clf", Version: 1,
		GoldenSet: &manifest.GoldenSet{Path: "eval/golden.csv", Task: manifest.TaskClassification, Features: []string{"x0", "x1", "x2"}, Label: "y"}}
	out, _ := mf.Marshal()
	os.WriteFile(filepath.Join(dir, manifest.FileName), out, 0o644)
	if err := os.Rename(dir, filepath.Join(root, "clf", "1")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "rejection", func() bool {
		st, _ := a.Status(t, "clf")
		for _, v := range st.Versions {
			if v.Version == 1 && v.State == "failed" {
				return strings.Contains(v.Reason, "golden set")
			}
		}
		return false
	})
	st, _ := a.Status(t, "clf")
	t.Logf("rejection reason: %s", st.Versions[0].Reason)
	if st.Ready {
		t.Fatal("a version whose golden data does not fit its signature serves")
	}
}

// TestLabelsTouchOnlySampledIDs is the drill of issue 16's "a label only
// touches an id the agent sampled": a label sent under another model's
// name for a sampled id used to remove that sample (the rightful label then
// found nothing). Now a label for an id the agent did not sample for that
// model changes nothing and is counted unknown.
func TestLabelsTouchOnlySampledIDs(t *testing.T) {
	root := t.TempDir()
	for _, model := range []string{"lin", "other"} {
		m, _ := testmodels.Linear("x", "y", [][]float32{{1}, {1}}, []float32{0})
		testmodels.WriteVersion(root, model, 1, m)
	}
	a := startAgent(t, root, "", monitor.Config{Rate: rate(1)})
	a.WaitServing(t, "lin", 1)
	a.WaitServing(t, "other", 1)
	if code, body := a.call(t, "POST", "/v2/models/lin/infer", `{"id": "sampled-1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`); code != 200 {
		t.Fatalf("infer: %d %s", code, body)
	}
	feedback := func(model, body string) monitor.FeedbackResult {
		t.Helper()
		code, out := a.call(t, "POST", "/v2/models/"+model+"/feedback", body)
		if code != 200 {
			t.Fatalf("feedback to %s: %d %s", model, code, out)
		}
		var res monitor.FeedbackResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Under another model's name, and ids never sampled: unknown, nothing
	// evaluated.
	if res := feedback("other", `{"id": "sampled-1", "label": 5}`); res != (monitor.FeedbackResult{Unknown: 1}) {
		t.Fatalf("label under the wrong model: %+v, want 1 unknown", res)
	}
	if res := feedback("lin", `[{"id": "never-sampled", "label": 5}, {"id": "sampled-2", "label": 1}]`); res != (monitor.FeedbackResult{Unknown: 2}) {
		t.Fatalf("labels for ids never sampled: %+v, want 2 unknown", res)
	}
	for _, model := range []string{"lin", "other"} {
		if code, body := a.call(t, "GET", "/v2/models/"+model+"/versions/1/evaluation", nil); code != 200 || !strings.Contains(string(body), `"labels":{"count":0`) {
			t.Fatalf("%s evaluation after unknown labels: %d %s, want no labelled rows", model, code, body)
		}
	}
	// The sample is still there for its own model's label.
	if res := feedback("lin", `{"id": "sampled-1", "label": 2}`); res != (monitor.FeedbackResult{Joined: 1}) {
		t.Fatalf("the rightful label: %+v, want 1 joined", res)
	}
	if code, body := a.call(t, "GET", "/v2/models/lin/versions/1/evaluation", nil); code != 200 || !strings.Contains(string(body), `"labels":{"count":1`) {
		t.Fatalf("lin evaluation: %d %s, want one labelled row", code, body)
	}
}
