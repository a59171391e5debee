package auth

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// UnaryInterceptor returns a gRPC unary server interceptor that lets a call
// through only with an "authorization: Bearer <token>" metadata entry
// (what the OTel Collector's bearertokenauth and the OTLP exporters' headers
// send) whose role access permits: codes.Unauthenticated without a valid
// token, codes.PermissionDenied for another role. Denials are audited
// (rate-limited), accepted calls are not (they are data, not state
// changes). The handler's context carries the Principal (FromContext).
func (a *Authenticator) UnaryInterceptor(access Access) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorizeGRPC(ctx, access, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for streaming calls.
func (a *Authenticator) StreamInterceptor(access Access) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorizeGRPC(ss.Context(), access, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

func (a *Authenticator) authorizeGRPC(ctx context.Context, access Access, method string) (context.Context, error) {
	if access.IsPublic() {
		return ctx, nil
	}
	var remote string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	var p Principal
	var err error
	if a.cfg.Disabled {
		p = DisabledPrincipal
	} else {
		md, _ := metadata.FromIncomingContext(ctx)
		switch vals := md.Get("authorization"); len(vals) {
		case 0:
			err = ErrNoToken
		case 1:
			var tok string
			if tok, err = ParseBearer(vals[0]); err == nil {
				p, err = a.check(tok)
			}
		default:
			err = ErrMalformed
		}
	}
	if err != nil {
		a.Deny(ctx, Entry{Token: p.Name, Action: method, Target: method, Remote: remote, Detail: "Unauthenticated: " + err.Error()})
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if !access.Permits(p.Role) {
		msg := fmt.Sprintf("token %q has role %s; %s needs %s", p.Name, p.Role, method, access)
		a.Deny(ctx, Entry{Token: p.Name, Role: p.Role, Action: method, Target: method, Remote: remote, Detail: "PermissionDenied: " + msg})
		return nil, status.Error(codes.PermissionDenied, msg)
	}
	return WithPrincipal(ctx, p), nil
}
