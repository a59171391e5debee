package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// fleetCall makes a request with a JSON body (none if nil) and headers.
func fleetCall(t *testing.T, method, addr, path, token string, body any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestFleetControlChannel: the control channel on a real collector with
// an agent token (401 without one, 403 with a reader's), a rollout by an
// admin reaching the agent's long-poll, the fleet status, the registry
// refusing to delete a desired or served version (409), and the audit
// log: heartbeats and registrations are not audited, their denials and
// the changes are.
func TestFleetControlChannel(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startCollector(t, testConfig(t, db.DSN, db.Name))
	ctx := context.Background()
	adminTok := adminToken(t, c.dataDir)
	cl := adminclient.New("http://"+c.adminAddr, adminTok)
	defer cl.Close()
	toks := map[string]string{"admin": adminTok}
	for _, role := range []string{"reader", "agent", "publisher"} {
		nt, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "fleet-" + role, Role: role})
		if err != nil {
			t.Fatalf("create a %s token: %v", role, err)
		}
		toks[role] = nt.Token
	}
	for i := range 3 {
		m, err := testmodels.Linear("X", "Y", [][]float32{{1, float32(i)}, {2, 3}}, []float32{float32(i), 0})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), m, 0o644); err != nil {
			t.Fatal(err)
		}
		if res, _, err := cl.Publish(ctx, "iris", dir, adminclient.PublishOptions{}); err != nil || res.Version != uint64(i+1) {
			t.Fatalf("publish v%d: %+v, %v", i+1, res, err)
		}
	}

	reg := fleet.Registration{Agent: "agent-1", Host: "web-1", Labels: map[string]string{"zone": "eu-1"}}
	for role, want := range map[string]int{"": 401, "reader": 403, "agent": 200} {
		if code, _, body := fleetCall(t, "POST", c.adminAddr, "/v1/agents/register", toks[role], reg, nil); code != want {
			t.Errorf("register with %q: %d %s, want %d", role, code, body, want)
		}
	}
	code, _, body := fleetCall(t, "POST", c.adminAddr, "/v1/agents/register", toks["agent"], reg, nil)
	var ans fleet.Registered
	if err := json.Unmarshal(body, &ans); err != nil || code != 200 || ans.HeartbeatInterval != "10s" {
		t.Fatalf("registration answer: %d %s", code, body)
	}
	_, grpcPort, _ := net.SplitHostPort(c.grpcAddr)
	_, httpPort, _ := net.SplitHostPort(c.httpAddr)
	if !strings.HasSuffix(ans.OTLP.GRPC, ":"+grpcPort) || !strings.HasPrefix(ans.OTLP.HTTP, "http://") || !strings.HasSuffix(ans.OTLP.HTTP, ":"+httpPort) {
		t.Errorf("registration answers OTLP %+v, want the receivers' ports %s and %s", ans.OTLP, grpcPort, httpPort)
	}
	inv := fleet.Inventory{Host: "web-1", Models: []fleet.ModelInventory{{Model: "iris", Serving: 2, Versions: []fleet.VersionInventory{{Version: 2, State: "serving"}}}}}
	if code, _, body := fleetCall(t, "PUT", c.adminAddr, "/v1/agents/agent-1/inventory", toks["agent"], inv, nil); code != http.StatusNoContent {
		t.Fatalf("inventory: %d %s", code, body)
	}
	if code, _, _ := fleetCall(t, "PUT", c.adminAddr, "/v1/agents/agent-1/inventory", toks["reader"], inv, nil); code != 403 {
		t.Errorf("inventory with a reader token: %d, want 403", code)
	}
	if code, _, _ := fleetCall(t, "GET", c.adminAddr, "/v1/agents/agent-1/desired?wait=1ms", "", nil, nil); code != 401 {
		t.Errorf("long-poll without a token: %d, want 401", code)
	}

	// A rollout needs an admin.
	rollout := fleet.Request{Version: 1, Selector: map[string]string{"zone": "eu-1"}, Reason: "test"}
	if code, _, _ := fleetCall(t, "POST", c.adminAddr, "/v1/models/iris/rollout", toks["reader"], rollout, nil); code != 403 {
		t.Errorf("rollout by a reader: %d, want 403", code)
	}
	if code, _, body := fleetCall(t, "POST", c.adminAddr, "/v1/models/iris/rollout", toks["admin"], fleet.Request{Version: 9}, nil); code != 404 {
		t.Errorf("rollout of an unknown version: %d %s, want 404", code, body)
	}
	code, _, body = fleetCall(t, "POST", c.adminAddr, "/v1/models/iris/rollout", toks["admin"], rollout, nil)
	var st fleet.State
	if err := json.Unmarshal(body, &st); err != nil || code != 200 || st.Revision != 1 || st.Serving != 1 || st.ChangedBy == "" {
		t.Fatalf("rollout: %d %s", code, body)
	}
	code, hdr, body := fleetCall(t, "GET", c.adminAddr, "/v1/agents/agent-1/desired?wait=30s", toks["agent"], nil, nil)
	var d fleet.AgentDesired
	if err := json.Unmarshal(body, &d); err != nil || code != 200 || d.Models["iris"].Serving != 1 || hdr.Get("ETag") == "" {
		t.Fatalf("long-poll: %d %s", code, body)
	}
	if code, _, _ := fleetCall(t, "GET", c.adminAddr, "/v1/agents/agent-1/desired?wait=1ms", toks["agent"], nil, map[string]string{"If-None-Match": hdr.Get("ETag")}); code != http.StatusNotModified {
		t.Errorf("long-poll with the current etag: %d, want 304", code)
	}

	// Reads.
	code, _, body = fleetCall(t, "GET", c.adminAddr, "/v1/models/iris/status", toks["reader"], nil, nil)
	var status fleet.Status
	if err := json.Unmarshal(body, &status); err != nil || code != 200 || status.Progress != (fleet.Progress{Selected: 1, Pending: 1}) ||
		len(status.Agents) != 1 || status.Agents[0].Serving != 2 {
		t.Errorf("status: %d %s", code, body)
	}
	code, _, body = fleetCall(t, "GET", c.adminAddr, "/v1/agents", toks["reader"], nil, nil)
	if code != 200 || !strings.Contains(string(body), `"agent":"agent-1"`) {
		t.Errorf("agents: %d %s", code, body)
	}
	code, _, body = fleetCall(t, "GET", c.adminAddr, "/v1/models/iris/desired/history", toks["reader"], nil, nil)
	if code != 200 || !strings.Contains(string(body), `"revision":1`) {
		t.Errorf("history: %d %s", code, body)
	}

	// Delete: v1 is desired, v2 served by the agent, v3 neither.
	for v, want := range map[uint64]int{1: 409, 2: 409} {
		if _, _, err := cl.DeleteVersion(ctx, "iris", v); !adminclient.IsStatus(err, want) {
			t.Errorf("delete v%d: %v, want %d", v, err, want)
		}
	}
	if _, _, err := cl.DeleteVersion(ctx, "iris", 3); err != nil {
		t.Errorf("delete v3 (not in use): %v", err)
	}

	// Audit: 20 heartbeats and a registration add no row; a denied
	// heartbeat adds one. The audit queue is written in order, so once the
	// denial (sent last) is in audit_log, every accepted call before it
	// would be too.
	if code, _, body := fleetCall(t, "POST", c.adminAddr, "/v1/agents/register", toks["agent"], reg, nil); code != 200 {
		t.Fatalf("register again: %d %s", code, body)
	}
	for i := range 20 {
		if code, _, body := fleetCall(t, "PUT", c.adminAddr, "/v1/agents/agent-1/inventory", toks["agent"], inv, nil); code != http.StatusNoContent {
			t.Fatalf("heartbeat %d: %d %s", i, code, body)
		}
	}
	if code, _, _ := fleetCall(t, "PUT", c.adminAddr, "/v1/agents/agent-1/inventory", toks["publisher"], inv, nil); code != 403 {
		t.Fatalf("heartbeat with a publisher token: %d, want 403", code)
	}
	count := func(where string) (uint64, error) {
		return testenv.TryCount(db.Conn, "SELECT count() FROM "+db.Name+".audit_log WHERE "+where)
	}
	testenv.EventuallyNil(t, 30*time.Second, "the denied heartbeat in audit_log", func() error {
		n, err := count("action = 'PUT /v1/agents/{agent}/inventory' AND result = 'denied' AND token_name = 'fleet-publisher'")
		if err != nil {
			return err
		}
		return unless(n == 1, fmt.Sprintf("%d rows of the denied heartbeat", n))
	})
	for where, want := range map[string]uint64{
		"action = 'PUT /v1/agents/{agent}/inventory' AND result != 'denied'": 0,
		"action = 'POST /v1/agents/register' AND result != 'denied'":         0,
		"action = 'GET /v1/agents/{agent}/desired' AND result != 'denied'":   0,
		"action = 'PUT /v1/agents/{agent}/inventory' AND result = 'denied'":  2, // the reader's and the publisher's
		"action = 'POST /v1/agents/register' AND result = 'denied'":          2, // no token and the reader's
		"action = 'POST /v1/models/{model}/rollout' AND result = 'ok'":       1, // changes stay audited
	} {
		if n, err := count(where); err != nil || n != want {
			t.Errorf("audit rows where %s: %d, %v; want %d", where, n, err, want)
		}
	}
}

