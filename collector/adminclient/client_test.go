package adminclient_test

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/collector/adminclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadURL returns a URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, cfg adminclient.Config) *adminclient.Client {
	t.Helper()
	c, err := adminclient.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestFailoverOnConnectionErrorsOnly(t *testing.T) {
	var hits atomic.Int32
	good := serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`[{"name":"iris","owner":null,"versions_serving":[3],"hosts":1,"requests_per_second":null,"error_rate":0.5,"latest_version":3}]`))
	})
	dead := deadURL(t)
	c := newClient(t, adminclient.Config{URLs: []string{dead, good.URL}})
	models, meta, err := c.Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if meta.URL != good.URL || meta.Status != 200 || hits.Load() != 1 {
		t.Errorf("answered by %s (%d), %d hits; want %s once", meta.URL, meta.Status, hits.Load(), good.URL)
	}
	if len(models) != 1 || models[0].Name != "iris" || models[0].Owner != nil || models[0].RequestsPerSecond != nil ||
		models[0].ErrorRate == nil || *models[0].ErrorRate != 0.5 || *models[0].LatestVersion != 3 {
		t.Errorf("decoded %+v", models)
	}

	// Writes fail over too when the connection was refused: nothing was sent.
	var posted atomic.Int32
	tok := serve(t, func(w http.ResponseWriter, r *http.Request) {
		posted.Add(1)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"name":"ci","role":"reader","token":"s3cret","created":"2026-12-04T18:10:00Z"}`))
	})
	c2 := newClient(t, adminclient.Config{URLs: []string{dead, tok.URL}})
	nt, _, err := c2.CreateToken(context.Background(), adminclient.TokenRequest{Name: "ci", Role: "reader"})
	if err != nil || nt.Token != "s3cret" || posted.Load() != 1 {
		t.Errorf("CreateToken after a refused URL: %+v, %v, %d posts", nt, err, posted.Load())
	}

	// An HTTP answer, even 503, is final: the next URL is not asked.
	var second atomic.Int32
	busy := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: clickhouse down", http.StatusServiceUnavailable)
	})
	other := serve(t, func(w http.ResponseWriter, r *http.Request) { second.Add(1) })
	c3 := newClient(t, adminclient.Config{URLs: []string{busy.URL, other.URL}})
	_, _, err = c3.Cluster(context.Background())
	var ae *adminclient.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Message != "not ready: clickhouse down" {
		t.Errorf("err %v, want APIError 503 with the body's text", err)
	}
	if second.Load() != 0 {
		t.Error("the second collector was asked after an HTTP answer")
	}
}

// TestWriteNotRepeated: a write whose connection broke after it was sent
// may have been done; it is not sent to the next collector.
func TestWriteNotRepeated(t *testing.T) {
	broken := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // no answer
		}
	})
	var second atomic.Int32
	other := serve(t, func(w http.ResponseWriter, r *http.Request) { second.Add(1); w.Write([]byte("[]")) })
	c := newClient(t, adminclient.Config{URLs: []string{broken.URL, other.URL}})
	_, _, err := c.CancelJob(context.Background(), "job-1")
	var ue *adminclient.UnreachableError
	if !errors.As(err, &ue) || !ue.Stopped || len(ue.Attempts) != 1 {
		t.Fatalf("err %v, want an UnreachableError that stopped after one attempt", err)
	}
	if second.Load() != 0 {
		t.Error("the write was sent to the second collector")
	}
	// A read is safe to repeat.
	if _, m, err := c.Jobs(context.Background(), adminclient.JobFilter{}); err != nil || m.URL != other.URL || second.Load() != 1 {
		t.Errorf("read after a broken connection: %v, second collector asked %d times", err, second.Load())
	}
}

func TestUnreachableListsEveryAttempt(t *testing.T) {
	d1, d2 := deadURL(t), deadURL(t)
	c := newClient(t, adminclient.Config{URLs: []string{d1, d2}})
	_, _, err := c.Jobs(context.Background(), adminclient.JobFilter{Model: "iris"})
	var ue *adminclient.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err %v, want *UnreachableError", err)
	}
	if len(ue.Attempts) != 2 || ue.Attempts[0].URL != d1 || ue.Attempts[1].URL != d2 {
		t.Fatalf("attempts %+v", ue.Attempts)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err %v does not wrap ECONNREFUSED", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, d1+": dial tcp") || !strings.Contains(msg, d2+": dial tcp") || ue.Path != "/v1/jobs?model=iris" {
		t.Errorf("message %q, path %q", msg, ue.Path)
	}
}

func TestAPIErrorBodies(t *testing.T) {
	cases := []struct {
		name, body, ctype string
		status            int
		want              string
	}{
		{"json error", `{"error":"job job-1 is running"}`, "application/json", 409, "job job-1 is running"},
		{"text", "job job-1: unknown job\n", "text/plain", 404, "job job-1: unknown job"},
		{"empty", "", "", 403, "Forbidden"},
		{"json without error", `{"message":"x"}`, "application/json", 400, `{"message":"x"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c := newClient(t, adminclient.Config{URLs: []string{s.URL}})
			_, _, err := c.RetryJob(context.Background(), "job-1")
			var ae *adminclient.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %v", err)
			}
			if ae.Status != tc.status || ae.Message != tc.want || ae.Method != "POST" || ae.URL != s.URL+"/v1/jobs/job-1/retry" {
				t.Errorf("got %+v, want status %d message %q", ae, tc.status, tc.want)
			}
			if !adminclient.IsStatus(err, 401, tc.status) || adminclient.IsStatus(err, 200) {
				t.Error("IsStatus")
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	var got struct{ method, uri, auth, ctype, body string }
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.uri, got.auth, got.ctype, got.body = r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)
		w.Write([]byte(`{}`))
	})
	c := newClient(t, adminclient.Config{URLs: []string{s.URL + "/"}, Token: "tok"})
	ctx := context.Background()
	if _, _, err := c.CreateToken(ctx, adminclient.TokenRequest{Name: "ci", Role: "publisher"}); err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.uri != "/v1/tokens" || got.auth != "Bearer tok" || got.ctype != "application/json" || got.body != `{"name":"ci","role":"publisher"}` {
		t.Errorf("sent %+v", got)
	}
	if _, _, err := c.RevokeToken(ctx, "a b/c"); err != nil {
		t.Fatal(err)
	}
	if got.method != "DELETE" || got.uri != "/v1/tokens/a%20b%2Fc" || got.body != "" {
		t.Errorf("sent %+v", got)
	}
	if _, _, err := c.VersionDiff(ctx, "iris", 3, 4); err != nil {
		t.Fatal(err)
	}
	if got.uri != "/v1/models/iris/diff?from=3&to=4" {
		t.Errorf("diff uri %s", got.uri)
	}
	if err := c.Health(ctx); err != nil || got.uri != "/healthz" {
		t.Errorf("Health: %v, %s", err, got.uri)
	}
	if err := c.Ready(ctx); err != nil || got.uri != "/readyz" {
		t.Errorf("Ready: %v, %s", err, got.uri)
	}
}

