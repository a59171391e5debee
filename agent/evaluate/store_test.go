package evaluate

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// newClock returns a clock that moves only when told.
func newClock() *testenv.Clock { return testenv.NewClock(time.Unix(1_800_000_000, 0)) }

func sample(model string, class string) Sample {
	return Sample{Model: model, Version: "1", Task: "classification", Pred: Prediction{Class: class, HasClass: true}}
}

func TestStoreJoin(t *testing.T) {
	st := NewStore(StoreOptions{})
	st.Put("a", sample("m", "cat"))
	st.Put("b", sample("m", "dog"))
	s, status := st.Take("a")
	if status != Joined || s.Pred.Class != "cat" {
		t.Fatalf("Take(a) = %+v, %v; want cat, joined", s, status)
	}
	if _, status := st.Take("a"); status != Unknown {
		t.Errorf("second Take(a) = %v, want unknown (joined once)", status)
	}
	if _, status := st.Take("never"); status != Unknown {
		t.Errorf("Take(never) = %v, want unknown", status)
	}
	// Put replaces.
	st.Put("b", sample("m", "bird"))
	if st.Len() != 1 {
		t.Errorf("Len = %d after replacing, want 1", st.Len())
	}
	if s, _ := st.Take("b"); s.Pred.Class != "bird" {
		t.Errorf("Take(b) = %q, want the replacement", s.Pred.Class)
	}
	if st.Len() != 0 || st.Bytes() != 0 {
		t.Errorf("empty store: Len %d, Bytes %d", st.Len(), st.Bytes())
	}
}

func TestStoreTTL(t *testing.T) {
	clock := newClock()
	st := NewStore(StoreOptions{TTL: time.Minute, Now: clock.Now})
	st.Put("old", sample("m", "a"))
	st.Put("taken-late", sample("m", "a"))
	clock.Advance(30 * time.Second)
	st.Put("young", sample("m", "b"))
	clock.Advance(31 * time.Second) // old: 61s, young: 31s

	if _, status := st.Take("taken-late"); status != Expired {
		t.Errorf("Take(taken-late) = %v, want expired", status)
	}
	if _, status := st.Take("taken-late"); status != Expired {
		t.Errorf("Take(taken-late) again = %v, want expired (tombstone)", status)
	}
	// A Put purges "old" from the oldest end and leaves a tombstone.
	st.Put("new", sample("m", "c"))
	if st.Len() != 2 {
		t.Errorf("Len = %d, want 2 (young, new)", st.Len())
	}
	if _, status := st.Take("old"); status != Expired {
		t.Errorf("Take(old) = %v, want expired", status)
	}
	if s, status := st.Take("young"); status != Joined || s.Pred.Class != "b" {
		t.Errorf("Take(young) = %v, want joined", status)
	}
	// Exactly TTL old is still joined.
	clock.Advance(time.Minute)
	if _, status := st.Take("new"); status != Joined {
		t.Errorf("Take(new) at exactly TTL = %v, want joined", status)
	}
	// A new Put under an expired id is a new sample.
	st.Put("old", sample("m", "d"))
	if s, status := st.Take("old"); status != Joined || s.Pred.Class != "d" {
		t.Errorf("Take(old) after Put = %v %q, want joined d", status, s.Pred.Class)
	}
}

