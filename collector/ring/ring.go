package ring

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states, as Members and View report them.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's gossip address, ip:port.
	Addr string `json:"addr"`
	// State is StateAlive, StateSuspect, StateDead or StateLeft. Alive and
	// suspect members own models; dead and left ones do not.
	//
	// memberlist (v0.7) does not tell its users about suspicion, so a
	// suspect member is reported as alive; ownership is the same either
	// way. A member that left is told apart from a dead one by the "leaving"
	// flag it gossips just before it leaves (Run does this); if that update
	// is lost, the member is reported dead.
	State string `json:"state"`
	// Admin is the member's admin API address (host:port) from its gossip
	// metadata, with an unspecified host replaced by the member's gossip
	// IP; "" when the member advertises none.
	Admin string `json:"admin,omitempty"`
}

// MemberView is a member with the models it owns, as GET /v1/cluster shows it.
type MemberView struct {
	Member
	// Models are the owned models among those given to View, in their
	// order; never nil, so it encodes as [] in JSON.
	Models []string `json:"models"`
}

// ClusterView is the cluster as this node sees it: ready to encode as JSON.
type ClusterView struct {
	// Node is this node's name.
	Node string `json:"node"`
	// Members are sorted by name; this node is one of them while Run runs.
	Members []MemberView `json:"members"`
}

// Ring is this node's membership in the collector cluster and its view of
// which node owns each model. All methods are safe for concurrent use.
// Owner and Owns do not block; they read an immutable snapshot.
type Ring struct {
	cfg Config
	log *slog.Logger
	res resolver

	started atomic.Bool
	leaving atomic.Bool // gossiped in the node meta once Run is stopping

	ring    atomic.Pointer[hashRing] // replaced under mu
	version atomic.Uint64            // bumped under mu

	mu      sync.Mutex
	stopped bool // Run has returned: ignore late events
	members map[string]*member
	subs    map[int]chan struct{}
	nextSub int

	// Test hooks, set before Run.
	bridge *logBridge // memberlist's logs; set by Run

	drop      func(addr string) bool // cut links to these addresses
	noLeave   atomic.Bool            // stop like a crash: no leave, just shutdown
	joinTries atomic.Int64           // join attempts made (after resolving)
	joinErr   atomic.Pointer[string] // last join or resolve problem, "" when none
}

type member struct {
	addr   string
	state  string
	since  time.Time
	vnodes int
	meta   nodeMeta
}

// New checks cfg and returns a Ring that is not yet a member of anything:
// Run joins the cluster. Zero fields of cfg take their defaults.
func New(cfg Config) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ring config: %w", err)
	}
	cfg = cfg.withDefaults()
	r := &Ring{
		cfg:     cfg,
		log:     cfg.Logger, // the caller names the component and the node
		res:     net.DefaultResolver,
		members: make(map[string]*member),
		subs:    make(map[int]chan struct{}),
	}
	r.ring.Store(newHashRing(nil))
	return r, nil
}

// Name is this node's name in the cluster.
func (r *Ring) Name() string { return r.cfg.NodeName }

// Run starts gossip, joins the configured peers and keeps re-joining those
// that are not alive members every RejoinInterval (a failed first join is
// logged and retried, it is not an error). When ctx is cancelled it leaves
// the cluster gracefully (bounded by LeaveTimeout), shuts gossip down and
// returns nil; the ring is then empty. It returns an error only when gossip
// cannot start (address in use, no address to advertise). Every goroutine
// Run starts has ended when it returns, except memberlist's own listeners,
// which have been told to stop and end immediately after. Run may be called
// once.
func (r *Ring) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("ring: Run called more than once")
	}
	ml, err := r.start(ctx)
	if err != nil {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		return err
	}
	r.log.Info("gossip started", "addr", r.Addr(), "join", r.cfg.Join)
	r.rejoinLoop(ctx, ml)
	r.stop(ml)
	return nil
}

// start creates the memberlist; ctx bounds its dials.
func (r *Ring) start(ctx context.Context) (*memberlist.Memberlist, error) {
	c := r.cfg
	r.bridge = newLogBridge(r.log)
	logger := log.New(r.bridge, "", 0)
	host, port, _ := splitBindAddr(c.BindAddr) // checked by New

	// A port of 0 lets the kernel pick a TCP port that may then be taken
	// for UDP; retry like memberlist does for its own transport.
	var nt *memberlist.NetTransport
	var err error
	for range 10 {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err == nil || port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ring: listen for gossip on %s: %w", c.BindAddr, err)
	}
	if port == 0 {
		port = nt.GetAutoBindPort()
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if c.AdvertiseAddr != "" {
		ip, aport, _ := splitAdvertiseAddr(c.AdvertiseAddr)
		mc.AdvertiseAddr = ip
		if aport != 0 {
			mc.AdvertisePort = aport
		}
	}
	mc.Transport = &transport{NetTransport: nt, ctx: ctx, drop: r.drop}
	mc.SecretKey = c.SecretKey
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.GossipInterval = c.GossipInterval
	mc.PushPullInterval = c.PushPullInterval
	mc.GossipToTheDeadTime = c.PushPullInterval
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	mc.Delegate = delegate{r}
	mc.Events = events{r}
	mc.Logger = logger

	ml, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("ring: start gossip on %s: %w", c.BindAddr, err)
	}
	return ml, nil
}

