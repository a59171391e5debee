package serve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the connections its Accept returned.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// TestMaxConnections: with serving.max_connections 1, a second connection
// is not accepted while the first is open (however many requests the
// first carries), and is served once the first closes.
func TestMaxConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: inner}
	runServer(t, Config{MaxConnections: 1}, Listeners{HTTP: cl}, false)
	const request = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute)) // a hung test fails, it does not hang
		return c, bufio.NewReader(c)
	}
	roundTrip := func(c net.Conn, r *bufio.Reader) int {
		t.Helper()
		if _, err := c.Write([]byte(request)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	c1, r1 := dial()
	if code := roundTrip(c1, r1); code != 200 {
		t.Fatalf("first connection: %d", code)
	}
	c2, r2 := dial()
	defer c2.Close()
	if _, err := c2.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	// The first connection keeps being served; the second waits unaccepted.
	for range 5 {
		if code := roundTrip(c1, r1); code != 200 {
			t.Fatalf("first connection: %d", code)
		}
	}
	if n := cl.accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted while the first is open, want 1", n)
	}
	c1.Close()
	resp, err := http.ReadResponse(r2, nil)
	if err != nil {
		t.Fatalf("second connection after the first closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || cl.accepted.Load() != 2 {
		t.Fatalf("second connection: %d, %d accepted", resp.StatusCode, cl.accepted.Load())
	}
}
