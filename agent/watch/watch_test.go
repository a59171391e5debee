package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call is one onChange call.
type call struct {
	at       time.Time
	model    string
	versions []Version
}

// recorder collects onChange calls and checks that they never overlap.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	inCall bool
	t      *testing.T
}

func (r *recorder) onChange(model string, versions []Version) {
	r.mu.Lock()
	if r.inCall {
		r.t.Errorf("onChange called concurrently")
	}
	r.inCall = true
	r.calls = append(r.calls, call{time.Now(), model, versions})
	r.inCall = false
	r.mu.Unlock()
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// last returns the last report for model.
func (r *recorder) last(model string) (call, bool) {
	calls := r.all()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].model == model {
			return calls[i], true
		}
	}
	return call{}, false
}

func (r *recorder) count(model string) int {
	n := 0
	for _, c := range r.all() {
		if c.model == model {
			n++
		}
	}
	return n
}

// start runs a Watcher on cfg until the test ends, then checks that Run
// returned nil promptly.
func start(t *testing.T, cfg Config) (*Watcher, *recorder) {
	t.Helper()
	rec := &recorder{t: t}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w, err := New(cfg, rec.onChange)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
	return w, rec
}

// states renders versions as "1:ready 2:incomplete".
func states(vs []Version) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", v.Number, v.State)
	}
	return b.String()
}

