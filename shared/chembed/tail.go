package chembed

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// tailBuffer keeps the last max bytes written to it, for error messages,
// passes complete lines to the logger at debug level, and counts the lines
// logged at level Fatal.
type tailBuffer struct {
	mu     sync.Mutex
	max    int
	buf    []byte
	line   []byte
	log    *slog.Logger
	fatals uint64
}

func newTailBuffer(max int, log *slog.Logger) *tailBuffer {
	return &tailBuffer{max: max, log: log}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	t.line = append(t.line, p...)
	for {
		i := bytes.IndexByte(t.line, '\n')
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(t.line[:i])); s != "" {
			t.log.Debug("clickhouse engine", "line", s)
			if strings.Contains(s, "<Fatal>") {
				t.fatals++
			}
		}
		t.line = t.line[i+1:]
	}
	if len(t.line) > t.max {
		t.line = t.line[:0]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(no output)"
	}
	return s
}

// Fatals is how many complete lines were logged at level Fatal.
func (t *tailBuffer) Fatals() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fatals
}
