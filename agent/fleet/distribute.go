package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/drover-ml/drover/shared/durable"
)

// fileEntry is one file of a registry version (GET
// /v1/models/{m}/versions/{n}/files, docs/registry.md).
type fileEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	URL    string `json:"url"`
}

// downloadedVersions is downloaded.json: the versions this agent put in
// the model directory, with the blobs each is made of. Only these are
// ever removed.
type downloadedVersions struct {
	Models map[string]map[string][]string `json:"models"` // model → version → digests
}

// distributor keeps the model directory in line with the desired state.
// sync is called from one goroutine at a time; status is safe from any.
type distributor struct {
	modelDir, dataDir string
	conn              *conn
	log               *slog.Logger

	dl downloadedVersions // only the syncing goroutine touches it

	mu          sync.Mutex
	errs        map[string]map[int64]string // model → version → download error
	downloading map[string]int64            // model → version being downloaded
}

func newDistributor(modelDir, dataDir string, c *conn, log *slog.Logger) (*distributor, error) {
	d := &distributor{modelDir: modelDir, dataDir: dataDir, conn: c, log: log,
		errs: map[string]map[int64]string{}, downloading: map[string]int64{}}
	b, err := os.ReadFile(filepath.Join(dataDir, DownloadedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", DownloadedFile, err)
	default:
		if err := json.Unmarshal(b, &d.dl); err != nil {
			return nil, fmt.Errorf("%s is corrupt (%v); remove it (the versions it lists will then never be removed)", filepath.Join(dataDir, DownloadedFile), err)
		}
	}
	if d.dl.Models == nil {
		d.dl.Models = map[string]map[string][]string{}
	}
	return d, nil
}

// versionErrors returns a copy of the download errors and the versions
// being downloaded.
func (d *distributor) status() (errs map[string]map[int64]string, downloading map[string]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	errs = make(map[string]map[int64]string, len(d.errs))
	for m, vs := range d.errs {
		errs[m] = maps.Clone(vs)
	}
	return errs, maps.Clone(d.downloading)
}

func (d *distributor) setErr(model string, version int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.errs[model], version)
		if len(d.errs[model]) == 0 {
			delete(d.errs, model)
		}
		return
	}
	if d.errs[model] == nil {
		d.errs[model] = map[int64]string{}
	}
	d.errs[model][version] = err.Error()
}

func (d *distributor) setDownloading(model string, version int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if version == 0 {
		delete(d.downloading, model)
	} else {
		d.downloading[model] = version
	}
}

// sync downloads the desired versions the model directory lacks, then
// removes the downloaded versions no longer kept and the blobs no kept
// version uses. serving returns the versions of a model that serve now
// (never removed). It returns whether some download failed (to retry).
func (d *distributor) sync(ctx context.Context, want Desired, serving func(string) []int64) (failed bool) {
	pending := map[string]bool{} // digests of versions still to assemble: keep their partial blobs
	for _, name := range slices.Sorted(maps.Keys(want.Models)) {
		st := want.Models[name]
		if st.Serving <= 0 {
			continue
		}
		// Stale download errors of versions no longer wanted go.
		d.mu.Lock()
		for v := range d.errs[name] {
			if !containsInt(st.wanted(), v) {
				delete(d.errs[name], v)
			}
		}
		d.mu.Unlock()
		for _, v := range st.wanted() {
			if ctx.Err() != nil {
				return true
			}
			dir := filepath.Join(d.modelDir, name, strconv.FormatInt(v, 10))
			if _, err := os.Lstat(dir); err == nil {
				d.setErr(name, v, nil)
				continue
			}
			d.setDownloading(name, v)
			err := d.download(ctx, name, v, pending)
			d.setDownloading(name, 0)
			if err != nil && ctx.Err() == nil {
				// Logged once per error: retries of the same failure are
				// in the inventory, not the log.
				d.mu.Lock()
				same := d.errs[name][v] == err.Error()
				d.mu.Unlock()
				if !same {
					d.log.Warn("download failed; the version serving now keeps serving", "model", name, "version", v, "err", err)
				}
				failed = true
			}
			if ctx.Err() == nil {
				d.setErr(name, v, err)
			}
		}
	}
	d.cleanup(want, serving)
	d.collectBlobs(pending)
	return failed
}

