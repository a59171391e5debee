package auth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Client certificates as identities (docs/collector.md, "TLS").
//
// A listener whose TLS verifies client certificates against a CA
// (tlsconfig.Server with client_auth request or require) may take a
// verified certificate instead of a token. The rule, the same on every
// listener:
//
//   - a request that carries an Authorization header is judged by its
//     token alone, certificate or not (what a client sends is what it is
//     judged by: an invalid token is 401 even over a good certificate);
//   - otherwise, a request over a connection whose client certificate was
//     verified, and whose subject common name CertRoles maps to a role, is
//     the Principal "cert:<CN>" with that role;
//   - otherwise the token is required, as without TLS.
//
// Only verified chains count (tls.ConnectionState.VerifiedChains): a
// certificate the server merely received is no identity.

// CertPrefix starts the name of a Principal authenticated by a client
// certificate ("cert:agent-17"), so audit entries never confuse it with a
// token of the same name.
const CertPrefix = "cert:"

// CertRoles maps the subject common name of a verified client certificate
// to the role its requests get; ok false: the certificate is no identity
// here (its requests need a token). Nil maps nothing.
type CertRoles func(commonName string) (Role, bool)

// AnyCertificate gives every verified client certificate role r: what the
// OTLP receivers do (any certificate of otlp.tls.client_ca_file is an
// agent).
func AnyCertificate(r Role) CertRoles {
	return func(string) (Role, bool) { return r, true }
}

// CertificateMap gives the certificates whose common names m lists their
// role, and none to the others (admin.client_certs).
func CertificateMap(m map[string]Role) CertRoles {
	if len(m) == 0 {
		return nil
	}
	return func(cn string) (Role, bool) {
		r, ok := m[cn]
		return r, ok
	}
}

// CertificatePrincipal returns the Principal of a connection's verified
// client certificate: named CertPrefix + its subject common name, with the
// role roles gives it. ok is false without TLS, without a verified
// certificate, with an empty common name, or when roles maps none.
func CertificatePrincipal(cs *tls.ConnectionState, roles CertRoles) (Principal, bool) {
	if cs == nil || roles == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Principal{}, false
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return Principal{}, false
	}
	r, ok := roles(cn)
	if !ok {
		return Principal{}, false
	}
	return Principal{Name: CertPrefix + cn, Role: r}, true
}

// httpCertificate is the certificate Principal of r, unless r carries a
// token.
func httpCertificate(r *http.Request, roles CertRoles) (Principal, bool) {
	if len(r.Header.Values("Authorization")) > 0 {
		return Principal{}, false
	}
	return CertificatePrincipal(r.TLS, roles)
}

// grpcCertificate is the certificate Principal of a call, unless it
// carries a token.
func grpcCertificate(ctx context.Context, roles CertRoles) (Principal, string, bool) {
	var remote string
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Principal{}, "", false
	}
	if p.Addr != nil {
		remote = p.Addr.String()
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("authorization")) > 0 {
		return Principal{}, remote, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Principal{}, remote, false
	}
	pr, ok := CertificatePrincipal(&info.State, roles)
	return pr, remote, ok
}

// RequireOrCertificate is Require, except that a request without a token
// over a verified client certificate that roles maps is authenticated as
// that certificate (see the rule above): 403 (audited) when its role is
// not permitted, else it reaches h carrying its Principal, and a request
// that changes state is audited as Require audits it. Nil roles is
// Require.
func (a *Authenticator) RequireOrCertificate(access Access, roles CertRoles, h http.Handler) http.Handler {
	tokens := a.Require(access, h)
	if roles == nil || access.IsPublic() {
		return tokens
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := httpCertificate(r, roles)
		if !ok {
			tokens.ServeHTTP(w, r)
			return
		}
		if !a.permitted(w, r, access, p) {
			return
		}
		a.serveAs(w, r, h, p, true)
	})
}

// permitted answers 403 (and audits the denial, when a is not nil) for a
// certificate Principal whose role access does not permit.
func (a *Authenticator) permitted(w http.ResponseWriter, r *http.Request, access Access, p Principal) bool {
	if access.Permits(p.Role) {
		return true
	}
	msg := fmt.Sprintf("client certificate %q has role %s; %s needs %s", p.Name, p.Role, action(r), access)
	if a != nil {
		a.Deny(r.Context(), Entry{Token: p.Name, Role: p.Role, Action: action(r), Target: r.URL.Path,
			Remote: r.RemoteAddr, Detail: "403: " + msg})
	}
	WriteError(w, http.StatusForbidden, msg)
	return false
}

// RequireDataOrCertificate is RequireData through the gate, except that a
// request without a token over a verified client certificate that roles
// maps is let through as that certificate (see the rule above) without
// waiting for the Authenticator: certificates need no token store.
func (g *Gate) RequireDataOrCertificate(access Access, roles CertRoles, h http.Handler) http.Handler {
	tokens := g.RequireData(access, h)
	if roles == nil || access.IsPublic() {
		return tokens
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := httpCertificate(r, roles)
		if !ok {
			tokens.ServeHTTP(w, r)
			return
		}
		if !g.get().permitted(w, r, access, p) {
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// GRPCOptionsOrCertificate is GRPCOptions, except that a call without an
// authorization entry over a verified client certificate that roles maps
// is let through as that certificate (PermissionDenied, audited, when its
// role is not permitted). Nil roles is GRPCOptions.
func (g *Gate) GRPCOptionsOrCertificate(access Access, roles CertRoles) []grpc.ServerOption {
	if roles == nil || access.IsPublic() {
		return g.GRPCOptions(access)
	}
	unary, stream := g.certInterceptors(access, roles)
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

// certInterceptors are the interceptors of GRPCOptionsOrCertificate:
// authorize decides certificate calls, the gate's token interceptors the
// others.
func (g *Gate) certInterceptors(access Access, roles CertRoles) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	// authorize returns the context of an accepted certificate call, or
	// nil with the error when the certificate does not decide.
	authorize := func(ctx context.Context, method string) (context.Context, bool, error) {
		p, remote, ok := grpcCertificate(ctx, roles)
		if !ok {
			return nil, false, nil
		}
		if !access.Permits(p.Role) {
			msg := fmt.Sprintf("client certificate %q has role %s; %s needs %s", p.Name, p.Role, method, access)
			if a := g.get(); a != nil {
				a.Deny(ctx, Entry{Token: p.Name, Role: p.Role, Action: method, Target: method, Remote: remote, Detail: "PermissionDenied: " + msg})
			}
			return nil, true, status.Error(codes.PermissionDenied, msg)
		}
		return WithPrincipal(ctx, p), true, nil
	}
	tokenUnary, tokenStream := g.UnaryInterceptor(access), g.StreamInterceptor(access)
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		cctx, decided, err := authorize(ctx, info.FullMethod)
		switch {
		case err != nil:
			return nil, err
		case decided:
			return handler(cctx, req)
		}
		return tokenUnary(ctx, req, info, handler)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		cctx, decided, err := authorize(ss.Context(), info.FullMethod)
		switch {
		case err != nil:
			return err
		case decided:
			return handler(srv, &principalStream{ServerStream: ss, ctx: cctx})
		}
		return tokenStream(srv, ss, info, handler)
	}
	return unary, stream
}
