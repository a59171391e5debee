package versions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type harness struct {
	t    *testing.T
	root string
	set  *Set
	mu   sync.Mutex
	evs  []Event
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, root: t.TempDir()}
	cfg.Backend = &runtime.ONNX{Options: runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.OnEvent = func(e Event) {
		h.mu.Lock()
		h.evs = append(h.evs, e)
		h.mu.Unlock()
	}
	set, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.set = set
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// linear returns a 2-input, 1-output linear model that multiplies by k:
// y = k*x0 + 2k*x1, so versions with different k answer differently.
func linear(t *testing.T, k float32) []byte {
	t.Helper()
	b, err := testmodels.Linear("x", "y", [][]float32{{k}, {2 * k}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) publish(model string, version int64, onnx []byte) {
	h.t.Helper()
	if _, err := testmodels.WriteVersion(h.root, model, version, onnx); err != nil {
		h.t.Fatal(err)
	}
}

// sync reports the model directory to the set as the watcher would.
func (h *harness) sync(model string) {
	h.t.Helper()
	snap, err := watch.Scan(h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	h.set.Sync(model, snap[model])
}

func (h *harness) events(kind EventKind) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// wait bounds every polled condition.
const wait = 15 * time.Second

func (h *harness) serving(model string) int64 {
	v, err := h.set.Acquire(model, 0)
	if err != nil {
		return 0
	}
	defer v.Release()
	return v.Number
}

// servingThenBroken publishes lin v1 and waits for it to serve, then a v2
// that is no ONNX model and waits for its failed load.
func (h *harness) servingThenBroken() {
	h.t.Helper()
	h.publish("lin", 1, linear(h.t, 1))
	h.sync("lin")
	testenv.Eventually(h.t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })
	h.publish("lin", 2, []byte("this is not an onnx model"))
	h.sync("lin")
	testenv.Eventually(h.t, wait, "v2 failure", func() bool { return len(h.events(EventLoadFailed)) == 1 })
}

// infer runs x = [1, 1] and returns y.
func infer(t *testing.T, v *Version) float32 {
	t.Helper()
	out, err := v.Infer(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 2}, Data: []float32{1, 1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Data.([]float32)[0]
}

func TestSwapToNewVersion(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("lin", 1, linear(t, 1))
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })

	v1, err := h.set.Acquire("lin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := infer(t, v1); got != 3 {
		t.Fatalf("v1 answered %v, want 3", got)
	}

	// Publish v2 while a request holds v1.
	h.publish("lin", 2, linear(t, 10))
	h.sync("lin")
	testenv.Eventually(t, wait, "v2 serving", func() bool { return h.serving("lin") == 2 })
	v2, err := h.set.Acquire("lin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := infer(t, v2); got != 30 {
		t.Fatalf("v2 answered %v, want 30", got)
	}
	v2.Release()

	// The request that started on v1 finishes on v1, which stays open
	// until it is released.
	if got := infer(t, v1); got != 3 {
		t.Fatalf("in-flight request on v1 answered %v, want 3", got)
	}
	if n := len(h.events(EventUnloaded)); n != 0 {
		t.Fatalf("v1 unloaded while a request held it (%d unload events)", n)
	}
	if _, err := h.set.Acquire("lin", 1); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Acquire(v1) after the swap: %v, want ErrNotReady", err)
	}
	if got := h.set.Resident(); got["lin"] != 2 {
		t.Fatalf("resident versions %v while v1 drains, want lin: 2", got)
	}
	v1.Release()
	testenv.Eventually(t, wait, "v1 unloaded", func() bool { return len(h.events(EventUnloaded)) == 1 })
	testenv.Eventually(t, wait, "one resident version", func() bool { return h.set.Resident()["lin"] == 1 })
	if e := h.events(EventUnloaded)[0]; e.Version != 1 {
		t.Fatalf("unloaded %+v, want version 1", e)
	}
	sw := h.events(EventSwapped)
	if len(sw) != 2 || sw[1].Version != 2 || sw[1].Previous != 1 {
		t.Fatalf("swap events %+v", sw)
	}
}

// TestFailedLoadKeepsServingAndBacksOff runs in a synctest bubble, whose
// clock moves only when every goroutine in it waits: the test shows that
// an unchanged broken version is not retried before its backoff and is
// retried after it, without waiting the hour.
func TestFailedLoadKeepsServingAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{RetryBackoff: time.Hour, MaxRetryBackoff: 4 * time.Hour})
		h.servingThenBroken()
		failedAt := h.events(EventLoadFailed)[0].Time
		if got := h.serving("lin"); got != 1 {
			t.Fatalf("serving %d after a failed load, want 1", got)
		}
		st, err := h.set.Status("lin")
		if err != nil {
			t.Fatal(err)
		}
		if st.Versions[0].Version != 2 || st.Versions[0].State != "failed" || st.Versions[0].Reason == "" {
			t.Fatalf("status %+v", st.Versions)
		}
		// The first retry is due after an hour ± 50 %.
		if d := st.Versions[0].RetryAt.Sub(failedAt); d < 30*time.Minute || d > 90*time.Minute+time.Second {
			t.Fatalf("first retry in %v, want 30m..90m", d)
		}
		// The same directory reported again is not retried in a hot loop,
		// nor before its backoff.
		for i := 0; i < 20; i++ {
			h.sync("lin")
		}
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		if n := len(h.events(EventLoadFailed)); n != 1 {
			t.Fatalf("%d load attempts of an unchanged broken version within 29 minutes, want 1", n)
		}
		// After it, it is retried once, fails again, and waits longer
		// (two hours ± 50 %).
		time.Sleep(62 * time.Minute)
		synctest.Wait()
		if n := len(h.events(EventLoadFailed)); n != 2 {
			t.Fatalf("%d load attempts after the first backoff, want 2", n)
		}
		st, _ = h.set.Status("lin")
		if d := st.Versions[0].RetryAt.Sub(h.events(EventLoadFailed)[1].Time); d < time.Hour || d > 3*time.Hour+time.Second {
			t.Fatalf("second retry in %v, want 1h..3h", d)
		}
		// Fixing the directory (new files, new fingerprint) retries at once.
		if err := os.WriteFile(filepath.Join(h.root, "lin", "2", "model.onnx"), linear(t, 5), 0o644); err != nil {
			t.Fatal(err)
		}
		h.sync("lin")
		testenv.Eventually(t, wait, "fixed v2 serving", func() bool { return h.serving("lin") == 2 })
	})
}