// TestNullsDecode: fields the API sends as null decode to nil pointers,
// present values to set ones.
func TestNullsDecode(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"version":5,"content_id":null,"created":null,"author":null,"message":null,"parents":[],"source":null,"state":null,
			"metrics":{"requests":null,"error_rate":null,"latency_p50_ms":2.5,"latency_p99_ms":null,"accuracy":null,"f1":null,"mse":null,"golden_score":null,"drift_score":null,"hosts":0}}]`))
	})
	c := newClient(t, adminclient.Config{URLs: []string{s.URL}})
	vs, meta, err := c.Versions(context.Background(), "iris", 0)
	if err != nil {
		t.Fatal(err)
	}
	v := vs[0]
	if v.Version != 5 || v.ContentID != nil || v.Created != nil || v.State != nil || v.Parents == nil || len(v.Parents) != 0 {
		t.Errorf("version %+v", v)
	}
	if v.Metrics.Requests != nil || v.Metrics.LatencyP50Ms == nil || *v.Metrics.LatencyP50Ms != 2.5 || v.Metrics.Hosts == nil || *v.Metrics.Hosts != 0 {
		t.Errorf("metrics %+v", v.Metrics)
	}
	if !strings.Contains(string(meta.Raw), `"content_id":null`) {
		t.Errorf("Meta.Raw is not the body: %s", meta.Raw)
	}
}

func TestTLSCA(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	s.StartTLS()
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := newClient(t, adminclient.Config{URLs: []string{s.URL}, CAFile: ca}).Health(ctx); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	err := newClient(t, adminclient.Config{URLs: []string{s.URL}}).Health(ctx)
	var ue *adminclient.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want UnreachableError about the certificate", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := adminclient.NewClient(adminclient.Config{URLs: []string{s.URL}, CAFile: bad}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, urls := range [][]string{nil, {"localhost:7070"}, {"ftp://x"}, {"http://"}} {
		if _, err := adminclient.NewClient(adminclient.Config{URLs: urls}); err == nil {
			t.Errorf("URLs %q accepted", urls)
		}
	}
	if err := adminclient.New("localhost:7070", "").Health(context.Background()); err == nil || !strings.Contains(err.Error(), "want http://host:port") {
		t.Errorf("New with a bad URL: Health returned %v", err)
	}
	if got := adminclient.SplitURLs(" http://a:1/, ,http://b:2 "); len(got) != 2 || got[0] != "http://a:1" || got[1] != "http://b:2" {
		t.Errorf("SplitURLs %q", got)
	}
}
