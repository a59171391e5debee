package watch

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/drover-ml/drover/shared/manifest"
)

// State says whether a version can be loaded.
type State int

const (
	// Incomplete: not loadable yet (still being written, checksums not
	// matching yet, files not stable yet). It is looked at again when the
	// directory changes. Err wraps manifest.ErrIncomplete.
	Incomplete State = iota
	// Ready: complete and consistent; safe to load.
	Ready
	// Invalid: wrong as it stands (bad manifest, manifest naming another
	// model or version, unreadable directory). Waiting does not fix it; it is
	// evaluated again when the directory changes.
	Invalid
)

// String returns "incomplete", "ready" or "invalid".
func (s State) String() string {
	switch s {
	case Incomplete:
		return "incomplete"
	case Ready:
		return "ready"
	case Invalid:
		return "invalid"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Version is one version directory of a model as the watcher last saw it.
// Values are snapshots: they never change after they are handed out, and the
// Manifest they point to is shared and must be treated as read-only.
type Version struct {
	// Model is the model directory's name.
	Model string
	// Number is the version directory's name as an integer (>= 1).
	Number int64
	// Dir is <root>/<model>/<number>, as found (not resolved if it is a
	// symlink).
	Dir string
	// Manifest is the parsed drover.yaml, nil when there is none or it is
	// invalid.
	Manifest *manifest.Manifest
	// State says whether the version can be loaded.
	State State
	// Err says why the version is not Ready; nil when it is.
	Err error
	// Fingerprint is an opaque digest of the directory's identity and the
	// names, sizes, times and inodes of its top-level files and of the files
	// the manifest lists. It changes whenever a file that matters changes.
	Fingerprint string
}

// versionRe accepts canonical positive integers only: no sign, no leading
// zero, at most 18 digits (so it always fits in an int64).
var versionRe = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)

// parseVersion returns the version number a directory name stands for.
func parseVersion(name string) (int64, bool) {
	if !versionRe.MatchString(name) {
		return 0, false
	}
	n, err := strconv.ParseInt(name, 10, 64)
	return n, err == nil
}

// isModelName reports whether a directory under the root names a model.
func isModelName(name string) bool {
	return name != "" && name[0] != '.' && manifest.ValidName(name)
}

// Scan lists the models under root and the state of each of their versions,
// sorted by number. It is a one-shot version of what the Watcher does: a
// version without checksums is looked at twice, DefaultDebounce apart, so
// Scan takes at least that long when there is one.
//
// An error reading root is returned with a nil map. A model directory that
// cannot be read is left out of the map and its error is joined into the
// returned error, next to the models that could be read.
func Scan(root string) (map[string][]Version, error) {
	s := newScanner(root, DefaultDebounce, nil)
	models, err := s.models()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]Version, len(models))
	var errs []error
	var again []string
	var until time.Time
	for _, m := range models {
		r := s.scanModel(m, time.Now())
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case r.exists:
			out[m] = r.versions
			if !r.recheck.IsZero() {
				again = append(again, m)
				until = later(until, r.recheck)
			}
		}
	}
	if len(again) > 0 {
		time.Sleep(time.Until(until))
		for _, m := range again {
			r := s.scanModel(m, time.Now())
			delete(out, m)
			switch {
			case r.err != nil:
				errs = append(errs, r.err)
			case r.exists:
				out[m] = r.versions
			}
		}
	}
	return out, errors.Join(errs...)
}

// scanner evaluates version directories and caches the result by
// fingerprint, so that an unchanged version is not hashed again. It is not
// safe for concurrent use.
type scanner struct {
	root   string
	stable time.Duration
	// watch, when set, is called with every directory the scanner is about
	// to read, before it reads it, so that no change is missed between the
	// read and the start of the watch.
	watch func(model, dir string, id fileID)
	cache map[string]map[int64]*entry // model → version → last evaluation
	// errUnstable is the Err of a version waiting for its files to settle.
	errUnstable error
	// evals counts evaluations (cache misses), for tests.
	evals int
}

// entry is the evaluation of one version directory for one fingerprint.
type entry struct {
	fp    string
	since time.Time // when this fingerprint was first seen
	v     Version
	// stable is true when v.State == Ready depends on the files staying
	// unchanged for the stability interval (no checksums to prove them).
	stable bool
}

