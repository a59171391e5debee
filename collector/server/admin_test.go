package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// adminToken returns the admin token that the collector with dataDir
// wrote on its first start.
func adminToken(t testing.TB, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, auth.AdminTokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the bootstrapped admin token: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, %v; want 0600", path, st.Mode().Perm(), err)
	}
	return strings.TrimSpace(string(b))
}

// call makes a request to the admin API at addr with token (none if "")
// and returns the status and body.
func call(t testing.TB, method, addr, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// jobsConfig runs jobs with a command that reports version 7.
func jobsConfig(t *testing.T) jobs.Config {
	jc := jobs.DefaultConfig()
	jc.Executor = jobs.ExecutorCommand
	jc.Command.Argv = []string{"/bin/sh", "-c", "echo retried; echo " + "DROVER_RESULT_VERSION=7"}
	jc.Command.Timeout = 30 * time.Second
	jc.Retries = 0
	jc.Settle, jc.Lease = time.Second, 10*time.Second // a slow claim is dropped until its lease lapses
	jc.ModelStore = t.TempDir()
	return jc
}

// fullCollector starts a collector with every route of the admin API that
// exists today: a cluster (one node) and jobs. It returns the collector,
// its admin server and its admin token.
func fullCollector(t *testing.T, db *testenv.DB, node string) (*collector, *admin.Server, string, Config) {
	t.Helper()
	cfg := testConfig(t, db.DSN, db.Name)
	cfg.Cluster = Cluster{NodeName: node, GossipAddr: "127.0.0.1:0"}
	cfg.Jobs = jobsConfig(t)
	cfg.Auth.RefreshInterval = 100 * time.Millisecond
	var adm *admin.Server
	c := runCollector(t, cfg, hooks{
		admin: func(s *admin.Server) { adm = s },
		ring: func(rc *ring.Config) {
			l := ring.LoopbackConfig(rc.NodeName)
			rc.ProbeInterval, rc.ProbeTimeout, rc.GossipInterval, rc.LeaveTimeout = l.ProbeInterval, l.ProbeTimeout, l.GossipInterval, l.LeaveTimeout
		},
	})
	t.Cleanup(c.stop)
	waitReady(t, c)
	return c, adm, adminToken(t, cfg.DataDir), cfg
}

// TestRouteTable lists the routes registered on a real collector's admin
// server and checks them against the route table: every registered route
// must have an entry (strictly: a route without one would be served to
// admins only, or, were Handle less strict, to anyone), and every entry
// must name a registered route.
func TestRouteTable(t *testing.T) {
	db := testenv.ClickHouse(t)
	_, adm, _, _ := fullCollector(t, db, "route-table")
	patterns := adm.Patterns()
	table := admin.Routes()
	if missing := table.Missing(patterns); len(missing) > 0 {
		t.Errorf("routes registered without an entry in the route table: %v", missing)
	}
	if unused := table.Unused(patterns); len(unused) > 0 {
		t.Errorf("route table entries that no route is registered for: %v (registered: %v)", unused, patterns)
	}
	for _, p := range []string{"GET /healthz", "GET /metrics", "GET /v1/cluster", "GET /v1/jobs", "POST /v1/jobs/{id}/cancel", "POST /v1/tokens",
		jobs.PatternOptimize} {
		if !slices.Contains(patterns, p) {
			t.Errorf("%s is not registered: %v", p, patterns)
		}
	}
	if a, _ := table.Access(jobs.PatternOptimize); !a.Permits(auth.Publisher) || a.Permits(auth.Reader) {
		t.Errorf("%s: access %s, want publisher", jobs.PatternOptimize, a)
	}
	// A job token may call only publish routes, each registered and open
	// to publishers.
	for _, p := range auth.JobTokenRoutes {
		if a, ok := table.Access(p); !ok || !slices.Contains(patterns, p) || !a.Permits(auth.Publisher) {
			t.Errorf("job token route %s: registered %v, access %s", p, slices.Contains(patterns, p), a)
		}
	}
	// Only the health checks and the signed webhook callback are open.
	for _, p := range patterns {
		a, _ := table.Access(p)
		open := p == "GET /healthz" || p == "GET /readyz" || p == "POST /v1/jobs/{id}/status"
		if a.IsPublic() != open {
			t.Errorf("%s: access %s", p, a)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Handle accepted a route without an entry in the route table")
		}
	}()
	adm.Handle("GET /v1/forgotten", http.NotFoundHandler())
}

// TestRoles: a sample of routes answers 401 without a token, 403 to a role
// the table does not allow and 200 to one it does; state changes and
// denials are in audit_log.
func TestRoles(t *testing.T) {
	db := testenv.ClickHouse(t)
	c, _, adminTok, _ := fullCollector(t, db, "roles")
	ctx := context.Background()
	cl := adminclient.New("http://"+c.adminAddr, adminTok)
	defer cl.Close()
	toks := map[string]string{"admin": adminTok}
	for _, role := range []string{"reader", "publisher", "agent"} {
		nt, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "the-" + role, Role: role})
		if err != nil {
			t.Fatalf("create a %s token: %v", role, err)
		}
		toks[role] = nt.Token
	}
	for _, tc := range []struct {
		method, path string
		role         string // "": no token; "bogus": an unknown token
		status       int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "bogus", 401},
		{"GET", "/metrics", "agent", 403},
		{"GET", "/metrics", "reader", 200},
		{"GET", "/metrics", "admin", 200},
		{"GET", "/v1/cluster", "", 401},
		{"GET", "/v1/cluster", "publisher", 403},
		{"GET", "/v1/cluster", "reader", 200},
		{"GET", "/v1/jobs", "", 401},
		{"GET", "/v1/jobs", "agent", 403},
		{"GET", "/v1/jobs", "reader", 200},
		{"GET", "/v1/jobs/job-nope", "reader", 404},
		{"GET", "/v1/jobs/job-nope", "publisher", 404}, // a publisher follows the job it started
		{"GET", "/v1/jobs/job-nope", "agent", 403},
		{"POST", "/v1/jobs/job-nope/retry", "", 401},
		{"POST", "/v1/jobs/job-nope/retry", "reader", 403},
		{"POST", "/v1/jobs/job-nope/retry", "admin", 404},
		{"POST", "/v1/jobs/job-nope/cancel", "publisher", 403},
		{"GET", "/v1/tokens", "", 401},
		{"GET", "/v1/tokens", "reader", 403},
		{"GET", "/v1/tokens", "admin", 200},
		{"DELETE", "/v1/tokens/the-agent", "reader", 403},
		{"POST", "/v1/models/nope/optimize", "", 401},
		{"POST", "/v1/models/nope/optimize", "reader", 403},
		{"POST", "/v1/models/nope/optimize", "agent", 403},
		{"POST", "/v1/models/nope/optimize", "publisher", 404}, // allowed; the model has no version
	} {
		tok := toks[tc.role]
		if tc.role == "bogus" {
			tok = "drover_bogus"
		}
		status, body := call(t, tc.method, c.adminAddr, tc.path, tok)
		if status != tc.status {
			t.Errorf("%s %s as %q: %d %s, want %d", tc.method, tc.path, tc.role, status, body, tc.status)
		}
		if status == 401 || status == 403 {
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s %s as %q: body %q, want {\"error\": ...}", tc.method, tc.path, tc.role, body)
			}
		}
	}
	// The token creations (ok) and the denied retry are audited; reads
	// are not.
	testenv.EventuallyNil(t, 30*time.Second, "the audit rows", func() error {
		created, err := testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+".audit_log WHERE action = 'POST /v1/tokens' AND result = 'ok' AND target IN ('the-reader', 'the-publisher', 'the-agent')")
		if err != nil {
			return err
		}
		denied, err := testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+".audit_log WHERE action = 'POST /v1/jobs/{id}/retry' AND result = 'denied' AND token_name = 'the-reader'")
		if err != nil {
			return err
		}
		return unless(created == 3 && denied == 1, fmt.Sprintf("%d token creations, %d denied retries", created, denied))
	})
	if n := db.Count(t, "SELECT count() FROM "+db.Name+".audit_log WHERE action = 'GET /v1/jobs' AND result != 'denied'"); n != 0 {
		t.Errorf("%d audit rows of accepted reads, want 0", n)
	}
}

