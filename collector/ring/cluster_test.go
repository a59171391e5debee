package ring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/drover-ml/drover/shared/testenv"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testNode is a Ring running in this process.
type testNode struct {
	t      testing.TB
	r      *Ring
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// testLogger returns a debug logger whose output t prints if it fails.
func testLogger(t testing.TB) *slog.Logger {
	buf := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startNode runs a Ring with cfg until the test ends (or stop/kill), and
// waits until it is gossiping.
func startNode(t testing.TB, cfg Config, setup ...func(*Ring)) *testNode {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t).With("node", cfg.NodeName)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{t: t, r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- r.Run(ctx) }()
	t.Cleanup(n.stop)
	testenv.EventuallyNil(t, 10*time.Second, cfg.NodeName+" gossiping", func() error {
		select {
		case err := <-n.done:
			n.done <- err
			return fmt.Errorf("Run returned early: %v", err)
		default:
		}
		if r.Addr() == "" {
			return errors.New("no address yet")
		}
		return nil
	})
	return n
}

// stop cancels Run (a graceful leave) and waits for it; stopping twice is
// fine.
func (n *testNode) stop() {
	n.t.Helper()
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				n.t.Errorf("%s: Run: %v", n.r.Name(), err)
			}
		case <-time.After(15 * time.Second):
			n.t.Errorf("%s: Run did not return within 15s of cancel", n.r.Name())
		}
	})
}

// kill stops the node like SIGKILL would, as far as its peers can tell: no
// leave message, gossip just stops.
func (n *testNode) kill() {
	n.r.noLeave.Store(true)
	n.stop()
}

// agreed checks that every node sees exactly the named nodes alive and that
// they all name the same owner, one of those nodes, for every model. It
// returns that assignment.
func agreed(nodes []*testNode, models []string) (map[string]string, error) {
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.r.Name()
	}
	slices.Sort(want)
	for _, n := range nodes {
		var alive []string
		for _, m := range n.r.Members() {
			if owns(m.State) {
				alive = append(alive, m.Name)
			}
		}
		if !slices.Equal(alive, want) {
			return nil, fmt.Errorf("%s sees %v alive, want %v", n.r.Name(), alive, want)
		}
	}
	owners := make(map[string]string, len(models))
	for _, model := range models {
		for i, n := range nodes {
			o, ok := n.r.Owner(model)
			if !ok {
				return nil, fmt.Errorf("%s: no owner for %s", n.r.Name(), model)
			}
			if i == 0 {
				owners[model] = o
			} else if o != owners[model] {
				return nil, fmt.Errorf("owner of %s: %s says %s, %s says %s", model, nodes[0].r.Name(), owners[model], n.r.Name(), o)
			}
		}
		if !slices.Contains(want, owners[model]) {
			return nil, fmt.Errorf("owner of %s is %s, not one of %v", model, owners[model], want)
		}
	}
	return owners, nil
}

func waitAgreed(t testing.TB, timeout time.Duration, nodes []*testNode, models []string) map[string]string {
	t.Helper()
	var owners map[string]string
	testenv.EventuallyNil(t, timeout, "cluster agreement", func() (err error) {
		owners, err = agreed(nodes, models)
		return err
	})
	return owners
}

// startCluster starts n nodes named n0, n1, ...; all but n0 join n0.
func startCluster(t testing.TB, n int, cfg func(name string) Config) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, cfg("n0"))}
	for i := 1; i < n; i++ {
		c := cfg(fmt.Sprintf("n%d", i))
		c.Join = []string{nodes[0].r.Addr()}
		nodes = append(nodes, startNode(t, c))
	}
	return nodes
}

