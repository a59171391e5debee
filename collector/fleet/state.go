package fleet

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"
)

// Errors of a change; the admin API maps them to 400, 404 and 409.
var (
	// ErrInvalid: bad input (a share out of range, a bad selector).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: an unknown model or version (not an active registry
	// version), or an unknown agent.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a change that does not apply to the current state
	// (promote or abort without a canary, a canary equal to the serving
	// version, a change of a pinned model).
	ErrConflict = errors.New("conflict")
	// ErrStale: the change named a revision (Request.Revision) that is no
	// longer the model's current one. It is an ErrConflict.
	ErrStale = fmt.Errorf("%w: the desired state changed", ErrConflict)
)

// The changes (State.Change).
const (
	ChangeRollout  = "rollout"
	ChangeRollback = "rollback"
	ChangePin      = "pin"
	ChangeUnpin    = "unpin"
	ChangeCanary   = "canary"
	ChangePromote  = "promote"
	ChangeAbort    = "abort"
	ChangeShadow   = "shadow"
	ChangeAnalysis = "analysis"
)

// Changes lists the changes a user makes through the admin API (every one
// but ChangeAnalysis), in the order of docs/fleet.md.
var Changes = []string{ChangeRollout, ChangeRollback, ChangePin, ChangeUnpin, ChangeCanary, ChangePromote, ChangeAbort, ChangeShadow}

// Analysis configures the automatic analysis of a canary
// (collector/fleet/analysis); zero fields take that package's defaults.
type Analysis struct {
	Duration      string  `json:"duration,omitempty"`
	MinSamples    uint64  `json:"min_samples,omitempty"`
	MaxRegression float64 `json:"max_regression,omitempty"`
}

// Canary sends Share percent of the requests to Version.
type Canary struct {
	Version  uint64    `json:"version"`
	Share    uint8     `json:"share"`
	Auto     bool      `json:"auto,omitempty"`
	Analysis *Analysis `json:"analysis,omitempty"`
	Started  time.Time `json:"started"`
}

// Shadow copies Share percent of the requests to Version, whose answers
// are discarded.
type Shadow struct {
	Version uint64 `json:"version"`
	Share   uint8  `json:"share"`
}

// State is a model's desired state at one revision (docs/fleet.md,
// "Desired state"). Revision 0 is "no desired state". A State is a value:
// the package never changes one it handed out.
type State struct {
	Model     string            `json:"model"`
	Revision  uint64            `json:"revision"`
	Serving   uint64            `json:"serving"`
	Previous  uint64            `json:"previous"`
	Canary    *Canary           `json:"canary,omitempty"`
	Shadow    *Shadow           `json:"shadow,omitempty"`
	Pinned    bool              `json:"pinned"`
	Selector  map[string]string `json:"selector,omitempty"`
	ChangedBy string            `json:"changed_by,omitempty"`
	ChangedAt time.Time         `json:"changed_at,omitzero"`
	Reason    string            `json:"reason,omitempty"`
	Change    string            `json:"change,omitempty"`
}

// clone returns a deep copy of s.
func (s State) clone() State {
	if s.Canary != nil {
		c := *s.Canary
		if c.Analysis != nil {
			a := *c.Analysis
			c.Analysis = &a
		}
		s.Canary = &c
	}
	if s.Shadow != nil {
		sh := *s.Shadow
		s.Shadow = &sh
	}
	s.Selector = maps.Clone(s.Selector)
	return s
}

