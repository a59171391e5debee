package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestHTTPTwoStepPublish: blobs PUT under their digest, then a commit that
// names them, is a version; every bad step is refused with its reason and
// leaves no blob under the digest and no record; the one-request
// multipart publish still works beside it.
func TestHTTPTwoStepPublish(t *testing.T) {
	f := newFixture(t)
	srv := newAPIServer(t, f)
	ctx := context.Background()
	model := linear(t, 7)
	golden := []byte("a,b,y\n1,2,3\n")

	do := func(method, path string, body io.Reader, length int64, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		<-srv.done
		return resp.StatusCode, string(raw)
	}
	put := func(data []byte, digest string) (int, string) {
		return do("PUT", "/v1/blobs/sha256/"+digest, bytes.NewReader(data), int64(len(data)))
	}
	commit := func(c string) (int, string) {
		return do("POST", "/v1/models/iris/commit", strings.NewReader(c), int64(len(c)))
	}
	files := func(size int) string {
		return fmt.Sprintf(`[{"path":"model.onnx","sha256":%q,"size":%d},{"path":"eval/golden.csv","sha256":%q,"size":%d}]`,
			digestOf(model), size, digestOf(golden), len(golden))
	}

	// Step 1: the blobs.
	for _, b := range [][]byte{model, golden, model} { // the second PUT of a blob verifies it again
		code, body := put(b, digestOf(b))
		var got StagedBlob
		if code != 201 || json.Unmarshal([]byte(body), &got) != nil || got.SHA256 != digestOf(b) || got.Size != int64(len(b)) {
			t.Fatalf("PUT blob: %d %s", code, body)
		}
	}
	bad := []byte("not the bytes the digest names")
	wrong := digestOf([]byte("other"))
	for name, tc := range map[string]struct {
		code   int
		has    string
		status func() (int, string)
	}{
		"wrong digest": {400, "digest mismatch", func() (int, string) { return put(bad, wrong) }},
		"bad digest":   {400, "64 lowercase hex", func() (int, string) { return put(bad, "ABC") }},
		"no length": {411, "Content-Length", func() (int, string) {
			return do("PUT", "/v1/blobs/sha256/"+wrong, io.NopCloser(bytes.NewReader(bad)), -1)
		}},
		"too large": {413, "more than", func() (int, string) { return put(bad, wrong) }},
		"unstaged file": {404, "not staged", func() (int, string) {
			return commit(`{"model":"iris","files":[{"path":"model.onnx","sha256":"` + wrong + `","size":3}]}`)
		}},
		"wrong size":  {400, "listed with 5 bytes", func() (int, string) { return commit(`{"model":"iris","files":` + files(5) + `}`) }},
		"other model": {400, "in a request for", func() (int, string) { return commit(`{"model":"other","files":` + files(len(model)) + `}`) }},
		"merge source": {400, "merge", func() (int, string) {
			return commit(`{"model":"iris","files":` + files(len(model)) + `,"meta":{"source":"merge"}}`)
		}},
		"unknown field": {400, "unknown field", func() (int, string) { return commit(`{"model":"iris","files":[],"extra":1}`) }},
		"no model.onnx": {400, "no model.onnx", func() (int, string) { return commit(`{"model":"iris","files":[]}`) }},
		"not json":      {400, "commit", func() (int, string) { return commit(`{"model":`) }},
	} {
		if name == "too large" { // a raw request: net/http's client would not send it
			tc.status = func() (int, string) {
				conn, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				fmt.Fprintf(conn, "PUT /v1/blobs/sha256/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", wrong, int64(MaxFileBytes)+1)
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				<-srv.done
				return resp.StatusCode, string(raw)
			}
		}
		code, body := tc.status()
		if code != tc.code || !strings.Contains(body, tc.has) {
			t.Errorf("%s: %d %s; want %d with %q", name, code, body, tc.code, tc.has)
		}
	}
	if ok, _ := f.blobs.Exists(ctx, wrong); ok {
		t.Error("a blob was stored under a digest its bytes do not have")
	}

	// A cut PUT stores nothing.
	cut := []byte(strings.Repeat("cut ", 1<<16))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /v1/blobs/sha256/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", digestOf(cut), len(cut))
	conn.Write(cut[:len(cut)/2])
	conn.Close()
	if got := <-srv.done; !strings.HasPrefix(got, "PUT /v1/blobs/") {
		t.Fatalf("finished %s", got)
	}
	if ok, _ := f.blobs.Exists(ctx, digestOf(cut)); ok {
		t.Error("a cut upload's blob was stored")
	}
	if n := f.records(t); n != 0 {
		t.Fatalf("%d records after refused commits, want 0", n)
	}

	// Step 2: the commit; the same content again is the same version.
	c := `{"model":"iris","files":` + files(len(model)) + `,"meta":{"author":"ana","message":"two steps"}}`
	code, body := commit(c)
	var res PublishResult
	if code != 201 || json.Unmarshal([]byte(body), &res) != nil || res.Version != 1 || !res.Created {
		t.Fatalf("commit: %d %s", code, body)
	}
	if code, body = commit(c); code != 200 || !strings.Contains(body, `"version":1`) || !strings.Contains(body, `"created":false`) {
		t.Errorf("the same commit again: %d %s; want 200, version 1, not created", code, body)
	}
	v, err := f.reg.Version(ctx, "iris", 1)
	if err != nil || v.Author != "ana" || len(v.Files) != 3 {
		t.Fatalf("version 1: %+v, %v", v, err)
	}
	for _, fi := range v.Files {
		if fi.Path == "eval/golden.csv" && !bytes.Equal(blobBytes(t, f, fi.SHA256), golden) {
			t.Error("eval/golden.csv differs from what was PUT")
		}
	}

	// The one-request multipart publish is still served.
	other := linear(t, 8)
	ct, mp := multipartBody(t, other, digestOf(other))
	code, body = do("POST", "/v1/models/iris/versions", bytes.NewReader(mp), int64(len(mp)), "Content-Type", ct)
	if code != 201 || !strings.Contains(body, `"version":2`) {
		t.Errorf("multipart publish: %d %s", code, body)
	}
}

func blobBytes(t *testing.T, f *fixture, digest string) []byte {
	t.Helper()
	r, err := f.blobs.Open(context.Background(), digest)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, r)
}
