package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestDecodeOptimizeRequest(t *testing.T) {
	for body, want := range map[string]string{
		``:                         "24h0m0s",
		`{}`:                       "24h0m0s",
		`{"since":"90m"}`:          "1h30m0s",
		`{"since":"2160h"}`:        "2160h0m0s",
		`{"since":"2161h"}`:        "error:at most",
		`{"since":"0s"}`:           "error:more than 0",
		`{"since":"-1h"}`:          "error:more than 0",
		`{"since":"yesterday"}`:    "error:want a duration",
		`{"since":24}`:             "error:cannot unmarshal",
		`{"since":"1h","x":1}`:     "error:unknown field",
		`{"since":"1h"} {}`:        "error:data after",
		`[`:                        "error:body",
		"  \n":                     "24h0m0s",
		`{"since":"1h"}` + "\n   ": "1h0m0s",
	} {
		d, err := DecodeOptimizeRequest([]byte(body))
		got := d.String()
		if err != nil {
			got = "error:" + err.Error()
		}
		if !strings.HasPrefix(want, "error:") && got != want || strings.HasPrefix(want, "error:") && !strings.Contains(got, strings.TrimPrefix(want, "error:")) {
			t.Errorf("%q: got %q, want %q", body, got, want)
		}
	}
}

func FuzzDecodeOptimizeRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"since":"24h"}`, `{"since":"1h","x":1}`, `{"since":"-5m"}`, `null`, `{"since":null}`, `"24h"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeOptimizeRequest(body)
		if err == nil && (d <= 0 || d > MaxSince) {
			t.Fatalf("%q: since %s accepted", body, d)
		}
	})
}

// TestManualIncident: POST /v1/models/{model}/optimize schedules exactly
// one job like a drift incident (the same id, reason manual, the limits),
// records the incident, and refuses unknown models.
func TestManualIncident(t *testing.T) {
	db := migrated(t)
	rs := newRegistryServer(t, db, nil)
	ctx := context.Background()
	dir := t.TempDir()
	mb, err := testmodels.Linear("x", "y", [][]float32{{1, 1}}, []float32{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	ci := adminclient.New(rs.URL, "tok-ci")
	defer ci.Close()
	for range 2 { // two versions: the job is for the latest
		if _, _, err := ci.Publish(ctx, "iris", dir, adminclient.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		mb, _ = testmodels.Linear("x", "y", [][]float32{{2, 1}}, []float32{0, 0})
		os.WriteFile(filepath.Join(dir, "model.onnx"), mb, 0o644)
	}

	cfg := testConfig(t, "true")
	cfg.MaxOpenPerModel = 1
	m, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "n1", Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	var mu sync.Mutex
	var recorded []Incident
	api, err := NewAPI(APIOptions{Conn: db.Conn, Database: db.Name, Node: "n1", Manager: m, Now: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler),
		RecordIncident: func(_ context.Context, inc Incident, opened time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			if !opened.Equal(now) {
				t.Errorf("incident opened %s, want %s", opened, now)
			}
			recorded = append(recorded, inc)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range api.Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(model, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/models/"+model+"/optimize", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	status, out := post("iris", `{"since":"2h"}`)
	start := now.Add(-2 * time.Hour).Truncate(time.Millisecond)
	wantID := JobID("iris", "2", start)
	if status != http.StatusAccepted || out["id"] != wantID || out["version"] != "2" || out["created"] != true {
		t.Fatalf("POST optimize: %d %v, want 202 with id %s, version 2, created", status, out, wantID)
	}
	row, err := m.Job(ctx, wantID)
	if err != nil {
		t.Fatal(err)
	}
	var spec Spec
	if err := json.Unmarshal([]byte(row.Spec), &spec); err != nil {
		t.Fatal(err)
	}
	if row.State != StateQueued || !row.IncidentStart.Equal(start) || len(spec.Reasons) != 1 || spec.Reasons[0] != ReasonManual {
		t.Errorf("job row: state %s start %s reasons %v", row.State, row.IncidentStart, spec.Reasons)
	}
	mu.Lock()
	if len(recorded) != 1 || recorded[0].Model != "iris" || recorded[0].Version != "2" || !recorded[0].Start.Equal(start) {
		t.Errorf("recorded incidents %+v", recorded)
	}
	mu.Unlock()

	// The same incident again (same millisecond): the same job, not a new one.
	if status, out := post("iris", `{"since":"2h"}`); status != http.StatusAccepted || out["id"] != wantID || out["created"] != false {
		t.Errorf("the same incident again: %d %v", status, out)
	}
	// Another incident of the model: max_open_per_model (1) refuses it.
	if status, out := post("iris", ``); status != http.StatusConflict || !strings.Contains(out["error"].(string), "too many open jobs") {
		t.Errorf("a second open job: %d %v, want 409 too many open jobs", status, out)
	}
	for _, tc := range []struct {
		model, body string
		status      int
		has         string
	}{
		{"wine", `{}`, http.StatusNotFound, "no active version"},
		{"iris", `{"since":"-1h"}`, http.StatusBadRequest, "more than 0"},
		{"iris", `{"since":"1h","version":"1"}`, http.StatusBadRequest, "unknown field"},
		{"Bad%20Name", `{}`, http.StatusBadRequest, "model name"},
	} {
		status, out := post(tc.model, tc.body)
		if e, _ := out["error"].(string); status != tc.status || !strings.Contains(e, tc.has) {
			t.Errorf("%s %s: %d %v, want %d ...%s...", tc.model, tc.body, status, out, tc.status, tc.has)
		}
	}
	if got := db.Count(t, "SELECT count() FROM "+db.Name+".jobs FINAL WHERE model = 'iris'"); got != 1 {
		t.Errorf("%d jobs of iris, want 1", got)
	}

	// Without a Manager: 409 ErrNoJobs.
	bare, _ := NewAPI(APIOptions{Conn: db.Conn, Database: db.Name, Node: "n2", Logger: slog.New(slog.DiscardHandler)})
	if _, err := bare.Optimize(ctx, "iris", time.Hour); !errors.Is(err, ErrNoJobs) {
		t.Errorf("without a Manager: %v, want ErrNoJobs", err)
	}
}
