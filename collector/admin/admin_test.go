package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fileAuth returns an Authenticator whose only token (a reader) comes from
// a tokens_file.
func fileAuth(t *testing.T) (*auth.Authenticator, string) {
	t.Helper()
	tok, sum, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte("- name: grafana\n  role: reader\n  sha256: "+sum+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.TokensFile = path
	a, err := auth.New(context.Background(), cfg, auth.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return a, tok
}

func serve(s *Server, method, path, token string) int {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	s.mux.ServeHTTP(rec, r)
	return rec.Code
}

// TestHandleUsesTheTable: a route gets its entry's access; before the
// authenticator is set, only the public routes answer.
func TestHandleUsesTheTable(t *testing.T) {
	s := New(Options{Ready: func(context.Context) error { return nil }})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	s.Handle("GET /v1/jobs", ok)
	s.Handle("POST /v1/jobs/{id}/cancel", ok)
	if got := serve(s, "GET", "/v1/jobs", ""); got != http.StatusServiceUnavailable {
		t.Errorf("before SetAuth: %d, want 503", got)
	}
	if got := serve(s, "GET", "/healthz", ""); got != 200 {
		t.Errorf("healthz: %d", got)
	}
	a, reader := fileAuth(t)
	s.SetAuth(a)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/jobs", "", 401},
		{"GET", "/v1/jobs", reader, 200},
		{"POST", "/v1/jobs/x/cancel", reader, 403},
		{"GET", "/readyz", "", 200},
	} {
		if got := serve(s, tc.method, tc.path, tc.token); got != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
	want := []string{"GET /healthz", "GET /readyz", "GET /v1/jobs", "POST /v1/jobs/{id}/cancel"}
	if got := s.Patterns(); !slices.Equal(got, want) {
		t.Errorf("Patterns() = %v, want %v", got, want)
	}
}

func TestHandleRefusesARouteWithoutEntry(t *testing.T) {
	s := New(Options{Ready: func(context.Context) error { return nil }})
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
		if slices.Contains(s.Patterns(), "GET /v1/secret") {
			t.Error("the route was registered")
		}
	}()
	s.Handle("GET /v1/secret", http.NotFoundHandler())
}

// TestRoutesTable: the documented roles (docs/admin-api.md).
func TestRoutesTable(t *testing.T) {
	rt := Routes()
	for p, want := range map[string]string{
		"GET /healthz": "public", "GET /readyz": "public", "POST /v1/jobs/{id}/status": "public",
		"GET /metrics": "admin|reader", "GET /v1/cluster": "admin|reader", "GET /v1/jobs/{id}": "admin|reader|publisher",
		"POST /v1/jobs/{id}/retry": "admin", "POST /v1/tokens": "admin", "DELETE /v1/tokens/{name}": "admin",
	} {
		if a, ok := rt.Access(p); !ok || a.String() != want {
			t.Errorf("%s: %v (entry %v), want %s", p, a, ok, want)
		}
	}
	for _, p := range []string{"GET /v1/models", "GET /v1/models/{model}/versions", "GET /v1/models/{model}/diff",
		"GET /v1/models/{model}/drift", "GET /v1/incidents", "GET /v1/models/{model}/history"} {
		if a, ok := rt.Access(p); !ok || a.String() != "admin|reader" {
			t.Errorf("view %s: %v (entry %v), want admin|reader", p, a, ok)
		}
	}
}

// TestHandlerPanicIsA500: a panic in a route's handler is answered 500
// with a JSON error, reported, and the server keeps serving.
func TestHandlerPanicIsA500(t *testing.T) {
	var reported []string
	s := New(Options{
		Routes: auth.Routes{"GET /healthz": auth.Public, "GET /readyz": auth.Public, "GET /boom": auth.Public},
		Ready:  func(context.Context) error { return nil },
		OnPanic: func(protocol, call string, value any, stack []byte) {
			reported = append(reported, protocol+" "+call)
		},
	})
	s.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("injected") }))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	base := "http://" + l.Addr().String()
	resp, err := http.Get(base + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"error"`) {
		t.Errorf("panic answered %d %s; want 500 with a JSON error", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the panic: %v, %v", resp, err)
	}
	resp.Body.Close()
	if !slices.Equal(reported, []string{"http GET /boom"}) {
		t.Errorf("reported %q", reported)
	}
}

// TestDataRoutes: every data-plane route has an entry in the table that
// is not public, and is served behind it like any other route (503 before
// the authenticator, then 401, 403 and the handler); only the audit
// differs (the collector/server fleet test reads audit_log).
func TestDataRoutes(t *testing.T) {
	rt := Routes()
	data := DataRoutes()
	for _, p := range []string{"POST /v1/agents/register", "PUT /v1/agents/{agent}/inventory", "GET /v1/agents/{agent}/desired", "POST /v2/models/{model}/feedback"} {
		if !slices.Contains(data, p) {
			t.Errorf("%s is not a data route: %v", p, data)
		}
	}
	for _, p := range data {
		if a, ok := rt.Access(p); !ok || a.IsPublic() {
			t.Errorf("data route %s: access %v (entry %v), want a role", p, a, ok)
		}
	}
	if a, _ := rt.Access("PUT /v1/agents/{agent}/inventory"); a.String() != "admin|agent" {
		t.Errorf("inventory: %s, want admin|agent", a)
	}

	s := New(Options{Ready: func(context.Context) error { return nil }, DataRoutes: []string{"GET /v1/jobs", "POST /v1/jobs/{id}/cancel"}})
	s.Handle("GET /v1/jobs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if got := serve(s, "GET", "/v1/jobs", ""); got != http.StatusServiceUnavailable {
		t.Errorf("before SetAuth: %d, want 503", got)
	}
	a, reader := fileAuth(t)
	s.SetAuth(a)
	for token, want := range map[string]int{"": 401, "drover_bogus": 401, reader: http.StatusTeapot} {
		if got := serve(s, "GET", "/v1/jobs", token); got != want {
			t.Errorf("token %q: %d, want %d", token, got, want)
		}
	}
	s.Handle("POST /v1/jobs/{id}/cancel", http.NotFoundHandler())
	if got := serve(s, "POST", "/v1/jobs/x/cancel", reader); got != 403 {
		t.Errorf("an admin data route with a reader token: %d, want 403", got)
	}
}