// TestTokenWorksAcrossCollectors: a token created with `droverctl token
// create` on collector A is accepted by collector B of the same cluster.
func TestTokenWorksAcrossCollectors(t *testing.T) {
	db := testenv.ClickHouse(t)
	logs := &testenv.Buffer{}
	blobs := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "blobs")) // one store the whole cluster reaches
	key := gossipKeyFile(t)                                                    // one key for the cluster
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, KeyFile: key}
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = blobs, true
		cfg.Auth.RefreshInterval = 100 * time.Millisecond
		return cfg
	}
	fast := hooks{ring: func(rc *ring.Config) {
		l := ring.LoopbackConfig(rc.NodeName)
		rc.ProbeInterval, rc.ProbeTimeout, rc.GossipInterval, rc.LeaveTimeout = l.ProbeInterval, l.ProbeTimeout, l.GossipInterval, l.LeaveTimeout
	}}
	a := startNode(t, nodeConfig("tok-a"), fast, logs)
	v, err := a.view()
	if err != nil || len(v.Members) != 1 {
		t.Fatalf("view of a: %v, %v", v, err)
	}
	b := startNode(t, nodeConfig("tok-b", v.Members[0].Addr), fast, logs)
	if b.token != "" {
		t.Errorf("b bootstrapped tokens of its own though a's were in ClickHouse")
	}

	var out, errOut bytes.Buffer
	app := &cli.App{Opts: cli.Options{Collector: "http://" + a.admin, Token: a.token, Output: cli.OutputJSON}, Out: &out, Err: &errOut,
		Getenv: func(string) string { return "" }}
	defer app.Close()
	if err := app.TokenCreate(context.Background(), "grafana", "reader"); err != nil {
		t.Fatalf("droverctl token create on a: %v (%s)", err, errOut.String())
	}
	var created adminclient.NewToken
	if err := json.Unmarshal(out.Bytes(), &created); err != nil || created.Name != "grafana" || created.Role != "reader" || !strings.HasPrefix(created.Token, auth.TokenPrefix) {
		t.Fatalf("token create printed %s (%v)", out.String(), err)
	}
	testenv.EventuallyNil(t, 30*time.Second, "b to accept the token made on a", func() error {
		var out bytes.Buffer
		app := &cli.App{Opts: cli.Options{Collector: "http://" + b.admin, Token: created.Token, Output: cli.OutputJSON}, Out: &out, Err: io.Discard,
			Getenv: func(string) string { return "" }}
		defer app.Close()
		if err := app.Jobs(context.Background(), adminclient.JobFilter{}); err != nil {
			return err
		}
		return unless(strings.TrimSpace(out.String()) == "[]", out.String())
	})
	// A reader token is a reader on b too.
	if status, _ := call(t, "GET", b.admin, "/v1/tokens", created.Token); status != 403 {
		t.Errorf("the reader token listing tokens on b: %d, want 403", status)
	}
	// Revoked on b, it is refused by a.
	if status, body := call(t, "DELETE", b.admin, "/v1/tokens/grafana", a.token); status != 200 {
		t.Fatalf("revoke on b: %d %s", status, body)
	}
	testenv.EventuallyNil(t, 30*time.Second, "a to refuse the revoked token", func() error {
		status, _ := call(t, "GET", a.admin, "/v1/jobs", created.Token)
		return unless(status == 401, fmt.Sprintf("status %d", status))
	})
}

