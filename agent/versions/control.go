package versions

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/oip"
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
	Canary   *route.Split    `json:"canary,omitempty"`
	Shadow   *route.Split    `json:"shadow,omitempty"`
	Ready    bool            `json:"ready"`
	Versions []VersionStatus `json:"versions"`
}

// Models returns the names of the known models, sorted.
func (s *Set) Models() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.models))
	for n := range s.models {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Has reports whether model name is known and has versions (on disk or
// loaded): the names a request may record metrics under. An unknown name
// creates nothing.
func (s *Set) Has(name string) bool {
	m := s.getModel(name, false)
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.available) > 0 || len(m.resident) > 0
}

// Status returns the state of every version of a model, newest first.
func (s *Set) Status(name string) (ModelStatus, error) {
	m := s.getModel(name, false)
	if m == nil {
		return ModelStatus{}, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	pinned := s.routes.Pinned(name)
	st := ModelStatus{Name: name, Policy: s.routes.Policy(name).String(), Pinned: pinned}
	st.Canary, st.Shadow = s.routes.Splits(name)
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
// reconciles every model. An invalid policy changes nothing.
func (s *Set) SetPolicies(p map[string]route.Policy) error {
	if err := s.routes.SetPolicies(p); err != nil {
		return err
	}
	s.reconcileAll()
	return nil
}

// SetDesired replaces the fleet's desired routing (route.Table.SetDesired:
// the models in d follow it, over their policy and local pins) and
// reconciles every model. by names the collector(s) in the errors of
// refused local changes.
func (s *Set) SetDesired(d map[string]route.Desired, by string) {
	s.routes.SetDesired(d, by)
	s.reconcileAll()
}

func (s *Set) reconcileAll() {
	s.mu.RLock()
	models := make([]*model, 0, len(s.models))
	for _, m := range s.models {
		models = append(models, m)
	}
	s.mu.RUnlock()
	for _, m := range models {
		m.mu.Lock()
		s.reconcile(m)
		m.mu.Unlock()
	}
}

// Pin, Unpin, SetSplit and Promote refuse with a *route.ControlledError
// for a model the fleet controls (SetDesired).

// Pin makes version serve as the model's only version, whatever the policy
// says, and keeps it that way across restarts until Unpin. A pinned version
// bypasses the signature check (and later gates): it is the operator's
// override. Pin waits until the version serves, fails to load, or ctx ends;
// on failure the pin is taken back.
func (s *Set) Pin(ctx context.Context, name string, version int64) error {
	if err := s.routes.Controlled(name); err != nil {
		return err
	}
	m := s.getModel(name, false)
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

	if err := s.routes.Pin(name, version); err != nil {
		return err
	}
	for {
		m.mu.Lock()
		s.reconcile(m)
		changed := m.changed
		set := m.serving.Load()
		f := m.failures[version]
		m.mu.Unlock()
		if set != nil && set.def != nil && set.def.Number == version {
			return nil
		}
		if f != nil {
			_ = s.Unpin(name)
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
func (s *Set) Unpin(name string) error {
	had, err := s.routes.Unpin(name)
	if err != nil {
		return err
	}
	if !had {
		return nil
	}
	if m := s.getModel(name, false); m != nil {
		m.mu.Lock()
		s.reconcile(m)
		m.mu.Unlock()
	}
	return nil
}

// Close stops loading, retires every version and waits (until ctx ends)
// for them to close. Call it after the servers have drained. Idempotent.
func (s *Set) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	models := make([]*model, 0, len(s.models))
	for _, m := range s.models {
		models = append(models, m)
	}
	s.mu.Unlock()
	s.cancel()
	s.loads.Wait()
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
				return fmt.Errorf("close versions: %d versions of %s still in use: %w", n, m.name, ctx.Err())
			}
		}
	}
	return nil
}

// SetSplit sets (or, with sp nil, switches off) the model's canary or
// shadow split, overriding the policy, and keeps it across restarts. The
// version must exist in the store.
func (s *Set) SetSplit(name string, kind route.Kind, sp *route.Split) error {
	if err := s.routes.Controlled(name); err != nil {
		return err
	}
	m := s.getModel(name, false)
	if m == nil {
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	if sp != nil {
		if err := sp.Validate(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		m.mu.Lock()
		_, ok := m.available[sp.Version]
		m.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: %q version %d", ErrVersionNotFound, name, sp.Version)
		}
	}
	if err := s.routes.SetSplit(name, kind, sp); err != nil {
		return err
	}
	m.mu.Lock()
	s.reconcile(m)
	m.mu.Unlock()
	return nil
}

// Promote makes the canary version the model's default: it is pinned (see
// Pin) and the canary split is switched off.
func (s *Set) Promote(ctx context.Context, name string) error {
	if err := s.routes.Controlled(name); err != nil {
		return err
	}
	canary, _ := s.routes.Splits(name)
	if canary == nil {
		return fmt.Errorf("model %q has no canary to promote", name)
	}
	if err := s.Pin(ctx, name, canary.Version); err != nil {
		return err
	}
	return s.SetSplit(name, route.Canary, nil)
}

// Resident returns, per model, the number of its versions in memory:
// serving, loaded, or retired and draining their last requests. It feeds
// the drover.model.loaded_versions gauge.
func (s *Set) Resident() map[string]int {
	out := map[string]int{}
	for _, name := range s.Models() {
		st, err := s.Status(name)
		if err != nil {
			continue
		}
		for _, v := range st.Versions {
			if v.State == "serving" || v.State == "loaded" || v.State == "draining" {
				out[name]++
			}
		}
	}
	return out
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
