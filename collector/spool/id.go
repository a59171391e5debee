package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-ml/drover/shared/durable"
)

// idFile holds the spool's id: 16 hex digits made when the spool is first
// opened and kept for its life. Seqs are numbered per spool, so a name
// made of seqs that must be unique among spools (ClickHouse's
// deduplication tokens, when several collectors write to one database)
// carries the id.
const idFile = "spool.id"

// loadID returns the id in dir, making and durably writing one when there
// is none. A damaged id file is replaced (logged by the caller): the id
// only has to stay the same while a batch may be retried.
func loadID(dir string) (id string, replaced bool, err error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); validID(id) {
			return id, false, nil
		}
		replaced = true
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("spool id: %w", err)
	}
	var r [8]byte
	rand.Read(r[:]) // never fails (crypto/rand)
	id = hex.EncodeToString(r[:])
	if err := durable.WriteFile(path, []byte(id+"\n"), 0o640); err != nil {
		return "", false, fmt.Errorf("spool id: %w", err)
	}
	return id, replaced, nil
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// ID returns the spool's id (see idFile): the same across restarts on the
// same directory, different for every directory.
func (s *Spool) ID() string { return s.id }
