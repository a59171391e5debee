package labels_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// fixture is a ClickHouse database with the schema, and an admin server
// serving the feedback route behind real tokens (client, reader, agent).
type fixture struct {
	db     *testenv.DB
	st     *labels.Store
	url    string
	reg    *prometheus.Registry
	tokens map[string]string // role → token
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := migrated(t)
	dir := t.TempDir()
	var file strings.Builder
	tokens := map[string]string{}
	for _, role := range []string{"client", "reader", "agent"} {
		tok, sum, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
		fmt.Fprintf(&file, "- name: %s-token\n  role: %s\n  sha256: %s\n", role, role, sum)
	}
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.TokensFile = path
	a, err := auth.New(context.Background(), cfg, auth.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, st: labels.NewStore(db.Conn, db.Name), reg: prometheus.NewRegistry(), tokens: tokens}
	srv := admin.New(admin.Options{Auth: a, Ready: func(context.Context) error { return nil }})
	srv.Handle(labels.Pattern, f.st.Handler(labels.HandlerOptions{Registerer: f.reg}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin server: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return f
}

func (f *fixture) post(t *testing.T, model, role, body string) (int, labels.Result) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, f.url+"/v2/models/"+model+"/feedback", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok := f.tokens[role]; tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res labels.Result
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("answer %q: %v", b, err)
		}
	}
	return resp.StatusCode, res
}

// insertSamples stores sampled requests as the ingest path does.
func insertSamples(t *testing.T, db *testenv.DB, rows []store.SampleRow) {
	t.Helper()
	st := store.New(db.Conn, db.Name, nil)
	if err := st.Insert(context.Background(), &store.Batch{Samples: rows}, ""); err != nil {
		t.Fatal(err)
	}
}

// classOutputs is an OIP response of a classifier: a label output and
// probabilities, for a batch of the given classes.
func classOutputs(classes ...int) string {
	data, _ := json.Marshal(classes)
	probs := make([]float64, 0, 3*len(classes))
	for _, c := range classes {
		row := []float64{0.1, 0.1, 0.1}
		row[c] = 0.8
		probs = append(probs, row...)
	}
	pd, _ := json.Marshal(probs)
	return fmt.Sprintf(`{"model_name":"iris","outputs":[{"name":"label","datatype":"INT64","shape":[%d],"data":%s},`+
		`{"name":"probabilities","datatype":"FP32","shape":[%d,3],"data":%s}]}`, len(classes), data, len(classes), pd)
}

// offlineF1 computes accuracy and macro F1 from (label, prediction) pairs
// the way scikit-learn's f1_score(average="macro") does over the classes
// present in either.
func offlineF1(pairs [][2]int) (acc, f1 float64) {
	classes := map[int]bool{}
	var correct int
	for _, p := range pairs {
		classes[p[0]], classes[p[1]] = true, true
		if p[0] == p[1] {
			correct++
		}
	}
	for c := range classes {
		var tp, fp, fn float64
		for _, p := range pairs {
			switch {
			case p[0] == c && p[1] == c:
				tp++
			case p[1] == c:
				fp++
			case p[0] == c:
				fn++
			}
		}
		prec, rec := 0.0, 0.0
		if tp+fp > 0 {
			prec = tp / (tp + fp)
		}
		if tp+fn > 0 {
			rec = tp / (tp + fn)
		}
		if prec+rec > 0 {
			f1 += 2 * prec * rec / (prec + rec)
		}
	}
	return float64(correct) / float64(len(pairs)), f1 / float64(len(classes))
}