func stateOf(r *Ring, name string) string {
	for _, m := range r.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// movedOnly checks that between two assignments only the models of node
// changed owner.
func movedOnly(before, after map[string]string, node string) error {
	moved := 0
	for model, was := range before {
		now := after[model]
		switch {
		case was == node && now == node:
			return fmt.Errorf("%s still owned by %s", model, node)
		case was == node:
			moved++
		case now != was:
			return fmt.Errorf("%s moved from %s to %s, though only %s changed", model, was, now, node)
		}
	}
	if moved == 0 {
		return fmt.Errorf("%s owned nothing: the test proves nothing", node)
	}
	return nil
}

const convergeTimeout = 20 * time.Second

func TestClusterConverges(t *testing.T) {
	models := modelNames(200)
	nodes := startCluster(t, 3, LoopbackConfig)
	owners := waitAgreed(t, convergeTimeout, nodes, models)

	for _, model := range models {
		var claim []string
		for _, n := range nodes {
			if n.r.Owns(model) {
				claim = append(claim, n.r.Name())
			}
		}
		if len(claim) != 1 || claim[0] != owners[model] {
			t.Fatalf("%s is claimed by %v, want exactly [%s]", model, claim, owners[model])
		}
	}
	count := make(map[string]int)
	for _, o := range owners {
		count[o]++
	}
	t.Logf("models per node: %v", count)
	if len(count) != 3 {
		t.Errorf("only %d nodes own models: %v", len(count), count)
	}

	// The admin view: every member with its addr and state, and the models
	// it owns; the view of every node is the same apart from "node".
	v := nodes[1].r.View(models)
	if v.Node != "n1" || len(v.Members) != 3 {
		t.Fatalf("view = %+v", v)
	}
	total := 0
	for i, m := range v.Members {
		if m.Name != fmt.Sprintf("n%d", i) || m.State != StateAlive || m.Addr != nodes[i].r.Addr() {
			t.Errorf("member %d = %+v, want n%d alive at %s", i, m.Member, i, nodes[i].r.Addr())
		}
		if len(m.Models) != count[m.Name] {
			t.Errorf("view: %s owns %d models, want %d", m.Name, len(m.Models), count[m.Name])
		}
		total += len(m.Models)
	}
	if total != len(models) {
		t.Errorf("view assigns %d models, want %d", total, len(models))
	}
	b, err := json.Marshal(nodes[0].r.View(nil))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Node    string `json:"node"`
		Members []map[string]any
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Node != "n0" || len(raw.Members) != 3 || !strings.Contains(string(b), `"models":[]`) {
		t.Errorf("JSON view = %s", b)
	}
	for _, k := range []string{"name", "addr", "state", "models"} {
		if _, ok := raw.Members[0][k]; !ok {
			t.Errorf("JSON member lacks %q: %s", k, b)
		}
	}
}

func TestGracefulLeaveMovesOnlyItsModels(t *testing.T) {
	models := modelNames(200)
	nodes := startCluster(t, 3, LoopbackConfig)
	before := waitAgreed(t, convergeTimeout, nodes, models)

	changes, unsubscribe := nodes[0].r.Subscribe()
	defer unsubscribe()
	v0 := nodes[0].r.Version()

	start := time.Now()
	nodes[2].stop()
	after := waitAgreed(t, convergeTimeout, nodes[:2], models)
	t.Logf("graceful leave to reassignment: %s", time.Since(start).Round(time.Millisecond))
	if err := movedOnly(before, after, "n2"); err != nil {
		t.Error(err)
	}
	if s := stateOf(nodes[0].r, "n2"); s != StateLeft {
		t.Errorf("n0 lists n2 as %q, want %q", s, StateLeft)
	}
	select {
	case <-changes:
	default:
		t.Error("no ownership change was signalled to the subscriber")
	}
	if v := nodes[0].r.Version(); v <= v0 {
		t.Errorf("version %d after a leave, was %d", v, v0)
	}

	// The stopped node owns nothing and knows no one.
	for _, model := range models {
		if nodes[2].r.Owns(model) {
			t.Fatalf("stopped node still owns %s", model)
		}
	}
	if _, ok := nodes[2].r.Owner(models[0]); ok || len(nodes[2].r.Members()) != 0 || nodes[2].r.Addr() != "" {
		t.Errorf("stopped node still has a ring: members %v", nodes[2].r.Members())
	}

	// A left member is forgotten after a while: no stale members.
	testenv.EventuallyNil(t, convergeTimeout, "n2 forgotten", func() error {
		if s := stateOf(nodes[0].r, "n2"); s != "" {
			return fmt.Errorf("n0 still lists n2 as %s", s)
		}
		return nil
	})
}

func TestCrashedNodeIsDeclaredDead(t *testing.T) {
	models := modelNames(200)
	elapsed, before, after, nodes := crashAndMeasure(t, LoopbackConfig, models)
	c := LoopbackConfig("")
	t.Logf("kill to reassignment (loopback timings: probe %s, suspicion mult %d): %s",
		c.ProbeInterval, c.SuspicionMult, elapsed.Round(time.Millisecond))
	if err := movedOnly(before, after, "n2"); err != nil {
		t.Error(err)
	}
	if s := stateOf(nodes[0].r, "n2"); s != StateDead {
		t.Errorf("n0 lists n2 as %q, want %q", s, StateDead)
	}
}

// crashAndMeasure starts three nodes, kills n2 without a leave (what its
// peers see of a SIGKILL or a power cut) and returns the time until both
// survivors agree on owners without it, with the owners before and after.
func crashAndMeasure(tb testing.TB, cfg func(string) Config, models []string) (elapsed time.Duration, before, after map[string]string, nodes []*testNode) {
	tb.Helper()
	nodes = startCluster(tb, 3, cfg)
	before = waitAgreed(tb, convergeTimeout, nodes, models)
	start := time.Now()
	nodes[2].kill()
	after = waitAgreed(tb, convergeTimeout, nodes[:2], models)
	return time.Since(start), before, after, nodes
}

// BenchmarkKillToReassignment measures, in process, the time from killing
// a node (no leave) to the survivors owning its models, in seconds
// (s/reassign), with the default timings and with LoopbackConfig's. Each
// iteration is a fresh three-node cluster on 127.0.0.1; ns/op includes
// starting and stopping it. Run with -benchtime=5x for an average.
func BenchmarkKillToReassignment(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  func(string) Config
	}{
		{"default", func(name string) Config {
			c := DefaultConfig()
			c.NodeName, c.BindAddr = name, "127.0.0.1:0"
			return c
		}},
		{"loopback", LoopbackConfig},
	} {
		b.Run(tc.name, func(b *testing.B) {
			models := modelNames(200)
			var total, worst time.Duration
			n := 0
			for b.Loop() {
				elapsed, _, _, nodes := crashAndMeasure(b, tc.cfg, models)
				for _, node := range nodes {
					node.stop()
				}
				total += elapsed
				worst = max(worst, elapsed)
				n++
			}
			b.ReportMetric(total.Seconds()/float64(n), "s/reassign")
			b.ReportMetric(worst.Seconds(), "worst-s")
		})
	}
}

