package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// verified is the TLS state of a connection whose client certificate
// named cn was verified (verifiedChain false: received, not verified).
func verified(cn string, verifiedChain bool) *tls.ConnectionState {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	if verifiedChain {
		cs.VerifiedChains = [][]*x509.Certificate{{c}}
	}
	return cs
}

// TestCertificateRule: the rule of certificate.go on the admin API's
// middleware: a token decides when one is sent; else a verified
// certificate that the map names is its role; else a token is required.
func TestCertificateRule(t *testing.T) {
	_, a, admin := bootstrapped(t)
	roles := CertificateMap(map[string]Role{"ops": Reader, "root": Admin})
	var seen Principal
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
		w.Write([]byte("done"))
	})
	for name, tc := range map[string]struct {
		access   Access
		method   string
		tls      *tls.ConnectionState
		header   string
		status   int
		who      Principal
		errorHas string
	}{
		"mapped certificate reads":           {Allow(Reader), "GET", verified("ops", true), "", 200, Principal{Name: "cert:ops", Role: Reader}, ""},
		"mapped certificate, too weak":       {Allow(Admin), "POST", verified("ops", true), "", 403, Principal{}, `has role reader; POST /x needs admin`},
		"admin certificate writes":           {Allow(Admin), "POST", verified("root", true), "", 200, Principal{Name: "cert:root", Role: Admin}, ""},
		"token decides over a certificate":   {Allow(Admin), "POST", verified("ops", true), "Bearer " + admin, 200, Principal{Name: "", Role: Admin}, ""},
		"bad token over a good certificate":  {Allow(Reader), "GET", verified("root", true), "Bearer drover_guess", 401, Principal{}, "unknown token"},
		"unmapped certificate needs a token": {Allow(Reader), "GET", verified("stranger", true), "", 401, Principal{}, "no token"},
		"unverified certificate is nobody":   {Allow(Reader), "GET", verified("root", false), "", 401, Principal{}, "no token"},
		"empty common name is nobody":        {Allow(Reader), "GET", verified("", true), "", 401, Principal{}, "no token"},
		"no TLS":                             {Allow(Reader), "GET", nil, "", 401, Principal{}, "no token"},
	} {
		t.Run(name, func(t *testing.T) {
			seen = Principal{}
			req := httptest.NewRequest(tc.method, "/x", nil)
			req.TLS = tc.tls
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			a.RequireOrCertificate(tc.access, roles, h).ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.errorHas) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.errorHas)
			}
			if tc.status == 200 && (seen.Role != tc.who.Role || (tc.who.Name != "" && seen.Name != tc.who.Name)) {
				t.Errorf("handler saw %+v, want %+v", seen, tc.who)
			}
		})
	}
}

// TestGateTakesCertificatesBeforeTokens: the OTLP receivers' gate lets a
// certificate through while no Authenticator exists yet (certificates
// need no token store), and answers token requests 503 meanwhile.
func TestGateTakesCertificatesBeforeTokens(t *testing.T) {
	g := NewGate(func() *Authenticator { return nil })
	h := g.RequireDataOrCertificate(Allow(Agent), AnyCertificate(Agent), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		w.Write([]byte(p.Name))
	}))
	for name, tc := range map[string]struct {
		tls    *tls.ConnectionState
		status int
		body   string
	}{
		"certificate": {verified("agent-7", true), 200, "cert:agent-7"},
		"token only":  {nil, 503, "cannot check tokens yet"},
	} {
		req := httptest.NewRequest("POST", "/v1/metrics", nil)
		req.TLS = tc.tls
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s: %d %s, want %d %q", name, rec.Code, rec.Body, tc.status, tc.body)
		}
	}

	// gRPC: the same through the interceptors.
	unary, _ := g.certInterceptors(Allow(Agent), AnyCertificate(Agent))
	handler := func(ctx context.Context, _ any) (any, error) {
		p, _ := FromContext(ctx)
		return p.Name, nil
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"}
	withPeer := func(cs *tls.ConnectionState) context.Context {
		p := &peer.Peer{}
		if cs != nil {
			p.AuthInfo = credentials.TLSInfo{State: *cs}
		}
		return peer.NewContext(context.Background(), p)
	}
	if got, err := unary(withPeer(verified("agent-7", true)), nil, info, handler); err != nil || got != "cert:agent-7" {
		t.Errorf("gRPC with a certificate: %v, %v", got, err)
	}
	if _, err := unary(withPeer(verified("agent-7", false)), nil, info, handler); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC with an unverified certificate: %v, want Unavailable (the token path)", err)
	}
	tokenCtx := metadata.NewIncomingContext(withPeer(verified("agent-7", true)), metadata.Pairs("authorization", "Bearer x"))
	if _, err := unary(tokenCtx, nil, info, handler); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC with a token over a certificate: %v, want Unavailable (the token decides)", err)
	}
	weak, _ := g.certInterceptors(Allow(Admin), AnyCertificate(Agent))
	if _, err := weak(withPeer(verified("agent-7", true)), nil, info, handler); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC with an agent certificate on an admin method: %v, want PermissionDenied", err)
	}
}
