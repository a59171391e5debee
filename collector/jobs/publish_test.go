package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// publisherHelperEnv makes the test binary, started as a job's command,
// act as a job that publishes through the registry (publisherHelper)
// instead of running tests.
const publisherHelperEnv = "JOBS_TEST_PUBLISHER"

// publisherHelper is a command job written as its authors would: it reads
// the spec from stdin, publishes a model through spec.PublishURL with
// spec.PublishToken and lineage.job = spec.ID (adminclient.Publish, the
// two-step publish), and writes the spec it got to the file named by
// $JOBS_TEST_SPEC_OUT for the test to inspect.
func publisherHelper() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "publisher helper:", err)
		return 2
	}
	var spec Spec
	if err := json.NewDecoder(os.Stdin).Decode(&spec); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(os.Getenv("JOBS_TEST_SPEC_OUT"), mustJSON(spec), 0o600); err != nil {
		return fail(err)
	}
	if spec.PublishURL != os.Getenv("DROVER_PUBLISH_URL") || spec.PublishToken != os.Getenv("DROVER_PUBLISH_TOKEN") {
		return fail(errors.New("the spec and the DROVER_PUBLISH_* variables disagree"))
	}
	dir, err := os.MkdirTemp("", "publisher-helper")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	model, err := testmodels.Linear("x", "y", [][]float32{{1, 2}, {3, 4}}, []float32{0.5, float32(spec.Attempt)})
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644); err != nil {
		return fail(err)
	}
	cl := adminclient.New(spec.PublishURL, spec.PublishToken)
	defer cl.Close()
	res, _, err := cl.Publish(context.Background(), spec.Model, dir, adminclient.PublishOptions{Author: "job " + spec.ID, Job: spec.ID})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("published %s v%d\n", spec.Model, res.Version)
	return 0
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// registryServer serves the registry's routes behind an Authenticator that
// knows one publisher token ("tok-ci", from a tokens_file) and job tokens
// signed with key; its clock is *now under mu.
type registryServer struct {
	*httptest.Server
	reg *registry.Registry
	mu  sync.Mutex
	now time.Time
}

func newRegistryServer(t *testing.T, db *testenv.DB, key []byte) *registryServer {
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
	rs := &registryServer{now: time.Now()}
	rs.reg = registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Logger: slog.New(slog.DiscardHandler)})
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("- name: ci\n  role: publisher\n  sha256: "+auth.Hash("tok-ci")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.TokensFile = tokens
	a, err := auth.New(ctx, cfg, auth.Options{DataDir: dir, JobTokenKey: key, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { rs.mu.Lock(); defer rs.mu.Unlock(); return rs.now }})
	if err != nil {
		t.Fatal(err)
	}
	routes := auth.Routes{}
	mux := http.NewServeMux()
	for pattern, h := range rs.reg.Routes(nil) {
		routes[pattern] = auth.Allow(auth.Publisher)
		mux.Handle(pattern, a.Protect(routes, pattern, h))
	}
	rs.Server = httptest.NewServer(mux)
	t.Cleanup(rs.Close)
	return rs
}

func (rs *registryServer) setNow(t time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.now = t
}

