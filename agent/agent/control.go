package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-ml/drover/shared/durable"
	"github.com/drover-ml/drover/shared/tokens"
)

// ControlTokenFile is the name, in the data dir, of the token that the
// control listener requires (Authorization: Bearer <token>).
const ControlTokenFile = "control.token"

// ControlToken returns the control token kept in dataDir/control.token. On
// first start there is none: it creates one (tokens.New: 256 random bits),
// written with mode 0600 through a temporary file and a rename, so that no
// reader ever sees part of it; the data dir is created (0700) if missing.
// A file that exists but holds no token is an error, not replaced: an
// operator may rotate the token by writing a new one (or deleting the file)
// and restarting.
func ControlToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, ControlTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if _, perr := tokens.ParseBearer("Bearer " + tok); perr != nil {
			return "", fmt.Errorf("%s: not a token (1 to %d visible ASCII characters); delete it to have a new one made at start", path, tokens.MaxLen)
		}
		return tok, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read the control token: %w", err)
	}
	tok, _, err := tokens.New()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create the control token: %w", err)
	}
	if err := writeSecret(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("create the control token: %w", err)
	}
	return tok, nil
}

// writeSecret writes data to path with mode 0600 through a temporary file
// in the same directory, an fsync and a rename, then syncs the directory.
func writeSecret(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}
