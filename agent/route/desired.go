package route

import (
	"errors"
	"fmt"
	"slices"
)

// ErrControlled is returned (wrapped in a *ControlledError) by the setters
// for a model whose routing a collector decides: local pins and splits do
// not apply to it.
var ErrControlled = errors.New("model is controlled by the fleet")

// ControlledError names the model and who controls it.
type ControlledError struct {
	Model string
	// By names the collector(s) the agent follows.
	By string
}

func (e *ControlledError) Error() string {
	return fmt.Sprintf("model %q is controlled by the fleet (collector %s): change it there (droverctl), not on this agent", e.Model, e.By)
}

// Unwrap makes errors.Is(err, ErrControlled) true.
func (e *ControlledError) Unwrap() error { return ErrControlled }

// Desired is a model's routing as a collector decides it (docs/fleet.md's
// desired state, reduced to what routing needs). For a model with a
// Desired entry it replaces the configuration's policy, the local pin and
// the local split overrides.
type Desired struct {
	// Serving is the version that answers requests naming no version;
	// while it is not loadable Previous serves if it is, else whatever
	// serves now keeps serving.
	Serving  int64
	Previous int64
	// Canary and Shadow are the splits (nil: none).
	Canary *Split
	Shadow *Split
	// Pinned: the serving version bypasses the gate, like a local pin.
	Pinned bool
}

// SetDesired replaces the fleet's desired routing: models in d follow it,
// the others their policy and local pins as before. by names the
// collector(s) for the errors of refused local changes. It is kept in
// memory only (agent/fleet persists the desired state itself).
func (t *Table) SetDesired(d map[string]Desired, by string) {
	m := make(map[string]Desired, len(d))
	for k, v := range d {
		if v.Serving > 0 {
			m[k] = v
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.desired, t.desiredBy = m, by
}

// Controlled returns a *ControlledError if model follows a desired state,
// nil if not.
func (t *Table) Controlled(model string) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.controlled(model)
}

func (t *Table) controlled(model string) error {
	if _, ok := t.desired[model]; ok {
		return &ControlledError{Model: model, By: t.desiredBy}
	}
	return nil
}

// servingDesired is Serving for a model that follows d.
func servingDesired(d Desired, candidates []int64) Serving {
	var splits []int64
	for _, sp := range []*Split{d.Canary, d.Shadow} {
		if sp != nil && sp.Version != d.Serving && slices.Contains(candidates, sp.Version) && !slices.Contains(splits, sp.Version) {
			splits = append(splits, sp.Version)
		}
	}
	var versions []int64
	switch {
	case slices.Contains(candidates, d.Serving):
		versions = []int64{d.Serving}
	case d.Previous > 0 && slices.Contains(candidates, d.Previous) && !slices.Contains(splits, d.Previous):
		versions = []int64{d.Previous}
	}
	versions = append(versions, splits...)
	var pinned int64
	if d.Pinned {
		pinned = d.Serving
	}
	return Serving{Versions: versions, Splits: splits, Pinned: pinned}
}
