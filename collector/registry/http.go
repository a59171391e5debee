package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/forward"
	"github.com/drover-ml/drover/shared/manifest"
)

// The admin API routes of the registry (Go 1.22 ServeMux patterns), as
// Routes keys them. The role each needs is in docs/registry.md ("HTTP
// API"): publish and merge need a publisher token, delete an admin token,
// the reads and blobs a reader or agent token.
const (
	PatternPublish = "POST /v1/models/{model}/versions"
	PatternVersion = "GET /v1/models/{model}/versions/{version}"
	PatternFiles   = "GET /v1/models/{model}/versions/{version}/files"
	PatternBlob    = "GET /v1/blobs/sha256/{digest}"
	PatternStage   = "PUT /v1/blobs/sha256/{digest}"
	PatternDelete  = "DELETE /v1/models/{model}/versions/{version}"
	PatternMerge   = "POST /v1/models/{model}/merge"
)

// Publish wire format (docs/registry.md): a multipart/form-data body whose
// first part may be the metadata (form name "meta", a JSON Meta) and whose
// every other part is one file (form name "file") with these part headers.
const (
	HeaderPath   = "Drover-Path"   // the file's path in the version directory
	HeaderSHA256 = "Drover-Sha256" // its sha256, 64 lowercase hex digits
	HeaderSize   = "Drover-Size"   // its size in bytes
)

// Limits of the HTTP API.
const (
	// maxCommitBytes bounds the body of PatternCommit (a Commit as JSON:
	// up to MaxFiles entries of path, sha256 and size, and the metadata).
	maxCommitBytes = 8 << 20
	// MaxFileBytes bounds one file of a publish (413 beyond).
	MaxFileBytes = 64 << 30
	// MaxFiles bounds the files of a publish (413 beyond).
	MaxFiles = 10000
	// maxMetaBytes bounds the metadata part and the merge request.
	maxMetaBytes = 1 << 20
)

// CommitFunc commits staged files as a version: Registry.Commit, or a
// call that forwards the Commit to the model's ring owner, which runs
// Registry.Commit there. It returns the version and whether it was created
// (false: the same content was already a version of the model).
type CommitFunc func(ctx context.Context, c Commit) (Version, bool, error)

// Routes returns the registry's admin API handlers keyed by their
// ServeMux patterns (the Pattern constants). commit allocates the version
// of a publish or a merge; nil means r.Commit (a single collector). The
// files of a publish are staged by the collector that receives it; only
// the small Commit value goes through commit.
//
// The handlers do no authentication: the caller wraps each with the role
// docs/registry.md gives it. GET /v1/models and GET
// /v1/models/{model}/versions (the read views) are not among them; they
// render Registry.Models and Registry.Versions, each version through
// RecordOf.
func (r *Registry) Routes(commit CommitFunc) map[string]http.Handler {
	if commit == nil {
		commit = r.Commit
	}
	h := &handlers{reg: r, commit: commit}
	return map[string]http.Handler{
		PatternPublish: http.HandlerFunc(h.publish),
		PatternVersion: http.HandlerFunc(h.version),
		PatternFiles:   http.HandlerFunc(h.files),
		PatternBlob:    http.HandlerFunc(h.blob),
		PatternDelete:  http.HandlerFunc(h.delete),
		PatternMerge:   http.HandlerFunc(h.merge),
		PatternStage:   http.HandlerFunc(h.stageBlob),
		PatternCommit:  http.HandlerFunc(h.commitRoute),
	}
}

type handlers struct {
	reg    *Registry
	commit CommitFunc
}

// Record is a version's record as the admin API sends it: snake_case,
// every field present, null where there is no value, lists never null.
type Record struct {
	Model     string     `json:"model"`
	Version   uint64     `json:"version"`
	ContentID string     `json:"content_id"`
	Files     []FileInfo `json:"files"`
	Created   time.Time  `json:"created"`
	Author    *string    `json:"author"`
	Message   *string    `json:"message"`
	Parents   []uint64   `json:"parents"`
	Source    Source     `json:"source"`
	Incident  *string    `json:"incident"`
	Job       *string    `json:"job"`
	// Signature is null when the record has none.
	Signature *SignatureRecord `json:"signature"`
	State     State            `json:"state"`
	Updated   time.Time        `json:"updated"`
}