// lastIs waits until the last report of model renders as want.
func lastIs(t *testing.T, rec *recorder, model, want string, timeout time.Duration) call {
	t.Helper()
	var c call
	testenv.Eventually(t, timeout, fmt.Sprintf("%s reported as %q", model, want), func() bool {
		var ok bool
		c, ok = rec.last(model)
		return ok && states(c.versions) == want
	})
	return c
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// manifestFor returns a drover.yaml listing model.onnx with the checksum of
// data.
func manifestFor(t *testing.T, model string, version int64, data []byte) []byte {
	t.Helper()
	m := manifest.Manifest{Model: model, Version: version,
		Files: []manifest.File{{Path: manifest.ModelFile, SHA256: sum(data)}}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publish writes a version into <root>/<model>/.tmp-<n> and renames it into
// place, as the store's contract says. It returns the time of the rename.
func publish(t *testing.T, root, model string, n int64, files map[string][]byte) time.Time {
	t.Helper()
	tmp := filepath.Join(root, model, ".tmp-"+strconv.FormatInt(n, 10))
	for name, data := range files {
		writeFile(t, filepath.Join(tmp, name), data)
	}
	at := time.Now()
	if err := os.Rename(tmp, filepath.Join(root, model, strconv.FormatInt(n, 10))); err != nil {
		t.Fatal(err)
	}
	return at
}

var onnx = []byte("not really onnx, but non-empty")

func TestPublishByRename(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mkdir(t, filepath.Join(root, "iris"))
	_, rec := start(t, Config{Root: root}) // default debounce: the real latency
	lastIs(t, rec, "iris", "", 2*time.Second)

	at := publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx})
	c := lastIs(t, rec, "iris", "1:ready", 2*time.Second)
	t.Logf("publish-to-report latency: %s (debounce %s)", c.at.Sub(at).Round(time.Millisecond), DefaultDebounce)
	v := c.versions[0]
	if v.Model != "iris" || v.Dir != filepath.Join(root, "iris", "1") || v.Err != nil || v.Manifest != nil || v.Fingerprint == "" {
		t.Errorf("version = %+v", v)
	}
}

func TestIgnoredNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	model := map[string][]byte{manifest.ModelFile: onnx}
	ignored := func(phase string) {
		for _, d := range []string{".tmp-3", "latest", "0", "01", "abc", "+4", "-5", "12345678901234567890"} {
			writeFile(t, filepath.Join(root, "iris", d+phase, manifest.ModelFile), onnx)
		}
		writeFile(t, filepath.Join(root, "iris", "5"+phase), onnx) // a file, not a directory
		writeFile(t, filepath.Join(root, ".hidden"+phase, "1", manifest.ModelFile), onnx)
		writeFile(t, filepath.Join(root, "bad+name"+phase, "1", manifest.ModelFile), onnx)
		writeFile(t, filepath.Join(root, "file"+phase), onnx)
	}
	ignored("")
	publish(t, root, "iris", 2, model)
	if err := os.Symlink("2", filepath.Join(root, "iris", "latest-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(root, "iris", "9")); err != nil { // dangling
		t.Fatal(err)
	}
	w, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	lastIs(t, rec, "iris", "2:ready", 2*time.Second)

	// The same names appearing while watching; version 7 marks the end.
	ignored("")
	writeFile(t, filepath.Join(root, "iris", "6"), onnx)
	publish(t, root, "iris", 7, model)
	lastIs(t, rec, "iris", "2:ready 7:ready", 2*time.Second)

	for _, c := range rec.all() {
		if c.model != "iris" {
			t.Errorf("model %q reported", c.model)
		}
		for _, v := range c.versions {
			if v.Number != 2 && v.Number != 7 {
				t.Errorf("version %d reported: %+v", v.Number, v)
			}
		}
	}
	if got := w.Snapshot(); len(got) != 1 || states(got["iris"]) != "2:ready 7:ready" {
		t.Errorf("snapshot = %v", got)
	}
}

// An in-place copy with checksums is never Ready while half-written.
func TestInPlaceCopyWithChecksums(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mkdir(t, filepath.Join(root, "iris"))
	_, rec := start(t, Config{Root: root, Debounce: 30 * time.Millisecond})
	lastIs(t, rec, "iris", "", 2*time.Second)

	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	dir := filepath.Join(root, "iris", "1")
	writeFile(t, filepath.Join(dir, manifest.FileName), manifestFor(t, "iris", 1, data))
	f, err := os.Create(filepath.Join(dir, manifest.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	c := lastIs(t, rec, "iris", "1:incomplete", 2*time.Second)
	if err := c.versions[0].Err; !errors.Is(err, manifest.ErrIncomplete) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("half-written: err = %v, want ErrIncomplete mentioning sha256", err)
	}
	rest := time.Now()
	if _, err := f.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c = lastIs(t, rec, "iris", "1:ready", 2*time.Second)
	if c.versions[0].Manifest == nil || c.versions[0].Manifest.Model != "iris" {
		t.Errorf("ready version has manifest %+v", c.versions[0].Manifest)
	}
	for _, c := range rec.all() {
		if states(c.versions) == "1:ready" && c.at.Before(rest) {
			t.Errorf("reported ready at %s, before the copy finished at %s", c.at, rest)
		}
	}
}

// Without checksums, a file that keeps changing is not Ready until it stops.
func TestInPlaceCopyWithoutChecksums(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mkdir(t, filepath.Join(root, "iris", "1"))
	_, rec := start(t, Config{Root: root, Debounce: 250 * time.Millisecond})
	lastIs(t, rec, "iris", "1:incomplete", 2*time.Second) // model.onnx missing

	f, err := os.Create(filepath.Join(root, "iris", "1", manifest.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// unstable reports whether c says the files are still changing.
	unstable := func(c call) bool {
		return states(c.versions) == "1:incomplete" && strings.Contains(c.versions[0].Err.Error(), "stay unchanged")
	}
	// looked reports whether the watcher has judged the non-empty file.
	looked := func() bool {
		for _, c := range rec.all() {
			if unstable(c) || states(c.versions) == "1:ready" {
				return true
			}
		}
		return false
	}
	// A slow copy that goes on until the watcher has judged the file: every
	// write before that changes it, so that judgement must not be Ready.
	// The copy ends on what the watcher reported, not on a clock, so a
	// stall of this goroutine cannot end it early.
	chunk := make([]byte, 4096)
	// Continuous events still get a scan every 10×Debounce.
	for deadline := time.Now().Add(20 * time.Second); !looked(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no scan of the file while it was being written for 20s")
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	lastIs(t, rec, "iris", "1:ready", 10*time.Second)
	sawIncomplete := false
	for _, c := range rec.all() {
		if unstable(c) {
			sawIncomplete = true
		}
		if states(c.versions) == "1:ready" && !sawIncomplete {
			t.Errorf("reported ready at %s while still being written, before reporting it incomplete (files changing)", c.at)
		}
	}
}

// Files a manifest lists below the top level are watched too.
func TestNestedFileWatched(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	golden := []byte("x,y\n1,2\n")
	m := manifest.Manifest{Model: "iris", Version: 1, Files: []manifest.File{
		{Path: manifest.ModelFile, SHA256: sum(onnx)},
		{Path: "eval/golden.csv", SHA256: sum(golden)},
	}}
	man, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx, manifest.FileName: man})
	_, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond}) // rescans every 30s only
	first := lastIs(t, rec, "iris", "1:incomplete", 2*time.Second).versions[0]
	if !strings.Contains(first.Err.Error(), "eval/golden.csv: missing") {
		t.Errorf("err = %v, want eval/golden.csv missing", first.Err)
	}
	mkdir(t, filepath.Join(root, "iris", "1", "eval"))
	testenv.Eventually(t, 2*time.Second, "eval/ seen", func() bool {
		c, _ := rec.last("iris")
		return c.versions[0].Fingerprint != first.Fingerprint
	})
	// Only a watch on eval/ sees this write before the next full rescan.
	writeFile(t, filepath.Join(root, "iris", "1", "eval", "golden.csv"), golden)
	lastIs(t, rec, "iris", "1:ready", 2*time.Second)
}

func TestChecksumMismatch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	good := []byte("the good model")
	publish(t, root, "iris", 1, map[string][]byte{
		manifest.ModelFile: []byte("a corrupted one"),
		manifest.FileName:  manifestFor(t, "iris", 1, good),
	})
	_, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	c := lastIs(t, rec, "iris", "1:incomplete", 2*time.Second)
	if err := c.versions[0].Err; err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), sum(good)) {
		t.Errorf("err = %v, want a sha256 mismatch naming %s", err, sum(good))
	}
	writeFile(t, filepath.Join(root, "iris", "1", manifest.ModelFile), good)
	c = lastIs(t, rec, "iris", "1:ready", 2*time.Second)
	if c.versions[0].Err != nil {
		t.Errorf("ready with err %v", c.versions[0].Err)
	}
}

