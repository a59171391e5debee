// Package serve exposes the agent's loaded model versions (package
// versions) over the Open Inference Protocol v2: REST (JSON, and Triton's
// binary tensor extension) and gRPC (the public
// inference.GRPCInferenceService), plus Drover's extensions under
// /v2/models/{model}/... (status, evaluation, feedback), and the control
// API (pin, canary, shadow, promote) on a listener of its own that
// requires the agent's control token.
//
// Who may call what is declared once, in access.go: a table of every REST
// pattern of the public and the control mux and of every gRPC method, each
// open, behind serving.auth (client tokens of serving.tokens_file), or
// behind the control token. A route registered without an entry panics;
// routes_test.go checks the tables against the routes a running server
// registered, both ways. Run serves all three listeners with connection
// limits, timeouts and optional TLS (shared/tlsconfig).
//
// Both front ends share one inference path (Server.Infer): admission
// (in-flight limit), the route to a version (versions.Set.Route, which asks
// package route) with a reference held for the whole request, the batch
// limit, the per-request timeout, and error classification into HTTP
// statuses and gRPC codes.
package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/buildinfo"
	"github.com/drover-ml/drover/shared/fieldpath"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tokens"
)

// Config holds the serving limits. A file is read over DefaultConfig: an
// omitted key keeps its default, an explicit value is taken literally and
// Validate rejects the ones that make no sense (max_batch: 0). Code that
// builds a Config may leave fields zero: New applies WithDefaults.
type Config struct {
	// MaxRequestBytes bounds a request body / gRPC message; default 64 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxBatch bounds the first dimension of inputs whose first dimension
	// is dynamic; default 8192.
	MaxBatch int64 `yaml:"max_batch"`
	// RequestTimeout bounds one inference; default 30 s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxInFlight bounds concurrent inferences; more get 503 / UNAVAILABLE
	// at once instead of queueing. Default 1024.
	MaxInFlight int64 `yaml:"max_in_flight"`
	// MaxConnections bounds the open connections of each public listener
	// (REST and gRPC); more wait to be accepted. Default 4096.
	MaxConnections int `yaml:"max_connections"`
	// ReadTimeout bounds the reading of a REST request, headers and body
	// (an inference body has request_timeout instead); default 1m.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a REST keep-alive connection, or a gRPC
	// connection, idle that long; default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Auth is who may infer and send feedback on the public listeners:
	// "none" (anyone who reaches them; the default) or "token" (a client
	// token of TokensFile, as Authorization: Bearer <token>).
	Auth string `yaml:"auth"`
	// TokensFile is the tokens_file (shared/tokens: a YAML list of {name,
	// role, sha256}) read when Auth is "token"; it is read again when it
	// changes.
	TokensFile string `yaml:"tokens_file"`
	// TLS is the public listeners' TLS (REST and gRPC); off by default.
	TLS tlsconfig.Server `yaml:"tls"`
}

// DefaultConfig returns the default limits.
func DefaultConfig() Config {
	return Config{
		MaxRequestBytes: 64 << 20, MaxBatch: 8192, RequestTimeout: 30 * time.Second, MaxInFlight: 1024,
		MaxConnections: 4096, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute, Auth: AuthNone,
	}
}

// WithDefaults returns c with its zero (or negative) fields set from
// DefaultConfig, for Configs built in code.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = d.MaxRequestBytes
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = d.MaxConnections
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.Auth == "" {
		c.Auth = d.Auth
	}
	return c
}

