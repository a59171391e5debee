package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/manifest"
)

// PatternOptimize is the route of a manual incident (role publisher).
const PatternOptimize = "POST /v1/models/{model}/optimize"

// ReasonManual is the reason of an incident started by hand.
const ReasonManual = "manual"

// Bounds of OptimizeRequest.Since.
const (
	DefaultSince = 24 * time.Hour
	MaxSince     = 90 * 24 * time.Hour
)

// maxOptimizeBody bounds the body of POST /v1/models/{model}/optimize.
const maxOptimizeBody = 64 << 10

// OptimizeRequest is the body of POST /v1/models/{model}/optimize; an
// empty body is {"since": "24h"}.
type OptimizeRequest struct {
	// Since is a Go duration ("24h", "90m"): the incident starts that long
	// before now, and the job trains on the labelled data since then.
	// Default 24h, at most 2160h (90 days).
	Since string `json:"since,omitempty"`
}

// OptimizeResponse is the 202 answer of POST /v1/models/{model}/optimize.
type OptimizeResponse struct {
	// ID is the job's id (JobID of model, version and incident start).
	ID            string    `json:"id"`
	Model         string    `json:"model"`
	Version       string    `json:"version"`
	IncidentStart time.Time `json:"incident_start"`
	Reasons       []string  `json:"reasons"`
	// Created is false when the job existed already (the same incident,
	// to the millisecond).
	Created bool `json:"created"`
}

// ErrNoJobs: the collector runs no jobs (jobs.executor: none).
var ErrNoJobs = errors.New("this collector runs no jobs (jobs.executor: none)")

// ErrUnknownModel: the model has no active version in the registry.
var ErrUnknownModel = errors.New("the model has no active version in the registry")

// DecodeOptimizeRequest reads the body of POST
// /v1/models/{model}/optimize and returns its since: an empty body is
// DefaultSince; unknown fields, trailing data, a duration that does not
// parse, is not positive or exceeds MaxSince are errors.
func DecodeOptimizeRequest(body []byte) (time.Duration, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return DefaultSince, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req OptimizeRequest
	if err := dec.Decode(&req); err != nil {
		return 0, fmt.Errorf("body: %w", err)
	}
	if dec.More() {
		return 0, errors.New("body: data after the JSON object")
	}
	if req.Since == "" {
		return DefaultSince, nil
	}
	d, err := time.ParseDuration(req.Since)
	if err != nil {
		return 0, fmt.Errorf("since %q: want a duration such as 24h or 90m", req.Since)
	}
	if d <= 0 || d > MaxSince {
		return 0, fmt.Errorf("since %s: want more than 0 and at most %s", d, MaxSince)
	}
	return d, nil
}

// Optimize records a manual incident of model, started since ago (reason
// "manual"), against the model's latest active version in the registry,
// and schedules its job exactly as for a drift incident (Manager.Schedule:
// the same id rule and limits). Errors wrap ErrNoJobs, ErrUnknownModel,
// ErrBadIncident or ErrTooManyJobs, or are ClickHouse errors.
func (a *API) Optimize(ctx context.Context, model string, since time.Duration) (OptimizeResponse, error) {
	if a.m == nil {
		return OptimizeResponse{}, ErrNoJobs
	}
	if !manifest.ValidName(model) {
		return OptimizeResponse{}, fmt.Errorf("%w: model name %q", ErrBadIncident, model)
	}
	latest, err := registry.NewReader(a.tbl.conn, a.tbl.db).Latest(ctx, model, 1)
	if err != nil {
		return OptimizeResponse{}, err
	}
	v, ok := latest[model]
	if !ok {
		return OptimizeResponse{}, fmt.Errorf("model %q: %w", model, ErrUnknownModel)
	}
	now := a.now()
	inc := Incident{Model: model, Version: fmt.Sprint(v), Start: ms(now.Add(-since)), Reasons: []string{ReasonManual}}
	id, created, err := a.m.Schedule(ctx, inc)
	if err != nil {
		return OptimizeResponse{}, err
	}
	if created && a.record != nil {
		// The incident is history for GET /v1/incidents; the job exists
		// whatever happens to this row.
		if err := a.record(ctx, inc, now); err != nil {
			a.log.Warn("record manual incident", "job", id, "model", model, "err", err)
		}
	}
	a.log.Info("manual incident", "job", id, "model", model, "version", inc.Version, "start", inc.Start, "created", created)
	return OptimizeResponse{ID: id, Model: model, Version: inc.Version, IncidentStart: inc.Start, Reasons: inc.Reasons, Created: created}, nil
}

func (a *API) optimize(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	auth.Note(r.Context(), model, "")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOptimizeBody+1))
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(body) > maxOptimizeBody {
		auth.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: more than %d bytes", maxOptimizeBody))
		return
	}
	since, err := DecodeOptimizeRequest(body)
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := a.Optimize(r.Context(), model, since)
	switch {
	case err == nil:
		auth.Note(r.Context(), "", "job "+res.ID)
		writeJSON(w, http.StatusAccepted, res)
	case errors.Is(err, ErrBadIncident):
		auth.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrUnknownModel):
		auth.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNoJobs), errors.Is(err, ErrTooManyJobs):
		auth.WriteError(w, http.StatusConflict, err.Error())
	default:
		auth.WriteError(w, http.StatusServiceUnavailable, err.Error())
	}
}
