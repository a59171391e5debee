package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/shared/manifest"
)

// apiServer serves the registry's routes (commit: the local Registry) and
// records the requests' Range headers. done receives one value per
// finished request, so a test can wait for a handler whose client left.
type apiServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
	done   chan string
	// cutAfter, when > 0, aborts the next blob response after that many
	// bytes (once), as a dropped connection would.
	cutAfter int
}

// cutWriter aborts the response after n bytes.
type cutWriter struct {
	http.ResponseWriter
	n int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.n {
		c.ResponseWriter.Write(p[:c.n])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.n -= len(p)
	return c.ResponseWriter.Write(p)
}

func newAPIServer(t *testing.T, f *fixture) *apiServer {
	t.Helper()
	mux := http.NewServeMux()
	for p, h := range f.reg.Routes(nil) {
		mux.Handle(p, h)
	}
	s := &apiServer{done: make(chan string, 1000)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s.done <- r.Method + " " + r.URL.Path }()
		s.mu.Lock()
		if rg := r.Header.Get("Range"); rg != "" {
			s.ranges = append(s.ranges, rg)
		}
		if s.cutAfter > 0 && strings.HasPrefix(r.URL.Path, "/v1/blobs/") {
			w = &cutWriter{ResponseWriter: w, n: s.cutAfter}
			s.cutAfter = 0
		}
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// droverctl runs a command of collector/cli in-process against url and
// returns its exit code and output.
func droverctl(t *testing.T, url string, json bool, run func(ctx context.Context, a *cli.App) error) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &cli.App{Opts: cli.Options{Collector: url}, Getenv: func(string) string { return "" }, Out: &out, Err: &errb}
	if json {
		a.Opts.Output = cli.OutputJSON
	}
	defer a.Close()
	err := run(context.Background(), a)
	cli.PrintError(&errb, err)
	return cli.ExitCode(err), out.String(), errb.String()
}

func writeDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func TestHTTPPublishShowPullRoundTrip(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	files := map[string][]byte{
		manifest.ModelFile: linear(t, 1),
		"eval/golden.csv":  []byte("a,b,y\n1,2,3\n"),
		manifest.FileName:  []byte(publisherYAML),
	}
	dir := writeDir(t, files)

	code, out, stderr := droverctl(t, srv.URL, true, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "iris", dir, cli.PublishFlags{Message: "first", Author: "ana"})
	})
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	res := decode[map[string]any](t, out)
	if res["version"] != 1.0 || res["created"] != true || res["content_id"] == "" || len(res) != 3 {
		t.Fatalf("publish answered %s", out)
	}

	// show: the record, every field present.
	code, out, stderr = droverctl(t, srv.URL, true, func(ctx context.Context, a *cli.App) error { return a.VersionShow(ctx, "iris", "1") })
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, stderr)
	}
	doc := decode[map[string]json.RawMessage](t, out)
	for _, k := range []string{"model", "version", "content_id", "files", "created", "author", "message", "parents", "source", "incident", "job", "signature", "state", "updated"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("record lacks %q: %s", k, out)
		}
	}
	rec := decode[adminclient.VersionRecord](t, out)
	if rec.ContentID != res["content_id"] || *rec.Author != "ana" || *rec.Message != "first" || rec.Incident != nil ||
		string(doc["parents"]) != "[]" || rec.State != "active" || rec.Source != "publish" || len(rec.Files) != 3 {
		t.Errorf("record %s", out)
	}
	var sig bytes.Buffer
	if err := json.Compact(&sig, rec.Signature); err != nil || !strings.Contains(sig.String(), `"inputs":[{"name":"X","datatype":"FP32"`) {
		t.Errorf("signature %s", rec.Signature)
	}
	// The table view.
	code, out, _ = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.VersionShow(ctx, "iris", "1") })
	if code != 0 || !strings.Contains(out, "author:") || !strings.Contains(out, "eval/golden.csv") {
		t.Errorf("show table: exit %d\n%s", code, out)
	}

	// pull: byte for byte, drover.yaml being the registry's.
	dest := filepath.Join(t.TempDir(), "iris", "1")
	code, _, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.Pull(ctx, "iris", "1", dest) })
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	for _, p := range []string{manifest.ModelFile, "eval/golden.csv"} {
		got, err := os.ReadFile(filepath.Join(dest, p))
		if err != nil || !bytes.Equal(got, files[p]) {
			t.Errorf("pulled %s: %d bytes, err %v; want the published %d bytes", p, len(got), err, len(files[p]))
		}
	}
	yml, err := os.ReadFile(filepath.Join(dest, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(yml)
	if err != nil || m.Model != "iris" || m.Version != 1 || m.Lineage.Author != "ana" || m.GoldenSet == nil {
		t.Errorf("pulled drover.yaml: %v\n%s", err, yml)
	}
	if _, err := os.Stat(dest + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", dest, err)
	}
	// Into an existing directory: refused, nothing touched.
	code, _, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.Pull(ctx, "iris", "1", dest) })
	if code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("pull into an existing dir: exit %d: %s", code, stderr)
	}

	// The same content again: the same version, created false, 200.
	code, out, stderr = droverctl(t, srv.URL, true, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "iris", dir, cli.PublishFlags{Message: "again"})
	})
	if code != 0 {
		t.Fatalf("publish again: exit %d: %s", code, stderr)
	}
	if again := decode[map[string]any](t, out); again["version"] != 1.0 || again["created"] != false || again["content_id"] != res["content_id"] {
		t.Errorf("same content published again: %s", out)
	}
	code, out, _ = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "iris", dir, cli.PublishFlags{})
	})
	if code != 0 || out != "iris: already published as version 1 (same content "+res["content_id"].(string)[:12]+")\n" {
		t.Errorf("table: exit %d %q", code, out)
	}
	if n := f.records(t); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

