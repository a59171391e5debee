package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/shared/durable"
	"github.com/drover-ml/drover/shared/manifest"
)

// File names in the data dir.
const (
	AgentIDFile    = "agent.id"
	DesiredFile    = "desired.json"
	DownloadedFile = "downloaded.json"
)

// Split is a canary or shadow in a desired state: share percent of the
// requests go to (canary) or are copied to (shadow) version. Other fields
// (auto, analysis, started) are the collector's and ignored here.
type Split struct {
	Version int64   `json:"version"`
	Share   float64 `json:"share"`
}

// State is one model's desired state as the agent reads it (the fields of
// docs/fleet.md's document that steer routing and distribution).
type State struct {
	Model    string `json:"model"`
	Revision int64  `json:"revision"`
	Serving  int64  `json:"serving"`
	Previous int64  `json:"previous,omitempty"`
	Canary   *Split `json:"canary,omitempty"`
	Shadow   *Split `json:"shadow,omitempty"`
	Pinned   bool   `json:"pinned,omitempty"`
}

// Desired is the answer of GET /v1/agents/{agent}/desired, as kept in
// desired.json with its ETag.
type Desired struct {
	ETag   string           `json:"etag,omitempty"`
	Models map[string]State `json:"models"`
}

// split returns the route split of s, nil when off or invalid.
func (s *Split) split() *route.Split {
	if s == nil || s.Version <= 0 || !(s.Share > 0 && s.Share <= 100) {
		return nil
	}
	return &route.Split{Version: s.Version, Percent: s.Share}
}

// sanitize drops the models whose name the agent does not accept (a name
// becomes a directory and a URL path) and negative versions.
func (d *Desired) sanitize() (dropped []string) {
	if d.Models == nil {
		d.Models = map[string]State{}
	}
	for name, s := range d.Models {
		if !manifest.ValidName(name) || s.Serving < 0 || s.Previous < 0 {
			delete(d.Models, name)
			dropped = append(dropped, name)
		}
	}
	return dropped
}

// Routes returns the routing of every model with a serving version.
func (d Desired) Routes() map[string]route.Desired {
	out := make(map[string]route.Desired, len(d.Models))
	for name, s := range d.Models {
		if s.Serving <= 0 {
			continue // revision 0: no desired state, the directory decides
		}
		out[name] = route.Desired{Serving: s.Serving, Previous: s.Previous, Canary: s.Canary.split(), Shadow: s.Shadow.split(), Pinned: s.Pinned}
	}
	return out
}

// wanted returns the versions of s the model directory must hold: serving,
// canary and shadow.
func (s State) wanted() []int64 {
	var out []int64
	for _, v := range []int64{s.Serving, splitVersion(s.Canary), splitVersion(s.Shadow)} {
		if v > 0 && !containsInt(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func splitVersion(s *Split) int64 {
	if s.split() == nil {
		return 0
	}
	return s.Version
}

func containsInt(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readDesired reads desired.json; a missing file is an empty state.
func readDesired(path string) (Desired, error) {
	var d Desired
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Desired{Models: map[string]State{}}, nil
	}
	if err != nil {
		return d, fmt.Errorf("read the desired state: %w", err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s is corrupt (%v); remove it to wait for a collector", path, err)
	}
	d.sanitize()
	return d, nil
}

// writeJSONFile writes v to path atomically: a temporary file in the same
// directory, fsync, rename, directory fsync.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename there is nothing to remove
	if err := f.Chmod(mode); err != nil {
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

// AgentID returns the agent's stable id from <dataDir>/agent.id, creating
// it (128 random bits, hex) on first start. A file that exists but holds
// no id is an error, not replaced.
func AgentID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, AgentIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !validID(id) {
			return "", fmt.Errorf("%s: not an agent id (1 to 64 of [a-zA-Z0-9_.-]); delete it to have a new one made", path)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read the agent id: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("create the agent id: %w", err)
	}
	return id, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
