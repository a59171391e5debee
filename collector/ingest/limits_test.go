package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/shared/semconv"
)

// acceptSink accepts everything.
type acceptSink struct{}

func (acceptSink) Accept(context.Context, Kind, []byte, int, any) error { return nil }

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

// TestMaxConnections: with max_connections 1, a second connection is not
// accepted while the first is open (however many requests the first
// carries), and is served once the first closes.
func TestMaxConnections(t *testing.T) {
	recv := NewReceiver(ReceiverConfig{MaxConnections: 1}, acceptSink{}, nil, slog.New(slog.DiscardHandler))
	inner := listen(t)
	hl := &countingListener{Listener: inner}
	serve(t, recv, hl)

	body, err := pmetricotlp.NewExportRequestFromMetrics(edgeMetrics(map[string]string{semconv.AttrHostName: "h"},
		edgePoint{time.Now(), map[string]string{semconv.AttrModel: "iris", semconv.AttrModelVersion: "3"}})).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	request := fmt.Sprintf("POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute)) // a hung test fails, it does not hang
		return c, bufio.NewReader(c)
	}
	send := func(c net.Conn) {
		if _, err := c.Write([]byte(request)); err != nil {
			t.Fatal(err)
		}
	}
	answer := func(r *bufio.Reader) int {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	a, ar := dial()
	send(a)
	if code := answer(ar); code != http.StatusOK {
		t.Fatalf("first connection: %d", code)
	}
	b, br := dial() // completes in the kernel's accept queue
	defer b.Close()
	send(b)
	for range 5 { // the first connection is served all along
		send(a)
		if code := answer(ar); code != http.StatusOK {
			t.Fatalf("first connection, again: %d", code)
		}
	}
	if n := hl.accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted while max_connections is 1 and the first is open", n)
	}
	a.Close()
	if code := answer(br); code != http.StatusOK {
		t.Fatalf("second connection once the first closed: %d", code)
	}
	if n := hl.accepted.Load(); n != 2 {
		t.Errorf("%d connections accepted, want 2", n)
	}
}
