package auth

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestGRPCInterceptors guards a gRPC service (the health service stands in
// for OTLP) with agent access, unary and streaming calls alike.
func TestGRPCInterceptors(t *testing.T) {
	db, a, toks := roleTokens(t)
	run(t, a)
	agent := Allow(Agent)
	var seen Principal
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor(agent), func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen, _ = FromContext(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(a.StreamInterceptor(agent)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)

	for name, tc := range map[string]struct {
		md   []string
		code codes.Code
	}{
		"agent":         {[]string{"authorization", "Bearer " + toks[Agent]}, codes.OK},
		"admin":         {[]string{"authorization", "Bearer " + toks[Admin]}, codes.OK},
		"reader":        {[]string{"authorization", "Bearer " + toks[Reader]}, codes.PermissionDenied},
		"client":        {[]string{"authorization", "Bearer " + toks[Client]}, codes.PermissionDenied},
		"no token":      {nil, codes.Unauthenticated},
		"unknown token": {[]string{"authorization", "Bearer drover_guess"}, codes.Unauthenticated},
		"two tokens":    {[]string{"authorization", "Bearer " + toks[Agent], "authorization", "Bearer " + toks[Agent]}, codes.Unauthenticated},
		"not bearer":    {[]string{"authorization", toks[Agent]}, codes.Unauthenticated},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			seen = Principal{}
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tc.code {
				t.Errorf("unary: code %v (%v), want %v", got, err, tc.code)
			}
			if tc.code == codes.OK && seen.Role == "" {
				t.Error("unary: no Principal in the handler's context")
			}
			if tc.code == codes.PermissionDenied && !strings.Contains(status.Convert(err).Message(), "needs admin|agent") {
				t.Errorf("message %q", status.Convert(err).Message())
			}
			stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if got := status.Code(err); got != tc.code {
				t.Errorf("stream: code %v (%v), want %v", got, err, tc.code)
			}
		})
	}
	testenv.Eventually(t, 30*time.Second, "audit rows of gRPC denials", func() bool {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE result = 'denied' AND action = '/grpc.health.v1.Health/Check' AND token_name = 'the-reader' AND detail LIKE 'PermissionDenied:%'")
		return err == nil && n == 1
	})
	if n := db.Count(t, "SELECT count() FROM audit_log WHERE result != 'denied' AND startsWith(action, '/grpc')"); n != 0 {
		t.Errorf("%d audit rows for accepted gRPC calls, want 0 (data, not state changes)", n)
	}
}