func TestRestartedNodeGetsItsModelsBack(t *testing.T) {
	for _, how := range []string{"graceful", "crash"} {
		t.Run(how, func(t *testing.T) {
			models := modelNames(200)
			nodes := startCluster(t, 3, LoopbackConfig)
			original := waitAgreed(t, convergeTimeout, nodes, models)

			if how == "crash" {
				nodes[1].kill()
			} else {
				nodes[1].stop()
			}
			waitAgreed(t, convergeTimeout, []*testNode{nodes[0], nodes[2]}, models)

			// Same name, new port (like a rescheduled pod with a new IP).
			c := LoopbackConfig("n1")
			c.Join = []string{nodes[0].r.Addr()}
			nodes[1] = startNode(t, c)
			again := waitAgreed(t, convergeTimeout, nodes, models)
			for _, m := range models {
				if again[m] != original[m] {
					t.Fatalf("%s: owner %s after the restart, %s before", m, again[m], original[m])
				}
			}
		})
	}
}

// TestSeedRestart: n0 is the only seed of n1 and n2. It crashes and, after
// the others have forgotten it, restarts with no join list: only the others'
// rejoin loop can bring it back (cortex#4931, memberlist#222).
func TestSeedRestart(t *testing.T) {
	models := modelNames(200)
	nodes := startCluster(t, 3, LoopbackConfig)
	waitAgreed(t, convergeTimeout, nodes, models)
	seedAddr := nodes[0].r.Addr()

	nodes[0].kill()
	testenv.EventuallyNil(t, convergeTimeout, "n0 forgotten", func() error {
		for _, n := range nodes[1:] {
			if s := stateOf(n.r, "n0"); s != "" {
				return fmt.Errorf("%s lists n0 as %s", n.r.Name(), s)
			}
		}
		return nil
	})
	waitAgreed(t, convergeTimeout, nodes[1:], models)
	tries := nodes[1].r.joinTries.Load() + nodes[2].r.joinTries.Load()

	c := LoopbackConfig("n0")
	c.BindAddr = seedAddr
	nodes[0] = startNode(t, c)
	// n1 and n2 stopped gossiping to n0 when they forgot it (memberlist
	// stops at the same moment: GossipToTheDeadTime = PushPullInterval), and
	// n0 has no one to join: only their rejoin loop can merge the cluster.
	waitAgreed(t, convergeTimeout, nodes, models)
	if nodes[1].r.joinTries.Load()+nodes[2].r.joinTries.Load() == tries {
		t.Error("no join attempt after n0 was forgotten: the rejoin loop did not run")
	}
}

