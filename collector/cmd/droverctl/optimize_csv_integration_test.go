package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize"
	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// csvPoints draws n rows of two features labelled by concept.
func csvPoints(n int, seed uint64, concept func(a, b float64) bool) ([][2]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([][2]float64, n)
	y := make([]int, n)
	for i := range x {
		x[i] = [2]float64{rng.NormFloat64(), rng.NormFloat64()}
		if concept(x[i][0], x[i][1]) {
			y[i] = 1
		}
	}
	return x, y
}

// TestOptimizeCSVAgainstCollector runs `droverctl optimize --data` against
// the real CSV search (collector/optimize, ONNX Runtime, registry) behind
// the real route table: the file is streamed, the search runs, the report
// comes back as a table and as JSON; nothing is published with --dry-run.
func TestOptimizeCSVAgainstCollector(t *testing.T) {
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	blobURL, _ := registry.FileURL(t.TempDir())
	blobs, err := registry.OpenBlobs(ctx, blobURL)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	reg := registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Logger: slog.New(slog.DiscardHandler)})

	// The serving version: a logistic regression on the old concept, with
	// skl2onnx's classifier signature and a search space.
	oldConcept := func(a, _ float64) bool { return a > 0 }
	newConcept := func(_, b float64) bool { return b > 0 }
	x, y := csvPoints(300, 1, oldConcept)
	d := &learn.Dataset{X: mat.NewDense(len(x), 2, nil), Y: make([]float64, len(y)), Task: learn.Classification, Classes: 2}
	for i := range x {
		d.X.SetRow(i, x[i][:])
		d.Y[i] = float64(y[i])
	}
	fam, _ := learn.Lookup("logistic_regression")
	fitted, err := fam.Fit(ctx, d, learn.Params{"C": 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	proto, err := export.Build(fitted.(export.Exportable), &export.Signature{Input: "X", InputType: onnx.TensorProto_FLOAT, Features: 2,
		Task: learn.Classification, LabelOutput: "output_label", ClassInts: []int64{0, 1}, ProbOutput: "output_probability", ZipMap: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	model, err := onnx.Marshal(proto)
	if err != nil {
		t.Fatal(err)
	}
	yml := []byte("optimize:\n  families:\n    - name: logistic_regression\n      grid:\n        C: [0.1, 10]\n  folds: 3\n")
	var ups []registry.Upload
	for path, data := range map[string][]byte{manifest.ModelFile: model, manifest.FileName: yml} {
		sum := sha256.Sum256(data)
		ups = append(ups, registry.Upload{Path: path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Body: bytes.NewReader(data)})
	}
	if _, _, err := reg.Publish(ctx, "churn", registry.Uploads(ups...), registry.Meta{Author: "trainer"}); err != nil {
		t.Fatalf("publish v1: %v", err)
	}

	cfg := jobs.DefaultBuiltin()
	cfg.MinRows, cfg.MaxProcs, cfg.TimeBudget = 60, 2, time.Minute
	o, err := optimize.New(optimize.Options{Registry: reg, Labels: labels.NewStore(db.Conn, db.Name), Config: cfg,
		Logger: slog.New(slog.DiscardHandler), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	tokens := filepath.Join(dataDir, "tokens.yaml")
	entries := "- name: ci\n  role: publisher\n  sha256: " + auth.Hash("tok-ci") + "\n- name: grafana\n  role: reader\n  sha256: " + auth.Hash("tok-grafana") + "\n"
	if err := os.WriteFile(tokens, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	acfg := auth.DefaultConfig()
	acfg.TokensFile = tokens
	a, err := auth.New(ctx, acfg, auth.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(optimize.PatternCSV, a.Protect(admin.Routes(), optimize.PatternCSV, o.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	nx, ny := csvPoints(200, 8, newConcept)
	var csv strings.Builder
	csv.WriteString("a,b,churned\n")
	for i := range nx {
		fmt.Fprintf(&csv, "%g,%g,%d\n", nx[i][0], nx[i][1], ny[i])
	}
	path := filepath.Join(t.TempDir(), "labelled.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(tok string) map[string]string {
		return map[string]string{"DROVER_COLLECTOR": srv.URL, "DROVER_TOKEN": "tok-" + tok}
	}
	if code, _, errOut := run(t, env("grafana"), "optimize", "churn", "--data", path, "--label", "churned", "--dry-run"); code != 4 {
		t.Errorf("as a reader: exit %d (%s), want 4", code, errOut)
	}
	code, out, errOut := run(t, env("ci"), "optimize", "churn", "--data", path, "--label", "churned", "--folds", "4", "--dry-run", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r optimize.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json is not a report: %v\n%s", err, out)
	}
	if !r.DryRun || !r.Improved || r.Published != "" || r.Folds != 4 || r.Rows != 200 || r.Holdout.New <= r.Holdout.Old || r.Family != "logistic_regression" {
		t.Errorf("report %+v: want an improving dry run on 200 rows, 4 folds", r)
	}
	code, out, errOut = run(t, env("ci"), "optimize", "churn", "--data", path, "--label", "churned", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"metric:", "accuracy (higher is better)", "logistic_regression", "± ", "(3 folds)", "old ", "→ new ",
		"improved:", "yes", "200 (", "held out)", "- (dry run)", "FAMILY", "C=0.1", "C=10"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := run(t, env("ci"), "optimize", "churn", "--data", path, "--label", "nope", "--dry-run"); code != 1 || !strings.Contains(errOut, "nope") {
		t.Errorf("unknown label column: exit %d, %s", code, errOut)
	}
	if vs, err := reg.Versions(ctx, "churn"); err != nil || len(vs) != 1 {
		t.Errorf("versions %d (%v), want only v1 after dry runs", len(vs), err)
	}
}
