// Package chembed runs a ClickHouse engine for one machine and for tests: a
// child process listening on loopback with its own data directory, that
// clickhouse-go reaches through the DSN it returns.
//
// Two engines are supported. With a `clickhouse` binary on PATH, Start runs
// `clickhouse server` with a generated configuration. Otherwise it runs the
// engine from libchdb.so (fetched by `make deps`) in clickhouse-local mode:
// the current executable is re-executed as the child (see the init function
// in child.go), it dlopens the library and calls chdb_query_cmdline with
// queries that open the TCP and HTTP listeners and then run until the
// process is signalled. Stop sends SIGTERM; the child gets SIGKILL from the
// kernel when the parent dies, even by SIGKILL (PR_SET_PDEATHSIG), and runs
// in its own process group so a terminal's Ctrl-C reaches only the parent,
// which then shuts the engine down after draining.
//
// Clients log in as User with a password generated on the first start and
// kept in the data directory (PasswordFileName, mode 0600); DSN carries it.
// An optional watchdog (Config.Watchdog) restarts a child that stops
// answering or exits, on the same data directory and ports.
package chembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// TCPPort and HTTPPort default to free ports (0), chosen anew when one
	// turns out to be taken. A port set here is used as it is: Start fails
	// at once, naming it, when something already listens there.
	TCPPort, HTTPPort int
	// StartTimeout bounds the wait for the engine to answer; default 2 min.
	StartTimeout time.Duration
	// Logger receives the engine's stderr lines; default slog.Default().
	Logger *slog.Logger
	// Watchdog, when its Interval is set, pings the engine and restarts a
	// child that stops answering or exits (see Watchdog).
	Watchdog Watchdog
}

// Engine is a running ClickHouse child process (a new one after each
// watchdog restart, on the same data directory and ports). Its methods are
// safe for concurrent use; Stop is idempotent.
type Engine struct {
	cfg      Config
	mode     Mode
	password string
	stderr   *tailBuffer

	mu       sync.Mutex
	cur      *child
	stopping bool
	restarts uint64

	// done is closed when the engine is over for good: after Stop, or when
	// the child exits and no watchdog restarts it.
	done     chan struct{}
	doneOnce sync.Once
	doneErr  error // the last child's exit, when it ended unasked

	watchStop chan struct{}
	watchDone chan struct{}
	kick      chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// child is one engine process.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	waitErr error
	termed  atomic.Bool // Stop or the watchdog sent SIGTERM/SIGKILL
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

	password, err := loadPassword(cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}

	fixedPorts := cfg.TCPPort != 0 || cfg.HTTPPort != 0
	for _, p := range []struct {
		name string
		port int
	}{{"tcp", cfg.TCPPort}, {"http", cfg.HTTPPort}} {
		if p.port != 0 {
			if err := checkPortFree(cfg.ListenHost, p.port); err != nil {
				return nil, fmt.Errorf("chembed: %s port %d: %w", p.name, p.port, err)
			}
		}
	}
	if cfg.TCPPort != 0 && cfg.TCPPort == cfg.HTTPPort {
		return nil, fmt.Errorf("chembed: tcp and http port are both %d", cfg.TCPPort)
	}
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
		e := newEngine(c, mode, password)
		err := e.startChild(ctx)
		if err == nil {
			e.startWatchdog()
			return e, nil
		}
		if fixedPorts || attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
}