func TestHTTPPublishTrainingData(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	dir := writeDir(t, map[string][]byte{manifest.ModelFile: linear(t, 2)})
	var csv strings.Builder
	csv.WriteString("f0,f1,y\n")
	for i := range 50 {
		fmt.Fprintf(&csv, "%d,%d,%d\n", i, 100-i, i%2)
	}
	train := filepath.Join(t.TempDir(), "train.csv")
	if err := os.WriteFile(train, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "wine", dir, cli.PublishFlags{TrainingData: train, Label: "y"})
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rd, _, err := f.reg.OpenFile(context.Background(), "wine", 1, manifest.FileName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(readAll(t, rd))
	if err != nil || len(m.Features) != 2 || m.Features[0].Name != "f0" || len(m.Features[0].Bins) < 3 {
		t.Errorf("features %+v, err %v", m.Features, err)
	}
	v, err := f.reg.Version(context.Background(), "wine", 1)
	if _, ok := v.File("training/train.csv"); err != nil || !ok {
		t.Errorf("training data not a file of the version: %+v %v", v.Files, err)
	}
}

// multipartBody returns a publish body whose model.onnx part declares
// digest and carries data.
func multipartBody(t *testing.T, data []byte, digest string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"`)
	h.Set(HeaderPath, manifest.ModelFile)
	h.Set(HeaderSHA256, digest)
	h.Set(HeaderSize, strconv.Itoa(len(data)))
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func TestHTTPPublishBadUploadsLeaveNothing(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	model := linear(t, 3)
	ctx := context.Background()

	t.Run("wrong digest", func(t *testing.T) {
		wrong := digestOf([]byte("something else"))
		ct, body := multipartBody(t, model, wrong)
		resp, err := http.Post(srv.URL+"/v1/models/iris/versions", ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(raw), "digest mismatch") {
			t.Errorf("%d %s", resp.StatusCode, raw)
		}
		<-srv.done
		for _, d := range []string{wrong, digestOf(model)} {
			if ok, _ := f.blobs.Exists(ctx, d); ok {
				t.Errorf("blob %s stored", d)
			}
		}
	})

	t.Run("cut upload", func(t *testing.T) {
		ct, body := multipartBody(t, model, digestOf(model))
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/models/iris/versions HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, len(body))
		conn.Write(body[:len(body)/2])
		conn.Close()
		if got := <-srv.done; got != "POST /v1/models/iris/versions" {
			t.Fatalf("finished %s", got)
		}
		if ok, _ := f.blobs.Exists(ctx, digestOf(model)); ok {
			t.Error("a cut upload's blob was stored")
		}
	})
	if n := f.records(t); n != 0 {
		t.Errorf("%d records after bad uploads, want 0", n)
	}

	t.Run("errors", func(t *testing.T) {
		ct, body := multipartBody(t, []byte("not onnx"), digestOf([]byte("not onnx")))
		cases := []struct {
			method, path, ct string
			body             []byte
			status           int
			has              string
		}{
			{"POST", "/v1/models/bad%20name/versions", ct, body, 400, "model name"},
			{"POST", "/v1/models/iris/versions", "application/json", []byte("{}"), 400, "multipart/form-data"},
			{"POST", "/v1/models/iris/versions", ct, body, 400, "not an ONNX model"},
			{"GET", "/v1/models/iris/versions/0", "", nil, 400, "positive integer"},
			{"GET", "/v1/models/iris/versions/7", "", nil, 404, "not found"},
			{"GET", "/v1/models/iris/versions/7/files", "", nil, 404, "not found"},
			{"DELETE", "/v1/models/iris/versions/7", "", nil, 404, "not found"},
			{"GET", "/v1/blobs/sha256/XYZ", "", nil, 400, "64 lowercase hex"},
			{"GET", "/v1/blobs/sha256/" + digestOf([]byte("nope")), "", nil, 404, "not found"},
			{"POST", "/v1/models/iris/merge", "application/json", []byte(`{"versions":[1]}`), 400, "two positive"},
			{"POST", "/v1/models/iris/merge", "application/json", []byte(`{"versions":[1,2],"bogus":1}`), 400, "bogus"},
			{"POST", "/v1/models/iris/merge", "application/json", []byte(`{"versions":[1,2],"weights":[-1,2]}`), 400, "weights"},
			{"POST", "/v1/models/iris/merge", "application/json", []byte(`{"versions":[1,2],"weights":[1e300,1]}`), 400, "weights"},
		}
		for _, tc := range cases {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			<-srv.done
			var e struct{ Error string }
			if resp.StatusCode != tc.status || json.Unmarshal(raw, &e) != nil || !strings.Contains(e.Error, tc.has) {
				t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, resp.StatusCode, raw, tc.status, tc.has)
			}
		}
	})
	http.DefaultClient.CloseIdleConnections()
}

