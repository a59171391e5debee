package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-ml/drover/agent/agent"
)

// TestControlToken: the first start creates the token (0600, the data dir
// too), later starts read the same one, and a file that holds no token is
// an error rather than silently replaced.
func TestControlToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, err := agent.ControlToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "drover_") || len(tok) < 40 {
		t.Fatalf("token %q", tok)
	}
	path := filepath.Join(dir, agent.ControlTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := agent.ControlToken(dir)
	if err != nil || again != tok {
		t.Fatalf("second start: %q, %v; want the same token", again, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d files, want control.token alone (no temporary file left)", len(entries))
	}
	// An operator's own token (rotation) is taken as written.
	if err := os.WriteFile(path, []byte("  my-rotated-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := agent.ControlToken(dir); err != nil || got != "my-rotated-token" {
		t.Fatalf("rotated: %q, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.ControlToken(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("empty token file: %v, want an error saying what to do", err)
	}
}