// rejoinLoop joins the configured peers now and every RejoinInterval until
// ctx is done.
func (r *Ring) rejoinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	if len(r.cfg.Join) == 0 {
		<-ctx.Done()
		return
	}
	r.rejoin(ctx, ml)
	t := time.NewTicker(r.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.rejoin(ctx, ml)
		}
	}
}

// rejoin resolves the Join entries and joins every address that is not an
// alive (or suspect) member. This heals what memberlist alone does not: a
// seed that restarted after the others forgot it, and both sides of a
// partition that lasted longer than the dead are gossiped to.
func (r *Ring) rejoin(ctx context.Context, ml *memberlist.Memberlist) {
	addrs, resolveErr := resolveJoin(ctx, r.res, r.cfg.Join)
	// Our member table, not ml.Members(): memberlist hands out pointers to
	// nodes it keeps updating, so reading their addresses would race.
	present := make(map[string]bool)
	r.mu.Lock()
	for _, m := range r.members {
		if owns(m.state) {
			present[m.addr] = true
		}
	}
	r.mu.Unlock()
	var missing []string
	for _, a := range addrs {
		if !present[a] {
			missing = append(missing, a)
		}
	}
	var joinErr error
	if len(missing) > 0 && ctx.Err() == nil {
		r.joinTries.Add(1)
		n, err := ml.Join(missing)
		switch {
		case err != nil && n == 0:
			joinErr = fmt.Errorf("join %s: %w", strings.Join(missing, ", "), err)
		default:
			if err != nil {
				// Some peers answered, so this node is in the cluster;
				// the others are probably down.
				r.log.Debug("some peers did not answer", "joined", n, "tried", missing, "err", err)
			}
			if after := ml.NumMembers(); after > len(present) {
				r.log.Info("joined cluster", "via", n, "members", after)
			} else {
				r.log.Debug("join attempt reached peers", "via", n, "tried", missing, "members", after)
			}
		}
	}
	if ctx.Err() != nil {
		return // shutting down: dials were cancelled, not failed
	}
	r.noteJoinProblem(errors.Join(resolveErr, joinErr))
}

// noteJoinProblem logs a failed join attempt as a warning when it differs
// from the previous attempt's problem and at debug level when it repeats, so
// a peer that stays down costs one warning, not one per RejoinInterval.
func (r *Ring) noteJoinProblem(err error) {
	msg := ""
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	prev := r.joinErr.Swap(&msg)
	switch {
	case err == nil && prev != nil && *prev != "":
		r.log.Info("configured peers reachable again")
	case err == nil:
	case prev != nil && *prev == msg:
		r.log.Debug("join failed again; retrying", "every", r.cfg.RejoinInterval, "err", msg)
	default:
		r.log.Warn("join failed; retrying", "every", r.cfg.RejoinInterval, "err", msg)
	}
}

