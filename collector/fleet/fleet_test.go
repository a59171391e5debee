package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

var quiet = slog.New(slog.DiscardHandler)

// env is a migrated database with a registry holding versions 1..n of
// model "iris".
type env struct {
	db    *testenv.DB
	reg   *registry.Registry
	clock *testenv.Clock
}

func newEnv(t *testing.T, versions int) *env {
	t.Helper()
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	u, err := registry.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := registry.OpenBlobs(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	e := &env{db: db, clock: testenv.NewClock(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))}
	e.reg = registry.New(db.Conn, blobs, registry.Options{Database: db.Name, Logger: quiet})
	for i := range versions {
		m, err := testmodels.Linear("X", "Y", [][]float32{{1, float32(i)}, {2, 3}}, []float32{float32(i), 0})
		if err != nil {
			t.Fatal(err)
		}
		sum := registryDigest(m)
		v, _, err := e.reg.Publish(ctx, "iris", registry.Uploads(registry.Upload{Path: manifest.ModelFile, SHA256: sum, Size: int64(len(m)), Body: bytes.NewReader(m)}), registry.Meta{})
		if err != nil || v.Version != uint64(i+1) {
			t.Fatalf("publish v%d: %v, %v", i+1, v.Version, err)
		}
	}
	return e
}

// fleet returns a Fleet on e's database (not running).
func (e *env) fleet(t *testing.T, o Options) *Fleet {
	t.Helper()
	o.Conn, o.Database, o.Versions, o.Logger = e.db.Conn, e.db.Name, e.reg, quiet
	if o.Now == nil {
		o.Now = e.clock.Now
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs f until the test ends.
func run(t *testing.T, f *Fleet) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-f.Loaded()
}

func as(name string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Name: name, Role: auth.Admin})
}

func pct(p int) *int { return &p }