func TestManifestMismatch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx, manifest.FileName: manifestFor(t, "other", 1, onnx)})
	publish(t, root, "iris", 2, map[string][]byte{manifest.ModelFile: onnx, manifest.FileName: manifestFor(t, "iris", 3, onnx)})
	publish(t, root, "iris", 4, map[string][]byte{manifest.ModelFile: onnx, manifest.FileName: []byte("model: iris\nversion: 4\nbogus: 1\n")})
	_, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	c := lastIs(t, rec, "iris", "1:invalid 2:invalid 4:invalid", 2*time.Second)
	for i, want := range []string{
		`names model "other" version 1 but the directory is iris/1`,
		`names model "iris" version 3 but the directory is iris/2`,
		`bogus`,
	} {
		if err := c.versions[i].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("version %d: err = %v, want it to contain %q", c.versions[i].Number, err, want)
		}
	}
	// Fixing the manifest in place makes the version ready.
	writeFile(t, filepath.Join(root, "iris", "2", manifest.FileName), manifestFor(t, "iris", 2, onnx))
	lastIs(t, rec, "iris", "1:invalid 2:ready 4:invalid", 2*time.Second)
}

func TestRemoval(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx})
	publish(t, root, "iris", 2, map[string][]byte{manifest.ModelFile: onnx})
	w, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	lastIs(t, rec, "iris", "1:ready 2:ready", 2*time.Second)

	if err := os.RemoveAll(filepath.Join(root, "iris", "1")); err != nil {
		t.Fatal(err)
	}
	lastIs(t, rec, "iris", "2:ready", 2*time.Second)

	if err := os.RemoveAll(filepath.Join(root, "iris")); err != nil {
		t.Fatal(err)
	}
	c := lastIs(t, rec, "iris", "", 2*time.Second)
	if c.versions == nil {
		t.Errorf("removed model reported with a nil slice, want empty")
	}
	if _, ok := w.Snapshot()["iris"]; ok {
		t.Errorf("removed model still in the snapshot")
	}
	// Later events are handled after the removal; it is not reported again.
	publish(t, root, "rose", 1, map[string][]byte{manifest.ModelFile: onnx})
	lastIs(t, rec, "rose", "1:ready", 2*time.Second)
	if n := rec.count("iris"); n != 3 {
		t.Errorf("iris reported %d times, want 3 (initial, v1 removed, model removed)", n)
	}
}

func TestNotifyDisabled(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, rec := start(t, Config{Root: root, DisableNotify: true, Rescan: 200 * time.Millisecond, Debounce: 20 * time.Millisecond})
	publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx})
	lastIs(t, rec, "iris", "1:ready", 2*time.Second)
	if err := os.RemoveAll(filepath.Join(root, "iris", "1")); err != nil {
		t.Fatal(err)
	}
	lastIs(t, rec, "iris", "", 2*time.Second)
}

func TestBurst(t *testing.T) {
	t.Parallel()
	const n = 200
	root := t.TempDir()
	mkdir(t, filepath.Join(root, "iris"))
	w, rec := start(t, Config{Root: root, Debounce: 50 * time.Millisecond})
	lastIs(t, rec, "iris", "", 2*time.Second)
	before := rec.count("iris")

	for i := int64(1); i <= n; i++ {
		publish(t, root, "iris", i, map[string][]byte{manifest.ModelFile: onnx})
	}
	testenv.Eventually(t, 5*time.Second, "all versions reported ready", func() bool {
		c, _ := rec.last("iris")
		vs := c.versions
		if len(vs) != n {
			return false
		}
		for _, v := range vs {
			if v.State != Ready {
				return false
			}
		}
		return true
	})
	calls := rec.count("iris") - before
	t.Logf("%d versions published, onChange called %d times", n, calls)
	if calls > n/10 {
		t.Errorf("onChange called %d times for %d versions; events are not coalesced", calls, n)
	}
	snap := w.Snapshot()["iris"]
	if len(snap) != n {
		t.Fatalf("snapshot has %d versions, want %d", len(snap), n)
	}
	for i, v := range snap {
		if v.Number != int64(i+1) || v.State != Ready {
			t.Fatalf("snapshot[%d] is version %d %s, want %d ready", i, v.Number, v.State, i+1)
		}
	}
}

