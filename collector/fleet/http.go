package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/drover-ml/drover/collector/forward"
)

// The admin API's fleet routes (docs/fleet.md); collector/admin/routes.go
// gives each its role.
const (
	PatternAgents    = "GET /v1/agents"
	PatternDesired   = "GET /v1/models/{model}/desired"
	PatternHistory   = "GET /v1/models/{model}/desired/history"
	PatternStatus    = "GET /v1/models/{model}/status"
	PatternRollout   = "POST /v1/models/{model}/rollout"
	PatternRollback  = "POST /v1/models/{model}/rollback"
	PatternPin       = "POST /v1/models/{model}/pin"
	PatternUnpin     = "POST /v1/models/{model}/unpin"
	PatternCanary    = "POST /v1/models/{model}/canary"
	PatternPromote   = "POST /v1/models/{model}/promote"
	PatternAbort     = "POST /v1/models/{model}/abort"
	PatternShadow    = "POST /v1/models/{model}/shadow"
	PatternRegister  = "POST /v1/agents/register"
	PatternInventory = "PUT /v1/agents/{agent}/inventory"
	PatternPoll      = "GET /v1/agents/{agent}/desired"
)

// ChangePatterns maps each user change to its route.
var ChangePatterns = map[string]string{
	ChangeRollout: PatternRollout, ChangeRollback: PatternRollback, ChangePin: PatternPin, ChangeUnpin: PatternUnpin,
	ChangeCanary: PatternCanary, ChangePromote: PatternPromote, ChangeAbort: PatternAbort, ChangeShadow: PatternShadow,
}

// maxHistory bounds GET .../desired/history.
const maxHistory = 1000

// Routes returns the fleet's handlers by pattern, for the admin server
// (which authenticates them by the route table).
func (f *Fleet) Routes() map[string]http.Handler {
	h := map[string]http.Handler{
		PatternAgents: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			as, err := f.Agents(r.Context())
			f.answer(w, r, as, err)
		}),
		PatternDesired: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := f.Desired(r.Context(), r.PathValue("model"))
			f.answer(w, r, s, err)
		}),
		PatternHistory: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, err := f.History(r.Context(), r.PathValue("model"), maxHistory)
			if h == nil {
				h = []State{}
			}
			f.answer(w, r, h, err)
		}),
		PatternStatus: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := f.Status(r.Context(), r.PathValue("model"))
			f.answer(w, r, s, err)
		}),
		PatternRegister: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var reg Registration
			if err := decode(w, r, &reg); err != nil {
				f.answer(w, r, nil, err)
				return
			}
			ans, err := f.Register(r.Context(), reg)
			f.answer(w, r, ans, err)
		}),
		PatternInventory: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var inv Inventory
			if err := decode(w, r, &inv); err != nil {
				f.answer(w, r, nil, err)
				return
			}
			if err := f.Report(r.Context(), r.PathValue("agent"), inv); err != nil {
				f.answer(w, r, nil, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}),
		PatternPoll: http.HandlerFunc(f.poll),
	}
	for change, p := range ChangePatterns {
		h[p] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req Request
			if err := decode(w, r, &req); err != nil {
				f.answer(w, r, nil, err)
				return
			}
			ctx := forward.WithCaller(r.Context(), r.Header.Get("Authorization"), r.Header.Get(forward.HeaderForwardedBy))
			s, err := f.Change(ctx, r.PathValue("model"), change, req)
			f.answer(w, r, s, err)
		})
	}
	return h
}

// poll is the agents' long-poll: 200 with the document and its ETag as
// soon as it differs from If-None-Match, else 304 after ?wait= (default
// 30s, at most Options.MaxWait).
func (f *Fleet) poll(w http.ResponseWriter, r *http.Request) {
	wait := 30 * time.Second
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			f.answer(w, r, nil, fmt.Errorf("%w: wait %q: a duration such as 30s", ErrInvalid, s))
			return
		}
		wait = d
	}
	wait = min(wait, f.o.MaxWait)
	select {
	case <-f.loaded:
	default:
		f.answer(w, r, nil, errors.New("desired states not loaded yet"))
		return
	}
	ctx := r.Context()
	labels, err := f.labels(ctx, r.PathValue("agent"))
	if err != nil {
		f.answer(w, r, nil, err)
		return
	}
	have := r.Header.Get("If-None-Match")
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		d, etag, changed := f.desiredFor(labels)
		if etag != have {
			w.Header().Set("ETag", etag)
			writeJSON(w, http.StatusOK, d)
			return
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-f.stopped:
		case <-ctx.Done():
			return
		}
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInventoryBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: body over %d bytes", errTooLarge, mbe.Limit)
		}
		return fmt.Errorf("%w: read body: %v", ErrInvalid, err)
	}
	if len(b) == 0 {
		return nil // every field is optional somewhere; the change checks
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return nil
}

var errTooLarge = errors.New("too large")

// status maps an error to an HTTP status.
func status(err error) int {
	var remote *forward.Error
	switch {
	case errors.As(err, &remote):
		return remote.Code
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrTooManyAgents):
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

func (f *Fleet) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		code := status(err)
		if code == http.StatusServiceUnavailable && r.Context().Err() == nil {
			f.o.Logger.Warn("fleet: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