// links cuts the network between groups of nodes, by gossip address.
type links struct {
	mu    sync.Mutex
	group map[string]int // addr -> partition; absent or equal: connected
}

func (l *links) dropper(r **Ring) func(string) bool {
	return func(to string) bool {
		from := (*r).Addr()
		l.mu.Lock()
		defer l.mu.Unlock()
		gf, ok1 := l.group[from]
		gt, ok2 := l.group[to]
		return ok1 && ok2 && gf != gt
	}
}

func (l *links) set(groups map[string]int) {
	l.mu.Lock()
	l.group = groups
	l.mu.Unlock()
}

// TestPartitionHeals splits {n0} from {n1, n2} until both sides forgot the
// other, checks that each side has an owner for every model, then heals.
func TestPartitionHeals(t *testing.T) {
	models := modelNames(200)
	cut := &links{}
	var rings [3]*Ring
	var nodes []*testNode
	for i := range 3 {
		c := LoopbackConfig(fmt.Sprintf("n%d", i))
		if i > 0 {
			c.Join = []string{nodes[0].r.Addr()}
		}
		nodes = append(nodes, startNode(t, c, func(r *Ring) { rings[i] = r; r.drop = cut.dropper(&rings[i]) }))
	}
	before := waitAgreed(t, convergeTimeout, nodes, models)

	cut.set(map[string]int{nodes[0].r.Addr(): 0, nodes[1].r.Addr(): 1, nodes[2].r.Addr(): 1})
	testenv.EventuallyNil(t, convergeTimeout, "both sides forget the other", func() error {
		if _, err := agreed(nodes[:1], models); err != nil {
			return err
		}
		if _, err := agreed(nodes[1:], models); err != nil {
			return err
		}
		for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 0}, {2, 0}} {
			if s := stateOf(nodes[pair[0]].r, fmt.Sprintf("n%d", pair[1])); s != "" {
				return fmt.Errorf("n%d still lists n%d as %s", pair[0], pair[1], s)
			}
		}
		return nil
	})
	// Each side owns every model: n0 all of them, n1 and n2 between them,
	// each keeping what it had.
	for _, m := range models {
		if !nodes[0].r.Owns(m) {
			t.Fatalf("isolated n0 does not own %s", m)
		}
		o, _ := nodes[1].r.Owner(m)
		if before[m] != "n0" && o != before[m] {
			t.Fatalf("%s moved from %s to %s on the majority side", m, before[m], o)
		}
	}

	cut.set(nil)
	healed := waitAgreed(t, convergeTimeout, nodes, models)
	for _, m := range models {
		if healed[m] != before[m] {
			t.Fatalf("%s: owner %s after healing, %s before the partition", m, healed[m], before[m])
		}
	}
}

// TestSuspectKeepsModels cuts n2 off long enough to be suspected but not
// declared dead: its models must not move, on any node.
func TestSuspectKeepsModels(t *testing.T) {
	models := modelNames(200)
	cut := &links{}
	logs := make([]*testenv.Buffer, 3)
	var rings [3]*Ring
	var nodes []*testNode
	for i := range 3 {
		c := LoopbackConfig(fmt.Sprintf("n%d", i))
		c.SuspicionMult = 15 // 7.5s from suspect to dead
		logs[i] = &testenv.Buffer{}
		c.Logger = slog.New(slog.NewTextHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
		if i > 0 {
			c.Join = []string{nodes[0].r.Addr()}
		}
		nodes = append(nodes, startNode(t, c, func(r *Ring) { rings[i] = r; r.drop = cut.dropper(&rings[i]) }))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("n%d logs:\n%s", i, l.String())
			}
		}
	})
	before := waitAgreed(t, convergeTimeout, nodes, models)
	versions := []uint64{nodes[0].r.Version(), nodes[1].r.Version()}

	cut.set(map[string]int{nodes[0].r.Addr(): 0, nodes[1].r.Addr(): 0, nodes[2].r.Addr(): 1})
	testenv.EventuallyNil(t, convergeTimeout, "n2 suspected", func() error {
		for _, l := range logs[:2] {
			if strings.Contains(l.String(), "Suspect n2 has failed") {
				return nil
			}
		}
		return errors.New("no one suspects n2 yet")
	})
	cut.set(nil)
	testenv.EventuallyNil(t, convergeTimeout, "n2 refutes the suspicion", func() error {
		if !strings.Contains(logs[2].String(), "Refuting a suspect message") {
			return errors.New("n2 has not refuted yet")
		}
		return nil
	})
	after := waitAgreed(t, convergeTimeout, nodes, models)
	for i, v := range versions {
		if got := nodes[i].r.Version(); got != v {
			t.Errorf("n%d: ownership changed %d time(s) while n2 was only suspect", i, got-v)
		}
	}
	for _, m := range models {
		if after[m] != before[m] {
			t.Fatalf("%s moved from %s to %s", m, before[m], after[m])
		}
	}
}

