package watch

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/manifest"
)

func TestParseVersion(t *testing.T) {
	for name, want := range map[string]int64{
		"1": 1, "42": 42, "999999999999999999": 999999999999999999,
		"0": 0, "01": 0, "-1": 0, "+1": 0, "1.0": 0, " 1": 0, "latest": 0, ".tmp-1": 0, "1000000000000000000": 0, "": 0,
	} {
		got, ok := parseVersion(name)
		if ok != (want != 0) || got != want {
			t.Errorf("parseVersion(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

// TestScan is one look at a store holding one version per scenario.
func TestScan(t *testing.T) {
	good := []byte("model bytes")
	nested := &manifest.Manifest{Files: []manifest.File{
		{Path: manifest.ModelFile, SHA256: sum(good)},
		{Path: "eval/golden.csv", SHA256: sum([]byte("a,b\n"))},
	}}
	noFiles := &manifest.Manifest{}
	type scenario struct {
		files   map[string][]byte
		man     *manifest.Manifest // model and version filled in
		state   State
		errHas  string
		hasMani bool // the manifest parsed and matches the directory
	}
	scenarios := map[int64]struct {
		name string
		scenario
	}{
		1:  {"no manifest", scenario{files: map[string][]byte{manifest.ModelFile: good}, state: Ready}},
		2:  {"model missing", scenario{files: map[string][]byte{"readme": good}, state: Incomplete, errHas: "model.onnx is missing"}},
		3:  {"model empty", scenario{files: map[string][]byte{manifest.ModelFile: {}}, state: Incomplete, errHas: "model.onnx is empty"}},
		4:  {"model is a directory", scenario{files: map[string][]byte{"model.onnx/x": good}, state: Invalid, errHas: "not a regular file"}},
		5:  {"bad yaml", scenario{files: map[string][]byte{manifest.ModelFile: good, manifest.FileName: []byte("model: [")}, state: Invalid, errHas: "drover.yaml"}},
		6:  {"checksums ok", scenario{files: map[string][]byte{manifest.ModelFile: good}, man: &manifest.Manifest{Files: []manifest.File{{Path: manifest.ModelFile, SHA256: sum(good)}}}, state: Ready, hasMani: true}},
		7:  {"checksum wrong", scenario{files: map[string][]byte{manifest.ModelFile: []byte("bad")}, man: &manifest.Manifest{Files: []manifest.File{{Path: manifest.ModelFile, SHA256: sum(good)}}}, state: Incomplete, errHas: "sha256", hasMani: true}},
		8:  {"size wrong", scenario{files: map[string][]byte{manifest.ModelFile: good}, man: &manifest.Manifest{Files: []manifest.File{{Path: manifest.ModelFile, SHA256: sum(good), Size: 3}}}, state: Incomplete, errHas: "manifest says 3", hasMani: true}},
		9:  {"nested file missing", scenario{files: map[string][]byte{manifest.ModelFile: good}, man: nested, state: Incomplete, errHas: "eval/golden.csv: missing", hasMani: true}},
		10: {"nested file present", scenario{files: map[string][]byte{manifest.ModelFile: good, "eval/golden.csv": []byte("a,b\n")}, man: nested, state: Ready, hasMani: true}},
		11: {"manifest without files", scenario{files: map[string][]byte{manifest.ModelFile: good}, man: noFiles, state: Ready, hasMani: true}},
	}
	root := t.TempDir()
	for n, sc := range scenarios {
		dir := filepath.Join(root, "iris", strconv.FormatInt(n, 10))
		for p, data := range sc.files {
			writeFile(t, filepath.Join(dir, p), data)
		}
		if sc.man != nil {
			m := *sc.man
			m.Model, m.Version = "iris", n
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, manifest.FileName), b)
		}
	}
	writeFile(t, filepath.Join(root, "iris", "0", manifest.ModelFile), good)
	mkdir(t, filepath.Join(root, "empty"))

	start := time.Now()
	got, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < DefaultDebounce {
		t.Errorf("Scan took %s; versions without checksums need two looks %s apart", took, DefaultDebounce)
	}
	if vs, ok := got["empty"]; !ok || len(vs) != 0 {
		t.Errorf("empty model: %v, %v; want present with no versions", vs, ok)
	}
	vs := got["iris"]
	if len(vs) != len(scenarios) {
		t.Fatalf("iris has %d versions (%s), want %d", len(vs), states(vs), len(scenarios))
	}
	for i, v := range vs {
		sc, ok := scenarios[v.Number]
		if !ok || (i > 0 && vs[i-1].Number >= v.Number) {
			t.Fatalf("unexpected or unsorted version %d in %s", v.Number, states(vs))
		}
		t.Run(sc.name, func(t *testing.T) {
			if v.State != sc.state {
				t.Errorf("state = %s (err %v), want %s", v.State, v.Err, sc.state)
			}
			switch {
			case sc.errHas == "" && v.Err != nil:
				t.Errorf("err = %v, want nil", v.Err)
			case sc.errHas != "" && (v.Err == nil || !strings.Contains(v.Err.Error(), sc.errHas)):
				t.Errorf("err = %v, want it to contain %q", v.Err, sc.errHas)
			}
			if (v.State == Incomplete) != errors.Is(v.Err, manifest.ErrIncomplete) {
				t.Errorf("state %s with err %v: Incomplete iff ErrIncomplete", v.State, v.Err)
			}
			if (v.Manifest != nil) != sc.hasMani {
				t.Errorf("manifest = %v, want present: %v", v.Manifest, sc.hasMani)
			}
		})
	}
}

func TestScanRootMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing")
	if _, err := Scan(root); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("Scan: %v, want an error naming %s", err, root)
	}
}

