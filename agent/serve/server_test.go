package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/runtime"
)

// TestOverloadRefusedAtOnce: with max_in_flight requests running, the next
// gets 503 at once, with Retry-After, before any model is looked up; an
// admitted request counts in Served once answered, even with an error.
func TestOverloadRefusedAtOnce(t *testing.T) {
	set, err := versions.New(versions.Config{Backend: &runtime.ONNX{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	s := New(Config{MaxInFlight: 4}, set, nil, nil)
	s.inFlight.Add(4)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/lin/infer",
		strings.NewReader(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)))
	if body := rec.Body.String(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(body, "overloaded") {
		t.Fatalf("overload: %d %v %s", rec.Code, rec.Header(), body)
	}
	if s.InFlight() != 4 || s.Served() != 0 {
		t.Fatalf("after a refusal: in flight %d, served %d; want 4 and 0 (a refused request is not served)", s.InFlight(), s.Served())
	}
	s.inFlight.Add(-4)
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/lin/infer", strings.NewReader(`{"inputs": []}`)))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("below the limit: %d %s, want 404 (no such model)", rec.Code, rec.Body)
	}
	if s.InFlight() != 0 || s.Served() != 1 {
		t.Fatalf("after an admitted request: in flight %d, served %d; want 0 and 1", s.InFlight(), s.Served())
	}
}

// TestJoinJSON: class labels become a JSON array that decodes back to the
// same strings, whatever they contain.
func TestJoinJSON(t *testing.T) {
	for name, labels := range map[string][]string{
		"plain":     {"0", "1", "2"},
		"quotes":    {`say "hi"`, `"`},
		"backslash": {`C:\models`, `\`, `\"`},
		"unicode":   {"é", "日本語", "emoji 🙂", "\u2028"},
		"control":   {"tab\there", "nl\nx", "\x01", "\x7f"},
		"html":      {"<b>&</b>"},
		"empty":     {""},
	} {
		t.Run(name, func(t *testing.T) {
			s := joinJSON(labels)
			var got []string
			if err := json.Unmarshal([]byte(s), &got); err != nil {
				t.Fatalf("joinJSON(%q) = %s: not JSON: %v", labels, s, err)
			}
			if !reflect.DeepEqual(got, labels) {
				t.Fatalf("joinJSON(%q) = %s decodes to %q", labels, s, got)
			}
		})
	}
	if got := joinJSON([]string{"0", "1", "<2>"}); got != `["0","1","<2>"]` {
		t.Fatalf("joinJSON = %s, want the compact form without HTML escapes", got)
	}
}
