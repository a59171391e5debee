package store

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestOpenEngineFixedPortTaken: a fixed port of the embedded engine that
// another process holds fails Open at once, naming the port, instead of
// an engine on some other port that clients configured for it would not
// find.
func TestOpenEngineFixedPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	b, err := OpenEngine(context.Background(), Embedded, t.TempDir(), EngineConfig{HTTPPort: port}, slog.New(slog.DiscardHandler))
	if err == nil {
		_ = b.Close(context.Background())
		t.Fatal("opened an engine on a taken http port")
	}
	if want := fmt.Sprintf("http port %d: 127.0.0.1:%d is already in use", port, port); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