// stop leaves the cluster (unless a test simulates a crash) and shuts
// memberlist down, then empties the ring.
func (r *Ring) stop(ml *memberlist.Memberlist) {
	if !r.noLeave.Load() {
		// Gossip the leaving flag first so that peers report this node as
		// left rather than dead, then the leave itself. Both wait for the
		// broadcast to go out, within the budget.
		deadline := time.Now().Add(r.cfg.LeaveTimeout)
		r.leaving.Store(true)
		if err := ml.UpdateNode(r.cfg.LeaveTimeout / 2); err != nil {
			r.log.Debug("announce leave", "err", err)
		}
		if err := ml.Leave(max(time.Until(deadline), 100*time.Millisecond)); err != nil {
			r.log.Warn("leave cluster: peers will notice the node is gone by probing", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		r.log.Warn("shut down gossip", "err", err)
	}
	// memberlist's goroutines may still report sends on closed sockets.
	r.bridge.quiet.Store(true)
	r.mu.Lock()
	r.stopped = true
	clear(r.members)
	r.rebuildLocked()
	r.mu.Unlock()
	r.log.Info("left cluster")
}

// nodeAlive records a member that joined or changed its metadata.
func (r *Ring) nodeAlive(n *memberlist.Node) {
	meta := decodeMeta(n.Meta)
	state := StateAlive
	if n.State == memberlist.StateSuspect { // not set by memberlist v0.7
		state = StateSuspect
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	m := r.members[n.Name]
	if m == nil {
		m = &member{}
		r.members[n.Name] = m
	}
	addr := n.Address()
	if m.state != state || m.addr != addr {
		if n.Name != r.cfg.NodeName {
			r.log.Info("member "+state, "member", n.Name, "addr", addr)
		}
		m.since = time.Now()
	}
	m.addr, m.state, m.meta = addr, state, meta
	m.vnodes = meta.vnodes
	if m.vnodes == 0 {
		m.vnodes = r.cfg.VirtualNodes
	}
	if m.vnodes > MaxVirtualNodes {
		if n.Name != r.cfg.NodeName {
			r.log.Warn("member advertises too many virtual nodes; capped", "member", n.Name, "virtual_nodes", m.vnodes, "max", MaxVirtualNodes)
		}
		m.vnodes = MaxVirtualNodes
	}
	r.rebuildLocked()
}

// nodeGone records a member that memberlist declared dead or that left.
func (r *Ring) nodeGone(n *memberlist.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	m := r.members[n.Name]
	if m == nil {
		m = &member{addr: n.Address(), meta: decodeMeta(n.Meta)}
		r.members[n.Name] = m
	}
	state := StateDead
	if n.State == memberlist.StateLeft || m.meta.leaving || decodeMeta(n.Meta).leaving || n.Name == r.cfg.NodeName {
		state = StateLeft
	}
	if m.state != state && n.Name != r.cfg.NodeName {
		r.log.Info("member "+state, "member", n.Name, "addr", m.addr)
	}
	m.state, m.since = state, time.Now()
	r.rebuildLocked()
}

// rebuildLocked forgets members that have been dead or gone longer than
// memberlist remembers them, and replaces the hash ring if the set of
// owning members changed, telling subscribers. r.mu must be held.
func (r *Ring) rebuildLocked() {
	r.pruneLocked()
	weights := make(map[string]int)
	for name, m := range r.members {
		if owns(m.state) {
			weights[name] = m.vnodes
		}
	}
	if r.ring.Load().sameNodes(weights) {
		return
	}
	r.ring.Store(newHashRing(weights))
	r.version.Add(1)
	for _, ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default: // a change is already pending for this subscriber
		}
	}
}

func (r *Ring) pruneLocked() {
	for name, m := range r.members {
		if !owns(m.state) && time.Since(m.since) > r.cfg.PushPullInterval {
			delete(r.members, name)
		}
	}
}

// owns reports whether a member in this state holds models.
func owns(state string) bool { return state == StateAlive || state == StateSuspect }

// Owner returns the node that owns model, and false when the ring is empty
// (Run is not running). Nodes that see the same members return the same
// owner.
func (r *Ring) Owner(model string) (node string, ok bool) {
	return r.ring.Load().owner(model)
}

// OwnerAdmin returns the node that owns model and its admin API address
// (see Member.Admin; "" when it advertises none), and false when the ring
// is empty.
func (r *Ring) OwnerAdmin(model string) (node, admin string, ok bool) {
	node, ok = r.Owner(model)
	if !ok {
		return "", "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[node]; m != nil {
		admin = adminAddr(m)
	}
	return node, admin, true
}

// adminAddr is m's admin address with an unspecified host replaced by the
// IP of its gossip address.
func adminAddr(m *member) string {
	if m.meta.admin == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(m.meta.admin)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		gossipHost, _, err := net.SplitHostPort(m.addr)
		if err != nil {
			return ""
		}
		host = gossipHost
	}
	return net.JoinHostPort(host, port)
}

// Owns reports whether this node owns model. It is false before Run has
// started, after it returned, and from the moment this node leaves.
func (r *Ring) Owns(model string) bool {
	node, ok := r.Owner(model)
	return ok && node == r.cfg.NodeName
}

// Version counts ownership changes: it increases each time the set of
// members that own models changes, and never otherwise.
func (r *Ring) Version() uint64 { return r.version.Load() }

// Subscribe returns a channel that receives a value after each ownership
// change (coalesced: one pending value stands for any number of changes;
// read Owner or Owns again when it fires) and a function that ends the
// subscription. The channel is never closed.
func (r *Ring) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	id := r.nextSub
	r.nextSub++
	r.subs[id] = ch
	r.mu.Unlock()
	return ch, sync.OnceFunc(func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
	})
}

// Addr is this node's advertised gossip address (ip:port), or "" when Run
// is not running.
func (r *Ring) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[r.cfg.NodeName]; m != nil {
		return m.addr
	}
	return ""
}

// Members lists the members this node knows, itself included, sorted by
// name: alive and suspect ones, and dead or left ones until memberlist
// forgets them (PushPullInterval after they went).
func (r *Ring) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.membersLocked()
}

func (r *Ring) membersLocked() []Member {
	r.pruneLocked()
	out := make([]Member, 0, len(r.members))
	for name, m := range r.members {
		out = append(out, Member{Name: name, Addr: m.addr, State: m.state, Admin: adminAddr(m)})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// View returns the members, each with the models it owns among models, for
// the admin API. Members and owners come from one snapshot.
func (r *Ring) View(models []string) ClusterView {
	r.mu.Lock()
	members := r.membersLocked()
	hr := r.ring.Load()
	r.mu.Unlock()

	v := ClusterView{Node: r.cfg.NodeName, Members: make([]MemberView, len(members))}
	index := make(map[string]int, len(members))
	for i, m := range members {
		v.Members[i] = MemberView{Member: m, Models: []string{}}
		index[m.Name] = i
	}
	for _, model := range models {
		if node, ok := hr.owner(model); ok {
			if i, ok := index[node]; ok {
				v.Members[i].Models = append(v.Members[i].Models, model)
			}
		}
	}
	return v
}
