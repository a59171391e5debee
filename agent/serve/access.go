package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/tokens"
)

// Access says what a request to a route needs.
type Access int

// The accesses of the agent's routes. The zero Access is no entry: a route
// registered without one panics at registration (see route), so no route
// can be left open by mistake.
const (
	// Open routes need nothing: health, server and model metadata,
	// /metrics, the status and evaluation reads.
	Open Access = iota + 1
	// Inference routes (infer, feedback) follow serving.auth: open with
	// "none", a client token of serving.tokens_file with "token".
	Inference
	// Control routes are served on the control listener only and need the
	// agent's control token (<data-dir>/control.token).
	Control
	// Moved routes are the control routes' old places on the public port:
	// they answer 404 saying where the route went, and change nothing.
	Moved
)

func (a Access) String() string {
	switch a {
	case Open:
		return "open"
	case Inference:
		return "serving.auth"
	case Control:
		return "control token"
	case Moved:
		return "moved (404)"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// The control API's routes, on the control listener. Their old places on
// the public port answer 404 (Moved).
const (
	patternPin     = "POST /v2/models/{model}/versions/{version}/pin"
	patternUnpin   = "DELETE /v2/models/{model}/pin"
	patternCanary  = "PUT /v2/models/{model}/canary"
	patternNoCan   = "DELETE /v2/models/{model}/canary"
	patternPromote = "POST /v2/models/{model}/canary/promote"
	patternShadow  = "PUT /v2/models/{model}/shadow"
	patternNoShad  = "DELETE /v2/models/{model}/shadow"
	patternStatus  = "GET /v2/models/{model}/status"
	patternEval    = "GET /v2/models/{model}/versions/{version}/evaluation"
)

// PublicRoutes is the access of every route of the public REST listener
// (--http-addr), by its ServeMux pattern exactly as registered. The route
// test (routes_test.go) takes the patterns from a running server and fails
// on a pattern without an entry or an entry without a pattern.
var PublicRoutes = map[string]Access{
	"GET /v2/health/live":                             Open,
	"GET /v2/health/ready":                            Open,
	"GET /v2":                                         Open,
	"GET /v2/models/{model}":                          Open,
	"GET /v2/models/{model}/versions/{version}":       Open,
	"GET /v2/models/{model}/ready":                    Open,
	"GET /v2/models/{model}/versions/{version}/ready": Open,
	"GET /metrics":                                    Open,
	// Everything else: a JSON 404.
	"/": Open,

	"POST /v2/models/{model}/infer":                    Inference,
	"POST /v2/models/{model}/versions/{version}/infer": Inference,
	"POST /v2/models/{model}/feedback":                 Inference,

	patternStatus: Open,
	patternEval:   Open,

	patternPin:     Moved,
	patternUnpin:   Moved,
	patternCanary:  Moved,
	patternNoCan:   Moved,
	patternPromote: Moved,
	patternShadow:  Moved,
	patternNoShad:  Moved,
}

// ControlRoutes is the access of every route of the control listener
// (--control-addr): all of them need the control token.
var ControlRoutes = map[string]Access{
	patternPin:     Control,
	patternUnpin:   Control,
	patternCanary:  Control,
	patternNoCan:   Control,
	patternPromote: Control,
	patternShadow:  Control,
	patternNoShad:  Control,
	patternStatus:  Control,
	patternEval:    Control,
	"/":            Control,
}

// GRPCMethods is the access of every method of the gRPC listener
// (--grpc-addr), by its full name.
var GRPCMethods = map[string]Access{
	pb.GRPCInferenceService_ServerLive_FullMethodName:     Open,
	pb.GRPCInferenceService_ServerReady_FullMethodName:    Open,
	pb.GRPCInferenceService_ModelReady_FullMethodName:     Open,
	pb.GRPCInferenceService_ServerMetadata_FullMethodName: Open,
	pb.GRPCInferenceService_ModelMetadata_FullMethodName:  Open,
	pb.GRPCInferenceService_ModelInfer_FullMethodName:     Inference,
}

// The values of serving.auth.
const (
	AuthNone  = "none"
	AuthToken = "token"
)

// ClientRole is the tokens_file role that serving.auth "token" accepts.
const ClientRole = "client"

// router registers routes on a mux, each wrapped with what its Access
// needs, and remembers the patterns (Server.Patterns).
type router struct {
	s        *Server
	mux      *http.ServeMux
	table    map[string]Access
	patterns []string
}

func (s *Server) newRouter(table map[string]Access) *router {
	return &router{s: s, mux: http.NewServeMux(), table: table}
}

// handle registers h for pattern behind the check of its Access. A
// pattern without an entry in the table panics: access is declared in
// code, and a forgotten entry must not open a route.
func (r *router) handle(pattern string, h http.HandlerFunc) {
	a, ok := r.table[pattern]
	if !ok {
		panic(fmt.Sprintf("serve: route %q has no entry in its access table", pattern))
	}
	var wrapped http.Handler = h
	switch a {
	case Inference:
		wrapped = r.s.requireClient(h)
	case Control:
		wrapped = r.s.requireControl(h)
	case Moved:
		wrapped = http.HandlerFunc(r.s.handleMoved)
	}
	r.mux.Handle(pattern, wrapped)
	r.patterns = append(r.patterns, pattern)
}

// Routes are the routes a Server registered, as its access tables name
// them.
type Routes struct {
	// Public and Control are the REST patterns of the last Handler and
	// ControlHandler calls, sorted.
	Public, Control []string
	// GRPC are the full method names of the last NewGRPCServer's services
	// (grpc.Server.GetServiceInfo), sorted.
	GRPC []string
}

// Routes returns what the server registered.
func (s *Server) Routes() Routes {
	s.patternsMu.Lock()
	defer s.patternsMu.Unlock()
	return Routes{
		Public:  slices.Sorted(slices.Values(s.publicPatterns)),
		Control: slices.Sorted(slices.Values(s.controlPatterns)),
		GRPC:    slices.Sorted(slices.Values(s.grpcMethods)),
	}
}

// bearer returns the token of r's Authorization header; more than one
// header is malformed.
func bearer(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) > 1 {
		return "", tokens.ErrMalformed
	}
	var h string
	if len(vals) == 1 {
		h = vals[0]
	}
	return tokens.ParseBearer(h)
}

// Errors of the token checks. Their messages never contain a token.
var (
	errUnknownToken = errors.New("unknown token")
	errNoTokens     = errors.New("serving.auth is token but no tokens_file is loaded")
)

// checkClient returns nil when token is a client token of
// serving.tokens_file, or an *Error: 401 for no, a malformed or an unknown
// token, 403 for a token of another role.
func (s *Server) checkClient(token string, err error) *Error {
	if err != nil {
		return errorf(http.StatusUnauthorized, codes.Unauthenticated, "%v (serving.auth is token: a client token of serving.tokens_file)", err)
	}
	if s.clients == nil {
		return errorf(http.StatusUnauthorized, codes.Unauthenticated, "%v", errNoTokens)
	}
	e, ok := s.clients.Lookup(token)
	if !ok {
		return errorf(http.StatusUnauthorized, codes.Unauthenticated, "%v", errUnknownToken)
	}
	if e.Role != ClientRole {
		return errorf(http.StatusForbidden, codes.PermissionDenied, "token %q has role %s; inference and feedback need a %s token", e.Name, e.Role, ClientRole)
	}
	return nil
}

func (s *Server) authOn() bool { return s.cfg.Auth == AuthToken }

// requireClient lets a request through when serving.auth is none, or when
// it carries a client token.
func (s *Server) requireClient(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authOn() {
			if e := s.checkClient(bearer(r)); e != nil {
				refuse(w, e)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// requireControl lets a request through when it carries the control
// token. The comparison takes the same time wherever the tokens differ.
func (s *Server) requireControl(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := bearer(r)
		switch {
		case err != nil:
			refuse(w, errorf(http.StatusUnauthorized, codes.Unauthenticated, "%v (the control token is in <data-dir>/control.token)", err))
			return
		case s.controlSum == nil:
			refuse(w, errorf(http.StatusUnauthorized, codes.Unauthenticated, "this agent has no control token"))
			return
		}
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], s.controlSum) != 1 {
			refuse(w, errorf(http.StatusUnauthorized, codes.Unauthenticated, "wrong control token (the control token is in <data-dir>/control.token)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers a refused request; the body of the request is not read.
func refuse(w http.ResponseWriter, e *Error) {
	if e.HTTP == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="drover-agent"`)
	}
	w.Header().Set("Connection", "close")
	writeError(w, e)
}

// handleMoved answers a control route on the public port.
func (s *Server) handleMoved(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusNotFound, codes.NotFound,
		"%s %s moved to the agent's control listener (--control-addr, default 127.0.0.1:8082), which needs Authorization: Bearer <the token in <data-dir>/control.token>",
		r.Method, r.URL.Path))
}

// grpcAuth are the interceptors that check each method's Access (from
// GRPCMethods; a method without an entry is refused).
func (s *Server) grpcAuth() []grpc.ServerOption {
	check := func(ctx context.Context, method string) error {
		switch GRPCMethods[method] {
		case Open:
			return nil
		case Inference:
			if !s.authOn() {
				return nil
			}
			if e := s.checkClient(grpcBearer(ctx)); e != nil {
				return status.Error(e.Code, e.Msg)
			}
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "method %s has no access entry", method)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// grpcBearer returns the token of the request's "authorization" metadata.
func grpcBearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) > 1 {
		return "", tokens.ErrMalformed
	}
	var h string
	if len(vals) == 1 {
		h = vals[0]
	}
	return tokens.ParseBearer(h)
}
