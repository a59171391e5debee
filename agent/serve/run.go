package serve

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/tlsconfig"
)

// MaxControlConnections bounds the open connections of the control
// listener: it has one operator or one fleet controller, not traffic.
const MaxControlConnections = 64

// Listeners are what Run serves on. Run owns them: they are closed when it
// returns.
type Listeners struct {
	// HTTP serves the public REST API (Handler); required.
	HTTP net.Listener
	// GRPC serves the public gRPC API (NewGRPCServer); required.
	GRPC net.Listener
	// Control, if not nil, serves the control API (ControlHandler).
	Control net.Listener
	// ControlTLS is the control listener's TLS (off when its CertFile is
	// empty). The public listeners' is the Config's TLS.
	ControlTLS tlsconfig.Server
}

func (ls Listeners) close() {
	for _, l := range []net.Listener{ls.HTTP, ls.GRPC, ls.Control} {
		if l != nil {
			l.Close()
		}
	}
}

// Run serves REST on ls.HTTP, gRPC on ls.GRPC and, if not nil, the control
// API on ls.Control until ctx is cancelled or one of them fails, then
// drains them with lifecycle.Serve: they stop accepting, in-flight requests
// finish (bounded by drainTimeout; what is left then is cut), and only then
// does Run return. Each listener accepts at most its connection limit
// (MaxConnections; MaxControlConnections for control) at a time, serves TLS
// when its section says so (certificates reloaded on change), and its HTTP
// server bounds header reads (10 s), request reads (ReadTimeout) and idle
// keep-alive connections (IdleTimeout).
func (s *Server) Run(ctx context.Context, ls Listeners, drainTimeout time.Duration) error {
	if ls.HTTP == nil || ls.GRPC == nil {
		ls.close()
		return fmt.Errorf("serve: the HTTP and gRPC listeners are required")
	}
	servingTLS, err := s.cfg.TLS.Config(s.tlsError("serving.tls"))
	if err != nil {
		ls.close()
		return fmt.Errorf("serving.tls: %w", err)
	}
	controlTLS, err := ls.ControlTLS.Config(s.tlsError("control.tls"))
	if err != nil {
		ls.close()
		return fmt.Errorf("control.tls: %w", err)
	}
	httpL := limit(ls.HTTP, s.cfg.MaxConnections, servingTLS)
	hs := s.httpServer(s.Handler())
	var gopts []grpc.ServerOption
	if servingTLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(servingTLS)))
	}
	grpcL := netutil.LimitListener(ls.GRPC, s.cfg.MaxConnections)
	servers := []lifecycle.Listening{
		{Name: "http", Server: lifecycle.HTTP(hs), Listener: httpL},
		{Name: "grpc", Server: lifecycle.GRPC(s.NewGRPCServer(gopts...)), Listener: grpcL},
	}
	args := []any{"http", ls.HTTP.Addr().String(), "grpc", ls.GRPC.Addr().String(), "tls", servingTLS != nil, "auth", s.cfg.Auth}
	if ls.Control != nil {
		cs := s.httpServer(s.ControlHandler())
		servers = append(servers, lifecycle.Listening{Name: "control", Server: lifecycle.HTTP(cs), Listener: limit(ls.Control, MaxControlConnections, controlTLS)})
		args = append(args, "control", ls.Control.Addr().String(), "control_tls", controlTLS != nil)
	}
	s.log.Info("serving the Open Inference Protocol", args...)
	return lifecycle.Serve(ctx, drainTimeout, s.log, servers...)
}

// limit bounds l to n connections at a time and, with cfg, serves TLS on
// it (the handshake happens in the HTTP server's connection goroutine,
// bounded by its header timeout).
func limit(l net.Listener, n int, cfg *tls.Config) net.Listener {
	l = netutil.LimitListener(l, n)
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	return l
}

// httpServer returns an HTTP server for h with the read and idle bounds.
// What net/http logs itself (refused TLS handshakes, bad requests from any
// client) goes to the agent's log at debug level, not to stderr.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// tlsError logs a certificate reload that failed (the previous
// certificate stays in use).
func (s *Server) tlsError(section string) func(error) {
	return func(err error) { s.log.Error(section+": certificate reload failed", "err", err) }
}
