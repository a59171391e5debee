package serve

import (
	"bytes"
	"context"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/agent/versions"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/tokens"
)

// The tokens of the route tests' tokens_file.
const (
	clientToken = "client-token-for-tests"
	readerToken = "reader-token-for-tests"
	ctlToken    = "control-token-for-tests"
)

// writeTokensFile writes a tokens_file with a client and a reader token.
func writeTokensFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	body := fmt.Sprintf("- {name: app, role: client, sha256: %s}\n- {name: dash, role: reader, sha256: %s}\n",
		tokens.Hash(clientToken), tokens.Hash(readerToken))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// running is a Server run by Run on loopback listeners until the test ends.
type running struct {
	s                   *Server
	http, control, grpc string // base URLs and the gRPC address
	client              *http.Client
}

// runServer runs a Server with cfg (auth token against a fresh
// tokens_file unless cfg says otherwise) on an empty model set.
func runServer(t *testing.T, cfg Config, ls Listeners, clientTLS bool) *running {
	t.Helper()
	set, err := versions.New(versions.Config{Backend: &runtime.ONNX{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	var opts []Option
	if cfg.Auth == AuthToken {
		f, err := cfg.OpenClientTokens(nil)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, WithClientTokens(f))
	}
	opts = append(opts, WithControlToken(ctlToken), WithMetrics(http.NotFoundHandler()))
	s := New(cfg, set, nil, slog.New(slog.DiscardHandler), opts...)
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if ls.HTTP == nil {
		ls.HTTP = listen()
	}
	ls.GRPC, ls.Control = listen(), listen()
	scheme := "http://"
	if clientTLS {
		scheme = "https://"
	}
	r := &running{
		s: s, http: scheme + ls.HTTP.Addr().String(), control: scheme + ls.Control.Addr().String(),
		grpc: ls.GRPC.Addr().String(), client: &http.Client{Timeout: 10 * time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ls, 5*time.Second) }()
	t.Cleanup(func() {
		r.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// do sends a request and returns its status and body; a transport error
// fails the test.
func (r *running) do(t *testing.T, base, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// concrete turns a pattern into a request: {model} is "lin", {version} 1,
// and the catch-all "/" a path no route has.
func concrete(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", "/no/such/route"
	}
	path = strings.NewReplacer("{model}", "lin", "{version}", "1").Replace(path)
	return method, path
}

// checkTable fails on a registered route without an entry or an entry
// without a registered route.
func checkTable(t *testing.T, what string, table map[string]Access, registered []string) {
	t.Helper()
	if len(registered) == 0 {
		t.Fatalf("%s: no routes registered", what)
	}
	for _, p := range registered {
		if _, ok := table[p]; !ok {
			t.Errorf("%s: %q is served without an entry in the access table", what, p)
		}
	}
	for p := range table {
		if !slices.Contains(registered, p) {
			t.Errorf("%s: the access table's %q names no registered route (registered: %v)", what, p, registered)
		}
	}
}

// grpcCalls calls each method of the inference service.
var grpcCalls = map[string]func(ctx context.Context, c pb.GRPCInferenceServiceClient) error{
	pb.GRPCInferenceService_ServerLive_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ServerLive(ctx, &pb.ServerLiveRequest{})
		return err
	},
	pb.GRPCInferenceService_ServerReady_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ServerReady(ctx, &pb.ServerReadyRequest{})
		return err
	},
	pb.GRPCInferenceService_ModelReady_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "lin"})
		return err
	},
	pb.GRPCInferenceService_ServerMetadata_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
		return err
	},
	pb.GRPCInferenceService_ModelMetadata_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "lin"})
		return err
	},
	pb.GRPCInferenceService_ModelInfer_FullMethodName: func(ctx context.Context, c pb.GRPCInferenceServiceClient) error {
		_, err := c.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "lin"})
		return err
	},
}

