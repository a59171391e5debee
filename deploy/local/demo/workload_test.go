package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// fakeAgent answers OIP infer requests with the class a fixed rule gives
// (mean_radius < 15: benign) and records the labels posted to it; it
// stands for an agent and for the collector's feedback route (which checks
// the bearer token).
type fakeAgent struct {
	t     *testing.T
	token string

	mu      sync.Mutex
	infers  int
	labels  map[string]int64
	badAuth int
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v2/models/demo/infer":
		var req struct {
			ID     string `json:"id"`
			Inputs []struct {
				Name  string    `json:"name"`
				Shape []int     `json:"shape"`
				Data  []float64 `json:"data"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Inputs) != 1 || req.Inputs[0].Name != Input || len(req.Inputs[0].Data) != 30 || req.ID == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		label := int64(0)
		if req.Inputs[0].Data[0] < 15 {
			label = 1
		}
		f.mu.Lock()
		f.infers++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"model_name": "demo", "model_version": "1", "id": req.ID,
			"outputs": []map[string]any{{"name": LabelOutput, "datatype": "INT64", "shape": []int{1}, "data": []int64{label}}}})
	case "/v2/models/demo/feedback":
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			f.mu.Lock()
			f.badAuth++
			f.mu.Unlock()
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		var fb []feedback
		if err := json.NewDecoder(r.Body).Decode(&fb); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		for _, l := range fb {
			f.labels[l.ID] = l.Label
		}
		f.mu.Unlock()
		w.Write([]byte(`{"joined":0,"unknown":0,"expired":0}`))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAgent) counts() (infers, labels, badAuth int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.infers, len(f.labels), f.badAuth
}

// TestWorkload: requests go to both agents in turn, every answered row's
// true label is posted to the agent that answered and to the collector
// with the token, and rows drift from DriftAfter on, which this rule
// (larger radius: malignant) gets wrong more often.
func TestWorkload(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	agents := []*fakeAgent{{t: t, labels: map[string]int64{}}, {t: t, labels: map[string]int64{}}}
	coll := &fakeAgent{t: t, token: "secret", labels: map[string]int64{}}
	var urls []string
	for _, a := range agents {
		s := httptest.NewServer(a)
		defer s.Close()
		urls = append(urls, s.URL)
	}
	cs := httptest.NewServer(coll)
	defer cs.Close()
	w, err := NewWorkload(WorkloadConfig{Agents: urls, Collector: cs.URL, CollectorToken: "secret", Rate: 500,
		DriftAfter: 500 * time.Millisecond, LabelEvery: 50 * time.Millisecond, Seed: 3}, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	testenv.Eventually(t, 20*time.Second, "300 drifted answers", func() bool {
		_, n := LiveAccuracy(w.Responses(time.Time{}), func(r Response) bool { return r.Drifted })
		return n >= 300
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if errs, last := w.Errors(); errs != 0 {
		t.Errorf("%d errors, last %v", errs, last)
	}
	rs := w.Responses(time.Time{})
	before, nb := LiveAccuracy(rs, func(r Response) bool { return !r.Drifted })
	after, na := LiveAccuracy(rs, func(r Response) bool { return r.Drifted })
	if nb < 100 || na < 300 || !(after < before-0.1) {
		t.Errorf("accuracy %.3f on %d clean rows, %.3f on %d drifted: want the drifted clearly worse", before, nb, after, na)
	}
	if w.DriftAt().IsZero() {
		t.Error("DriftAt is zero after the drift")
	}
	// A request the agent counted may have lost its answer to the
	// cancellation (the client gave up first): it has no label, and it is
	// not an answer. So labels equal answers, and requests are at least that.
	answers := make([]int, len(agents))
	for _, r := range rs {
		answers[r.Agent]++
	}
	for i, a := range agents {
		infers, labels, _ := a.counts()
		if answers[i] < 100 || labels != answers[i] || infers < answers[i] {
			t.Errorf("agent %d: %d requests, %d answers, %d labels; want labels = answers (every answer labelled, at its agent)", i, infers, answers[i], labels)
		}
	}
	_, labels, bad := coll.counts()
	if labels != len(rs) || bad != 0 {
		t.Errorf("collector: %d labels (%d denied) for %d answers", labels, bad, len(rs))
	}
}

func TestNewWorkloadErrors(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]WorkloadConfig{
		"no agent":  {Rate: 1},
		"no rate":   {Agents: []string{"http://x"}},
		"bad drift": {Agents: []string{"http://x"}, Rate: 1, SizeFactor: -1},
	} {
		if _, err := NewWorkload(cfg, d); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