// SignatureRecord is a signature in the admin API's JSON.
type SignatureRecord struct {
	Inputs  []TensorRecord `json:"inputs"`
	Outputs []TensorRecord `json:"outputs"`
}

// TensorRecord is one input or output: an Open Inference Protocol
// datatype and a shape with -1 for dynamic dimensions.
type TensorRecord struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// RecordOf returns v as the admin API sends it. The read views (GET
// /v1/models/{model}/versions) use it for the record fields of each
// version, so every endpoint spells a record the same way.
func RecordOf(v Version) Record {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	rec := Record{
		Model: v.Model, Version: v.Version, ContentID: v.ContentID, Files: v.Files,
		Created: v.Created.UTC(), Author: opt(v.Author), Message: opt(v.Message), Parents: v.Parents,
		Source: v.Source, Incident: opt(v.Incident), Job: opt(v.Job), State: v.State, Updated: v.Updated.UTC(),
	}
	if rec.Files == nil {
		rec.Files = []FileInfo{}
	}
	if rec.Parents == nil {
		rec.Parents = []uint64{}
	}
	if s := v.Signature; s != nil {
		tensors := func(ts []manifest.Tensor) []TensorRecord {
			out := make([]TensorRecord, len(ts))
			for i, t := range ts {
				out[i] = TensorRecord{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
				if out[i].Shape == nil {
					out[i].Shape = []int64{}
				}
			}
			return out
		}
		rec.Signature = &SignatureRecord{Inputs: tensors(s.Inputs), Outputs: tensors(s.Outputs)}
	}
	return rec
}

// PublishResult is the answer to a publish or a merge.
type PublishResult struct {
	Version   uint64 `json:"version"`
	ContentID string `json:"content_id"`
	// Created is false when the content was already a version of the
	// model: Version is that version.
	Created bool `json:"created"`
}

// FileRecord is one element of GET .../versions/{version}/files.
type FileRecord struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// URL is the file's path on the admin API: /v1/blobs/sha256/<sha256>.
	URL string `json:"url"`
}

// MergeRequest is the body of POST /v1/models/{model}/merge.
type MergeRequest struct {
	// Versions are the two versions to merge.
	Versions []uint64 `json:"versions"`
	// Weights of the two; default [0.5, 0.5].
	Weights []float64 `json:"weights"`
	Message string    `json:"message"`
	Author  string    `json:"author"`
}

