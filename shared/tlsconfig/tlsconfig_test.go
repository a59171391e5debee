package tlsconfig_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve accepts TLS connections on a loopback port, completing each
// handshake, until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// dial completes a handshake and a read and returns the server
// certificate's common name.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err != nil { // TLS 1.3: a refused client cert shows here
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestMutualTLSAndRotation(t *testing.T) {
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "server-1", tlstest.Localhost...)
	clientCert, clientKey := ca.Issue(t, "agent", "agent")
	var reloadErrs atomic.Int32
	srv, err := tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequire}.
		Config(func(error) { reloadErrs.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)

	withCert, err := tlsconfig.Client{CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := dial(addr, withCert); err != nil || cn != "server-1" {
		t.Fatalf("with a client certificate: %q, %v", cn, err)
	}
	noCert, err := tlsconfig.Client{CAFile: ca.File}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, noCert); err == nil {
		t.Fatal("a client without a certificate got through client_auth require")
	}
	other := tlstest.NewCA(t, "other")
	oc, ok := other.Issue(t, "intruder", "intruder")
	intruder, err := tlsconfig.Client{CAFile: ca.File, CertFile: oc, KeyFile: ok}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, intruder); err == nil {
		t.Fatal("a certificate from another CA got through")
	}
	if _, err := dial(addr, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("the system roots verified a test CA's certificate")
	}

	// A certificate rewritten on disk is served without a restart; a
	// broken one keeps the previous certificate.
	ca.Issue(t, "server-1", tlstest.Localhost...) // same files, new key
	if err := os.WriteFile(cert, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the broken certificate is reported", func() bool {
		_, _ = dial(addr, withCert) // a handshake looks at the files
		return reloadErrs.Load() > 0
	})
	if cn, err := dial(addr, withCert); err != nil || cn != "server-1" {
		t.Fatalf("after a broken rewrite: %q, %v (want the previous certificate)", cn, err)
	}
	// Rotation to a new name: written as "server-2" files, then moved over.
	c2, k2 := ca.Issue(t, "server-2", tlstest.Localhost...)
	if err := os.Rename(k2, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c2, cert); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the rotated certificate is served", func() bool {
		cn, err := dial(addr, withCert)
		return err == nil && cn == "server-2"
	})
}

func TestRequestAcceptsClientsWithoutCertificates(t *testing.T) {
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "server", tlstest.Localhost...)
	srv, err := tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequest}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	noCert, _ := tlsconfig.Client{CAFile: ca.File}.Config(nil)
	if _, err := dial(addr, noCert); err != nil {
		t.Fatalf("client_auth request refused a client without a certificate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "server", "localhost")
	bad := os.DevNull
	for _, tc := range []struct {
		s    tlsconfig.Server
		want string
	}{
		{tlsconfig.Server{CertFile: cert}, "cert_file and key_file"},
		{tlsconfig.Server{CertFile: cert, KeyFile: key, ClientAuth: "always"}, "client_auth"},
		{tlsconfig.Server{CertFile: cert, KeyFile: key, ClientAuth: "require"}, "client_ca_file: required"},
		{tlsconfig.Server{ClientCAFile: ca.File}, "client_ca_file: needs"},
		{tlsconfig.Server{CertFile: bad, KeyFile: key}, "cert_file:"},
		{tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: bad, ClientAuth: "require"}, "client_ca_file:"},
	} {
		err := tc.s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	if err := (tlsconfig.Server{}).Validate(); err != nil {
		t.Errorf("off: %v", err)
	}
	if c, err := (tlsconfig.Server{}).Config(nil); c != nil || err != nil {
		t.Errorf("off: %v, %v", c, err)
	}
	if err := (tlsconfig.Client{CAFile: bad}).Validate(); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("client with a bad CA: %v", err)
	}
	if err := (tlsconfig.Client{CertFile: cert}).Validate(); err == nil {
		t.Error("client cert without key accepted")
	}
}
