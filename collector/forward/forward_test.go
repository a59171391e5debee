package forward

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderForwardedBy) != "node-a" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "headers", http.StatusTeapot)
			return
		}
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("Authorization") != "Bearer t" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"version":3}`))
		case "/conflict":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":"in use"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("not json"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	b, err := Post(ctx, srv.Client(), srv.URL+"/ok", "node-a", "Bearer t", []byte(`{}`), 1<<10)
	if err != nil || string(b) != `{"version":3}` {
		t.Fatalf("201: %q, %v", b, err)
	}
	for path, want := range map[string]Error{
		"/conflict": {Code: http.StatusConflict, Msg: "in use"},
		"/other":    {Code: http.StatusBadGateway, Msg: "502 Bad Gateway"},
	} {
		_, err := Post(ctx, srv.Client(), srv.URL+path, "node-a", "", []byte(`{}`), 1<<10)
		var e *Error
		if !errors.As(err, &e) || *e != want {
			t.Errorf("%s: %v, want %+v", path, err, want)
		}
	}
	if _, err := Post(ctx, srv.Client(), srv.URL+"/ok", "node-a", "", nil, 1<<10); !errors.As(err, new(*Error)) {
		t.Errorf("without the credential: %v, want the owner's 401", err)
	}
}

// TestToOwner: the owner-retry loop runs the call here when this collector
// owns the model, forwards it otherwise, retries while no owner is known
// or the owner answers 503 or 401, returns its other errors at once, and
// refuses a call forwarded to a collector that is not the owner.
func TestToOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		r := Retry{Wait: 10 * time.Second, Pause: time.Second, Logger: slog.New(slog.DiscardHandler)}
		local := func() (string, error) { return "local", nil }

		// Owner unknown, then a 503 and a 401 from b, then b answers.
		calls := 0
		r.Owner = func(string) (bool, string, bool) { calls++; return false, "b:7070", calls > 1 }
		answers := []error{&Error{Code: http.StatusServiceUnavailable, Msg: "leaving"}, &Error{Code: http.StatusUnauthorized, Msg: "token"}, nil}
		remote := func(admin string) (string, error) {
			err := answers[0]
			answers = answers[1:]
			return "remote " + admin, err
		}
		start := time.Now()
		if got, err := ToOwner(ctx, r, "commit", "m", local, remote); err != nil || got != "remote b:7070" || calls != 4 || time.Since(start) != 3*time.Second {
			t.Errorf("retried: %q, %v after %d attempts, %s; want the owner's answer after 4 attempts, 3s", got, err, calls, time.Since(start))
		}

		// A conflict is final.
		r.Owner = func(string) (bool, string, bool) { return false, "b:7070", true }
		conflict := func(string) (string, error) { return "", &Error{Code: http.StatusConflict, Msg: "in use"} }
		var e *Error
		if _, err := ToOwner(ctx, r, "commit", "m", local, conflict); !errors.As(err, &e) || e.Code != http.StatusConflict {
			t.Errorf("409: %v, want it at once", err)
		}

		// Forwarded here, not the owner: refused, never forwarded again.
		if _, err := ToOwner(WithCaller(ctx, "Bearer t", "node-a"), r, "commit", "m", local, remote); !errors.Is(err, ErrNotOwner) {
			t.Errorf("forwarded to a non-owner: %v, want ErrNotOwner", err)
		}

		// The owner, or no ring: local.
		r.Owner = nil
		if got, err := ToOwner(ctx, r, "commit", "m", local, remote); err != nil || got != "local" {
			t.Errorf("no ring: %q, %v", got, err)
		}

		// No owner ever answers: the deadline.
		r.Owner = func(string) (bool, string, bool) { return false, "", false }
		start = time.Now()
		if _, err := ToOwner(ctx, r, "rollout", "m", local, remote); err == nil || !strings.Contains(err.Error(), "rollout m: no owner answered in 10s (11 attempts)") || time.Since(start) != 10*time.Second {
			t.Errorf("no owner: %v after %s", err, time.Since(start))
		}
	})
	if got := Credential(WithCaller(context.Background(), "Bearer x", "")); got != "Bearer x" {
		t.Errorf("credential %q", got)
	}
}
