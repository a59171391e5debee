// Package chembed runs a ClickHouse engine for one machine and for tests: a
// child process listening on loopback with its own data directory, that
// clickhouse-go reaches through the DSN it returns.
//
// Two engines are supported. With a `clickhouse` binary on PATH, Start runs
// `clickhouse server` with a generated configuration. Otherwise it runs the
// engine from libchdb.so (fetched by `make deps`) in clickhouse-local mode:
// the current executable is re-executed as the child (see the init function
// in child.go), it dlopens the library and calls chdb_query_cmdline with
// queries that open the TCP and HTTP listeners and then read the child's
// stdin to its end. Closing that pipe is the clean shutdown, so the engine
// also stops when the parent dies, even by SIGKILL; the child additionally
// gets SIGKILL from the kernel (PR_SET_PDEATHSIG) and runs in its own process
// group so a terminal's Ctrl-C reaches only the parent, which then shuts the
// engine down after draining.
package chembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-ml/drover/shared/deps"
)

// Mode selects the engine.
type Mode string

const (
	// ModeAuto prefers a clickhouse binary on PATH and falls back to libchdb.
	ModeAuto Mode = ""
	// ModeCHDB runs libchdb.so in clickhouse-local mode.
	ModeCHDB Mode = "chdb"
	// ModeServer runs `clickhouse server` from a binary.
	ModeServer Mode = "server"
)

// Config says how to start an engine. Only DataDir is required.
type Config struct {
	// DataDir holds the engine's data; MergeTree tables in it survive restarts.
	DataDir string
	Mode    Mode
	// Library is the libchdb.so to load; default deps.CHDBLibrary().
	Library string
	// Binary is the clickhouse binary for ModeServer; default from PATH.
	Binary string
	// ListenHost defaults to 127.0.0.1.
	ListenHost string
	// TCPPort and HTTPPort default to free ports.
	TCPPort, HTTPPort int
	// StartTimeout bounds the wait for the engine to answer; default 2 min.
	StartTimeout time.Duration
	// Logger receives the engine's stderr lines; default slog.Default().
	Logger *slog.Logger
}

// Engine is a running ClickHouse child process. Its methods are safe for
// concurrent use; Stop is idempotent.
type Engine struct {
	cfg      Config
	mode     Mode
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stderr   *tailBuffer
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// Start launches the engine and returns once it answers queries, or an error
// that includes the tail of the engine's stderr. Ports that turn out to be
// taken are retried with new ones.
func Start(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("chembed: DataDir is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("chembed: data dir: %w", err)
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chembed: create data dir: %w", err)
	}
	if cfg.ListenHost == "" {
		cfg.ListenHost = "127.0.0.1"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	mode := cfg.Mode
	if mode == ModeAuto {
		mode = ModeCHDB
		if cfg.Binary == "" {
			cfg.Binary = deps.ClickHouseBinary()
		}
		if cfg.Binary != "" {
			mode = ModeServer
		}
	}
	switch mode {
	case ModeCHDB:
		if cfg.Library == "" {
			if cfg.Library, err = deps.CHDBLibrary(); err != nil {
				return nil, fmt.Errorf("chembed: %w", err)
			}
		}
	case ModeServer:
		if cfg.Binary == "" {
			if cfg.Binary = deps.ClickHouseBinary(); cfg.Binary == "" {
				return nil, errors.New("chembed: server mode needs a clickhouse binary on PATH")
			}
		}
	default:
		return nil, fmt.Errorf("chembed: unknown mode %q (want chdb or server)", mode)
	}

	fixedPorts := cfg.TCPPort != 0 || cfg.HTTPPort != 0
	for attempt := 1; ; attempt++ {
		c := cfg
		if c.TCPPort == 0 {
			if c.TCPPort, err = freePort(c.ListenHost); err != nil {
				return nil, err
			}
		}
		if c.HTTPPort == 0 {
			if c.HTTPPort, err = freePort(c.ListenHost); err != nil {
				return nil, err
			}
		}
		e, err := start(ctx, c, mode)
		if err == nil {
			return e, nil
		}
		if fixedPorts || attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
}

func start(ctx context.Context, cfg Config, mode Mode) (*Engine, error) {
	e := &Engine{cfg: cfg, mode: mode, stderr: newTailBuffer(64<<10, cfg.Logger), exited: make(chan struct{})}
	var cmd *exec.Cmd
	switch mode {
	case ModeCHDB:
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("chembed: find own executable to re-exec: %w", err)
		}
		cmd = exec.Command(self, chdbArgs(cfg)...)
		cmd.Env = append(os.Environ(), envChild+"="+cfg.Library)
	case ModeServer:
		conf, err := writeServerConfig(cfg)
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(cfg.Binary, "server", "--config-file="+conf)
	}
	cmd.Dir = cfg.DataDir
	cmd.Stdout = e.stderr
	cmd.Stderr = e.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("chembed: stdin pipe: %w", err)
	}
	e.cmd, e.stdin = cmd, stdin

	// PR_SET_PDEATHSIG fires when the thread that forked the child exits, not
	// the process. Fork from a goroutine locked to its thread, and keep that
	// thread until the child is gone.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(e.exited)
			return
		}
		started <- nil
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("chembed: start engine: %w", err)
	}
	cfg.Logger.Debug("clickhouse engine starting", "mode", mode, "pid", cmd.Process.Pid, "tcp_port", cfg.TCPPort, "data_dir", cfg.DataDir)

	if err := e.waitReady(ctx); err != nil {
		_ = e.kill()
		return nil, err
	}
	cfg.Logger.Info("clickhouse engine ready", "mode", mode, "pid", cmd.Process.Pid, "addr", e.Addr(), "data_dir", cfg.DataDir)
	return e, nil
}