// TestFleetChangeAcrossCollectors: two collectors of one cluster; a
// rollout sent to the collector that does not own the model is forwarded
// (with the caller's token) and applied by the owner, and a long-poll
// waiting on the owner wakes with it.
func TestFleetChangeAcrossCollectors(t *testing.T) {
	db := testenv.ClickHouse(t)
	logs := &testenv.Buffer{}
	blobs := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "blobs"))
	key := gossipKeyFile(t)
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, KeyFile: key}
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = blobs, true
		cfg.Auth.RefreshInterval = 100 * time.Millisecond
		return cfg
	}
	fast := hooks{ring: func(rc *ring.Config) {
		l := ring.LoopbackConfig(rc.NodeName)
		rc.ProbeInterval, rc.ProbeTimeout, rc.GossipInterval, rc.LeaveTimeout = l.ProbeInterval, l.ProbeTimeout, l.GossipInterval, l.LeaveTimeout
	}}
	a := startNode(t, nodeConfig("fleet-a"), fast, logs)
	v, err := a.view()
	if err != nil || len(v.Members) != 1 {
		t.Fatalf("view of a: %v, %v", v, err)
	}
	b := startNode(t, nodeConfig("fleet-b", v.Members[0].Addr), fast, logs)
	b.token = a.token
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector logs:\n%s", logs.String())
		}
	})
	const model = "iris"
	testenv.EventuallyNil(t, time.Minute, "both nodes to see each other's admin address", func() error {
		for _, n := range []*clusterNode{a, b} {
			v, err := n.view()
			if err != nil {
				return err
			}
			if len(v.Members) != 2 {
				return fmt.Errorf("%s sees %d members", n.name, len(v.Members))
			}
			for _, m := range v.Members {
				if m.Admin == "" {
					return fmt.Errorf("%s advertises no admin address", m.Name)
				}
			}
		}
		return nil
	})
	ctx := context.Background()
	cl := adminclient.New("http://"+a.admin, a.token)
	defer cl.Close()
	ag, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "fleet-agent", Role: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyNil(t, 30*time.Second, "b to accept a's admin and agent tokens", func() error {
		if code, _, body := fleetCall(t, "GET", b.admin, "/v1/agents", a.token, nil, nil); code != 200 {
			return fmt.Errorf("admin token: %d %s", code, body)
		}
		if code, _, body := fleetCall(t, "GET", b.admin, "/v1/agents/nobody/desired?wait=1ms", ag.Token, nil, nil); code != 404 {
			return fmt.Errorf("agent token: %d %s", code, body)
		}
		return nil
	})
	m, err := testmodels.Linear("X", "Y", [][]float32{{1, 2}, {2, 3}}, []float32{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, _, err := cl.Publish(ctx, model, dir, adminclient.PublishOptions{}); err != nil || res.Version != 1 {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	// One node owns the model: of the two changes, one is sent to the
	// other node and forwarded. Each wakes a long-poll on the node it was
	// not sent to.
	reg := fleet.Registration{Agent: "agent-1", Host: "web-1"}
	for _, n := range []*clusterNode{a, b} {
		if code, _, body := fleetCall(t, "POST", n.admin, "/v1/agents/register", ag.Token, reg, nil); code != 200 {
			t.Fatalf("register on %s: %d %s", n.name, code, body)
		}
	}
	type polled struct {
		code int
		body []byte
	}
	for i, pair := range [][2]*clusterNode{{a, b}, {b, a}} {
		via, waiting := pair[0], pair[1]
		_, hdr, _ := fleetCall(t, "GET", waiting.admin, "/v1/agents/agent-1/desired?wait=1ms", ag.Token, nil, nil)
		woke := make(chan polled, 1)
		go func() {
			code, _, body := fleetCall(t, "GET", waiting.admin, "/v1/agents/agent-1/desired?wait=60s", ag.Token, nil, map[string]string{"If-None-Match": hdr.Get("ETag")})
			woke <- polled{code, body}
		}()
		code, _, body := fleetCall(t, "POST", via.admin, "/v1/models/iris/rollout", a.token, fleet.Request{Version: 1, Reason: "via " + via.name}, nil)
		var st fleet.State
		if err := json.Unmarshal(body, &st); err != nil || code != 200 || st.Revision != uint64(i+1) || st.Serving != 1 {
			t.Fatalf("rollout through %s: %d %s", via.name, code, body)
		}
		var got polled
		testenv.Eventually(t, 30*time.Second, "the long-poll on "+waiting.name+" to wake", func() bool {
			select {
			case got = <-woke:
				return true
			default:
				return false
			}
		})
		var d fleet.AgentDesired
		if err := json.Unmarshal(got.body, &d); err != nil || got.code != 200 || d.Models[model].Revision != uint64(i+1) || d.Models[model].Reason != "via "+via.name {
			t.Errorf("the long-poll on %s woke with %d %s", waiting.name, got.code, got.body)
		}
	}
	if n := strings.Count(logs.String(), "fleet: change forwarded to the owner"); n != 1 {
		t.Errorf("%d changes forwarded to the owner, want 1 (the one sent to the node that does not own %s)", n, model)
	}
}