// errBadRequest marks malformed requests (400); errTooLarge bodies over a
// limit (413).
var (
	errBadRequest = errors.New("bad request")
	errTooLarge   = errors.New("too large")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// status maps an error of the registry to an HTTP status: bad input 400,
// missing 404, refused 409, over a limit 413, anything else (ClickHouse
// or the object store down) 503.
func status(err error) int {
	var mbe *http.MaxBytesError
	var remote *forward.Error
	switch {
	case errors.As(err, &remote): // the ring owner's answer to a forwarded commit
		return remote.Code
	case errors.As(err, &mbe), errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInUse):
		return http.StatusConflict
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errBadRequest), errors.Is(err, ErrInvalid), errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrSignatureMismatch):
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	if code == http.StatusServiceUnavailable {
		h.reg.log.Warn("registry: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// modelVersion reads and checks the {model} and {version} path values.
func modelVersion(r *http.Request, withVersion bool) (string, uint64, error) {
	model := r.PathValue("model")
	if !manifest.ValidName(model) {
		return "", 0, badRequest("model name %q: letters, digits, '.', '_' and '-', starting with a letter or digit", model)
	}
	if !withVersion {
		return model, 0, nil
	}
	s := r.PathValue("version")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return "", 0, badRequest("version %q: want a positive integer", s)
	}
	return model, n, nil
}

func (h *handlers) version(w http.ResponseWriter, r *http.Request) {
	model, n, err := modelVersion(r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.reg.Version(r.Context(), model, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RecordOf(v))
}

func (h *handlers) files(w http.ResponseWriter, r *http.Request) {
	model, n, err := modelVersion(r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.reg.Version(r.Context(), model, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if v.State != StateActive {
		h.fail(w, r, fmt.Errorf("%s v%d is deleted: %w", model, n, ErrNotFound))
		return
	}
	out := make([]FileRecord, len(v.Files))
	for i, f := range v.Files {
		out[i] = FileRecord{Path: f.Path, SHA256: f.SHA256, Size: f.Size, URL: "/v1/blobs/sha256/" + f.SHA256}
	}
	writeJSON(w, http.StatusOK, out)
}

// blob serves a file by its sha256, with ranges and conditional requests
// (http.ServeContent): the ETag is the quoted digest and the content never
// changes, so caches may keep it for good.
func (h *handlers) blob(w http.ResponseWriter, r *http.Request) {
	d := r.PathValue("digest")
	if !ValidDigest(d) {
		h.fail(w, r, badRequest("digest %q: want 64 lowercase hex digits", d))
		return
	}
	w.Header().Set("ETag", `"`+d+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if dir := h.reg.blobs.dir; dir != "" {
		// A file:// store: serve the file itself, so the kernel copies it
		// to the socket (sendfile) as a plain file server would.
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(blobKey(d))))
		if err == nil {
			defer f.Close()
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				http.ServeContent(w, r, "", st.ModTime(), f)
				return
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.fail(w, r, fmt.Errorf("open blob %s: %w", d, err))
			return
		}
	}
	rd, err := h.reg.blobs.Open(r.Context(), d)
	if err != nil {
		w.Header().Del("ETag")
		w.Header().Del("Cache-Control")
		h.fail(w, r, err)
		return
	}
	defer rd.Close()
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}

// stageBlob stores the request body as the blob {digest}: the first step
// of the two-step publish (docs/registry.md). The body must declare its
// length (411 otherwise) and hash to the digest; a mismatch or a cut body
// stores nothing. The answer is the staged blob's digest and size.
func (h *handlers) stageBlob(w http.ResponseWriter, r *http.Request) {
	d := r.PathValue("digest")
	if !ValidDigest(d) {
		h.fail(w, r, badRequest("digest %q: want 64 lowercase hex digits", d))
		return
	}
	if r.ContentLength < 0 {
		writeJSON(w, http.StatusLengthRequired, map[string]string{"error": "a blob upload needs a Content-Length"})
		return
	}
	if r.ContentLength > MaxFileBytes {
		h.fail(w, r, fmt.Errorf("%w: blob of %d bytes, more than %d", errTooLarge, r.ContentLength, int64(MaxFileBytes)))
		return
	}
	body := &bodyReader{r: r.Body}
	n, err := h.reg.blobs.Put(r.Context(), d, r.ContentLength, body)
	if err != nil {
		if body.err != nil {
			err = badRequest("upload cut after %d of %d bytes: %v", n, r.ContentLength, body.err)
		}
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, StagedBlob{SHA256: d, Size: n})
}

// StagedBlob is the answer to PatternStage.
type StagedBlob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// commitRoute serves PatternCommit: the second step of the two-step
// publish, and the route through which collectors forward commits to a
// model's ring owner. The body is a Commit as JSON whose files must be
// staged with the sizes it lists. A request forwarded by a collector
// (HeaderForwardedBy) is committed here or refused with 503, never
// forwarded again; any other is committed through the CommitFunc (on the
// owner). Source merge is the merge route's alone.
func (h *handlers) commitRoute(w http.ResponseWriter, r *http.Request) {
	model, _, err := modelVersion(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommitBytes))
	dec.DisallowUnknownFields()
	var c Commit
	if err := dec.Decode(&c); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, fmt.Errorf("commit: %w", err))
			return
		}
		h.fail(w, r, badRequest("commit: %v", err))
		return
	}
	if c.Model != model {
		h.fail(w, r, badRequest("commit: model %q in a request for %q", c.Model, model))
		return
	}
	by := r.Header.Get(HeaderForwardedBy)
	if by == "" && c.Meta.Source == SourceMerge {
		h.fail(w, r, badRequest("commit: source merge: use POST /v1/models/{model}/merge"))
		return
	}
	ctx := forward.WithCaller(r.Context(), r.Header.Get("Authorization"), by)
	v, created, err := h.commit(ctx, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, PublishResult{Version: v.Version, ContentID: v.ContentID, Created: created})
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request) {
	model, n, err := modelVersion(r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.reg.Delete(r.Context(), model, n); err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.reg.Version(r.Context(), model, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RecordOf(v))
}

func (h *handlers) merge(w http.ResponseWriter, r *http.Request) {
	model, _, err := modelVersion(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req MergeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxMetaBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, r, badRequest("merge request: %v", err))
		return
	}
	if len(req.Versions) != 2 || req.Versions[0] == 0 || req.Versions[1] == 0 {
		h.fail(w, r, badRequest("versions: want two positive version numbers, got %v", req.Versions))
		return
	}
	if req.Weights == nil {
		req.Weights = []float64{0.5, 0.5}
	}
	if len(req.Weights) != 2 || slices.ContainsFunc(req.Weights, func(w float64) bool {
		return w < 0 || w > math.MaxFloat32 || math.IsNaN(w)
	}) || req.Weights[0]+req.Weights[1] <= 0 {
		h.fail(w, r, badRequest("weights: want two numbers ≥ 0 with a positive sum, got %v", req.Weights))
		return
	}
	c, err := h.reg.PrepareMerge(r.Context(), model, req.Versions[0], req.Versions[1],
		float32(req.Weights[0]), float32(req.Weights[1]), Meta{Author: req.Author, Message: req.Message})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.committed(w, r, c)
}

