// Package route is where the agent decides which versions of a model serve
// and which version answers each request. Everything that steers traffic
// lives here:
//
//   - the version policy (latest, latest N, specific versions), from the
//     configuration file and replaced on reload;
//   - the operator's pin, which overrides the policy;
//   - the canary split: a share of the requests that name no version goes to
//     another version, sticky by request id;
//   - the shadow split: a share of the requests is copied to another version
//     off the request path;
//   - the fleet's desired state (SetDesired): for the models a collector
//     controls it replaces all of the above, and the local setters refuse
//     with a *ControlledError.
//
// A Table holds that state; pins and the API's split overrides are kept in a
// state file across restarts. Table.Serving tells package versions which
// versions to load and keep serving; Table.Choose tells the serving path,
// per request, which version to try first and where to copy the request.
// The package knows nothing of loading: it decides on version numbers.
package route

import (
	"fmt"
	"slices"
	"sync"

	"github.com/drover-ml/drover/agent/evaluate"
)

// Kind names a split.
type Kind string

// The splits.
const (
	Canary Kind = "canary"
	Shadow Kind = "shadow"
)

// Table is the routing state of every model: the policies, the pins and the
// split overrides set through the API. All methods are safe for concurrent
// use. The setters persist to the state file before they return; when that
// write fails they return the error and the table is unchanged.
type Table struct {
	path string

	mu       sync.RWMutex
	policies map[string]Policy
	pins     map[string]int64
	// overrides of the policies' canary and shadow set through the API; a
	// present nil entry switches the policy's split off.
	canaries map[string]*Split
	shadows  map[string]*Split
	// desired is the fleet's routing of the models a collector controls
	// (SetDesired); it overrides all of the above for them.
	desired   map[string]Desired
	desiredBy string
}

// Open returns a table with the given policies (models not listed use
// "latest") and the pins and split overrides read from stateFile. An empty
// stateFile keeps them in memory only; a missing one is an empty state.
func Open(stateFile string, policies map[string]Policy) (*Table, error) {
	if err := validatePolicies(policies); err != nil {
		return nil, err
	}
	st, err := readState(stateFile)
	if err != nil {
		return nil, err
	}
	if policies == nil {
		policies = map[string]Policy{}
	}
	return &Table{path: stateFile, policies: policies, pins: st.Pins, canaries: st.Canary, shadows: st.Shadow}, nil
}

func validatePolicies(p map[string]Policy) error {
	for name, pol := range p {
		if err := pol.Validate(); err != nil {
			return fmt.Errorf("policy for %s: %w", name, err)
		}
	}
	return nil
}

// Policy returns the model's version policy.
func (t *Table) Policy(model string) Policy {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.policies[model]
}

// Pinned returns the model's pinned version, 0 when it has none (for a
// model the fleet controls: its serving version if the desired state pins
// it).
func (t *Table) Pinned(model string) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if d, ok := t.desired[model]; ok {
		if d.Pinned {
			return d.Serving
		}
		return 0
	}
	return t.pins[model]
}

// Splits returns the model's effective canary and shadow splits (nil when
// off): the API's override where there is one, else the policy's.
func (t *Table) Splits(model string) (canary, shadow *Split) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.splits(model)
}

// splits is Splits with t.mu held.
func (t *Table) splits(model string) (canary, shadow *Split) {
	if d, ok := t.desired[model]; ok {
		return d.Canary, d.Shadow
	}
	p := t.policies[model]
	canary, shadow = p.Canary, p.Shadow
	if c, ok := t.canaries[model]; ok {
		canary = c
	}
	if sh, ok := t.shadows[model]; ok {
		shadow = sh
	}
	return canary, shadow
}

