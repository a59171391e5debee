package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// withClickHouse runs the tests with one ClickHouse engine for the binary
// (the fleet integration test), inside goleak.VerifyTestMain.
type withClickHouse struct{ m *testing.M }

func (w withClickHouse) Run() int { return testenv.RunWithClickHouse(w.m) }

func TestMain(m *testing.M) {
	if os.Getenv(jobHelperEnv) != "" {
		os.Exit(jobHelper()) // started as a job's command (optimize_integration_test.go)
	}
	goleak.VerifyTestMain(withClickHouse{m})
}

// hangUp as a route's status closes the connection without an answer.
const hangUp = -1

// route is a fixed answer of the fake admin API.
type route struct {
	status  int
	fixture string // testdata/api/<fixture>.json; "" for body
	body    string
}

// fakeAPI is an admin API that answers fixed JSON and records requests.
type fakeAPI struct {
	t      *testing.T
	routes map[string]route // "METHOD /path" (query ignored)

	mu sync.Mutex
	// seq are answers given in turn before routes: each request takes the
	// first, the last one stays.
	seq    map[string][]route
	reqs   []*http.Request
	bodies []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	return &fakeAPI{t: t, routes: map[string]route{
		"GET /healthz":                                      {status: 200, body: "ok\n"},
		"GET /readyz":                                       {status: 200, body: "ready\n"},
		"GET /v1/cluster":                                   {status: 200, fixture: "cluster"},
		"GET /v1/models":                                    {status: 200, fixture: "models"},
		"GET /v1/models/iris/versions":                      {status: 200, fixture: "versions"},
		"GET /v1/models/iris/diff":                          {status: 200, fixture: "diff"},
		"GET /v1/models/iris/drift":                         {status: 200, fixture: "drift"},
		"GET /v1/incidents":                                 {status: 200, fixture: "incidents"},
		"GET /v1/jobs":                                      {status: 200, fixture: "jobs"},
		"GET /v1/jobs/job-0a1b2c3d4e5f60718293a4b5":         {status: 200, fixture: "job"},
		"POST /v1/jobs/job-0a1b2c3d4e5f60718293a4b5/retry":  {status: 200, fixture: "job-retry"},
		"POST /v1/jobs/job-3f2a9c0d1e2b4a5f6c7d8e9f/cancel": {status: 200, fixture: "job-cancel"},
		"GET /v1/models/iris/history":                       {status: 200, fixture: "history"},
		"POST /v1/tokens":                                   {status: 201, fixture: "token-create"},
		"GET /v1/tokens":                                    {status: 200, fixture: "tokens"},
		"DELETE /v1/tokens/ci":                              {status: 200, fixture: "token-revoke"},
		"GET /v1/models/iris/versions/3":                    {status: 200, fixture: "version"},
		"DELETE /v1/models/iris/versions/2":                 {status: 200, fixture: "version-delete"},
		"POST /v1/models/iris/commit":                       {status: 201, fixture: "publish"},
		"POST /v1/models/iris/merge":                        {status: 201, fixture: "merge"},
		"DELETE /v1/models/iris/versions/3":                 {status: 409, body: `{"error":"delete iris v3: in use: serving on serve-1, serve-2"}`},
		"GET /v1/models/nope/drift":                         {status: 404, body: `{"error":"model \"nope\" not found"}`},
		"POST /v1/jobs/job-3f2a9c0d1e2b4a5f6c7d8e9f/retry":  {status: 409, body: `{"error":"job job-3f2a9c0d1e2b4a5f6c7d8e9f is running; cancel it first"}`},
		"GET /v1/agents":                                    {status: 200, fixture: "agents"},
		"GET /v1/models/iris/status":                        {status: 200, fixture: "fleet-status"},
		"POST /v1/models/iris/rollout":                      {status: 200, fixture: "desired"},
		"POST /v1/models/iris/rollback":                     {status: 200, fixture: "desired"},
		"POST /v1/models/iris/pin":                          {status: 200, fixture: "desired"},
		"POST /v1/models/iris/unpin":                        {status: 200, fixture: "desired"},
		"POST /v1/models/iris/canary":                       {status: 200, fixture: "desired"},
		"POST /v1/models/iris/promote":                      {status: 200, fixture: "desired"},
		"POST /v1/models/iris/abort":                        {status: 200, fixture: "desired"},
		"POST /v1/models/iris/shadow":                       {status: 200, fixture: "desired"},
		"POST /v1/models/wine/promote":                      {status: 409, body: `{"error":"promote wine: no canary"}`},
		"POST /v1/models/nope/rollout":                      {status: 404, body: `{"error":"model \"nope\" not found"}`},
	}, seq: map[string][]route{}}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "api", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	f.bodies = append(f.bodies, string(b))
	key := r.Method + " " + r.URL.Path
	var (
		seqRoute route
		inSeq    bool
	)
	if q := f.seq[key]; len(q) > 0 {
		seqRoute, inSeq = q[0], true
		if len(q) > 1 {
			f.seq[key] = q[1:]
		}
	}
	f.mu.Unlock()
	if d, ok := strings.CutPrefix(r.URL.Path, "/v1/blobs/sha256/"); ok && r.Method == http.MethodPut {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sha256":%q,"size":%d}`, d, len(b))
		return
	}
	rt, ok := f.routes[key]
	if inSeq {
		rt, ok = seqRoute, true
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"no route ` + r.Method + ` ` + r.URL.Path + `"}`))
		return
	}
	if rt.status == hangUp {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	body := []byte(rt.body)
	if rt.fixture != "" {
		body = fixture(f.t, rt.fixture)
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rt.status)
	w.Write(body)
}

func (f *fakeAPI) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) lastBody() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[len(f.bodies)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// run runs droverctl in-process with env as its whole environment.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func startAPI(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	api := newFakeAPI(t)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv.URL
}

// deadURL returns a URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// commands are every command that renders an answer, with the fixture it
// renders.
var commands = []struct {
	name    string
	args    []string
	fixture string
}{
	{"cluster", []string{"cluster"}, "cluster"},
	{"models", []string{"models"}, "models"},
	{"versions", []string{"versions", "iris", "--since", "1h"}, "versions"},
	{"versions-diff", []string{"versions", "diff", "iris", "3", "4"}, "diff"},
	{"drift", []string{"drift", "iris"}, "drift"},
	{"incidents", []string{"incidents", "--model", "iris"}, "incidents"},
	{"jobs", []string{"jobs", "--model", "iris", "--state", "running"}, "jobs"},
	{"jobs-show", []string{"jobs", "show", "job-0a1b2c3d4e5f60718293a4b5"}, "job"},
	{"jobs-retry", []string{"jobs", "retry", "job-0a1b2c3d4e5f60718293a4b5"}, "job-retry"},
	{"jobs-cancel", []string{"jobs", "cancel", "job-3f2a9c0d1e2b4a5f6c7d8e9f"}, "job-cancel"},
	{"history", []string{"history", "iris"}, "history"},
	{"token-create", []string{"token", "create", "--role", "publisher", "--name", "ci"}, "token-create"},
	{"token-list", []string{"token", "list"}, "tokens"},
	{"token-revoke", []string{"token", "revoke", "ci"}, "token-revoke"},
	{"versions-show", []string{"versions", "show", "iris", "3"}, "version"},
	{"versions-delete", []string{"versions", "delete", "iris", "2"}, "version-delete"},
	{"publish", []string{"publish", "iris", "testdata/model", "--message", "retrain", "--author", "ana", "--parent", "4"}, "publish"},
	{"merge", []string{"merge", "iris", "3", "4", "--weights", "0.7,0.3", "--message", "ensemble"}, "merge"},
	{"agents", []string{"agents"}, "agents"},
	{"status-model", []string{"status", "iris"}, "fleet-status"},
	{"rollout", []string{"rollout", "iris", "3", "--canary", "20", "--auto", "--selector", "zone=eu-1", "--reason", "nightly retrain"}, "desired"},
}

func TestTablesGolden(t *testing.T) {
	_, url := startAPI(t)
	for _, tc := range commands {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(t, nil, append([]string{"--collector", url}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("table differs from %s (-update rewrites it)\ngot:\n%s\nwant:\n%s", golden, out, want)
			}
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colour codes in output to a non-terminal:\n%q", out)
			}
		})
	}
}

// TestJSONAndYAMLPassThrough: -o json prints the API's bytes (indented),
// -o yaml the same document; fields the client's structs do not know
// survive both.
func TestJSONAndYAMLPassThrough(t *testing.T) {
	_, url := startAPI(t)
	for _, tc := range commands {
		t.Run(tc.name, func(t *testing.T) {
			raw := fixture(t, tc.fixture)
			var want bytes.Buffer
			if err := json.Indent(&want, bytes.TrimSpace(raw), "", "  "); err != nil {
				t.Fatal(err)
			}
			want.WriteByte('\n')
			code, out, stderr := run(t, nil, append([]string{"--collector", url, "-o", "json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("json: exit %d, stderr:\n%s", code, stderr)
			}
			if out != want.String() {
				t.Errorf("-o json is not the API's JSON\ngot:\n%s\nwant:\n%s", out, want.String())
			}

			code, out, stderr = run(t, nil, append([]string{"--collector", url, "--output", "yaml"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("yaml: exit %d, stderr:\n%s", code, stderr)
			}
			var fromYAML, fromJSON any
			if err := yaml.Unmarshal([]byte(out), &fromYAML); err != nil {
				t.Fatalf("-o yaml is not YAML: %v\n%s", err, out)
			}
			if err := json.Unmarshal(raw, &fromJSON); err != nil {
				t.Fatal(err)
			}
			// Compare as JSON documents: YAML decodes 3 as int, JSON as
			// float64.
			a, err := json.Marshal(fromYAML)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(fromJSON)
			if !bytes.Equal(a, b) {
				t.Errorf("-o yaml is not the API's document\ngot:  %s\nwant: %s\nyaml:\n%s", a, b, out)
			}
		})
	}
	t.Run("unknown field kept", func(t *testing.T) {
		_, out, _ := run(t, nil, "--collector", url, "-o", "json", "models")
		if !strings.Contains(out, `"future_field": {`) || !strings.Contains(out, `"kept": true`) {
			t.Errorf("future_field lost in -o json:\n%s", out)
		}
		_, out, _ = run(t, nil, "--collector", url, "-o", "yaml", "models")
		if !strings.Contains(out, "future_field:\n") || !strings.Contains(out, "kept: true") {
			t.Errorf("future_field lost in -o yaml:\n%s", out)
		}
		if !strings.Contains(out, "requests_per_second: null") {
			t.Errorf("null lost in -o yaml:\n%s", out)
		}
	})
}

// TestRequests checks what the commands send: paths, queries, bodies.
func TestRequests(t *testing.T) {
	api, url := startAPI(t)
	cases := []struct {
		args            []string
		method, path    string
		query, wantBody string
	}{
		{[]string{"versions", "iris", "--since", "1h"}, "GET", "/v1/models/iris/versions", "since=1h0m0s", ""},
		{[]string{"versions", "diff", "iris", "3", "4"}, "GET", "/v1/models/iris/diff", "from=3&to=4", ""},
		{[]string{"incidents", "--model", "iris"}, "GET", "/v1/incidents", "model=iris", ""},
		{[]string{"jobs", "--model", "iris", "--state", "running"}, "GET", "/v1/jobs", "model=iris&state=running", ""},
		{[]string{"token", "create", "--role", "publisher", "--name", "ci"}, "POST", "/v1/tokens", "", `{"name":"ci","role":"publisher"}`},
		{[]string{"token", "revoke", "ci"}, "DELETE", "/v1/tokens/ci", "", ""},
		{[]string{"versions", "show", "iris", "3"}, "GET", "/v1/models/iris/versions/3", "", ""},
		{[]string{"versions", "delete", "iris", "2"}, "DELETE", "/v1/models/iris/versions/2", "", ""},
		{[]string{"merge", "iris", "3", "4", "--weights", "0.7,0.3", "--message", "ensemble"}, "POST", "/v1/models/iris/merge", "", `{"versions":[3,4],"weights":[0.7,0.3],"message":"ensemble"}`},
		{[]string{"agents"}, "GET", "/v1/agents", "", ""},
		{[]string{"status", "iris"}, "GET", "/v1/models/iris/status", "", ""},
		{[]string{"rollout", "iris", "3"}, "POST", "/v1/models/iris/rollout", "", `{"version":3,"reason":""}`},
		{[]string{"rollout", "iris", "3", "--reason", "nightly retrain"}, "POST", "/v1/models/iris/rollout", "", `{"version":3,"reason":"nightly retrain"}`},
		{[]string{"rollout", "iris", "3", "--canary", "20"}, "POST", "/v1/models/iris/rollout", "", `{"version":3,"canary":{"share":20,"auto":false},"reason":""}`},
		{[]string{"rollout", "iris", "3", "--canary", "0", "--auto", "--selector", "zone=eu-1,tier=gold", "--selector", "gpu=yes", "--reason", "r"}, "POST", "/v1/models/iris/rollout", "",
			`{"version":3,"canary":{"share":0,"auto":true},"selector":{"gpu":"yes","tier":"gold","zone":"eu-1"},"reason":"r"}`},
		{[]string{"rollout", "iris", "3", "--canary", "10", "--auto", "--analysis-duration", "1h30m", "--min-samples", "2000", "--max-regression", "0.05"}, "POST", "/v1/models/iris/rollout", "",
			`{"version":3,"canary":{"share":10,"auto":true,"analysis":{"duration":"1h30m","min_samples":2000,"max_regression":0.05}},"reason":""}`},
		{[]string{"rollout", "iris", "3", "--canary", "10", "--auto", "--min-samples", "50"}, "POST", "/v1/models/iris/rollout", "",
			`{"version":3,"canary":{"share":10,"auto":true,"analysis":{"min_samples":50}},"reason":""}`},
		{[]string{"rollback", "iris"}, "POST", "/v1/models/iris/rollback", "", `{"reason":""}`},
		{[]string{"rollback", "iris", "1", "--reason", "error rate"}, "POST", "/v1/models/iris/rollback", "", `{"version":1,"reason":"error rate"}`},
		{[]string{"pin", "iris", "2", "--reason", "audit"}, "POST", "/v1/models/iris/pin", "", `{"version":2,"reason":"audit"}`},
		{[]string{"unpin", "iris", "--reason", "audit done"}, "POST", "/v1/models/iris/unpin", "", `{"reason":"audit done"}`},
		{[]string{"canary", "iris", "3", "100", "--reason", "all in"}, "POST", "/v1/models/iris/canary", "", `{"version":3,"share":100,"reason":"all in"}`},
		{[]string{"promote", "iris"}, "POST", "/v1/models/iris/promote", "", `{"reason":""}`},
		{[]string{"abort", "iris", "--reason", "p99 up"}, "POST", "/v1/models/iris/abort", "", `{"reason":"p99 up"}`},
		{[]string{"shadow", "iris", "4", "10"}, "POST", "/v1/models/iris/shadow", "", `{"version":4,"share":10,"reason":""}`},
		{[]string{"shadow", "iris", "4", "0", "--reason", "off"}, "POST", "/v1/models/iris/shadow", "", `{"version":4,"share":0,"reason":"off"}`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if code, _, stderr := run(t, nil, append([]string{"--collector", url}, tc.args...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := api.last()
			if r.Method != tc.method || r.URL.Path != tc.path || r.URL.RawQuery != tc.query {
				t.Errorf("sent %s %s?%s, want %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery, tc.method, tc.path, tc.query)
			}
			if got := api.lastBody(); got != tc.wantBody {
				t.Errorf("sent body %q, want %q", got, tc.wantBody)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	api, url := startAPI(t)
	api.routes["GET /v1/cluster"] = route{status: 401, body: `{"error":"no token"}`}
	api.routes["GET /v1/tokens"] = route{status: 403, body: `{"error":"token \"ci\" (publisher) may not list tokens"}`}
	api.routes["GET /v1/jobs/job-x"] = route{status: 404, body: "job job-x: unknown job\n"} // http.Error's text, as today's jobs handler sends
	dead1, dead2 := deadURL(t), deadURL(t)

	cases := []struct {
		name      string
		args      []string
		code      int
		stderrHas []string
	}{
		{"401", []string{"--collector", url, "cluster"}, 4, []string{"denied: no token", "401"}},
		{"403", []string{"--collector", url, "token", "list"}, 4, []string{`denied: token "ci" (publisher) may not list tokens`, "403"}},
		{"404 json", []string{"--collector", url, "drift", "nope"}, 3, []string{`not found: model "nope" not found`}},
		{"404 text", []string{"--collector", url, "jobs", "show", "job-x"}, 3, []string{"not found: job job-x: unknown job"}},
		{"409 with reason", []string{"--collector", url, "jobs", "retry", "job-3f2a9c0d1e2b4a5f6c7d8e9f"}, 5, []string{"refused: job job-3f2a9c0d1e2b4a5f6c7d8e9f is running; cancel it first"}},
		{"unreachable lists every URL", []string{"--collector", dead1 + "," + dead2, "models"}, 1, []string{"collector unreachable", dead1 + ": ", dead2 + ": ", "connection refused"}},
		{"failover to the second URL", []string{"--collector", dead1 + "," + url, "models"}, 0, nil},
		{"usage: unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"usage: unknown flag", []string{"models", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"usage: missing argument", []string{"drift"}, 2, []string{"want 1 argument"}},
		{"usage: bad output", []string{"-o", "xml", "models"}, 2, []string{`-o "xml"`}},
		{"usage: bad version", []string{"--collector", url, "versions", "diff", "iris", "3", "x"}, 2, []string{`version "x"`}},
		{"usage: bad role", []string{"--collector", url, "token", "create", "--role", "root", "--name", "x"}, 2, []string{`--role "root"`}},
		{"usage: token create without name", []string{"--collector", url, "token", "create", "--role", "admin"}, 2, []string{"needs --name and --role"}},
		{"usage: status MODEL MODEL", []string{"--collector", url, "status", "iris", "wine"}, 2, []string{"want at most 1 argument"}},
		{"usage: canary share over 100", []string{"--collector", url, "canary", "iris", "3", "101"}, 2, []string{`share "101": want a percentage`}},
		{"usage: canary share negative", []string{"--collector", url, "canary", "iris", "3", "--", "-1"}, 2, []string{`share "-1"`}},
		{"usage: shadow share not a number", []string{"--collector", url, "shadow", "iris", "3", "ten"}, 2, []string{`share "ten"`}},
		{"usage: rollout --canary over 100", []string{"--collector", url, "rollout", "iris", "3", "--canary", "150"}, 2, []string{`--canary "150"`}},
		{"usage: rollout --auto without --canary", []string{"--collector", url, "rollout", "iris", "3", "--auto"}, 2, []string{"--auto needs --canary"}},
		{"usage: analysis without --auto", []string{"--collector", url, "rollout", "iris", "3", "--canary", "10", "--min-samples", "5"}, 2, []string{"go with --canary PCT --auto"}},
		{"usage: max regression 1", []string{"--collector", url, "rollout", "iris", "3", "--canary", "10", "--auto", "--max-regression", "1"}, 2, []string{"--max-regression 1: want a number in [0, 1)"}},
		{"usage: negative analysis duration", []string{"--collector", url, "rollout", "iris", "3", "--canary", "10", "--auto", "--analysis-duration", "-1m"}, 2, []string{"--analysis-duration -1m0s"}},
		{"usage: selector without =", []string{"--collector", url, "rollout", "iris", "3", "--selector", "zone"}, 2, []string{`--selector "zone": want label=value`}},
		{"usage: selector empty key", []string{"--collector", url, "rollout", "iris", "3", "--selector", "=eu-1"}, 2, []string{`--selector "=eu-1"`}},
		{"usage: selector bad value", []string{"--collector", url, "rollout", "iris", "3", "--selector", "zone=eu/1"}, 2, []string{`--selector "zone=eu/1"`}},
		{"usage: selector twice", []string{"--collector", url, "rollout", "iris", "3", "--selector", "zone=a,zone=b"}, 2, []string{`label "zone" given twice`}},
		{"usage: rollout bad version", []string{"--collector", url, "rollout", "iris", "v3"}, 2, []string{`version "v3"`}},
		{"usage: rollout without version", []string{"--collector", url, "rollout", "iris"}, 2, []string{"want 2 argument"}},
		{"usage: rollback version 0", []string{"--collector", url, "rollback", "iris", "0"}, 2, []string{`version "0"`}},
		{"usage: rollback too many", []string{"--collector", url, "rollback", "iris", "1", "2"}, 2, []string{"want 1 or 2 arguments"}},
		{"usage: --wait --timeout 0", []string{"--collector", url, "rollback", "iris", "--wait", "--timeout", "0s"}, 2, []string{"--timeout 0s: must be positive"}},
		{"usage: bad model name", []string{"--collector", url, "promote", "ir is"}, 2, []string{`model name "ir is"`}},
		{"409 promote without canary", []string{"--collector", url, "promote", "wine"}, 5, []string{"refused: promote wine: no canary"}},
		{"404 rollout unknown model", []string{"--collector", url, "rollout", "nope", "3"}, 3, []string{`not found: model "nope" not found`}},
		{"usage: no command", nil, 2, []string{"no command given"}},
		{"usage: collector without scheme", []string{"--collector", "localhost:7070", "models"}, 2, []string{`--collector "localhost:7070"`}},
		{"usage: negative since", []string{"--collector", url, "versions", "iris", "--since", "-1h"}, 2, []string{"--since -1h0m0s: must be positive"}},
		{"409 delete in use", []string{"--collector", url, "versions", "delete", "iris", "3"}, 5, []string{"refused: delete iris v3: in use: serving on serve-1, serve-2"}},
		{"usage: publish without a directory", []string{"--collector", url, "publish", "iris", "testdata/nope"}, 2, []string{"not a directory"}},
		{"usage: publish --label alone", []string{"--collector", url, "publish", "iris", "testdata/model", "--label", "y"}, 2, []string{"--training-data and --label go together"}},
		{"usage: merge bad weights", []string{"--collector", url, "merge", "iris", "3", "4", "--weights", "1"}, 2, []string{"--weights"}},
		{"usage: versions show bad version", []string{"--collector", url, "versions", "show", "iris", "0"}, 2, []string{`version "0"`}},
		{"usage: pull missing dir", []string{"--collector", url, "pull", "iris", "3"}, 2, []string{"want 3 argument"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(t, nil, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, stderr)
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tc.code == 0 && !strings.Contains(out, "iris") {
				t.Errorf("output lacks the models:\n%s", out)
			}
		})
	}
}

// TestTokenSources: --token or --token-file (not both) beat DROVER_TOKEN.
func TestTokenSources(t *testing.T) {
	api, url := startAPI(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DROVER_TOKEN": "from-env", "DROVER_COLLECTOR": url}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // Authorization header; "" none
	}{
		{"none", map[string]string{"DROVER_COLLECTOR": url}, nil, ""},
		{"env", env, nil, "Bearer from-env"},
		{"flag beats env", env, []string{"--token", "from-flag"}, "Bearer from-flag"},
		{"file beats env", env, []string{"--token-file", file}, "Bearer from-file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.env, append(tc.args, "models")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := api.last().Header.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("both flags", func(t *testing.T) {
		n := api.count()
		code, _, stderr := run(t, env, "--token", "a", "--token-file", file, "models")
		if code != 2 || !strings.Contains(stderr, "mutually exclusive") {
			t.Errorf("exit %d, stderr %q; want 2 and mutually exclusive", code, stderr)
		}
		if api.count() != n {
			t.Error("a request was sent")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := run(t, env, "--token-file", filepath.Join(t.TempDir(), "nope"), "models")
		if code != 1 || !strings.Contains(stderr, "read token file") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestTLSCA(t *testing.T) {
	srv := httptest.NewUnstartedServer(newFakeAPI(t))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, nil, "--collector", srv.URL, "--tls-ca", ca, "models")
	if code != 0 || !strings.Contains(out, "iris") {
		t.Fatalf("with --tls-ca: exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = run(t, nil, "--collector", srv.URL, "models")
	if code != 1 || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, srv.URL) {
		t.Errorf("without --tls-ca: exit %d, want 1 naming the URL and the certificate problem\n%s", code, stderr)
	}
	code, _, stderr = run(t, nil, "--collector", srv.URL, "--tls-ca", filepath.Join(t.TempDir(), "nope.pem"), "models")
	if code != 1 || !strings.Contains(stderr, "read TLS CA") {
		t.Errorf("missing CA file: exit %d\n%s", code, stderr)
	}
}

// TestTLSClientCertificate: --tls-cert and --tls-key (or their
// environment variables) present a client certificate to a collector that
// requires one; without it the handshake is refused and droverctl says
// what to give; one of the two flags alone is a usage error.
func TestTLSClientCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "collector", tlstest.Localhost...)
	clientCert, clientKey := ca.Issue(t, "ops", "ops")
	tc, err := tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequire}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newFakeAPI(t))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)

	code, out, stderr := run(t, nil, "--collector", srv.URL, "--tls-ca", ca.File, "--tls-cert", clientCert, "--tls-key", clientKey, "models")
	if code != 0 || !strings.Contains(out, "iris") {
		t.Fatalf("with --tls-cert: exit %d\n%s\n%s", code, out, stderr)
	}
	env := map[string]string{"DROVER_TLS_CA": ca.File, "DROVER_TLS_CERT": clientCert, "DROVER_TLS_KEY": clientKey}
	if code, out, stderr := run(t, env, "--collector", srv.URL, "models"); code != 0 || !strings.Contains(out, "iris") {
		t.Fatalf("with $DROVER_TLS_*: exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = run(t, nil, "--collector", srv.URL, "--tls-ca", ca.File, "models")
	if code != 1 || !strings.Contains(stderr, srv.URL) || !strings.Contains(stderr, "--tls-cert") {
		t.Errorf("without a client certificate: exit %d, want 1 naming the URL and --tls-cert\n%s", code, stderr)
	}
	code, _, stderr = run(t, nil, "--collector", srv.URL, "--tls-ca", ca.File, "--tls-cert", clientCert, "models")
	if code != 2 || !strings.Contains(stderr, "--tls-key") {
		t.Errorf("--tls-cert alone: exit %d, want 2\n%s", code, stderr)
	}
}

// TestStatus: the health check is what it was: no token, one line, exit 1
// when not ready.
func TestStatus(t *testing.T) {
	api, url := startAPI(t)
	code, out, stderr := run(t, nil, "--collector", url, "status")
	if code != 0 || out != "collector "+url+": alive and ready\n" || stderr != "" {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if got := api.last().Header.Get("Authorization"); got != "" {
		t.Errorf("status sent Authorization %q without a token", got)
	}
	// Failover: the collector that answered is named.
	dead := deadURL(t)
	code, out, _ = run(t, nil, "--collector", dead+","+url, "status")
	if code != 0 || out != "collector "+url+": alive and ready\n" {
		t.Errorf("status with failover: exit %d, stdout %q", code, out)
	}

	api.routes["GET /readyz"] = route{status: 503, body: "not ready: clickhouse: connection refused\n"}
	code, out, stderr = run(t, nil, "--collector", url, "status")
	if code != 1 || out != "" || !strings.Contains(stderr, "collector alive but not ready") || !strings.Contains(stderr, "clickhouse: connection refused") {
		t.Errorf("not ready: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = run(t, nil, "--collector", dead, "status")
	if code != 1 || !strings.Contains(stderr, dead) {
		t.Errorf("dead: exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "droverctl ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			code, out, stderr := run(t, nil, "completion", sh)
			if code != 0 || len(out) < 200 || !strings.Contains(out, "droverctl") {
				t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), stderr)
			}
		})
	}
}

// TestDynamicCompletion asks for completions as the shells do (the hidden
// __complete command) and expects model names and versions from the API.
func TestDynamicCompletion(t *testing.T) {
	_, url := startAPI(t)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"drift", ""}, []string{"housing", "iris", "wine"}},
		{[]string{"versions", "i"}, []string{"iris"}},
		{[]string{"history", "w"}, []string{"wine"}},
		{[]string{"incidents", "--model", "h"}, []string{"housing"}},
		{[]string{"jobs", "--model", ""}, []string{"housing", "iris", "wine"}},
		{[]string{"versions", "diff", "iris", ""}, []string{"3", "4", "5"}},
		{[]string{"versions", "diff", "iris", "3", "4"}, []string{"4"}},
		{[]string{"token", "create", "--role", "p"}, []string{"admin", "reader", "publisher", "agent", "client"}}, // the shell filters fixed lists
		{[]string{"status", "i"}, []string{"iris"}},
		{[]string{"rollout", ""}, []string{"housing", "iris", "wine"}},
		{[]string{"rollout", "iris", ""}, []string{"3", "4", "5"}},
		{[]string{"rollback", "iris", "4"}, []string{"4"}},
		{[]string{"canary", "iris", "5"}, []string{"5"}},
		{[]string{"canary", "iris", "5", ""}, nil}, // PCT
		{[]string{"promote", "w"}, []string{"wine"}},
		{[]string{"promote", "wine", ""}, nil},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, stderr := run(t, nil, append([]string{"__complete", "--collector", url}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.HasPrefix(l, ":") {
					got = append(got, l)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("completions %q, want %q\n%s", got, tc.want, out)
			}
		})
	}
}
