package serve

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

// tlsClient returns a client TLS configuration trusting ca, with the
// certificate certFile/keyFile when given.
func tlsClient(t *testing.T, ca, certFile, keyFile string) *tls.Config {
	t.Helper()
	c, err := tlsconfig.Client{CAFile: ca, CertFile: certFile, KeyFile: keyFile}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grpcLive calls ServerLive over TLS with cfg.
func grpcLive(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pb.NewGRPCInferenceServiceClient(conn).ServerLive(ctx, &pb.ServerLiveRequest{})
	return err
}

// TestTLSListeners serves REST, gRPC and control over TLS: a client that
// trusts the CA gets through on each (with serving.auth and the control
// token still required on top); a plain-text client does not. With
// client_auth require, a client without a certificate is refused at the
// handshake on every listener and one with a certificate of the client CA
// gets through.
func TestTLSListeners(t *testing.T) {
	ca := tlstest.NewCA(t, "servers")
	cert, key := ca.Issue(t, "agent", "127.0.0.1")
	clients := tlstest.NewCA(t, "clients")
	ccert, ckey := clients.Issue(t, "app")

	t.Run("server certificate", func(t *testing.T) {
		srv := tlsconfig.Server{CertFile: cert, KeyFile: key}
		r := runServer(t, Config{TLS: srv, Auth: AuthToken, TokensFile: writeTokensFile(t)}, Listeners{ControlTLS: srv}, true)
		r.client.Transport = &http.Transport{TLSClientConfig: tlsClient(t, ca.File, "", "")}
		if code, body := r.do(t, r.http, "GET", "/v2/health/live", ""); code != 200 {
			t.Fatalf("REST over TLS: %d %s", code, body)
		}
		if code, body := r.do(t, r.http, "POST", "/v2/models/lin/infer", ""); code != http.StatusUnauthorized {
			t.Fatalf("REST infer over TLS without a token: %d %s, want 401", code, body)
		}
		if code, body := r.do(t, r.http, "POST", "/v2/models/lin/infer", clientToken); code != http.StatusNotFound {
			t.Fatalf("REST infer over TLS with a client token: %d %s, want 404 (no such model)", code, body)
		}
		if code, body := r.do(t, r.control, "GET", "/v2/models/lin/status", ""); code != http.StatusUnauthorized {
			t.Fatalf("control over TLS without the token: %d %s, want 401", code, body)
		}
		if code, body := r.do(t, r.control, "GET", "/v2/models/lin/status", ctlToken); code != http.StatusNotFound {
			t.Fatalf("control over TLS with the token: %d %s, want 404 (no such model)", code, body)
		}
		if err := grpcLive(t, r.grpc, tlsClient(t, ca.File, "", "")); err != nil {
			t.Fatalf("gRPC over TLS: %v", err)
		}
		// A client that does not trust the CA is refused.
		plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
		defer plain.CloseIdleConnections()
		if resp, err := plain.Get(r.http + "/v2/health/live"); err == nil {
			resp.Body.Close()
			t.Fatal("a client without the CA got through")
		}
		// Plain HTTP to the TLS port is not served.
		if resp, err := plain.Get(strings.Replace(r.http, "https://", "http://", 1) + "/v2/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Fatal("plain HTTP was served on the TLS listener")
			}
		}
	})

	t.Run("client_auth require", func(t *testing.T) {
		srv := tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: clients.File, ClientAuth: tlsconfig.ClientAuthRequire}
		r := runServer(t, Config{TLS: srv}, Listeners{ControlTLS: srv}, true)
		noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsClient(t, ca.File, "", "")}}
		defer noCert.CloseIdleConnections()
		for _, base := range []string{r.http, r.control} {
			if resp, err := noCert.Get(base + "/v2/health/live"); err == nil {
				resp.Body.Close()
				t.Fatalf("%s: a client without a certificate got through: %d", base, resp.StatusCode)
			}
		}
		if err := grpcLive(t, r.grpc, tlsClient(t, ca.File, "", "")); err == nil {
			t.Fatal("gRPC: a client without a certificate got through")
		}
		r.client.Transport = &http.Transport{TLSClientConfig: tlsClient(t, ca.File, ccert, ckey)}
		if code, body := r.do(t, r.http, "GET", "/v2/health/live", ""); code != 200 {
			t.Fatalf("REST with a client certificate: %d %s", code, body)
		}
		if code, body := r.do(t, r.control, "GET", "/v2/models/lin/status", ctlToken); code != http.StatusNotFound {
			t.Fatalf("control with a client certificate and the token: %d %s, want 404 (no such model)", code, body)
		}
		if err := grpcLive(t, r.grpc, tlsClient(t, ca.File, ccert, ckey)); err != nil {
			t.Fatalf("gRPC with a client certificate: %v", err)
		}
	})
}
