package deps

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Result says what Ensure did.
type Result struct {
	Path    string
	Fetched bool   // false when the cached file was already good
	Reason  string // why it was fetched: "missing", "checksum mismatch", ...
}

// Ensure makes sure a verified copy of a is in cache and returns its path.
// A cached file is re-hashed on every call; a missing or corrupt one is
// fetched with `npm pack`, the tarball and the extracted library are checked
// against the pinned sha256 sums, and the library is moved into place
// atomically. Progress lines go to progress (may be nil).
func Ensure(ctx context.Context, a Artifact, cache string, progress io.Writer) (Result, error) {
	if progress == nil {
		progress = io.Discard
	}
	dst := a.Path(cache)
	res := Result{Path: dst}
	sum, err := fileSHA256(dst)
	switch {
	case err == nil && sum == a.SHA256:
		return res, nil
	case err == nil:
		res.Reason = fmt.Sprintf("checksum mismatch (have %.12s…, want %.12s…)", sum, a.SHA256)
		fmt.Fprintf(progress, "%s: cached %s is corrupt: %s; fetching again\n", a.Name, dst, res.Reason)
	case errors.Is(err, fs.ErrNotExist):
		res.Reason = "missing"
	default:
		return res, fmt.Errorf("check cached %s: %w", dst, err)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return res, fmt.Errorf("fetch %s: npm is not installed (install Node.js and npm, e.g. `apt-get install npm`), or set %s to a local copy", a.Spec(), a.Env)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return res, fmt.Errorf("create cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, ".fetch-")
	if err != nil {
		return res, fmt.Errorf("create temp dir in cache: %w", err)
	}
	defer os.RemoveAll(tmp)

	tarball, err := npmPack(ctx, a, tmp, progress)
	if err != nil {
		return res, err
	}
	if sum, err := fileSHA256(tarball); err != nil {
		return res, fmt.Errorf("hash %s: %w", tarball, err)
	} else if sum != a.TarballSHA256 {
		return res, fmt.Errorf("%s: tarball sha256 %s does not match the pinned %s; the package changed upstream or the download is corrupt", a.Spec(), sum, a.TarballSHA256)
	}
	fmt.Fprintf(progress, "%s: extracting %s\n", a.Name, a.Member)
	if err := extract(tarball, a.Member, dst, a.SHA256); err != nil {
		return res, fmt.Errorf("%s: %w", a.Spec(), err)
	}
	res.Fetched = true
	return res, nil
}

// npmPack runs `npm pack SPEC` into dir, with a private npm cache so nothing
// outside dir is written, and reports download progress from the growth of
// dir. It returns the tarball's path.
func npmPack(ctx context.Context, a Artifact, dir string, progress io.Writer) (string, error) {
	npmCache := filepath.Join(dir, "npm-cache")
	cmd := exec.CommandContext(ctx, "npm", "pack", a.Spec(),
		"--pack-destination", dir, "--cache", npmCache, "--loglevel", "error", "--no-fund", "--no-audit")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	fmt.Fprintf(progress, "%s: fetching %s (%.1f MB) with npm pack\n", a.Name, a.Spec(), float64(a.TarballSize)/1e6)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start npm pack %s: %w", a.Spec(), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return "", fmt.Errorf("npm pack %s: %w: %s (check that the npm registry is reachable, or set %s)",
					a.Spec(), err, strings.TrimSpace(stderr.String()), a.Env)
			}
			fmt.Fprintf(progress, "%s: downloaded in %s\n", a.Name, time.Since(start).Round(100*time.Millisecond))
			return findTarball(dir)
		case <-tick.C:
			n := dirSize(npmCache)
			pct := 100 * float64(n) / float64(a.TarballSize)
			if pct > 100 {
				pct = 100
			}
			fmt.Fprintf(progress, "%s: %6.1f / %.1f MB (%3.0f%%) %s\n", a.Name, float64(n)/1e6,
				float64(a.TarballSize)/1e6, pct, time.Since(start).Round(time.Second))
		}
	}
}

func findTarball(dir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("npm pack left %d tarballs in %s, want 1", len(m), dir)
	}
	return m[0], nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// extract copies member out of the gzip'd tarball to dst, verifying its
// sha256 before the atomic rename.
func extract(tarball, member, dst, wantSum string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s not found in tarball", member)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", tarball, err)
		}
		if h.Name != member {
			continue
		}
		part := dst + ".part"
		out, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		h256 := sha256.New()
		_, err = io.Copy(io.MultiWriter(out, h256), tr)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(part)
			return fmt.Errorf("write %s: %w", part, err)
		}
		if got := hex.EncodeToString(h256.Sum(nil)); got != wantSum {
			os.Remove(part)
			return fmt.Errorf("%s: sha256 %s does not match the pinned %s", member, got, wantSum)
		}
		return os.Rename(part, dst)
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
