package procenv

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSched stands in for the runtime: the waits each window adds, and
// the slot changes Slots makes.
type fakeSched struct {
	mu        sync.Mutex
	all, long uint64
	perAll    uint64 // waits each read adds
	perLong   uint64 // of which long
	inFlight  int64  // requests in hand
	slots     int
	changes   []int
	// Requests answered: perMS1 a millisecond with one slot, perMS4 with
	// all, counted up to countedAt.
	perMS1, perMS4 float64
	count          float64
	countedAt      time.Time
}

// advance counts the requests answered since the last count; f.mu must be
// held.
func (f *fakeSched) advance() {
	now := time.Now()
	if !f.countedAt.IsZero() {
		r := f.perMS1
		if f.slots > 1 {
			r = f.perMS4
		}
		f.count += r * float64(now.Sub(f.countedAt)) / float64(time.Millisecond)
	}
	f.countedAt = now
}

func (f *fakeSched) served() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	return uint64(f.count)
}

// answering sets how many requests a millisecond one slot and all of them
// answer.
func (f *fakeSched) answering(one, all float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	f.perMS1, f.perMS4 = one, all
}

func (f *fakeSched) waits() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all += f.perAll
	f.long += f.perLong
	return f.all, f.long
}

func (f *fakeSched) requests() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inFlight
}

func (f *fakeSched) serving(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight = n
}

func (f *fakeSched) load(all, long uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.perAll, f.perLong = all, long
}

func (f *fakeSched) current() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slots
}

// set makes n the slots, as All (4) or one (1) would.
func (f *fakeSched) set(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	f.slots = n
	f.changes = append(f.changes, n)
}

func (f *fakeSched) slots4() int { f.set(4); return 4 }
func (f *fakeSched) one()        { f.set(1) }

// history is the slot changes so far.
func (f *fakeSched) history() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// after lets d pass, waits for Slots to act and checks it left want
// slots; what says what happened.
func (f *fakeSched) after(t *testing.T, d time.Duration, want int, what string) {
	t.Helper()
	time.Sleep(d)
	synctest.Wait()
	if got := f.current(); got != want {
		t.Fatalf("%s: %d slots, want %d", what, got, want)
	}
}

func newFake() (*fakeSched, *Slots) {
	f := &fakeSched{slots: 4}
	return f, &Slots{All: f.slots4, waits: f.waits, InFlight: f.requests, one: f.one}
}

// start runs s until the returned stop is called, which waits for Run to
// return.
func start(ctx context.Context, s *Slots) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

func TestSlotsFollowTheWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		f.load(100, 2) // light: few long waits
		stop := start(t.Context(), s)
		synctest.Wait()
		if got := f.current(); got != 1 {
			t.Fatalf("at start: %d slots, want 1", got)
		}
		f.after(t, 10*time.Second, 1, "light load, 10s")
		// 7 long waits of 20: a share above 8 % but fewer than MinWaits.
		f.load(20, 7)
		f.after(t, time.Second, 1, "7 long waits a window")
		// 8 of 200 is 4 %: under Share.
		f.load(200, 8)
		f.after(t, time.Second, 1, "4 % long waits")
		f.load(100, 10) // 10 %: goroutines queue
		f.after(t, 100*time.Millisecond, 4, "10 % long waits")
		// The first try after Probe (5s), then twice as long each time the
		// load sends it back up at once.
		for i, wait := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute} {
			f.after(t, wait-100*time.Millisecond, 4, fmt.Sprintf("try %d: one slot before %s", i, wait))
			f.after(t, 100*time.Millisecond, 1, fmt.Sprintf("try %d: no try after %s", i, wait))
			f.after(t, 100*time.Millisecond, 4, fmt.Sprintf("try %d: load queues", i)) // the load queues at once
		}
		// The load falls: the next try (a minute on) keeps one slot, and
		// a later rise is answered with the first try after Probe again.
		f.load(100, 0)
		f.after(t, time.Minute, 1, "light load after a minute")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		f.load(100, 50)
		f.after(t, 100*time.Millisecond, 4, "rise")
		f.after(t, 5*time.Second, 1, "rise after a quiet spell: no try after 5s")
		stop()
		if got := f.current(); got != 4 {
			t.Fatalf("after stop: %d slots, want them all back", got)
		}
	})
}

func TestSlotsFollowTheRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		f.serving(1) // one request at a time
		stop := start(t.Context(), s)
		defer stop()
		f.after(t, 10*time.Second, 1, "one request at a time")
		// Two requests at a time: the last ten reads (one each 10ms) sum to
		// 14 after four, 15 (1.5 on average) after five.
		f.serving(2)
		f.after(t, 40*time.Millisecond, 1, "two requests for four reads")
		f.after(t, 10*time.Millisecond, 4, "two requests for five reads")
		// A try forgets the requests before it: it takes eight reads of two
		// at a time (16 of ten reads) to come back up.
		f.after(t, 5*time.Second-10*time.Millisecond, 4, "a try before 5s")
		f.after(t, 10*time.Millisecond, 1, "no try after 5s")
		f.after(t, 70*time.Millisecond, 1, "seven reads after the try")
		f.after(t, 10*time.Millisecond, 4, "eight reads after the try")
	})
}

func TestSlotsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		// A hold before Run: all slots from the start, past Probe.
		release := s.Hold()
		stop := start(t.Context(), s)
		f.after(t, 10*time.Second, 4, "held from the start")
		release()
		f.after(t, 10*time.Millisecond, 1, "released after Probe: the next read tries one slot")
		// A hold with one slot takes them all at once, not a read later.
		r1, r2 := s.Hold(), s.Hold()
		if got := f.current(); got != 4 {
			t.Fatalf("Hold returned with %d slots, want 4", got)
		}
		r1()
		r1() // a second call releases nothing more
		f.after(t, 20*time.Second, 4, "one hold of two released")
		r2()
		f.after(t, 10*time.Millisecond, 1, "both released")
		// A hold just after a try is no failed try: the next one waits
		// Probe (5s), not twice that.
		s.Hold()()
		f.after(t, 5*time.Second-10*time.Millisecond, 4, "a short hold, before Probe")
		f.after(t, 10*time.Millisecond, 1, "a short hold, then Probe")
		stop()
		before := f.history()
		s.Hold()()
		if after := f.history(); !slices.Equal(after, before) {
			t.Fatalf("Hold after Run returned changed the slots: %v, then %v", before, after)
		}
	})
}

func TestSlotsStopWithAllSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		f.load(100, 50)
		ctx, cancel := context.WithCancel(t.Context())
		stop := start(ctx, s)
		f.after(t, 150*time.Millisecond, 4, "goroutines queue")
		cancel() // ctx ends: the loop stops, nothing else changes
		synctest.Wait()
		stop()
		if got := f.history(); !slices.Equal(got, []int{1, 4}) {
			t.Fatalf("changes %v: want one slot then all, once each", got)
		}
	})
}

// TestSlotsRuntime runs Slots on the runtime itself: one slot while the
// test idles, all of them once goroutines that spin queue for it, and
// GOMAXPROCS as it was after stop.
func TestSlotsRuntime(t *testing.T) {
	before := goruntime.GOMAXPROCS(0)
	if before < 2 {
		t.Skip("one CPU: nothing to adapt")
	}
	s := &Slots{All: func() int { goruntime.GOMAXPROCS(before); return before }, Window: 20 * time.Millisecond, Probe: time.Hour}
	stop := start(t.Context(), s)
	defer func() {
		stop()
		if got := goruntime.GOMAXPROCS(0); got != before {
			t.Errorf("after stop: GOMAXPROCS %d, want %d", got, before)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for goruntime.GOMAXPROCS(0) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS %d after 10s, want 1", goruntime.GOMAXPROCS(0))
		}
		time.Sleep(time.Millisecond)
	}
	// Goroutines that each spin for 100µs and yield queue for the one slot:
	// each waits for the others, 700µs and more.
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 * before {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				for t0 := time.Now(); time.Since(t0) < 100*time.Microsecond; {
				}
				goruntime.Gosched()
			}
		})
	}
	defer func() {
		close(done)
		wg.Wait()
	}()
	deadline = time.Now().Add(10 * time.Second)
	for goruntime.GOMAXPROCS(0) != before {
		if time.Now().After(deadline) {
			t.Fatalf("spinning goroutines: GOMAXPROCS %d after 10s, want %d", goruntime.GOMAXPROCS(0), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlotsOnePerProcess: GOMAXPROCS is the process's, so a second Slots
// that runs while one does changes nothing, and one that runs after the
// first returned follows the load.
func TestSlotsOnePerProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f1, s1 := newFake()
		f2, s2 := newFake()
		stop1 := start(t.Context(), s1)
		synctest.Wait()
		stop2 := start(t.Context(), s2)
		f2.load(100, 50)
		f1.after(t, time.Second, 1, "the first Slots")
		s2.Hold()()
		stop2()
		if got := f2.history(); len(got) != 0 {
			t.Errorf("the second Slots changed the slots: %v", got)
		}
		stop1()
		f3, s3 := newFake()
		stop3 := start(t.Context(), s3)
		defer stop3()
		f3.after(t, 10*time.Millisecond, 1, "a Slots after the first returned")
	})
}

