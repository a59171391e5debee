package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.yaml.in/yaml/v3"
	"gocloud.dev/blob"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
)

// ErrInUse: the version may not be deleted now (fleet control says it is
// desired or serving somewhere); the error carries the reason.
var ErrInUse = errors.New("in use")

// InUse reports whether a version is desired or serving anywhere in the
// fleet, and why. Fleet control provides it; nil means never in use.
type InUse func(ctx context.Context, model string, version uint64) (inUse bool, reason string, err error)

// Options configure a Registry. Zero values take the defaults.
type Options struct {
	// Database holds the registry_versions table; default "drover".
	Database string
	// Cluster: the schema was migrated ON CLUSTER (inserts then wait for
	// the Distributed table to write to the shard).
	Cluster bool
	// InUse is consulted by Delete.
	InUse InUse
	// GCGrace: a blob younger than this is never collected; default 24h.
	// It must exceed twice the longest publish (from the first byte staged
	// to the commit): staging a blob that exists and is older than half of
	// it writes the blob again (Blobs.Put).
	GCGrace time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Registry stores model versions: files by content in Blobs, records in
// ClickHouse. It is safe for concurrent use. Version numbers are allocated
// by Commit under a per-model lock of this Registry, so within one process
// they are increasing, unique and gap-free; across collectors the caller
// must route every Commit of a model to one Registry (the model's ring
// owner) — see docs/registry.md.
type Registry struct {
	blobs   *Blobs
	conn    driver.Conn
	table   string
	cluster bool
	inUse   InUse
	grace   time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per model, held while allocating
	// gc is held for reading by each commit (from checking that its blobs
	// exist to inserting its record) and for writing by a collection, so a
	// commit never references a blob the same process is sweeping.
	gc sync.RWMutex
}

// New returns a Registry on an open ClickHouse connection (migrated with
// store.Migrate) and a blob store. It does not own either: the caller
// closes them after the last call.
func New(conn driver.Conn, blobs *Blobs, opts Options) *Registry {
	if opts.Database == "" {
		opts.Database = "drover"
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	blobs.refresh = opts.GCGrace / 2
	return &Registry{
		blobs: blobs, conn: conn, table: opts.Database + "." + Table, cluster: opts.Cluster,
		inUse: opts.InUse, grace: opts.GCGrace, now: opts.Now, log: opts.Logger,
		locks: map[string]*sync.Mutex{},
	}
}

// Blobs returns the registry's blob store (to serve files by digest).
func (r *Registry) Blobs() *Blobs { return r.blobs }

// Upload is one file of a publish: its path in the version directory, its
// declared sha256 and size (-1: unknown) and its bytes.
type Upload struct {
	Path   string
	SHA256 string
	Size   int64
	Body   io.Reader
}

// Meta is what the publisher says about a version.
type Meta struct {
	Author  string `json:"author,omitempty"`
	Message string `json:"message,omitempty"`
	// Parents are versions of the same model this one derives from (a
	// merge has two); each must exist.
	Parents []uint64 `json:"parents,omitempty"`
	// Source; default SourcePublish.
	Source   Source `json:"source,omitempty"`
	Incident string `json:"incident,omitempty"`
	Job      string `json:"job,omitempty"`
	// TrainingData, if set, names a file of the publish holding training
	// data; Commit writes its quantile bins into the manifest's features
	// (QuantileBins).
	TrainingData *TrainingData `json:"training_data,omitempty"`
}

// Commit is everything the version allocator needs: the files (already
// staged in the blob store) and the metadata. It is small (no file bytes),
// so a collector that received a publish can forward it to the model's ring
// owner, which calls Registry.Commit.
type Commit struct {
	Model string     `json:"model"`
	Files []FileInfo `json:"files"`
	Meta  Meta       `json:"meta"`
}

// Stage streams one file into the blob store, verifying its digest and
// size as the bytes arrive (see Blobs.Put): a file whose digest does not
// match, or whose stream is cut, leaves nothing. Any collector may stage;
// staged blobs that no commit references are collected after the grace
// period.
func (r *Registry) Stage(ctx context.Context, u Upload) (FileInfo, error) {
	if err := validPath(u.Path); err != nil {
		return FileInfo{}, err
	}
	n, err := r.blobs.Put(ctx, u.SHA256, u.Size, u.Body)
	if err != nil {
		return FileInfo{}, fmt.Errorf("stage %s: %w", u.Path, err)
	}
	return FileInfo{Path: u.Path, SHA256: u.SHA256, Size: n}, nil
}

// Publish stages every file of files, in order, then commits them as a
// new version of model (see Commit). files yields the uploads one by one, so
// a caller can hand over each part of a streamed request as it arrives; an
// error it yields aborts the publish. On any error nothing is visible: no
// record, no version; blobs staged before the error are collected later.
func (r *Registry) Publish(ctx context.Context, model string, files iter.Seq2[Upload, error], meta Meta) (Version, bool, error) {
	if !manifest.ValidName(model) {
		return Version{}, false, fmt.Errorf("publish %q: %w: bad model name", model, ErrInvalid)
	}
	c := Commit{Model: model, Meta: meta}
	for u, err := range files {
		if err != nil {
			return Version{}, false, fmt.Errorf("publish %s: %w", model, err)
		}
		f, err := r.Stage(ctx, u)
		if err != nil {
			return Version{}, false, fmt.Errorf("publish %s: %w", model, err)
		}
		c.Files = append(c.Files, f)
	}
	return r.Commit(ctx, c)
}

// Uploads yields us, for Publish.
func Uploads(us ...Upload) iter.Seq2[Upload, error] {
	return func(yield func(Upload, error) bool) {
		for _, u := range us {
			if !yield(u, nil) {
				return
			}
		}
	}
}

// maxModelCheck bounds the model files that Commit parses whole to check
// they are ONNX; larger ones are checked by their first bytes only.
const maxModelCheck = 64 << 20

// Commit makes staged files a version of c.Model. It is the one call that
// allocates version numbers: under the model's lock it returns the active
// version with the same content id if there is one (created false);
// otherwise it takes the highest number the model ever had plus one,
// writes the version's drover.yaml (model, version, files, lineage, and
// what the publisher's drover.yaml, if c.Files has one, says about
// signature, golden set, warm-up, features, gate and training) as a blob,
// and inserts the record, which is the moment the version becomes visible.
// A failure before that insert leaves no record and uses no number.
//
// Every file must be staged (Commit checks that each blob exists),
// model.onnx must be one and be an ONNX model, paths must be valid and
// distinct, and parents must be versions of the model.
func (r *Registry) Commit(ctx context.Context, c Commit) (Version, bool, error) {
	v, created, err := r.commit(ctx, c)
	if err != nil {
		return Version{}, false, fmt.Errorf("commit %s: %w", c.Model, err)
	}
	return v, created, nil
}

func (r *Registry) commit(ctx context.Context, c Commit) (Version, bool, error) {
	if !manifest.ValidName(c.Model) {
		return Version{}, false, fmt.Errorf("%w: bad model name %q", ErrInvalid, c.Model)
	}
	src := c.Meta.Source
	if src == "" {
		src = SourcePublish
	}
	if src != SourcePublish && src != SourceOptimize && src != SourceMerge {
		return Version{}, false, fmt.Errorf("%w: source %q (want publish, optimize or merge)", ErrInvalid, src)
	}
	if len(c.Files) > MaxFiles {
		return Version{}, false, fmt.Errorf("%w: more than %d files", errTooLarge, MaxFiles)
	}
	files := slices.Clone(c.Files)
	slices.SortFunc(files, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	var (
		own      *FileInfo // the publisher's drover.yaml
		model    *FileInfo
		contents []FileInfo // every file but drover.yaml
	)
	for i := range files {
		f := &files[i]
		if err := validPath(f.Path); err != nil {
			return Version{}, false, err
		}
		if i > 0 && files[i-1].Path == f.Path {
			return Version{}, false, fmt.Errorf("%w: file %q listed twice", ErrInvalid, f.Path)
		}
		if !ValidDigest(f.SHA256) || f.Size < 0 {
			return Version{}, false, fmt.Errorf("%w: file %q: bad sha256 or size", ErrInvalid, f.Path)
		}
		switch f.Path {
		case manifest.FileName:
			own = f
			continue
		case manifest.ModelFile:
			model = f
		}
		contents = append(contents, *f)
	}
	if model == nil {
		return Version{}, false, fmt.Errorf("%w: no %s", ErrInvalid, manifest.ModelFile)
	}

	r.gc.RLock()
	defer r.gc.RUnlock()
	for _, f := range files {
		size, ok, err := r.blobs.Size(ctx, f.SHA256)
		if err != nil {
			return Version{}, false, err
		}
		if !ok {
			return Version{}, false, fmt.Errorf("%w: file %s (sha256 %s) is not staged", ErrNotFound, f.Path, f.SHA256)
		}
		if size != f.Size {
			return Version{}, false, fmt.Errorf("%w: file %s is listed with %d bytes; its blob (sha256 %s) has %d", ErrInvalid, f.Path, f.Size, f.SHA256, size)
		}
	}
	parsed, err := r.checkONNX(ctx, *model)
	if err != nil {
		return Version{}, false, err
	}
	var (
		inputs []string
		sig    *manifest.Signature // the model's, for the record
	)
	if parsed != nil {
		for _, v := range realInputs(parsed.GetGraph()) {
			inputs = append(inputs, v.GetName())
		}
		sig = modelSignature(parsed)
	}
	m := &manifest.Manifest{}
	if own != nil {
		if m, err = r.publisherManifest(ctx, *own); err != nil {
			return Version{}, false, err
		}
	}
	if td := c.Meta.TrainingData; td != nil {
		if err := r.trainingBins(ctx, m, files, inputs, td); err != nil {
			return Version{}, false, err
		}
	}

	lock := r.modelLock(c.Model)
	lock.Lock()
	defer lock.Unlock()

	// One round trip for the common case: the highest number the model
	// ever had (deleted versions included) and the active version with
	// this content, if any (then its record is read).
	contentID := ContentID(contents)
	var maxVersion, same uint64
	if err := r.conn.QueryRow(ctx, "SELECT max(version), maxIf(version, content_id = ? AND state = 'active') FROM "+r.table+" FINAL WHERE model = ?",
		contentID, c.Model).Scan(&maxVersion, &same); err != nil {
		return Version{}, false, fmt.Errorf("read the highest version: %w", err)
	}
	if same > 0 {
		existing, err := r.query(ctx, "model = ? AND version = ?", c.Model, same)
		if err != nil {
			return Version{}, false, err
		}
		if len(existing) > 0 {
			return existing[0], false, nil
		}
	}
	number := maxVersion + 1
	parents := slices.Clone(c.Meta.Parents)
	for _, p := range parents {
		if p == 0 || p > maxVersion {
			return Version{}, false, fmt.Errorf("%w: parent %d: %s has versions 1 to %d", ErrNotFound, p, c.Model, maxVersion)
		}
	}

	now := r.now().UTC().Truncate(time.Millisecond)
	m.Model, m.Version, m.Format = c.Model, int64(number), manifest.FormatONNX
	m.Files = make([]manifest.File, len(contents))
	for i, f := range contents {
		m.Files[i] = manifest.File{Path: f.Path, SHA256: f.SHA256, Size: f.Size}
	}
	m.Lineage = manifest.Lineage{Author: c.Meta.Author, Created: now, Message: c.Meta.Message, Job: c.Meta.Job}
	if len(parents) > 0 {
		m.Lineage.Parent = int64(parents[0])
	}
	if err := m.Validate(); err != nil {
		return Version{}, false, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	yml, err := m.Marshal()
	if err != nil {
		return Version{}, false, fmt.Errorf("write manifest: %w", err)
	}
	sum := sha256.Sum256(yml)
	mf := FileInfo{Path: manifest.FileName, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(yml))}
	if _, err := r.blobs.Put(ctx, mf.SHA256, mf.Size, strings.NewReader(string(yml))); err != nil {
		return Version{}, false, fmt.Errorf("write manifest: %w", err)
	}
	all := append(contents, mf)
	slices.SortFunc(all, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	v := Version{
		Model: c.Model, Version: number, ContentID: contentID, Files: all,
		Created: now, Author: c.Meta.Author, Message: c.Meta.Message, Parents: parents,
		Source: src, Incident: c.Meta.Incident, Job: c.Meta.Job, Signature: cmp.Or(m.Signature, sig),
		State: StateActive, Updated: now,
	}
	if len(v.Parents) == 0 {
		v.Parents = nil
	}
	rw, err := toRow(&v, uint64(now.UnixNano()))
	if err != nil {
		return Version{}, false, err
	}
	if err := r.insert(ctx, rw); err != nil {
		return Version{}, false, err
	}
	v.rowVersion = rw.RowVersion
	r.log.Info("registry: version published", "model", v.Model, "version", v.Version, "content_id", v.ContentID, "source", v.Source)
	return v, true, nil
}

func (r *Registry) modelLock(model string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.locks[model]
	if !ok {
		l = &sync.Mutex{}
		r.locks[model] = l
	}
	return l
}

// checkONNX checks that the staged model file is an ONNX model: whole if it
// is at most maxModelCheck bytes, else by its first field (ir_version,
// field 1, varint: tag 0x08, which every ONNX writer puts first).
// It returns the model when it parsed it whole, else nil.
func (r *Registry) checkONNX(ctx context.Context, f FileInfo) (*onnx.ModelProto, error) {
	if f.Size > maxModelCheck {
		rd, err := r.blobs.OpenRange(ctx, f.SHA256, 0, 2)
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		var head [2]byte
		if _, err := io.ReadFull(rd, head[:]); err != nil || head[0] != 0x08 || head[1] == 0 {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, f.Path, onnx.ErrNotModel)
		}
		return nil, nil
	}
	data, err := r.readBlob(ctx, f.SHA256, maxModelCheck)
	if err != nil {
		return nil, err
	}
	m, err := onnx.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, f.Path, err)
	}
	return m, nil
}

// modelSignature is the signature of a model as the agent serves it:
// tensors in Open Inference Protocol terms (-1 for dynamic dimensions), a
// ZipMap's sequence of maps as FP32 [-1, classes]. It returns nil if an
// input or output has a type OIP cannot carry.
func modelSignature(m *onnx.ModelProto) *manifest.Signature {
	g := m.GetGraph()
	producer := map[string]*onnx.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	tensor := func(v *onnx.ValueInfoProto) (manifest.Tensor, bool) {
		if v.GetType().GetSequenceType() != nil {
			if n := producer[v.GetName()]; n != nil && n.GetOpType() == "ZipMap" {
				if ints, strs, ok := zipLabels(n); ok {
					return manifest.Tensor{Name: v.GetName(), Datatype: "FP32", Shape: []int64{-1, int64(len(ints) + len(strs))}}, true
				}
			}
			return manifest.Tensor{}, false
		}
		dt, ok := onnx.TensorElemType(v)
		if !ok {
			return manifest.Tensor{}, false
		}
		oip, ok := onnx.OIPDatatype(dt)
		shape, _ := onnx.TensorShape(v)
		if shape == nil {
			shape = []int64{}
		}
		return manifest.Tensor{Name: v.GetName(), Datatype: oip, Shape: shape}, ok
	}
	sig := &manifest.Signature{}
	for _, v := range realInputs(g) {
		t, ok := tensor(v)
		if !ok {
			return nil
		}
		sig.Inputs = append(sig.Inputs, t)
	}
	for _, v := range g.GetOutput() {
		t, ok := tensor(v)
		if !ok {
			return nil
		}
		sig.Outputs = append(sig.Outputs, t)
	}
	return sig
}

// trainingBins computes the quantile bins of the training data file td
// names and puts them into m's features, replacing features of the same
// name. The features feed the model's only input: the one m's signature
// declares, else the one the model file has.
func (r *Registry) trainingBins(ctx context.Context, m *manifest.Manifest, files []FileInfo, inputs []string, td *TrainingData) error {
	i, ok := slices.BinarySearchFunc(files, td.Path, func(f FileInfo, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return fmt.Errorf("%w: training data %q is not a file of the version", ErrInvalid, td.Path)
	}
	if m.Signature != nil && len(m.Signature.Inputs) > 0 {
		inputs = nil
		for _, t := range m.Signature.Inputs {
			inputs = append(inputs, t.Name)
		}
	}
	if len(inputs) != 1 {
		return fmt.Errorf("%w: training data needs a model with exactly one input (declare signature.inputs in drover.yaml for models over %d MiB), got %v", ErrInvalid, maxModelCheck>>20, inputs)
	}
	rd, err := r.blobs.Open(ctx, files[i].SHA256)
	if err != nil {
		return err
	}
	defer rd.Close()
	features, err := QuantileBins(rd, td.Label, inputs[0], DefaultBins)
	if err != nil {
		return fmt.Errorf("%s: %w", td.Path, err)
	}
	for _, f := range features {
		m.Features = slices.DeleteFunc(m.Features, func(g manifest.Feature) bool { return g.Name == f.Name })
	}
	m.Features = append(m.Features, features...)
	return nil
}

func (r *Registry) readBlob(ctx context.Context, digest string, limit int64) ([]byte, error) {
	rd, err := r.blobs.Open(ctx, digest)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", digest, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: blob %s is larger than %d bytes", ErrInvalid, digest, limit)
	}
	return data, nil
}