func (h *handlers) committed(w http.ResponseWriter, r *http.Request, c Commit) {
	v, created, err := h.commit(withCredential(r.Context(), r.Header.Get("Authorization")), c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, PublishResult{Version: v.Version, ContentID: v.ContentID, Created: created})
}

// bodyReader remembers whether reading the request body failed, so a cut
// upload is told from a failing store.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// publish streams a multipart upload into the blob store part by part
// (each file's digest and size verified as it arrives; nothing held whole)
// and then commits the staged files. A cut or wrong upload fails before
// the commit: no version, no record.
func (h *handlers) publish(w http.ResponseWriter, r *http.Request) {
	model, _, err := modelVersion(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		h.fail(w, r, badRequest("Content-Type: want multipart/form-data with a boundary (docs/registry.md)"))
		return
	}
	body := &bodyReader{r: r.Body}
	// multipart fills a 4 KiB buffer per read: a large buffer below it
	// turns 256 socket reads per MiB into a few.
	c, err := h.stage(r.Context(), model, multipart.NewReader(bufio.NewReaderSize(body, 1<<20), params["boundary"]))
	if err != nil {
		if body.err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(body.err, &mbe) {
				err = badRequest("upload cut after part of the body: %v", body.err)
			}
		}
		h.fail(w, r, err)
		return
	}
	h.committed(w, r, c)
}

func (h *handlers) stage(ctx context.Context, model string, mr *multipart.Reader) (Commit, error) {
	c := Commit{Model: model, Meta: Meta{Source: SourcePublish}}
	seen := map[string]bool{}
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Commit{}, badRequest("multipart body: %v", err)
		}
		switch p.FormName() {
		case "meta":
			if i != 0 {
				return Commit{}, badRequest("the meta part must come first")
			}
			dec := json.NewDecoder(io.LimitReader(p, maxMetaBytes))
			dec.DisallowUnknownFields()
			var m Meta
			if err := dec.Decode(&m); err != nil {
				return Commit{}, badRequest("meta part: %v", err)
			}
			switch m.Source {
			case "":
				m.Source = SourcePublish
			case SourcePublish, SourceOptimize:
			default:
				return Commit{}, badRequest("meta part: source %q: want publish or optimize", m.Source)
			}
			c.Meta = m
		case "file":
			path := p.Header.Get(HeaderPath)
			digest := p.Header.Get(HeaderSHA256)
			size, err := strconv.ParseInt(p.Header.Get(HeaderSize), 10, 64)
			if err != nil || size < 0 {
				return Commit{}, badRequest("file %q: part header %s: want the size in bytes", path, HeaderSize)
			}
			if size > MaxFileBytes {
				return Commit{}, fmt.Errorf("%w: file %q: %d bytes, more than %d", errTooLarge, path, size, int64(MaxFileBytes))
			}
			if len(c.Files) >= MaxFiles {
				return Commit{}, fmt.Errorf("%w: more than %d files", errTooLarge, MaxFiles)
			}
			if seen[path] {
				return Commit{}, badRequest("file %q sent twice", path)
			}
			seen[path] = true
			f, err := h.reg.Stage(ctx, Upload{Path: path, SHA256: strings.ToLower(digest), Size: size, Body: p})
			if err != nil {
				return Commit{}, err
			}
			c.Files = append(c.Files, f)
		default:
			return Commit{}, badRequest("part %q: want meta or file", p.FormName())
		}
	}
	if len(c.Files) == 0 {
		return Commit{}, badRequest("no file parts")
	}
	return c, nil
}