// download fetches version v of model from the registry into the model
// directory: each blob into the cache, then <model>/.tmp-<v> assembled
// from the cache and renamed to <model>/<v>.
func (d *distributor) download(ctx context.Context, model string, v int64, pending map[string]bool) error {
	files, err := d.files(ctx, model, v)
	if err != nil {
		return err
	}
	for _, f := range files {
		pending[f.SHA256] = true
	}
	for _, f := range files {
		if err := d.fetchBlob(ctx, f); err != nil {
			return fmt.Errorf("download %s v%d: %s: %w", model, v, f.Path, err)
		}
	}
	if err := d.assemble(model, v, files); err != nil {
		return fmt.Errorf("assemble %s v%d: %w", model, v, err)
	}
	d.log.Info("version downloaded", "model", model, "version", v, "files", len(files))
	return nil
}

// files asks the registry for the version's files and checks them.
func (d *distributor) files(ctx context.Context, model string, v int64) ([]fileEntry, error) {
	path := "/v1/models/" + model + "/versions/" + strconv.FormatInt(v, 10) + "/files"
	resp, err := d.conn.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("list the files of %s v%d: %w", model, v, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list the files of %s v%d: %w", model, v, statusError(resp))
	}
	var files []fileEntry
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&files); err != nil {
		return nil, fmt.Errorf("list the files of %s v%d: %w", model, v, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("the registry lists no files for %s v%d", model, v)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if !fs.ValidPath(f.Path) || f.Path == "." || strings.Contains(f.Path, `\`) || seen[f.Path] {
			return nil, fmt.Errorf("the registry names a bad or repeated path %q for %s v%d", f.Path, model, v)
		}
		seen[f.Path] = true
		if !validDigest(f.SHA256) || f.Size < 0 {
			return nil, fmt.Errorf("the registry names a bad digest %q or size %d for %s", f.SHA256, f.Size, f.Path)
		}
	}
	return files, nil
}

func validDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func (d *distributor) blobPath(digest string) string {
	return filepath.Join(d.dataDir, "blobs", "sha256", digest)
}

// fetchBlob makes the cache hold f: a blob already there is used as is
// (it was checked when written); otherwise <digest>.partial is resumed
// with a Range request, checked against the digest, fsynced and renamed.
func (d *distributor) fetchBlob(ctx context.Context, f fileEntry) error {
	final := d.blobPath(f.SHA256)
	if fi, err := os.Stat(final); err == nil && fi.Size() == f.Size {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	partial := final + ".partial"
	out, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	have, err := io.Copy(h, io.LimitReader(out, f.Size))
	if err != nil {
		return fmt.Errorf("read %s: %w", partial, err)
	}
	resumed := have > 0
	for {
		if err := out.Truncate(have); err != nil {
			return err
		}
		if have < f.Size {
			if err := d.getRange(ctx, f, out, h, &have); err != nil {
				return err
			}
			if have < f.Size { // kept: the next try resumes
				return fmt.Errorf("the blob ended after %d of %d bytes", have, f.Size)
			}
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 || have != f.Size {
			if resumed { // what an earlier try left was wrong: once more from 0
				resumed, have = false, 0
				h.Reset()
				continue
			}
			_ = out.Truncate(0)
			return fmt.Errorf("sha256 %s (%d bytes), the registry says %s (%d bytes)", got, have, f.SHA256, f.Size)
		}
		break
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := os.Rename(partial, final); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(final))
}

// getRange appends f's bytes from *have to out and h.
func (d *distributor) getRange(ctx context.Context, f fileEntry, out *os.File, h hash.Hash, have *int64) error {
	hdr := http.Header{}
	if *have > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(*have, 10)+"-")
		hdr.Set("If-Range", `"`+f.SHA256+`"`)
	}
	resp, err := d.conn.do(ctx, http.MethodGet, "/v1/blobs/sha256/"+f.SHA256, nil, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if *have > 0 { // the range was not honoured: start over
			*have = 0
			h.Reset()
			if err := out.Truncate(0); err != nil {
				return err
			}
		}
	default:
		return statusError(resp)
	}
	if _, err := out.Seek(*have, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(io.MultiWriter(&durable.Writeback{W: out, F: out, Off: *have}, h), io.LimitReader(resp.Body, f.Size-*have))
	*have += n
	return err
}

// assemble builds <model>/.tmp-<v> from the cache (hard links when the
// cache is on the same filesystem, else copies), fsyncs it and renames it
// to <model>/<v>, then records the version in downloaded.json.
func (d *distributor) assemble(model string, v int64, files []fileEntry) error {
	modelDir := filepath.Join(d.modelDir, model)
	vs := strconv.FormatInt(v, 10)
	dir := filepath.Join(modelDir, vs)
	tmp := filepath.Join(modelDir, ".tmp-"+vs)
	if err := os.RemoveAll(tmp); err != nil { // a leftover of ours
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	digests := make([]string, 0, len(files))
	for _, f := range files {
		dest := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if err := linkOrCopy(d.blobPath(f.SHA256), dest); err != nil {
			return err
		}
		digests = append(digests, f.SHA256)
	}
	err := filepath.WalkDir(tmp, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		return durable.SyncDir(p)
	})
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s appeared meanwhile; leaving it", dir)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	ok = true
	if err := durable.SyncDir(modelDir); err != nil {
		return err
	}
	if d.dl.Models[model] == nil {
		d.dl.Models[model] = map[string][]string{}
	}
	d.dl.Models[model][vs] = digests
	return writeJSONFile(filepath.Join(d.dataDir, DownloadedFile), d.dl)
}

// linkOrCopy hard-links src to dst, or copies it (fsynced) when a link is
// not possible (another filesystem).
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cleanup removes the versions this agent downloaded of the models in the
// desired state that are neither desired (serving, canary, shadow),
// previous, nor serving now. Other directories are never touched.
func (d *distributor) cleanup(want Desired, serving func(string) []int64) {
	changed := false
	for _, name := range slices.Sorted(maps.Keys(d.dl.Models)) {
		st, ok := want.Models[name]
		if !ok || st.Serving <= 0 {
			continue // not controlled: the directory is the operator's
		}
		keep := append(st.wanted(), st.Previous)
		keep = append(keep, serving(name)...)
		for vs := range d.dl.Models[name] {
			v, err := strconv.ParseInt(vs, 10, 64)
			if err == nil && containsInt(keep, v) {
				continue
			}
			dir := filepath.Join(d.modelDir, name, vs)
			if err := os.RemoveAll(dir); err != nil {
				d.log.Warn("remove a downloaded version", "model", name, "version", vs, "err", err)
				continue
			}
			_ = durable.SyncDir(filepath.Join(d.modelDir, name))
			d.log.Info("downloaded version removed: neither desired, previous nor serving", "model", name, "version", vs)
			delete(d.dl.Models[name], vs)
			changed = true
		}
		if len(d.dl.Models[name]) == 0 {
			delete(d.dl.Models, name)
		}
	}
	if changed {
		if err := writeJSONFile(filepath.Join(d.dataDir, DownloadedFile), d.dl); err != nil {
			d.log.Warn("write "+DownloadedFile, "err", err)
		}
	}
}

// collectBlobs removes the cached blobs (and partial downloads) that no
// kept downloaded version uses and no pending download needs.
func (d *distributor) collectBlobs(pending map[string]bool) {
	used := maps.Clone(pending)
	for _, vs := range d.dl.Models {
		for _, digests := range vs {
			for _, dg := range digests {
				used[dg] = true
			}
		}
	}
	dir := filepath.Join(d.dataDir, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if used[strings.TrimSuffix(e.Name(), ".partial")] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			d.log.Warn("remove a cached blob", "blob", e.Name(), "err", err)
		}
	}
}
