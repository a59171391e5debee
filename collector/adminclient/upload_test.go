package adminclient

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUploadBodyReadAndWriteToAgree: the publish body is the same bytes
// through Read (one small buffer at a time) and through WriteTo, and it
// parses as the multipart upload the registry reads: the meta part, then
// each file with its headers and exact bytes.
func TestUploadBodyReadAndWriteToAgree(t *testing.T) {
	dir := t.TempDir()
	contents := map[string][]byte{"model.onnx": bytes.Repeat([]byte("onnx"), 300000), "empty.bin": nil, "drover.yaml": []byte("gate: {}\n")}
	var files []localFile
	for _, name := range []string{"drover.yaml", "empty.bin", "model.onnx"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, contents[name], 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, localFile{path: name, disk: p, size: int64(len(contents[name])), sha256: strings.Repeat("0", 64)})
	}
	meta := []byte(`{"message":"m"}`)
	var progress []int64
	body, ct, err := newUploadBody(context.Background(), meta, files, func(n int64) { progress = append(progress, n) })
	if err != nil {
		t.Fatal(err)
	}
	var viaWriteTo bytes.Buffer
	if _, err := body.WriteTo(&viaWriteTo); err != nil {
		t.Fatal(err)
	}
	total := int64(len(contents["model.onnx"]) + len(contents["drover.yaml"]))
	if len(progress) == 0 || progress[len(progress)-1] != total {
		t.Errorf("progress %v, want it to end at %d", progress, total)
	}
	body2, ct2, _ := newUploadBody(context.Background(), meta, files, func(int64) {})
	defer body2.Close()
	viaRead, err := io.ReadAll(struct{ io.Reader }{body2}) // hides WriteTo
	if err != nil {
		t.Fatal(err)
	}
	// Each body has its own random boundary.
	_, p1, _ := mime.ParseMediaType(ct)
	_, p2, _ := mime.ParseMediaType(ct2)
	viaRead = bytes.ReplaceAll(viaRead, []byte(p2["boundary"]), []byte(p1["boundary"]))
	if !bytes.Equal(viaRead, viaWriteTo.Bytes()) {
		t.Fatalf("Read gives %d bytes, WriteTo %d: they differ", len(viaRead), viaWriteTo.Len())
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(viaRead), params["boundary"])
	p, err := mr.NextPart()
	if err != nil || p.FormName() != "meta" {
		t.Fatalf("first part %v, %v; want meta", p, err)
	}
	if got, _ := io.ReadAll(p); !bytes.Equal(got, meta) {
		t.Errorf("meta part %q", got)
	}
	for _, f := range files {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(p)
		if p.Header.Get("Drover-Path") != f.path || p.Header.Get("Drover-Size") != strconv.FormatInt(f.size, 10) || !bytes.Equal(got, contents[f.path]) {
			t.Errorf("part %s: headers %v, %d bytes; want %d bytes", f.path, p.Header, len(got), f.size)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after the files: %v, want EOF", err)
	}
}
