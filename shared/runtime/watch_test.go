package runtime

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// TestWatchdog follows the watchdog's bookkeeping on fake time: runs end
// at their deadline or their context's end, not before, and the timer is
// disarmed once no run is in flight.
func TestWatchdog(t *testing.T) {
	if err := Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWatchdog()
		newRO := func() *ort.RunOptions {
			ro, err := ort.NewRunOptions()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ro.Destroy() })
			return ro
		}
		ended := func(r *watchedRun) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			return r.ended
		}

		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := w.start(cancelled, time.Time{}, newRO()); !errors.Is(err, context.Canceled) {
			t.Fatalf("start with an ended context: %v, want context.Canceled", err)
		}
		if _, err := w.start(context.Background(), time.Now(), newRO()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("start at its deadline: %v, want context.DeadlineExceeded", err)
		}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		byDeadline, err := w.start(context.Background(), time.Now().Add(time.Second), newRO())
		if err != nil {
			t.Fatal(err)
		}
		byContext, err := w.start(ctx, time.Time{}, newRO())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * watchInterval)
		synctest.Wait()
		if e1, e2 := ended(byDeadline), ended(byContext); e1 != nil || e2 != nil {
			t.Fatalf("ended before their time: %v, %v", e1, e2)
		}
		cancel()
		time.Sleep(watchInterval)
		synctest.Wait()
		if e1, e2 := ended(byDeadline), ended(byContext); e1 != nil || !errors.Is(e2, context.Canceled) {
			t.Fatalf("after the cancel: %v, %v; want nil, context.Canceled", e1, e2)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if err := ended(byDeadline); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after the deadline: %v, want context.DeadlineExceeded", err)
		}
		if err := w.finish(byContext); !errors.Is(err, context.Canceled) {
			t.Fatalf("finish: %v, want context.Canceled", err)
		}
		w.mu.Lock()
		armed, n := w.armed, len(w.runs)
		w.mu.Unlock()
		if !armed || n != 1 {
			t.Fatalf("one run in flight: armed %v, %d runs; want armed, 1", armed, n)
		}
		if err := w.finish(byDeadline); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("finish: %v, want context.DeadlineExceeded", err)
		}
		// The timer runs on for a second without runs, then stops.
		state := func() (bool, int) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.armed, len(w.runs)
		}
		time.Sleep((watchIdle - 2) * watchInterval)
		synctest.Wait()
		if armed, n := state(); !armed || n != 0 {
			t.Fatalf("just under a second without runs: armed %v, %d runs; want armed, 0", armed, n)
		}
		time.Sleep(3 * watchInterval)
		synctest.Wait()
		if armed, n := state(); armed || n != 0 {
			t.Fatalf("a second without runs: armed %v, %d runs; want disarmed, 0", armed, n)
		}

		// A run that finishes in time is not ended.
		quick, err := w.start(context.Background(), time.Now().Add(time.Second), newRO())
		if err != nil {
			t.Fatal(err)
		}
		if armed, _ := state(); !armed {
			t.Fatal("a run started, the timer is not armed")
		}
		if err := w.finish(quick); err != nil {
			t.Fatalf("finish in time: %v", err)
		}
		// A run now and then keeps it armed.
		for range 3 {
			time.Sleep((watchIdle - 2) * watchInterval)
			r, err := w.start(context.Background(), time.Time{}, newRO())
			if err != nil {
				t.Fatal(err)
			}
			w.finish(r)
		}
		synctest.Wait()
		if armed, _ := state(); !armed {
			t.Fatal("runs every 0.96s, the timer stopped")
		}
	})
}

// TestRunBeforeStopsTheRun runs a model long enough to outlive a short
// deadline, and a cancelled context, on the real runtime: the runs fail
// with the reason, and the run options they terminated serve later runs.
func TestRunBeforeStopsTheRun(t *testing.T) {
	const dim, batch = 512, 2048
	chain, err := testmodels.Chain(dim, 64)
	if err != nil {
		t.Fatal(err)
	}
	m := loadBytes(t, chain)
	x := make([]float32, batch*dim)
	long := []oip.Tensor{{Name: testmodels.BigInput, Datatype: oip.FP32, Shape: []int64{batch, dim}, Data: x}}

	// Started before its deadline: the early checks pass, the watchdog
	// ends it.
	start := time.Now()
	_, err = m.RunBefore(context.Background(), start.Add(time.Minute), long, nil)
	full := time.Since(start)
	if err != nil {
		t.Fatalf("a run in time: %v", err)
	}
	_, err = m.RunBefore(context.Background(), time.Now().Add(full/8), long, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past its deadline: err = %v, want context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(full/8, cancel)
	defer stop.Stop()
	_, err = m.RunBefore(ctx, time.Time{}, long, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("context cancelled: err = %v, want context.Canceled", err)
	}

	// More runs than the free list keeps, so that the terminated options
	// are among those reused.
	one := []oip.Tensor{{Name: testmodels.BigInput, Datatype: oip.FP32, Shape: []int64{1, dim}, Data: make([]float32, dim)}}
	one[0].Data.([]float32)[3] = 7
	for i := range cap(freeRunOptions) + 2 {
		out, err := m.RunBefore(context.Background(), time.Now().Add(time.Minute), one, nil)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if y := out[0].Data.([]float32); y[3] != 7 || y[2] != 0 {
			t.Fatalf("run %d: y[2:4] = %v, want [0 7]", i, y[2:4])
		}
	}
}