// publisherManifest reads the publisher's drover.yaml and keeps what the
// publisher knows: signature, golden set, warm-up, features, gate,
// training and the optimizer's search space. Its model, version, files and lineage are the registry's and
// are ignored. Unknown fields are errors, as in manifest.Parse.
func (r *Registry) publisherManifest(ctx context.Context, f FileInfo) (*manifest.Manifest, error) {
	data, err := r.readBlob(ctx, f.SHA256, manifest.MaxSize)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var in manifest.Manifest
	if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: publisher's %s: %w", ErrInvalid, manifest.FileName, err)
	}
	return &manifest.Manifest{
		Signature: in.Signature, GoldenSet: in.GoldenSet, Warmup: in.Warmup,
		Features: in.Features, Gate: in.Gate, Training: in.Training, Optimize: in.Optimize,
	}, nil
}

// mark returns the digests of every file of every active version.
func (r *Registry) mark(ctx context.Context) (func(string) bool, error) {
	keep := map[string]bool{}
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT arrayJoin(file_sha256) FROM "+r.table+" FINAL WHERE state = 'active'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		keep[d] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return func(d string) bool { return keep[d] }, nil
}

// ModelSummary is one model of the registry.
type ModelSummary struct {
	Model string `json:"model"`
	// Versions counts the active versions; Latest is the highest active
	// one (0 if none) and Updated the last change of any record.
	Versions uint64    `json:"versions"`
	Latest   uint64    `json:"latest"`
	Updated  time.Time `json:"updated"`
}

