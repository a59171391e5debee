package serve

import (
	"context"
	"net/http"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic in a request handler is a bug, not a reason to stop serving
// every other request: it is recovered into 500 / Internal, logged with its
// stack, and counted (drover.agent.panics). The request's own deferred
// clean-up (its in-flight slot, its version reference) runs as the panic
// unwinds.

// maxLoggedPath bounds the request path written in the panic's log line.
const maxLoggedPath = 256

// panicked logs and counts a recovered panic.
func (s *Server) panicked(protocol, call string, p any) {
	if len(call) > maxLoggedPath {
		call = call[:maxLoggedPath] + "..."
	}
	s.log.Error("request handler panicked; answered as an internal error", "protocol", protocol, "call", call, "panic", p, "stack", string(debug.Stack()))
	s.tel.RecordPanic(protocol)
}

// recoverHTTP answers a panic in h with 500.
func (s *Server) recoverHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked with as is
				panic(p) // net/http's way to abort a response on purpose
			}
			s.panicked("rest", r.Method+" "+r.URL.Path, p)
			w.Header().Set("Connection", "close")
			writeError(w, errorf(http.StatusInternalServerError, codes.Internal, "internal error"))
		}()
		h.ServeHTTP(w, r)
	})
}

// recoverUnary answers a panic in a unary gRPC handler with Internal.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.panicked("grpc", info.FullMethod, p)
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

// recoverStream answers a panic in a streaming gRPC handler with Internal.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.panicked("grpc", info.FullMethod, p)
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}
