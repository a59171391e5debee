package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
	"github.com/drover-ml/drover/shared/tlsconfig"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

// tlsCollector runs a collector whose receivers require client
// certificates of ca (otlp.tls client_auth require) and whose admin API
// serves TLS, verifying certificates when given (client_auth request):
// ops-reader is a reader there, ops-admin an admin. Both listeners serve
// the files of "collector-1", which the test may rotate.
type tlsCollector struct {
	*collector
	ca                    *tlstest.CA
	serverCert, serverKey string
}

func startTLSCollector(t *testing.T, db *testenv.DB) *tlsCollector {
	t.Helper()
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "collector-1", tlstest.Localhost...)
	cfg := testConfig(t, db.DSN, db.Name)
	cfg.OTLP.TLS = tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequire}
	cfg.Admin.TLS = tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequest}
	cfg.Admin.ClientCerts = map[string]auth.Role{"ops-reader": auth.Reader, "ops-admin": auth.Admin}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := runCollector(t, cfg, hooks{})
	t.Cleanup(c.stop)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, tlsconfig.Client{CAFile: ca.File})}}
	defer hc.CloseIdleConnections()
	testenv.EventuallyNil(t, time.Minute, "the collector to be ready over https", func() error {
		resp, err := hc.Get("https://" + c.adminAddr + "/readyz")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return unless(resp.StatusCode == http.StatusOK, fmt.Sprintf("%s: %s", resp.Status, b))
	})
	return &tlsCollector{collector: c, ca: ca, serverCert: cert, serverKey: key}
}

