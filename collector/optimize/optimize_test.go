package optimize

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// The concepts: before the incident the class is x0 > 0, after it x1 > 0.
func oldConcept(x []float64) int { return b2i(x[0] > 0) }
func newConcept(x []float64) int { return b2i(x[1] > 0) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// env is a migrated database with a registry, a fleet (not running) and
// the labels store.
type env struct {
	db     *testenv.DB
	reg    *registry.Registry
	fl     *fleet.Fleet
	labels *labels.Store
	cfg    jobs.BuiltinConfig
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	u, err := registry.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := registry.OpenBlobs(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	e := &env{db: db, labels: labels.NewStore(db.Conn, db.Name)}
	e.reg = registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Logger: slog.New(slog.DiscardHandler)})
	if e.fl, err = fleet.New(fleet.Options{Conn: db.Conn, Database: db.Name, Versions: e.reg, Node: "n1", Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	e.cfg = jobs.DefaultBuiltin()
	e.cfg.MinRows, e.cfg.MaxProcs, e.cfg.TimeBudget = 60, 2, time.Minute
	return e
}

func (e *env) optimizer(t *testing.T, log *slog.Logger) *Optimizer {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	o, err := New(Options{Registry: e.reg, Fleet: e.fl, Labels: e.labels, Config: e.cfg, Logger: log, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// points draws n rows of 2 features and labels them with concept.
func points(n int, seed uint64, concept func([]float64) int) ([][]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([][]float64, n)
	y := make([]int, n)
	for i := range x {
		x[i] = []float64{rng.NormFloat64(), rng.NormFloat64()}
		y[i] = concept(x[i])
	}
	return x, y
}

const searchManifest = `optimize:
  families:
    - name: logistic_regression
      grid:
        C: [0.1, 10]
  folds: 3
`

// publishServing trains a logistic regression on concept, exports it
// with skl2onnx's classifier signature (int64 labels, ZipMap
// probabilities), publishes it as v1 with a drover.yaml holding the
// search space, and rolls it out.
func (e *env) publishServing(t *testing.T, concept func([]float64) int) {
	t.Helper()
	e.publish(t, e.servingModel(t, concept), searchManifest, nil)
}

// servingModel is a logistic regression trained on concept, exported with
// skl2onnx's classifier signature.
func (e *env) servingModel(t *testing.T, concept func([]float64) int) []byte {
	t.Helper()
	ctx := context.Background()
	x, y := points(400, 1, concept)
	d := &learn.Dataset{X: mat.NewDense(len(x), 2, nil), Y: make([]float64, len(y)), Task: learn.Classification, Classes: 2}
	for i := range x {
		d.X.SetRow(i, x[i])
		d.Y[i] = float64(y[i])
	}
	fam, _ := learn.Lookup("logistic_regression")
	m, err := fam.Fit(ctx, d, learn.Params{"C": 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	sig := &export.Signature{Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 2, Task: learn.Classification,
		LabelOutput: "output_label", ClassInts: []int64{0, 1}, ProbOutput: "output_probability", ZipMap: true}
	proto, err := export.Build(m.(export.Exportable), sig, "test")
	if err != nil {
		t.Fatal(err)
	}
	model, err := onnx.Marshal(proto)
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// publish publishes model with the drover.yaml yml and extra files as v1
// of churn and rolls it out.
func (e *env) publish(t *testing.T, model []byte, yml string, extra map[string]string) {
	t.Helper()
	ctx := context.Background()
	files := []struct {
		path string
		data []byte
	}{{manifest.ModelFile, model}, {manifest.FileName, []byte(yml)}}
	for p, d := range extra {
		files = append(files, struct {
			path string
			data []byte
		}{p, []byte(d)})
	}
	var ups []registry.Upload
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		ups = append(ups, registry.Upload{Path: f.path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(f.data)), Body: bytes.NewReader(f.data)})
	}
	v, _, err := e.reg.Publish(ctx, "churn", registry.Uploads(ups...), registry.Meta{Author: "trainer"})
	if err != nil || v.Version != 1 {
		t.Fatalf("publish v1: %v %v", v.Version, err)
	}
	if _, err := e.fl.Change(auth.WithPrincipal(ctx, auth.Principal{Name: "ops", Role: auth.Admin}), "churn", fleet.ChangeRollout, fleet.Request{Version: 1}); err != nil {
		t.Fatalf("roll out v1: %v", err)
	}
}

// sampleRows inserts n sampled requests of the serving version since
// start, labelled by concept, through the real stores.
func (e *env) sampleRows(t *testing.T, start time.Time, n int, seed uint64, concept func([]float64) int) {
	t.Helper()
	e.sampleRowsWith(t, start, n, seed, concept, nil, nil)
}

// sampleRowsWith is sampleRows with row i's inputs and label (JSON text)
// replaced where inputs and label return a non-empty text.
func (e *env) sampleRowsWith(t *testing.T, start time.Time, n int, seed uint64, concept func([]float64) int, inputs, label func(i int) string) {
	t.Helper()
	x, y := points(n, seed, concept)
	var rows []store.SampleRow
	var ls []labels.Label
	for i := range x {
		id := fmt.Sprintf("req-%d-%d", seed, i)
		at := start.Add(time.Duration(i) * time.Second)
		in, _ := json.Marshal(map[string]any{"outputs": []map[string]any{{"name": "X", "datatype": "FP32", "shape": []int{1, 2}, "data": x[i]}}})
		lab := fmt.Sprint(y[i])
		if inputs != nil && inputs(i) != "" {
			in = []byte(inputs(i))
		}
		if label != nil && label(i) != "" {
			lab = label(i)
		}
		rows = append(rows, store.SampleRow{Time: at, Model: "churn", ModelVersion: "1", Host: "h1", RequestID: id, Inputs: string(in), Outputs: `{"outputs":[]}`})
		ls = append(ls, labels.Label{Time: at.Add(time.Second), Model: "churn", RequestID: id, Label: lab, Source: labels.SourceCollector, Sender: "app"})
	}
	ctx := context.Background()
	if err := store.New(e.db.Conn, e.db.Name, nil).Insert(ctx, &store.Batch{Samples: rows}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.labels.Insert(ctx, ls); err != nil {
		t.Fatal(err)
	}
}

// TestJobPublishesBetterVersionAsCanary: after a concept change, a job of
// the executor builtin run by the job system trains on the labelled rows
// since the incident, and publishes a version that beats the serving one
// on the held-out rows, with the report stored on the job, the lineage
// incident → job → version, and an automatic canary in the desired state.
func TestJobPublishesBetterVersionAsCanary(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	incident := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Millisecond)
	e.sampleRows(t, incident.Add(-time.Hour), 100, 2, oldConcept) // before the incident: not used
	e.sampleRows(t, incident, 300, 3, newConcept)

	o := e.optimizer(t, nil)
	jc := jobs.DefaultConfig()
	jc.Executor, jc.Retries, jc.Settle, jc.Lease, jc.ResumeInterval = jobs.ExecutorBuiltin, 0, 50*time.Millisecond, 3*time.Second, time.Second
	jc.Builtin = e.cfg
	m, err := jobs.New(jobs.Options{Conn: e.db.Conn, Database: e.db.Name, Node: "n1", Config: jc, Executor: o, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	id, created, err := m.Schedule(ctx, jobs.Incident{Model: "churn", Version: "1", Start: incident, Reasons: []string{"metric accuracy"}})
	if err != nil || !created {
		t.Fatalf("Schedule: %v %v", created, err)
	}
	var row store.JobRow
	testenv.Eventually(t, 90*time.Second, "the job ends", func() bool {
		r, err := m.Job(ctx, id)
		row = r
		return err == nil && jobs.Terminal(r.State)
	})
	if row.State != jobs.StateSucceeded || row.ResultVersion != 2 {
		t.Fatalf("job: state %s, result v%d, error %q; want succeeded with v2", row.State, row.ResultVersion, row.Error)
	}
	var rep Report
	if err := json.Unmarshal([]byte(row.Report), &rep); err != nil {
		t.Fatalf("report %q: %v", row.Report, err)
	}
	if !rep.Improved || rep.Published != "2" || rep.Baseline != "1" || rep.Metric != "accuracy" || rep.Family != "logistic_regression" || rep.Folds != 3 {
		t.Errorf("report = %+v", rep)
	}
	if rep.Holdout.New < rep.Holdout.Old+e.cfg.Margin || rep.Holdout.New < 0.9 || rep.Holdout.Old > 0.75 {
		t.Errorf("holdout old %v new %v: want the new concept learnt (≥ 0.9) and the old model beaten", rep.Holdout.Old, rep.Holdout.New)
	}
	if rep.Rows != 300 || rep.HoldoutRows != 60 || len(rep.Grid) != 2 || rep.CI.Level != 0.95 || rep.CI.Low <= 0 {
		t.Errorf("rows %d, holdout rows %d, grid %d points, CI %+v; want 300, 60, 2, a 95%% interval above 0", rep.Rows, rep.HoldoutRows, len(rep.Grid), rep.CI)
	}
	v, err := e.reg.Version(ctx, "churn", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != registry.SourceOptimize || len(v.Parents) != 1 || v.Parents[0] != 1 || v.Job != id || v.Incident != IncidentRef("1", incident) || v.Author != Author {
		t.Errorf("v2 record = %+v; want source optimize, parent 1, job %s, incident %s", v, id, IncidentRef("1", incident))
	}
	if jobs.JobID("churn", "1", incident) != id {
		t.Errorf("the job id does not follow from the incident")
	}
	st, err := e.fl.Desired(ctx, "churn")
	if err != nil {
		t.Fatal(err)
	}
	if st.Serving != 1 || st.Canary == nil || st.Canary.Version != 2 || st.Canary.Share != CanaryShare || !st.Canary.Auto || !strings.HasPrefix(st.ChangedBy, Author) {
		t.Errorf("desired state = %+v (canary %+v); want v1 serving, v2 an automatic %d%% canary", st, st.Canary, CanaryShare)
	}
	// The job API answers the report (droverctl jobs show prints it).
	api, err := jobs.NewAPI(jobs.APIOptions{Conn: e.db.Conn, Database: e.db.Name, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := api.Job(ctx, id)
	if err != nil || !bytes.Contains(j.Report, []byte(`"improved":true`)) {
		t.Errorf("GET /v1/jobs/%s report = %s (%v)", id, j.Report, err)
	}
}

func TestTooFewLabelsFailsWithTheReason(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	incident := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	e.sampleRows(t, incident, 12, 4, newConcept)
	res := e.optimizer(t, nil).Execute(context.Background(), jobs.Spec{ID: "job-x", Model: "churn", Version: "1", IncidentStart: incident})
	want := fmt.Sprintf("12 labelled rows since %s, min_rows is 60", incident.Format(time.RFC3339))
	if res.Err == nil || res.Err.Error() != want || res.Version != 0 {
		t.Fatalf("Execute = v%d, %v; want the error %q", res.Version, res.Err, want)
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil || rep.Reason != want || rep.Baseline != "1" {
		t.Errorf("report %s (%v): want the reason and the baseline", res.Report, err)
	}
}

// cancelOn is a slog handler that cancels a context when a message is
// logged.
type cancelOn struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
	once   *sync.Once
}

func (c cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.once.Do(c.cancel)
	}
	return c.Handler.Handle(ctx, r)
}

func (c cancelOn) WithAttrs(as []slog.Attr) slog.Handler {
	c.Handler = c.Handler.WithAttrs(as)
	return c
}

// TestCancelledContextStopsTheSearch: the job's context cancelled as the
// search starts (a lost lease) ends the attempt with the cancellation,
// and nothing is published.
func TestCancelledContextStopsTheSearch(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	incident := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	e.sampleRows(t, incident, 200, 5, newConcept)
	ctx, cancel := context.WithCancelCause(context.Background())
	lost := errors.New("lease lost")
	h := cancelOn{Handler: slog.NewTextHandler(testWriter{t}, nil), msg: "optimize: searching", cancel: func() { cancel(lost) }, once: &sync.Once{}}
	res := e.optimizer(t, slog.New(h)).Execute(ctx, jobs.Spec{ID: "job-c", Model: "churn", Version: "1", IncidentStart: incident})
	if !errors.Is(res.Err, lost) || res.Version != 0 {
		t.Fatalf("Execute = v%d, %v; want the cancellation cause", res.Version, res.Err)
	}
	if vs, err := e.reg.Versions(context.Background(), "churn"); err != nil || len(vs) != 1 {
		t.Errorf("versions = %d (%v), want only v1", len(vs), err)
	}
}

// TestNothingBetterPublishesNothing: without a concept change the
// candidate does not beat the serving version by the margin: the job
// succeeds, says so, and publishes nothing.
func TestNothingBetterPublishesNothing(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	incident := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	e.sampleRows(t, incident, 200, 6, oldConcept)
	res := e.optimizer(t, nil).Execute(context.Background(), jobs.Spec{ID: "job-n", Model: "churn", Version: "1", IncidentStart: incident})
	if res.Err != nil || res.Version != 0 {
		t.Fatalf("Execute = v%d, %v; want success without a version", res.Version, res.Err)
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Improved || rep.Published != "" || !strings.Contains(rep.Reason, "not better by the margin") || rep.Holdout.Old < 0.9 {
		t.Errorf("report = %+v; want not improved, nothing published, the reason", rep)
	}
	if vs, err := e.reg.Versions(context.Background(), "churn"); err != nil || len(vs) != 1 {
		t.Errorf("versions = %d (%v), want only v1", len(vs), err)
	}
}

// TestCanaryUnderWayIsNotReplaced: a better version found while another
// canary is being analysed (a person's, or an earlier job's) is published
// and not rolled out: the canary under way keeps its share and analysis.
func TestCanaryUnderWayIsNotReplaced(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	ctx := context.Background()
	other := e.servingModel(t, func(x []float64) int { return 1 - oldConcept(x) })
	sum := sha256.Sum256(other)
	v2, _, err := e.reg.Publish(ctx, "churn", registry.Uploads(
		registry.Upload{Path: manifest.ModelFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(other)), Body: bytes.NewReader(other)}),
		registry.Meta{Author: "trainer"})
	if err != nil || v2.Version != 2 {
		t.Fatalf("publish v2: %v %v", v2.Version, err)
	}
	admin := auth.WithPrincipal(ctx, auth.Principal{Name: "ops", Role: auth.Admin})
	share := 10
	if _, err := e.fl.Change(admin, "churn", fleet.ChangeCanary, fleet.Request{Version: 2, Share: &share}); err != nil {
		t.Fatalf("canary v2: %v", err)
	}
	incident := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Millisecond)
	e.sampleRows(t, incident, 300, 3, newConcept)
	res := e.optimizer(t, nil).Execute(ctx, jobs.Spec{ID: "job-c", Model: "churn", Version: "1", IncidentStart: incident})
	if res.Err != nil || res.Version != 3 {
		t.Fatalf("Execute = v%d, %v; want v3 published", res.Version, res.Err)
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Improved || rep.Published != "3" || !strings.Contains(rep.Reason, "not rolled out: v2 is a canary of churn") {
		t.Errorf("report: improved %v, published %q, reason %q; want v3 published, not rolled out because of canary v2", rep.Improved, rep.Published, rep.Reason)
	}
	st, err := e.fl.Desired(ctx, "churn")
	if err != nil {
		t.Fatal(err)
	}
	if st.Serving != 1 || st.Canary == nil || st.Canary.Version != 2 || int(st.Canary.Share) != share || st.ChangedBy != "ops" {
		t.Errorf("desired state = %+v (canary %+v); want v1 serving and ops's 10%% canary of v2 untouched", st, st.Canary)
	}
}

// TestCSVDryRunAnswersTheReport: the CSV route searches an uploaded CSV
// against the serving version and answers the report; a dry run
// publishes nothing. Bad requests are 400, an oversized body 413.
func TestCSVDryRunAnswersTheReport(t *testing.T) {
	e := newEnv(t)
	e.publishServing(t, oldConcept)
	o := e.optimizer(t, nil)
	mux := http.NewServeMux()
	mux.Handle(PatternCSV, o.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	x, y := points(200, 8, newConcept)
	var csv strings.Builder
	csv.WriteString("a,b,churned\n")
	for i := range x {
		fmt.Fprintf(&csv, "%g,%g,%d\n", x[i][0], x[i][1], y[i])
	}
	post := func(query, body string) (int, []byte) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/models/churn/optimize/csv?"+query, "text/csv", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	code, body := post("label=churned&folds=4&dry_run=true", csv.String())
	if code != http.StatusOK {
		t.Fatalf("POST: %d %s", code, body)
	}
	var rep Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || !rep.Improved || rep.Published != "" || rep.Folds != 4 || rep.Rows != 200 || rep.HoldoutRows != 40 || rep.Holdout.New <= rep.Holdout.Old {
		t.Errorf("report = %+v; want a dry run that improved on 200 rows (40 held out) and published nothing", rep)
	}
	if vs, err := e.reg.Versions(context.Background(), "churn"); err != nil || len(vs) != 1 {
		t.Errorf("versions = %d (%v), want only v1", len(vs), err)
	}
	// Over the size limit: 413.
	small, err := New(Options{Registry: e.reg, Labels: e.labels, Config: e.cfg, TempDir: t.TempDir(), MaxCSVBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v1/models/churn/optimize/csv?label=churned", strings.NewReader(csv.String()))
	r.SetPathValue("model", "churn")
	small.Handler().ServeHTTP(rec, r)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a CSV over the limit: %d %s, want 413", rec.Code, rec.Body)
	}
	for name, tc := range map[string]struct {
		query, body string
		code        int
		want        string
	}{
		"no label":      {"", csv.String(), 400, "label query parameter"},
		"unknown label": {"label=nope", csv.String(), 400, `no column \"nope\"`},
		"bad family":    {"label=churned&family=svm", csv.String(), 400, "family"},
		"not a number":  {"label=churned", "a,b,churned\n1,x,0\n", 400, `line 2, column \"b\"`},
		"wrong label":   {"label=churned", strings.Replace(csv.String(), ",0\n", ",cat\n", 1), 400, "not an integer"},
		"single class":  {"label=churned", strings.ReplaceAll(csv.String(), ",0\n", ",1\n"), 400, "same class"},
		"missing value": {"label=churned", strings.Replace(csv.String(), "churned\n", "churned\n,1.5,0\n", 1), 400, "missing"},
	} {
		code, body := post(tc.query, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", name, code, body, tc.code, tc.want)
		}
	}
}

// TestTrainingCSVJoinsTheTrainingRows: with include_training_data the
// version's training.csv is added to the training rows, never to the
// held-out ones.
func TestTrainingCSVJoinsTheTrainingRows(t *testing.T) {
	e := newEnv(t)
	x, y := points(100, 9, newConcept)
	var csv strings.Builder
	csv.WriteString("f0,f1,target\n")
	for i := range x {
		fmt.Fprintf(&csv, "%g,%g,%d\n", x[i][0], x[i][1], y[i])
	}
	e.publish(t, e.servingModel(t, oldConcept), searchManifest+"  include_training_data: true\n  label: target\n",
		map[string]string{manifest.TrainingFile: csv.String()})
	incident := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	e.sampleRows(t, incident, 100, 10, newConcept)
	res := e.optimizer(t, nil).Execute(context.Background(), jobs.Spec{ID: "job-t", Model: "churn", Version: "1", IncidentStart: incident})
	if res.Err != nil || res.Version != 2 {
		t.Fatalf("Execute = v%d, %v; want v2", res.Version, res.Err)
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 200 || rep.HoldoutRows != 20 || !rep.Improved {
		t.Errorf("rows %d, held out %d, improved %v; want 100 labelled + 100 from training.csv, 20 held out, improved", rep.Rows, rep.HoldoutRows, rep.Improved)
	}
}

// TestBadDataFailsWithAReason: each kind of bad input fails the attempt
// with a clear, permanent reason and publishes nothing.
func TestBadDataFailsWithAReason(t *testing.T) {
	linear, err := testmodels.Linear("X", "Y", [][]float32{{1}, {2}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		model  func(e *env) []byte
		yml    string
		inputs func(i int) string
		label  func(i int) string
		budget time.Duration
		want   string
	}{
		"non-finite feature": {inputs: func(i int) string {
			if i == 7 {
				return `{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":["Infinity",1]}]}`
			}
			return ""
		}, want: "row 7: feature 0 is +Inf"},
		"missing feature": {inputs: func(i int) string {
			if i == 3 {
				return `{"outputs":[{"name":"X","datatype":"FP32","shape":[1,1],"data":[1]}]}`
			}
			return ""
		}, want: "has 1 features, the model takes 2"},
		"label type":              {label: func(i int) string { return `"yes"` }, want: `label "yes" is not an integer`},
		"single class":            {label: func(i int) string { return "1" }, want: "same class"},
		"time budget":             {budget: time.Nanosecond, want: "grid beyond the time budget"},
		"undetectable":            {model: func(*env) []byte { return linear }, yml: "gate: {min: {r2: 0}}\n", want: "cannot be detected"},
		"family for another task": {yml: "optimize:\n  families: [{name: ridge}]\n", want: "family ridge cannot learn classification"},
		"unknown parameter":       {yml: "optimize:\n  families: [{name: logistic_regression, grid: {gamma: [1]}}]\n", want: `unknown parameter "gamma"`},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if tc.budget > 0 {
				e.cfg.TimeBudget = tc.budget
			}
			model := e.servingModel(t, oldConcept)
			if tc.model != nil {
				model = tc.model(e)
			}
			e.publish(t, model, cmp.Or(tc.yml, searchManifest), nil)
			incident := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
			e.sampleRowsWith(t, incident, 100, 11, newConcept, tc.inputs, tc.label)
			res := e.optimizer(t, nil).Execute(context.Background(), jobs.Spec{ID: "job-b", Model: "churn", Version: "1", IncidentStart: incident})
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) || !errors.Is(res.Err, jobs.ErrPermanent) || res.Version != 0 {
				t.Fatalf("Execute = v%d, %v; want a permanent error with %q", res.Version, res.Err, tc.want)
			}
			if vs, err := e.reg.Versions(context.Background(), "churn"); err != nil || len(vs) != 1 {
				t.Errorf("versions = %d (%v), want only v1", len(vs), err)
			}
		})
	}
}
