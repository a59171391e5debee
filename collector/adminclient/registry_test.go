package adminclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
)

// TestPublishWireFormat: a meta part first, then one part per file in
// path order with its path, sha256 and size; a refused connection moves
// on to the next collector with a fresh body.
func TestPublishWireFormat(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"model.onnx": "onnx bytes", "eval/golden.csv": "a,y\n1,2\n"}
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	train := filepath.Join(t.TempDir(), "train.csv")
	os.WriteFile(train, []byte("x,y\n1,0\n"), 0o644)
	files["training/train.csv"] = "x,y\n1,0\n"

	type part struct{ name, path, sha, size, body string }
	var got []part
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || r.Method != "POST" || r.URL.Path != "/v1/models/iris/versions" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request", 400)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			got = append(got, part{p.FormName(), p.Header.Get("Drover-Path"), p.Header.Get("Drover-Sha256"), p.Header.Get("Drover-Size"), string(b)})
		}
		w.WriteHeader(201)
		w.Write([]byte(`{"version":4,"content_id":"abc","created":true}`))
	})
	c := newClient(t, adminclient.Config{URLs: []string{deadURL(t), srv.URL}, Token: "tok"})
	var phases []string
	res, meta, err := c.Publish(context.Background(), "iris", dir, adminclient.PublishOptions{
		Message: "m", Author: "a", Parent: 3, TrainingData: train, Label: "y",
		Progress: func(phase string, done, total int64) {
			if len(phases) == 0 || phases[len(phases)-1] != phase {
				phases = append(phases, phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 4 || !res.Created || meta.URL != srv.URL || meta.Status != 201 {
		t.Errorf("result %+v, meta %+v", res, meta)
	}
	if len(got) != 4 || got[0].name != "meta" {
		t.Fatalf("parts %+v", got)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got[0].body), &m); err != nil {
		t.Fatal(err)
	}
	if m["author"] != "a" || m["message"] != "m" || m["parents"].([]any)[0] != 3.0 ||
		m["training_data"].(map[string]any)["path"] != "training/train.csv" || m["training_data"].(map[string]any)["label"] != "y" {
		t.Errorf("meta %s", got[0].body)
	}
	wantPaths := []string{"eval/golden.csv", "model.onnx", "training/train.csv"}
	for i, p := range got[1:] {
		sum := sha256.Sum256([]byte(files[p.path]))
		if p.name != "file" || p.path != wantPaths[i] || p.body != files[p.path] || p.sha != hex.EncodeToString(sum[:]) || p.size != itoa(len(files[p.path])) {
			t.Errorf("part %d: %+v", i+1, p)
		}
	}
	if strings.Join(phases, ",") != "hash,upload" {
		t.Errorf("progress phases %v", phases)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