// TestRouteTable takes the routes from a running server (the REST patterns
// of its public and control muxes, the methods of its gRPC server) and
// checks them against the access tables both ways; then it sends a request
// to every route: with serving.auth token, every inference and feedback
// route (REST and gRPC) refuses a request without a client token (401) and
// one with a token of another role (403); every control route refuses a
// request without the control token or with a wrong one (401); the control
// routes' old places on the public port answer 404; open routes open.
func TestRouteTable(t *testing.T) {
	r := runServer(t, Config{Auth: AuthToken, TokensFile: writeTokensFile(t)}, Listeners{}, false)
	// The server has served once it answers: its routes are registered.
	if code, _ := r.do(t, r.http, "GET", "/v2/health/live", ""); code != 200 {
		t.Fatalf("live: %d", code)
	}
	routes := r.s.Routes()
	checkTable(t, "public", PublicRoutes, routes.Public)
	checkTable(t, "control", ControlRoutes, routes.Control)
	checkTable(t, "gRPC", GRPCMethods, routes.GRPC)
	for _, p := range []string{"POST /v2/models/{model}/infer", "POST /v2/models/{model}/feedback", "GET /metrics", patternPin} {
		if !slices.Contains(routes.Public, p) {
			t.Errorf("public: %s is not registered: %v", p, routes.Public)
		}
	}
	for _, p := range []string{patternPin, patternCanary, patternShadow, patternPromote} {
		if !slices.Contains(routes.Control, p) {
			t.Errorf("control: %s is not registered: %v", p, routes.Control)
		}
	}

	// Which routes need a client token is stated here once more, apart
	// from the table: a route moved to Open by mistake fails.
	wantInference := []string{"POST /v2/models/{model}/infer", "POST /v2/models/{model}/versions/{version}/infer", "POST /v2/models/{model}/feedback"}
	for p, a := range PublicRoutes {
		if slices.Contains(wantInference, p) != (a == Inference) {
			t.Errorf("public %s: access %s", p, a)
		}
	}
	for m, a := range GRPCMethods {
		if (m == pb.GRPCInferenceService_ModelInfer_FullMethodName) != (a == Inference) {
			t.Errorf("gRPC %s: access %s", m, a)
		}
	}

	refused := func(code int) bool { return code == http.StatusUnauthorized || code == http.StatusForbidden }
	for _, p := range routes.Public {
		method, path := concrete(p)
		code, body := r.do(t, r.http, method, path, "")
		switch PublicRoutes[p] {
		case Open:
			if refused(code) {
				t.Errorf("public %s (open): %d %s", p, code, body)
			}
		case Inference:
			if code != http.StatusUnauthorized || !strings.Contains(body, "no token") {
				t.Errorf("public %s without a token: %d %s, want 401", p, code, body)
			}
			if code, body := r.do(t, r.http, method, path, "not-a-known-token"); code != http.StatusUnauthorized {
				t.Errorf("public %s with an unknown token: %d %s, want 401", p, code, body)
			}
			if code, body := r.do(t, r.http, method, path, readerToken); code != http.StatusForbidden {
				t.Errorf("public %s with a reader token: %d %s, want 403", p, code, body)
			}
			if code, body := r.do(t, r.http, method, path, clientToken); refused(code) {
				t.Errorf("public %s with a client token: %d %s", p, code, body)
			}
		case Moved:
			if code != http.StatusNotFound || !strings.Contains(body, "control listener") {
				t.Errorf("public %s (moved): %d %s, want 404 naming the control listener", p, code, body)
			}
			// The control token does not open them on the public port.
			if code, _ := r.do(t, r.http, method, path, ctlToken); code != http.StatusNotFound {
				t.Errorf("public %s with the control token: %d, want 404", p, code)
			}
		default:
			t.Errorf("public %s: access %s", p, PublicRoutes[p])
		}
	}
	for _, p := range routes.Control {
		if ControlRoutes[p] != Control {
			t.Errorf("control %s: access %s, want the control token", p, ControlRoutes[p])
		}
		method, path := concrete(p)
		if code, body := r.do(t, r.control, method, path, ""); code != http.StatusUnauthorized {
			t.Errorf("control %s without a token: %d %s, want 401", p, code, body)
		}
		for _, wrong := range []string{clientToken, ctlToken + "x", ctlToken[:len(ctlToken)-1]} {
			if code, body := r.do(t, r.control, method, path, wrong); code != http.StatusUnauthorized {
				t.Errorf("control %s with a wrong token: %d %s, want 401", p, code, body)
			}
		}
		if code, body := r.do(t, r.control, method, path, ctlToken); refused(code) {
			t.Errorf("control %s with the control token: %d %s", p, code, body)
		}
	}

	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewGRPCInferenceServiceClient(conn)
	with := func(tok string) context.Context {
		if tok == "" {
			return context.Background()
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	for _, m := range routes.GRPC {
		call, ok := grpcCalls[m]
		if !ok {
			t.Errorf("gRPC %s: the test has no call for it", m)
			continue
		}
		code := func(tok string) codes.Code { return status.Code(call(with(tok), c)) }
		switch GRPCMethods[m] {
		case Open:
			if got := code(""); got == codes.Unauthenticated || got == codes.PermissionDenied {
				t.Errorf("gRPC %s (open): %v", m, got)
			}
		case Inference:
			if got := code(""); got != codes.Unauthenticated {
				t.Errorf("gRPC %s without a token: %v, want Unauthenticated", m, got)
			}
			if got := code("not-a-known-token"); got != codes.Unauthenticated {
				t.Errorf("gRPC %s with an unknown token: %v, want Unauthenticated", m, got)
			}
			if got := code(readerToken); got != codes.PermissionDenied {
				t.Errorf("gRPC %s with a reader token: %v, want PermissionDenied", m, got)
			}
			if got := code(clientToken); got == codes.Unauthenticated || got == codes.PermissionDenied {
				t.Errorf("gRPC %s with a client token: %v", m, got)
			}
		default:
			t.Errorf("gRPC %s: access %s", m, GRPCMethods[m])
		}
	}
}

// TestAuthNoneLeavesInferenceOpen: with the default serving.auth, the
// inference routes need no token, and the control routes still do.
func TestAuthNoneLeavesInferenceOpen(t *testing.T) {
	r := runServer(t, Config{}, Listeners{}, false)
	if code, body := r.do(t, r.http, "POST", "/v2/models/lin/infer", ""); code != http.StatusNotFound {
		t.Fatalf("infer without a token, auth none: %d %s, want 404 (no such model)", code, body)
	}
	if code, body := r.do(t, r.control, "POST", "/v2/models/lin/versions/1/pin", ""); code != http.StatusUnauthorized {
		t.Fatalf("pin without a token: %d %s, want 401", code, body)
	}
}

// TestRouteWithoutEntryPanics: a route registered without an access entry
// is refused at registration.
func TestRouteWithoutEntryPanics(t *testing.T) {
	s := &Server{}
	r := s.newRouter(map[string]Access{})
	defer func() {
		if recover() == nil {
			t.Fatal("a route without an access entry was registered")
		}
	}()
	r.handle("GET /v2/forgotten", func(http.ResponseWriter, *http.Request) {})
}

// TestClientTokensReload: a token added to serving.tokens_file is accepted
// once the file is read again, and one removed from it is refused; the
// agent needs no restart and no signal.
func TestClientTokensReload(t *testing.T) {
	path := writeTokensFile(t)
	r := runServer(t, Config{Auth: AuthToken, TokensFile: path}, Listeners{}, false)
	const newToken = "a-client-token-added-later"
	if code, _ := r.do(t, r.http, "POST", "/v2/models/lin/infer", newToken); code != http.StatusUnauthorized {
		t.Fatalf("a token not in the file: %d, want 401", code)
	}
	body := fmt.Sprintf("- {name: app2, role: client, sha256: %s}\n", tokens.Hash(newToken))
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the new token accepted", func() bool {
		code, _ := r.do(t, r.http, "POST", "/v2/models/lin/infer", newToken)
		return code == http.StatusNotFound // past the check: no such model
	})
	if code, _ := r.do(t, r.http, "POST", "/v2/models/lin/infer", clientToken); code != http.StatusUnauthorized {
		t.Fatalf("a token removed from the file: %d, want 401", code)
	}
}
