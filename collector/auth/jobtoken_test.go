package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJobTokenKeyIsSharedAndSeparate(t *testing.T) {
	gossip := bytes.Repeat([]byte{7}, 32)
	k1, err := JobTokenKey(gossip)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := JobTokenKey(append([]byte(nil), gossip...))
	if !bytes.Equal(k1, k2) {
		t.Fatal("two collectors with the same gossip key derive different job-token keys")
	}
	if bytes.Equal(k1, gossip) {
		t.Fatal("the job-token key is the gossip key itself")
	}
	r1, _ := JobTokenKey(nil)
	r2, _ := JobTokenKey(nil)
	if len(r1) != 32 || bytes.Equal(r1, r2) {
		t.Fatalf("without a secret: want distinct random 32-byte keys, got %x and %x", r1, r2)
	}
}

func TestCheckJobToken(t *testing.T) {
	key, _ := JobTokenKey([]byte("the cluster's gossip key, 32 b.."))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := IssueJobToken(key, "iris", "job-0123", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, JobTokenPrefix) {
		t.Fatalf("token %q lacks the prefix", tok)
	}
	p, err := CheckJobToken(key, tok, now.Add(59*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Principal{Name: "job-0123", Role: Publisher, Model: "iris", Job: "job-0123"}); p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	otherKey, _ := JobTokenKey([]byte("another cluster"))
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, JobTokenPrefix), ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"m":"other","j":"job-0123","e":9999999999999}`))
	for name, tc := range map[string]struct {
		key   []byte
		token string
		at    time.Time
		want  error
	}{
		"expired at its expiry":   {key, tok, now.Add(time.Minute), ErrExpired},
		"expired later":           {key, tok, now.Add(time.Hour), ErrExpired},
		"another key":             {otherKey, tok, now, ErrUnknownToken},
		"claims changed":          {key, JobTokenPrefix + forged + "." + sig, now, ErrUnknownToken},
		"signature cut":           {key, JobTokenPrefix + payload + "." + sig[:10], now, ErrUnknownToken},
		"no dot":                  {key, JobTokenPrefix + payload, now, ErrUnknownToken},
		"not a job token":         {key, "drover_abc", now, ErrUnknownToken},
		"no key":                  {nil, tok, now, ErrUnknownToken},
		"signature not base64url": {key, JobTokenPrefix + payload + ".!!", now, ErrUnknownToken},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CheckJobToken(tc.key, tc.token, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), sig) {
				t.Fatalf("the error repeats the signature: %v", err)
			}
		})
	}
	if _, err := IssueJobToken(key, strings.Repeat("m", MaxTokenLen), "job-1", now); err == nil {
		t.Fatal("a token longer than MaxTokenLen was issued")
	}
}

// TestJobTokenThroughMiddleware: an Authenticator with the key lets a job
// token publish its model only, on the publish routes only, until expiry.
func TestJobTokenThroughMiddleware(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("- name: ci\n  role: publisher\n  sha256: "+Hash("tok-ci")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.TokensFile = tokens
	key, _ := JobTokenKey([]byte("gossip"))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := now
	a := newAuth(t, nil, "", dir, cfg, func(o *Options) {
		o.JobTokenKey = key
		o.Now = func() time.Time { return clock }
	})
	tok, err := IssueJobToken(key, "iris", "job-1", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	routes := Routes{
		"POST /v1/models/{model}/versions":  Allow(Publisher),
		"POST /v1/models/{model}/commit":    Allow(Publisher),
		"PUT /v1/blobs/sha256/{digest}":     Allow(Publisher),
		"POST /v1/models/{model}/optimize":  Allow(Publisher),
		"DELETE /v1/models/{model}/v/{ver}": Allow(Admin),
	}
	mux := http.NewServeMux()
	var seen Principal
	for pattern := range routes {
		mux.Handle(pattern, a.Protect(routes, pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, _ = FromContext(r.Context())
		})))
	}
	do := func(method, path, token string) int {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		mux.ServeHTTP(rec, r)
		return rec.Code
	}
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/models/iris/versions", tok, 200},
		{"POST", "/v1/models/iris/commit", tok, 200},
		{"PUT", "/v1/blobs/sha256/abc", tok, 200},
		{"POST", "/v1/models/wine/versions", tok, 403},       // another model
		{"POST", "/v1/models/wine/commit", tok, 403},         // another model
		{"POST", "/v1/models/iris/optimize", tok, 403},       // not a publish route
		{"DELETE", "/v1/models/iris/v/1", tok, 403},          // admin route
		{"POST", "/v1/models/wine/versions", "tok-ci", 200},  // a stored publisher token is not scoped
		{"POST", "/v1/models/iris/optimize", "tok-ci", 200},  // nor limited to publish routes
		{"POST", "/v1/models/iris/versions", tok + "x", 401}, // altered
	} {
		if got := do(tc.method, tc.path, tc.token); got != tc.want {
			t.Errorf("%s %s with %.20s…: status %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
	do("POST", "/v1/models/iris/versions", tok)
	if seen.Name != "job-1" || seen.Model != "iris" || seen.Role != Publisher {
		t.Errorf("principal in context %+v", seen)
	}
	clock = now.Add(time.Minute)
	if got := do("POST", "/v1/models/iris/versions", tok); got != 401 {
		t.Errorf("expired job token: status %d, want 401", got)
	}
	// Without the key, job tokens are unknown.
	b := newAuth(t, nil, "", t.TempDir(), cfg)
	if _, err := b.AuthenticateToken(tok); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("an Authenticator without the key: err %v, want ErrUnknownToken", err)
	}
}

func FuzzCheckJobToken(f *testing.F) {
	key, _ := JobTokenKey([]byte("fuzz"))
	now := time.Unix(1_700_000_000, 0)
	good, _ := IssueJobToken(key, "iris", "job-1", now.Add(time.Hour))
	for _, s := range []string{good, JobTokenPrefix, JobTokenPrefix + ".", JobTokenPrefix + "e30.", "drover_x", good + "=", strings.Replace(good, ".", "..", 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := CheckJobToken(key, tok, now)
		if err == nil && (p.Model == "" || p.Job == "" || p.Role != Publisher) {
			t.Fatalf("accepted %q as %+v", tok, p)
		}
		if err == nil && tok != good {
			// Only tokens signed with key pass: the fuzzer cannot forge one
			// except by re-encoding the same payload and MAC.
			if _, err2 := CheckJobToken(key, tok, now); err2 != nil {
				t.Fatal("not deterministic")
			}
		}
	})
}