// Selects reports whether an agent with labels is selected by s: every
// label of the selector must match.
func (s State) Selects(labels map[string]string) bool {
	for k, v := range s.Selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// uses reports whether version is serving, previous, canary or shadow in s,
// and as what.
func (s State) uses(version uint64) (string, bool) {
	switch {
	case version == 0:
		return "", false
	case s.Serving == version:
		return "serving", true
	case s.Previous == version:
		return "previous", true
	case s.Canary != nil && s.Canary.Version == version:
		return "canary", true
	case s.Shadow != nil && s.Shadow.Version == version:
		return "shadow", true
	}
	return "", false
}

// CanaryRequest is the canary part of a rollout.
type CanaryRequest struct {
	Share    int       `json:"share"`
	Auto     bool      `json:"auto"`
	Analysis *Analysis `json:"analysis,omitempty"`
}

// Request is a change as the admin API receives it (the body of POST
// /v1/models/{model}/<change>); which fields matter depends on the change.
type Request struct {
	Version  uint64            `json:"version,omitempty"`
	Share    *int              `json:"share,omitempty"`
	Canary   *CanaryRequest    `json:"canary,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	// Promote, for ChangeAnalysis only: true promotes the canary, false
	// aborts it.
	Promote bool `json:"promote,omitempty"`
	// Revision, when not 0, makes the change apply only to that revision
	// of the desired state (else ErrStale): the automatic analysis judges
	// one revision, and a person's change in between wins.
	Revision uint64 `json:"revision,omitempty"`
}

// Label syntax, for selectors and agent labels.
var (
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$`)
	labelValueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// maxLabels bounds a selector's and an agent's labels.
const maxLabels = 32

// maxReason bounds a change's reason.
const maxReason = 1024

// ValidLabels checks labels (a selector or an agent's labels): at most 32,
// keys of letters, digits, '.', '_', '/' and '-' (1–63, starting with a
// letter or digit), values of letters, digits, '.', '_' and '-' (0–63).
func ValidLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("%w: %d labels (at most %d)", ErrInvalid, len(labels), maxLabels)
	}
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return fmt.Errorf("%w: label key %q: letters, digits, '.', '_', '/' and '-', 1 to 63, starting with a letter or digit", ErrInvalid, k)
		}
		if !labelValueRE.MatchString(v) {
			return fmt.Errorf("%w: label %s value %q: letters, digits, '.', '_' and '-', at most 63", ErrInvalid, k, v)
		}
	}
	return nil
}

func share(p int) (uint8, error) {
	if p < 0 || p > 100 {
		return 0, fmt.Errorf("%w: share %d: want 0 to 100 (percent)", ErrInvalid, p)
	}
	return uint8(p), nil
}

