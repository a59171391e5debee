package registry

import (
	"bytes"
	"context"
	"log/slog"
	"mime/multipart"
	"strconv"
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
