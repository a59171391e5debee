package ingest

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// listen is a loopback listener on a free port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs recv on a loopback gRPC listener and hl (a loopback one if
// nil) until the test ends, when Serve must return without an error; it
// returns a client connection to the gRPC receiver and the HTTP
// receiver's address.
func serve(t *testing.T, recv *Receiver, hl net.Listener) (*grpc.ClientConn, string) {
	t.Helper()
	gl := listen(t)
	if hl == nil {
		hl = listen(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- recv.Serve(ctx, gl, hl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, hl.Addr().String()
}