// next computes the desired state that change (with req) makes of cur. It
// checks everything but the versions' existence (the caller checks each
// version next returns in check). cur.Revision 0 is no desired state.
// The result has no revision, author or time yet.
func next(cur State, change string, req Request, now time.Time) (nxt State, check []uint64, err error) {
	if req.Revision != 0 && req.Revision != cur.Revision {
		return State{}, nil, fmt.Errorf("%w: revision %d, not %d", ErrStale, cur.Revision, req.Revision)
	}
	if len(req.Reason) > maxReason {
		return State{}, nil, fmt.Errorf("%w: reason of %d bytes (at most %d)", ErrInvalid, len(req.Reason), maxReason)
	}
	if req.Selector != nil {
		if err := ValidLabels(req.Selector); err != nil {
			return State{}, nil, fmt.Errorf("selector: %w", err)
		}
	}
	n := cur.clone()
	n.Change, n.Reason = change, req.Reason
	none := cur.Revision == 0 || cur.Serving == 0
	noState := func() error {
		return fmt.Errorf("%w: %s has no desired state", ErrNotFound, cur.Model)
	}
	if req.Selector != nil && change != ChangeRollout {
		return State{}, nil, fmt.Errorf("%w: only a rollout sets the selector", ErrInvalid)
	}
	serve := func(v uint64) {
		if v != n.Serving {
			n.Previous = n.Serving
			n.Serving = v
		}
		n.Canary = nil
		if n.Shadow != nil && n.Shadow.Version == v {
			n.Shadow = nil // serving it: nothing to shadow
		}
	}
	switch change {
	case ChangeRollout:
		if req.Version == 0 {
			return State{}, nil, fmt.Errorf("%w: rollout needs a version", ErrInvalid)
		}
		if cur.Pinned {
			return State{}, nil, fmt.Errorf("%w: %s is pinned at v%d; unpin it first", ErrConflict, cur.Model, cur.Serving)
		}
		if req.Selector != nil {
			n.Selector = req.Selector
			if len(n.Selector) == 0 {
				n.Selector = nil
			}
		}
		check = []uint64{req.Version}
		if req.Canary == nil {
			serve(req.Version)
			break
		}
		if err := setCanary(&n, none, req.Version, req.Canary.Share, req.Canary.Auto, req.Canary.Analysis, now); err != nil {
			return State{}, nil, err
		}
	case ChangeCanary:
		if req.Version == 0 || req.Share == nil {
			return State{}, nil, fmt.Errorf("%w: canary needs a version and a share", ErrInvalid)
		}
		if cur.Pinned {
			return State{}, nil, fmt.Errorf("%w: %s is pinned at v%d; unpin it first", ErrConflict, cur.Model, cur.Serving)
		}
		check = []uint64{req.Version}
		if err := setCanary(&n, none, req.Version, *req.Share, false, nil, now); err != nil {
			return State{}, nil, err
		}
	case ChangeRollback:
		if none {
			return State{}, nil, noState()
		}
		v := req.Version
		if v == 0 {
			v = cur.Previous
		}
		if v == 0 {
			return State{}, nil, fmt.Errorf("%w: %s has no previous version to roll back to", ErrConflict, cur.Model)
		}
		if v == cur.Serving && cur.Canary == nil {
			return State{}, nil, fmt.Errorf("%w: %s already serves v%d", ErrConflict, cur.Model, v)
		}
		check = []uint64{v}
		serve(v)
	case ChangePin:
		if req.Version == 0 {
			return State{}, nil, fmt.Errorf("%w: pin needs a version", ErrInvalid)
		}
		check = []uint64{req.Version}
		serve(req.Version)
		n.Pinned = true
	case ChangeUnpin:
		if none {
			return State{}, nil, noState()
		}
		if !cur.Pinned {
			return State{}, nil, fmt.Errorf("%w: %s is not pinned", ErrConflict, cur.Model)
		}
		n.Pinned = false
	case ChangePromote, ChangeAbort, ChangeAnalysis:
		if none {
			return State{}, nil, noState()
		}
		if cur.Canary == nil {
			return State{}, nil, fmt.Errorf("%w: %s has no canary to %s", ErrConflict, cur.Model, change)
		}
		promote := change == ChangePromote || (change == ChangeAnalysis && req.Promote)
		if change == ChangeAnalysis && cur.Pinned {
			return State{}, nil, fmt.Errorf("%w: %s is pinned", ErrConflict, cur.Model)
		}
		if promote {
			check = []uint64{cur.Canary.Version}
			serve(cur.Canary.Version)
		} else {
			n.Canary = nil
		}
	case ChangeShadow:
		if req.Share == nil {
			return State{}, nil, fmt.Errorf("%w: shadow needs a share (0 removes it)", ErrInvalid)
		}
		p, err := share(*req.Share)
		if err != nil {
			return State{}, nil, err
		}
		if p == 0 {
			if cur.Shadow == nil {
				return State{}, nil, fmt.Errorf("%w: %s has no shadow to remove", ErrConflict, cur.Model)
			}
			n.Shadow = nil
			break
		}
		if none {
			return State{}, nil, fmt.Errorf("%w: %s serves no version through the fleet yet; roll one out before a shadow", ErrConflict, cur.Model)
		}
		if req.Version == 0 {
			return State{}, nil, fmt.Errorf("%w: shadow needs a version", ErrInvalid)
		}
		if req.Version == cur.Serving {
			return State{}, nil, fmt.Errorf("%w: v%d is the serving version of %s", ErrConflict, req.Version, cur.Model)
		}
		check = []uint64{req.Version}
		n.Shadow = &Shadow{Version: req.Version, Share: p}
	default:
		return State{}, nil, fmt.Errorf("%w: unknown change %q", ErrInvalid, change)
	}
	return n, check, nil
}

func setCanary(n *State, none bool, version uint64, pct int, auto bool, a *Analysis, now time.Time) error {
	p, err := share(pct)
	if err != nil {
		return err
	}
	if none {
		return fmt.Errorf("%w: %s serves no version through the fleet yet; roll one out before a canary", ErrConflict, n.Model)
	}
	if version == n.Serving {
		return fmt.Errorf("%w: v%d is the serving version of %s; a canary must differ", ErrConflict, version, n.Model)
	}
	if n.Pinned {
		return fmt.Errorf("%w: %s is pinned", ErrConflict, n.Model)
	}
	if a != nil {
		if a.Duration != "" {
			if d, err := time.ParseDuration(a.Duration); err != nil || d <= 0 {
				return fmt.Errorf("%w: analysis duration %q", ErrInvalid, a.Duration)
			}
		}
		if a.MaxRegression < 0 || a.MaxRegression >= 1 {
			return fmt.Errorf("%w: analysis max_regression %v: want [0, 1)", ErrInvalid, a.MaxRegression)
		}
		c := *a
		a = &c
	}
	if a != nil && !auto {
		return fmt.Errorf("%w: analysis settings without auto", ErrInvalid)
	}
	n.Canary = &Canary{Version: version, Share: p, Auto: auto, Analysis: a, Started: now.UTC().Truncate(time.Millisecond)}
	return nil
}
