package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// ErrIncomplete marks a version directory whose files do not (yet) match the
// manifest: missing, wrong size or wrong checksum. A directory still being
// written fails with it; callers retry when the directory changes.
var ErrIncomplete = errors.New("version is incomplete")

// Verify checks that every file listed in m is inside dir (symlinks may not
// escape it) with the listed size and sha256. All problems are reported,
// joined; each wraps ErrIncomplete.
func (m *Manifest) Verify(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open version directory: %w", err)
	}
	defer root.Close()
	var errs []error
	for _, f := range m.Files {
		if err := verifyFile(root, f); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrIncomplete, f.Path, err))
		}
	}
	return errors.Join(errs...)
}

func verifyFile(root *os.Root, f File) error {
	fh, err := root.Open(filepath.FromSlash(f.Path))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("missing")
		}
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if f.Size > 0 && st.Size() != f.Size {
		return fmt.Errorf("size %d, manifest says %d", st.Size(), f.Size)
	}
	sum, err := hashReader(fh)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if sum != f.SHA256 {
		return fmt.Errorf("sha256 %s, manifest says %s", sum, f.SHA256)
	}
	return nil
}

// FilesOf lists every regular file under dir except the manifest itself,
// with its size and sha256, sorted by path. Publishers use it to fill Files.
func FilesOf(dir string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == FileName {
			return nil
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		sum, err := hashReader(fh)
		if err != nil {
			return fmt.Errorf("hash %s: %w", p, err)
		}
		st, err := fh.Stat()
		if err != nil {
			return err
		}
		files = append(files, File{Path: rel, SHA256: sum, Size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b File) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return files, nil
}

// SHA256File returns the hex sha256 of the file at path.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashReader(f)
}

func hashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
