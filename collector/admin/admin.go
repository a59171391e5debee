// Package admin serves the collector's admin HTTP API (docs/admin-api.md):
// health and readiness without a token, and every other route behind the
// token model of collector/auth, with the role its entry in the route
// table (Routes) requires.
package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/recovery"
)

// ReadyFunc reports whether the collector can accept data; a non-nil error
// says why not.
type ReadyFunc func(ctx context.Context) error

// Options are a Server's settings and dependencies.
type Options struct {
	// Addr is the listen address of Run.
	Addr string
	// Ready answers /readyz.
	Ready ReadyFunc
	// Routes is the table of required roles (Routes()); every pattern
	// registered must have an entry. Nil means Routes().
	Routes auth.Routes
	// DataRoutes are the patterns of Routes served as data-plane routes
	// (auth.Authenticator.RequireData: authenticated and role-checked,
	// denials audited, accepted calls not audited). Nil means
	// DataRoutes().
	DataRoutes []string
	// Auth checks the tokens. It may be nil at New and set later with
	// SetAuth (the collector builds it once its tokens can be read); until
	// then every route that needs a token answers 503.
	Auth *auth.Authenticator
	// OnPanic is told about a handler's panic, answered 500; default: a
	// log line with the stack (recovery.Logged).
	OnPanic recovery.OnPanic
	// Logger; default slog.Default().
	Logger *slog.Logger
	// TLS, when not nil, is served on the listener (Run and Serve).
	TLS *tls.Config
	// ClientCerts maps the verified client certificates (TLS with
	// client_auth request or require) that are identities to their roles
	// (auth.RequireOrCertificate); nil: every route needs a token.
	ClientCerts auth.CertRoles
	// MaxConnections bounds the connections held open at once; further
	// ones wait in the accept queue. 0: no limit.
	MaxConnections int
	// ReadHeaderTimeout bounds reading a request's headers (and the TLS
	// handshake); default 10s. ReadTimeout bounds reading a whole request,
	// body included (0: no bound: a model's files are uploaded as one
	// body). IdleTimeout closes keep-alive connections idle that long (0:
	// ReadTimeout's, or none).
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
}

// Server is the admin HTTP server. Register handlers (Handle) before Run;
// Run blocks until ctx is cancelled, then shuts down gracefully
// (lifecycle.Serve). Handle, Patterns and SetAuth are safe for concurrent
// use.
type Server struct {
	addr   string
	ready  ReadyFunc
	routes auth.Routes
	data   map[string]bool
	gate   *auth.Gate
	log    *slog.Logger
	mux    *http.ServeMux
	auth   atomic.Pointer[auth.Authenticator]

	onPanic recovery.OnPanic

	tls                    *tls.Config
	certs                  auth.CertRoles
	maxConns               int
	readHeader, read, idle time.Duration

	mu       sync.Mutex
	patterns []string
}

// New builds the admin server and registers /healthz and /readyz.
func New(opts Options) *Server {
	if opts.Routes == nil {
		opts.Routes = Routes()
	}
	if opts.DataRoutes == nil {
		opts.DataRoutes = DataRoutes()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnPanic == nil {
		opts.OnPanic = recovery.Logged(opts.Logger, nil)
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	s := &Server{addr: opts.Addr, ready: opts.Ready, routes: maps.Clone(opts.Routes), log: opts.Logger, mux: http.NewServeMux(), onPanic: opts.OnPanic,
		tls: opts.TLS, certs: opts.ClientCerts, maxConns: opts.MaxConnections,
		readHeader: opts.ReadHeaderTimeout, read: opts.ReadTimeout, idle: opts.IdleTimeout, data: map[string]bool{}}
	for _, p := range opts.DataRoutes {
		s.data[p] = true
	}
	s.gate = auth.NewGate(s.auth.Load)
	if opts.Auth != nil {
		s.auth.Store(opts.Auth)
	}
	s.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	s.Handle("GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	return s
}

// SetAuth sets the authenticator that checks the tokens of every route
// but the public ones. Before it is set, those routes answer 503.
func (s *Server) SetAuth(a *auth.Authenticator) { s.auth.Store(a) }

// Handle registers h for pattern behind the access that the route table
// gives pattern: the request reaches h only with a token whose role the
// entry permits (auth.Authenticator.Require: 401, 403, audit of
// state-changing requests and of denials). A data-plane route
// (Options.DataRoutes: the agents' heartbeats, registrations and
// long-polls, labels) is checked the same way but only its denials are
// audited (auth.Authenticator.RequireData), so that a fleet's heartbeats
// do not fill audit_log. A pattern without an entry in the table is a
// programming error: Handle panics, so that no route can be served
// without a decision on who may call it.
func (s *Server) Handle(pattern string, h http.Handler) {
	access, ok := s.routes.Access(pattern)
	if !ok {
		panic(fmt.Sprintf("admin: route %q has no entry in the route table (collector/admin/routes.go)", pattern))
	}
	s.mu.Lock()
	s.patterns = append(s.patterns, pattern)
	s.mu.Unlock()
	if access.IsPublic() {
		s.mux.Handle(pattern, h)
		return
	}
	if s.data[pattern] {
		// 503 until the authenticator is set, as below; a verified client
		// certificate needs no token store.
		s.mux.Handle(pattern, s.gate.RequireDataOrCertificate(access, s.certs, h))
		return
	}
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.auth.Load()
		if a == nil {
			auth.WriteError(w, http.StatusServiceUnavailable, "the collector cannot check tokens yet (its token store is not read yet); retry")
			return
		}
		a.RequireOrCertificate(access, s.certs, h).ServeHTTP(w, r)
	}))
}

// HandleAll registers every handler of hs (a pattern → handler map, such
// as auth.Authenticator.TokenHandlers) through Handle, in pattern order.
func (s *Server) HandleAll(hs map[string]http.Handler) {
	for _, p := range slices.Sorted(maps.Keys(hs)) {
		s.Handle(p, hs[p])
	}
}

// Patterns returns the patterns registered so far, sorted: the routes the
// server serves, for the route-table test (auth.Routes.Missing).
func (s *Server) Patterns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.patterns)
	slices.Sort(out)
	return out
}

// Run listens and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.addr, err)
	}
	return s.Serve(ctx, l)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// Serve serves on l until ctx is done, then lets requests in flight finish
// (for up to 5s) and returns. It owns l (closed when it returns). With
// Options.TLS it serves TLS on l; with Options.MaxConnections it holds at
// most that many connections.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: recovery.HTTP(s.mux, s.onPanic, func(w http.ResponseWriter) {
		WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	}), ReadHeaderTimeout: s.readHeader, ReadTimeout: s.read, IdleTimeout: s.idle,
		// Refused handshakes (no or a bad client certificate) would
		// otherwise go to the standard logger, one line each.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.log.Info("admin API listening", "addr", l.Addr().String(), "tls", s.tls != nil, "max_connections", s.maxConns)
	if s.maxConns > 0 {
		l = netutil.LimitListener(l, s.maxConns)
	}
	if s.tls != nil {
		l = tls.NewListener(l, s.tls)
	}
	return lifecycle.Serve(ctx, 5*time.Second, s.log, lifecycle.Listening{Name: "admin", Server: lifecycle.HTTP(srv), Listener: l})
}

// Auth returns the authenticator set by New or SetAuth, or nil.
func (s *Server) Auth() *auth.Authenticator { return s.auth.Load() }
