package procenv

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWins(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	t.Setenv("GOGC", "")
	if Wins(log, "GOGC", "memory.gc_percent", 50) {
		t.Error("an empty GOGC wins; the runtime ignores it")
	}
	if buf.Len() != 0 {
		t.Errorf("logged %q for an empty GOGC", buf.String())
	}
	t.Setenv("GOGC", "200")
	if !Wins(log, "GOGC", "memory.gc_percent", 50) {
		t.Error("GOGC=200 does not win")
	}
	for _, want := range []string{"memory.gc_percent: GOGC is set in the environment and wins", "GOGC=200", "gc_percent=50"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q does not say %q", buf.String(), want)
		}
	}
}