func TestEncryption(t *testing.T) {
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	models := modelNames(50)
	c0 := LoopbackConfig("n0")
	c0.SecretKey = key(1)
	n0 := startNode(t, c0)
	c1 := LoopbackConfig("n1")
	c1.SecretKey, c1.Join = key(1), []string{n0.r.Addr()}
	n1 := startNode(t, c1)
	waitAgreed(t, convergeTimeout, []*testNode{n0, n1}, models)

	for name, k := range map[string][]byte{"other-key": key(2), "no-key": nil} {
		c := LoopbackConfig(name)
		c.SecretKey, c.Join = k, []string{n0.r.Addr()}
		n := startNode(t, c)
		testenv.EventuallyNil(t, convergeTimeout, name+" tried twice", func() error {
			if n.r.joinTries.Load() < 2 {
				return errors.New("fewer than 2 join attempts")
			}
			return nil
		})
		if p := n.r.joinErr.Load(); p == nil || *p == "" {
			t.Errorf("%s: join attempts recorded no error", name)
		}
		if ms := n.r.Members(); len(ms) != 1 {
			t.Errorf("%s joined anyway: %v", name, ms)
		}
		if _, err := agreed([]*testNode{n0, n1}, models); err != nil {
			t.Errorf("after %s tried to join: %v", name, err)
		}
	}
}

func TestJoinByHostName(t *testing.T) {
	// localhost resolves to 127.0.0.1 and usually ::1: every address is
	// tried, the one that answers is enough.
	n0 := startNode(t, LoopbackConfig("n0"))
	_, port, _ := net.SplitHostPort(n0.r.Addr())
	c := LoopbackConfig("n1")
	c.Join = []string{"localhost:" + port}
	n1 := startNode(t, c)
	waitAgreed(t, convergeTimeout, []*testNode{n0, n1}, modelNames(20))
}

func TestFailedFirstJoinIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := l.Addr().String()
	l.Close()

	c := LoopbackConfig("n1")
	c.Join = []string{seed}
	n1 := startNode(t, c)
	testenv.EventuallyNil(t, convergeTimeout, "a failed join", func() error {
		if p := n1.r.joinErr.Load(); p == nil || *p == "" {
			return errors.New("no join error yet")
		}
		return nil
	})
	c0 := LoopbackConfig("n0")
	c0.BindAddr = seed
	n0 := startNode(t, c0)
	waitAgreed(t, convergeTimeout, []*testNode{n0, n1}, modelNames(20))
}

func TestRunErrors(t *testing.T) {
	n0 := startNode(t, LoopbackConfig("n0"))
	if err := n0.r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("second Run: %v", err)
	}
	c := LoopbackConfig("n1")
	c.BindAddr = n0.r.Addr()
	c.Logger = testLogger(t)
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), n0.r.Addr()) {
		t.Errorf("Run on a used port: %v, want an error naming the address", err)
	}
	if r.Owns("m") || len(r.Members()) != 0 {
		t.Error("a ring that failed to start has members")
	}
}

