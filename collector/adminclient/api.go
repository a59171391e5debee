package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Each method below is one endpoint of docs/admin-api.md. It returns the
// decoded answer and its Meta (which collector answered, the raw body), or
// an *APIError / *UnreachableError.

// Cluster returns GET /v1/cluster.
func (c *Client) Cluster(ctx context.Context) (*Cluster, *Meta, error) {
	var v Cluster
	m, err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &v)
	return &v, m, err
}

// Models returns GET /v1/models.
func (c *Client) Models(ctx context.Context) ([]Model, *Meta, error) {
	var v []Model
	m, err := c.do(ctx, http.MethodGet, "/v1/models", nil, nil, &v)
	return v, m, err
}

// Versions returns GET /v1/models/{model}/versions, with metrics over the
// last since (0: the server's default, 24h).
func (c *Client) Versions(ctx context.Context, model string, since time.Duration) ([]Version, *Meta, error) {
	var q url.Values
	if since > 0 {
		q = url.Values{"since": {since.String()}}
	}
	var v []Version
	m, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/versions", q, nil, &v)
	return v, m, err
}

// VersionDiff returns GET /v1/models/{model}/diff?from=N1&to=N2.
func (c *Client) VersionDiff(ctx context.Context, model string, from, to uint64) (*VersionDiff, *Meta, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	var v VersionDiff
	m, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/diff", q, nil, &v)
	return &v, m, err
}

// Drift returns GET /v1/models/{model}/drift.
func (c *Client) Drift(ctx context.Context, model string) (*Drift, *Meta, error) {
	var v Drift
	m, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/drift", nil, nil, &v)
	return &v, m, err
}

// Incidents returns GET /v1/incidents, of one model when model is not "".
func (c *Client) Incidents(ctx context.Context, model string) ([]Incident, *Meta, error) {
	var q url.Values
	if model != "" {
		q = url.Values{"model": {model}}
	}
	var v []Incident
	m, err := c.do(ctx, http.MethodGet, "/v1/incidents", q, nil, &v)
	return v, m, err
}

// JobFilter selects jobs; empty fields select all.
type JobFilter struct {
	Model string
	State string
}

// Jobs returns GET /v1/jobs?model=&state=.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]Job, *Meta, error) {
	q := url.Values{}
	if f.Model != "" {
		q.Set("model", f.Model)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	var v []Job
	m, err := c.do(ctx, http.MethodGet, "/v1/jobs", q, nil, &v)
	return v, m, err
}

// Job returns GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (*Job, *Meta, error) {
	var v Job
	m, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil, &v)
	return &v, m, err
}

// RetryJob is POST /v1/jobs/{id}/retry: a finished job runs again. A job
// that is queued or running is refused (409).
func (c *Client) RetryJob(ctx context.Context, id string) (*Job, *Meta, error) {
	var v Job
	m, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/retry", nil, nil, &v)
	return &v, m, err
}

// CancelJob is POST /v1/jobs/{id}/cancel. A finished job is refused (409).
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, *Meta, error) {
	var v Job
	m, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, &v)
	return &v, m, err
}

// History returns GET /v1/models/{model}/history.
func (c *Client) History(ctx context.Context, model string) ([]HistoryEvent, *Meta, error) {
	var v []HistoryEvent
	m, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/history", nil, nil, &v)
	return v, m, err
}

// CreateToken is POST /v1/tokens. A name in use is refused (409).
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*NewToken, *Meta, error) {
	var v NewToken
	m, err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, req, &v)
	return &v, m, err
}

// Tokens returns GET /v1/tokens.
func (c *Client) Tokens(ctx context.Context) ([]Token, *Meta, error) {
	var v []Token
	m, err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, nil, &v)
	return v, m, err
}

// RevokeToken is DELETE /v1/tokens/{name}; it returns the revoked token.
func (c *Client) RevokeToken(ctx context.Context, name string) (*Token, *Meta, error) {
	var v Token
	m, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil, &v)
	return &v, m, err
}
