package chembed

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Watchdog says how an engine is watched. With Interval zero (the default)
// there is no watchdog: a child that exits ends the engine (Exited closes)
// and one that stops answering is left as it is.
//
// With a watchdog, every Interval the engine is pinged over both the native
// protocol (a handshake and a ping as User, what the collector does) and the
// HTTP interface (SELECT 1), each bounded by Timeout. After Failures
// consecutive failed rounds, or as soon as the child exits, the child is
// killed and a new one started on the same data directory, ports and
// password: data already written stays on disk and clients reconnect to the
// same address. Each restart is logged at warn level with the reason, counted
// in Restarts and reported to OnRestart. A restart that fails is logged and
// tried again on the next round.
type Watchdog struct {
	// Interval between pings; zero disables the watchdog.
	Interval time.Duration
	// Timeout bounds each ping; default 5s.
	Timeout time.Duration
	// Failures is how many consecutive failed rounds restart the child;
	// default 3.
	Failures int
	// OnRestart, when set, is called after each restart attempt with its
	// reason and the restart's error (nil when the new child answers). It
	// must not block.
	OnRestart func(reason string, err error)
}

// DefaultWatchdog is the watchdog of the collector's embedded engine.
func DefaultWatchdog() Watchdog {
	return Watchdog{Interval: 5 * time.Second, Timeout: 5 * time.Second, Failures: 3}
}

func (w Watchdog) withDefaults() Watchdog {
	if w.Timeout <= 0 {
		w.Timeout = 5 * time.Second
	}
	if w.Failures <= 0 {
		w.Failures = 3
	}
	return w
}

// startWatchdog starts the watchdog goroutine when one is configured; Stop
// ends it.
func (e *Engine) startWatchdog() {
	if e.cfg.Watchdog.Interval <= 0 {
		return
	}
	e.cfg.Watchdog = e.cfg.Watchdog.withDefaults()
	e.mu.Lock()
	e.watchStop, e.watchDone = make(chan struct{}), make(chan struct{})
	exited := e.cur.exited
	e.mu.Unlock()
	// A child that died between its start and now was finished by
	// childExited before watchStop existed; nothing to watch then.
	select {
	case <-exited:
		close(e.watchDone)
		return
	default:
	}
	go e.watch()
}

func (e *Engine) watch() {
	defer close(e.watchDone)
	w := e.cfg.Watchdog
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.watchStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	failures := 0
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			e.mu.Lock()
			c := e.cur
			e.mu.Unlock()
			e.restart(ctx, fmt.Sprintf("the engine process exited (%v)", c.waitErr))
			failures = 0
			continue
		case <-tick.C:
		}
		if err := e.Ping(ctx, w.Timeout); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			lastErr = err
			e.cfg.Logger.Debug("clickhouse engine ping failed", "failures", failures, "err", err)
			if failures < w.Failures {
				continue
			}
			e.restart(ctx, fmt.Sprintf("%d pings failed in a row, the last: %v", failures, lastErr))
		}
		failures = 0
	}
}

// restart replaces the current child with a new one. On failure the
// watchdog tries again on its next round (the failed child is gone, so that
// round's ping fails too).
func (e *Engine) restart(ctx context.Context, reason string) {
	e.mu.Lock()
	old := e.cur
	e.restarts++
	n := e.restarts
	e.mu.Unlock()
	e.cfg.Logger.Warn("clickhouse engine stopped answering; restarting it on the same data directory",
		"reason", reason, "pid", old.cmd.Process.Pid, "restart", n, "addr", e.Addr())
	old.kill()
	// A chdb child that has not exited may still hold the ports for a moment;
	// startChild's readiness wait covers a slow start, not a bind failure, so
	// a failure here is retried by the next round.
	err := e.startChild(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		e.cfg.Logger.Error("clickhouse engine restart failed; trying again", "restart", n, "err", err)
	} else {
		e.cfg.Logger.Info("clickhouse engine restarted", "restart", n, "pid", e.PID())
	}
	if e.cfg.Watchdog.OnRestart != nil {
		e.cfg.Watchdog.OnRestart(reason, err)
	}
}

// Ping checks that the engine answers over both protocols within timeout:
// a native handshake and ping as User, and SELECT 1 over HTTP.
func (e *Engine) Ping(ctx context.Context, timeout time.Duration) error {
	if err := e.pingNative(ctx, timeout); err != nil {
		return fmt.Errorf("native %s: %w", e.Addr(), err)
	}
	if err := e.pingHTTP(ctx, timeout); err != nil {
		return fmt.Errorf("http %s: %w", e.HTTPAddr(), err)
	}
	return nil
}

func (e *Engine) pingNative(ctx context.Context, timeout time.Duration) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{e.Addr()},
		Auth:        clickhouse.Auth{Username: User, Password: e.password},
		DialTimeout: timeout,
		ReadTimeout: timeout,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return conn.Ping(ctx)
}
