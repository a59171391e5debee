package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves REST on httpL and gRPC on grpcL until ctx is cancelled, then
// drains: both stop accepting, in-flight requests finish (bounded by
// drainTimeout), then Run returns. extra, if not nil, wraps the REST
// handler (e.g. to add /metrics).
func (s *Server) Run(ctx context.Context, httpL, grpcL net.Listener, drainTimeout time.Duration, extra func(http.Handler) http.Handler) error {
	h := s.Handler()
	if extra != nil {
		h = extra(h)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	gs := s.NewGRPCServer()
	errc := make(chan error, 2)
	go func() {
		if err := hs.Serve(httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := gs.Serve(grpcL); err != nil {
			errc <- fmt.Errorf("grpc: %w", err)
			return
		}
		errc <- nil
	}()
	s.log.Info("serving the Open Inference Protocol", "http", httpL.Addr().String(), "grpc", grpcL.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	if err := hs.Shutdown(dctx); err != nil {
		s.log.Warn("http drain incomplete", "err", err)
		hs.Close()
	}
	select {
	case <-stopped:
	case <-dctx.Done():
		s.log.Warn("grpc drain incomplete; closing connections")
		gs.Stop()
		<-stopped
	}
	if runErr == nil {
		<-errc
		<-errc
	}
	return runErr
}
