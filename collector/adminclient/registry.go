package adminclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/drover-ml/drover/shared/durable"
)

// The model registry's endpoints (docs/registry.md, "HTTP API").

// VersionRecord is a version's record: GET /v1/models/{model}/versions/{n}
// and the answer of DELETE on it.
type VersionRecord struct {
	Model   string `json:"model"`
	Version uint64 `json:"version"`
	// ContentID is the hex sha256 over the sorted (path, sha256) pairs of
	// every file but drover.yaml.
	ContentID string `json:"content_id"`
	// Files are every file of the version, sorted by path, drover.yaml
	// (written by the registry) included.
	Files   []VersionFile `json:"files"`
	Created time.Time     `json:"created"`
	Author  *string       `json:"author"`
	Message *string       `json:"message"`
	// Parents are the versions it derives from ([] for none).
	Parents []uint64 `json:"parents"`
	// Source is publish, optimize or merge.
	Source   string  `json:"source"`
	Incident *string `json:"incident"`
	Job      *string `json:"job"`
	// Signature is {"inputs": [...], "outputs": [...]}, each tensor with
	// name, datatype and shape; null when unknown.
	Signature json.RawMessage `json:"signature"`
	// State is active or deleted.
	State   string    `json:"state"`
	Updated time.Time `json:"updated"`
}

// VersionFile is one file of a version.
type VersionFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// URL is set in GET .../files answers: /v1/blobs/sha256/<sha256>.
	URL string `json:"url,omitempty"`
}

// PublishResult is the answer to a publish or a merge.
type PublishResult struct {
	Version   uint64 `json:"version"`
	ContentID string `json:"content_id"`
	// Created is false when the content was already a version of the
	// model; Version is then that version.
	Created bool `json:"created"`
}

// MergeRequest is the body of POST /v1/models/{model}/merge.
type MergeRequest struct {
	Versions []uint64 `json:"versions"`
	// Weights of the two versions; nil means 0.5 each.
	Weights []float64 `json:"weights,omitempty"`
	Message string    `json:"message,omitempty"`
	Author  string    `json:"author,omitempty"`
}

// Progress is told how far a publish or pull is: phase is "hash" (the
// publish's first pass over the files), "upload" or "download"; done and
// total are bytes. It is called from the calling goroutine or one the
// call starts, never concurrently.
type Progress func(phase string, done, total int64)

// PublishOptions are the metadata and local files of a publish.
type PublishOptions struct {
	Message, Author string
	// Parent is the version this one derives from; 0 for none.
	Parent uint64
	// Job is the re-optimization job that produced the version (its
	// lineage.job; with it, source "optimize"): a command or webhook job
	// sets it to its id (DROVER_JOB_ID), and the version becomes the
	// job's result (docs/jobs.md).
	Job string
	// TrainingData is a local CSV (header row) stored as a file of the
	// version (its path inside the directory, else training/<name>);
	// Label is its label column. The registry computes the feature bins.
	TrainingData, Label string
	Progress            Progress
}

func versionPath(model string, n uint64) string {
	return "/v1/models/" + url.PathEscape(model) + "/versions/" + strconv.FormatUint(n, 10)
}

// Version returns GET /v1/models/{model}/versions/{n}: one version's record.
func (c *Client) Version(ctx context.Context, model string, n uint64) (*VersionRecord, *Meta, error) {
	var v VersionRecord
	m, err := c.do(ctx, http.MethodGet, versionPath(model, n), nil, nil, &v)
	return &v, m, err
}

// VersionFiles returns GET /v1/models/{model}/versions/{n}/files.
func (c *Client) VersionFiles(ctx context.Context, model string, n uint64) ([]VersionFile, *Meta, error) {
	var v []VersionFile
	m, err := c.do(ctx, http.MethodGet, versionPath(model, n)+"/files", nil, nil, &v)
	return v, m, err
}

// DeleteVersion is DELETE /v1/models/{model}/versions/{n}; it returns the
// record, now deleted. A version in use is refused (409, with the reason).
func (c *Client) DeleteVersion(ctx context.Context, model string, n uint64) (*VersionRecord, *Meta, error) {
	var v VersionRecord
	m, err := c.do(ctx, http.MethodDelete, versionPath(model, n), nil, nil, &v)
	return &v, m, err
}