// TestCommandJobPublishesThroughRegistry: a command job gets a publish URL
// and a token in its spec and environment, publishes with lineage.job, and
// succeeds with that version as its result; the token is stored nowhere,
// refused for another model and after the attempt's timeout.
func TestCommandJobPublishesThroughRegistry(t *testing.T) {
	db := migrated(t)
	key, err := auth.JobTokenKey([]byte("the cluster's gossip key"))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegistryServer(t, db, key)
	ctx := context.Background()

	// Version 1 exists (the serving one); the job must publish version 2.
	seed := t.TempDir()
	m1, _ := testmodels.Linear("x", "y", [][]float32{{1, 0}, {0, 1}}, []float32{0, 0})
	if err := os.WriteFile(filepath.Join(seed, "model.onnx"), m1, 0o644); err != nil {
		t.Fatal(err)
	}
	ci := adminclient.New(rs.URL, "tok-ci")
	defer ci.Close()
	if _, _, err := ci.Publish(ctx, "iris", seed, adminclient.PublishOptions{Author: "ci"}); err != nil {
		t.Fatalf("publish v1: %v", err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	specOut := filepath.Join(t.TempDir(), "spec.json")
	cfg := testConfig(t, exe)
	cfg.Command.Env = map[string]string{publisherHelperEnv: "1", "JOBS_TEST_SPEC_OUT": specOut}
	cfg.Command.Timeout = 40 * time.Second
	m, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "n1", Config: cfg, PublishURL: rs.URL + "/", JobTokenKey: key,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	id, created, err := m.Schedule(ctx, Incident{Model: "iris", Version: "1", Start: time.Now().Add(-time.Hour), Reasons: []string{"psi"}})
	if err != nil || !created {
		t.Fatalf("Schedule: %s %v %v", id, created, err)
	}
	row := waitTerminal(t, m, id, 60*time.Second)
	if row.State != StateSucceeded || row.ResultVersion != 2 {
		t.Fatalf("job %s, result v%d, error %q; want succeeded with v2", row.State, row.ResultVersion, row.Error)
	}
	v2, err := rs.reg.Version(ctx, "iris", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Job != id || v2.Source != registry.SourceOptimize {
		t.Errorf("v2 lineage: job %q source %q, want %q optimize", v2.Job, v2.Source, id)
	}

	var got Spec
	b, err := os.ReadFile(specOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.PublishURL != rs.URL || got.PublishToken == "" {
		t.Fatalf("spec publish_url %q token %q, want %q and a token", got.PublishURL, got.PublishToken, rs.URL)
	}
	// The token: the job's, for iris, expiring with the attempt's timeout.
	p, err := auth.CheckJobToken(key, got.PublishToken, time.Now())
	if err != nil || p.Model != "iris" || p.Job != id || p.Role != auth.Publisher {
		t.Fatalf("the job's token: %+v %v", p, err)
	}
	// Issued between start and now, so it expires between start+timeout
	// and now+timeout: valid just before the first, expired at the second.
	issuedBy := time.Now()
	if _, err := auth.CheckJobToken(key, got.PublishToken, start.Add(cfg.Command.Timeout-10*time.Millisecond)); err != nil {
		t.Errorf("the token just before start + the attempt's timeout: %v, want valid", err)
	}
	if _, err := auth.CheckJobToken(key, got.PublishToken, issuedBy.Add(cfg.Command.Timeout)); !errors.Is(err, auth.ErrExpired) {
		t.Errorf("the token after the attempt's timeout: %v, want ErrExpired", err)
	}

	// Never stored: not in jobs, not in job_attempts.
	for _, q := range []string{
		"SELECT count() FROM %s.jobs WHERE position(spec, ?) > 0 OR position(error, ?) > 0",
		"SELECT count() FROM %s.job_attempts WHERE position(output, ?) > 0 OR position(error, ?) > 0",
	} {
		if n := db.Count(t, fmt.Sprintf(q, db.Name), got.PublishToken, got.PublishToken); n != 0 {
			t.Errorf("%d rows carry the publish token: %s", n, q)
		}
	}
	if n := db.Count(t, fmt.Sprintf("SELECT count() FROM %s.jobs WHERE position(spec, 'publish_') > 0", db.Name)); n != 0 {
		t.Errorf("%d stored specs have publish fields", n)
	}

	// Refused for another model, and after expiry.
	other := adminclient.New(rs.URL, got.PublishToken)
	defer other.Close()
	var apiErr *adminclient.APIError
	if _, _, err := other.Publish(ctx, "wine", seed, adminclient.PublishOptions{Job: id}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("publish another model with the job's token: %v, want 403", err)
	}
	rs.setNow(issuedBy.Add(cfg.Command.Timeout))
	if _, _, err := other.Publish(ctx, "iris", seed, adminclient.PublishOptions{Job: id}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("publish with the expired token: %v, want 401", err)
	}
}

// TestPublishedResultWins: the registry's version with lineage.job is the
// result even when the command reported another; with none, the
// command's report stands.
func TestPublishedResultWins(t *testing.T) {
	db := migrated(t)
	rs := newRegistryServer(t, db, nil)
	ctx := context.Background()
	m, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "n1", Config: testConfig(t, "true"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, job := range []string{"", "job-aaa", ""} {
		mb, _ := testmodels.Linear("x", "y", [][]float32{{float32(i), 1}}, []float32{0, 0})
		if err := os.WriteFile(filepath.Join(dir, "model.onnx"), mb, 0o644); err != nil {
			t.Fatal(err)
		}
		ci := adminclient.New(rs.URL, "tok-ci")
		if _, _, err := ci.Publish(ctx, "iris", dir, adminclient.PublishOptions{Job: job}); err != nil {
			t.Fatal(err)
		}
		ci.Close()
	}
	for name, tc := range map[string]struct {
		job  string
		in   outcome
		want uint64
	}{
		"registry wins":          {"job-aaa", outcome{state: StateSucceeded, resultVersion: 7}, 2},
		"registry fills in":      {"job-aaa", outcome{state: StateSucceeded}, 2},
		"nothing published":      {"job-bbb", outcome{state: StateSucceeded, resultVersion: 7}, 7},
		"failure stays unfilled": {"job-aaa", outcome{state: StateFailed}, 0},
	} {
		if got := m.publishedResult(ctx, "iris", tc.job, tc.in); got.resultVersion != tc.want {
			t.Errorf("%s: result v%d, want v%d", name, got.resultVersion, tc.want)
		}
	}
}
