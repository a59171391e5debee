package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for Config.
const (
	DefaultDebounce = 50 * time.Millisecond
	DefaultRescan   = 30 * time.Second
)

// Config configures a Watcher. Zero durations take the defaults.
type Config struct {
	// Root is the model store: <Root>/<model>/<version>/.
	Root string
	// Debounce is how long a model must be quiet after an event before it
	// is rescanned, and how long the files of a version without checksums
	// must stay unchanged before it is Ready. A model with a continuous
	// stream of events is still rescanned every 10×Debounce.
	Debounce time.Duration
	// Rescan is the period of the full rescan that catches what events
	// missed (or everything, with DisableNotify).
	Rescan time.Duration
	// DisableNotify turns file system notifications off: only the periodic
	// rescan sees changes. For file systems that do not deliver events (NFS
	// written by other hosts) and for tests.
	DisableNotify bool
	// Logger receives the watcher's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports every invalid field, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Root == "" {
		errs = append(errs, errors.New("root: is required"))
	}
	if c.Debounce < 0 {
		errs = append(errs, fmt.Errorf("debounce: must not be negative, got %s", c.Debounce))
	}
	if c.Rescan < 0 {
		errs = append(errs, fmt.Errorf("rescan: must not be negative, got %s", c.Rescan))
	}
	return errors.Join(errs...)
}

// Watcher watches a model store and reports, per model, the state of every
// version whenever it changes.
//
// Lifecycle: New builds it, Run runs it once until its context is
// cancelled; nothing it starts outlives Run. Snapshot may be called at any
// time from any goroutine.
type Watcher struct {
	cfg      Config
	root     string
	log      *slog.Logger
	onChange func(model string, versions []Version)
	started  atomic.Bool
	scanned  atomic.Bool // the first full scan has been reported

	mu   sync.Mutex
	snap map[string][]Version // last reported; guarded by mu

	// Owned by the Run goroutine.
	scan      *scanner
	fsw       *fsnotify.Watcher            // nil without notifications
	watches   map[string]map[string]fileID // model ("" for the root) → watched dir → identity
	touched   map[string]bool              // dirs visited by the model scan in progress
	due       map[string]time.Time         // model (allModels for a full rescan) → when to scan it
	first     map[string]time.Time         // model → first event not yet scanned
	modelErr  map[string]string            // model → read error last logged
	logged    map[string]bool              // one-time warnings already logged
	maxWait   time.Duration
	wake      time.Time // when the debounce timer fires; zero when stopped
	debouncer *time.Timer
}

// allModels is the key of a pending full rescan in Watcher.due (no model
// can have an empty name).
const allModels = ""

// New builds a Watcher for cfg. onChange is called with a model and all its
// versions, sorted by number, each time that list changes (number, state,
// fingerprint or error), and with an empty list once when the model
// directory disappears. The first full scan reports every model. Calls come
// from Run's goroutine, one at a time; onChange may call Snapshot, and
// while it runs no other event is handled, so it should not block long. It
// owns the slice it is given.
func New(cfg Config, onChange func(model string, versions []Version)) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	}
	if onChange == nil {
		return nil, errors.New("watch: onChange is required")
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Rescan == 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watcher{
		cfg:      cfg,
		root:     filepath.Clean(cfg.Root),
		log:      cfg.Logger.With("component", "watch", "root", filepath.Clean(cfg.Root)),
		onChange: onChange,
		snap:     map[string][]Version{},
		watches:  map[string]map[string]fileID{},
		due:      map[string]time.Time{},
		first:    map[string]time.Time{},
		modelErr: map[string]string{},
		logged:   map[string]bool{},
		maxWait:  10 * cfg.Debounce,
	}
	w.scan = newScanner(w.root, cfg.Debounce, w.addWatch)
	return w, nil
}

// Snapshot returns a copy of the last reported state: every present model
// with its versions. It is safe to call from any goroutine, onChange
// included.
func (w *Watcher) Snapshot() map[string][]Version {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]Version, len(w.snap))
	for m, vs := range w.snap {
		out[m] = slices.Clone(vs)
	}
	return out
}