func TestSignatureChangeRejectedUnlessIntended(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("lin", 1, linear(t, 1))
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })

	three, err := testmodels.Linear("x", "y", [][]float32{{1}, {1}, {1}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	h.publish("lin", 2, three)
	h.sync("lin")
	testenv.Eventually(t, wait, "rejection", func() bool { return len(h.events(EventRejected)) == 1 })
	if r := h.events(EventRejected)[0].Reason; !strings.Contains(r, "signature changed") {
		t.Fatalf("rejection reason %q", r)
	}
	if got := h.serving("lin"); got != 1 {
		t.Fatalf("serving %d, want 1", got)
	}

	// The same change, declared intended in the manifest, is accepted.
	dir := filepath.Join(h.root, "lin", ".tmp-3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), three, 0o644); err != nil {
		t.Fatal(err)
	}
	mf := &manifest.Manifest{Model: "lin", Version: 3, Signature: &manifest.Signature{IntendedChange: true}}
	b, err := mf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, filepath.Join(h.root, "lin", "3")); err != nil {
		t.Fatal(err)
	}
	h.sync("lin")
	testenv.Eventually(t, wait, "v3 serving", func() bool { return h.serving("lin") == 3 })
}

func TestPoliciesAndPins(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, Config{StateFile: state, Policies: map[string]route.Policy{"lin": {Latest: 2}}})
	for v := int64(1); v <= 3; v++ {
		h.publish("lin", v, linear(t, float32(v)))
	}
	h.sync("lin")
	testenv.Eventually(t, wait, "v3 serving", func() bool { return h.serving("lin") == 3 })
	testenv.Eventually(t, wait, "v2 addressable", func() bool {
		v, err := h.set.Acquire("lin", 2)
		if err != nil {
			return false
		}
		defer v.Release()
		return infer(t, v) == 6
	})
	if _, err := h.set.Acquire("lin", 1); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "policy") {
		t.Fatalf("v1 under latest:2: %v", err)
	}
	if _, err := h.set.Acquire("lin", 9); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("v9: %v", err)
	}
	if _, err := h.set.Acquire("nope", 0); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("unknown model: %v", err)
	}

	// Pin v1: it alone serves, and the pin survives a restart.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.set.Pin(ctx, "lin", 1); err != nil {
		t.Fatal(err)
	}
	if got := h.serving("lin"); got != 1 {
		t.Fatalf("serving %d after pin, want 1", got)
	}
	if err := h.set.Pin(ctx, "lin", 42); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("pin of a missing version: %v", err)
	}
	h2 := newHarness(t, Config{StateFile: state})
	h2.root = h.root
	h2.sync("lin")
	testenv.Eventually(t, wait, "pinned v1 after restart", func() bool { return h2.serving("lin") == 1 })
	if err := h2.set.Unpin("lin"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "latest after unpin", func() bool { return h2.serving("lin") == 3 })
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"lin"`) {
		t.Fatalf("state file still pins lin: %s", b)
	}

	// Specific policy via reload.
	if err := h2.set.SetPolicies(map[string]route.Policy{"lin": {Specific: []int64{2}}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "specific v2", func() bool { return h2.serving("lin") == 2 })
}

// TestRemovedLastVersionKeepsServing runs in a synctest bubble, so that
// "nothing replaces the last version" is shown over a minute of the
// bubble's clock, after every goroutine of the set has settled.
func TestRemovedLastVersionKeepsServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		h.publish("lin", 1, linear(t, 1))
		h.sync("lin")
		testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })
		if err := os.RemoveAll(filepath.Join(h.root, "lin", "1")); err != nil {
			t.Fatal(err)
		}
		h.sync("lin")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := h.serving("lin"); got != 1 {
			t.Fatalf("serving %d after the last version's directory was removed, want 1 kept", got)
		}
		if n := len(h.events(EventUnloaded)); n != 0 {
			t.Fatalf("%d versions unloaded, want none", n)
		}
		// A new version replaces it, and then the removed one is unloaded.
		h.publish("lin", 2, linear(t, 2))
		h.sync("lin")
		testenv.Eventually(t, wait, "v2 serving", func() bool { return h.serving("lin") == 2 })
		testenv.Eventually(t, wait, "v1 unloaded", func() bool { return len(h.events(EventUnloaded)) == 1 })
	})
}

// TestRollbackEvents: an older version taking over from a newer one is a
// rollback, whatever made it (a pin, the newer directory removed, the
// policy), reported with the version it replaced and why; a newer version
// taking over is not.
func TestRollbackEvents(t *testing.T) {
	h := newHarness(t, Config{})
	for v := int64(1); v <= 2; v++ {
		h.publish("lin", v, linear(t, float32(v)))
	}
	h.sync("lin")
	testenv.Eventually(t, wait, "v2 serving", func() bool { return h.serving("lin") == 2 })
	if rb := h.events(EventRolledBack); len(rb) != 0 {
		t.Fatalf("rollback events before any rollback: %+v", rb)
	}
	check := func(n int, version, previous int64, reason string) {
		t.Helper()
		// The event is emitted after the swap the caller waited for.
		testenv.Eventually(t, wait, fmt.Sprintf("%d rollback events", n), func() bool { return len(h.events(EventRolledBack)) >= n })
		rb := h.events(EventRolledBack)
		if len(rb) != n {
			t.Fatalf("%d rollback events, want %d: %+v", len(rb), n, rb)
		}
		e := rb[n-1]
		if e.Model != "lin" || e.Version != version || e.Previous != previous || !strings.Contains(e.Reason, reason) {
			t.Fatalf("rollback event %+v, want lin v%d after v%d, reason with %q", e, version, previous, reason)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.set.Pin(ctx, "lin", 1); err != nil {
		t.Fatal(err)
	}
	check(1, 1, 2, "version 1 is pinned")
	if err := h.set.Unpin("lin"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "v2 serving again", func() bool { return h.serving("lin") == 2 })
	check(1, 1, 2, "pinned") // going forward is no rollback

	if err := h.set.SetPolicies(map[string]route.Policy{"lin": {Specific: []int64{1}}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "v1 serving by policy", func() bool { return h.serving("lin") == 1 })
	check(2, 1, 2, "version policy (specific [1])")
	if err := h.set.SetPolicies(nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "v2 serving under latest", func() bool { return h.serving("lin") == 2 })

	if err := os.RemoveAll(filepath.Join(h.root, "lin", "2")); err != nil {
		t.Fatal(err)
	}
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving after v2 is removed", func() bool { return h.serving("lin") == 1 })
	check(3, 1, 2, "version 2's directory was removed")
	if sw := h.events(EventSwapped); sw[len(sw)-1].Version != 1 || sw[len(sw)-1].Previous != 2 {
		t.Fatalf("a rollback is also a swap: last swap %+v", sw[len(sw)-1])
	}
}

// TestConcurrentRequestsAcrossSwaps runs requests continuously while ten
// versions are published; none may fail, and each answer must come from the
// version the request acquired.
func TestConcurrentRequestsAcrossSwaps(t *testing.T) {
	h := newHarness(t, Config{WarmupRuns: 1})
	h.publish("lin", 1, linear(t, 1))
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var requests sync.Map
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for ctx.Err() == nil {
				v, err := h.set.Acquire("lin", 0)
				if err != nil {
					errs <- err
					return
				}
				out, err := v.Infer(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 2}, Data: []float32{1, 1}}}, nil)
				num := v.Number
				v.Release()
				if err != nil {
					errs <- err
					return
				}
				if got, want := out[0].Data.([]float32)[0], float32(3*num); math.Abs(float64(got-want)) > 1e-4 {
					errs <- fmt.Errorf("version %d answered %v, want %v", num, got, want)
					return
				}
				n++
			}
			requests.Store(&n, n)
		}()
	}
	for v := int64(2); v <= 10; v++ {
		h.publish("lin", v, linear(t, float32(v)))
		h.sync("lin")
		testenv.Eventually(t, wait, fmt.Sprintf("v%d serving", v), func() bool { return h.serving("lin") == v })
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	requests.Range(func(_, v any) bool { total += v.(int); return true })
	if total == 0 {
		t.Fatal("no requests ran")
	}
	testenv.Eventually(t, wait, "old versions unloaded", func() bool { return len(h.events(EventUnloaded)) == 9 })
	t.Logf("%d requests across 9 swaps, none failed", total)
}

// TestOnLoadBracketsEachLoad: OnLoad's hold covers each load up to and
// including the gate, and ends whether the load succeeds or fails.
func TestOnLoadBracketsEachLoad(t *testing.T) {
	var mu sync.Mutex
	var started, done int
	var heldAtGate []int
	h := newHarness(t, Config{
		OnLoad: func() func() {
			mu.Lock()
			started++
			mu.Unlock()
			return func() {
				mu.Lock()
				done++
				mu.Unlock()
			}
		},
		Gate: func(ctx context.Context, cand, cur *Version) error {
			mu.Lock()
			heldAtGate = append(heldAtGate, started-done)
			mu.Unlock()
			return nil
		},
	})
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return started, done
	}
	h.servingThenBroken()
	if s, d := counts(); s != 2 || d != 2 {
		t.Fatalf("OnLoad called %d times, released %d, want 2 and 2", s, d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heldAtGate) != 1 || heldAtGate[0] != 1 {
		t.Fatalf("holds in force at each gate %v, want [1]", heldAtGate)
	}
}
