package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cenkalti/backoff/v5"
)

// Results of an audit entry.
const (
	ResultOK     = "ok"
	ResultFailed = "failed"
	ResultDenied = "denied"
)

// Entry is one row of audit_log.
type Entry struct {
	// Time defaults to now.
	Time time.Time
	// Token is the token's name ("" when the request had no known token);
	// Role its role.
	Token string
	Role  Role
	// Action is what was asked: "METHOD /pattern" for HTTP, the full method
	// for gRPC, or a name such as "token.bootstrap".
	Action string
	// Target is what it was asked of: the request's path, or an object
	// named by the handler (see Note).
	Target string
	// Result is ResultOK, ResultFailed or ResultDenied.
	Result string
	// Remote is the client's address.
	Remote string
	// Detail says more: the status code, why a request was denied.
	Detail string
}

// Limits of the audit log.
const (
	// auditQueue entries wait for the writer at most; Audit drops what
	// does not fit (counted in AuditDropped).
	auditQueue = 4096
	// auditBatch entries are written in one insert at most.
	auditBatch = 512
	// denialBurst denials per remote host and token name are written per
	// denialWindow; the rest are counted and written as one summary entry
	// when the window ends.
	denialBurst  = 3
	denialWindow = time.Minute
	// denialKeys (remote host, token name) pairs are tracked per window;
	// denials from further pairs share one counter, so a flood from many
	// addresses cannot grow memory or the table without bound.
	denialKeys = 1024
	// fieldMax caps every string field of an entry (bytes).
	fieldMax = 1024
)

// auditor is the audit queue and the denial rate limit.
type auditor struct {
	queue   chan Entry
	dropped atomic.Uint64
	flush   time.Duration // how often the writer flushes; tests shorten it

	mu          sync.Mutex
	windowStart time.Time
	denials     map[string]*denialCount
}

type denialCount struct {
	written, suppressed int
	last                Entry
}

const overflowKey = "\x00overflow"

func (au *auditor) init() {
	au.queue = make(chan Entry, auditQueue)
	au.flush = time.Second
	au.denials = map[string]*denialCount{}
}

// Audit queues e for audit_log and returns at once: it never blocks a
// request. An entry that does not fit in the queue (the writer is behind
// or ClickHouse is down for long) is dropped and counted (AuditDropped).
// Empty Time is now; an empty Token is taken from the Principal in ctx.
// Denials go through Deny, which rate-limits them.
func (a *Authenticator) Audit(ctx context.Context, e Entry) {
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	if e.Token == "" && ctx != nil {
		if p, ok := FromContext(ctx); ok {
			e.Token, e.Role = p.Name, p.Role
		}
	}
	select {
	case a.audit.queue <- e:
	default:
		a.audit.dropped.Add(1)
	}
}

// AuditDropped is how many audit entries were dropped because the queue
// was full.
func (a *Authenticator) AuditDropped() uint64 { return a.audit.dropped.Load() }

// Deny audits a denied request, rate-limited: per remote host and token
// name, the first denialBurst (3) denials of a minute are written; the
// rest are counted and written as one entry ("N more denials like this
// suppressed") when the minute ends. Result is set to ResultDenied.
func (a *Authenticator) Deny(ctx context.Context, e Entry) {
	e.Result = ResultDenied
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	key := remoteHost(e.Remote) + "\x00" + e.Token
	au := &a.audit
	au.mu.Lock()
	summaries := au.rollLocked(e.Time)
	c := au.denials[key]
	if c == nil {
		if len(au.denials) >= denialKeys {
			key = overflowKey
			c = au.denials[key]
		}
		if c == nil {
			c = &denialCount{}
			au.denials[key] = c
		}
	}
	write := c.written < denialBurst && key != overflowKey
	if write {
		c.written++
	} else {
		c.suppressed++
		c.last = e
		if key == overflowKey {
			c.last.Remote, c.last.Token, c.last.Role = "(many)", "(many)", ""
		}
	}
	au.mu.Unlock()
	for _, s := range summaries {
		a.Audit(ctx, s)
	}
	if write {
		a.Audit(ctx, e)
	}
}

