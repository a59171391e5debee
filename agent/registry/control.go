package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/drover-ml/drover/agent/oip"
	"github.com/drover-ml/drover/agent/watch"
)

// VersionStatus describes one version of a model.
type VersionStatus struct {
	Version int64 `json:"version"`
	// State is serving, loading, loaded, draining, failed, available,
	// incomplete or invalid.
	State    string    `json:"state"`
	Default  bool      `json:"default,omitempty"`
	Pinned   bool      `json:"pinned,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// RetryAt is when a failed version is tried again if its directory
	// does not change first.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// ModelStatus describes a model.
type ModelStatus struct {
	Name     string          `json:"name"`
	Policy   string          `json:"policy"`
	Pinned   int64           `json:"pinned,omitempty"`
	Canary   *Split          `json:"canary,omitempty"`
	Shadow   *Split          `json:"shadow,omitempty"`
	Ready    bool            `json:"ready"`
	Versions []VersionStatus `json:"versions"`
}

// Models returns the names of the known models, sorted.
func (r *Registry) Models() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Status returns the state of every version of a model, newest first.
func (r *Registry) Status(name string) (ModelStatus, error) {
	m := r.getModel(name, false)
	if m == nil {
		return ModelStatus{}, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	pinned := r.pin(name)
	st := ModelStatus{Name: name, Policy: r.policy(name).String(), Pinned: pinned}
	st.Canary, st.Shadow = r.splits(name)
	set := m.serving.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[int64]bool{}
	add := func(vs VersionStatus) {
		if seen[vs.Version] {
			return
		}
		seen[vs.Version] = true
		vs.Pinned = vs.Version == pinned
		st.Versions = append(st.Versions, vs)
	}
	if set != nil {
		for n, v := range set.byVersion {
			add(VersionStatus{Version: n, State: "serving", Default: v == set.def, LoadedAt: v.LoadedAt})
		}
		st.Ready = set.def != nil
	}
	for n, v := range m.resident {
		add(VersionStatus{Version: n, State: "loaded", LoadedAt: v.LoadedAt})
	}
	for n := range m.draining {
		add(VersionStatus{Version: n, State: "draining"})
	}
	if m.loading != 0 {
		add(VersionStatus{Version: m.loading, State: "loading"})
	}
	for n, f := range m.failures {
		add(VersionStatus{Version: n, State: "failed", Reason: f.err.Error(), RetryAt: f.retryAt})
	}
	for n, av := range m.available {
		vs := VersionStatus{Version: n, State: "available"}
		switch av.State {
		case watch.Incomplete:
			vs.State = "incomplete"
		case watch.Invalid:
			vs.State = "invalid"
		}
		if av.Err != nil {
			vs.Reason = av.Err.Error()
		}
		add(vs)
	}
	slices.SortFunc(st.Versions, func(a, b VersionStatus) int { return cmp.Compare(b.Version, a.Version) })
	return st, nil
}

// SetPolicies replaces the per-model version policies (config reload) and
// reconciles every model.
func (r *Registry) SetPolicies(p map[string]Policy) error {
	for name, pol := range p {
		if err := pol.Validate(); err != nil {
			return fmt.Errorf("policy for %s: %w", name, err)
		}
	}
	r.mu.Lock()
	r.policies = p
	models := make([]*model, 0, len(r.models))
	for _, m := range r.models {
		models = append(models, m)
	}
	r.mu.Unlock()
	for _, m := range models {
		m.mu.Lock()
		r.reconcile(m)
		m.mu.Unlock()
	}
	return nil
}

// Pin makes version serve as the model's only version, whatever the policy
// says, and keeps it that way across restarts until Unpin. A pinned version
// bypasses the signature check (and later gates): it is the operator's
// override. Pin waits until the version serves, fails to load, or ctx ends;
// on failure the pin is taken back.
func (r *Registry) Pin(ctx context.Context, name string, version int64) error {
	m := r.getModel(name, false)
	if m == nil {
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	m.mu.Lock()
	av, ok := m.available[version]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %q version %d", ErrVersionNotFound, name, version)
	}
	if av.State != watch.Ready {
		m.mu.Unlock()
		return fmt.Errorf("model %q version %d cannot be pinned: it is %s: %v", name, version, av.State, av.Err)
	}
	delete(m.failures, version) // an explicit pin retries now
	m.mu.Unlock()

	r.mu.Lock()
	prev, hadPrev := r.pins[name]
	r.pins[name] = version
	err := r.saveState()
	if err != nil {
		if hadPrev {
			r.pins[name] = prev
		} else {
			delete(r.pins, name)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		m.mu.Lock()
		r.reconcile(m)
		changed := m.changed
		set := m.serving.Load()
		f := m.failures[version]
		m.mu.Unlock()
		if set != nil && set.def != nil && set.def.Number == version {
			return nil
		}
		if f != nil {
			_ = r.Unpin(name)
			return fmt.Errorf("pin %q version %d: %w", name, version, f.err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("pin %q version %d: still loading: %w", name, version, ctx.Err())
		}
	}
}

// Unpin removes a model's pin; the policy decides again.
func (r *Registry) Unpin(name string) error {
	r.mu.Lock()
	_, had := r.pins[name]
	delete(r.pins, name)
	err := r.saveState()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if !had {
		return nil
	}
	if m := r.getModel(name, false); m != nil {
		m.mu.Lock()
		r.reconcile(m)
		m.mu.Unlock()
	}
	return nil
}

// Close stops loading, retires every version and waits (until ctx ends)
// for them to close. Call it after the servers have drained. Idempotent.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	models := make([]*model, 0, len(r.models))
	for _, m := range r.models {
		models = append(models, m)
	}
	r.mu.Unlock()
	r.cancel()
	r.loads.Wait()
	for _, m := range models {
		m.mu.Lock()
		if m.timer != nil {
			m.timer.Stop()
		}
		m.serving.Store(nil)
		for n, v := range m.resident {
			delete(m.resident, n)
			m.draining[n] = v
			v.Release()
		}
		m.mu.Unlock()
	}
	for _, m := range models {
		for {
			m.mu.Lock()
			n, changed := len(m.draining), m.changed
			m.mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return fmt.Errorf("close registry: %d versions of %s still in use: %w", n, m.name, ctx.Err())
			}
		}
	}
	return nil
}

// state is what the state file keeps across restarts.
type state struct {
	Pins   map[string]int64  `json:"pins"`
	Canary map[string]*Split `json:"canary,omitempty"`
	Shadow map[string]*Split `json:"shadow,omitempty"`
}

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

// saveState writes the state file atomically (write, fsync, rename).
// r.mu must be held.
func (r *Registry) saveState() error {
	path := r.cfg.StateFile
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(state{Pins: r.pins, Canary: r.canaries, Shadow: r.shadows}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

// SetSplit sets (or, with s nil, switches off) the model's canary (kind
// "canary") or shadow ("shadow") split, overriding the policy, and keeps it
// across restarts. The version must exist in the store.
func (r *Registry) SetSplit(name, kind string, s *Split) error {
	m := r.getModel(name, false)
	if m == nil {
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	if s != nil {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		m.mu.Lock()
		_, ok := m.available[s.Version]
		m.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: %q version %d", ErrVersionNotFound, name, s.Version)
		}
	}
	r.mu.Lock()
	var target map[string]*Split
	switch kind {
	case "canary":
		target = r.canaries
	case "shadow":
		target = r.shadows
	default:
		r.mu.Unlock()
		return fmt.Errorf("unknown split %q", kind)
	}
	prev, had := target[name]
	target[name] = s
	err := r.saveState()
	if err != nil {
		if had {
			target[name] = prev
		} else {
			delete(target, name)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	m.mu.Lock()
	r.reconcile(m)
	m.mu.Unlock()
	return nil
}

// Splits returns the model's effective canary and shadow splits (nil when
// off).
func (r *Registry) Splits(name string) (canary, shadow *Split) { return r.splits(name) }

// Promote makes the canary version the model's default: it is pinned (see
// Pin) and the canary split is switched off.
func (r *Registry) Promote(ctx context.Context, name string) error {
	canary, _ := r.splits(name)
	if canary == nil {
		return fmt.Errorf("model %q has no canary to promote", name)
	}
	if err := r.Pin(ctx, name, canary.Version); err != nil {
		return err
	}
	return r.SetSplit(name, "canary", nil)
}

func readWarmupRequest(path string) (*oip.InferRequest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read warm-up request: %w", err)
	}
	req, err := oip.DecodeRESTRequest(b, -1)
	if err != nil {
		return nil, fmt.Errorf("warm-up request %s: %w", path, err)
	}
	return req, nil
}