// Models lists every model with a record, by name.
func (r *Registry) Models(ctx context.Context) ([]ModelSummary, error) {
	var rows []struct {
		Model    string    `ch:"model"`
		Versions uint64    `ch:"versions"`
		Latest   uint64    `ch:"latest"`
		Updated  time.Time `ch:"updated"`
	}
	q := "SELECT model, countIf(state = 'active') AS versions, maxIf(version, state = 'active') AS latest, max(updated) AS updated FROM " +
		r.table + " FINAL GROUP BY model ORDER BY model"
	if err := r.conn.Select(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	out := make([]ModelSummary, len(rows))
	for i, x := range rows {
		out[i] = ModelSummary{Model: x.Model, Versions: x.Versions, Latest: x.Latest, Updated: x.Updated.UTC()}
	}
	return out, nil
}

// Versions returns the records of model's versions, deleted ones included
// (State says which), by number. A model without records is ErrNotFound.
func (r *Registry) Versions(ctx context.Context, model string) ([]Version, error) {
	if !manifest.ValidName(model) {
		return nil, fmt.Errorf("versions of %q: %w: bad model name", model, ErrInvalid)
	}
	vs, err := r.query(ctx, "model = ?", model)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", model, err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("versions of %s: model %w", model, ErrNotFound)
	}
	return vs, nil
}

