package serve

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/drover-ml/drover/shared/lifecycle"
)

// Run serves REST on httpL and gRPC on grpcL until ctx is cancelled or one
// of them fails, then drains both with lifecycle.Serve: they stop
// accepting, in-flight requests finish (bounded by drainTimeout; what is
// left then is cut), and only then does Run return. It owns the listeners.
// extra, if not nil, wraps the REST handler (e.g. to add /metrics).
func (s *Server) Run(ctx context.Context, httpL, grpcL net.Listener, drainTimeout time.Duration, extra func(http.Handler) http.Handler) error {
	h := s.Handler()
	if extra != nil {
		h = s.recoverHTTP(extra(h))
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.log.Info("serving the Open Inference Protocol", "http", httpL.Addr().String(), "grpc", grpcL.Addr().String())
	return lifecycle.Serve(ctx, drainTimeout, s.log,
		lifecycle.Listening{Name: "http", Server: lifecycle.HTTP(hs), Listener: httpL},
		lifecycle.Listening{Name: "grpc", Server: lifecycle.GRPC(s.NewGRPCServer()), Listener: grpcL},
	)
}
