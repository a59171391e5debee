package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTestdata parses every testdata/*.good.yaml (must succeed) and
// *.bad.yaml (must fail with each "# error: ..." line's text in the error).
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			switch {
			case strings.HasSuffix(name, ".good.yaml"):
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if m.Model == "" || m.Version <= 0 {
					t.Fatalf("parsed manifest lacks model/version: %+v", m)
				}
			case strings.HasSuffix(name, ".bad.yaml"):
				if err == nil {
					t.Fatalf("Parse succeeded, want an error")
				}
				var wants []string
				for _, line := range strings.Split(string(data), "\n") {
					if w, ok := strings.CutPrefix(line, "# error: "); ok {
						wants = append(wants, w)
					}
				}
				if len(wants) == 0 {
					t.Fatal("bad testdata has no '# error:' line")
				}
				for _, w := range wants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			default:
				t.Fatalf("testdata file %s must end in .good.yaml or .bad.yaml", name)
			}
		})
	}
}

func TestParseFullValues(t *testing.T) {
	data, err := os.ReadFile("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Lineage{
		Parent:  2,
		Author:  "trainer@example.com",
		Created: time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC),
		Message: "retrained on November traffic",
		Job:     "job-7f3a",
	}
	if !reflect.DeepEqual(m.Lineage, want) {
		t.Errorf("lineage = %+v, want %+v", m.Lineage, want)
	}
	if got := m.Training.Params["n_estimators"]; got != "100" {
		t.Errorf("params.n_estimators = %q, want \"100\"", got)
	}
	if got := m.Signature.Inputs[0]; got.Name != "X" || got.Datatype != "FP32" || !reflect.DeepEqual(got.Shape, []int64{-1, 4}) {
		t.Errorf("signature input = %+v", got)
	}
	if got := m.Features[0].Bins; !reflect.DeepEqual(got, []float64{4.3, 5.1, 5.8, 6.4, 7.9}) {
		t.Errorf("bins = %v", got)
	}
	if got := m.Gate.MaxRegression["f1"]; got != 0.02 {
		t.Errorf("gate f1 = %v", got)
	}
	if m.GoldenSet.Label != "species" || len(m.GoldenSet.Features) != 4 {
		t.Errorf("golden set = %+v", m.GoldenSet)
	}

	// Marshal then Parse gives the same manifest back.
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse marshalled manifest: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip differs:\n%+v\n%+v", m, m2)
	}
}

func writeVersion(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ModelFile), []byte("onnx bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "eval"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "eval", "golden.csv"), []byte("a,y\n1,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerify(t *testing.T) {
	dir := writeVersion(t)
	files, err := FilesOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != "eval/golden.csv" || files[1].Path != ModelFile {
		t.Fatalf("FilesOf = %+v", files)
	}
	// sha256("onnx bytes")
	if files[1].SHA256 != "c1650a9961b22b18b7919016db749eb46e2f14ad9da48dd02aa586fe8a335978" || files[1].Size != 10 {
		t.Fatalf("model.onnx entry = %+v", files[1])
	}
	m := &Manifest{Model: "iris", Version: 1, Files: files}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(dir); err != nil {
		t.Fatalf("Verify of a complete version: %v", err)
	}

	cases := map[string]struct {
		mutate func(t *testing.T, dir string)
		want   string
	}{
		"truncated model": {
			mutate: func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, ModelFile), 4); err != nil {
					t.Fatal(err)
				}
			},
			want: "model.onnx: size 4, manifest says 10",
		},
		"same size, other bytes": {
			mutate: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, ModelFile), []byte("ONNX BYTES"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: "model.onnx: sha256",
		},
		"missing golden set": {
			mutate: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "eval", "golden.csv")); err != nil {
					t.Fatal(err)
				}
			},
			want: "eval/golden.csv: missing",
		},
		"symlink out of the directory": {
			mutate: func(t *testing.T, dir string) {
				outside := filepath.Join(t.TempDir(), "golden.csv")
				if err := os.WriteFile(outside, []byte("a,y\n1,0\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, "eval", "golden.csv")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(outside, p); err != nil {
					t.Fatal(err)
				}
			},
			want: "eval/golden.csv",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeVersion(t)
			tc.mutate(t, dir)
			err := m.Verify(dir)
			if err == nil {
				t.Fatal("Verify succeeded on a broken version")
			}
			if !errors.Is(err, ErrIncomplete) {
				t.Errorf("error does not wrap ErrIncomplete: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := writeVersion(t)
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load without manifest: %v, want ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("model: iris\nversion: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil || m.Model != "iris" || m.Version != 4 {
		t.Fatalf("Load = %+v, %v", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("model: iris\nversion: -4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), FileName) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("Load of a bad manifest: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		// A manifest that parses must validate and survive a round trip.
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid manifest: %v", err)
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
	})
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"iris": true, "fraud-v2": true, "a.b_c": true, "0x": true,
		"": false, ".hidden": false, "../x": false, "a/b": false, "a b": false,
		// droverctl's subcommand words where a model name may stand
		"show": false, "diff": false, "delete": false, "list": false, "shows": true, "List": true,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