func TestChangesAndRevisions(t *testing.T) {
	e := newEnv(t, 3)
	f := e.fleet(t, Options{})
	ctx := as("ops-admin")
	steps := []struct {
		change string
		req    Request
		want   error
		check  func(State) string
	}{
		{ChangePromote, Request{}, ErrNotFound, nil}, // no desired state yet
		{ChangeCanary, Request{Version: 2, Share: pct(20)}, ErrConflict, nil},
		{ChangeRollout, Request{Version: 9}, ErrNotFound, nil},
		{ChangeRollout, Request{Version: 1, Selector: map[string]string{"zone": "eu-1"}, Reason: "first"}, nil, func(s State) string {
			return words(s.Serving, s.Previous, s.Selector["zone"], s.Reason, s.ChangedBy)
		}},
		{ChangeRollout, Request{Version: 2, Selector: map[string]string{"bad key!": "x"}}, ErrInvalid, nil},
		{ChangeRollout, Request{Version: 2}, nil, func(s State) string { return words(s.Serving, s.Previous, s.Selector["zone"]) }},
		{ChangeCanary, Request{Version: 2, Share: pct(20)}, ErrConflict, nil}, // equal to serving
		{ChangeCanary, Request{Version: 3, Share: pct(101)}, ErrInvalid, nil},
		{ChangeRollout, Request{Version: 3, Canary: &CanaryRequest{Share: 20, Auto: true, Analysis: &Analysis{Duration: "10m", MinSamples: 500, MaxRegression: 0.02}}}, nil,
			func(s State) string {
				return words(s.Serving, s.Canary.Version, s.Canary.Share, s.Canary.Auto, s.Canary.Analysis.MinSamples, s.Canary.Started.Equal(e.clock.Now()))
			}},
		{ChangePromote, Request{}, nil, func(s State) string { return words(s.Serving, s.Previous, s.Canary == nil) }},
		{ChangeAbort, Request{}, ErrConflict, nil},
		{ChangeRollback, Request{}, nil, func(s State) string { return words(s.Serving, s.Previous) }},
		{ChangeShadow, Request{Version: 3, Share: pct(10)}, nil, func(s State) string { return words(s.Shadow.Version, s.Shadow.Share) }},
		{ChangePin, Request{Version: 1, Reason: "incident"}, nil, func(s State) string { return words(s.Serving, s.Previous, s.Pinned, s.Shadow.Version) }},
		{ChangeRollout, Request{Version: 3}, ErrConflict, nil}, // pinned
		{ChangeUnpin, Request{}, nil, func(s State) string { return words(s.Serving, s.Pinned) }},
		{ChangeUnpin, Request{}, ErrConflict, nil},
		{ChangeShadow, Request{Share: pct(0)}, nil, func(s State) string { return words(s.Shadow == nil) }},
		{ChangeRollback, Request{Version: 3}, nil, func(s State) string { return words(s.Serving, s.Previous) }},
	}
	wants := []string{"1 0 eu-1 first ops-admin", "2 1 eu-1", "2 3 20 true 500 true", "3 2 true", "2 3", "3 10", "1 2 true 3", "1 false", "true", "3 1"}
	var revision uint64
	var got []string
	for i, s := range steps {
		e.clock.Advance(time.Second)
		st, err := f.Change(ctx, "iris", s.change, s.req)
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("step %d %s %+v: %v, want %v", i, s.change, s.req, err, s.want)
		}
		if err != nil {
			continue
		}
		revision++
		if st.Revision != revision || st.Change != s.change || !st.ChangedAt.Equal(e.clock.Now()) {
			t.Errorf("step %d %s: revision %d change %q at %v, want %d %q %v", i, s.change, st.Revision, st.Change, st.ChangedAt, revision, s.change, e.clock.Now())
		}
		got = append(got, s.check(st))
	}
	if strings.Join(got, "|") != strings.Join(wants, "|") {
		t.Errorf("states:\n got %q\nwant %q", got, wants)
	}
	h, err := f.History(context.Background(), "iris", 100)
	if err != nil || len(h) != int(revision) {
		t.Fatalf("history: %d states, %v; want %d", len(h), err, revision)
	}
	for i, s := range h {
		if s.Revision != revision-uint64(i) {
			t.Errorf("history[%d] revision %d, want newest first", i, s.Revision)
		}
	}
	// What was inserted reads back the same.
	cur, err := f.Desired(context.Background(), "iris")
	if err != nil || cur.Revision != revision || cur.Serving != 3 || cur.Previous != 1 || cur.Selector["zone"] != "eu-1" || cur.ChangedBy != "ops-admin" {
		t.Errorf("desired = %+v, %v", cur, err)
	}
	h7 := h[len(h)-3] // the canary rollout
	if h7.Canary == nil || h7.Canary.Analysis == nil || h7.Canary.Analysis.Duration != "10m" || h7.Canary.Analysis.MaxRegression != 0.02 || !h7.Canary.Auto {
		t.Errorf("canary revision read back as %+v", h7.Canary)
	}

	// The registry's delete refusal: serving, previous, canary, shadow.
	for v, want := range map[uint64]bool{3: true, 1: true, 2: false} {
		busy, reason, err := f.InUse(context.Background(), "iris", v)
		if err != nil || busy != want {
			t.Errorf("InUse(v%d) = %v %q %v, want %v", v, busy, reason, err, want)
		}
	}
}