func newScanner(root string, stable time.Duration, watch func(model, dir string, id fileID)) *scanner {
	return &scanner{
		root:   filepath.Clean(root),
		stable: stable,
		watch:  watch,
		cache:  map[string]map[int64]*entry{},
		errUnstable: fmt.Errorf("%w: no checksums in %s to prove it complete; waiting until its files stay unchanged for %s",
			manifest.ErrIncomplete, manifest.FileName, stable),
	}
}

// models lists the model directories under the root (symlinks to
// directories included), sorted.
func (s *scanner) models() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("read model store root %s: %w", s.root, err)
	}
	var out []string
	for _, e := range ents {
		if isModelName(e.Name()) && isDir(filepath.Join(s.root, e.Name()), e) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// isDir reports whether a directory entry is a directory or a symlink to one.
func isDir(p string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// modelResult is what scanning one model directory found.
type modelResult struct {
	versions []Version // sorted by number
	exists   bool      // the model directory exists (false: removed, or not a directory)
	// recheck, when not zero, is when a version waiting for its files to
	// settle can be confirmed by looking again.
	recheck time.Time
	// err is set when the model directory exists but cannot be read;
	// versions is then nil.
	err error
}

// scanModel evaluates every version of one model at time now.
func (s *scanner) scanModel(model string, now time.Time) modelResult {
	dir := filepath.Join(s.root, model)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		delete(s.cache, model)
		return modelResult{}
	}
	if err != nil {
		return modelResult{exists: true, err: fmt.Errorf("model %s: %w", model, err)}
	}
	if s.watch != nil {
		s.watch(model, dir, idOf(fi))
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		delete(s.cache, model)
		return modelResult{}
	}
	if err != nil {
		return modelResult{exists: true, err: fmt.Errorf("model %s: %w", model, err)}
	}
	res := modelResult{exists: true, versions: []Version{}}
	cache := s.cache[model]
	if cache == nil {
		cache = map[int64]*entry{}
		s.cache[model] = cache
	}
	seen := map[int64]bool{}
	for _, e := range ents {
		n, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		vdir := filepath.Join(dir, e.Name())
		vfi, err := os.Stat(vdir)
		if err != nil {
			if e.IsDir() && !errors.Is(err, fs.ErrNotExist) {
				// A real directory we cannot look into.
				seen[n] = true
				delete(cache, n)
				res.versions = append(res.versions, Version{Model: model, Number: n, Dir: vdir, State: Invalid,
					Err: fmt.Errorf("stat version directory: %w", err)})
			}
			continue // gone meanwhile, or a dangling symlink
		}
		if !vfi.IsDir() {
			continue
		}
		v, ok, recheck := s.version(cache, model, n, vdir, vfi, now)
		if !ok {
			continue
		}
		seen[n] = true
		res.versions = append(res.versions, v)
		if !recheck.IsZero() && (res.recheck.IsZero() || recheck.Before(res.recheck)) {
			res.recheck = recheck
		}
	}
	for n := range cache {
		if !seen[n] {
			delete(cache, n)
		}
	}
	slices.SortFunc(res.versions, func(a, b Version) int { return cmp.Compare(a.Number, b.Number) })
	return res
}

// version evaluates one version directory. ok is false when it vanished
// while being looked at. recheck is set when the version waits for its
// files to settle.
func (s *scanner) version(cache map[int64]*entry, model string, n int64, vdir string, vfi fs.FileInfo, now time.Time) (v Version, ok bool, recheck time.Time) {
	if s.watch != nil {
		s.watch(model, vdir, idOf(vfi))
	}
	base := Version{Model: model, Number: n, Dir: vdir}
	ents, err := os.ReadDir(vdir)
	if errors.Is(err, fs.ErrNotExist) {
		return Version{}, false, time.Time{}
	}
	if err != nil {
		delete(cache, n)
		base.State, base.Err = Invalid, fmt.Errorf("read version directory: %w", err)
		return base, true, time.Time{}
	}
	// Stat everything before reading anything: a result is then cached
	// under a fingerprint no newer than the content it was computed from,
	// and a later change always shows as a new fingerprint.
	h := sha256.New()
	dev, ino, _ := sysStat(vfi)
	fmt.Fprintf(h, "dir %d %d\n", dev, ino)
	files := make(map[string]fs.FileInfo, len(ents))
	for _, e := range ents {
		p := filepath.Join(vdir, e.Name())
		fi, err := os.Stat(p) // follow symlinks: the target is what gets loaded
		if err != nil {
			if fi, err = e.Info(); err != nil {
				continue // gone meanwhile
			}
			fmt.Fprintf(h, "dangling ")
		}
		files[e.Name()] = fi
		writeStat(h, e.Name(), fi)
	}
	var man *manifest.Manifest
	var manErr error
	if _, has := files[manifest.FileName]; has {
		man, manErr = manifest.Load(vdir)
	}
	if man != nil {
		// Files the manifest lists below the top level count too, and so do
		// the directories holding them (watched, so their writes are seen).
		for _, f := range man.Files {
			rel := path.Dir(f.Path)
			if rel == "." {
				continue
			}
			for d := rel; d != "."; d = path.Dir(d) {
				if s.watch == nil {
					break
				}
				if dfi, err := os.Stat(filepath.Join(vdir, filepath.FromSlash(d))); err == nil && dfi.IsDir() {
					s.watch(model, filepath.Join(vdir, filepath.FromSlash(d)), idOf(dfi))
				}
			}
			if fi, err := os.Stat(filepath.Join(vdir, filepath.FromSlash(f.Path))); err == nil {
				writeStat(h, f.Path, fi)
			} else {
				fmt.Fprintf(h, "missing %q\n", f.Path)
			}
		}
	}
	fp := hex.EncodeToString(h.Sum(nil)[:16])

	e := cache[n]
	if e == nil || e.fp != fp {
		e = &entry{fp: fp, since: now}
		s.evals++
		e.v, e.stable = evaluate(base, files, man, manErr)
		e.v.Fingerprint = fp
		cache[n] = e
	}
	v = e.v
	if e.stable && v.State == Ready {
		if settled := e.since.Add(s.stable); now.Before(settled) {
			v.State, v.Err = Incomplete, s.errUnstable
			recheck = settled
		}
	}
	return v, true, recheck
}

// evaluate decides a version's state from its files. stable reports that a
// Ready result still needs the files to stay unchanged for a while.
func evaluate(v Version, files map[string]fs.FileInfo, man *manifest.Manifest, manErr error) (Version, bool) {
	fail := func(s State, err error) (Version, bool) {
		v.State, v.Err = s, err
		return v, false
	}
	incomplete := func(format string, args ...any) (Version, bool) {
		return fail(Incomplete, fmt.Errorf("%w: "+format, append([]any{manifest.ErrIncomplete}, args...)...))
	}
	switch {
	case errors.Is(manErr, fs.ErrNotExist):
		// Listed a moment ago, gone now, or a dangling symlink.
		return incomplete("%s: %v", manifest.FileName, manErr)
	case manErr != nil:
		return fail(Invalid, manErr)
	case man != nil && (man.Model != v.Model || man.Version != v.Number):
		return fail(Invalid, fmt.Errorf("%s names model %q version %d but the directory is %s/%d",
			manifest.FileName, man.Model, man.Version, v.Model, v.Number))
	}
	v.Manifest = man
	fi, ok := files[manifest.ModelFile]
	switch {
	case !ok:
		return incomplete("%s is missing", manifest.ModelFile)
	case !fi.Mode().IsRegular():
		return fail(Invalid, fmt.Errorf("%s is not a regular file (%s)", manifest.ModelFile, fi.Mode().Type()))
	case fi.Size() == 0:
		return incomplete("%s is empty", manifest.ModelFile)
	}
	if man == nil || len(man.Files) == 0 {
		v.State = Ready
		return v, true
	}
	if err := man.Verify(v.Dir); err != nil {
		if errors.Is(err, manifest.ErrIncomplete) {
			return fail(Incomplete, err)
		}
		return fail(Invalid, fmt.Errorf("verify: %w", err))
	}
	v.State = Ready
	return v, false
}

func writeStat(h io.Writer, name string, fi fs.FileInfo) {
	dev, ino, ctime := sysStat(fi)
	fmt.Fprintf(h, "%q %o %d %d %d %d %d\n", name, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), dev, ino, ctime)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
