package ring

import (
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// fakeMembership is the membership a settledOwns sees.
type fakeMembership struct {
	mu      sync.Mutex
	members []Member
}

func (f *fakeMembership) get() []Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Member(nil), f.members...)
}

func (f *fakeMembership) set(ms ...Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = ms
}

func ownsAll(string) bool { return true }

func TestSettledOwns(t *testing.T) {
	self := Member{Name: "n0", State: StateAlive}
	peer := Member{Name: "n1", State: StateAlive}
	const grace = 30 * time.Second

	t.Run("not joining owns at once", func(t *testing.T) {
		f := &fakeMembership{}
		f.set(self)
		clock := testenv.NewClock(time.Unix(1000, 0))
		if !settledOwns(f.get, ownsAll, false, clock.Now, grace)("m") {
			t.Error("a node that joins nobody does not own its models")
		}
	})
	t.Run("joining waits for a peer", func(t *testing.T) {
		f := &fakeMembership{}
		f.set(self, Member{Name: "n2", State: StateDead})
		clock := testenv.NewClock(time.Unix(1000, 0))
		owns := settledOwns(f.get, ownsAll, true, clock.Now, grace)
		if owns("m") {
			t.Fatal("owns a model while alone in the ring")
		}
		f.set(self, peer)
		if !owns("m") {
			t.Fatal("does not own once a peer is alive")
		}
		f.set(self) // settled stays settled: the ring's Owns decides
		if !owns("m") {
			t.Error("unsettled again after the peer left")
		}
	})
	t.Run("joining settles after grace", func(t *testing.T) {
		f := &fakeMembership{}
		f.set(self)
		clock := testenv.NewClock(time.Unix(1000, 0))
		owns := settledOwns(f.get, ownsAll, true, clock.Now, grace)
		clock.Advance(grace - time.Millisecond)
		if owns("m") {
			t.Fatal("owns before grace passed")
		}
		clock.Advance(time.Millisecond)
		if !owns("m") {
			t.Fatal("does not own after grace")
		}
	})
	t.Run("settled is the ring's Owns", func(t *testing.T) {
		f := &fakeMembership{}
		f.set(self, peer)
		clock := testenv.NewClock(time.Unix(1000, 0))
		owns := settledOwns(f.get, func(m string) bool { return m == "mine" }, true, clock.Now, grace)
		if !owns("mine") || owns("theirs") {
			t.Error("settled owns differs from the ring's Owns")
		}
	})
}
