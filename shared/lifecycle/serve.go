// Package lifecycle is the one shape every long-running Drover component
// has, and the one way its network servers are run and drained.
//
// A component is constructed with its config and dependencies and then run
// with Run(ctx) error, which returns when ctx is cancelled (after draining)
// or when the component fails. Group runs a program's components together
// and stops them in a stated order; a component that fails stops them all.
// Serve is that Run for a set of HTTP and gRPC servers: it serves each on
// its listener, and when ctx is done (or one of them fails) stops them all
// from accepting, lets requests in flight finish within a drain timeout, and
// only then returns.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
)

// Server is a network server Serve can run and drain: *http.Server through
// HTTP, *grpc.Server through GRPC.
type Server interface {
	// Serve accepts on l until Shutdown or Close; it returns nil after
	// either, an error otherwise.
	Serve(l net.Listener) error
	// Shutdown stops accepting and waits for requests in flight, or for
	// ctx; it returns ctx's error if they did not finish in time.
	Shutdown(ctx context.Context) error
	// Close stops at once, cutting requests in flight.
	Close()
}

// Listening is one server on one listener; Name prefixes its errors and
// log lines ("otlp grpc", "admin").
type Listening struct {
	Name     string
	Server   Server
	Listener net.Listener
}

// Serve runs every server on its listener until ctx is done or one of them
// fails, then drains all of them: they stop accepting, requests in flight
// get drainTimeout to finish, and what is left after that is cut. It
// returns only when every server has returned, with the first serve error
// (nil when ctx ended it). Serve owns the listeners: they are closed when it
// returns.
func Serve(ctx context.Context, drainTimeout time.Duration, log *slog.Logger, servers ...Listening) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if err := s.Server.Serve(s.Listener); err != nil {
				errc <- fmt.Errorf("%s: %w", s.Name, err)
				return
			}
			errc <- nil
		}()
	}
	var runErr error
	returned := 0
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		returned++
	}
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	done := make(chan struct{}, len(servers))
	for _, s := range servers {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := s.Server.Shutdown(dctx); err != nil {
				log.Warn("drain incomplete; closing connections", "server", s.Name, "err", err)
				s.Server.Close()
			}
		}()
	}
	for range servers {
		<-done
	}
	for ; returned < len(servers); returned++ {
		if err := <-errc; runErr == nil && ctx.Err() == nil {
			runErr = err
		}
	}
	return runErr
}

// HTTP adapts an *http.Server: http.ErrServerClosed after Shutdown is a
// clean return.
func HTTP(s *http.Server) Server { return httpServer{s} }

type httpServer struct{ s *http.Server }

func (h httpServer) Serve(l net.Listener) error {
	if err := h.s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
func (h httpServer) Shutdown(ctx context.Context) error { return h.s.Shutdown(ctx) }
func (h httpServer) Close()                             { _ = h.s.Close() }

// GRPC adapts a *grpc.Server: Shutdown is GracefulStop bounded by ctx, after
// which Close (Stop) cuts the remaining streams.
func GRPC(s *grpc.Server) Server { return grpcServer{s} }

type grpcServer struct{ s *grpc.Server }

func (g grpcServer) Serve(l net.Listener) error { return g.s.Serve(l) }
func (g grpcServer) Close()                     { g.s.Stop() }
func (g grpcServer) Shutdown(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() { g.s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		g.s.Stop()
		<-stopped
		return ctx.Err()
	}
}