// TestSlotsCompare: with one slot and requests to answer, Slots tries all
// slots every Explore (5s) for two windows and keeps them only when they
// answer more than a tenth more; a try of one slot that answers a tenth
// fewer goes back up (and the next try waits twice as long).
func TestSlotsCompare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		s.Served = f.served
		f.answering(1, 1) // 100 a window, one slot or all: a client at a time
		stop := start(t.Context(), s)
		defer stop()
		f.after(t, 5*time.Second-100*time.Millisecond, 1, "before the first exploration")
		f.after(t, 100*time.Millisecond, 4, "exploring all slots after 5s")
		f.after(t, 100*time.Millisecond, 4, "exploring, one window")
		f.after(t, 100*time.Millisecond, 1, "all slots answered no more: one again")
		f.after(t, 5*time.Second-100*time.Millisecond, 1, "before the next exploration")
		// All slots answer twice as many: kept.
		f.answering(1, 2)
		f.after(t, 100*time.Millisecond, 4, "exploring again")
		f.after(t, 200*time.Millisecond, 4, "all slots answered twice as many: kept")
		// The try of one slot, Probe after the rise, answers half as many:
		// back up after two windows, and the next try waits 10s.
		f.after(t, 5*time.Second-300*time.Millisecond, 4, "before the try")
		f.after(t, 100*time.Millisecond, 1, "trying one slot")
		f.after(t, 200*time.Millisecond, 4, "one slot answered half as many: all again")
		f.after(t, 10*time.Second-100*time.Millisecond, 4, "before the next try, 10s on")
		// The load changes: one slot answers as many; the try keeps it.
		f.answering(2, 2)
		f.after(t, 100*time.Millisecond, 1, "trying one slot again")
		f.after(t, 5*time.Second-100*time.Millisecond, 1, "one slot answered as many: kept")
		// No requests: no exploration.
		f.answering(0, 0)
		f.after(t, 20*time.Second, 1, "idle")
		if got, want := f.history(), []int{1, 4, 1, 4, 1, 4, 1}; !slices.Equal(got, want) {
			t.Errorf("changes %v, want %v (idle explores nothing)", got, want)
		}
	})
}

// TestSlotsShift: a change of a quarter in the requests answered since the
// last comparison, in both of the last two windows, starts one at once: a
// rise with one slot explores all, a fall with all tries one.
func TestSlotsShift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := newFake()
		s.Served = f.served
		f.answering(1, 1)
		stop := start(t.Context(), s)
		defer stop()
		f.after(t, 5*time.Second, 4, "the first exploration")
		f.after(t, 200*time.Millisecond, 1, "all slots answered no more")
		f.after(t, 800*time.Millisecond, 1, "a second on")
		f.answering(1.5, 3) // more clients: one slot answers half as many more, all three times
		f.after(t, 100*time.Millisecond, 1, "one window of the rise")
		f.after(t, 100*time.Millisecond, 4, "two windows of the rise: exploring at once, not 5s after the last")
		f.after(t, 200*time.Millisecond, 4, "all slots answered twice as many: kept")
		f.after(t, 600*time.Millisecond, 4, "a second after the rise")
		f.answering(1, 1) // fewer clients
		f.after(t, 100*time.Millisecond, 4, "one window of the fall")
		f.after(t, 100*time.Millisecond, 1, "two windows of the fall: trying one slot at once, not 5s after the rise")
		f.after(t, 2*time.Second, 1, "one slot answered as many: kept")
		if got, want := f.history(), []int{1, 4, 1, 4, 1}; !slices.Equal(got, want) {
			t.Errorf("changes %v, want %v", got, want)
		}
	})
}
