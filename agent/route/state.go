package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drover-ml/drover/shared/durable"
)

// state is what the state file keeps across restarts: the operator's
// choices made through the API.
type state struct {
	Pins   map[string]int64  `json:"pins"`
	Canary map[string]*Split `json:"canary,omitempty"`
	Shadow map[string]*Split `json:"shadow,omitempty"`
}

// readState reads the state file; entries that are not valid are dropped.
func readState(path string) (state, error) {
	st := state{Pins: map[string]int64{}, Canary: map[string]*Split{}, Shadow: map[string]*Split{}}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	var in state
	if err := json.Unmarshal(b, &in); err != nil {
		return st, fmt.Errorf("state file %s is corrupt (%v); fix or remove it", path, err)
	}
	for k, v := range in.Pins {
		if v > 0 {
			st.Pins[k] = v
		}
	}
	for k, v := range in.Canary {
		if v == nil || v.Validate() == nil {
			st.Canary[k] = v
		}
	}
	for k, v := range in.Shadow {
		if v == nil || v.Validate() == nil {
			st.Shadow[k] = v
		}
	}
	return st, nil
}

// save writes the state file atomically (write, fsync, rename). t.mu must
// be held.
func (t *Table) save() error {
	path := t.path
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(state{Pins: t.pins, Canary: t.canaries, Shadow: t.shadows}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := durable.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}
