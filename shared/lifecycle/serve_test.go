package lifecycle

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestServeDrainsRequestInFlight: after ctx is cancelled, a request that
// was being served finishes with its answer before Serve returns, and the
// listener stops accepting.
func TestServeDrainsRequestInFlight(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
		finished.Store(true)
	})}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, 10*time.Second, nil, Listening{Name: "test", Server: HTTP(srv), Listener: l})
	}()

	type answer struct {
		body string
		err  error
	}
	answered := make(chan answer, 1)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	go func() {
		resp, err := client.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{string(b), err}
	}()
	<-entered
	cancel()
	// The drain has begun once the listener refuses connections; only
	// then may the request finish.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepts 10s after cancel")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if !finished.Load() {
		t.Error("Serve returned before the request in flight finished")
	}
	if a := <-answered; a.err != nil || a.body != "finished" {
		t.Fatalf("request in flight got %q, %v; want its answer", a.body, a.err)
	}
}

// TestServeReportsServerFailure: a server that fails stops the others and
// Serve returns its error with the server's name.
func TestServeReportsServerFailure(t *testing.T) {
	l1, _ := net.Listen("tcp", "127.0.0.1:0")
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	l2.Close() // Serve on a closed listener fails at once
	err := Serve(context.Background(), time.Second, nil,
		Listening{Name: "good", Server: HTTP(&http.Server{}), Listener: l1},
		Listening{Name: "bad", Server: HTTP(&http.Server{}), Listener: l2})
	if err == nil || !strings.HasPrefix(err.Error(), "bad: ") || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want bad: use of closed network connection", err)
	}
}
