package adminclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
)

// TestPublishWireFormat: every file is PUT as a blob under its sha256
// with its length, then one commit names the files (path order) and the
// metadata; a refused connection moves on to the next collector.
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

	var mu sync.Mutex
	blobs := map[string]string{} // digest -> body
	var commit string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if d, ok := strings.CutPrefix(r.URL.Path, "/v1/blobs/sha256/"); ok && r.Method == "PUT" {
			if r.ContentLength != int64(len(b)) || len(r.TransferEncoding) > 0 {
				http.Error(w, "want a Content-Length", http.StatusLengthRequired)
				return
			}
			blobs[d] = string(b)
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"sha256":%q,"size":%d}`, d, len(b))
			return
		}
		if r.Method != "POST" || r.URL.Path != "/v1/models/iris/commit" {
			http.Error(w, "bad request", 400)
			return
		}
		commit = string(b)
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
	var got struct {
		Model string `json:"model"`
		Files []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
			Size   int    `json:"size"`
		} `json:"files"`
		Meta map[string]any `json:"meta"`
	}
	if err := json.Unmarshal([]byte(commit), &got); err != nil {
		t.Fatalf("commit %q: %v", commit, err)
	}
	m := got.Meta
	if got.Model != "iris" || m["author"] != "a" || m["message"] != "m" || m["parents"].([]any)[0] != 3.0 ||
		m["training_data"].(map[string]any)["path"] != "training/train.csv" || m["training_data"].(map[string]any)["label"] != "y" {
		t.Errorf("commit %s", commit)
	}
	wantPaths := []string{"eval/golden.csv", "model.onnx", "training/train.csv"}
	if len(got.Files) != len(wantPaths) || len(blobs) != len(wantPaths) {
		t.Fatalf("commit files %+v, blobs %d; want %v", got.Files, len(blobs), wantPaths)
	}
	for i, f := range got.Files {
		sum := sha256.Sum256([]byte(files[f.Path]))
		if f.Path != wantPaths[i] || f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != len(files[f.Path]) || blobs[f.SHA256] != files[f.Path] {
			t.Errorf("file %d: %+v (blob %q)", i, f, blobs[f.SHA256])
		}
	}
	if strings.Join(phases, ",") != "hash,upload" {
		t.Errorf("progress phases %v", phases)
	}
}
