package forward

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

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
