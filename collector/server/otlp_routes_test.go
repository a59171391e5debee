package server

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestOTLPRoutesNeedAnAgentToken takes the routes from the running OTLP
// receivers themselves (the gRPC server's service info and the HTTP
// patterns Serve registered) and calls each one without a token, with a
// reader's token and with the agent's: a route added without the token
// check fails here.
func TestOTLPRoutesNeedAnAgentToken(t *testing.T) {
	db := testenv.ClickHouse(t)
	cfg := testConfig(t, db.DSN, db.Name)
	var recv *ingest.Receiver
	c := runCollector(t, cfg, hooks{receiver: func(r *ingest.Receiver) { recv = r }})
	t.Cleanup(c.stop)
	waitReady(t, c)
	routes := recv.Routes()
	for _, want := range []string{
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
		"/opentelemetry.proto.collector.logs.v1.LogsService/Export",
		"POST /v1/metrics", "POST /v1/logs",
	} {
		if !slices.Contains(routes, want) {
			t.Errorf("%s is not served: %v", want, routes)
		}
	}
	ctx := context.Background()
	cl := adminclient.New("http://"+c.adminAddr, adminToken(t, cfg.DataDir))
	defer cl.Close()
	reader, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "otlp-routes-reader", Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	agent := agentToken(t, c.dataDir)
	type call struct {
		token string
		code  codes.Code // gRPC; HTTP is its usual mapping
	}
	calls := map[string]call{
		"no token":     {"", codes.Unauthenticated},
		"reader token": {reader.Token, codes.PermissionDenied},
		"agent token":  {agent, codes.OK},
	}
	httpCode := map[codes.Code]int{codes.Unauthenticated: 401, codes.PermissionDenied: 403, codes.OK: 200}
	for _, route := range routes {
		for name, tc := range calls {
			if strings.HasPrefix(route, "/") { // a gRPC method
				opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
				if tc.token != "" {
					opts = append(opts, grpc.WithPerRPCCredentials(staticToken(tc.token)))
				}
				conn, err := grpc.NewClient(c.grpcAddr, opts...)
				if err != nil {
					t.Fatal(err)
				}
				// An empty message is a valid, empty Export request.
				err = conn.Invoke(ctx, route, &emptypb.Empty{}, &emptypb.Empty{})
				conn.Close()
				if status.Code(err) != tc.code {
					t.Errorf("%s with %s: %v, want %s", route, name, err, tc.code)
				}
				continue
			}
			method, path, _ := strings.Cut(route, " ")
			req, _ := http.NewRequest(method, "http://"+c.httpAddr+path, bytes.NewReader(nil))
			req.Header.Set("Content-Type", "application/x-protobuf")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != httpCode[tc.code] {
				t.Errorf("%s with %s: %d, want %d", route, name, resp.StatusCode, httpCode[tc.code])
			}
		}
	}
}