func TestHTTPDeleteAndMerge(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	for i := range 2 {
		dir := writeDir(t, map[string][]byte{manifest.ModelFile: linear(t, float32(i+5))})
		if code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
			return a.Publish(ctx, "house", dir, cli.PublishFlags{})
		}); code != 0 {
			t.Fatalf("publish: %d %s", code, stderr)
		}
	}

	code, out, stderr := droverctl(t, srv.URL, true, func(ctx context.Context, a *cli.App) error {
		return a.Merge(ctx, "house", "1", "2", "0.25,0.75", "blend")
	})
	if code != 0 {
		t.Fatalf("merge: exit %d: %s", code, stderr)
	}
	res := decode[map[string]any](t, out)
	if res["version"] != 3.0 || res["created"] != true || len(res) != 3 {
		t.Errorf("merge answered %s", out)
	}
	v, err := f.reg.Version(context.Background(), "house", 3)
	if err != nil || v.Source != SourceMerge || v.Message != "blend" || len(v.Parents) != 2 {
		t.Errorf("merged record %+v, %v", v, err)
	}
	code, out, _ = droverctl(t, srv.URL, true, func(ctx context.Context, a *cli.App) error {
		return a.Merge(ctx, "house", "1", "2", "0.25,0.75", "")
	})
	if again := decode[map[string]any](t, out); code != 0 || again["version"] != 3.0 || again["created"] != false {
		t.Errorf("merge again: exit %d %s", code, out)
	}
	code, _, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Merge(ctx, "house", "1", "2", "0.5", "")
	})
	if code != 2 || !strings.Contains(stderr, "--weights") {
		t.Errorf("bad weights: exit %d %s", code, stderr)
	}

	// In use: refused with the reason, exit 5, the record unchanged.
	f.mu.Lock()
	f.inUse[2] = "serving on serve-1"
	f.mu.Unlock()
	code, _, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.VersionDelete(ctx, "house", "2") })
	if code != cli.ExitRefused || !strings.Contains(stderr, "serving on serve-1") || !strings.Contains(stderr, "409") {
		t.Errorf("delete in use: exit %d: %s", code, stderr)
	}
	if v, _ := f.reg.Version(context.Background(), "house", 2); v.State != StateActive {
		t.Errorf("refused delete changed the state to %s", v.State)
	}
	code, out, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.VersionDelete(ctx, "house", "1") })
	if code != 0 || out != "house: version 1 deleted\n" {
		t.Errorf("delete: exit %d %q %s", code, out, stderr)
	}
	code, _, stderr = droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Pull(ctx, "house", "1", filepath.Join(t.TempDir(), "1"))
	})
	if code != 1 || !strings.Contains(stderr, "deleted") {
		t.Errorf("pull of a deleted version: exit %d %s", code, stderr)
	}
}

