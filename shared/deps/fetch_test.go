package deps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testArtifact packs a small local npm package (npm pack works offline on a
// folder) and returns an Artifact pinned to it.
func testArtifact(t *testing.T) Artifact {
	t.Helper()
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := os.MkdirAll(filepath.Join(pkg, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"package.json":      `{"name": "drover-test-lib", "version": "1.2.3"}`,
		"lib/libexample.so": strings.Repeat("native library bytes\n", 1000),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("npm", "pack", pkg, "--pack-destination", out, "--cache", filepath.Join(out, "npm-cache"), "--loglevel", "error")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm pack: %v: %s", err, b)
	}
	tgz, err := findTarball(out)
	if err != nil {
		t.Fatal(err)
	}
	tsum, err := fileSHA256(tgz)
	if err != nil {
		t.Fatal(err)
	}
	lsum, err := fileSHA256(filepath.Join(pkg, "lib/libexample.so"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(tgz)
	return Artifact{
		Name: "example", Package: pkg, TarballSize: st.Size(), TarballSHA256: tsum,
		Member: "package/lib/libexample.so", File: "libexample.so", SHA256: lsum, Env: "EXAMPLE_LIB",
	}
}

func TestEnsureFetchesOnceAndRepairsCorruption(t *testing.T) {
	a := testArtifact(t)
	cache := t.TempDir()
	ctx := context.Background()

	res, err := Ensure(ctx, a, cache, nil)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	if !res.Fetched || res.Reason != "missing" {
		t.Fatalf("first Ensure = %+v, want a fetch of a missing file", res)
	}
	if sum, _ := fileSHA256(res.Path); sum != a.SHA256 {
		t.Fatalf("cached file sha256 %s, want %s", sum, a.SHA256)
	}

	res, err = Ensure(ctx, a, cache, nil)
	if err != nil || res.Fetched {
		t.Fatalf("second Ensure = %+v, %v; want no fetch", res, err)
	}

	// Corrupt the cached file: same size, one byte flipped.
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(res.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = Ensure(ctx, a, cache, nil)
	if err != nil {
		t.Fatalf("Ensure after corruption: %v", err)
	}
	if !res.Fetched || !strings.Contains(res.Reason, "checksum mismatch") {
		t.Fatalf("Ensure after corruption = %+v, want a re-fetch for a checksum mismatch", res)
	}
	if sum, _ := fileSHA256(res.Path); sum != a.SHA256 {
		t.Fatalf("repaired file sha256 %s, want %s", sum, a.SHA256)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".fetch-*")); len(left) != 0 {
		t.Fatalf("temporary directories left in the cache: %v", left)
	}
}

func TestEnsureRejectsWrongPins(t *testing.T) {
	a := testArtifact(t)
	ctx := context.Background()

	bad := a
	bad.TarballSHA256 = strings.Repeat("0", 64)
	if _, err := Ensure(ctx, bad, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("wrong tarball pin: err = %v", err)
	}

	bad = a
	bad.SHA256 = strings.Repeat("1", 64)
	cache := t.TempDir()
	if _, err := Ensure(ctx, bad, cache, nil); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("wrong library pin: err = %v", err)
	}
	if _, err := os.Stat(bad.Path(cache)); !os.IsNotExist(err) {
		t.Fatalf("a library that failed verification was left in the cache: %v", err)
	}

	bad = a
	bad.Member = "package/lib/nope.so"
	if _, err := Ensure(ctx, bad, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not found in tarball") {
		t.Fatalf("missing member: err = %v", err)
	}
}

func TestLocateMessages(t *testing.T) {
	t.Setenv(EnvCache, t.TempDir())
	t.Setenv(EnvONNXRuntimeLib, "")
	_, err := ONNXRuntimeLibrary()
	if err == nil || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), EnvONNXRuntimeLib) {
		t.Fatalf("missing library: err = %v, want a hint to run make deps or set %s", err, EnvONNXRuntimeLib)
	}
	t.Setenv(EnvONNXRuntimeLib, "/nonexistent/libonnxruntime.so")
	if _, err := ONNXRuntimeLibrary(); err == nil || !strings.Contains(err.Error(), "/nonexistent/libonnxruntime.so") {
		t.Fatalf("bad override: err = %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvONNXRuntimeLib, lib)
	if p, err := ONNXRuntimeLibrary(); err != nil || p != lib {
		t.Fatalf("override = %q, %v", p, err)
	}
}
