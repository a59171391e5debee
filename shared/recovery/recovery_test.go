package recovery

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type seen struct {
	mu    sync.Mutex
	calls []string
}

func (s *seen) on(protocol, call string, value any, stack []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(stack) == 0 {
		value = "no stack"
	}
	s.calls = append(s.calls, protocol+" "+call+" "+value.(string))
}

func TestHTTPPanicIsAnInternalError(t *testing.T) {
	var s seen
	h := HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		w.Write([]byte("ok"))
	}), s.on, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("panic answered %d, want 500", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/fine")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after a panic: %v, %v", resp, err)
	}
	resp.Body.Close()
	if len(s.calls) != 1 || s.calls[0] != "http GET /boom boom" {
		t.Errorf("reported %q", s.calls)
	}
	if got := bounded(strings.Repeat("x", 1000)); len(got) != maxCall+3 {
		t.Errorf("a long call is reported with %d bytes", len(got))
	}
}

type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("boom")
}

func TestGRPCPanicIsInternal(t *testing.T) {
	var s seen
	g := grpc.NewServer(GRPC(s.on)...)
	healthpb.RegisterHealthServer(g, panicky{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	defer g.Stop()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	for range 2 {
		_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Internal {
			t.Fatalf("panic answered %v, want Internal", err)
		}
	}
	if len(s.calls) != 2 || s.calls[0] != "grpc /grpc.health.v1.Health/Check boom" {
		t.Errorf("reported %q", s.calls)
	}
}
