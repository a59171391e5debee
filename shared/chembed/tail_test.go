package chembed

import (
	"log/slog"
	"strings"
	"testing"
)

// TestTailBufferCountsFatalLines: only complete lines at level Fatal count,
// however the writes split them, and the tail keeps the last bytes.
func TestTailBufferCountsFatalLines(t *testing.T) {
	b := newTailBuffer(64, slog.New(slog.DiscardHandler))
	for _, w := range []string{
		"2026.12.08 02:32:16 [ 1 ] {} <Error> TCPHandler: Code: 60\n",
		"2026.12.08 02:32:42 [ 2 ] {} <Fat", "al> ClientBase: Terminate called\n2026.12.08 02:32:42 [ 2 ] {} <Fatal> ClientBase: 0. ? @ 0x1\n",
		"2026.12.08 02:32:43 [ 3 ] {} <Fatal> not yet a line",
	} {
		if _, err := b.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Fatals(); got != 2 {
		t.Errorf("Fatals() = %d, want 2 (the unfinished line does not count)", got)
	}
	b.Write([]byte("\n"))
	if got := b.Fatals(); got != 3 {
		t.Errorf("Fatals() = %d after the line ended, want 3", got)
	}
	if s := b.String(); len(s) > 64 || !strings.HasSuffix(s, "not yet a line") {
		t.Errorf("tail %q: want the last 64 bytes", s)
	}
}