func TestHTTPBlobRangesAndResume(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	big := randomBytes(3<<20+17, 9)
	model := linear(t, 4)
	dir := writeDir(t, map[string][]byte{manifest.ModelFile: model, "weights.bin": big})
	if code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "big", dir, cli.PublishFlags{})
	}); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}

	d := digestOf(big)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/blobs/sha256/"+d, nil)
	req.Header.Set("Range", "bytes=1000-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, big[1000:]) || resp.Header.Get("ETag") != `"`+d+`"` {
		t.Errorf("range: %d, %d bytes, ETag %q", resp.StatusCode, len(got), resp.Header.Get("ETag"))
	}
	req, _ = http.NewRequest("GET", srv.URL+"/v1/blobs/sha256/"+d, nil)
	req.Header.Set("If-None-Match", `"`+d+`"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	// A pull that an earlier one left half done resumes with a Range
	// request; a corrupt leftover is detected and fetched again.
	dest := filepath.Join(t.TempDir(), "big", "1")
	if err := os.MkdirAll(dest+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest+".tmp", "weights.bin"), big[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(model[:len(model)/2])
	bad[0] ^= 0xff
	if err := os.WriteFile(filepath.Join(dest+".tmp", manifest.ModelFile), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest+".tmp", "stale.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.ranges = nil
	srv.mu.Unlock()
	code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.Pull(ctx, "big", "1", dest) })
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	for p, want := range map[string][]byte{"weights.bin": big, manifest.ModelFile: model} {
		if got, err := os.ReadFile(filepath.Join(dest, p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", p, len(got), err, len(want))
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "stale.txt")); !os.IsNotExist(err) {
		t.Errorf("stale file kept: %v", err)
	}
	srv.mu.Lock()
	ranges := srv.ranges
	srv.mu.Unlock()
	if !contains(ranges, "bytes=1048576-") {
		t.Errorf("Range requests %q, want one from 1048576", ranges)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestHTTPPullResumesACutDownload: the connection drops in the middle of a
// file; the same pull asks for the rest with a Range request and the file
// comes out whole.
func TestHTTPPullResumesACutDownload(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	big := randomBytes(2<<20+5, 11)
	dir := writeDir(t, map[string][]byte{manifest.ModelFile: linear(t, 6), "a-weights.bin": big})
	if code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error {
		return a.Publish(ctx, "cut", dir, cli.PublishFlags{})
	}); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	srv.mu.Lock()
	srv.cutAfter, srv.ranges = 700_000, nil // "a-weights.bin" is the first file pulled
	srv.mu.Unlock()
	dest := filepath.Join(t.TempDir(), "cut", "1")
	code, _, stderr := droverctl(t, srv.URL, false, func(ctx context.Context, a *cli.App) error { return a.Pull(ctx, "cut", "1", dest) })
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "a-weights.bin")); err != nil || !bytes.Equal(got, big) {
		t.Errorf("a-weights.bin: %d bytes (%v), want %d", len(got), err, len(big))
	}
	srv.mu.Lock()
	ranges := srv.ranges
	srv.mu.Unlock()
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], "bytes=") || ranges[0] == "bytes=0-" {
		t.Errorf("Range requests %q, want one resuming past the cut", ranges)
	}
}
