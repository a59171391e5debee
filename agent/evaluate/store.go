package evaluate

import (
	"sync"
	"time"
)

// Defaults for StoreOptions.
const (
	DefaultStoreEntries = 100_000
	DefaultStoreBytes   = 64 << 20
	DefaultStoreTTL     = time.Hour
)

// StoreOptions configure a Store. Zero or negative values take the defaults.
type StoreOptions struct {
	// MaxEntries bounds the number of samples held (default 100k).
	MaxEntries int
	// MaxBytes bounds the estimated memory of the samples held (default
	// 64 MiB); see Store for the estimate.
	MaxBytes int64
	// TTL is how long a sample waits for its label (default 1h).
	TTL time.Duration
	// MaxTombstones bounds how many ids of expired samples are remembered
	// so that a late label is told Expired rather than Unknown (default
	// MaxEntries/4).
	MaxTombstones int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sample is a sampled prediction waiting for its label.
type Sample struct {
	Model, Version string
	// Time is when the prediction was made.
	Time time.Time
	Pred Prediction
	// Classes label Pred.Probs (as ExtractPredictions returned them). The
	// slice is usually shared by every sample of a version: it is counted
	// once per sample as a slice header only and must not be modified.
	Classes []string
	// Task is manifest.TaskClassification or manifest.TaskRegression.
	Task string
	// Features are the request's features, optional (for training data).
	Features []float64
}

// Status says what Take found.
type Status int

// The outcomes of Take. Their String forms are the values of the feedback
// counter's status attribute.
const (
	// Unknown: the id was never stored, its label was already joined, or
	// its sample was evicted to keep the store within its bounds.
	Unknown Status = iota
	// Joined: the sample was there and is returned (and removed).
	Joined
	// Expired: the sample was stored more than TTL ago. Expired ids are
	// remembered (id only) up to MaxTombstones, oldest forgotten first; a
	// forgotten one is Unknown.
	Expired
)

// String returns "joined", "unknown" or "expired" (semconv's feedback
// status values).
func (s Status) String() string {
	switch s {
	case Joined:
		return "joined"
	case Expired:
		return "expired"
	}
	return "unknown"
}

// Store holds sampled predictions by request id until their label arrives.
//
// It is bounded three ways: by count (MaxEntries), by estimated bytes
// (MaxBytes) and by age (TTL). When a bound is exceeded the oldest samples
// are evicted first; a sample evicted while still younger than TTL is
// forgotten (its id becomes Unknown), an expired one leaves a tombstone. The
// estimate of a sample's size is the lengths of its strings, 8 bytes per
// probability and feature, and 160 bytes of fixed overhead (the entry, its
// map slot, slice headers).
//
// Every method is safe for concurrent use and O(1): expired samples are
// purged from the oldest end, at most 64 per call (a sample past its TTL is
// Expired when taken whether or not it was purged yet).
type Store struct {
	maxEntries int
	maxBytes   int64
	ttl        time.Duration
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	head    *entry // oldest
	tail    *entry // newest
	bytes   int64
	tombs   tombstones
}

type entry struct {
	id         string
	s          Sample
	at         time.Time // when it was stored, by the store's clock
	size       int64
	prev, next *entry
}

const (
	entryOverhead = 160
	purgePerCall  = 64
)

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) *Store {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultStoreEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultStoreBytes
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultStoreTTL
	}
	if opts.MaxTombstones <= 0 {
		opts.MaxTombstones = max(1, opts.MaxEntries/4)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		maxEntries: opts.MaxEntries,
		maxBytes:   opts.MaxBytes,
		ttl:        opts.TTL,
		now:        opts.Now,
		entries:    make(map[string]*entry),
		tombs:      tombstones{max: opts.MaxTombstones, ids: make(map[string]uint64)},
	}
}

func sampleSize(id string, s *Sample) int64 {
	return int64(entryOverhead + len(id) + len(s.Model) + len(s.Version) + len(s.Task) +
		len(s.Pred.Class) + 8*len(s.Pred.Probs) + 8*len(s.Features))
}

// Put stores s under id, replacing a sample already stored under it, and
// evicts the oldest samples as needed to stay within the bounds. A sample
// larger than MaxBytes on its own is not stored. The store keeps s's slices;
// the caller must not modify them afterwards.
func (st *Store) Put(id string, s Sample) {
	now := st.now()
	size := sampleSize(id, &s)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purge(now)
	if e := st.entries[id]; e != nil {
		st.remove(e)
	}
	st.tombs.forget(id)
	if size > st.maxBytes {
		return
	}
	e := &entry{id: id, s: s, at: now, size: size}
	st.entries[id] = e
	st.bytes += size
	if st.tail == nil {
		st.head, st.tail = e, e
	} else {
		e.prev, st.tail.next, st.tail = st.tail, e, e
	}
	for len(st.entries) > st.maxEntries || st.bytes > st.maxBytes {
		old := st.head
		st.remove(old)
		if st.expired(old, now) {
			st.tombs.add(old.id)
		}
	}
}

// Take returns the sample stored under id and removes it: a label is joined
// with its prediction once. See Status for what else it can find.
func (st *Store) Take(id string) (Sample, Status) { return st.take(id, "") }

// TakeFor is Take for a sample of model only: a sample stored under id for
// another model is Unknown and stays where it is, so a label sent under
// the wrong model name (or guessed) cannot remove another model's sample.
func (st *Store) TakeFor(id, model string) (Sample, Status) { return st.take(id, model) }

func (st *Store) take(id, model string) (Sample, Status) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purge(now)
	if e := st.entries[id]; e != nil {
		if model != "" && e.s.Model != model {
			return Sample{}, Unknown
		}
		st.remove(e)
		if st.expired(e, now) {
			st.tombs.add(id)
			return Sample{}, Expired
		}
		return e.s, Joined
	}
	if st.tombs.has(id) {
		return Sample{}, Expired
	}
	return Sample{}, Unknown
}

// Len returns the number of samples held (including expired ones not yet
// purged).
func (st *Store) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.entries)
}

// Bytes returns the estimated size of the samples held.
func (st *Store) Bytes() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.bytes
}

func (st *Store) expired(e *entry, now time.Time) bool { return now.Sub(e.at) > st.ttl }

// purge drops up to purgePerCall expired samples from the oldest end,
// leaving tombstones.
func (st *Store) purge(now time.Time) {
	for range purgePerCall {
		e := st.head
		if e == nil || !st.expired(e, now) {
			return
		}
		st.remove(e)
		st.tombs.add(e.id)
	}
}

func (st *Store) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		st.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		st.tail = e.prev
	}
	e.prev, e.next = nil, nil
	delete(st.entries, e.id)
	st.bytes -= e.size
}

// tombstones is a bounded FIFO set of ids. Removal is lazy: ids maps an id
// to the sequence number of its live slot in ring.
type tombstones struct {
	max  int
	ids  map[string]uint64
	ring []tomb // FIFO, start at head
	head int
	seq  uint64
}

type tomb struct {
	id  string
	seq uint64
}

func (t *tombstones) has(id string) bool { _, ok := t.ids[id]; return ok }

func (t *tombstones) forget(id string) { delete(t.ids, id) }

func (t *tombstones) add(id string) {
	t.seq++
	if len(t.ring) < t.max {
		t.ring = append(t.ring, tomb{id, t.seq})
	} else {
		old := t.ring[t.head]
		if s, ok := t.ids[old.id]; ok && s == old.seq {
			delete(t.ids, old.id)
		}
		t.ring[t.head] = tomb{id, t.seq}
		t.head = (t.head + 1) % t.max
	}
	t.ids[id] = t.seq
}
