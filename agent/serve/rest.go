package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/shared/oip"
)

// Header names of Triton's binary tensor extension.
const (
	headerJSONLen = "Inference-Header-Content-Length"
)

// The Content-Type values of inference responses, shared by every response
// (read-only).
var (
	contentTypeBinary = []string{"application/octet-stream"}
	contentTypeJSON   = []string{"application/json"}
)

// Handler returns the public REST API (the --http-addr listener): the
// Open Inference Protocol, feedback, the status and evaluation reads, and
// GET /metrics when WithMetrics gave a handler. Each route is behind the
// check its PublicRoutes entry names; the control routes answer 404 there,
// saying they moved to the control listener. A panic in a handler is
// answered 500, logged and counted (drover.agent.panics).
func (s *Server) Handler() http.Handler {
	r := s.newRouter(PublicRoutes)
	r.handle("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	r.handle("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if s.Ready() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	r.handle("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Metadata())
	})
	r.handle("GET /v2/models/{model}", s.handleModelMetadata)
	r.handle("GET /v2/models/{model}/versions/{version}", s.handleModelMetadata)
	r.handle("GET /v2/models/{model}/ready", s.handleModelReady)
	r.handle("GET /v2/models/{model}/versions/{version}/ready", s.handleModelReady)
	r.handle("POST /v2/models/{model}/infer", s.handleInfer)
	r.handle("POST /v2/models/{model}/versions/{version}/infer", s.handleInfer)
	// Drover extensions.
	r.handle("POST /v2/models/{model}/feedback", s.handleFeedback)
	r.handle(patternStatus, s.handleStatus)
	r.handle(patternEval, s.handleEvaluation)
	s.controlRoutes(r) // answered 404 (Moved): they are on the control listener
	if s.metrics != nil {
		r.handle("GET /metrics", s.metrics.ServeHTTP)
	}
	r.handle("/", s.handleNoRoute)
	s.patternsMu.Lock()
	s.publicPatterns = r.patterns
	s.patternsMu.Unlock()
	return s.recoverHTTP(r.mux)
}

// ControlHandler returns the control API (the --control-addr listener):
// pin, canary, shadow and promote, plus the status and evaluation reads.
// Every route needs the control token (WithControlToken); without one
// configured every request is refused.
func (s *Server) ControlHandler() http.Handler {
	r := s.newRouter(ControlRoutes)
	s.controlRoutes(r)
	r.handle(patternStatus, s.handleStatus)
	r.handle(patternEval, s.handleEvaluation)
	r.handle("/", s.handleNoRoute)
	s.patternsMu.Lock()
	s.controlPatterns = r.patterns
	s.patternsMu.Unlock()
	return s.recoverHTTP(r.mux)
}

// controlRoutes registers the routes that change what serves.
func (s *Server) controlRoutes(r *router) {
	r.handle(patternPin, s.handlePin)
	r.handle(patternUnpin, s.handleUnpin)
	r.handle(patternCanary, s.handleSplit(route.Canary))
	r.handle(patternNoCan, s.handleSplit(route.Canary))
	r.handle(patternPromote, s.handlePromote)
	r.handle(patternShadow, s.handleSplit(route.Shadow))
	r.handle(patternNoShad, s.handleSplit(route.Shadow))
}

func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusNotFound, codes.NotFound, "no route for %s %s", r.Method, r.URL.Path))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	e := classify(err)
	b := oip.EncodeError(e.Msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if e.HTTP == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(e.HTTP)
	w.Write(b)
}

