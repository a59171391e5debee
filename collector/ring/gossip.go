package ring

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file adapts memberlist to the Ring: node metadata, the event and
// meta delegates, a transport whose dials end with Run, and a log bridge.

// metaVersion is the first byte of the node metadata each member gossips.
// Layout: version, flags, virtual nodes (uint16, big endian), then (since
// version 2) the admin address: a length byte and that many bytes.
// Decoders read the fields they know and ignore the rest, so later
// versions may append.
const metaVersion = 2

const metaLeaving = 1 << 0 // the node is leaving gracefully

type nodeMeta struct {
	vnodes  int // 0: unknown, use the local VirtualNodes
	leaving bool
	admin   string // Config.AdminAddr as the node gave it; "" when none
}

func (m nodeMeta) encode() []byte {
	var flags byte
	if m.leaving {
		flags |= metaLeaving
	}
	admin := m.admin
	if len(admin) > 255 { // Config.Validate refuses it; never cut an address in half
		admin = ""
	}
	b := []byte{metaVersion, flags, byte(m.vnodes >> 8), byte(m.vnodes), byte(len(admin))}
	return append(b, admin...)
}

func decodeMeta(b []byte) nodeMeta {
	if len(b) < 4 || b[0] < 1 {
		return nodeMeta{}
	}
	m := nodeMeta{leaving: b[1]&metaLeaving != 0, vnodes: int(b[2])<<8 | int(b[3])}
	if b[0] >= 2 && len(b) >= 5 && len(b) >= 5+int(b[4]) {
		m.admin = string(b[5 : 5+int(b[4])])
	}
	return m
}

// delegate gives memberlist this node's metadata. memberlist calls
// NodeMeta when it (re)advertises the node; the rest is unused.
type delegate struct{ r *Ring }

func (d delegate) NodeMeta(limit int) []byte {
	return nodeMeta{vnodes: d.r.cfg.VirtualNodes, leaving: d.r.leaving.Load(), admin: d.r.cfg.AdminAddr}.encode()
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events receives membership changes. memberlist calls it with its node
// lock held, one call at a time: it must not call back into memberlist.
type events struct{ r *Ring }

func (e events) NotifyJoin(n *memberlist.Node)   { e.r.nodeAlive(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.r.nodeAlive(n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.r.nodeGone(n) }

// errDropped is what a dial fails with when a test cuts the link.
var errDropped = errors.New("ring: link cut by test")

// transport is memberlist's UDP/TCP transport with two changes: dials use
// the Run context, so a join or push/pull in flight ends as soon as Run is
// cancelled instead of after TCPTimeout; and tests can cut links (drop).
type transport struct {
	*memberlist.NetTransport
	ctx  context.Context
	drop func(addr string) bool // nil in production
}

func (t *transport) dropped(addr string) bool { return t.drop != nil && t.drop(addr) }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.dropped(addr) {
		return time.Now(), nil // lost in the network
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.dropped(a.Addr) {
		return nil, errDropped
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.ctx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(t.ctx, func() { conn.Close() })
	return &ctxConn{Conn: conn, stop: stop}, nil
}

// ctxConn is a dialled connection that is closed when the Run context ends.
type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// logBridge turns memberlist's log lines ("[WARN] memberlist: text") into
// slog records: warnings and errors at their level, the rest at debug. A
// warning or error that repeats within repeatWindow is demoted to debug, so
// a peer that keeps failing does not flood the log; once gossip is shut
// down, everything is debug (sends racing the closed sockets).
type logBridge struct {
	log   *slog.Logger
	quiet atomic.Bool // after shutdown: everything at debug level

	mu   sync.Mutex
	seen map[string]time.Time
}

const repeatWindow = 30 * time.Second

func newLogBridge(log *slog.Logger) *logBridge {
	return &logBridge{log: log.With("library", "memberlist"), seen: make(map[string]time.Time)}
}

func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "] "); ok {
			switch tag {
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = msg
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level > slog.LevelDebug && (b.quiet.Load() || b.repeated(line)) {
		level = slog.LevelDebug
	}
	b.log.Log(context.Background(), level, line)
	return len(p), nil
}

// repeated reports whether a line of the same kind (its first words, which
// name what failed and usually the peer) was logged within repeatWindow.
func (b *logBridge) repeated(line string) bool {
	key := line
	if f := strings.Fields(line); len(f) > 6 {
		key = strings.Join(f[:6], " ")
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.seen[key]; ok && now.Sub(t) < repeatWindow {
		return true
	}
	if len(b.seen) >= 1000 { // bounded: forget what is old, or everything
		for k, t := range b.seen {
			if now.Sub(t) >= repeatWindow {
				delete(b.seen, k)
			}
		}
		if len(b.seen) >= 1000 {
			clear(b.seen)
		}
	}
	b.seen[key] = now
	return false
}