// Versions linked in from elsewhere are followed, and retargeting the link
// is seen.
func TestSymlinkedVersion(t *testing.T) {
	t.Parallel()
	store, root := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(store, "iris-3a", manifest.ModelFile), onnx)
	writeFile(t, filepath.Join(store, "iris-3b", manifest.ModelFile), []byte("another model"))
	mkdir(t, filepath.Join(root, "iris"))
	if err := os.Symlink(filepath.Join(store, "iris-3a"), filepath.Join(root, "iris", "3")); err != nil {
		t.Fatal(err)
	}
	_, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	first := lastIs(t, rec, "iris", "3:ready", 2*time.Second).versions[0]

	// ln -sfn: a new link renamed over the old one.
	tmp := filepath.Join(root, "iris", ".tmp-link")
	if err := os.Symlink(filepath.Join(store, "iris-3b"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "iris", "3")); err != nil {
		t.Fatal(err)
	}
	var second Version
	testenv.Eventually(t, 2*time.Second, "retargeted link reported", func() bool {
		c, _ := rec.last("iris")
		second = c.versions[0]
		return second.State == Ready && second.Fingerprint != first.Fingerprint
	})
	// Writes in the new target are seen through the link.
	writeFile(t, filepath.Join(store, "iris-3b", "extra.txt"), []byte("x"))
	testenv.Eventually(t, 2*time.Second, "write in the link's target reported", func() bool {
		c, _ := rec.last("iris")
		return c.versions[0].State == Ready && c.versions[0].Fingerprint != second.Fingerprint
	})
}

func TestUnreadableModelDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	t.Parallel()
	root := t.TempDir()
	publish(t, root, "iris", 1, map[string][]byte{manifest.ModelFile: onnx})
	publish(t, root, "rose", 1, map[string][]byte{manifest.ModelFile: onnx})
	dir := filepath.Join(root, "iris")
	_, rec := start(t, Config{Root: root, Debounce: 20 * time.Millisecond})
	lastIs(t, rec, "iris", "1:ready", 2*time.Second)

	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	c := lastIs(t, rec, "iris", "1:invalid", 2*time.Second)
	if err := c.versions[0].Err; !errors.Is(err, os.ErrPermission) {
		t.Errorf("err = %v, want a permission error", err)
	}
	// Other models are still watched.
	publish(t, root, "rose", 2, map[string][]byte{manifest.ModelFile: onnx})
	lastIs(t, rec, "rose", "1:ready 2:ready", 2*time.Second)

	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lastIs(t, rec, "iris", "1:ready", 2*time.Second)
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("cancel and run twice", func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "iris"))
		reported := make(chan struct{}, 1)
		w, err := New(Config{Root: root}, func(string, []Version) { reported <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		select { // the first report says Run is running
		case <-reported:
		case <-time.After(2 * time.Second):
			t.Fatal("no first report within 2s")
		}
		// While the first Run is running, a second one fails at once.
		if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("second Run: %v, want an error", err)
		}
		cancel()
		at := time.Now()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
			t.Logf("Run returned %s after cancel", time.Since(at).Round(time.Microsecond))
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2s of cancel")
		}
		if err := w.Run(context.Background()); err == nil {
			t.Errorf("Run after Run: no error")
		}
	})
	t.Run("missing root", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "nope")
		w, err := New(Config{Root: root}, func(string, []Version) {})
		if err != nil {
			t.Fatal(err)
		}
		err = w.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), root) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Run: %v, want a not-exist error naming %s", err, root)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for name, tc := range map[string]struct {
			cfg  Config
			f    func(string, []Version)
			want string
		}{
			"no root":           {Config{}, func(string, []Version) {}, "root: is required"},
			"negative debounce": {Config{Root: "x", Debounce: -1}, func(string, []Version) {}, "debounce: must not be negative"},
			"negative rescan":   {Config{Root: "x", Rescan: -1}, func(string, []Version) {}, "rescan: must not be negative"},
			"no onChange":       {Config{Root: "x"}, nil, "onChange is required"},
		} {
			if _, err := New(tc.cfg, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: New: %v, want %q", name, err, tc.want)
			}
		}
	})
}
