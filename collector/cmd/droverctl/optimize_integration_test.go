package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// jobHelperEnv makes the test binary, started as a job's command, act as
// a command job written as docs/jobs.md shows: droverctl publish of its
// model with --job, to the publish URL with the publish token.
const jobHelperEnv = "DROVERCTL_TEST_JOB"

func jobHelper() int {
	dir, err := os.MkdirTemp("", "droverctl-job")
	if err != nil {
		return 2
	}
	defer os.RemoveAll(dir)
	m, err := testmodels.Linear("x", "y", [][]float32{{3, 1}, {1, 3}}, []float32{1, 1})
	if err != nil || os.WriteFile(filepath.Join(dir, "model.onnx"), m, 0o644) != nil {
		return 2
	}
	env := map[string]string{"DROVER_COLLECTOR": os.Getenv("DROVER_PUBLISH_URL"), "DROVER_TOKEN": os.Getenv("DROVER_PUBLISH_TOKEN")}
	return realMain(context.Background(), []string{"publish", os.Getenv("DROVER_MODEL"), dir, "--job", os.Getenv("DROVER_JOB_ID")},
		func(k string) string { return env[k] }, os.Stdout, os.Stderr)
}

// TestOptimizeAgainstCollectorJobs runs `droverctl optimize --wait`
// against the real jobs API, registry and route table behind a real
// Authenticator: the manual incident's job runs a command that publishes
// through the registry with its job token (droverctl publish --job), and
// the job succeeds with that version as its result.
func TestOptimizeAgainstCollectorJobs(t *testing.T) {
	fastPoll(t)
	db := testenv.ClickHouse(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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

	dataDir := t.TempDir()
	tokens := filepath.Join(dataDir, "tokens.yaml")
	entries := ""
	for name, role := range map[string]string{"ops": "admin", "ci": "publisher", "grafana": "reader"} {
		entries += "- name: " + name + "\n  role: " + role + "\n  sha256: " + auth.Hash("tok-"+name) + "\n"
	}
	if err := os.WriteFile(tokens, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := auth.JobTokenKey([]byte("gossip key"))
	acfg := auth.DefaultConfig()
	acfg.TokensFile = tokens
	a, err := auth.New(ctx, acfg, auth.Options{DataDir: dataDir, JobTokenKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()

	exe, _ := os.Executable()
	jc := jobs.DefaultConfig()
	jc.Executor = jobs.ExecutorCommand
	jc.Command.Argv = []string{exe}
	jc.Command.Env = map[string]string{jobHelperEnv: "1"}
	jc.Command.Timeout = 60 * time.Second
	jc.ModelStore = t.TempDir()
	jc.Settle, jc.Lease = time.Second, 10*time.Second // a slow claim is dropped until its lease lapses
	jc.Retries = 0
	m, err := jobs.New(jobs.Options{Conn: db.Conn, Database: db.Name, Node: "collector-a", Config: jc,
		PublishURL: srv.URL, JobTokenKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	api, err := jobs.NewAPI(jobs.APIOptions{Conn: db.Conn, Database: db.Name, Node: "collector-a", Manager: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	routes := admin.Routes()
	for _, hs := range []map[string]http.Handler{reg.Routes(nil), api.Handlers()} {
		for p, h := range hs {
			mux.Handle(p, a.Protect(routes, p, h))
		}
	}

	env := func(tok string) map[string]string {
		return map[string]string{"DROVER_COLLECTOR": srv.URL, "DROVER_TOKEN": "tok-" + tok}
	}
	seed := t.TempDir()
	m1, _ := testmodels.Linear("x", "y", [][]float32{{1, 0}, {0, 1}}, []float32{0, 0})
	os.WriteFile(filepath.Join(seed, "model.onnx"), m1, 0o644)
	if code, _, errOut := run(t, env("ci"), "publish", "iris", seed); code != 0 {
		t.Fatalf("publish v1: exit %d: %s", code, errOut)
	}

	if code, _, errOut := run(t, env("grafana"), "optimize", "iris"); code != 4 {
		t.Errorf("optimize as a reader: exit %d (%s), want 4", code, errOut)
	}
	if code, _, errOut := run(t, env("ci"), "optimize", "nope"); code != 3 {
		t.Errorf("optimize an unknown model: exit %d (%s), want 3", code, errOut)
	}
	code, out, errOut := run(t, env("ci"), "optimize", "iris", "--since", "2h", "--wait")
	if code != 0 {
		t.Fatalf("optimize --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "running (attempt 1)") || !strings.Contains(errOut, "succeeded (attempt 1)") {
		t.Errorf("state changes not printed:\n%s", errOut)
	}
	id := ""
	for _, f := range strings.Fields(errOut) {
		if strings.HasPrefix(f, "job-") {
			id = f
			break
		}
	}
	code, out, errOut = run(t, env("ops"), "jobs", "show", id, "-o", "json")
	var j struct {
		State         string  `json:"state"`
		ResultVersion *uint64 `json:"result_version"`
		Spec          map[string]any
	}
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("jobs show %s: exit %d %s %s", id, code, out, errOut)
	}
	if j.State != "succeeded" || j.ResultVersion == nil || *j.ResultVersion != 2 {
		t.Errorf("job %s: %s, result %v; want succeeded with v2", id, j.State, j.ResultVersion)
	}
	if _, ok := j.Spec["publish_token"]; ok || j.Spec["reasons"].([]any)[0] != "manual" {
		t.Errorf("stored spec %v: want reasons [manual] and no token", j.Spec)
	}
	v2, err := reg.Version(ctx, "iris", 2)
	if err != nil || v2.Job != id {
		t.Errorf("v2 %+v %v: want lineage.job %s", v2, err, id)
	}
}