// Version returns one version's record, deleted or not; ErrNotFound if
// there is none.
func (r *Registry) Version(ctx context.Context, model string, version uint64) (Version, error) {
	if !manifest.ValidName(model) {
		return Version{}, fmt.Errorf("%q v%d: %w: bad model name", model, version, ErrInvalid)
	}
	vs, err := r.query(ctx, "model = ? AND version = ?", model, version)
	if err != nil {
		return Version{}, fmt.Errorf("%s v%d: %w", model, version, err)
	}
	if len(vs) == 0 {
		return Version{}, fmt.Errorf("%s v%d: %w", model, version, ErrNotFound)
	}
	return vs[0], nil
}

// OpenFile opens the file at path of an active version (see Blobs.Open for
// ranges and seeking); the caller closes it. A deleted version's files are
// ErrNotFound.
func (r *Registry) OpenFile(ctx context.Context, model string, version uint64, path string) (*blob.Reader, FileInfo, error) {
	v, err := r.Version(ctx, model, version)
	if err != nil {
		return nil, FileInfo{}, err
	}
	if v.State != StateActive {
		return nil, FileInfo{}, fmt.Errorf("%s v%d is deleted: %w", model, version, ErrNotFound)
	}
	f, ok := v.File(path)
	if !ok {
		return nil, FileInfo{}, fmt.Errorf("%s v%d has no file %q: %w", model, version, path, ErrNotFound)
	}
	rd, err := r.blobs.Open(ctx, f.SHA256)
	if err != nil {
		return nil, FileInfo{}, fmt.Errorf("%s v%d %s: %w", model, version, path, err)
	}
	return rd, f, nil
}