func (s *Server) handleModelMetadata(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	md, err := s.ModelMetadata(r.PathValue("model"), version)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	ok, err := s.ModelReady(r.PathValue("model"), version)
	switch {
	case err != nil:
		writeError(w, err)
	case ok:
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPresize caps the buffer reserved for a body from its declared
// Content-Length: a client's word is not memory. Beyond it the buffer grows
// as bytes actually arrive.
const maxPresize = 1 << 20

// readBody reads a request body of at most limit bytes into buf, reserving
// at most maxPresize bytes up front whatever declared (the Content-Length)
// says: the buffer grows as bytes arrive.
func readBody(w http.ResponseWriter, body io.ReadCloser, declared, limit int64, buf *bytes.Buffer) error {
	if declared > limit {
		return errorf(http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "request body of %d bytes exceeds max_request_bytes %d", declared, limit)
	}
	if declared > 0 {
		buf.Grow(int(min(declared, maxPresize)))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "request body exceeds max_request_bytes %d", limit)
		}
		return errorf(http.StatusBadRequest, codes.InvalidArgument, "read request body: %v", err)
	}
	return nil
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	jsonLen := -1
	if h := r.Header.Get(headerJSONLen); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 {
			writeError(w, errorf(http.StatusBadRequest, codes.InvalidArgument, "%s: %q is not a non-negative integer", headerJSONLen, h))
			return
		}
		jsonLen = n
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "request body of %d bytes exceeds max_request_bytes %d", r.ContentLength, s.cfg.MaxRequestBytes))
		return
	}
	// Admission before the body is read: a refused request costs no read
	// and no buffer.
	model := r.PathValue("model")
	if err := s.admit("rest", model); err != nil {
		writeError(w, err)
		return
	}
	defer s.releaseSlot()
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPresize {
			bodyPool.Put(buf)
		}
	}()
	// The slot is held while the body arrives: it must arrive within
	// request_timeout, so that slow senders cannot hold every slot. Once it
	// has, the deadline is lifted (the connection's next read is the
	// server's watch for a closed connection, which would cancel the
	// request). A body that failed to arrive closes the connection: the
	// server must not wait for the rest of it. Recorders in tests do not
	// support deadlines.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if err := readBody(w, r.Body, r.ContentLength, s.cfg.MaxRequestBytes, buf); err != nil {
		w.Header().Set("Connection", "close")
		writeError(w, err)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	req, err := oip.DecodeRESTRequest(buf.Bytes(), jsonLen)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, codes.InvalidArgument, "%v", err))
		return
	}
	resp, err := s.infer(r.Context(), "rest", model, version, req)
	if err != nil {
		writeError(w, err)
		return
	}
	body, hdrLen, err := oip.EncodeRESTResponse(resp, req)
	if err != nil {
		writeError(w, err)
		return
	}
	// The header's values are set without Header.Set's slice per value:
	// the content types are shared (net/http copies the header before it
	// writes it), the lengths share one slice.
	h := w.Header()
	if hdrLen >= 0 {
		lens := []string{strconv.Itoa(len(body)), strconv.Itoa(hdrLen)}
		h["Content-Type"] = contentTypeBinary
		h["Content-Length"] = lens[0:1:1]
		h[headerJSONLen] = lens[1:2:2]
	} else {
		h["Content-Type"] = contentTypeJSON
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.set.Status(r.PathValue("model"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handlePin(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout*4)
	defer cancel()
	model := r.PathValue("model")
	if err := s.set.Pin(ctx, model, version); err != nil {
		if e := classify(err); e.HTTP == http.StatusInternalServerError {
			// A version that fails to load cannot be pinned: the caller's
			// choice is wrong for this model, not the server.
			err = errorf(http.StatusUnprocessableEntity, codes.FailedPrecondition, "%v", err)
		}
		writeError(w, err)
		return
	}
	st, _ := s.set.Status(model)
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleUnpin(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if _, err := s.set.Status(model); err != nil {
		writeError(w, err)
		return
	}
	if err := s.set.Unpin(model); err != nil {
		writeError(w, err)
		return
	}
	st, _ := s.set.Status(model)
	writeJSON(w, http.StatusOK, st)
}

// maxFeedbackBytes bounds a feedback body.
const maxFeedbackBytes = 8 << 20

func (s *Server) handleFeedback(w http.ResponseWriter, r *http.Request) {
	if s.mon == nil {
		writeError(w, errorf(http.StatusNotFound, codes.NotFound, "feedback is not enabled on this agent"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFeedbackBytes))
	if err != nil {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "feedback body: %v (limit %d bytes)", err, maxFeedbackBytes))
		return
	}
	res, err := s.mon.Feedback(r.PathValue("model"), body)
	if err != nil {
		if errors.Is(err, monitor.ErrBadFeedback) {
			err = errorf(http.StatusBadRequest, codes.InvalidArgument, "%v", err)
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleSplit sets (PUT {"version": v, "percent": p}) or removes (DELETE)
// a model's canary or shadow split.
func (s *Server) handleSplit(kind route.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		model := r.PathValue("model")
		var sp *route.Split
		if r.Method == http.MethodPut {
			sp = &route.Split{}
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
			dec.DisallowUnknownFields()
			if err := dec.Decode(sp); err != nil {
				writeError(w, errorf(http.StatusBadRequest, codes.InvalidArgument, "%s: want {\"version\": N, \"percent\": P}: %v", kind, err))
				return
			}
			if err := sp.Validate(); err != nil {
				writeError(w, errorf(http.StatusBadRequest, codes.InvalidArgument, "%s: %v", kind, err))
				return
			}
		}
		if err := s.set.SetSplit(model, kind, sp); err != nil {
			writeError(w, err)
			return
		}
		st, _ := s.set.Status(model)
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout*4)
	defer cancel()
	model := r.PathValue("model")
	if err := s.set.Promote(ctx, model); err != nil {
		if e := classify(err); e.HTTP == http.StatusInternalServerError {
			err = errorf(http.StatusConflict, codes.FailedPrecondition, "%v", err)
		}
		writeError(w, err)
		return
	}
	st, _ := s.set.Status(model)
	writeJSON(w, http.StatusOK, st)
}

// evaluation is the body of GET .../versions/{v}/evaluation.
type evaluation struct {
	Model   string           `json:"model"`
	Version int64            `json:"version"`
	Labels  evaluate.Result  `json:"labels"`
	Golden  *evaluate.Result `json:"golden,omitempty"`
}

func (s *Server) handleEvaluation(w http.ResponseWriter, r *http.Request) {
	version, err := parseVersion(r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	model := r.PathValue("model")
	if _, err := s.set.Status(model); err != nil {
		writeError(w, err)
		return
	}
	if s.mon == nil {
		writeError(w, errorf(http.StatusNotFound, codes.NotFound, "evaluation is not enabled on this agent"))
		return
	}
	ev := evaluation{Model: model, Version: version, Labels: s.mon.Metrics(model, version)}
	if g, ok := s.mon.Golden(model, version); ok {
		ev.Golden = &g
	}
	writeJSON(w, http.StatusOK, ev)
}