func newEngine(cfg Config, mode Mode, password string) *Engine {
	return &Engine{
		cfg: cfg, mode: mode, password: password,
		stderr: newTailBuffer(64<<10, cfg.Logger),
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
}

// startChild starts a child process and waits until it answers.
func (e *Engine) startChild(ctx context.Context) error {
	cfg := e.cfg
	if err := writeUsersConfig(cfg, e.mode, e.password); err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch e.mode {
	case ModeCHDB:
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("chembed: find own executable to re-exec: %w", err)
		}
		conf, err := writeLocalConfig(cfg)
		if err != nil {
			return err
		}
		cmd = exec.Command(self, chdbArgs(cfg, conf)...)
		cmd.Env = append(os.Environ(), envChild+"="+cfg.Library)
	case ModeServer:
		conf, err := writeServerConfig(cfg)
		if err != nil {
			return err
		}
		cmd = exec.Command(cfg.Binary, "server", "--config-file="+conf)
	}
	cmd.Dir = cfg.DataDir
	cmd.Stdout = e.stderr
	cmd.Stderr = e.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("chembed: stdin pipe: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, exited: make(chan struct{})}

	// PR_SET_PDEATHSIG fires when the thread that forked the child exits, not
	// the process. Fork from a goroutine locked to its thread, and keep that
	// thread until the child is gone.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(c.exited)
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.exited)
		e.childExited(c)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("chembed: start engine: %w", err)
	}
	e.mu.Lock()
	e.cur = c
	e.mu.Unlock()
	cfg.Logger.Debug("clickhouse engine starting", "mode", e.mode, "pid", cmd.Process.Pid, "tcp_port", cfg.TCPPort, "data_dir", cfg.DataDir)

	if err := e.waitReady(ctx, c); err != nil {
		c.kill()
		return err
	}
	cfg.Logger.Info("clickhouse engine ready", "mode", e.mode, "pid", cmd.Process.Pid, "addr", e.Addr(), "http_addr", e.HTTPAddr(),
		"user", User, "password_file", e.PasswordFile(), "data_dir", cfg.DataDir)
	return nil
}

// childExited runs when a child process has ended: without a watchdog (or
// while stopping) the engine is over; with one, the watchdog is told.
func (e *Engine) childExited(c *child) {
	e.mu.Lock()
	current := e.cur == c
	final := e.stopping || e.watchStop == nil
	e.mu.Unlock()
	if !current {
		return
	}
	if final {
		e.finish(c)
		return
	}
	if c.termed.Load() { // the watchdog killed it and is starting the next
		return
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// finish marks the engine over, with the last child's exit.
func (e *Engine) finish(c *child) {
	e.doneOnce.Do(func() {
		if c != nil && c.waitErr != nil && !c.termed.Load() {
			e.doneErr = fmt.Errorf("chembed: engine exited: %w: %s", c.waitErr, e.stderr.String())
		}
		close(e.done)
	})
}

// chdbArgs are the clickhouse-local arguments: listen on loopback, then block
// until the process is signalled. Errors and fatal errors go to stderr
// (--logger.console): without it an engine that aborted left nothing to
// read ("signal: aborted: (no output)"), with it the tail that Log and the
// exit error carry ends with the fault's report.
func chdbArgs(cfg Config, conf string) []string {
	return []string{
		"--config-file", conf,
		"--path", cfg.DataDir + string(os.PathSeparator),
		"--listen_host", cfg.ListenHost,
		"--tcp_port", strconv.Itoa(cfg.TCPPort),
		"--http_port", strconv.Itoa(cfg.HTTPPort),
		"--log-level", "error",
		"--logger.console", "1",
		"--query", "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " + keepAlive,
	}
}

// keepAlive is the chdb child's last query: it runs until the process is
// signalled. It needs no privilege beyond reading system.numbers, which is
// what lets the local session's passwordless user hold almost none (see
// usersConfig). Reading the child's stdin to its end would need READ ON FILE,
// and with it any loopback client could read any file the process can.
const keepAlive = "SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null"

func (e *Engine) waitReady(ctx context.Context, c *child) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("chembed: engine exited during start (%v): %s", c.waitErr, e.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("chembed: engine did not answer on %s within %s: %w; stderr: %s", e.HTTPAddr(), e.cfg.StartTimeout, ctx.Err(), e.stderr.String())
		case <-tick.C:
		}
		if e.pingHTTP(ctx, 2*time.Second) == nil {
			return nil
		}
	}
}