func TestStoreBounds(t *testing.T) {
	t.Run("entries, oldest first", func(t *testing.T) {
		st := NewStore(StoreOptions{MaxEntries: 3})
		for i := range 5 {
			st.Put(fmt.Sprint(i), sample("m", fmt.Sprint(i)))
		}
		if st.Len() != 3 {
			t.Fatalf("Len = %d, want 3", st.Len())
		}
		for i, want := range []Status{Unknown, Unknown, Joined, Joined, Joined} {
			if _, got := st.Take(fmt.Sprint(i)); got != want {
				t.Errorf("Take(%d) = %v, want %v", i, got, want)
			}
		}
	})
	t.Run("bytes", func(t *testing.T) {
		one := sampleSize("0", &Sample{Features: make([]float64, 100)})
		st := NewStore(StoreOptions{MaxBytes: 2*one + one/2})
		for i := range 4 {
			st.Put(fmt.Sprint(i), Sample{Features: make([]float64, 100)})
		}
		if st.Len() != 2 || st.Bytes() != 2*one {
			t.Fatalf("Len %d Bytes %d, want 2 and %d", st.Len(), st.Bytes(), 2*one)
		}
		if _, status := st.Take("1"); status != Unknown {
			t.Errorf("Take(1) = %v, want unknown (evicted for size)", status)
		}
		// A sample larger than MaxBytes alone is not stored.
		st.Put("huge", Sample{Features: make([]float64, 1000)})
		if _, status := st.Take("huge"); status != Unknown {
			t.Errorf("Take(huge) = %v, want unknown", status)
		}
		if _, status := st.Take("3"); status != Joined {
			t.Errorf("Take(3) = %v, want joined (the huge sample evicts nothing)", status)
		}
	})
	t.Run("tombstones", func(t *testing.T) {
		clock := newClock()
		st := NewStore(StoreOptions{TTL: time.Second, MaxTombstones: 2, Now: clock.Now})
		for i := range 3 {
			st.Put(fmt.Sprint(i), sample("m", ""))
		}
		clock.Advance(2 * time.Second)
		st.Put("x", sample("m", "")) // purges 0, 1, 2; tombstone 0 is forgotten
		for i, want := range []Status{Unknown, Expired, Expired} {
			if _, got := st.Take(fmt.Sprint(i)); got != want {
				t.Errorf("Take(%d) = %v, want %v", i, got, want)
			}
		}
	})
	t.Run("size eviction of an expired sample leaves a tombstone", func(t *testing.T) {
		clock := newClock()
		st := NewStore(StoreOptions{MaxEntries: 1, TTL: time.Second, Now: clock.Now})
		st.Put("a", sample("m", ""))
		clock.Advance(2 * time.Second)
		st.Put("b", sample("m", ""))
		if _, got := st.Take("a"); got != Expired {
			t.Errorf("Take(a) = %v, want expired", got)
		}
	})
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Joined: "joined", Unknown: "unknown", Expired: "expired"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

func TestStoreConcurrent(t *testing.T) {
	st := NewStore(StoreOptions{MaxEntries: 100})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				id := fmt.Sprintf("%d-%d", g, i)
				st.Put(id, sample("m", id))
				if s, status := st.Take(id); status == Joined && s.Pred.Class != id {
					t.Errorf("Take(%s) returned %s's sample", id, s.Pred.Class)
				}
			}
		})
	}
	wg.Wait()
	if st.Len() > 100 {
		t.Errorf("Len = %d > MaxEntries", st.Len())
	}
}

func BenchmarkStorePutTake(b *testing.B) {
	st := NewStore(StoreOptions{})
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = NewRequestID()
	}
	s := Sample{Model: "m", Version: "1", Task: "classification", Pred: Prediction{Class: "a", HasClass: true, Probs: []float64{0.1, 0.9}}}
	i := 0
	for b.Loop() {
		id := ids[i%len(ids)]
		st.Put(id, s)
		st.Take(id)
		i++
	}
}

// TestStoreTakeFor: a sample is taken only by its own model; another
// model's Take finds it Unknown and leaves it in place.
func TestStoreTakeFor(t *testing.T) {
	st := NewStore(StoreOptions{})
	st.Put("id-1", sample("iris", "a"))
	if _, status := st.TakeFor("id-1", "fraud"); status != Unknown || st.Len() != 1 {
		t.Fatalf("TakeFor(other model) = %v, len %d; want Unknown and the sample kept", status, st.Len())
	}
	if s, status := st.TakeFor("id-1", "iris"); status != Joined || s.Pred.Class != "a" || st.Len() != 0 {
		t.Fatalf("TakeFor(own model) = %+v %v, len %d", s, status, st.Len())
	}
	if _, status := st.TakeFor("id-1", "iris"); status != Unknown {
		t.Fatalf("second TakeFor = %v, want Unknown", status)
	}
}
