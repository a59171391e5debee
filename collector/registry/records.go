package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/drover-ml/drover/shared/manifest"
)

// Table is the ClickHouse table of version records (migration 0009).
const Table = "registry_versions"

// Source says how a version came to be.
type Source string

// Sources of a version.
const (
	SourcePublish  Source = "publish"
	SourceOptimize Source = "optimize"
	SourceMerge    Source = "merge"
)

// State of a version record.
type State string

// States of a version record.
const (
	StateActive  State = "active"
	StateDeleted State = "deleted"
)

// FileInfo is one file of a version: its path inside the version
// directory, its sha256 (the blob's key) and its size.
type FileInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Version is a version's record.
type Version struct {
	Model   string `json:"model"`
	Version uint64 `json:"version"`
	// ContentID identifies the content: see ContentID.
	ContentID string `json:"content_id"`
	// Files are every file of the version sorted by path, the registry's
	// drover.yaml included.
	Files    []FileInfo `json:"files"`
	Created  time.Time  `json:"created"`
	Author   string     `json:"author,omitempty"`
	Message  string     `json:"message,omitempty"`
	Parents  []uint64   `json:"parents,omitempty"`
	Source   Source     `json:"source"`
	Incident string     `json:"incident,omitempty"`
	Job      string     `json:"job,omitempty"`
	// Signature is the publisher's declared signature, else the model
	// file's as the agent serves it (read when the file is at most 64 MiB,
	// a ZipMap as FP32 [-1, classes]), else nil.
	Signature *manifest.Signature `json:"signature,omitempty"`
	State     State               `json:"state"`
	// Updated is when the record last changed (created, deleted).
	Updated time.Time `json:"updated"`

	rowVersion uint64 // of the row read, so a change can supersede it
}

// File returns the version's file at path, and false if it has none.
func (v *Version) File(path string) (FileInfo, bool) {
	i, ok := slices.BinarySearchFunc(v.Files, path, func(f FileInfo, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return FileInfo{}, false
	}
	return v.Files[i], true
}

// ContentID returns the content id of a version with files: the hex sha256
// over "<path>\x00<sha256>\n" for each file but drover.yaml, sorted by path.
// Two versions with the same model files have the same id whatever their
// manifests say.
func ContentID(files []FileInfo) string {
	fs := slices.Clone(files)
	slices.SortFunc(fs, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range fs {
		if f.Path == manifest.FileName {
			continue
		}
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write([]byte(f.SHA256))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// validPath accepts clean, relative, forward-slash paths inside the version
// directory, as the manifest does.
func validPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty file path", ErrInvalid)
	case strings.Contains(p, "\\") || strings.ContainsRune(p, 0):
		return fmt.Errorf("%w: file path %q must use forward slashes and no NUL", ErrInvalid, p)
	case !fs.ValidPath(p) || p == "." || strings.HasPrefix(p, ".tmp"):
		return fmt.Errorf("%w: file path %q must be a clean relative path inside the version directory", ErrInvalid, p)
	}
	return nil
}

// row is a registry_versions row.
type row struct {
	Model      string    `ch:"model"`
	Version    uint64    `ch:"version"`
	ContentID  string    `ch:"content_id"`
	FilePaths  []string  `ch:"file_paths"`
	FileSHA256 []string  `ch:"file_sha256"`
	FileSizes  []uint64  `ch:"file_sizes"`
	Created    time.Time `ch:"created"`
	Author     string    `ch:"author"`
	Message    string    `ch:"message"`
	Parents    []uint64  `ch:"parents"`
	Source     string    `ch:"source"`
	Incident   string    `ch:"incident"`
	Job        string    `ch:"job"`
	Signature  string    `ch:"signature"`
	State      string    `ch:"state"`
	Updated    time.Time `ch:"updated"`
	RowVersion uint64    `ch:"row_version"`
}

const columns = "model, version, content_id, file_paths, file_sha256, file_sizes, created, author, message, parents, source, incident, job, signature, state, updated, row_version"

func toRow(v *Version, rowVersion uint64) (row, error) {
	r := row{
		Model: v.Model, Version: v.Version, ContentID: v.ContentID,
		Created: v.Created, Author: v.Author, Message: v.Message, Parents: v.Parents,
		Source: string(v.Source), Incident: v.Incident, Job: v.Job, State: string(v.State),
		Updated: v.Updated, RowVersion: rowVersion,
	}
	if r.Parents == nil {
		r.Parents = []uint64{}
	}
	for _, f := range v.Files {
		r.FilePaths = append(r.FilePaths, f.Path)
		r.FileSHA256 = append(r.FileSHA256, f.SHA256)
		r.FileSizes = append(r.FileSizes, uint64(f.Size))
	}
	if v.Signature != nil {
		b, err := json.Marshal(v.Signature)
		if err != nil {
			return row{}, err
		}
		r.Signature = string(b)
	}
	return r, nil
}

func (r *row) version() (Version, error) {
	v := Version{
		Model: r.Model, Version: r.Version, ContentID: r.ContentID,
		Created: r.Created.UTC(), Author: r.Author, Message: r.Message, Parents: r.Parents,
		Source: Source(r.Source), Incident: r.Incident, Job: r.Job, State: State(r.State),
		Updated: r.Updated.UTC(), rowVersion: r.RowVersion,
	}
	if len(v.Parents) == 0 {
		v.Parents = nil
	}
	if len(r.FilePaths) != len(r.FileSHA256) || len(r.FilePaths) != len(r.FileSizes) {
		return Version{}, fmt.Errorf("record %s v%d: file arrays of different lengths", r.Model, r.Version)
	}
	for i := range r.FilePaths {
		v.Files = append(v.Files, FileInfo{Path: r.FilePaths[i], SHA256: r.FileSHA256[i], Size: int64(r.FileSizes[i])})
	}
	if r.Signature != "" {
		var s manifest.Signature
		if err := json.Unmarshal([]byte(r.Signature), &s); err != nil {
			return Version{}, fmt.Errorf("record %s v%d: signature: %w", r.Model, r.Version, err)
		}
		v.Signature = &s
	}
	return v, nil
}

// insert writes rows in one batch. The insert is synchronous also through
// a Distributed table (cluster mode), so a read right after it sees the
// row: version allocation reads the maximum right after a commit.
func (r *Registry) insert(ctx context.Context, rows ...row) error {
	if r.cluster {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"distributed_foreground_insert": 1}))
	}
	b, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.table+" ("+columns+")")
	if err != nil {
		return fmt.Errorf("insert version record: %w", err)
	}
	defer b.Abort()
	for i := range rows {
		if err := b.AppendStruct(&rows[i]); err != nil {
			return fmt.Errorf("insert version record: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert version record: %w", err)
	}
	return nil
}

// query returns the current records matching where (with args), ordered by
// model and version.
func (r *Registry) query(ctx context.Context, where string, args ...any) ([]Version, error) {
	var rows []row
	q := "SELECT " + columns + " FROM " + r.table + " FINAL"
	if where != "" {
		q += " WHERE " + where
	}
	q += " ORDER BY model, version"
	if err := r.conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("read version records: %w", err)
	}
	out := make([]Version, 0, len(rows))
	for i := range rows {
		v, err := rows[i].version()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