// Validate reports every invalid limit, each prefixed with its field path
// relative to the serving section. Zero is taken literally: an error.
func (c Config) Validate() error {
	var errs []error
	if c.MaxRequestBytes < 1 {
		errs = append(errs, fmt.Errorf("max_request_bytes: must be >= 1, got %d", c.MaxRequestBytes))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max_batch: must be >= 1, got %d", c.MaxBatch))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request_timeout: must be > 0, got %s", c.RequestTimeout))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max_in_flight: must be >= 1, got %d", c.MaxInFlight))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("max_connections: must be >= 1, got %d", c.MaxConnections))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("read_timeout: must be > 0, got %s", c.ReadTimeout))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle_timeout: must be > 0, got %s", c.IdleTimeout))
	}
	switch c.Auth {
	case AuthNone:
		if c.TokensFile != "" {
			errs = append(errs, fmt.Errorf("tokens_file: set, but auth is %s; set auth: %s or remove tokens_file", AuthNone, AuthToken))
		}
	case AuthToken:
		if c.TokensFile == "" {
			errs = append(errs, fmt.Errorf("tokens_file: required with auth: %s", AuthToken))
		} else if _, err := tokens.ReadFile(c.TokensFile); err != nil {
			errs = append(errs, fmt.Errorf("tokens_file: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("auth: must be %q or %q, got %q", AuthNone, AuthToken, c.Auth))
	}
	errs = append(errs, fieldpath.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Server implements the protocol on top of a versions. Safe for concurrent
// use.
type Server struct {
	cfg      Config
	set      *versions.Set
	log      *slog.Logger
	inFlight atomic.Int64
	served   atomic.Uint64 // admitted inferences answered
	// ready reports whether the agent has finished its first scan.
	ready      func() bool
	tel        *telemetry.Telemetry // may be nil
	mon        *monitor.Monitor     // may be nil
	clients    *tokens.File         // client tokens (serving.auth token); nil: none loaded
	controlSum []byte               // sha256 of the control token; nil: control refused
	metrics    http.Handler         // GET /metrics on the public listener; may be nil

	patternsMu                      sync.Mutex
	publicPatterns, controlPatterns []string
	grpcMethods                     []string
	// inferHook, set by tests only, is called with the model name once a
	// request holds its version (tests inject panics through it).
	inferHook func(model string)
}

// Option configures optional parts of a Server.
type Option func(*Server)

// WithTelemetry records request metrics.
func WithTelemetry(t *telemetry.Telemetry) Option { return func(s *Server) { s.tel = t } }

// WithMonitor samples, evaluates and shadows requests, and serves the
// feedback call.
func WithMonitor(m *monitor.Monitor) Option { return func(s *Server) { s.mon = m } }

// WithMetrics serves h as GET /metrics on the public listener (open).
func WithMetrics(h http.Handler) Option { return func(s *Server) { s.metrics = h } }

// WithClientTokens is the tokens_file that serving.auth "token" checks
// (OpenClientTokens opens it). With auth "token" and no file, every
// inference and feedback request is refused.
func WithClientTokens(f *tokens.File) Option { return func(s *Server) { s.clients = f } }

// WithControlToken is the token the control listener requires. Without
// one (or with ""), every control request is refused.
func WithControlToken(token string) Option {
	return func(s *Server) {
		if token == "" {
			s.controlSum = nil
			return
		}
		sum := sha256.Sum256([]byte(token))
		s.controlSum = sum[:]
	}
}

// OpenClientTokens opens the tokens_file of serving.auth "token" (nil, nil
// when auth is "none"); a later reload that fails is logged once per
// change of the file and keeps the tokens in force.
func (c Config) OpenClientTokens(log *slog.Logger) (*tokens.File, error) {
	if c.Auth != AuthToken {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	f, err := tokens.OpenFile(c.TokensFile, func(err error) {
		log.Error("serving.tokens_file: reload failed", "path", c.TokensFile, "err", err)
	})
	if err != nil {
		return nil, fmt.Errorf("serving.tokens_file: %w", err)
	}
	return f, nil
}

// New builds a server. ready may be nil (always ready once models serve).
func New(cfg Config, set *versions.Set, ready func() bool, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.Default()
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	s := &Server{cfg: cfg.WithDefaults(), set: set, log: log, ready: ready}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Error is an error with its protocol status.
type Error struct {
	HTTP int
	Code codes.Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(httpStatus int, code codes.Code, format string, args ...any) *Error {
	return &Error{HTTP: httpStatus, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// classify maps an error from the inference path to its protocol status.
func classify(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, route.ErrControlled):
		// A model a collector controls: its pin, canary, shadow and
		// promote are changed there (docs/fleet.md).
		return &Error{HTTP: http.StatusConflict, Code: codes.FailedPrecondition, Msg: err.Error()}
	case errors.Is(err, versions.ErrModelNotFound), errors.Is(err, versions.ErrVersionNotFound):
		return &Error{HTTP: http.StatusNotFound, Code: codes.NotFound, Msg: err.Error()}
	case errors.Is(err, versions.ErrNotReady), errors.Is(err, versions.ErrClosed):
		return &Error{HTTP: http.StatusServiceUnavailable, Code: codes.Unavailable, Msg: err.Error()}
	case runtime.IsInputError(err):
		return &Error{HTTP: http.StatusBadRequest, Code: codes.InvalidArgument, Msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{HTTP: http.StatusGatewayTimeout, Code: codes.DeadlineExceeded, Msg: "inference timed out: " + err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{HTTP: 499, Code: codes.Canceled, Msg: "request cancelled: " + err.Error()}
	}
	return &Error{HTTP: http.StatusInternalServerError, Code: codes.Internal, Msg: err.Error()}
}

// parseVersion reads a {version} path element; "" means the default.
func parseVersion(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || strconv.FormatInt(v, 10) != s {
		return 0, errorf(http.StatusBadRequest, codes.InvalidArgument, "model version %q must be a positive integer", s)
	}
	return v, nil
}

// Infer runs one request against model (version 0 = the default version).
// It enforces admission, the batch limit and the request timeout, and holds
// a reference on the version for the whole run, so a swap never fails it.
//
// A request without an id gets one (returned in the response); package
// route decides by that id whether a request that names no version goes
// to the model's canary and whether it is copied to its shadow. protocol
// ("rest" or "grpc") labels the request metrics.
func (s *Server) Infer(ctx context.Context, protocol, model string, version int64, req *oip.InferRequest) (*oip.InferResponse, error) {
	if err := s.admit(protocol, model); err != nil {
		return nil, err
	}
	defer s.releaseSlot()
	return s.infer(ctx, protocol, model, version, req)
}

// admit takes one of the max_in_flight slots, to be given back with
// releaseSlot; beyond the limit it answers 503 / Unavailable at once
// (recorded in the request metrics only when the model exists). The REST
// front end calls it before it reads the body, so a refused request costs
// no read.
func (s *Server) admit(protocol, model string) error {
	if n := s.inFlight.Add(1); n > s.cfg.MaxInFlight {
		s.inFlight.Add(-1)
		err := errorf(http.StatusServiceUnavailable, codes.Unavailable, "server overloaded: %d inferences in flight (max_in_flight %d); retry later", n-1, s.cfg.MaxInFlight)
		if s.tel != nil && s.set.Has(model) {
			s.tel.RecordRequest(model, "", protocol, statusLabel(err), 0)
		}
		return err
	}
	return nil
}

func (s *Server) releaseSlot() {
	s.inFlight.Add(-1)
	s.served.Add(1)
}

// InFlight is how many inferences the server has admitted and not yet
// answered.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Served is how many admitted inferences the server has answered so far,
// with a result or an error.
func (s *Server) Served() uint64 { return s.served.Load() }

// infer is Infer once admitted.
func (s *Server) infer(ctx context.Context, protocol, model string, version int64, req *oip.InferRequest) (resp *oip.InferResponse, err error) {
	if req.ID == "" {
		req.ID = evaluate.NewRequestID()
	} else if len(req.ID) > evaluate.MaxIDBytes {
		// A sampled request keeps its id until its label comes: ids are
		// bounded like a label's.
		return nil, errorf(http.StatusBadRequest, codes.InvalidArgument, "request id is %d bytes, more than %d", len(req.ID), evaluate.MaxIDBytes)
	}
	start := time.Now()
	versionLabel := ""
	// Request metrics carry the model's name, so they are recorded only for
	// a model the agent has: a name a client invents must not create a
	// series (404 costs nothing but the answer).
	known := false
	if s.tel != nil {
		defer func() {
			if known {
				s.tel.RecordRequest(model, versionLabel, protocol, statusLabel(err), time.Since(start))
			}
		}()
	}
	v, shadow, err := s.set.Route(model, version, req.ID)
	if err != nil {
		known = !errors.Is(err, versions.ErrModelNotFound)
		return nil, err
	}
	known = true
	defer v.Release()
	if s.tel != nil {
		s.tel.InFlight(model, 1)
		defer s.tel.InFlight(model, -1)
	}
	versionLabel = strconv.FormatInt(v.Number, 10)
	if s.inferHook != nil {
		s.inferHook(model)
	}
	if err := s.checkBatch(v, req); err != nil {
		return nil, err
	}
	var outputs []string
	if len(req.Outputs) > 0 {
		outputs = make([]string, len(req.Outputs))
		for i, o := range req.Outputs {
			outputs[i] = o.Name
		}
	}
	// The run stops at request_timeout or when the client's context ends;
	// the runtime's watchdog sees to both, so that a request sets no timer
	// and no context of its own.
	out, err := v.InferBefore(ctx, start.Add(s.cfg.RequestTimeout), req.Inputs, outputs)
	if err != nil {
		if ctx.Err() != nil {
			// The client went away or its own deadline (a gRPC timeout)
			// passed: its doing, counted as cancelled, not as a server
			// timeout (the collector's error-rate drift counts timeouts).
			return nil, errorf(499, codes.Canceled, "request cancelled by the client: %v", context.Cause(ctx))
		}
		return nil, err
	}
	resp = &oip.InferResponse{
		ModelName:    model,
		ModelVersion: versionLabel,
		ID:           req.ID,
		Outputs:      out,
	}
	if s.mon != nil {
		s.mon.Observe(v, shadow, req, resp)
	}
	return resp, nil
}

// statusLabel is the drover.status of a request's outcome.
func statusLabel(err error) string {
	if err == nil {
		return "ok"
	}
	switch classify(err).HTTP {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return "bad_request"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	case 499:
		return "cancelled"
	}
	return "error"
}

func (s *Server) checkBatch(v *versions.Version, req *oip.InferRequest) error {
	for _, in := range req.Inputs {
		for _, spec := range v.Signature.Inputs {
			if spec.Name == in.Name && len(spec.Shape) > 0 && spec.Shape[0] < 0 && len(in.Shape) > 0 && in.Shape[0] > s.cfg.MaxBatch {
				return errorf(http.StatusBadRequest, codes.InvalidArgument, "input %q has batch size %d, more than max_batch %d", in.Name, in.Shape[0], s.cfg.MaxBatch)
			}
		}
	}
	return nil
}

// Live reports liveness: the process is up.
func (s *Server) Live() bool { return true }

// Ready reports readiness: the first scan is done and every model that has
// a loadable version has one serving.
func (s *Server) Ready() bool {
	if !s.ready() {
		return false
	}
	for _, name := range s.set.Models() {
		st, err := s.set.Status(name)
		if err != nil {
			continue
		}
		if st.Ready {
			continue
		}
		for _, v := range st.Versions {
			if v.State == "available" || v.State == "loading" {
				return false
			}
		}
	}
	return true
}

// ModelReady reports whether model (and version, if not 0) serves.
func (s *Server) ModelReady(model string, version int64) (bool, error) {
	v, err := s.set.Acquire(model, version)
	if err != nil {
		if errors.Is(err, versions.ErrNotReady) {
			return false, nil
		}
		return false, err
	}
	v.Release()
	return true, nil
}

// ServerMetadata is the server metadata response.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// Metadata returns the server metadata.
func (s *Server) Metadata() ServerMetadata {
	return ServerMetadata{
		Name:       "drover",
		Version:    buildinfo.Version,
		Extensions: []string{"binary_tensor_data", "drover_model_status", "drover_version_pin", "drover_feedback", "drover_canary_shadow"},
	}
}

// ModelMetadata returns the metadata of a model version (0 = default).
func (s *Server) ModelMetadata(model string, version int64) (*oip.ModelMetadata, error) {
	v, err := s.set.Acquire(model, version)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	md := &oip.ModelMetadata{Name: model, Platform: "onnxruntime_onnx", Parameters: map[string]string{}}
	if st, err := s.set.Status(model); err == nil {
		for _, vs := range st.Versions {
			if vs.State == "serving" {
				md.Versions = append(md.Versions, strconv.FormatInt(vs.Version, 10))
			}
		}
	}
	for _, t := range v.Signature.Inputs {
		md.Inputs = append(md.Inputs, oip.TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	for _, t := range v.Signature.Outputs {
		md.Outputs = append(md.Outputs, oip.TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
		if len(t.Classes) > 0 {
			md.Parameters[t.Name+".classes"] = joinJSON(t.Classes)
		}
	}
	for k, val := range v.Info {
		md.Parameters["onnx."+k] = val
	}
	md.Parameters["version"] = strconv.FormatInt(v.Number, 10)
	return md, nil
}

// joinJSON renders class labels as a JSON array of strings (the
// "<output>.classes" parameter), escaped as JSON requires.
func joinJSON(ss []string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ss); err != nil {
		return "[]" // a []string always encodes
	}
	return strings.TrimSuffix(b.String(), "\n")
}
