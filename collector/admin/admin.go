// Package admin serves the collector's admin HTTP API: health and readiness
// today; fleet, versions, drift and jobs as later issues add them.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/drover-ml/drover/shared/lifecycle"
)

// ReadyFunc reports whether the collector can accept data; a non-nil error
// says why not.
type ReadyFunc func(ctx context.Context) error

// Server is the admin HTTP server. Run blocks until ctx is cancelled, then
// shuts down gracefully (lifecycle.Serve). Register handlers (Handle)
// before Run.
type Server struct {
	addr  string
	ready ReadyFunc
	log   *slog.Logger
	mux   *http.ServeMux
}

// New builds the admin server on addr.
func New(addr string, ready ReadyFunc, log *slog.Logger) *Server {
	s := &Server{addr: addr, ready: ready, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return s
}

// Handle registers an extra handler (for later APIs).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

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
// (for up to 5s) and returns. It owns l (closed when it returns).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.log.Info("admin API listening", "addr", l.Addr().String())
	return lifecycle.Serve(ctx, 5*time.Second, s.log, lifecycle.Listening{Name: "admin", Server: lifecycle.HTTP(srv), Listener: l})
}