// An unchanged version is not evaluated (hashed) again; any change is.
func TestScanCache(t *testing.T) {
	root := t.TempDir()
	data := []byte("model bytes")
	dir := filepath.Join(root, "iris", "1")
	writeFile(t, filepath.Join(dir, manifest.ModelFile), data)
	writeFile(t, filepath.Join(dir, manifest.FileName), manifestFor(t, "iris", 1, data))
	s := newScanner(root, time.Hour, nil)

	look := func(wantEvals int, wantState State) Version {
		t.Helper()
		r := s.scanModel("iris", time.Now())
		if len(r.versions) != 1 || r.versions[0].State != wantState {
			t.Fatalf("versions = %s, want 1:%s", states(r.versions), wantState)
		}
		if s.evals != wantEvals {
			t.Fatalf("%d evaluations, want %d", s.evals, wantEvals)
		}
		return r.versions[0]
	}
	v1 := look(1, Ready) // checksums: no stability wait, even with an hour's
	look(1, Ready)
	look(1, Ready)

	// Same size, modification time restored (cp -p): still a new look.
	st, err := os.Stat(filepath.Join(dir, manifest.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, manifest.ModelFile), []byte("MODEL BYTES"))
	if err := os.Chtimes(filepath.Join(dir, manifest.ModelFile), st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	v2 := look(2, Incomplete)
	if v2.Fingerprint == v1.Fingerprint {
		t.Errorf("fingerprint unchanged after the content changed")
	}
	look(2, Incomplete)
}

// Without checksums a version is Ready only on a second look, with the same
// fingerprint, at least the stability interval after the first.
func TestScanStability(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "iris", "1", manifest.ModelFile)
	writeFile(t, p, []byte("v"))
	s := newScanner(root, time.Minute, nil)
	t0 := time.Now()
	look := func(at time.Time, want State) modelResult {
		t.Helper()
		r := s.scanModel("iris", at)
		if got := r.versions[0].State; got != want {
			t.Fatalf("at +%s: %s (%v), want %s", at.Sub(t0), got, r.versions[0].Err, want)
		}
		return r
	}
	if r := look(t0, Incomplete); !r.recheck.Equal(t0.Add(time.Minute)) {
		t.Errorf("recheck at %s, want +1m", r.recheck)
	}
	look(t0.Add(59*time.Second), Incomplete)
	look(t0.Add(time.Minute), Ready)
	writeFile(t, p, []byte("vv")) // changed: the clock starts again
	look(t0.Add(2*time.Minute), Incomplete)
	look(t0.Add(3*time.Minute), Ready)
}