// Merge is POST /v1/models/{model}/merge: a new version averaging two.
func (c *Client) Merge(ctx context.Context, model string, req MergeRequest) (*PublishResult, *Meta, error) {
	var v PublishResult
	m, err := c.do(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/merge", nil, req, &v)
	return &v, m, err
}

// localFile is a file of a publish.
type localFile struct {
	path   string // in the version directory, slash-separated
	disk   string
	size   int64
	sha256 string
}

// Publish uploads every regular file under dir (model.onnx, optionally
// drover.yaml and others) and opts.TrainingData as a new version, in the
// two-step publish of docs/registry.md: each file is PUT to
// /v1/blobs/sha256/{digest} (the kernel copies it to the socket; the
// collector verifies the digest as it stores it), then POST
// /v1/models/{model}/commit names the files and the metadata. It reads
// the files twice and never holds one whole: a first pass computes each
// sha256. A file that changes between the passes fails the publish; a
// failed publish leaves no version (staged blobs are collected later).
// It moves on to the next collector when a connection could not be made,
// or, for a blob (content-addressed, so safe to send twice), broke.
func (c *Client) Publish(ctx context.Context, model, dir string, opts PublishOptions) (*PublishResult, *Meta, error) {
	target := "/v1/models/" + url.PathEscape(model) + "/commit"
	fail := func(err error) (*PublishResult, *Meta, error) {
		return nil, nil, fmt.Errorf("publish %s from %s: %w", model, dir, err)
	}
	if c.err != nil {
		return fail(c.err)
	}
	files, meta, err := publishFiles(dir, opts)
	if err != nil {
		return fail(err)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	prog := opts.Progress
	if prog == nil {
		prog = func(string, int64, int64) {}
	}
	var hashed int64
	for i := range files {
		d, err := hashFile(ctx, files[i].disk, func(n int64) { prog("hash", hashed+n, total) })
		if err != nil {
			return fail(err)
		}
		hashed += files[i].size
		files[i].sha256 = d
	}
	commit := publishCommit{Model: model, Meta: meta}
	for _, f := range files {
		commit.Files = append(commit.Files, VersionFile{Path: f.path, SHA256: f.sha256, Size: f.size})
	}
	commitJSON, err := json.Marshal(commit)
	if err != nil {
		return fail(err)
	}

	var attempts []Attempt
next:
	for _, base := range c.urls {
		var sent int64
		for i := range files {
			f := &files[i]
			err := c.putBlob(ctx, base, f, func(n int64) { prog("upload", sent+n, total) })
			var tr *transportError
			switch {
			case err == nil:
				sent += f.size
				prog("upload", sent, total)
				continue
			case ctx.Err() != nil:
				return fail(ctx.Err())
			case errors.As(err, &tr):
				attempts = append(attempts, Attempt{URL: base, Err: tr.err})
				continue next
			default:
				return nil, nil, fmt.Errorf("publish %s from %s: %s: %w", model, dir, f.path, err)
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+target, bytes.NewReader(commitJSON))
		if err != nil {
			return fail(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		// The stream client: a commit in a cluster may wait for the
		// model's ring owner (up to its forwarding Wait).
		resp, err := c.stream.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			attempts = append(attempts, Attempt{URL: base, Err: unwrapURLError(err)})
			if !failoverSafe(http.MethodPost, err) {
				return nil, nil, &UnreachableError{Method: http.MethodPost, Path: target, Attempts: attempts, Stopped: true}
			}
			continue
		}
		var out PublishResult
		m, err := finish(http.MethodPost, base, target, resp, &out)
		if err != nil {
			return nil, m, err
		}
		return &out, m, nil
	}
	return nil, nil, &UnreachableError{Method: http.MethodPost, Path: target, Attempts: attempts}
}

// publishCommit is the body of POST /v1/models/{model}/commit.
type publishCommit struct {
	Model string        `json:"model"`
	Files []VersionFile `json:"files"`
	Meta  publishMeta   `json:"meta"`
}

// transportError is a blob upload that did not get an answer (the
// connection could not be made, or broke): the blob may go to another
// collector.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }

// putBlob is PUT /v1/blobs/sha256/{digest} with the file's bytes. The body
// is the file itself with its length, so the transport hands it to the
// kernel (sendfile); progress is sampled from the file's offset.
func (c *Client) putBlob(ctx context.Context, base string, f *localFile, progress func(int64)) error {
	path := "/v1/blobs/sha256/" + f.sha256
	fh, err := os.Open(f.disk)
	if err != nil {
		return err
	}
	defer fh.Close()
	var body io.ReadCloser = io.NopCloser(fh) // closed here, once the offset watch has stopped
	if f.size == 0 {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = f.size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	stop := watchOffset(fh, progress)
	resp, err := c.stream.Do(req)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if strings.Contains(err.Error(), "ContentLength=") {
			return fmt.Errorf("%s changed while publishing: %w", f.disk, unwrapURLError(err))
		}
		return &transportError{err: unwrapURLError(err)}
	}
	var staged struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	}
	if _, err := finish(http.MethodPut, base, path, resp, &staged); err != nil {
		return err
	}
	if staged.SHA256 != f.sha256 || staged.Size != f.size {
		return fmt.Errorf("PUT %s%s: the collector staged %d bytes as %q; sent %d bytes", base, path, staged.Size, staged.SHA256, f.size)
	}
	return nil
}

// watchOffset calls progress with f's offset every 100ms until the
// returned stop is called (which waits for the last call to end).
func watchOffset(f *os.File, progress func(int64)) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if off, err := f.Seek(0, io.SeekCurrent); err == nil {
					progress(off)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// finish reads an answer as do does.
func finish(method, base, target string, resp *http.Response, out any) (*Meta, error) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s%s: read answer: %w", method, base, target, err)
	}
	meta := &Meta{URL: base, Status: resp.StatusCode, Raw: raw}
	if resp.StatusCode >= 300 {
		return meta, newAPIError(method, base+target, resp, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return meta, fmt.Errorf("%s %s%s: decode answer: %w", method, base, target, err)
		}
	}
	return meta, nil
}

// publishMeta is the meta part of a publish.
type publishMeta struct {
	Author       string        `json:"author,omitempty"`
	Message      string        `json:"message,omitempty"`
	Parents      []uint64      `json:"parents,omitempty"`
	Source       string        `json:"source,omitempty"`
	Job          string        `json:"job,omitempty"`
	TrainingData *trainingData `json:"training_data,omitempty"`
}

type trainingData struct {
	Path  string `json:"path"`
	Label string `json:"label"`
}

// publishFiles lists the regular files under dir (and the training data)
// in path order, with the publish's metadata.
func publishFiles(dir string, opts PublishOptions) ([]localFile, publishMeta, error) {
	meta := publishMeta{Author: opts.Author, Message: opts.Message}
	if opts.Job != "" {
		meta.Source, meta.Job = "optimize", opts.Job
	}
	if opts.Parent > 0 {
		meta.Parents = []uint64{opts.Parent}
	}
	var files []localFile
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, meta, err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows links
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, localFile{path: filepath.ToSlash(rel), disk: p, size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, meta, err
	}
	if len(files) == 0 {
		return nil, meta, fmt.Errorf("no files in %s", dir)
	}
	if (opts.TrainingData == "") != (opts.Label == "") {
		return nil, meta, errors.New("training data needs both the CSV and its label column")
	}
	if opts.TrainingData != "" {
		abs, err := filepath.Abs(opts.TrainingData)
		if err != nil {
			return nil, meta, err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, meta, fmt.Errorf("training data: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, meta, fmt.Errorf("training data %s: not a regular file", abs)
		}
		path := "training/" + filepath.Base(abs)
		if rel, err := filepath.Rel(root, abs); err == nil && !strings.HasPrefix(rel, "..") {
			path = filepath.ToSlash(rel) // already among the files
		} else {
			if slices.ContainsFunc(files, func(f localFile) bool { return f.path == path }) {
				return nil, meta, fmt.Errorf("training data: %s is also a file of %s", path, dir)
			}
			files = append(files, localFile{path: path, disk: abs, size: st.Size()})
		}
		meta.TrainingData = &trainingData{Path: path, Label: opts.Label}
	}
	slices.SortFunc(files, func(a, b localFile) int { return strings.Compare(a.path, b.path) })
	return files, meta, nil
}

// hashFile returns the hex sha256 of the file at path, telling progress
// the bytes read so far.
func hashFile(ctx context.Context, path string, progress func(int64)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := copyProgress(ctx, h, f, progress); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyProgress copies with 1 MiB buffers, stopping when ctx ends.
func copyProgress(ctx context.Context, w io.Writer, r io.Reader, progress func(int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
			progress(n)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// PullOptions tune a pull.
type PullOptions struct {
	Progress Progress
	// Retries is how many times one file's download resumes after a
	// failure (with backoff); 0 means 5.
	Retries int
}

// Pull downloads version n of model into dir: every file into dir.tmp
// (resuming, through Range requests, what an earlier pull or an earlier
// attempt left there), each verified against its sha256, then fsynced and
// renamed to dir, which must not exist. It returns the version's record.
// On an error dir.tmp stays, so running Pull again resumes.
func (c *Client) Pull(ctx context.Context, model string, n uint64, dir string, opts PullOptions) (*VersionRecord, *Meta, error) {
	fail := func(err error) (*VersionRecord, *Meta, error) {
		return nil, nil, fmt.Errorf("pull %s v%d into %s: %w", model, n, dir, err)
	}
	rec, meta, err := c.Version(ctx, model, n)
	if err != nil {
		return nil, meta, err
	}
	if rec.State != "active" {
		return fail(fmt.Errorf("the version is %s", rec.State))
	}
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return fail(errors.New("the directory exists; pull into a new one"))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	tmp := dir + ".tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fail(err)
	}
	want := map[string]bool{}
	var total int64
	for _, f := range rec.Files {
		if !fs.ValidPath(f.Path) || f.Path == "." || strings.Contains(f.Path, `\`) {
			return fail(fmt.Errorf("the record names a bad path %q", f.Path))
		}
		want[filepath.FromSlash(f.Path)] = true
		total += f.Size
	}
	prog := opts.Progress
	if prog == nil {
		prog = func(string, int64, int64) {}
	}
	var done int64
	for _, f := range rec.Files {
		dest := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return fail(err)
		}
		base := done
		if err := c.fetchBlob(ctx, f, dest, opts.Retries, func(k int64) { prog("download", base+k, total) }); err != nil {
			return fail(err)
		}
		done += f.Size
	}
	// Leftovers of an earlier, different pull into the same dir.tmp.
	err = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		if !want[rel] {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if err := syncDirs(tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return fail(err)
	}
	return rec, meta, nil
}

// fetchBlob makes dest hold file f: it keeps what dest already holds
// (hashing it), asks for the rest with a Range request (If-Range: the
// digest), and resumes after a cut download up to retries times. At the
// end the sha256 must be f's; dest is fsynced.
func (c *Client) fetchBlob(ctx context.Context, f VersionFile, dest string, retries int, progress func(int64)) error {
	if retries <= 0 {
		retries = 5
	}
	out, err := os.OpenFile(dest, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	have, err := io.Copy(h, io.LimitReader(out, f.Size))
	if err != nil {
		return fmt.Errorf("read %s: %w", dest, err)
	}
	restart := func() error {
		h.Reset()
		have = 0
		if err := out.Truncate(0); err != nil {
			return err
		}
		_, err := out.Seek(0, io.SeekStart)
		return err
	}
	if have == f.Size && hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		if err := restart(); err != nil {
			return err
		}
	}
	if err := out.Truncate(have); err != nil { // longer than the file: cut
		return err
	}
	progress(have)
	resumed := have > 0
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 200 * time.Millisecond
again:
	for attempt := 0; have < f.Size; attempt++ {
		err := c.getRange(ctx, f, have, out, h, &have, restart, progress)
		if err == nil {
			continue
		}
		var ae *APIError
		if errors.As(err, &ae) || ctx.Err() != nil || attempt >= retries {
			return fmt.Errorf("download %s: %w", f.Path, err)
		}
		select {
		case <-time.After(bo.NextBackOff()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		if resumed { // what an earlier pull left was wrong: once more from 0
			resumed = false
			if err := restart(); err != nil {
				return err
			}
			goto again
		}
		_ = out.Truncate(0) // the next pull starts over
		return fmt.Errorf("download %s: sha256 %s, the record says %s", f.Path, got, f.SHA256)
	}
	return out.Sync()
}

// getRange fetches f from offset have to its end into out and h, trying
// the collectors in turn when one cannot be reached.
func (c *Client) getRange(ctx context.Context, f VersionFile, from int64, out *os.File, h hash.Hash, have *int64, restart func() error, progress func(int64)) error {
	target := "/v1/blobs/sha256/" + f.SHA256
	var attempts []Attempt
	for _, base := range c.urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+target, nil)
		if err != nil {
			return err
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if from > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
			req.Header.Set("If-Range", `"`+f.SHA256+`"`)
		}
		resp, err := c.stream.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			attempts = append(attempts, Attempt{URL: base, Err: unwrapURLError(err)})
			continue
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusPartialContent:
		case http.StatusOK:
			if from > 0 { // the range was not honoured: start over
				if err := restart(); err != nil {
					return err
				}
			}
		default:
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			return newAPIError(http.MethodGet, base+target, resp, raw)
		}
		if _, err := out.Seek(*have, io.SeekStart); err != nil {
			return err
		}
		start := *have
		_, err = copyProgress(ctx, io.MultiWriter(&durable.Writeback{W: out, F: out, Off: start}, h, counter{have}), io.LimitReader(resp.Body, f.Size-*have), func(n int64) { progress(start + n) })
		return err
	}
	return &UnreachableError{Method: http.MethodGet, Path: target, Attempts: attempts}
}

// counter adds the bytes written to *n.
type counter struct{ n *int64 }

func (c counter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// syncDirs fsyncs every directory under root and root itself, so the
// files' names are durable before the rename.
func syncDirs(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return durable.SyncDir(p)
	})
}