// rollLocked ends the current denial window if it has passed (at now) and
// returns the summary entries of its suppressed denials.
func (au *auditor) rollLocked(now time.Time) []Entry {
	if au.windowStart.IsZero() {
		au.windowStart = now
		return nil
	}
	if now.Sub(au.windowStart) < denialWindow {
		return nil
	}
	var out []Entry
	for _, c := range au.denials {
		if c.suppressed == 0 {
			continue
		}
		e := c.last
		e.Time = now
		e.Detail = fmt.Sprintf("%d more denials like this one suppressed between %s and %s; the last: %s",
			c.suppressed, au.windowStart.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), e.Detail)
		out = append(out, e)
	}
	clear(au.denials)
	au.windowStart = now
	return out
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// runAudit writes queued entries to audit_log in batches (every second, or
// at auditBatch entries) until ctx is done, then writes what is left. A
// failed insert is retried with backoff, holding at most auditQueue
// entries (older ones are dropped and counted).
func (a *Authenticator) runAudit(ctx context.Context) {
	t := time.NewTicker(a.audit.flush)
	defer t.Stop()
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval = 30 * time.Second
	var retryAt time.Time
	var failing failLog
	var buf []Entry
	flush := func(ctx context.Context, force bool) {
		if len(buf) == 0 || (!force && time.Now().Before(retryAt)) {
			return
		}
		if err := a.writeAudit(ctx, buf); err != nil {
			if failing.fail(time.Now()) {
				a.log.Warn("auth: cannot write audit_log; keeping entries to retry", "entries", len(buf), "err", err)
			}
			retryAt = time.Now().Add(bo.NextBackOff())
			if over := len(buf) - auditQueue; over > 0 {
				a.audit.dropped.Add(uint64(over))
				buf = append(buf[:0], buf[over:]...)
			}
			return
		}
		if failing.recover() {
			a.log.Info("auth: audit_log written again")
		}
		bo.Reset()
		retryAt = time.Time{}
		buf = buf[:0]
	}
	for {
		select {
		case <-ctx.Done():
		drain:
			for {
				select {
				case e := <-a.audit.queue:
					buf = append(buf, e)
				default:
					break drain
				}
			}
			a.audit.mu.Lock()
			buf = append(buf, a.audit.rollLocked(a.now().Add(denialWindow))...)
			a.audit.mu.Unlock()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			flush(fctx, true)
			cancel()
			return
		case e := <-a.audit.queue:
			buf = append(buf, e)
			if len(buf) >= auditBatch {
				flush(ctx, false)
			}
		case <-t.C:
			a.audit.mu.Lock()
			buf = append(buf, a.audit.rollLocked(a.now())...)
			a.audit.mu.Unlock()
			flush(ctx, false)
		}
	}
}

// writeAudit inserts entries into audit_log, or logs them when there is no
// ClickHouse connection.
func (a *Authenticator) writeAudit(ctx context.Context, entries []Entry) error {
	if a.opts.Conn == nil {
		for _, e := range entries {
			a.log.Info("audit", "time", e.Time, "token", e.Token, "role", string(e.Role), "action", e.Action,
				"target", e.Target, "result", e.Result, "remote", e.Remote, "detail", e.Detail)
		}
		return nil
	}
	// Two equal entries (same time, address and detail) in two inserts are
	// two events, but the table's deduplication window would drop the
	// second insert as a repeat of the first: every attempt gets a
	// deduplication token of its own. A retried insert that had in fact
	// been stored may then leave a duplicate, rather than a loss.
	var id [16]byte
	_, _ = rand.Read(id[:])
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token": "audit-" + hex.EncodeToString(id[:]),
	}))
	b, err := a.opts.Conn.PrepareBatch(ctx, "INSERT INTO "+a.opts.Database+
		".audit_log (time, node, token_name, role, action, target, result, remote_addr, detail)")
	if err != nil {
		return fmt.Errorf("insert into %s.audit_log: %w", a.opts.Database, err)
	}
	defer b.Close()
	for _, e := range entries {
		if err := b.Append(e.Time.UTC(), a.opts.Node, capField(e.Token), string(e.Role), capField(e.Action),
			capField(e.Target), e.Result, capField(e.Remote), capField(e.Detail)); err != nil {
			return fmt.Errorf("insert into %s.audit_log: %w", a.opts.Database, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s.audit_log: %w", a.opts.Database, err)
	}
	return nil
}

func capField(s string) string { return truncate(s, fieldMax) }