// Scanned reports whether Run has finished its first full scan and
// reported every model found then. Safe for concurrent use.
func (w *Watcher) Scanned() bool { return w.scanned.Load() }

// Run scans the store, reports every model, then watches it until ctx is
// cancelled, and returns nil. It returns an error at once when the root
// cannot be read, and when it was called before. Failures after the start
// (a model directory that cannot be read, the inotify watch limit, a root
// that disappears) are logged, once per change, and do not stop it.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("watch: Run called more than once")
	}
	fi, err := os.Stat(w.root)
	if err != nil {
		return fmt.Errorf("watch: model store root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("watch: model store root %s is not a directory", w.root)
	}

	var events <-chan fsnotify.Event
	var errs <-chan error
	if !w.cfg.DisableNotify {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			w.log.Warn("file notifications unavailable; changes are seen by the periodic rescan only",
				"rescan", w.cfg.Rescan, "err", err)
		} else {
			w.fsw = fsw
			defer fsw.Close() // waits for its reader goroutine
			events, errs = fsw.Events, fsw.Errors
		}
	}

	w.debouncer = time.NewTimer(time.Hour)
	w.debouncer.Stop()
	defer w.debouncer.Stop()
	rescan := time.NewTicker(w.cfg.Rescan)
	defer rescan.Stop()

	if err := w.initialScan(ctx, idOf(fi)); err != nil {
		return err
	}
	w.scanned.Store(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.handleEvent(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.logOnce("overflow", "file notification queue overflowed; rescanning everything",
					"hint", "raise fs.inotify.max_queued_events")
			} else {
				w.logOnce("notify:"+err.Error(), "file notification error; rescanning everything", "err", err)
			}
			w.schedule(allModels, time.Now())
		case <-w.debouncer.C:
			w.wake = time.Time{}
			w.runDue(ctx)
		case <-rescan.C:
			w.fullScan(ctx)
		}
	}
}