// pingHTTP runs SELECT 1 over the HTTP interface as User.
func (e *Engine) pingHTTP(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.HTTPAddr()+"/?query=SELECT%201", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(User, e.password)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "1" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// Addr returns the native protocol address, host:port.
func (e *Engine) Addr() string {
	return net.JoinHostPort(e.cfg.ListenHost, strconv.Itoa(e.cfg.TCPPort))
}

// HTTPAddr returns the HTTP interface address, host:port.
func (e *Engine) HTTPAddr() string {
	return net.JoinHostPort(e.cfg.ListenHost, strconv.Itoa(e.cfg.HTTPPort))
}

// DSN returns a clickhouse-go DSN for database db ("default" when empty),
// with User and the engine's password in it: log it only through
// shared/redact (or url.URL.Redacted).
func (e *Engine) DSN(db string) string {
	if db == "" {
		db = "default"
	}
	u := url.URL{Scheme: "clickhouse", User: url.UserPassword(User, e.password), Host: e.Addr(), Path: "/" + db}
	return u.String()
}

// Password returns the password of User (also in PasswordFile).
func (e *Engine) Password() string { return e.password }

// PasswordFile returns the path of the file that holds the password.
func (e *Engine) PasswordFile() string { return passwordPath(e.cfg.DataDir) }

// Log returns the last lines the engine wrote (stdout and stderr), for
// telling why it died or stopped answering.
func (e *Engine) Log() string { return e.stderr.String() }

// Fatals returns how many lines the engine (any of its children) has
// logged at level Fatal. After a fatal error the engine may answer queries
// for seconds more, then aborts.
func (e *Engine) Fatals() uint64 { return e.stderr.Fatals() }

// PID returns the current child's process id.
func (e *Engine) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.cmd.Process.Pid
}

// Mode returns the engine that runs.
func (e *Engine) Mode() Mode { return e.mode }

// Restarts returns how many times the watchdog has restarted the child.
func (e *Engine) Restarts() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restarts
}

// Exited is closed when the engine is over for good: after Stop, or when
// its child exits and no watchdog restarts it (with a watchdog, only when
// Stop is called).
func (e *Engine) Exited() <-chan struct{} { return e.done }

// Stop stops the watchdog, shuts the engine down and waits for it: SIGTERM,
// then SIGKILL if it has not exited when ctx is done. Safe to call more than
// once and after the engine died; it returns the error of a child that died
// unasked.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.stopping = true
		e.mu.Unlock()
		// The watchdog may be replacing the child: the current one is the
		// one it left.
		if e.watchStop != nil {
			close(e.watchStop)
			<-e.watchDone
		}
		e.mu.Lock()
		c := e.cur
		e.mu.Unlock()
		select {
		case <-c.exited:
			e.finish(c)
			<-e.done
			e.stopErr = e.doneErr
			return
		default:
		}
		if err := c.terminate(ctx); err != nil {
			e.stopErr = err
		}
		e.finish(c)
		<-e.done
		if e.stopErr == nil {
			e.stopErr = e.doneErr
		}
	})
	return e.stopErr
}

// terminate asks the child to stop (SIGTERM; closing stdin ends a server
// reading it too) and kills it if it has not exited when ctx is done.
func (c *child) terminate(ctx context.Context) error {
	c.termed.Store(true)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.stdin.Close()
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("chembed: engine did not stop in time, killed: %w", ctx.Err())
	}
}

func (c *child) kill() {
	c.termed.Store(true)
	_ = c.stdin.Close()
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// checkPortFree fails when host:port cannot be listened on (another
// process holds it), saying so in words an operator acts on.
func checkPortFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s is already in use by another process (another ClickHouse, or a collector already running?): "+
				"stop it or choose another port: %w", addr, err)
		}
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return l.Close()
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("chembed: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
