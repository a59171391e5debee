package auth

import (
	"context"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Gate authenticates through an Authenticator that may exist only later:
// a collector's first start bootstraps its tokens once the schema is
// applied, while its listeners already accept connections. Until the
// Authenticator is there, every request that needs a token is answered
// Unavailable (gRPC) or 503 (HTTP), which OTLP exporters retry; none is let
// through.
type Gate struct {
	get func() *Authenticator
}

// NewGate returns a Gate that asks get for the Authenticator on every
// request (nil: not yet).
func NewGate(get func() *Authenticator) *Gate { return &Gate{get: get} }

const notYet = "the collector cannot check tokens yet (its token store is not read yet); retry"

// UnaryInterceptor is Authenticator.UnaryInterceptor through the gate.
func (g *Gate) UnaryInterceptor(access Access) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		a := g.get()
		if a == nil {
			return nil, status.Error(codes.Unavailable, notYet)
		}
		return a.UnaryInterceptor(access)(ctx, req, info, handler)
	}
}

// StreamInterceptor is Authenticator.StreamInterceptor through the gate.
func (g *Gate) StreamInterceptor(access Access) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		a := g.get()
		if a == nil {
			return status.Error(codes.Unavailable, notYet)
		}
		return a.StreamInterceptor(access)(srv, ss, info, handler)
	}
}

// RequireData is Authenticator.RequireData through the gate.
func (g *Gate) RequireData(access Access, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := g.get()
		if a == nil {
			w.Header().Set("Retry-After", "5")
			WriteError(w, http.StatusServiceUnavailable, notYet)
			return
		}
		a.RequireData(access, h).ServeHTTP(w, r)
	})
}

// GRPCOptions returns the server options that require access on every
// unary and streaming call through the gate.
func (g *Gate) GRPCOptions(access Access) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.UnaryInterceptor(access)),
		grpc.ChainStreamInterceptor(g.StreamInterceptor(access)),
	}
}
