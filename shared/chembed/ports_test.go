package chembed_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/chembed"
)

// freeLoopbackPort returns a port nothing listens on at the moment.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestFixedPorts: ports set in the config are the engine's, and it answers
// on both (what `make run`'s Grafana and clients rely on).
func TestFixedPorts(t *testing.T) {
	tcp, web := freeLoopbackPort(t), freeLoopbackPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := chembed.Start(ctx, chembed.Config{DataDir: t.TempDir(), Logger: quietLogger(), TCPPort: tcp, HTTPPort: web})
	if err != nil {
		t.Fatalf("start on tcp %d, http %d: %v", tcp, web, err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	if want := "127.0.0.1:" + strconv.Itoa(tcp); e.Addr() != want {
		t.Errorf("Addr = %s, want %s", e.Addr(), want)
	}
	if want := "127.0.0.1:" + strconv.Itoa(web); e.HTTPAddr() != want {
		t.Errorf("HTTPAddr = %s, want %s", e.HTTPAddr(), want)
	}
	conn := connect(t, e.DSN("default"))
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(41 + 1)").Scan(&n); err != nil || n != 42 {
		t.Fatalf("native query on %d: %d, %v", tcp, n, err)
	}
	pw, err := os.ReadFile(e.PasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/?query=SELECT+42", web), nil)
	req.SetBasicAuth(chembed.User, strings.TrimSpace(string(pw)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("http query on %d: %v", web, err)
	}
	defer resp.Body.Close()
	var got int
	if _, err := fmt.Fscan(resp.Body, &got); err != nil || resp.StatusCode != http.StatusOK || got != 42 {
		t.Errorf("http query on %d: status %d, %d, %v", web, resp.StatusCode, got, err)
	}
}

// TestFixedPortTaken: a fixed port that another process holds fails the
// start at once with an error naming the port, instead of moving elsewhere
// (clients configured for it would not find the engine).
func TestFixedPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name string
		cfg  chembed.Config
		want string
	}{
		{"tcp", chembed.Config{TCPPort: port}, fmt.Sprintf("tcp port %d: 127.0.0.1:%d is already in use", port, port)},
		{"http", chembed.Config{HTTPPort: port}, fmt.Sprintf("http port %d: 127.0.0.1:%d is already in use", port, port)},
		{"same", chembed.Config{TCPPort: 1, HTTPPort: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.DataDir, cfg.Logger = t.TempDir(), quietLogger()
			if tc.name == "same" {
				p := freeLoopbackPort(t)
				cfg.TCPPort, cfg.HTTPPort = p, p
				tc.want = fmt.Sprintf("tcp and http port are both %d", p)
			}
			e, err := chembed.Start(context.Background(), cfg)
			if err == nil {
				_ = e.Stop(context.Background())
				t.Fatalf("started on a taken port; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