// chdbArgs are the clickhouse-local arguments: listen on loopback, then block
// on reading stdin until the parent closes it.
func chdbArgs(cfg Config) []string {
	return []string{
		"--path", cfg.DataDir + string(os.PathSeparator),
		"--listen_host", cfg.ListenHost,
		"--tcp_port", strconv.Itoa(cfg.TCPPort),
		"--http_port", strconv.Itoa(cfg.HTTPPort),
		"--log-level", "error",
		"--query", "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " +
			"SELECT count() FROM file('/dev/stdin', 'LineAsString') FORMAT Null",
	}
}

func (e *Engine) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + e.HTTPAddr() + "/?query=SELECT%201"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("chembed: engine exited during start (%v): %s", e.waitErr, e.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("chembed: engine did not answer on %s within %s: %w; stderr: %s", e.HTTPAddr(), e.cfg.StartTimeout, ctx.Err(), e.stderr.String())
		case <-tick.C:
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "1" {
			return nil
		}
	}
}

// Addr returns the native protocol address, host:port.
func (e *Engine) Addr() string {
	return net.JoinHostPort(e.cfg.ListenHost, strconv.Itoa(e.cfg.TCPPort))
}

// HTTPAddr returns the HTTP interface address, host:port.
func (e *Engine) HTTPAddr() string {
	return net.JoinHostPort(e.cfg.ListenHost, strconv.Itoa(e.cfg.HTTPPort))
}

// DSN returns a clickhouse-go DSN for database db ("default" when empty).
func (e *Engine) DSN(db string) string {
	if db == "" {
		db = "default"
	}
	return "clickhouse://" + e.Addr() + "/" + db
}

// Log returns the last lines the engine wrote (stdout and stderr), for
// telling why it died or stopped answering.
func (e *Engine) Log() string { return e.stderr.String() }

// PID returns the engine's process id.
func (e *Engine) PID() int { return e.cmd.Process.Pid }

// Mode returns the engine that runs.
func (e *Engine) Mode() Mode { return e.mode }

// Exited is closed when the engine process has ended.
func (e *Engine) Exited() <-chan struct{} { return e.exited }

// Stop shuts the engine down and waits for it: the chdb engine by closing
// its stdin, a server by SIGTERM. If it has not exited when ctx is done, it is
// killed. Safe to call more than once and after the engine died.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() {
		select {
		case <-e.exited:
			e.stopErr = e.exitError()
			return
		default:
		}
		if e.mode == ModeServer {
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
		}
		_ = e.stdin.Close()
		select {
		case <-e.exited:
			e.stopErr = e.exitError()
		case <-ctx.Done():
			_ = e.kill()
			e.stopErr = fmt.Errorf("chembed: engine did not stop in time, killed: %w", ctx.Err())
		}
	})
	return e.stopErr
}

func (e *Engine) exitError() error {
	if e.waitErr != nil {
		return fmt.Errorf("chembed: engine exited: %w: %s", e.waitErr, e.stderr.String())
	}
	return nil
}

func (e *Engine) kill() error {
	_ = e.stdin.Close()
	err := e.cmd.Process.Kill()
	<-e.exited
	return err
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("chembed: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