func clientTLS(t *testing.T, c tlsconfig.Client) *tls.Config {
	t.Helper()
	tc, err := c.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// sendAs exports one request count of model through the agent's
// telemetry package over protocol with tc as its TLS section (and no
// token), and returns the export's error.
func sendAs(t *testing.T, protocol, endpoint, model string, tc *tlsconfig.Client) error {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{Endpoint: endpoint, Protocol: protocol, Interval: time.Hour, Timeout: 5 * time.Second, TLS: tc},
		telemetry.ResourceInfo{AgentID: "agent-" + model, HostName: "host-tls", Version: "test"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	tel.RecordRequest(model, "1", "grpc", "ok", time.Millisecond)
	return tel.ForceFlush(ctx)
}

// requests is the number of requests of model stored.
func requests(t *testing.T, db *testenv.DB, model string) uint64 {
	t.Helper()
	return db.Count(t, fmt.Sprintf("SELECT count() FROM %s.metrics_sum WHERE model = '%s' AND metric = '%s'", db.Name, model, semconv.MetricRequests))
}

// TestMutualTLSEndToEnd: an agent sends with a client certificate and no
// token, over gRPC and HTTP, and its data is stored; without a
// certificate, or with one of another CA, the handshake is refused and
// nothing is stored.
func TestMutualTLSEndToEnd(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startTLSCollector(t, db)
	agentCert, agentKey := c.ca.Issue(t, "agent-7", "agent-7")
	other := tlstest.NewCA(t, "other")
	intruderCert, intruderKey := other.Issue(t, "agent-7", "agent-7")

	// Refused first: the writer stores in order, so once the accepted
	// requests sent after them are stored, the refused ones would be too.
	for name, tc := range map[string]tlsconfig.Client{
		"no certificate":         {CAFile: c.ca.File},
		"another CA's":           {CAFile: c.ca.File, CertFile: intruderCert, KeyFile: intruderKey},
		"collector not verified": {CertFile: agentCert, KeyFile: agentKey}, // the system's roots
	} {
		for _, p := range []struct{ protocol, addr, model string }{
			{telemetry.ProtocolGRPC, c.grpcAddr, "refused-grpc"}, {telemetry.ProtocolHTTP, c.httpAddr, "refused-http"},
		} {
			if err := sendAs(t, p.protocol, p.addr, p.model, &tc); err == nil {
				t.Errorf("%s over %s: accepted", name, p.protocol)
			}
		}
	}
	// Plain text is no way around it.
	plain, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: c.grpcAddr, Interval: time.Hour, Timeout: 5 * time.Second},
		telemetry.ResourceInfo{AgentID: "plain", HostName: "host-tls"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	plain.RecordRequest("refused-grpc", "1", "grpc", "ok", time.Millisecond)
	if err := plain.ForceFlush(context.Background()); err == nil {
		t.Error("a plain-text export reached a TLS receiver")
	}
	plain.Shutdown(context.Background())

	agent := &tlsconfig.Client{CAFile: c.ca.File, CertFile: agentCert, KeyFile: agentKey}
	if err := sendAs(t, telemetry.ProtocolGRPC, c.grpcAddr, "mtls-grpc", agent); err != nil {
		t.Fatalf("gRPC with the agent's certificate: %v", err)
	}
	if err := sendAs(t, telemetry.ProtocolHTTP, c.httpAddr, "mtls-http", agent); err != nil {
		t.Fatalf("HTTP with the agent's certificate: %v", err)
	}
	testenv.EventuallyNil(t, time.Minute, "the certificate-authenticated requests stored", func() error {
		g, h := requests(t, db, "mtls-grpc"), requests(t, db, "mtls-http")
		return unless(g > 0 && h > 0, fmt.Sprintf("grpc %d, http %d", g, h))
	})
	for _, m := range []string{"refused-grpc", "refused-http"} {
		if n := requests(t, db, m); n != 0 {
			t.Errorf("%d points of %s stored", n, m)
		}
	}
}

// ctlTLS runs a droverctl command (the CLI package the binary runs)
// against the TLS collector with the given global flags, returning its
// output and its printed error.
func ctlTLS(addr string, opts cli.Options, cmd func(*cli.App) error) (out, printed string, err error) {
	var o, e bytes.Buffer
	opts.Collector = "https://" + addr
	opts.Output = cli.OutputJSON
	app := &cli.App{Opts: opts, Out: &o, Err: &e, Getenv: func(string) string { return "" }}
	defer app.Close()
	if err = app.Validate(); err == nil {
		err = cmd(app)
	}
	cli.PrintError(&e, err)
	return o.String(), e.String(), err
}

// TestAdminAPIOverTLS: droverctl reaches the admin API with --tls-ca and
// a token, fails with a clear message without the CA, and with a client
// certificate that admin.client_certs names gets that role with no token
// (audited under the certificate's name); a certificate it does not name
// still needs a token.
func TestAdminAPIOverTLS(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startTLSCollector(t, db)
	ctx := context.Background()
	tok := adminToken(t, c.dataDir)
	models := func(a *cli.App) error { return a.Models(ctx) }

	if out, printed, err := ctlTLS(c.adminAddr, cli.Options{Token: tok, TLSCA: c.ca.File}, models); err != nil || !strings.HasPrefix(out, "[") {
		t.Fatalf("droverctl --tls-ca models: %v\n%s%s", err, out, printed)
	}
	_, printed, err := ctlTLS(c.adminAddr, cli.Options{Token: tok}, models)
	var ue *adminclient.UnreachableError
	if !errors.As(err, &ue) || cli.ExitCode(err) != cli.ExitError || !strings.Contains(printed, "certificate") || !strings.Contains(printed, "--tls-ca") {
		t.Errorf("droverctl without --tls-ca: exit %d, want 1 with the certificate problem and --tls-ca named:\n%s", cli.ExitCode(err), printed)
	}

	reader, readerKey := c.ca.Issue(t, "ops-reader", "ops-reader")
	admin, adminKey := c.ca.Issue(t, "ops-admin", "ops-admin")
	unnamed, unnamedKey := c.ca.Issue(t, "ops-unnamed", "ops-unnamed")
	if out, printed, err := ctlTLS(c.adminAddr, cli.Options{TLSCA: c.ca.File, TLSCert: reader, TLSKey: readerKey}, models); err != nil || !strings.HasPrefix(out, "[") {
		t.Fatalf("droverctl models with the reader certificate and no token: %v\n%s%s", err, out, printed)
	}
	create := func(name string) func(*cli.App) error {
		return func(a *cli.App) error { return a.TokenCreate(ctx, name, "reader") }
	}
	_, printed, err = ctlTLS(c.adminAddr, cli.Options{TLSCA: c.ca.File, TLSCert: reader, TLSKey: readerKey}, create("by-reader"))
	if cli.ExitCode(err) != cli.ExitDenied || !strings.Contains(printed, `"cert:ops-reader" has role reader`) {
		t.Errorf("token create with the reader certificate: exit %d, want %d (403):\n%s", cli.ExitCode(err), cli.ExitDenied, printed)
	}
	_, printed, err = ctlTLS(c.adminAddr, cli.Options{TLSCA: c.ca.File, TLSCert: unnamed, TLSKey: unnamedKey}, models)
	var ae *adminclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("a certificate admin.client_certs does not name, no token: %v, want 401\n%s", err, printed)
	}
	// A token decides when one is sent, certificate or not.
	if out, printed, err := ctlTLS(c.adminAddr, cli.Options{Token: tok, TLSCA: c.ca.File, TLSCert: reader, TLSKey: readerKey}, create("by-token")); err != nil {
		t.Errorf("token create with an admin token over the reader certificate: %v\n%s%s", err, out, printed)
	}
	if out, printed, err := ctlTLS(c.adminAddr, cli.Options{TLSCA: c.ca.File, TLSCert: admin, TLSKey: adminKey}, create("by-cert")); err != nil {
		t.Fatalf("token create with the admin certificate: %v\n%s%s", err, out, printed)
	}
	testenv.EventuallyNil(t, time.Minute, "the audit entries under the certificates' names", func() error {
		created := db.Count(t, fmt.Sprintf(`SELECT count() FROM %s.audit_log WHERE token_name = 'cert:ops-admin' AND role = 'admin'
			AND action = 'POST /v1/tokens' AND target = 'by-cert' AND result = 'ok'`, db.Name))
		denied := db.Count(t, fmt.Sprintf(`SELECT count() FROM %s.audit_log WHERE token_name = 'cert:ops-reader' AND result = 'denied'`, db.Name))
		return unless(created == 1 && denied >= 1, fmt.Sprintf("created %d, denied %d", created, denied))
	})
}

// servedName is the common name of the certificate addr serves.
func servedName(addr string, tc *tls.Config) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestCertificateRotation: certificate files replaced on disk are served
// by both listeners without a restart, and agents keep sending.
func TestCertificateRotation(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startTLSCollector(t, db)
	agentCert, agentKey := c.ca.Issue(t, "agent-7", "agent-7")
	agent := &tlsconfig.Client{CAFile: c.ca.File, CertFile: agentCert, KeyFile: agentKey}
	tc := clientTLS(t, *agent)
	tc.NextProtos = []string{"h2"} // what gRPC clients offer
	for _, addr := range []string{c.grpcAddr, c.httpAddr, c.adminAddr} {
		if cn, err := servedName(addr, tc); err != nil || cn != "collector-1" {
			t.Fatalf("%s serves %q (%v), want collector-1", addr, cn, err)
		}
	}
	// The new certificate is written aside, then moved over the served
	// files (key first: a reload between the two renames fails and keeps
	// the previous pair, the next one loads both).
	cert2, key2 := c.ca.Issue(t, "collector-2", tlstest.Localhost...)
	if err := os.Rename(key2, c.serverKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cert2, c.serverCert); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{c.grpcAddr, c.httpAddr, c.adminAddr} {
		testenv.EventuallyNil(t, 30*time.Second, addr+" serves the rotated certificate", func() error {
			cn, err := servedName(addr, tc)
			if err != nil {
				return err
			}
			return unless(cn == "collector-2", "serves "+cn)
		})
	}
	if err := sendAs(t, telemetry.ProtocolGRPC, c.grpcAddr, "after-rotation", agent); err != nil {
		t.Fatalf("export after the rotation: %v", err)
	}
	testenv.EventuallyNil(t, time.Minute, "the export after the rotation stored", func() error {
		return unless(requests(t, db, "after-rotation") > 0, "not yet")
	})
}

// TestCommitForwardedOverMutualTLS: two collectors whose admin APIs
// require client certificates. A publisher that authenticates with its
// certificate alone publishes one model through both; the node that does
// not own the model forwards its commit over https with its own client
// certificate (admin.client_tls), which the owner maps to publisher.
func TestCommitForwardedOverMutualTLS(t *testing.T) {
	db := testenv.ClickHouse(t)
	ca := tlstest.NewCA(t, "drover")
	cert, key := ca.Issue(t, "collector", tlstest.Localhost...)
	nodeCert, nodeKey := ca.Issue(t, "collector-node", "collector-node")
	ciCert, ciKey := ca.Issue(t, "ci", "ci")
	opsCert, opsKey := ca.Issue(t, "ops", "ops")
	logs := &testenv.Buffer{}
	blobs := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "blobs"))
	gossipKey := gossipKeyFile(t)
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, KeyFile: gossipKey}
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = blobs, true
		cfg.Admin.TLS = tlsconfig.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca.File, ClientAuth: tlsconfig.ClientAuthRequire}
		cfg.Admin.ClientTLS = tlsconfig.Client{CAFile: ca.File, CertFile: nodeCert, KeyFile: nodeKey}
		cfg.Admin.ClientCerts = map[string]auth.Role{"collector-node": auth.Publisher, "ci": auth.Publisher, "ops": auth.Admin}
		return cfg
	}
	client := func(addr, cert, key string) *adminclient.Client {
		c, err := adminclient.NewClient(adminclient.Config{URLs: []string{"https://" + addr}, CAFile: ca.File, CertFile: cert, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	fast := hooks{ring: func(rc *ring.Config) {
		l := ring.LoopbackConfig(rc.NodeName)
		rc.ProbeInterval, rc.ProbeTimeout, rc.GossipInterval, rc.LeaveTimeout = l.ProbeInterval, l.ProbeTimeout, l.GossipInterval, l.LeaveTimeout
	}}
	ctx := context.Background()
	start := func(cfg Config) (string, *adminclient.Client) {
		ls := Listeners{OTLPGRPC: listen(t), OTLPHTTP: listen(t), Admin: listen(t)}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(rctx, cfg, ls, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), fast)
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("collector %s: %v", cfg.Cluster.NodeName, err)
			}
		})
		addr := ls.Admin.Addr().String()
		ops := client(addr, opsCert, opsKey)
		testenv.EventuallyNil(t, time.Minute, cfg.Cluster.NodeName+" ready over mTLS", func() error { return ops.Ready(ctx) })
		return addr, ops
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector logs:\n%s", logs.String())
		}
	})
	aAddr, aOps := start(nodeConfig("tls-a"))
	view, _, err := aOps.Cluster(ctx)
	if err != nil || len(view.Members) != 1 {
		t.Fatalf("view of a: %+v, %v", view, err)
	}
	bAddr, bOps := start(nodeConfig("tls-b", view.Members[0].Addr))
	testenv.EventuallyNil(t, time.Minute, "both nodes to see each other's admin address", func() error {
		for _, ops := range []*adminclient.Client{aOps, bOps} {
			v, _, err := ops.Cluster(ctx)
			if err != nil {
				return err
			}
			if len(v.Members) != 2 || v.Members[0].Admin == "" || v.Members[1].Admin == "" {
				return fmt.Errorf("members %+v", v.Members)
			}
		}
		return nil
	})

	const model = "mtls"
	var versions []uint64
	for i, addr := range []string{aAddr, bAddr} {
		dir := filepath.Join(t.TempDir(), "v")
		m, err := testmodels.Linear("X", "Y", [][]float32{{1, float32(i)}, {2, 3}}, []float32{float32(i), 0})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), m, 0o644); err != nil {
			t.Fatal(err)
		}
		res, _, err := client(addr, ciCert, ciKey).Publish(ctx, model, dir, adminclient.PublishOptions{Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("publish through %s with the ci certificate: %v", addr, err)
		}
		versions = append(versions, res.Version)
	}
	if slices.Sort(versions); !slices.Equal(versions, []uint64{1, 2}) {
		t.Errorf("versions %v, want 1 and 2", versions)
	}
	if fw := strings.Count(logs.String(), "commit forwarded to the owner"); fw != 1 {
		t.Errorf("%d commits forwarded, want 1 (the one the other collector received)", fw)
	}
}