// httpServe serves f's routes with a stand-in for the admin server's
// authentication: "Bearer NAME" is the token named NAME, role admin.
func httpServe(t *testing.T, f *Fleet) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for p, h := range f.Routes() {
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Name: name, Role: auth.Admin})))
		}))
	}
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path, etag string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer ops")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Error(err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestTwoCollectors: a owns the model, b forwards its changes to a. A
// change through b is a's revision; long-polls on both wake; concurrent
// changes through both get distinct increasing revisions, all in the
// history.
func TestTwoCollectors(t *testing.T) {
	e := newEnv(t, 2)
	e.clock = nil
	a := e.fleet(t, Options{Node: "a", Now: time.Now, Refresh: 50 * time.Millisecond})
	srvA := httpServe(t, a)
	b := e.fleet(t, Options{Node: "b", Now: time.Now, Refresh: 50 * time.Millisecond,
		Owner: func(string) (bool, string, bool) { return false, strings.TrimPrefix(srvA.URL, "http://"), true }})
	srvB := httpServe(t, b)
	run(t, a)
	run(t, b)
	ca, cb := client{t, srvA.URL}, client{t, srvB.URL}
	for _, c := range []client{ca, cb} {
		if code, _, body := c.do("POST", "/v1/agents/register", "", Registration{Agent: "ag-1", Host: "web-1", Labels: map[string]string{"zone": "eu-1"}}); code != 200 {
			t.Fatalf("register: %d %s", code, body)
		}
	}
	// The first poll answers at once: nothing desired.
	code, hdr, body := cb.do("GET", "/v1/agents/ag-1/desired?wait=1ms", "", nil)
	if code != 200 || string(body) != "{\"models\":{}}\n" {
		t.Fatalf("first poll: %d %s", code, body)
	}
	empty := hdr.Get("ETag")
	if code, _, _ := cb.do("GET", "/v1/agents/ag-1/desired?wait=1ms", empty, nil); code != http.StatusNotModified {
		t.Errorf("poll with the current etag: %d, want 304", code)
	}

	type polled struct {
		code int
		doc  AgentDesired
	}
	poll := func(c client, etag string) <-chan polled {
		ch := make(chan polled, 1)
		go func() {
			code, _, body := c.do("GET", "/v1/agents/ag-1/desired?wait=60s", etag, nil)
			var d AgentDesired
			json.Unmarshal(body, &d)
			ch <- polled{code, d}
		}()
		return ch
	}
	wake := func(what string, ch <-chan polled, revision uint64) {
		t.Helper()
		var got polled
		testenv.Eventually(t, 30*time.Second, what, func() bool {
			select {
			case got = <-ch:
				return true
			default:
				return false
			}
		})
		if got.code != 200 || got.doc.Models["iris"].Revision != revision {
			t.Errorf("%s: %d %+v, want revision %d", what, got.code, got.doc, revision)
		}
	}
	pa, pb := poll(ca, empty), poll(cb, empty)
	code, _, body = cb.do("POST", "/v1/models/iris/rollout", "", Request{Version: 1, Reason: "through b"})
	var s State
	if json.Unmarshal(body, &s); code != 200 || s.Revision != 1 || s.ChangedBy != "ops" || s.Serving != 1 {
		t.Fatalf("rollout through b: %d %s", code, body)
	}
	wake("the long-poll on b (the forwarder) to wake", pb, 1)
	wake("the long-poll on a (the owner) to wake", pa, 1)

	// A change through a wakes b's long-poll by b's refresh.
	_, hdr, _ = cb.do("GET", "/v1/agents/ag-1/desired?wait=1ms", "", nil)
	pb = poll(cb, hdr.Get("ETag"))
	if code, _, body := ca.do("POST", "/v1/models/iris/rollout", "", Request{Version: 2}); code != 200 {
		t.Fatalf("rollout through a: %d %s", code, body)
	}
	wake("the long-poll on b to see a's change", pb, 2)

	// A refused change is refused through the forwarder with the owner's status.
	if code, _, body := cb.do("POST", "/v1/models/iris/promote", "", Request{}); code != http.StatusConflict {
		t.Errorf("promote without a canary through b: %d %s, want 409", code, body)
	}

	// Conflicting concurrent changes through both collectors.
	const n = 10
	revs := make([]uint64, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			c := []client{ca, cb}[i%2]
			code, _, body := c.do("POST", "/v1/models/iris/rollout", "", Request{Version: uint64(1 + i%2), Reason: fmt.Sprint("c", i)})
			var s State
			if json.Unmarshal(body, &s); code != 200 {
				t.Errorf("concurrent rollout %d: %d %s", i, code, body)
			}
			revs[i] = s.Revision
		})
	}
	wg.Wait()
	slices.Sort(revs)
	for i, r := range revs {
		if r != uint64(3+i) {
			t.Fatalf("revisions of the concurrent changes: %v, want 3..%d each once", revs, 2+2*n)
		}
	}
	h, err := a.History(context.Background(), "iris", 100)
	if err != nil || len(h) != 2+2*n {
		t.Fatalf("history: %d, %v", len(h), err)
	}
	reasons := map[string]bool{}
	for i, s := range h {
		reasons[s.Reason] = true
		if i > 0 && s.Revision >= h[i-1].Revision {
			t.Errorf("history not newest first at %d", i)
		}
	}
	if len(reasons) != 2*n+2 {
		t.Errorf("history holds %d distinct reasons, want every change", len(reasons))
	}
	// Both collectors end on the last revision.
	testenv.Eventually(t, 30*time.Second, "both collectors to hold the last revision", func() bool {
		return a.State("iris").Revision == uint64(2+2*n) && b.State("iris").Revision == uint64(2+2*n)
	})
}