// Delete marks an active version deleted, unless the InUse hook says it is
// in use (ErrInUse, with the reason). Its number is never reused; its
// blobs go at the next GC unless another active version uses them.
// Deleting a deleted version is a no-op.
func (r *Registry) Delete(ctx context.Context, model string, version uint64) error {
	v, err := r.Version(ctx, model, version)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if v.State == StateDeleted {
		return nil
	}
	if r.inUse != nil {
		busy, reason, err := r.inUse(ctx, model, version)
		if err != nil {
			return fmt.Errorf("delete %s v%d: ask fleet control: %w", model, version, err)
		}
		if busy {
			return fmt.Errorf("delete %s v%d: %w: %s", model, version, ErrInUse, reason)
		}
	}
	lock := r.modelLock(model)
	lock.Lock()
	defer lock.Unlock()
	now := r.now().UTC().Truncate(time.Millisecond)
	v.State, v.Updated = StateDeleted, now
	rw, err := toRow(&v, max(uint64(now.UnixNano()), v.rowVersion+1))
	if err != nil {
		return err
	}
	if err := r.insert(ctx, rw); err != nil {
		return fmt.Errorf("delete %s v%d: %w", model, version, err)
	}
	r.log.Info("registry: version deleted", "model", model, "version", version)
	return nil
}

// CollectEvery runs r.GC every interval while ctx lasts, when leader
// reports that this collector is the one to collect (one node of a
// cluster at a time). A failed collection is logged and tried again at the
// next tick; it returns nil when ctx ends.
func CollectEvery(ctx context.Context, r *Registry, interval time.Duration, leader func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !leader() {
			continue
		}
		if _, err := r.GC(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("registry: garbage collection failed; retried at the next interval", "err", err)
		}
	}
}

// GC collects the blobs that no active version uses and that are older
// than the grace period (mark and sweep), returning their digests. Blobs
// staged by a publish in progress are younger than the grace period, and
// commits of this Registry wait for a running GC, so neither loses a blob.
// Run it on one collector at a time (docs/registry.md).
func (r *Registry) GC(ctx context.Context) ([]string, error) {
	r.gc.Lock()
	defer r.gc.Unlock()
	deleted, err := r.blobs.Sweep(ctx, r.grace, r.now(), r.mark)
	if len(deleted) > 0 {
		r.log.Info("registry: blobs collected", "count", len(deleted))
	}
	if err != nil {
		return deleted, fmt.Errorf("gc: %w", err)
	}
	return deleted, nil
}