// SetPolicies replaces every model's policy (configuration reload). An
// invalid policy changes nothing.
func (t *Table) SetPolicies(p map[string]Policy) error {
	if err := validatePolicies(p); err != nil {
		return err
	}
	if p == nil {
		p = map[string]Policy{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.policies = p
	return nil
}

// Pin makes version the model's only serving version, whatever its policy
// says, until Unpin.
func (t *Table) Pin(model string, version int64) error {
	if version <= 0 {
		return fmt.Errorf("pin %q: version must be positive, got %d", model, version)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.controlled(model); err != nil {
		return err
	}
	prev, had := t.pins[model]
	t.pins[model] = version
	if err := t.save(); err != nil {
		if had {
			t.pins[model] = prev
		} else {
			delete(t.pins, model)
		}
		return err
	}
	return nil
}

// Unpin removes the model's pin; had reports whether there was one.
func (t *Table) Unpin(model string) (had bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.controlled(model); err != nil {
		return false, err
	}
	prev, had := t.pins[model]
	delete(t.pins, model)
	if err := t.save(); err != nil {
		if had {
			t.pins[model] = prev
		}
		return false, err
	}
	return had, nil
}

// SetSplit sets the model's canary or shadow split, overriding its policy;
// s nil switches the split off.
func (t *Table) SetSplit(model string, kind Kind, s *Split) error {
	if s != nil {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.controlled(model); err != nil {
		return err
	}
	var target map[string]*Split
	switch kind {
	case Canary:
		target = t.canaries
	case Shadow:
		target = t.shadows
	default:
		return fmt.Errorf("unknown split %q", kind)
	}
	prev, had := target[model]
	target[model] = s
	if err := t.save(); err != nil {
		if had {
			target[model] = prev
		} else {
			delete(target, model)
		}
		return err
	}
	return nil
}

// Serving is what should serve a model, decided from its loadable versions.
type Serving struct {
	// Versions should serve, in order of preference for the default
	// version (the one that answers requests that name no version).
	Versions []int64
	// Splits are the canary and shadow versions among Versions: they serve
	// beside the default version, never as it (see Default).
	Splits []int64
	// Pinned is the model's pin (0: none), whether or not it is loadable.
	Pinned int64
}

// Serving decides which versions of model should serve, given its loadable
// versions (candidates, sorted highest first): the pinned version alone if
// it is loadable, else what the policy selects from the candidates that are
// not split versions; plus the canary and shadow versions, which serve
// beside it.
func (t *Table) Serving(model string, candidates []int64) Serving {
	t.mu.RLock()
	if d, ok := t.desired[model]; ok {
		t.mu.RUnlock()
		return servingDesired(d, candidates)
	}
	canary, shadow := t.splits(model)
	pinned := t.pins[model]
	policy := t.policies[model]
	t.mu.RUnlock()

	var splits []int64
	for _, sp := range []*Split{canary, shadow} {
		if sp != nil && sp.Version != pinned && slices.Contains(candidates, sp.Version) && !slices.Contains(splits, sp.Version) {
			splits = append(splits, sp.Version)
		}
	}
	var versions []int64
	if pinned != 0 && slices.Contains(candidates, pinned) {
		versions = []int64{pinned}
	} else {
		base := slices.DeleteFunc(slices.Clone(candidates), func(n int64) bool { return slices.Contains(splits, n) })
		versions = policy.desired(base)
	}
	for _, n := range splits {
		if !slices.Contains(versions, n) {
			versions = append(versions, n)
		}
	}
	return Serving{Versions: versions, Splits: splits, Pinned: pinned}
}

// Default returns the version that answers requests naming no version,
// among the Versions that are loaded: the first one that is not a split
// version. When there is none and standIn is set (nothing serves the model
// yet), the first loaded split version stands in: a canary answers rather
// than nothing. 0 means none.
func (s Serving) Default(loaded func(int64) bool, standIn bool) int64 {
	for _, n := range s.Versions {
		if loaded(n) && !slices.Contains(s.Splits, n) {
			return n
		}
	}
	if standIn {
		for _, n := range s.Versions {
			if loaded(n) {
				return n
			}
		}
	}
	return 0
}

// Choice is where one request goes.
type Choice struct {
	// Canary, if not 0, is the version to try first: the request named no
	// version and its id falls in the canary share. When that version does
	// not serve (not loaded yet), the request goes to Version.
	Canary int64
	// Version is the version the request named, 0 for the default.
	Version int64
	// shadow is the version the request is copied to, 0 for none.
	shadow int64
}

// Shadow returns the version the request is copied to once answered has
// answered it, 0 for none (a request is never shadowed to the version that
// answered it).
func (c Choice) Shadow(answered int64) int64 {
	if c.shadow == answered {
		return 0
	}
	return c.shadow
}

// Choose routes one request for model that names version (0: none), by its
// id: a request that names no version goes to the canary when its id falls
// in the canary share; any request is copied to the shadow version when its
// id falls in the shadow share. The shares are decided by independent
// hashes of the id, so a request id always gets the same answer. Choose is
// on the request path: without splits it takes a read lock and nothing
// else.
func (t *Table) Choose(model string, version int64, requestID string) Choice {
	t.mu.RLock()
	canary, shadow := t.splits(model)
	t.mu.RUnlock()
	c := Choice{Version: version}
	if version == 0 && canary != nil && evaluate.Sampled("canary:"+requestID, canary.Percent/100) {
		c.Canary = canary.Version
	}
	if shadow != nil && evaluate.Sampled("shadow:"+requestID, shadow.Percent/100) {
		c.shadow = shadow.Version
	}
	return c
}
