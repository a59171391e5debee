package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

func TestWebhookJob(t *testing.T) {
	db := migrated(t)
	secret := []byte("s3cret")
	var mgr *Manager
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs/{id}/status", func(w http.ResponseWriter, r *http.Request) { mgr.callback(w, r) })
	admin := httptest.NewServer(mux)
	defer admin.Close()

	type delivery struct {
		spec Spec
		err  string
	}
	got := make(chan delivery, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(JobIDHeader), body, r.Header.Get(SignatureHeader), time.Now()); err != nil {
			got <- delivery{err: "bad signature: " + err.Error()}
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var spec Spec
		if err := json.Unmarshal(body, &spec); err != nil || r.Header.Get(JobIDHeader) != spec.ID {
			got <- delivery{err: "bad body"}
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		got <- delivery{spec: spec}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer receiver.Close()

	cfg := testConfig(t)
	cfg.Executor = ExecutorWebhook
	cfg.Webhook.URL = receiver.URL + "/train"
	cfg.Webhook.Secret = string(secret)
	cfg.Webhook.CallbackURL = admin.URL + "/"
	n := newNode(t, db, "node-a", cfg, true)
	mgr = n.Manager

	callback := func(url string, key []byte, r CallbackRequest) int {
		body, _ := json.Marshal(r)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		id := path.Base(path.Dir(url)) // .../v1/jobs/{id}/status
		req.Header.Set(SignatureHeader, Sign(key, id, time.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	id, _, err := n.Schedule(context.Background(), incident("iris", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the receiver got no request")
	}
	if d.err != "" {
		t.Fatalf("receiver: %s", d.err)
	}
	wantURL := admin.URL + "/v1/jobs/" + id + "/status"
	if d.spec.ID != id || d.spec.Attempt != 1 || d.spec.CallbackURL != wantURL {
		t.Fatalf("spec = %+v, want callback %s", d.spec, wantURL)
	}
	if row, _ := n.Job(context.Background(), id); row.State != StateRunning {
		t.Errorf("after the POST the job is %s, want running until the callback", row.State)
	}
	for name, tc := range map[string]struct {
		key  []byte
		req  CallbackRequest
		want int
	}{
		"wrong key":     {[]byte("other"), CallbackRequest{State: StateSucceeded, Attempt: 1}, http.StatusUnauthorized},
		"bad state":     {secret, CallbackRequest{State: "done", Attempt: 1}, http.StatusBadRequest},
		"other attempt": {secret, CallbackRequest{State: StateSucceeded, Attempt: 2}, http.StatusConflict},
	} {
		if code := callback(d.spec.CallbackURL, tc.key, tc.req); code != tc.want {
			t.Errorf("%s: status %d, want %d", name, code, tc.want)
		}
	}
	if code := callback(admin.URL+"/v1/jobs/job-000/status", secret, CallbackRequest{State: StateSucceeded, Attempt: 1}); code != http.StatusNotFound {
		t.Errorf("unknown job: status %d, want 404", code)
	}
	ok := CallbackRequest{State: StateSucceeded, ResultVersion: 4, Attempt: 1}
	if code := callback(d.spec.CallbackURL, secret, ok); code != http.StatusNoContent {
		t.Fatalf("callback: status %d, want 204", code)
	}
	row := waitTerminal(t, n.Manager, id, 10*time.Second)
	if row.State != StateSucceeded || row.ResultVersion != 4 {
		t.Errorf("row = %+v", row)
	}
	if code := callback(d.spec.CallbackURL, secret, ok); code != http.StatusConflict {
		t.Errorf("replayed callback: status %d, want 409", code)
	}
	if got := n.ev.kinds(id); !slices.Equal(got, []string{EventQueued, EventStarted, EventSucceeded}) {
		t.Errorf("events = %v", got)
	}
}

// TestWebhookCallbackOnOtherNode: the receiver's callback reaches a
// collector that does not run the attempt; it records the outcome and the
// running node stops waiting.
func TestWebhookCallbackOnOtherNode(t *testing.T) {
	db := migrated(t)
	secret := []byte("s3cret")
	specs := make(chan Spec, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s Spec
		_ = json.NewDecoder(r.Body).Decode(&s)
		specs <- s
	}))
	defer receiver.Close()
	cfg := testConfig(t)
	cfg.Executor, cfg.Webhook.URL, cfg.Webhook.Secret, cfg.Webhook.CallbackURL = ExecutorWebhook, receiver.URL, string(secret), "http://collector.invalid"
	a := newNode(t, db, "node-a", cfg, true)
	b := newNode(t, db, "node-b", cfg, false)
	id, _, err := a.Schedule(context.Background(), incident("iris", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-specs:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook request")
	}
	body, _ := json.Marshal(CallbackRequest{State: StateFailed, Error: "no data", Attempt: 1})
	if err := b.Callback(context.Background(), id, body, Sign(secret, id, time.Now(), body)); err != nil {
		t.Fatalf("Callback on node-b: %v", err)
	}
	// The failure counts as an attempt: the job is queued for attempt 2,
	// and node-a stops waiting for attempt 1.
	row, err := b.Job(context.Background(), id)
	if err != nil || row.State != StateQueued || row.Attempt != 2 {
		t.Fatalf("after the callback: %+v, %v", row, err)
	}
	testenv.Eventually(t, 30*time.Second, "node-a stops attempt 1", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.waiters[id] == nil || a.waiters[id].attempt != 1
	})
}

// TestSignatureBindsJobAndTime: a signed message verifies only for its
// job, its body, its secret and within SignatureWindow of its time; a
// captured callback replayed against another job or later is refused.
func TestSignatureBindsJobAndTime(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"state":"succeeded","attempt":1}`)
	at := time.Unix(1_800_000_000, 0)
	sig := Sign(secret, "job-a", at, body)
	if !strings.HasPrefix(sig, "t=1800000000,v1=") {
		t.Fatalf("Sign = %q", sig)
	}
	for name, tc := range map[string]struct {
		secret []byte
		id     string
		body   []byte
		header string
		now    time.Time
		ok     bool
	}{
		"valid":               {secret, "job-a", body, sig, at, true},
		"4 minutes later":     {secret, "job-a", body, sig, at.Add(4 * time.Minute), true},
		"clock 4 minutes off": {secret, "job-a", body, sig, at.Add(-4 * time.Minute), true},
		"6 minutes later":     {secret, "job-a", body, sig, at.Add(6 * time.Minute), false},
		"another job":         {secret, "job-b", body, sig, at, false},
		"another body":        {secret, "job-a", []byte(`{"state":"failed","attempt":1}`), sig, at, false},
		"another secret":      {[]byte("other"), "job-a", body, sig, at, false},
		"rotated: two v1":     {secret, "job-a", body, sig + ",v1=00ff", at, true},
		"old format":          {secret, "job-a", body, "sha256=" + strings.Repeat("ab", 32), at, false},
		"t changed":           {secret, "job-a", body, strings.Replace(sig, "t=1800000000", "t=1800000100", 1), at, false},
		"empty":               {secret, "job-a", body, "", at, false},
	} {
		if err := Verify(tc.secret, tc.id, tc.body, tc.header, tc.now); (err == nil) != tc.ok {
			t.Errorf("%s: Verify = %v, want ok %v", name, err, tc.ok)
		}
	}
}

// FuzzVerify: any header and body are refused or accepted without panic,
// and only the real signature of the body is accepted.
func FuzzVerify(f *testing.F) {
	secret := []byte("s3cret")
	at := time.Unix(1_800_000_000, 0)
	f.Add(Sign(secret, "j", at, []byte("{}")), []byte("{}"))
	f.Add("t=,v1=", []byte(""))
	f.Add("t=1800000000,v1=zz,v1=", []byte(`{"state":"succeeded"}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify(secret, "j", body, header, at) != nil {
			return
		}
		// Accepted: then it is bound to this body and this job.
		if Verify(secret, "j", append(body, 'x'), header, at) == nil || Verify(secret, "k", body, header, at) == nil {
			t.Errorf("%q verifies for another body or job", header)
		}
	})
}
