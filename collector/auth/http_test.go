package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// roleTokens bootstraps a database and creates one token per role; the
// map goes from role to token.
func roleTokens(t *testing.T) (*testenv.DB, *Authenticator, map[Role]string) {
	t.Helper()
	db, a, admin := bootstrapped(t)
	toks := map[Role]string{Admin: admin}
	for _, r := range Roles[1:] {
		tok, _, err := a.Create(context.Background(), "the-"+string(r), r, "test")
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = tok
	}
	return db, a, toks
}

func TestMiddlewareStatusAndBody(t *testing.T) {
	_, a, toks := roleTokens(t)
	if _, err := a.Revoke(context.Background(), "the-client", "test"); err != nil {
		t.Fatal(err)
	}
	var seen Principal
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
		w.Write([]byte("done"))
	})
	for name, tc := range map[string]struct {
		access   Access
		header   string
		status   int
		errorHas string
		who      Principal
	}{
		"reader reads":                 {Allow(Reader), "Bearer " + toks[Reader], 200, "", Principal{Name: "the-reader", Role: Reader}},
		"admin reads":                  {Allow(Reader), "Bearer " + toks[Admin], 200, "", Principal{Name: "", Role: Admin}},
		"agent on a reader route":      {Allow(Reader), "Bearer " + toks[Agent], 403, `token "the-agent" has role agent; GET /x needs admin|reader`, Principal{}},
		"publisher on an admin route":  {Allow(Admin), "Bearer " + toks[Publisher], 403, "needs admin", Principal{}},
		"agent on a shared route":      {Allow(Reader, Agent), "Bearer " + toks[Agent], 200, "", Principal{Name: "the-agent", Role: Agent}},
		"no token":                     {Allow(Reader), "", 401, "no token", Principal{}},
		"unknown token":                {Allow(Reader), "Bearer drover_guess", 401, "unknown token", Principal{}},
		"revoked token":                {Allow(Client), "Bearer " + toks[Client], 401, "token revoked", Principal{}},
		"basic auth":                   {Allow(Reader), "Basic dXNlcjpwYXNz", 401, "malformed Authorization header", Principal{}},
		"public without token":         {Public, "", 200, "", Principal{}},
		"zero access lets admin in":    {Access{}, "Bearer " + toks[Admin], 200, "", Principal{Name: "", Role: Admin}},
		"zero access keeps reader out": {Access{}, "Bearer " + toks[Reader], 403, "needs admin", Principal{}},
	} {
		t.Run(name, func(t *testing.T) {
			seen = Principal{}
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/x", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			a.Require(tc.access, ok).ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				if rec.Body.String() != "done" {
					t.Errorf("body %q", rec.Body)
				}
				if seen.Role != tc.who.Role || (tc.who.Name != "" && seen.Name != tc.who.Name) {
					t.Errorf("principal in context %+v, want %+v", seen, tc.who)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body) != 1 || !strings.Contains(body["error"], tc.errorHas) {
				t.Errorf("body %s (%v), want {\"error\": \"...%s...\"}", rec.Body, err, tc.errorHas)
			}
			if got := rec.Header().Get("WWW-Authenticate"); (tc.status == 401) != (got == `Bearer realm="drover"`) {
				t.Errorf("WWW-Authenticate %q with status %d", got, tc.status)
			}
			if strings.Contains(rec.Body.String(), "drover_") {
				t.Errorf("the body repeats a token: %s", rec.Body)
			}
		})
	}
}

