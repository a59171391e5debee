package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Fleet control (docs/fleet.md): the desired state of each model, the
// agents that follow it and the changes an admin makes. Reads need a
// reader token, changes an admin token. Every change answers the model's
// new DesiredState; 404 is an unknown model or version, 409 a change that
// does not apply now (promote or abort without a canary), 400 bad input.
// A change is a POST: it moves to the next collector only when it
// certainly did not reach one, so it is never made twice.

// DesiredState is what a model's selected agents should serve, one
// revision of it (docs/fleet.md, "Desired state").
type DesiredState struct {
	Model string `json:"model"`
	// Revision increases with every change of the model; 0 means the model
	// has no desired state (its agents follow their own directories).
	Revision uint64 `json:"revision"`
	// Serving is the version every selected agent routes to; 0 for none.
	Serving uint64 `json:"serving"`
	// Previous served before the last change of Serving; what rollback
	// without a version returns to. 0 for none.
	Previous uint64 `json:"previous"`
	// Canary and Shadow are null when there is none.
	Canary *Canary `json:"canary"`
	Shadow *Shadow `json:"shadow"`
	// Pinned: no canary, no automatic change until unpin.
	Pinned bool `json:"pinned"`
	// Selector are the agent labels that must all match (empty: every
	// agent).
	Selector  map[string]string `json:"selector"`
	ChangedBy string            `json:"changed_by"`
	ChangedAt *time.Time        `json:"changed_at"`
	Reason    string            `json:"reason"`
	// Change is what made this revision: rollout, rollback, pin, unpin,
	// canary, promote, abort, shadow or analysis.
	Change string `json:"change"`
}

// Canary is a version that gets Share percent (0–100) of the requests.
type Canary struct {
	Version uint64 `json:"version"`
	Share   int    `json:"share"`
	// Auto: the model's owner collector promotes or aborts it by Analysis.
	Auto     bool       `json:"auto"`
	Analysis *Analysis  `json:"analysis,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
}

// Analysis bounds an automatic canary: how long it runs, how many samples
// it needs and how much worse than the serving version it may be. Zero
// fields take the collector's documented defaults.
type Analysis struct {
	Duration      string  `json:"duration,omitempty"`
	MinSamples    uint64  `json:"min_samples,omitempty"`
	MaxRegression float64 `json:"max_regression,omitempty"`
}

// Shadow is a version that receives a copy of Share percent of the
// requests; its answers are discarded.
type Shadow struct {
	Version uint64 `json:"version"`
	Share   int    `json:"share"`
}

// Agent is one element of GET /v1/agents: an agent that registered with
// the cluster and its last inventory.
type Agent struct {
	Agent  string            `json:"agent"`
	Host   string            `json:"host"`
	Labels map[string]string `json:"labels"`
	Build  string            `json:"build"`
	// Collector is the collector the agent last reported to.
	Collector string `json:"collector"`
	// Online is false after 3 heartbeat intervals without news.
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen"`
	// Updated is when the inventory last changed.
	Updated *time.Time `json:"updated"`
	// Inventory is the agent's last report; null before the first.
	Inventory *Inventory `json:"inventory"`
}

// Inventory is what an agent reports (PUT /v1/agents/{agent}/inventory).
type Inventory struct {
	Host   string            `json:"host"`
	Labels map[string]string `json:"labels"`
	// Revision is the desired-state revision the agent received, per
	// model.
	Revision  map[string]uint64 `json:"revision"`
	Models    []AgentModel      `json:"models"`
	LastError *string           `json:"last_error"`
}

// AgentModel is a model in an agent's inventory.
type AgentModel struct {
	Model    string         `json:"model"`
	Serving  uint64         `json:"serving"`
	Versions []AgentVersion `json:"versions"`
	Error    *string        `json:"error"`
}

// AgentVersion is a version in an agent's model directory and its state
// there (downloading, loading, serving, failed, ...).
type AgentVersion struct {
	Version uint64  `json:"version"`
	State   string  `json:"state"`
	Error   *string `json:"error"`
}

// FleetStatus is GET /v1/models/{model}/status: the desired state, each
// agent's actual state and the rollout's progress.
type FleetStatus struct {
	Model    string          `json:"model"`
	Desired  DesiredState    `json:"desired"`
	Agents   []AgentStatus   `json:"agents"`
	Progress RolloutProgress `json:"progress"`
}

// Agent states in a FleetStatus.
const (
	StateConverged = "converged"
	StatePending   = "pending"
	StateFailed    = "failed"
	StateOffline   = "offline"
)

// AgentStatus is one agent in a FleetStatus.
type AgentStatus struct {
	Agent  string            `json:"agent"`
	Host   string            `json:"host"`
	Labels map[string]string `json:"labels"`
	// Selected: the desired state's selector matches the agent.
	Selected bool `json:"selected"`
	// Serving and Canary are what the agent routes to now; null or 0 for
	// none.
	Serving *uint64 `json:"serving"`
	Canary  *uint64 `json:"canary"`
	// State is converged, pending, failed (Error says why; the old version
	// keeps serving) or offline.
	State    string     `json:"state"`
	Error    *string    `json:"error"`
	LastSeen *time.Time `json:"last_seen"`
	// Revision is the desired-state revision the agent applied.
	Revision uint64 `json:"revision"`
}