// TestFleetLabelsJoinAndCount: labels posted to the collector (by a client
// and by a forwarding agent), for requests sampled on any host, join their
// samples at read time; the version's accuracy and F1 equal an offline
// computation on the same rows; labels of requests that were not sampled
// are stored and counted.
func TestFleetLabelsJoinAndCount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 14))
	start := time.Now().Add(-10 * time.Minute)

	var rows []store.SampleRow
	var pairs [][2]int
	var clientBody, agentBody []map[string]any
	for i := range 120 {
		pred := rng.IntN(3)
		label := pred
		if rng.IntN(4) == 0 {
			label = rng.IntN(3)
		}
		id := fmt.Sprintf("req-%03d", i)
		host := []string{"web-1", "web-2", "web-3"}[i%3]
		rows = append(rows, store.SampleRow{Time: start.Add(time.Duration(i) * time.Second), Model: "iris", ModelVersion: "2",
			Host: host, RequestID: id, Inputs: `[]`, Outputs: classOutputs(pred)})
		pairs = append(pairs, [2]int{label, pred})
		// Labels arrive as integers, strings and floats with an integral
		// value: the shared decoder takes all three as classes.
		var lv any = label
		switch i % 3 {
		case 1:
			lv = fmt.Sprint(label)
		case 2:
			lv = float64(label)
		}
		if i%2 == 0 {
			clientBody = append(clientBody, map[string]any{"id": id, "label": lv})
		} else {
			agentBody = append(agentBody, map[string]any{"id": id, "label": lv})
		}
	}
	// A batch request of two rows: labels "batch-1#0" and "batch-1#1".
	rows = append(rows, store.SampleRow{Time: start, Model: "iris", ModelVersion: "2", Host: "web-1", RequestID: "batch-1",
		Inputs: `[]`, Outputs: classOutputs(0, 2)})
	pairs = append(pairs, [2]int{0, 0}, [2]int{1, 2})
	clientBody = append(clientBody, map[string]any{"id": "batch-1#0", "label": 0}, map[string]any{"id": "batch-1#1", "label": 1})
	insertSamples(t, f.db, rows)

	// Five labels for requests that were never sampled.
	for i := range 5 {
		agentBody = append(agentBody, map[string]any{"id": fmt.Sprintf("nosample-%d", i), "label": 1})
	}
	cb, _ := json.Marshal(clientBody)
	ab, _ := json.Marshal(agentBody)
	code, res := f.post(t, "iris", "client", string(cb))
	if code != http.StatusOK || res != (labels.Result{Stored: 62, Joined: 62}) {
		t.Fatalf("client post: %d %+v, want 200 {62 62 0}", code, res)
	}
	code, res = f.post(t, "iris", "agent", string(ab))
	if code != http.StatusOK || res != (labels.Result{Stored: 65, Joined: 60, Unsampled: 5}) {
		t.Fatalf("agent post: %d %+v, want 200 {65 60 5}", code, res)
	}
	if got := counterValue(t, f.reg, "agent", "unsampled"); got != 5 {
		t.Errorf("drover_collector_labels_total{agent,unsampled} = %v, want 5", got)
	}
	if n := f.db.Count(t, "SELECT count() FROM "+f.db.Name+".labels WHERE source = 'agent' AND sender = 'agent-token'"); n != 65 {
		t.Errorf("labels from the agent: %d rows, want 65", n)
	}

	js, err := f.st.Join(ctx, "iris", "2", start.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := labels.Evaluate(js)["2"]
	wantAcc, wantF1 := offlineF1(pairs)
	if m.Task != "classification" || m.N != len(pairs) || m.Skipped != 0 {
		t.Fatalf("metrics %+v, want classification over %d labels", m, len(pairs))
	}
	if math.Abs(m.Values["accuracy"]-wantAcc) > 1e-12 || math.Abs(m.Values["f1"]-wantF1) > 1e-12 {
		t.Errorf("accuracy %v f1 %v, want %v %v (offline)", m.Values["accuracy"], m.Values["f1"], wantAcc, wantF1)
	}
	if wantAcc == 1 {
		t.Fatal("the test data has no wrong predictions: the comparison proves little")
	}

	un, err := f.st.Unsampled(ctx, "iris", start.Add(-time.Minute), time.Now().Add(time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if un != 5 {
		t.Errorf("Unsampled = %d, want 5", un)
	}

	// A label sent again for the same id: the latest counts (one more
	// correct prediction for req-000 if it was wrong, else one less).
	flip := pairs[0]
	newLabel := (flip[1] + 1) % 3
	if flip[0] != flip[1] {
		newLabel = flip[1]
	}
	if code, _ := f.post(t, "iris", "client", fmt.Sprintf(`{"id":"req-000","label":%d}`, newLabel)); code != http.StatusOK {
		t.Fatalf("relabel: %d", code)
	}
	pairs[0][0] = newLabel
	wantAcc, wantF1 = offlineF1(pairs)
	testenv.EventuallyNil(t, 30*time.Second, "the latest label counts", func() error {
		js, err := f.st.Join(ctx, "iris", "2", start.Add(-time.Minute), time.Now().Add(time.Minute))
		if err != nil {
			return err
		}
		m := labels.Evaluate(js)["2"]
		if math.Abs(m.Values["accuracy"]-wantAcc) > 1e-12 || math.Abs(m.Values["f1"]-wantF1) > 1e-12 {
			return fmt.Errorf("accuracy %v f1 %v, want %v %v", m.Values["accuracy"], m.Values["f1"], wantAcc, wantF1)
		}
		return nil
	})
}

// TestLateSampleJoins: a label that arrives before its sample is counted
// unsampled, and joins once the sample is stored (the join is at read
// time).
func TestLateSampleJoins(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Minute)
	if code, res := f.post(t, "house", "client", `{"id":"r1","label":2.5}`); code != http.StatusOK || res != (labels.Result{Stored: 1, Unsampled: 1}) {
		t.Fatalf("post: %d %+v", code, res)
	}
	insertSamples(t, f.db, []store.SampleRow{{Time: start, Model: "house", ModelVersion: "1", RequestID: "r1",
		Outputs: `{"outputs":[{"name":"y","datatype":"FP32","shape":[1,1],"data":[3.5]}]}`}})
	js, err := f.st.Join(ctx, "house", "", start.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := labels.Evaluate(js)["1"]
	if m.Task != "regression" || m.N != 1 || m.Values["mse"] != 1 || m.Values["mae"] != 1 {
		t.Errorf("metrics %+v, want regression n=1 mse 1 mae 1", m)
	}
}

// TestFeedbackAccess: no token 401, a reader 403, a client and an agent
// 200.
func TestFeedbackAccess(t *testing.T) {
	f := newFixture(t)
	for role, want := range map[string]int{"": 401, "reader": 403, "client": 200, "agent": 200} {
		if code, _ := f.post(t, "iris", role, `{"id":"a","label":1}`); code != want {
			t.Errorf("role %q: %d, want %d", role, code, want)
		}
	}
	if n := f.db.Count(t, "SELECT count() FROM "+f.db.Name+".labels"); n != 2 {
		t.Errorf("%d labels stored, want 2 (the client's and the agent's)", n)
	}
}

// TestBadFeedback: bad input is 400 (413 for the size) and stores nothing,
// not even the good labels of the same call.
func TestBadFeedback(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("x", 257)
	for name, tc := range map[string]struct {
		model, body string
		want        int
	}{
		"empty body":        {"iris", ``, 400},
		"not json":          {"iris", `{"id":`, 400},
		"unknown field":     {"iris", `{"id":"a","label":1,"x":2}`, 400},
		"null label":        {"iris", `[{"id":"a","label":1},{"id":"b","label":null}]`, 400},
		"object label":      {"iris", `[{"id":"a","label":1},{"id":"b","label":{}}]`, 400},
		"id too long":       {"iris", `[{"id":"a","label":1},{"id":"` + long + `","label":1}]`, 400},
		"empty id":          {"iris", `{"id":"","label":1}`, 400},
		"trailing data":     {"iris", `{"id":"a","label":1} {}`, 400},
		"bad model name":    {"Iris%20..", `{"id":"a","label":1}`, 400},
		"too many labels":   {"iris", "[" + strings.Repeat(`{"id":"a","label":1},`, 10_000) + `{"id":"a","label":1}]`, 400},
		"body over 8 MiB":   {"iris", `[{"id":"a","label":"` + strings.Repeat("y", labels.MaxBodyBytes) + `"}]`, 413},
		"label over 1 KiB":  {"iris", `{"id":"a","label":"` + strings.Repeat("y", 1025) + `"}`, 400},
		"infinite number":   {"iris", `{"id":"a","label":1e400}`, 400},
		"array of non-objs": {"iris", `[1,2]`, 400},
	} {
		t.Run(name, func(t *testing.T) {
			if code, _ := f.post(t, tc.model, "client", tc.body); code != tc.want {
				t.Errorf("%d, want %d", code, tc.want)
			}
		})
	}
	if n := f.db.Count(t, "SELECT count() FROM "+f.db.Name+".labels"); n != 0 {
		t.Errorf("%d labels stored after bad calls, want 0", n)
	}
}

// counterValue reads drover_collector_labels_total{source,status}.
func counterValue(t *testing.T, reg *prometheus.Registry, source, status string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "drover_collector_labels_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var src, st string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					src = l.GetValue()
				case "status":
					st = l.GetValue()
				}
			}
			if src == source && st == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no drover_collector_labels_total{source=%q,status=%q}", source, status)
	return 0
}
