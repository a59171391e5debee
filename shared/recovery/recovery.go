// Package recovery keeps one request's panic from ending the process: an
// HTTP middleware and gRPC interceptors (go-grpc-middleware's recovery)
// that turn a panic in a handler into an internal-error answer and report
// it (log line with the stack, a metric) through one callback. The
// request's own deferred clean-up runs as the panic unwinds.
package recovery

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"

	grpcrecovery "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Protocols, as OnPanic receives them.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// OnPanic is told about each recovered panic: the protocol, the call (the
// HTTP method and path, or the gRPC method), the value and the stack.
type OnPanic func(protocol, call string, value any, stack []byte)

// maxCall bounds the call as reported (a path is the client's text).
const maxCall = 256

func bounded(call string) string {
	if len(call) > maxCall {
		return call[:maxCall] + "..."
	}
	return call
}

// Logged returns an OnPanic that logs each panic at error level with its
// stack and then calls count (a metric), if not nil.
func Logged(log *slog.Logger, count func(protocol string)) OnPanic {
	return func(protocol, call string, value any, stack []byte) {
		log.Error("request handler panicked; answered as an internal error", "protocol", protocol, "call", call, "panic", value, "stack", string(stack))
		if count != nil {
			count(protocol)
		}
	}
}

// HTTP answers a panic in h by calling answer (nil: a plain 500) on a
// connection marked to close, after telling on. http.ErrAbortHandler, the
// way to abort a response on purpose, passes through.
func HTTP(h http.Handler, on OnPanic, answer func(http.ResponseWriter)) http.Handler {
	if answer == nil {
		answer = func(w http.ResponseWriter) { http.Error(w, "internal error", http.StatusInternalServerError) }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked with as is
				panic(p)
			}
			on(ProtocolHTTP, bounded(r.Method+" "+r.URL.Path), p, debug.Stack())
			w.Header().Set("Connection", "close")
			answer(w)
		}()
		h.ServeHTTP(w, r)
	})
}

// GRPC returns the server options that answer a panic in a unary or
// streaming handler with codes.Internal, after telling on. Put them
// before other interceptors, so a panic in those is caught too.
func GRPC(on OnPanic) []grpc.ServerOption {
	handler := grpcrecovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		on(ProtocolGRPC, bounded(method), p, debug.Stack())
		return status.Error(codes.Internal, "internal error")
	})
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcrecovery.UnaryServerInterceptor(handler)),
		grpc.ChainStreamInterceptor(grpcrecovery.StreamServerInterceptor(handler)),
	}
}
