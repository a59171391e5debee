package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/agent/evaluate"

	"github.com/drover-ml/drover/agent/fleet"
	"github.com/drover-ml/drover/agent/fleet/fleettest"
	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 20 * time.Second

// fakeVersions records the routing it is given; its status says that the
// desired serving version serves once its directory exists.
type fakeVersions struct {
	modelDir string
	mu       sync.Mutex
	routes   map[string]route.Desired
	by       string
}

func (f *fakeVersions) SetDesired(d map[string]route.Desired, by string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes, f.by = d, by
}

func (f *fakeVersions) route(model string) (route.Desired, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.routes[model]
	return d, ok
}

func (f *fakeVersions) Models() []string {
	entries, _ := os.ReadDir(f.modelDir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func (f *fakeVersions) Status(model string) (versions.ModelStatus, error) {
	d, _ := f.route(model)
	st := versions.ModelStatus{Name: model}
	if _, err := os.Stat(filepath.Join(f.modelDir, model, itoa(d.Serving))); err == nil && d.Serving > 0 {
		st.Versions = append(st.Versions, versions.VersionStatus{Version: d.Serving, State: "serving", Default: true})
	}
	return st, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

type env struct {
	col               *fleettest.Collector
	modelDir, dataDir string
	vs                *fakeVersions
}

func newEnv(t *testing.T) *env {
	e := &env{col: fleettest.New(t), modelDir: t.TempDir(), dataDir: t.TempDir()}
	e.vs = &fakeVersions{modelDir: e.modelDir}
	return e
}

// start runs a client until the test ends.
func (e *env) start(t *testing.T, urls ...string) *fleet.Client {
	t.Helper()
	if len(urls) == 0 {
		urls = []string{e.col.URL}
	}
	c, err := fleet.New(fleet.Config{Collectors: urls, Token: e.col.Token, Host: "h1", Labels: map[string]string{"zone": "eu-1"},
		HeartbeatInterval: 200 * time.Millisecond, DataDir: e.dataDir, ModelDir: e.modelDir, Versions: e.vs, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

func (e *env) file(t *testing.T, model, version string) []byte {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(e.modelDir, model, version, "model.onnx"))
	return b
}

func (e *env) exists(model, version string) bool {
	_, err := os.Stat(filepath.Join(e.modelDir, model, version))
	return err == nil
}

// TestDownloadAndCleanup: desired versions are downloaded through the
// cache (a blob shared by two versions is fetched once), versions the
// client downloaded go once neither desired, previous nor serving, with
// their blobs, and a directory it did not download is never removed.
func TestDownloadAndCleanup(t *testing.T) {
	e := newEnv(t)
	shared := []byte("the same golden set")
	e.col.Publish("m", 2, map[string][]byte{"model.onnx": []byte("model two"), "golden/set.csv": shared})
	e.col.Publish("m", 3, map[string][]byte{"model.onnx": []byte("model three"), "golden/set.csv": shared})
	e.col.Publish("m", 4, map[string][]byte{"model.onnx": []byte("model four")})
	// v1 is the operator's.
	if err := os.MkdirAll(filepath.Join(e.modelDir, "m", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.col.SetDesired("m", fleet.State{Serving: 2, Previous: 1, Canary: &fleet.Split{Version: 3, Share: 10}})
	testenv.Eventually(t, wait, "v2 and v3 downloaded", func() bool { return e.exists("m", "2") && e.exists("m", "3") })
	if got := e.file(t, "m", "3"); string(got) != "model three" {
		t.Errorf("m/3/model.onnx = %q", got)
	}
	d, ok := e.vs.route("m")
	if !ok || d.Serving != 2 || d.Canary == nil || d.Canary.Version != 3 || d.Canary.Percent != 10 || e.vs.by != e.col.URL {
		t.Errorf("routing = %+v by %q", d, e.vs.by)
	}
	sharedDigest := ""
	for _, dg := range e.col.Digests("m", 2) {
		if gets, _ := e.col.BlobGets(dg); gets != 1 {
			t.Errorf("blob %s fetched %d times, want once", dg, gets)
		}
		if slices.Contains(e.col.Digests("m", 3), dg) {
			sharedDigest = dg
		}
	}
	if sharedDigest == "" {
		t.Fatal("no blob shared by v2 and v3")
	}
	if entries, _ := os.ReadDir(filepath.Join(e.modelDir, "m")); len(entries) != 3 {
		t.Errorf("model dir holds %d entries, want 1, 2, 3 and no .tmp-", len(entries))
	}

	// Move on to v4 (previous 2): v3 goes, with its own blob; v2 stays as
	// previous; v1 is never removed.
	e.col.SetDesired("m", fleet.State{Serving: 4, Previous: 2})
	testenv.Eventually(t, wait, "v4 downloaded and v3 removed", func() bool { return e.exists("m", "4") && !e.exists("m", "3") })
	if !e.exists("m", "1") || !e.exists("m", "2") {
		t.Error("v1 (not downloaded) or v2 (previous) was removed")
	}
	three := e.col.Digests("m", 3)
	testenv.Eventually(t, wait, "v3's own blob collected, the shared one kept", func() bool {
		for _, dg := range three {
			_, err := os.Stat(filepath.Join(e.dataDir, "blobs", "sha256", dg))
			if (dg == sharedDigest) != (err == nil) {
				return false
			}
		}
		return true
	})
	// And to v1 (previous 4): v2 goes; v1 stays although it is not in
	// downloaded.json.
	e.col.SetDesired("m", fleet.State{Serving: 1, Previous: 4})
	testenv.Eventually(t, wait, "v2 removed", func() bool { return !e.exists("m", "2") })
	if !e.exists("m", "1") || !e.exists("m", "4") {
		t.Error("v1 or v4 removed")
	}
}

// TestResumeAndDigest: a download cut half-way resumes with a Range
// request; a blob whose bytes do not match the digest is an error in the
// inventory and nothing is assembled; once served right it converges.
func TestResumeAndDigest(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	e.col.Publish("m", 1, map[string][]byte{"model.onnx": big})
	dg := e.col.Digests("m", 1)[0]
	e.col.CutBlob(dg, 1)
	c := e.start(t)
	e.col.SetDesired("m", fleet.State{Serving: 1})
	testenv.Eventually(t, wait, "v1 downloaded after a cut", func() bool { return e.exists("m", "1") })
	if !bytes.Equal(e.file(t, "m", "1"), big) {
		t.Error("the resumed file differs")
	}
	if gets, ranges := e.col.BlobGets(dg); gets != 2 || ranges != 1 {
		t.Errorf("blob GETs %d with a range %d, want 2 and 1 (resumed)", gets, ranges)
	}

	// v2's blob comes with other bytes than its digest's.
	e.col.Publish("m", 2, map[string][]byte{"model.onnx": []byte("v2")})
	e.col.CorruptBlob(e.col.Digests("m", 2)[0], true)
	e.col.SetDesired("m", fleet.State{Serving: 2, Previous: 1})
	testenv.Eventually(t, wait, "the error in the inventory", func() bool {
		inv := c.Inventory()
		return len(inv.Models) == 1 && inv.Models[0].Error != nil && strings.Contains(*inv.Models[0].Error, "sha256") &&
			slices.ContainsFunc(inv.Models[0].Versions, func(v fleet.VersionInventory) bool { return v.Version == 2 && v.State == "failed" })
	})
	if e.exists("m", "2") {
		t.Error("m/2 assembled from a failed download")
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "blobs", "sha256", e.col.Digests("m", 2)[0])); err == nil {
		t.Error("a blob that did not match its digest is in the cache")
	}
	e.col.CorruptBlob(e.col.Digests("m", 2)[0], false)
	testenv.Eventually(t, wait, "v2 downloaded on retry and the error gone", func() bool {
		inv := c.Inventory()
		return e.exists("m", "2") && len(inv.Models) == 1 && inv.Models[0].Error == nil
	})
}

// TestPersistedDesired: desired.json is applied by New, before any
// collector answers; failover reaches the second collector when the first
// is unreachable.
func TestPersistedDesired(t *testing.T) {
	e := newEnv(t)
	e.col.Publish("m", 1, map[string][]byte{"model.onnx": []byte("one")})
	// A dead first URL: a listener closed at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rev := e.col.SetDesired("m", fleet.State{Serving: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := fleet.New(fleet.Config{Collectors: []string{dead, e.col.URL}, Token: e.col.Token, HeartbeatInterval: 200 * time.Millisecond,
		DataDir: e.dataDir, ModelDir: e.modelDir, Versions: e.vs, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	testenv.Eventually(t, wait, "v1 downloaded through the second collector", func() bool { return e.exists("m", "1") })
	testenv.Eventually(t, wait, "the inventory at the revision", func() bool {
		inv, ok := e.col.Inventory(cl.ID())
		return ok && inv.Revision["m"] == rev && inv.Host == ""
	})
	cancel()
	<-done

	// A new client on the same data dir, with no collector reachable:
	// New applies desired.json at once.
	vs := &fakeVersions{modelDir: e.modelDir}
	cl2, err := fleet.New(fleet.Config{Collectors: []string{dead}, Token: "t", DataDir: e.dataDir, ModelDir: e.modelDir, Versions: vs})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := vs.route("m"); !ok || d.Serving != 1 || cl2.ID() != cl.ID() {
		t.Errorf("after New: routing %+v %v, id %s want %s", d, ok, cl2.ID(), cl.ID())
	}
}

// TestBadModelName: a model name the agent does not accept (it would be a
// path outside the model directory) is ignored; the others are followed.
func TestBadModelName(t *testing.T) {
	e := newEnv(t)
	e.col.Publish("m", 1, map[string][]byte{"model.onnx": []byte("one")})
	e.col.Publish("../evil", 1, map[string][]byte{"model.onnx": []byte("evil")})
	e.start(t)
	e.col.SetDesired("../evil", fleet.State{Serving: 1})
	e.col.SetDesired("m", fleet.State{Serving: 1})
	testenv.Eventually(t, wait, "m routed and downloaded", func() bool {
		_, ok := e.vs.route("m")
		return ok && e.exists("m", "1")
	})
	if _, ok := e.vs.route("../evil"); ok {
		t.Error("../evil routed")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.modelDir), "evil")); err == nil {
		t.Error("a directory was made outside the model directory")
	}
}

// TestReregister: a collector that forgot the agent (restarted) answers
// 404; the agent registers again and reports its inventory there.
func TestReregister(t *testing.T) {
	e := newEnv(t)
	c := e.start(t)
	testenv.Eventually(t, wait, "registered with an inventory", func() bool {
		_, ok := e.col.Inventory(c.ID())
		return ok
	})
	e.col.Forget(c.ID())
	testenv.Eventually(t, wait, "registered again with an inventory", func() bool {
		_, ok := e.col.Inventory(c.ID())
		return ok && e.col.Registrations(c.ID()) == 2
	})
}

// TestSendFeedback: labels are forwarded to the collector; a body it
// refuses is a permanent error, an unreachable collector one to retry.
func TestSendFeedback(t *testing.T) {
	e := newEnv(t)
	c, err := fleet.New(fleet.Config{Collectors: []string{e.col.URL}, Token: e.col.Token, DataDir: e.dataDir, ModelDir: e.modelDir, Versions: e.vs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := `[{"id": "r1", "label": 1}]`
	if err := c.SendFeedback(ctx, "m", []byte(body)); err != nil {
		t.Fatal(err)
	}
	if got := e.col.Feedbacks("m"); len(got) != 1 || got[0] != body {
		t.Errorf("the collector got %q", got)
	}
	if err := c.SendFeedback(ctx, "m", []byte("nope")); !errors.Is(err, evaluate.ErrPermanent) {
		t.Errorf("a refused body: %v, want ErrPermanent", err)
	}
	e.col.SetDown(true)
	if err := c.SendFeedback(ctx, "m", []byte(body)); err == nil || errors.Is(err, evaluate.ErrPermanent) {
		t.Errorf("collector down: %v, want an error to retry", err)
	}
}

// TestFailoverRegistersAgain: when the collector the agent registered with
// stops, the agent registers with the next one, whose registration answer
// (where to send OTLP) reaches OnRegister, and reports its inventory there.
func TestFailoverRegistersAgain(t *testing.T) {
	e := newEnv(t)
	second := fleettest.New(t)
	regs := make(chan fleet.Registration, 16)
	c, err := fleet.New(fleet.Config{Collectors: []string{e.col.URL, second.URL}, Token: e.col.Token, Host: "h1",
		HeartbeatInterval: 200 * time.Millisecond, DataDir: e.dataDir, ModelDir: e.modelDir, Versions: e.vs, Wait: time.Second,
		OnRegister: func(r fleet.Registration) { regs <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	next := func(what string) fleet.Registration {
		t.Helper()
		select {
		case r := <-regs:
			return r
		case <-time.After(wait):
			t.Fatalf("%s: no registration in %s", what, wait)
			return fleet.Registration{}
		}
	}
	if r := next("first"); r.Collector != e.col.URL || r.OTLP.GRPC == "" {
		t.Fatalf("first registration with %s (%+v), want %s", r.Collector, r, e.col.URL)
	}
	e.col.Close()
	if r := next("after the first collector stopped"); r.Collector != second.URL {
		t.Fatalf("registered with %s after the failover, want %s", r.Collector, second.URL)
	}
	testenv.Eventually(t, wait, "the inventory at the second collector", func() bool {
		_, ok := second.Inventory(c.ID())
		return ok && second.Registrations(c.ID()) == 1
	})
}
