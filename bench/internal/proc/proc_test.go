package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartWaitStop runs a real process: it is ready when its output
// says so, its CPU and memory are read from /proc, and Stop ends it (the
// waiting goroutine with it).
func TestStartWaitStop(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	p, err := Start("/bin/sh", []string{"-c", "echo ready; exec sleep 60"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReady(10*time.Second, func() bool { return strings.Contains(p.Tail(), "ready") }); err != nil {
		t.Fatal(err)
	}
	if c, err := CPUSeconds(p.PID()); err != nil || c < 0 {
		t.Fatalf("cpu %g, %v", c, err)
	}
	if rss := StatusBytes(p.PID(), "VmRSS"); rss <= 0 {
		t.Fatalf("VmRSS %d", rss)
	}
	p.Stop()
	if _, err := os.Stat("/proc/" + strconv.Itoa(p.PID())); err == nil {
		t.Fatal("the process is still there after Stop")
	}
}

// TestWaitReadyReportsAnExit: a process that exits before it is ready is
// reported with its output.
func TestWaitReadyReportsAnExit(t *testing.T) {
	p, err := Start("/bin/sh", []string{"-c", "echo bad config; exit 2"}, filepath.Join(t.TempDir(), "sh.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	err = p.WaitReady(10*time.Second, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("%v, want the exit with its output", err)
	}
}
