package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEveryGoroutinePackageUsesGoleak walks the whole module: every package
// whose non-test code starts a goroutine (a go statement) must have tests
// that use go.uber.org/goleak, so no goroutine outlives its component. It
// finds packages added later too. Commands (package main) are left out:
// their tests run them as processes, and the packages they wire are checked.
func TestEveryGoroutinePackageUsesGoleak(t *testing.T) {
	root := moduleRoot(t)
	type pkg struct{ goStmt, goleak, hasTests bool }
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "var" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[dir]
		if p == nil {
			p = &pkg{}
			pkgs[dir] = p
		}
		if strings.HasSuffix(path, "_test.go") {
			p.hasTests = true
			for _, imp := range f.Imports {
				if v, _ := strconv.Unquote(imp.Path.Value); v == "go.uber.org/goleak" {
					p.goleak = true
				}
			}
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if _, ok := n.(*ast.GoStmt); ok {
				p.goStmt = true
				return false
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var checked, missing []string
	for dir, p := range pkgs {
		if !p.goStmt {
			continue
		}
		checked = append(checked, dir)
		if !p.goleak {
			missing = append(missing, dir)
		}
	}
	slices.Sort(missing)
	if len(checked) < 5 {
		t.Fatalf("found only %d packages that start goroutines under %s; is the walk broken?", len(checked), root)
	}
	for _, dir := range missing {
		t.Errorf("%s starts goroutines but its tests do not use goleak (add goleak.VerifyTestMain to its TestMain, or goleak.VerifyNone)", dir)
	}
	t.Logf("%d packages start goroutines; %d lack goleak", len(checked), len(missing))
}

// moduleRoot is the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