// The jobs of TestJobsCommands. doneJob is run again (retried), so its id
// is the one its model, version and incident start give (the jobs manager
// runs nothing else).
var (
	doneJob    = jobs.JobID("housing", "1", time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	runningJob = "job-3f2a9c0d1e2b4a5f6c7d8e9f"
)

// seedJobs writes the rows of two jobs: doneJob succeeded at its second
// attempt (the first timed out) and its spec names a DSN with a password;
// runningJob runs on another collector whose lease lasts an hour.
func seedJobs(t *testing.T, db *testenv.DB) {
	t.Helper()
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { v := base.Add(time.Duration(m) * time.Minute); return &v }
	spec, _ := json.Marshal(jobs.Spec{ID: doneJob, Model: "housing", Version: "1", IncidentStart: base, Reasons: []string{"mse 0.41 > 0.30"},
		ModelStore: "/var/lib/drover/models", ClickHouseDSN: "clickhouse://drover:hunter2@127.0.0.1:9000/drover",
		DataWindow: jobs.Window{Start: base.Add(-7 * 24 * time.Hour), End: *at(1)}, Attempt: 1})
	done := store.JobRow{ID: doneJob, Model: "housing", ModelVersion: "1", IncidentStart: base, Spec: string(spec), Created: *at(1), LeaseOwner: "collector-b"}
	row := func(v uint64, running bool, f func(*store.JobRow)) store.JobRow {
		r := done
		r.RowVersion = v<<32 | 1<<31
		if running {
			r.RowVersion = v<<32 | 5
		}
		f(&r)
		return r
	}
	// The job's rows as the jobs manager writes them; a merge keeps the
	// last one only, and job_attempts keeps the attempts.
	rows := []store.JobRow{
		row(1, false, func(r *store.JobRow) { r.State, r.Attempt, r.Updated = jobs.StateQueued, 1, *at(1) }),
		row(5, false, func(r *store.JobRow) {
			r.State, r.Attempt, r.Updated, r.Started, r.Finished = jobs.StateSucceeded, 2, *at(80), at(40), at(80)
			r.ResultVersion, r.Error = 2, "--- stdout ---\nfold 5/5 mse 0.27\npublished housing 2\n"
		}),
	}
	attempts := []string{
		"('" + doneJob + "', 1, 'collector-b', '2026-11-30 12:01:00', '2026-11-30 12:31:00', 'timed_out', -1, 'timed out after 30m0s', '--- stderr ---\\nslow\\n')",
		"('" + doneJob + "', 2, 'collector-b', '2026-11-30 12:40:00', '2026-11-30 13:20:00', 'succeeded', 0, '', '--- stdout ---\\nfold 5/5 mse 0.27\\npublished housing 2\\n')",
	}
	if err := db.Conn.Exec(context.Background(), "INSERT INTO "+db.Name+".job_attempts (id, attempt, node, started, finished, state, exit_code, error, output) VALUES "+
		strings.Join(attempts, ", ")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	hour := now.Add(time.Hour)
	rows = append(rows, store.JobRow{ID: runningJob, Model: "iris", ModelVersion: "3", IncidentStart: now.Add(-5 * time.Minute),
		State: jobs.StateRunning, Attempt: 1, LeaseOwner: "elsewhere", LeaseUntil: &hour, Created: now.Add(-4 * time.Minute),
		Updated: now, Started: &now, Spec: "{}", RowVersion: 2<<32 | 5})
	st := store.New(db.Conn, db.Name, nil)
	if err := st.Insert(context.Background(), &store.Batch{Jobs: rows}, "seed-jobs"); err != nil {
		t.Fatal(err)
	}
}

// ctl runs a droverctl command in-process with -o json against addr and
// returns its output and error.
func ctl(addr, token string, cmd func(*cli.App) error) (map[string]any, []any, error) {
	var out bytes.Buffer
	app := &cli.App{Opts: cli.Options{Collector: "http://" + addr, Token: token, Output: cli.OutputJSON}, Out: &out, Err: io.Discard,
		Getenv: func(string) string { return "" }}
	defer app.Close()
	if err := cmd(app); err != nil {
		return nil, nil, err
	}
	var v any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		return nil, nil, fmt.Errorf("output %q: %w", out.String(), err)
	}
	obj, _ := v.(map[string]any)
	arr, _ := v.([]any)
	return obj, arr, nil
}

// TestJobsCommands: droverctl jobs, jobs show, jobs retry and jobs cancel
// against a real collector, in JSON form.
func TestJobsCommands(t *testing.T) {
	db := testenv.ClickHouse(t)
	c, _, tok, _ := fullCollector(t, db, "jobs-node")
	seedJobs(t, db)
	ctx := context.Background()

	_, list, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.Jobs(ctx, adminclient.JobFilter{}) })
	if err != nil || len(list) != 2 {
		t.Fatalf("droverctl jobs: %v %v", list, err)
	}
	first := list[0].(map[string]any) // newest first
	if first["id"] != runningJob || first["state"] != "running" || first["model_version"] != 3.0 || first["lease_owner"] != "elsewhere" ||
		first["exit_code"] != nil || first["spec"] != nil || first["attempts"] != nil {
		t.Errorf("first job %v", first)
	}
	second := list[1].(map[string]any)
	for k, want := range map[string]any{"id": doneJob, "model": "housing", "model_version": 1.0, "state": "succeeded", "attempt": 2.0,
		"lease_owner": nil, "lease_until": nil, "created": "2026-11-30T12:01:00Z", "started": "2026-11-30T12:40:00Z",
		"finished": "2026-11-30T13:20:00Z", "exit_code": 0.0, "result_version": 2.0, "error": nil, "output_tail": nil, "report": nil} {
		if got, ok := second[k]; !ok || got != want {
			t.Errorf("%s of %s: %v (present %v), want %v", k, doneJob, got, ok, want)
		}
	}
	_, list, err = ctl(c.adminAddr, tok, func(a *cli.App) error { return a.Jobs(ctx, adminclient.JobFilter{State: "succeeded"}) })
	if err != nil || len(list) != 1 || list[0].(map[string]any)["id"] != doneJob {
		t.Errorf("droverctl jobs --state succeeded: %v %v", list, err)
	}
	_, list, err = ctl(c.adminAddr, tok, func(a *cli.App) error { return a.Jobs(ctx, adminclient.JobFilter{Model: "iris"}) })
	if err != nil || len(list) != 1 || list[0].(map[string]any)["id"] != runningJob {
		t.Errorf("droverctl jobs --model iris: %v %v", list, err)
	}

	show, _, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobShow(ctx, doneJob) })
	if err != nil {
		t.Fatalf("droverctl jobs show: %v", err)
	}
	spec, _ := show["spec"].(map[string]any)
	if spec["clickhouse_dsn"] != "clickhouse://drover:REDACTED@127.0.0.1:9000/drover" || spec["model"] != "housing" {
		t.Errorf("spec %v", show["spec"])
	}
	if raw, _ := json.Marshal(show); bytes.Contains(raw, []byte("hunter2")) {
		t.Errorf("jobs show prints the password: %s", raw)
	}
	attempts, _ := json.Marshal(show["attempts"])
	wantAttempts := `[{"attempt":1,"error":"timed out after 30m0s","exit_code":-1,"finished":"2026-11-30T12:31:00Z","node":"collector-b","started":"2026-11-30T12:01:00Z"},` +
		`{"attempt":2,"error":null,"exit_code":0,"finished":"2026-11-30T13:20:00Z","node":"collector-b","started":"2026-11-30T12:40:00Z"}]`
	if string(attempts) != wantAttempts {
		t.Errorf("attempts\n%s\nwant\n%s", attempts, wantAttempts)
	}
	if show["output_tail"] != "--- stdout ---\nfold 5/5 mse 0.27\npublished housing 2\n" || show["report"] != nil || show["result_version"] != 2.0 {
		t.Errorf("output_tail %q, report %v, result_version %v", show["output_tail"], show["report"], show["result_version"])
	}
	if _, _, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobShow(ctx, "job-nope") }); cli.ExitCode(err) != 3 {
		t.Errorf("jobs show of an unknown job: %v (exit %d), want exit 3", err, cli.ExitCode(err))
	}

	// Retry of a running job: 409 with the reason, exit 5.
	_, _, err = ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobRetry(ctx, runningJob) })
	var ae *adminclient.APIError
	if cli.ExitCode(err) != 5 || !errorsAs(err, &ae) || ae.Status != 409 || !strings.Contains(err.Error(), "is running; cancel it first") {
		t.Errorf("jobs retry of a running job: %v (exit %d), want 409 saying it is running", err, cli.ExitCode(err))
	}
	// Cancel it; a second cancel is refused.
	got, _, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobCancel(ctx, runningJob) })
	if err != nil || got["state"] != "cancelled" || got["lease_owner"] != nil || got["exit_code"] != -1.0 || !strings.HasPrefix(fmt.Sprint(got["error"]), "cancelled by admin-") {
		t.Errorf("jobs cancel: %v %v", got, err)
	}
	if _, _, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobCancel(ctx, runningJob) }); cli.ExitCode(err) != 5 {
		t.Errorf("second cancel: %v, want exit 5", err)
	}
	// Retry the succeeded job: queued for attempt 3, and this collector
	// (the owner of every model) runs it.
	got, _, err = ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobRetry(ctx, doneJob) })
	if err != nil || got["state"] != "queued" || got["attempt"] != 3.0 || got["lease_owner"] != "jobs-node" || got["started"] != nil ||
		got["finished"] != nil || got["exit_code"] != nil || got["result_version"] != nil {
		t.Errorf("jobs retry: %v %v", got, err)
	}
	testenv.EventuallyNil(t, time.Minute, "the retried job to succeed", func() error {
		show, _, err := ctl(c.adminAddr, tok, func(a *cli.App) error { return a.JobShow(ctx, doneJob) })
		if err != nil {
			return err
		}
		if show["state"] != "succeeded" || show["attempt"] != 3.0 || show["result_version"] != 7.0 {
			return fmt.Errorf("state %v attempt %v result %v", show["state"], show["attempt"], show["result_version"])
		}
		if n := len(show["attempts"].([]any)); n != 3 {
			return fmt.Errorf("%d attempts", n)
		}
		return unless(strings.Contains(fmt.Sprint(show["output_tail"]), "retried"), fmt.Sprint(show["output_tail"]))
	})
	// Both changes are audited with the job as target.
	testenv.EventuallyNil(t, 30*time.Second, "the audit rows of retry and cancel", func() error {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+".audit_log WHERE result = 'ok' AND "+
			"((action = 'POST /v1/jobs/{id}/cancel' AND target = '"+runningJob+"') OR (action = 'POST /v1/jobs/{id}/retry' AND target = '"+doneJob+"'))")
		if err != nil {
			return err
		}
		return unless(n == 2, fmt.Sprintf("%d rows", n))
	})
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// TestReloadReadsTokensFile: a reload request (SIGHUP in drover-collector)
// re-reads auth.tokens_file at once, long before auth.refresh_interval.
func TestReloadReadsTokensFile(t *testing.T) {
	db := testenv.ClickHouse(t)
	first, firstSum, _ := auth.NewToken()
	second, secondSum, _ := auth.NewToken()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("- name: first\n  role: reader\n  sha256: " + firstSum + "\n")
	cfg := testConfig(t, db.DSN, db.Name)
	cfg.Auth.TokensFile = path
	cfg.Auth.RefreshInterval = time.Hour
	reload := make(chan struct{})
	var opt hooks
	ReloadOn(reload)(&opt)
	c := runCollector(t, cfg, opt)
	t.Cleanup(c.stop)
	waitReady(t, c)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, auth.AdminTokenFile)); err == nil {
		t.Error("tokens were bootstrapped though tokens_file lists one")
	}
	if status, body := call(t, "GET", c.adminAddr, "/v1/jobs", first); status != 200 {
		t.Fatalf("the tokens_file token: %d %s", status, body)
	}
	write("- name: first\n  role: reader\n  sha256: " + firstSum + "\n- name: second\n  role: reader\n  sha256: " + secondSum + "\n")
	if status, _ := call(t, "GET", c.adminAddr, "/v1/jobs", second); status != 401 {
		t.Fatalf("a token added to tokens_file before the reload: %d, want 401", status)
	}
	reload <- struct{}{}
	testenv.EventuallyNil(t, 30*time.Second, "the token added to tokens_file", func() error {
		status, _ := call(t, "GET", c.adminAddr, "/v1/jobs", second)
		return unless(status == 200, fmt.Sprintf("status %d", status))
	})
}