func TestControlChannel(t *testing.T) {
	e := newEnv(t, 2)
	f := e.fleet(t, Options{Node: "c1", MaxAgents: 3, OTLP: OTLPEndpoints{GRPC: "c1:4317", HTTP: "http://c1:4318"}})
	run(t, f)
	ctx := context.Background()
	got, err := f.Register(ctx, Registration{Agent: "a1", Host: "web-1", Labels: map[string]string{"zone": "eu-1"}, Build: "test"})
	if err != nil || got.HeartbeatInterval != "10s" || got.OTLP.GRPC != "c1:4317" || got.OTLP.HTTP != "http://c1:4318" {
		t.Fatalf("register: %+v, %v", got, err)
	}
	for _, bad := range []Registration{{Agent: ""}, {Agent: "../x"}, {Agent: strings.Repeat("a", 129)},
		{Agent: "ok", Labels: map[string]string{"k": strings.Repeat("v", 64)}}, {Agent: "ok", Host: strings.Repeat("h", 256)}} {
		if _, err := f.Register(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("register %+v: %v, want ErrInvalid", bad, err)
		}
	}
	// Bounded: a fourth agent is refused; the known ones still register.
	for _, id := range []string{"a2", "a3"} {
		if _, err := f.Register(ctx, Registration{Agent: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Register(ctx, Registration{Agent: "a4"}); !errors.Is(err, ErrTooManyAgents) {
		t.Errorf("a fourth agent with MaxAgents 3: %v, want ErrTooManyAgents", err)
	}
	if _, err := f.Register(ctx, Registration{Agent: "a1", Host: "web-1", Labels: map[string]string{"zone": "eu-1"}, Build: "test"}); err != nil {
		t.Errorf("a known agent registers again: %v", err)
	}
	if err := f.Report(ctx, "nobody", Inventory{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("inventory of an unregistered agent: %v", err)
	}

	// Inventory: written when it changes, a heartbeat otherwise.
	serving := func(v uint64, revision uint64, errMsg *string) Inventory {
		return Inventory{Host: "web-1", Revision: map[string]uint64{"iris": revision},
			Models: []ModelInventory{{Model: "iris", Serving: v, Versions: []VersionInventory{{Version: v, State: "serving"}}, Error: errMsg}}}
	}
	e.clock.Advance(time.Second)
	if err := f.Report(ctx, "a1", serving(1, 0, nil)); err != nil {
		t.Fatal(err)
	}
	written := e.clock.Now().UTC().Truncate(time.Millisecond)
	e.clock.Advance(time.Second)
	if err := f.Report(ctx, "a1", serving(1, 0, nil)); err != nil {
		t.Fatal(err)
	}
	if err := f.w.flush(ctx); err != nil { // what Run's writer does every writeInterval
		t.Fatal(err)
	}
	rows, err := f.t.readAgents(ctx, "a1", 10, time.Time{})
	if err != nil || len(rows) != 1 || !rows[0].Updated.Equal(written) || rows[0].Serving["iris"] != 1 || rows[0].Collector != "c1" {
		t.Fatalf("agents row after an unchanged inventory: %+v, %v; want updated %v", rows, err, written)
	}
	// Serving v1: its delete is refused.
	if busy, reason, err := f.InUse(ctx, "iris", 1); !busy || err != nil || !strings.Contains(reason, "1 agents serve v1") {
		t.Errorf("InUse(v1) served by a1 = %v %q %v", busy, reason, err)
	}

	// Status against a desired state.
	if _, err := f.Change(as("ops"), "iris", ChangeRollout, Request{Version: 2, Selector: map[string]string{"zone": "eu-1"}}); err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, a := range st.Agents {
		states[a.Agent] = fmt.Sprint(a.Selected, " ", a.State)
	}
	if fmt.Sprint(states) != "map[a1:true pending a2:false converged a3:false converged]" || st.Progress != (Progress{Selected: 1, Pending: 1}) {
		t.Errorf("status before a1 moves: %v %+v", states, st.Progress)
	}
	msg := "download v2: disk full"
	if err := f.Report(ctx, "a1", serving(1, 1, &msg)); err != nil {
		t.Fatal(err)
	}
	if st, _ = f.Status(ctx, "iris"); st.Progress != (Progress{Selected: 1, Failed: 1}) || st.Agents[0].Error == nil || *st.Agents[0].Error != msg {
		t.Errorf("status of a failed agent: %+v", st)
	}
	if err := f.Report(ctx, "a1", serving(2, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if st, _ = f.Status(ctx, "iris"); st.Progress != (Progress{Selected: 1, Converged: 1}) || st.Agents[0].Serving != 2 || st.Agents[0].Revision != 1 {
		t.Errorf("status of a converged agent: %+v", st)
	}
	e.clock.Advance(31 * time.Second)
	if st, _ = f.Status(ctx, "iris"); st.Progress != (Progress{Selected: 1, Offline: 1}) {
		t.Errorf("status after 3 silent intervals: %+v", st)
	}

	// The long-poll selects by labels.
	d, _, _ := f.desiredFor(map[string]string{"zone": "us-1"})
	if len(d.Models) != 0 {
		t.Errorf("an agent outside the selector is desired %v", d.Models)
	}
	d, _, _ = f.desiredFor(map[string]string{"zone": "eu-1", "x": "y"})
	if d.Models["iris"].Serving != 2 {
		t.Errorf("an agent inside the selector is desired %v", d.Models)
	}
}

func registryDigest(b []byte) string {
	return fmt.Sprintf("%x", sha256Sum(b))
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// words prints vs separated by spaces.
func words(vs ...any) string { return strings.TrimSpace(fmt.Sprintln(vs...)) }

// TestAnalysisChange: the automatic analysis promotes or aborts only the
// revision it judged; a person's change in between wins (ErrStale).
func TestAnalysisChange(t *testing.T) {
	e := newEnv(t, 3)
	f := e.fleet(t, Options{})
	ctx := as("ops")
	if _, err := f.Change(ctx, "iris", ChangeRollout, Request{Version: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := f.Change(ctx, "iris", ChangeRollout, Request{Version: 2, Canary: &CanaryRequest{Share: 10, Auto: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.AutoCanaries(); len(got) != 1 || got[0].Revision != s.Revision || got[0].Canary.Version != 2 {
		t.Fatalf("AutoCanaries = %+v", got)
	}
	if _, err := f.Change(ctx, "iris", ChangeCanary, Request{Version: 3, Share: pct(10)}); err != nil { // a person's change
		t.Fatal(err)
	}
	if _, err := f.Change(as(analysisName), "iris", ChangeAnalysis, Request{Promote: true, Revision: s.Revision, Reason: "better"}); !errors.Is(err, ErrStale) || !errors.Is(err, ErrConflict) {
		t.Errorf("analysis of a stale revision: %v, want ErrStale", err)
	}
	if got := f.AutoCanaries(); len(got) != 0 {
		t.Errorf("AutoCanaries after a manual canary = %+v, want none", got)
	}
	cur := f.State("iris")
	done, err := f.Change(as(analysisName), "iris", ChangeAnalysis, Request{Promote: false, Revision: cur.Revision, Reason: "error rate worse"})
	if err != nil || done.Canary != nil || done.Serving != 1 || done.Change != ChangeAnalysis || done.ChangedBy != analysisName || done.Reason != "error rate worse" {
		t.Errorf("analysis abort: %+v, %v", done, err)
	}
}

const analysisName = "canary-analysis"

// TestAgentExpiry: an agent not seen for Options.AgentExpiry is gone: its
// last inventory no longer holds the version it served against delete,
// it is left out of the agents and the status, dropped from memory (a
// heartbeat is answered ErrNotFound: register again) and no longer
// counts toward MaxAgents.
func TestAgentExpiry(t *testing.T) {
	e := newEnv(t, 3)
	f := e.fleet(t, Options{Node: "c1", MaxAgents: 2, AgentExpiry: time.Hour})
	run(t, f)
	ctx := context.Background()
	report := func(id string, v uint64) {
		t.Helper()
		if _, err := f.Register(ctx, Registration{Agent: id, Host: id}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		inv := Inventory{Host: id, Models: []ModelInventory{{Model: "iris", Serving: v, Versions: []VersionInventory{{Version: v, State: "serving"}}}}}
		if err := f.Report(ctx, id, inv); err != nil {
			t.Fatalf("inventory of %s: %v", id, err)
		}
	}
	report("old", 1)
	e.clock.Advance(40 * time.Minute)
	report("new", 2)
	if busy, _, err := f.InUse(ctx, "iris", 1); !busy || err != nil {
		t.Fatalf("InUse(v1) while old is offline but not gone = %v, %v", busy, err)
	}
	if _, err := f.Register(ctx, Registration{Agent: "third"}); !errors.Is(err, ErrTooManyAgents) {
		t.Fatalf("a third agent while two are held: %v, want ErrTooManyAgents", err)
	}

	e.clock.Advance(20 * time.Minute) // old: 60 min unseen (gone); new: 20 min (offline)
	if busy, reason, err := f.InUse(ctx, "iris", 1); busy || err != nil {
		t.Errorf("InUse(v1) served only by a gone agent = %v %q %v, want false", busy, reason, err)
	}
	if busy, _, err := f.InUse(ctx, "iris", 2); !busy || err != nil {
		t.Errorf("InUse(v2) served by a live agent = %v, %v, want true", busy, err)
	}
	agents, err := f.Agents(ctx)
	if err != nil || len(agents) != 1 || agents[0].Agent != "new" {
		t.Errorf("agents = %+v, %v; want new only", agents, err)
	}
	if _, err := f.Change(as("ops"), "iris", ChangeRollout, Request{Version: 2}); err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(ctx, "iris")
	if err != nil || len(st.Agents) != 1 || st.Agents[0].Agent != "new" || st.Progress != (Progress{Selected: 1, Offline: 1}) {
		t.Errorf("status = %+v, %v; want new only", st, err)
	}

	// Dropped from memory at the next refresh (flushSeen), or at once when
	// the cap would refuse a new agent.
	if err := f.flushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	_, held := f.agents["old"]
	n := len(f.agents)
	f.mu.Unlock()
	if held || n != 1 {
		t.Errorf("after the refresh: old held %v, %d agents; want only new", held, n)
	}
	if err := f.Report(ctx, "old", Inventory{Host: "old"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("heartbeat of a gone agent: %v, want ErrNotFound (register again)", err)
	}
	if _, err := f.Register(ctx, Registration{Agent: "third"}); err != nil {
		t.Errorf("a second agent after old is gone: %v", err)
	}
	e.clock.Advance(time.Hour) // new and third gone; no refresh yet
	if _, err := f.Register(ctx, Registration{Agent: "fourth"}); err != nil {
		t.Errorf("a new agent while the held ones are gone: %v", err)
	}
	// Back: it registers and counts again.
	report("old", 1)
	if busy, _, err := f.InUse(ctx, "iris", 1); !busy || err != nil {
		t.Errorf("InUse(v1) once old is back = %v, %v, want true", busy, err)
	}
}

// An inventory is answered from memory while the agents table's inserts
// are blocked (and failing); its row lands once they work, and the status
// reads memory meanwhile.
func TestInventoryWriteBehind(t *testing.T) {
	e := newEnv(t, 1)
	e.clock = nil
	f := e.fleet(t, Options{Node: "c1", Now: time.Now, Refresh: 50 * time.Millisecond})
	release := make(chan struct{})
	var calls atomic.Int32
	insert := f.w.insert
	f.w.insert = func(ctx context.Context, rows []agentRow) error {
		if calls.Add(1) == 1 {
			return errors.New("clickhouse is down") // retried with backoff
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return insert(ctx, rows)
	}
	run(t, f)
	ctx := context.Background()
	if _, err := f.Change(as("ops"), "iris", ChangeRollout, Request{Version: 1}); err != nil {
		t.Fatal(err)
	}
	inv := Inventory{Host: "web-1", Revision: map[string]uint64{"iris": 1},
		Models: []ModelInventory{{Model: "iris", Serving: 1, Versions: []VersionInventory{{Version: 1, State: "serving"}}}}}
	for i := range 20 {
		id := fmt.Sprint("a", i)
		if _, err := f.Register(ctx, Registration{Agent: id, Host: "web-1"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := f.Report(ctx, id, inv); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("inventory of %s answered in %s while the inserts are blocked", id, d)
		}
	}
	start := time.Now()
	st, err := f.Status(ctx, "iris")
	if err != nil || st.Progress != (Progress{Selected: 20, Converged: 20}) {
		t.Fatalf("status while the inserts are blocked: %+v, %v", st.Progress, err)
	}
	if d := time.Since(start); d > 10*time.Second { // blocked, it would wait for release
		t.Errorf("status took %s while the inserts are blocked", d)
	}
	if busy, _, err := f.InUse(ctx, "iris", 1); !busy || err != nil {
		t.Errorf("InUse(v1) served by agents whose rows are queued = %v, %v", busy, err)
	}
	testenv.Eventually(t, 30*time.Second, "the failed insert to be retried", func() bool { return calls.Load() >= 2 })
	close(release)
	testenv.Eventually(t, 30*time.Second, "the queued inventories to land in the agents table", func() bool {
		rows, err := f.t.readAgents(ctx, "", 100, time.Time{})
		n := 0
		for _, r := range rows {
			if r.Serving["iris"] == 1 {
				n++
			}
		}
		return err == nil && n == 20
	})
	if f.InventoriesDropped() != 0 {
		t.Errorf("dropped %d inventories", f.InventoriesDropped())
	}
}

// The status of one collector lists the agents reporting to another (from
// the agents table, re-read every refresh), and its own from memory.
func TestStatusOtherCollector(t *testing.T) {
	e := newEnv(t, 1)
	e.clock = nil
	a := e.fleet(t, Options{Node: "a", Now: time.Now, Refresh: 50 * time.Millisecond})
	b := e.fleet(t, Options{Node: "b", Now: time.Now, Refresh: 50 * time.Millisecond})
	run(t, a)
	run(t, b)
	ctx := context.Background()
	if _, err := a.Change(as("ops"), "iris", ChangeRollout, Request{Version: 1}); err != nil {
		t.Fatal(err)
	}
	inv := Inventory{Host: "h", Revision: map[string]uint64{"iris": 1},
		Models: []ModelInventory{{Model: "iris", Serving: 1, Versions: []VersionInventory{{Version: 1, State: "serving"}}}}}
	for _, c := range []struct {
		f  *Fleet
		id string
	}{{a, "on-a"}, {b, "on-b"}} {
		if _, err := c.f.Register(ctx, Registration{Agent: c.id, Host: "h"}); err != nil {
			t.Fatal(err)
		}
		if err := c.f.Report(ctx, c.id, inv); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		f    *Fleet
		name string
	}{{a, "a"}, {b, "b"}} {
		testenv.Eventually(t, 30*time.Second, "collector "+c.name+" to list both agents converged", func() bool {
			st, err := c.f.Status(ctx, "iris")
			if err != nil || st.Progress != (Progress{Selected: 2, Converged: 2}) {
				return false
			}
			agents, err := c.f.Agents(ctx)
			return err == nil && len(agents) == 2 && agents[0].Collector == "a" && agents[1].Collector == "b"
		})
	}
	if busy, _, err := b.InUse(ctx, "iris", 1); !busy || err != nil {
		t.Errorf("InUse(v1) on b = %v, %v", busy, err)
	}
}

// TestCanaryAnalysisDefaults: fleet.canary_analysis fills the fields an
// auto canary's rollout leaves unset, on the owner; what the change sets
// is kept, and a canary without auto gets nothing.
func TestCanaryAnalysisDefaults(t *testing.T) {
	e := newEnv(t, 3)
	f := e.fleet(t, Options{CanaryAnalysis: CanaryAnalysis{Duration: 30 * time.Second, MinSamples: 50}})
	ctx := as("ops")
	if _, err := f.Change(ctx, "iris", ChangeRollout, Request{Version: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *Analysis
		want *Analysis
	}{
		{"unset", nil, &Analysis{Duration: "30s", MinSamples: 50}},
		{"partly set", &Analysis{MinSamples: 7, MaxRegression: 0.1}, &Analysis{Duration: "30s", MinSamples: 7, MaxRegression: 0.1}},
		{"set", &Analysis{Duration: "1m", MinSamples: 9}, &Analysis{Duration: "1m", MinSamples: 9}},
	} {
		s, err := f.Change(ctx, "iris", ChangeRollout, Request{Version: 2, Canary: &CanaryRequest{Share: 10, Auto: true, Analysis: tc.req}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s.Canary == nil || s.Canary.Analysis == nil || *s.Canary.Analysis != *tc.want {
			t.Errorf("%s: canary %+v, want analysis %+v", tc.name, s.Canary, tc.want)
		}
		if _, err := f.Change(ctx, "iris", ChangeAbort, Request{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := f.Change(ctx, "iris", ChangeRollout, Request{Version: 2, Canary: &CanaryRequest{Share: 10}})
	if err != nil || s.Canary == nil || s.Canary.Analysis != nil {
		t.Errorf("a canary without auto: %+v, %v; want no analysis", s.Canary, err)
	}
}
