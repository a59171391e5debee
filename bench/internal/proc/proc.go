// Package proc runs the programs a benchmark measures as their own
// processes (so their CPU time is theirs) and reads their CPU and memory
// from /proc; with the build and address helpers the benchmarks share.
package proc

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it is
// 100 on every Linux platform Go supports.
const clkTck = 100

// CPUSeconds returns user+system CPU seconds of pid.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck, nil
}

// SelfCPUSeconds returns this process's user+system CPU seconds.
func SelfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// StatusBytes returns a "Vm…:" field of /proc/<pid>/status in bytes.
func StatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Proc is a program under test, run as its own process (killed if the
// benchmark dies).
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	Log  string
}

func Start(bin string, args []string, logPath string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: exec.Command(bin, args...), done: make(chan struct{}), Log: logPath}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPU returns the process's user+system CPU seconds so far.
func (p *Proc) CPU() float64 { c, _ := CPUSeconds(p.PID()); return c }

// PeakRSS returns VmHWM, the peak resident set size.
func (p *Proc) PeakRSS() int64 { return StatusBytes(p.PID(), "VmHWM") }

// WaitReady polls check until it succeeds, the process exits or timeout.
func (p *Proc) WaitReady(timeout time.Duration, check func() bool) error {
	deadline := time.Now().Add(timeout)
	for !check() {
		select {
		case <-p.done:
			return fmt.Errorf("exited during start: %s", p.Tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %s", timeout, p.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Tail is the end of the process's log (its stdout and stderr).
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop sends SIGTERM, waits up to 60 s, then kills.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// FreeAddr is a loopback address with a port free a moment ago.
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// HTTPOK reports whether GET url answers 200.
func HTTPOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// TCPOpen reports whether addr accepts a TCP connection.
func TCPOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// GoBuild builds a main package into out; dir is the module directory to
// build in ("" for the current one).
func GoBuild(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (in %s): %w", pkg, dir, err)
	}
	return nil
}

// RepoRoot is the main module's directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run from inside the drover module")
	}
	return filepath.Dir(mod), nil
}
