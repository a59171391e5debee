package registry

import (
	"bytes"
	"context"
	"log/slog"
	"mime/multipart"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// FuzzPublishBody feeds arbitrary publish bodies to the part-by-part
// reader: it must never panic, and whatever it accepts must be files whose
// bytes matched their declared digests (Stage verified them).
func FuzzPublishBody(f *testing.F) {
	model := []byte("\x08\x07 not a whole model, the digest is what matters")
	_, good := multipartBodyBoundary(model, digestOf(model), "B")
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"author\":\"a\",\"bogus\":1}\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"file\"\r\nDrover-Path: ../x\r\nDrover-Size: -1\r\n\r\n\r\n--B--\r\n"))
	blobs, _ := fileStore(f)
	reg := New(nil, blobs, Options{Logger: slog.New(slog.DiscardHandler)})
	h := &handlers{reg: reg, commit: reg.Commit}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := h.stage(context.Background(), "iris", multipart.NewReader(bytes.NewReader(body), "B"))
		if err != nil {
			return // refused: fine, as long as it did not panic
		}
		for _, fi := range c.Files {
			if ok, err := blobs.Exists(context.Background(), fi.SHA256); err != nil || !ok {
				t.Fatalf("accepted %s (sha256 %s) but the blob is not stored: %v", fi.Path, fi.SHA256, err)
			}
		}
	})
}

// multipartBodyBoundary is multipartBody with a fixed boundary.
func multipartBodyBoundary(data []byte, digest, boundary string) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.SetBoundary(boundary)
	h := map[string][]string{
		"Content-Disposition": {`form-data; name="file"`},
		HeaderPath:            {"model.onnx"},
		HeaderSHA256:          {digest},
		HeaderSize:            {strconv.Itoa(len(data))},
	}
	pw, _ := mw.CreatePart(h)
	pw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// FuzzCommitBody feeds arbitrary bodies to the commit route: it must
// never panic, answer 5xx for bad input, or hand the allocator a commit
// for another model or with the merge route's source.
func FuzzCommitBody(f *testing.F) {
	f.Add([]byte(`{"model":"iris","files":[{"path":"model.onnx","sha256":"` + strings.Repeat("ab", 32) + `","size":3}],"meta":{"author":"a"}}`))
	f.Add([]byte(`{"model":"other","files":[]}`))
	f.Add([]byte(`{"model":"iris","files":[],"meta":{"source":"merge"}}`))
	f.Add([]byte(`{"model":"iris","files":null,"meta":{"parents":[1,2,3]},"x":1}`))
	f.Add([]byte(`[`))
	blobs, _ := fileStore(f)
	h := &handlers{reg: New(nil, blobs, Options{Logger: slog.New(slog.DiscardHandler)})}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got *Commit
		h.commit = func(_ context.Context, c Commit) (Version, bool, error) {
			got = &c
			return Version{Model: c.Model, Version: 1}, true, nil
		}
		req := httptest.NewRequest("POST", "/v1/models/iris/commit", bytes.NewReader(body))
		req.SetPathValue("model", "iris")
		rec := httptest.NewRecorder()
		h.commitRoute(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for input: %s", rec.Code, rec.Body)
		}
		if got != nil && (got.Model != "iris" || got.Meta.Source == SourceMerge) {
			t.Fatalf("handed on %+v", got)
		}
	})
}