// initialScan scans every model and reports it. A model with versions
// waiting for their files to settle is reported after one more look, so
// that the first report of a published version is final.
func (w *Watcher) initialScan(ctx context.Context, rootID fileID) error {
	w.addWatch(allModels, w.root, rootID)
	models, err := w.scan.models()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	var again []string
	var until time.Time
	for _, m := range models {
		if ctx.Err() != nil {
			return nil
		}
		if r := w.scanModel(m); !r.recheck.IsZero() {
			again = append(again, m)
			until = later(until, r.recheck)
		} else {
			w.apply(m, r)
		}
	}
	if len(again) == 0 {
		return nil
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	for _, m := range again {
		r := w.scanModel(m)
		w.apply(m, r)
		if !r.recheck.IsZero() {
			w.recheck(m, r.recheck)
		}
	}
	return nil
}

// fullScan rescans every model on disk and every model last reported.
func (w *Watcher) fullScan(ctx context.Context) {
	clear(w.due)
	clear(w.first)
	// The root may have been replaced (or may be back).
	if fi, err := os.Stat(w.root); err == nil {
		w.addWatch(allModels, w.root, idOf(fi))
	}
	models, err := w.scan.models()
	if err != nil {
		// Keep the last state: an unmounted or vanished store must not
		// unload every model. Log once until it changes.
		w.logModelErr(allModels, err)
		return
	}
	w.logModelErr(allModels, nil)
	w.mu.Lock()
	all := slices.Collect(maps.Keys(w.snap))
	w.mu.Unlock()
	all = append(all, models...)
	slices.Sort(all)
	for _, m := range slices.Compact(all) {
		if ctx.Err() != nil {
			return
		}
		w.scanAndApply(m)
	}
}

// runDue rescans the models whose debounce delay is over.
func (w *Watcher) runDue(ctx context.Context) {
	now := time.Now()
	if t, ok := w.due[allModels]; ok && !t.After(now) {
		w.fullScan(ctx)
		now = time.Now()
	}
	var ready []string
	for m, t := range w.due {
		if !t.After(now) {
			ready = append(ready, m)
		}
	}
	slices.Sort(ready)
	for _, m := range ready {
		if ctx.Err() != nil {
			return
		}
		delete(w.due, m)
		delete(w.first, m)
		w.scanAndApply(m)
	}
	var next time.Time
	for _, t := range w.due {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !next.IsZero() {
		w.arm(next)
	}
}

func (w *Watcher) scanAndApply(m string) {
	r := w.scanModel(m)
	w.apply(m, r)
	if !r.recheck.IsZero() {
		w.recheck(m, r.recheck)
	}
}

// scanModel scans one model and keeps the watches in step: directories of
// the model that the scan did not visit any more are unwatched.
func (w *Watcher) scanModel(m string) modelResult {
	w.touched = map[string]bool{}
	r := w.scan.scanModel(m, time.Now())
	if r.err == nil {
		for dir := range w.watches[m] {
			if !w.touched[dir] {
				w.unwatch(m, dir)
			}
		}
	}
	w.touched = nil
	return r
}

// apply turns a scan result into a report when it differs from the last
// one.
func (w *Watcher) apply(m string, r modelResult) {
	if r.err != nil {
		// Unreadable model directory: what we knew of it is Invalid now.
		w.logModelErr(m, r.err)
		w.mu.Lock()
		prev := w.snap[m]
		w.mu.Unlock()
		vs := make([]Version, len(prev))
		for i, v := range prev {
			v.State, v.Err, v.Manifest = Invalid, r.err, nil
			vs[i] = v
		}
		w.report(m, vs, true)
		return
	}
	w.logModelErr(m, nil)
	if !r.exists {
		delete(w.modelErr, m)
	}
	w.report(m, r.versions, r.exists)
}

// report calls onChange when the model's versions differ from the last
// report.
func (w *Watcher) report(m string, vs []Version, exists bool) {
	w.mu.Lock()
	prev, had := w.snap[m]
	if (exists && had && sameVersions(prev, vs)) || (!exists && !had) {
		w.mu.Unlock()
		return
	}
	if exists {
		w.snap[m] = vs
	} else {
		delete(w.snap, m)
		vs = []Version{}
	}
	w.mu.Unlock()
	w.logChanges(m, prev, vs, exists)
	w.onChange(m, slices.Clone(vs))
}

func sameVersions(a, b []Version) bool {
	return slices.EqualFunc(a, b, func(x, y Version) bool {
		return x.Number == y.Number && x.State == y.State && x.Fingerprint == y.Fingerprint && errText(x.Err) == errText(y.Err)
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// logChanges logs each version whose state or error changed.
func (w *Watcher) logChanges(m string, prev, cur []Version, exists bool) {
	if !exists {
		w.log.Info("model removed", "model", m)
		return
	}
	old := make(map[int64]Version, len(prev))
	for _, v := range prev {
		old[v.Number] = v
	}
	for _, v := range cur {
		p, had := old[v.Number]
		delete(old, v.Number)
		if had && p.State == v.State && errText(p.Err) == errText(v.Err) {
			continue
		}
		switch v.State {
		case Ready:
			w.log.Info("version ready", "model", m, "version", v.Number)
		case Invalid:
			w.log.Warn("version invalid", "model", m, "version", v.Number, "err", v.Err)
		default:
			w.log.Debug("version incomplete", "model", m, "version", v.Number, "err", v.Err)
		}
	}
	for n := range old {
		w.log.Info("version removed", "model", m, "version", n)
	}
}

// logModelErr logs a model directory's (or, for allModels, the root's) read
// error once per change, and its recovery.
func (w *Watcher) logModelErr(m string, err error) {
	prev, had := w.modelErr[m]
	switch {
	case err == nil && had:
		delete(w.modelErr, m)
		if m == allModels {
			w.log.Info("model store root readable again")
		} else {
			w.log.Info("model directory readable again", "model", m)
		}
	case err != nil && prev != err.Error():
		w.modelErr[m] = err.Error()
		if m == allModels {
			w.log.Warn("cannot read the model store root; keeping the last known state", "err", err)
		} else {
			w.log.Warn("cannot read model directory; its versions are invalid until it can", "model", m, "err", err)
		}
	}
}

// handleEvent schedules a rescan of the model an event belongs to.
func (w *Watcher) handleEvent(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	if name == w.root {
		// The root itself was removed, moved or changed: look at everything.
		w.forget(allModels, name)
		w.schedule(allModels, time.Now())
		return
	}
	rel, ok := strings.CutPrefix(name, w.root+string(filepath.Separator))
	if !ok {
		return
	}
	m, _, _ := strings.Cut(rel, string(filepath.Separator))
	if !isModelName(m) {
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// inotify drops the watch of a removed or moved directory: forget
		// it so that the next scan adds it again if it is back.
		w.forget(m, name)
	}
	w.schedule(m, time.Now())
}

// schedule delays the rescan of m to Debounce after now, but no later than
// maxWait after the first event not yet scanned.
func (w *Watcher) schedule(m string, now time.Time) {
	first, ok := w.first[m]
	if !ok {
		first = now
		w.first[m] = now
	}
	t := now.Add(w.cfg.Debounce)
	if limit := first.Add(w.maxWait); t.After(limit) {
		t = limit
	}
	w.due[m] = t
	w.arm(t)
}

// recheck makes sure m is rescanned at t at the latest.
func (w *Watcher) recheck(m string, t time.Time) {
	if cur, ok := w.due[m]; ok && !t.Before(cur) {
		return
	}
	w.due[m] = t
	w.arm(t)
}

// arm makes the debounce timer fire at t at the latest. Deadlines that move
// later make it fire early; runDue then re-arms it.
func (w *Watcher) arm(t time.Time) {
	if !w.wake.IsZero() && !t.Before(w.wake) {
		return
	}
	w.wake = t
	w.debouncer.Reset(max(time.Until(t), 0))
}

// addWatch watches dir (of model m, or the root for allModels) unless it is
// already watched with the same identity.
func (w *Watcher) addWatch(m, dir string, id fileID) {
	if w.touched != nil {
		w.touched[dir] = true
	}
	if w.fsw == nil {
		return
	}
	ws := w.watches[m]
	if ws == nil {
		ws = map[string]fileID{}
		w.watches[m] = ws
	}
	old, ok := ws[dir]
	if ok && old == id {
		return
	}
	if ok {
		_ = w.fsw.Remove(dir) // replaced: watch the new directory
		delete(ws, dir)
	}
	if err := w.fsw.Add(dir); err != nil {
		switch {
		case errors.Is(err, syscall.ENOSPC):
			w.logOnce("limit", "inotify watch limit reached; changes in unwatched directories are seen by the periodic rescan only",
				"dir", dir, "rescan", w.cfg.Rescan, "hint", "raise fs.inotify.max_user_watches", "err", err)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
			// Gone meanwhile, or unreadable: the scan reports it.
		default:
			w.logOnce("add:"+err.Error(), "cannot watch directory; relying on the periodic rescan", "dir", dir, "err", err)
		}
		return
	}
	ws[dir] = id
}

// unwatch stops watching dir of model m.
func (w *Watcher) unwatch(m, dir string) {
	if w.fsw != nil {
		_ = w.fsw.Remove(dir) // ErrNonExistentWatch when inotify dropped it already
	}
	delete(w.watches[m], dir)
	if len(w.watches[m]) == 0 {
		delete(w.watches, m)
	}
}

// forget drops dir (and what is below it) from the watched set without
// touching fsnotify, after inotify dropped the watch itself.
func (w *Watcher) forget(m, dir string) {
	ws := w.watches[m]
	for d := range ws {
		if d == dir || strings.HasPrefix(d, dir+string(filepath.Separator)) {
			if d != dir && w.fsw != nil {
				_ = w.fsw.Remove(d)
			}
			delete(ws, d)
		}
	}
}

// logOnce logs a warning the first time key is seen. It keeps at most 1000
// keys, then logs nothing new.
func (w *Watcher) logOnce(key, msg string, args ...any) {
	if w.logged[key] || len(w.logged) >= 1000 {
		return
	}
	w.logged[key] = true
	w.log.Warn(msg, args...)
}

// fileID identifies a directory, so that a watch follows a directory that
// was replaced under the same name.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	dev, ino, _ := sysStat(fi)
	return fileID{dev, ino}
}