// RolloutProgress counts the selected agents by state.
type RolloutProgress struct {
	Selected  int `json:"selected"`
	Converged int `json:"converged"`
	Pending   int `json:"pending"`
	Failed    int `json:"failed"`
	// Offline is not in every answer; agents offline count as pending
	// there.
	Offline int `json:"offline,omitempty"`
}

// CanarySpec is the canary of a RolloutRequest.
type CanarySpec struct {
	Share    int       `json:"share"`
	Auto     bool      `json:"auto"`
	Analysis *Analysis `json:"analysis,omitempty"`
}

// RolloutRequest is the body of POST /v1/models/{model}/rollout. Without
// Canary every selected agent moves to Version.
type RolloutRequest struct {
	Version  uint64            `json:"version"`
	Canary   *CanarySpec       `json:"canary,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Reason   string            `json:"reason"`
}

// RollbackRequest is the body of POST /v1/models/{model}/rollback;
// Version 0 returns to the desired state's Previous.
type RollbackRequest struct {
	Version uint64 `json:"version,omitempty"`
	Reason  string `json:"reason"`
}

// PinRequest is the body of POST /v1/models/{model}/pin.
type PinRequest struct {
	Version uint64 `json:"version"`
	Reason  string `json:"reason"`
}

// ShareRequest is the body of POST /v1/models/{model}/canary and
// /shadow: a version and its share, 0–100 (a shadow share of 0 removes
// the shadow).
type ShareRequest struct {
	Version uint64 `json:"version"`
	Share   int    `json:"share"`
	Reason  string `json:"reason"`
}

// ReasonRequest is the body of the changes that take nothing else:
// unpin, promote and abort.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

func modelPath(model, rest string) string {
	return "/v1/models/" + url.PathEscape(model) + rest
}

// Agents returns GET /v1/agents.
func (c *Client) Agents(ctx context.Context) ([]Agent, *Meta, error) {
	var v []Agent
	m, err := c.do(ctx, http.MethodGet, "/v1/agents", nil, nil, &v)
	return v, m, err
}

// Desired returns GET /v1/models/{model}/desired (Revision 0 when the
// model has none).
func (c *Client) Desired(ctx context.Context, model string) (*DesiredState, *Meta, error) {
	var v DesiredState
	m, err := c.do(ctx, http.MethodGet, modelPath(model, "/desired"), nil, nil, &v)
	return &v, m, err
}

// DesiredHistory returns GET /v1/models/{model}/desired/history, newest
// first.
func (c *Client) DesiredHistory(ctx context.Context, model string) ([]DesiredState, *Meta, error) {
	var v []DesiredState
	m, err := c.do(ctx, http.MethodGet, modelPath(model, "/desired/history"), nil, nil, &v)
	return v, m, err
}

// FleetStatus returns GET /v1/models/{model}/status.
func (c *Client) FleetStatus(ctx context.Context, model string) (*FleetStatus, *Meta, error) {
	var v FleetStatus
	m, err := c.do(ctx, http.MethodGet, modelPath(model, "/status"), nil, nil, &v)
	return &v, m, err
}

func (c *Client) change(ctx context.Context, model, action string, body any) (*DesiredState, *Meta, error) {
	var v DesiredState
	m, err := c.do(ctx, http.MethodPost, modelPath(model, "/"+action), nil, body, &v)
	return &v, m, err
}

// Rollout is POST /v1/models/{model}/rollout.
func (c *Client) Rollout(ctx context.Context, model string, req RolloutRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "rollout", req)
}

// Rollback is POST /v1/models/{model}/rollback.
func (c *Client) Rollback(ctx context.Context, model string, req RollbackRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "rollback", req)
}

// Pin is POST /v1/models/{model}/pin.
func (c *Client) Pin(ctx context.Context, model string, req PinRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "pin", req)
}

// Unpin is POST /v1/models/{model}/unpin.
func (c *Client) Unpin(ctx context.Context, model string, req ReasonRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "unpin", req)
}

// Canary is POST /v1/models/{model}/canary. A canary equal to the serving
// version is refused (409).
func (c *Client) Canary(ctx context.Context, model string, req ShareRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "canary", req)
}

// Promote is POST /v1/models/{model}/promote: the canary becomes the
// serving version. Without a canary it is refused (409).
func (c *Client) Promote(ctx context.Context, model string, req ReasonRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "promote", req)
}

// Abort is POST /v1/models/{model}/abort: the canary is removed. Without
// a canary it is refused (409).
func (c *Client) Abort(ctx context.Context, model string, req ReasonRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "abort", req)
}

// Shadow is POST /v1/models/{model}/shadow; Share 0 removes the shadow.
func (c *Client) Shadow(ctx context.Context, model string, req ShareRequest) (*DesiredState, *Meta, error) {
	return c.change(ctx, model, "shadow", req)
}
