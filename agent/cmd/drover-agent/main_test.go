package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

// agentChildEnv makes this test binary run drover-agent's main, with its
// arguments, for TestTimerSlackStartsOver.
const agentChildEnv = "DROVER_AGENT_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(agentChildEnv) != "" {
		main()
	}
	goleak.VerifyTestMain(m)
}

func TestFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		code int
		out  string
	}{
		"version":                 {[]string{"--version"}, 0, "drover-agent"},
		"no model dir":            {nil, 2, "--model-dir is required"},
		"bad log level":           {[]string{"--model-dir", "x", "--log-level", "loud"}, 2, "--log-level"},
		"unknown flag":            {[]string{"--nope"}, 2, "flag provided but not defined"},
		"bad http listen":         {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:99999"}, 1, "listen --http-addr"},
		"bad grpc listen":         {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "nowhere:x"}, 1, "listen --grpc-addr"},
		"bad config":              {[]string{"--model-dir", t.TempDir(), "--config", "/nonexistent/agent.yaml"}, 1, "read config"},
		"bad label":               {[]string{"--model-dir", "x", "--label", "zone"}, 2, "want k=v"},
		"collector without token": {[]string{"--model-dir", t.TempDir(), "--collector", "http://c1:8090"}, 1, "control.token_file: required with collectors"},
		"bad collector url":       {[]string{"--model-dir", t.TempDir(), "--collector", "c1:8090", "--token-file", "t"}, 1, "control.collectors[0]: want an http(s) URL"},
		"bad control listen":      {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--control-addr", "nowhere:x"}, 1, "listen --control-addr"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if code := realMain(tc.args, &out, &out, nil); code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d, want %d; output %q does not say %q", code, tc.code, out.String(), tc.out)
			}
		})
	}
}

// TestSignals: SIGHUP asks for a reload, SIGTERM stops the agent.
func TestSignals(t *testing.T) {
	stopped := make(chan struct{})
	reload := make(chan struct{}, 1)
	release := handleSignals(func() { close(stopped) }, reload, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer release()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reload:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not ask for a reload")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not stop the agent")
	}
}

// TestTimerSlackStartsOver runs drover-agent (this binary's main) with
// process.timer_slack and process.sysmon_timer_slack: it starts over in
// place (the same process) with its flags, logs the slack, gives it to its
// threads, serves, and stops on SIGTERM. With one slack every thread has
// it; with another for sysmon, the first thread and those that run
// goroutines have timer_slack, and sysmon (with the template thread, and
// threads sysmon started that have run no goroutine since) its own.
func TestTimerSlackStartsOver(t *testing.T) {
	for _, c := range []struct {
		name, config, log string
		threads, sysmon   string // ns
	}{
		{"same", "process: {timer_slack: 2ms}\n", "msg=process.timer_slack timer_slack=2ms sysmon_timer_slack=0s", "2000000", "2000000"},
		{"sysmon", "process: {timer_slack: 1ms, sysmon_timer_slack: 3ms}\n", "msg=process.timer_slack timer_slack=1ms sysmon_timer_slack=3ms", "1000000", "3000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pid, slacks := startOver(t, c.config, c.log)
			if len(slacks) == 0 {
				t.Logf("no thread's slack readable (CAP_SYS_NICE)")
				return
			}
			counts := map[string]int{}
			for tid, got := range slacks {
				counts[got]++
				if got != c.threads && got != c.sysmon {
					t.Errorf("thread %d has timer slack %sns, want %s (or %s for sysmon)", tid, got, c.threads, c.sysmon)
				}
			}
			if got, ok := slacks[pid]; ok && got != c.threads {
				t.Errorf("the first thread has timer slack %sns, want %s", got, c.threads)
			}
			if c.threads != c.sysmon && (counts[c.sysmon] < 1 || counts[c.threads] < 3) {
				t.Errorf("threads' timer slack %v: want sysmon at %s and the threads that run goroutines at %s", slacks, c.sysmon, c.threads)
			}
		})
	}
}

// startOver runs drover-agent with config until it serves, checks its log
// says want, reads its threads' timer slack (those it may: another
// process's needs CAP_SYS_NICE), and stops it with SIGTERM.
func startOver(t *testing.T, config, want string) (pid int, slacks map[int]string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	var addrs [3]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	cmd := exec.Command(os.Args[0], "--model-dir", filepath.Join(dir, "models"), "--data-dir", filepath.Join(dir, "data"), "--config", cfg,
		"--http-addr", addrs[0], "--grpc-addr", addrs[1], "--control-addr", addrs[2])
	cmd.Env = append(os.Environ(), agentChildEnv+"=1")
	var logs testenv.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testenv.Eventually(t, 60*time.Second, "the agent serves on --http-addr after starting over", func() bool {
		resp, err := http.Get("http://" + addrs[0] + "/v2/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	if out := logs.String(); !strings.Contains(out, want) {
		t.Errorf("log does not say %q:\n%s", want, out)
	}
	pid = cmd.Process.Pid
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v %v", pid, tasks, err)
	}
	slacks = map[int]string{}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(filepath.Base(task))
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", tid))
		if err != nil {
			continue
		}
		slacks[tid] = strings.TrimSpace(string(b))
	}
	t.Logf("%d of %d threads' slack read: %v", len(slacks), len(tasks), slacks)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("drover-agent exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("drover-agent did not stop 60s after SIGTERM")
	}
	return pid, slacks
}