func TestSingleNodeOwnsEverything(t *testing.T) {
	r, err := New(LoopbackConfig("solo"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Owns("m") {
		t.Fatal("owns a model before Run")
	}
	n := startNode(t, LoopbackConfig("solo2"))
	for _, m := range modelNames(50) {
		if !n.r.Owns(m) {
			t.Fatalf("single node does not own %s", m)
		}
	}
}

// TestAdminAddressesAreGossiped: each member's admin address reaches the
// others in its metadata, an unspecified host becomes the member's gossip
// IP, and OwnerAdmin answers with the owner's.
func TestAdminAddressesAreGossiped(t *testing.T) {
	admins := map[string]string{"n0": ":7070", "n1": "admin-1.example:7171", "n2": ""}
	nodes := startCluster(t, 3, func(name string) Config {
		c := LoopbackConfig(name)
		c.AdminAddr = admins[name]
		return c
	})
	models := modelNames(50)
	owners := waitAgreed(t, convergeTimeout, nodes, models)
	want := map[string]string{"n0": "127.0.0.1:7070", "n1": "admin-1.example:7171", "n2": ""}
	testenv.EventuallyNil(t, convergeTimeout, "admin addresses", func() error {
		for _, n := range nodes {
			for _, m := range n.r.Members() {
				if m.Admin != want[m.Name] {
					return fmt.Errorf("%s sees %s's admin at %q, want %q", n.r.Name(), m.Name, m.Admin, want[m.Name])
				}
			}
		}
		return nil
	})
	for _, model := range models[:10] {
		node, admin, ok := nodes[2].r.OwnerAdmin(model)
		if !ok || node != owners[model] || admin != want[node] {
			t.Errorf("OwnerAdmin(%s) = %s, %q, %v; want %s, %q", model, node, admin, ok, owners[model], want[owners[model]])
		}
	}
}

func TestNodeMetaCompatibility(t *testing.T) {
	m := nodeMeta{vnodes: 300, leaving: true, admin: "10.0.0.1:7070"}
	if got := decodeMeta(m.encode()); got != m {
		t.Errorf("round trip: %+v, want %+v", got, m)
	}
	// A version 1 member (no admin address) and a later one with fields
	// appended both decode.
	if got := decodeMeta([]byte{1, 0, 0, 128}); got != (nodeMeta{vnodes: 128}) {
		t.Errorf("version 1: %+v", got)
	}
	if got := decodeMeta(append(m.encode(), 9, 9, 9)); got != m {
		t.Errorf("with appended fields: %+v", got)
	}
	// A length beyond the metadata is ignored, not read past.
	if got := decodeMeta([]byte{2, 0, 0, 128, 200, 'x'}); got != (nodeMeta{vnodes: 128}) {
		t.Errorf("truncated admin address: %+v", got)
	}
	if err := (Config{AdminAddr: "no-port"}).Validate(); err == nil || !strings.Contains(err.Error(), "admin_addr") {
		t.Errorf("Validate(admin_addr no-port) = %v", err)
	}
}

// TestAdvertisedVirtualNodesAreCapped: a member that gossips more virtual
// nodes than MaxVirtualNodes is counted with MaxVirtualNodes.
func TestAdvertisedVirtualNodesAreCapped(t *testing.T) {
	r, err := New(LoopbackConfig("n0"))
	if err != nil {
		t.Fatal(err)
	}
	r.nodeAlive(&memberlist.Node{Name: "n0", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: nodeMeta{vnodes: 128}.encode()})
	r.nodeAlive(&memberlist.Node{Name: "greedy", Addr: net.IPv4(127, 0, 0, 2), Port: 1, Meta: nodeMeta{vnodes: 65535}.encode()})
	r.mu.Lock()
	got := r.members["greedy"].vnodes
	r.mu.Unlock()
	if got != MaxVirtualNodes {
		t.Errorf("greedy member counted with %d virtual nodes, want %d", got, MaxVirtualNodes)
	}
}

func TestLoadOrCreateSecretKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.key")
	key, created, err := LoadOrCreateSecretKeyFile(path)
	if err != nil || !created || len(key) != 32 {
		t.Fatalf("first call: %d bytes, created %v, %v", len(key), created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	again, created, err := LoadOrCreateSecretKeyFile(path)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Errorf("second call: created %v, same key %v, %v", created, bytes.Equal(again, key), err)
	}
	if err := os.WriteFile(path, []byte("not base64!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSecretKeyFile(path); err == nil {
		t.Error("a bad key file was accepted (or replaced)")
	}
}