func TestDisabledMiddleware(t *testing.T) {
	cfg := testConfig()
	cfg.Disabled = true
	log, _ := newLogger()
	a, err := New(context.Background(), cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var seen Principal
	h := a.Require(Allow(Admin), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = FromContext(r.Context()) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/anything", nil))
	if rec.Code != 200 || seen != DisabledPrincipal {
		t.Errorf("disabled: status %d, principal %+v", rec.Code, seen)
	}
}

// adminServer serves the token API and a publisher route through Protect,
// as the collector's admin server will.
func adminServer(t *testing.T, a *Authenticator) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	routes := Routes{
		"GET /healthz":     Public,
		"POST /v1/publish": Allow(Publisher),
	}.With(TokenRoutes)
	handlers := a.TokenHandlers()
	handlers["GET /healthz"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	handlers["POST /v1/publish"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Note(r.Context(), "model m", "")
		WriteError(w, http.StatusConflict, "refused")
	})
	var patterns []string
	for p, h := range handlers {
		mux.Handle(p, a.Protect(routes, p, h))
		patterns = append(patterns, p)
	}
	if m := routes.Missing(patterns); len(m) != 0 {
		t.Fatalf("routes without an entry: %q", m)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestTokenAPI(t *testing.T) {
	_, a, toks := roleTokens(t)
	srv := adminServer(t, a)

	status, body := call(t, srv, "POST", "/v1/tokens", toks[Admin], `{"name": "grafana", "role": "reader"}`)
	var created CreateResponse
	if err := json.Unmarshal(body, &created); status != 201 || err != nil {
		t.Fatalf("create: %d %s", status, body)
	}
	if created.Name != "grafana" || created.Role != Reader || Hash(created.Secret) != created.SHA256 || !strings.HasPrefix(created.Secret, TokenPrefix) {
		t.Errorf("create answered %+v", created)
	}
	adminName := principalName(t, a, toks[Admin])
	if created.CreatedBy == nil || *created.CreatedBy != adminName || created.Revoked != nil {
		t.Errorf("created_by %v, revoked %v; want the caller %q and null", created.CreatedBy, created.Revoked, adminName)
	}
	if status, _ := call(t, srv, "GET", "/v1/tokens", created.Secret, ""); status != 403 {
		t.Errorf("a reader listing tokens: %d, want 403", status)
	}
	status, body = call(t, srv, "GET", "/v1/tokens", toks[Admin], "")
	var list []map[string]any
	if err := json.Unmarshal(body, &list); status != 200 || err != nil {
		t.Fatalf("list: %d %s", status, body)
	}
	if len(list) != 7 || bytes.Contains(body, []byte(created.Secret)) {
		t.Errorf("list has %d tokens (want 7) or a secret: %s", len(list), body)
	}
	for _, k := range []string{"name", "role", "sha256", "created", "created_by", "last_used", "revoked", "revoked_by", "source"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("a listed token lacks %q: %v", k, list[0])
		}
	}
	// docs/admin-api.md: the bootstrapped admin has created_by null, was
	// used (this request), and is not revoked (null); grafana was used (a
	// denied request is still a use of a valid token), the-publisher not.
	byName := map[string]map[string]any{}
	for _, tok := range list {
		byName[tok["name"].(string)] = tok
	}
	if boot := byName[adminName]; boot["created_by"] != nil || boot["revoked"] != nil || boot["last_used"] == nil {
		t.Errorf("the bootstrapped admin token is listed as %v; want created_by and revoked null, last_used set", boot)
	}
	if g := byName["grafana"]; g["last_used"] == nil || g["created_by"] != adminName {
		t.Errorf("grafana is listed as %v; want last_used set, created_by %q", g, adminName)
	}
	if p := byName["the-publisher"]; p["last_used"] != nil {
		t.Errorf("the-publisher is listed as %v; want last_used null", p)
	}
	for name, tc := range map[string]struct {
		method, path, body string
		status             int
	}{
		"duplicate":      {"POST", "/v1/tokens", `{"name": "grafana", "role": "reader"}`, 409},
		"bad role":       {"POST", "/v1/tokens", `{"name": "x", "role": "root"}`, 400},
		"bad name":       {"POST", "/v1/tokens", `{"name": "X Y", "role": "reader"}`, 400},
		"unknown field":  {"POST", "/v1/tokens", `{"name": "x", "role": "reader", "token": "mine"}`, 400},
		"revoke unknown": {"DELETE", "/v1/tokens/nobody", "", 404},
	} {
		if status, body := call(t, srv, tc.method, tc.path, toks[Admin], tc.body); status != tc.status || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s: %d %s, want %d with an error body", name, status, body, tc.status)
		}
	}
	status, body = call(t, srv, "DELETE", "/v1/tokens/grafana", toks[Admin], "")
	var revoked TokenInfo
	if err := json.Unmarshal(body, &revoked); status != 200 || err != nil || revoked.Revoked == nil || revoked.RevokedBy == nil || *revoked.RevokedBy != adminName {
		t.Errorf("revoke: %d %s", status, body)
	}
	if status, _ := call(t, srv, "GET", "/healthz", "", ""); status != 200 {
		t.Errorf("healthz without a token: %d", status)
	}
	if status, _ := call(t, srv, "GET", "/v1/tokens", created.Secret, ""); status != 401 {
		t.Errorf("a revoked token: %d, want 401", status)
	}
}

// TestAuditRows: a state change and a denial each leave one audit_log row
// with who, what and the result.
func TestAuditRows(t *testing.T) {
	db, a, toks := roleTokens(t)
	run(t, a)
	srv := adminServer(t, a)
	if status, _ := call(t, srv, "POST", "/v1/tokens", toks[Admin], `{"name": "audited", "role": "agent"}`); status != 201 {
		t.Fatalf("create: %d", status)
	}
	if status, _ := call(t, srv, "POST", "/v1/publish", toks[Publisher], ""); status != 409 {
		t.Fatalf("publish: %d", status)
	}
	if status, _ := call(t, srv, "POST", "/v1/tokens", toks[Reader], `{"name": "sneaky", "role": "admin"}`); status != 403 {
		t.Fatalf("create as a reader: %d", status)
	}
	if status, _ := call(t, srv, "GET", "/v1/tokens", toks[Admin], ""); status != 200 {
		t.Fatalf("list: %d", status)
	}
	adminName := principalName(t, a, toks[Admin])
	for what, q := range map[string]string{
		"the create": "SELECT count() FROM audit_log WHERE token_name = '" + adminName + "' AND role = 'admin' AND action = 'POST /v1/tokens' " +
			"AND target = 'audited' AND result = 'ok' AND detail = '201: role agent' AND node = 'test-node' AND startsWith(remote_addr, '127.0.0.1:')",
		"the failed publish": "SELECT count() FROM audit_log WHERE token_name = 'the-publisher' AND action = 'POST /v1/publish' AND target = 'model m' AND result = 'failed' AND detail = '409'",
		"the denial": "SELECT count() FROM audit_log WHERE token_name = 'the-reader' AND role = 'reader' AND action = 'POST /v1/tokens' " +
			"AND result = 'denied' AND detail LIKE '403: token \"the-reader\" has role reader%'",
	} {
		testenv.Eventually(t, 30*time.Second, "an audit row for "+what, func() bool {
			n, err := testenv.TryCount(db.Conn, q)
			return err == nil && n == 1
		})
	}
	if n := db.Count(t, "SELECT count() FROM audit_log WHERE action = 'GET /v1/tokens'"); n != 0 {
		t.Errorf("%d audit rows for a read, want 0", n)
	}
	if n := db.Count(t, "SELECT count() FROM audit_log WHERE position(detail, 'drover_') > 0 OR position(target, 'drover_') > 0"); n != 0 {
		t.Errorf("a token in audit_log")
	}
}

// TestDenialFloodIsRateLimited: a flood of bad tokens from one address
// writes denialBurst rows and one summary when the minute ends; a flood
// from many addresses keeps at most denialKeys counters.
func TestDenialFloodIsRateLimited(t *testing.T) {
	db, a, _ := bootstrapped(t)
	clock := testenv.NewClock(time.Now()) // audit_log has a TTL: rows from a month ago vanish
	a.now = clock.Now
	run(t, a)
	h := a.Require(Allow(Reader), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a bad token got through") }))
	deny := func(remote string, n int) {
		for i := range n {
			r := request("GET", "/v1/cluster", fmt.Sprintf("drover_guess%d", i))
			r.RemoteAddr = remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != 401 {
				t.Fatalf("status %d", rec.Code)
			}
		}
	}
	deny("10.0.0.1:1000", 500)
	deny("10.0.0.1:2000", 500) // same host, other port: the same key
	count := func(q string) func() bool {
		return func() bool {
			n, err := testenv.TryCount(db.Conn, q)
			return err == nil && n == denialBurst
		}
	}
	testenv.Eventually(t, 30*time.Second, "denialBurst rows for 1000 denials", count(
		"SELECT count() FROM audit_log WHERE result = 'denied' AND startsWith(remote_addr, '10.0.0.1:')"))

	clock.Advance(denialWindow)
	deny("10.0.0.1:3000", 1)
	testenv.Eventually(t, 30*time.Second, "a summary row and the first denial of the next minute", func() bool {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE result = 'denied' AND startsWith(remote_addr, '10.0.0.1:')")
		return err == nil && n == denialBurst+2
	})
	if n := db.Count(t, "SELECT count() FROM audit_log WHERE startsWith(detail, '997 more denials like this one suppressed')"); n != 1 {
		t.Errorf("%d summary rows saying 997 were suppressed, want 1", n)
	}

	// Many addresses: memory and rows stay bounded.
	clock.Advance(denialWindow)
	for i := range 3 * denialKeys {
		deny(fmt.Sprintf("10.1.%d.%d:1", i/256, i%256), 2)
	}
	a.audit.mu.Lock()
	keys := len(a.audit.denials)
	a.audit.mu.Unlock()
	if keys > denialKeys+1 {
		t.Errorf("%d denial counters, want at most %d", keys, denialKeys+1)
	}
	clock.Advance(denialWindow)
	deny("10.0.0.9:1", 1)
	want := uint64(denialKeys*2 + 1 + 1) // 2 rows for each tracked address, one overflow summary, the last denial
	testenv.EventuallyNil(t, 20*time.Second, "the rows of the many-address flood", func() error {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE result = 'denied' AND NOT startsWith(remote_addr, '10.0.0.1:')")
		if err == nil && n != want {
			many, _ := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE remote_addr = '(many)'")
			last, _ := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE remote_addr = '10.0.0.9:1'")
			flood, _ := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE startsWith(remote_addr, '10.1.')")
			err = fmt.Errorf("%d rows, want %d (dropped %d; many %d last %d flood %d)", n, want, a.AuditDropped(), many, last, flood)
		}
		return err
	})
	if n := db.Count(t, "SELECT count() FROM audit_log WHERE remote_addr = '(many)' AND startsWith(detail, '4096 more denials')"); n != 1 {
		t.Errorf("%d overflow summaries for 4096 denials, want 1", n)
	}
}

// TestAuditNeverBlocks: with no writer running, Audit returns at once and
// counts what does not fit.
func TestAuditNeverBlocks(t *testing.T) {
	_, a, _ := bootstrapped(t)
	a.audit.queue = make(chan Entry, 10) // whatever the bootstrap queued is left in the old one
	done := make(chan struct{})
	go func() {
		for range 25 {
			a.Audit(context.Background(), Entry{Action: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Audit blocked")
	}
	if d := a.AuditDropped(); d != 15 {
		t.Errorf("dropped %d, want 15", d)
	}
}

// TestAuditKeepsEqualEntries: two equal entries written by two inserts are
// two rows (the table's deduplication window must not take the second for a
// retry of the first).
func TestAuditKeepsEqualEntries(t *testing.T) {
	db := migrated(t)
	log, _ := newLogger()
	a := &Authenticator{opts: Options{Conn: db.Conn, Database: db.Name}, log: log}
	e := Entry{Time: time.Now(), Action: "GET /x", Remote: "10.0.0.1:1", Result: ResultDenied, Detail: "401: unknown token"}
	for range 3 {
		if err := a.writeAudit(context.Background(), []Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Count(t, "SELECT count() FROM audit_log"); n != 3 {
		t.Errorf("%d rows for three inserts of an equal entry, want 3", n)
	}
}
