package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/drover-ml/drover/collector/store"
)

// RowCache holds the rows of recently spooled requests, by spool seq, up to
// a bound on rows and one on their memory (soft ones: a request reserves
// its estimated rows and bytes before it is converted; store.Batch.MemBytes
// is what its rows then count). Safe for concurrent use.
type RowCache struct {
	// MaxWait bounds how long a request waits for room while the writer is
	// healthy; default 2s. Set before use.
	MaxWait time.Duration
	// MaxBytes bounds the memory of the cached rows (store.Batch.MemBytes);
	// 0: rows only. Set before use.
	MaxBytes int

	mu      sync.Mutex
	batches map[uint64]cachedRows
	rows    int
	bytes   int
	max     int
	floor   uint64        // seqs <= floor are acked: not cached any more
	flow    bool          // the writer inserts: requests wait for room
	room    chan struct{} // closed when rows shrink; nil until someone waits
}

type cachedRows struct {
	b     *store.Batch
	at    time.Time
	bytes int // b.MemBytes() when put
}

// NewRowCache bounds the cache to maxRows rows (0: 200000).
func NewRowCache(maxRows int) *RowCache {
	if maxRows <= 0 {
		maxRows = 200000
	}
	return &RowCache{batches: map[uint64]cachedRows{}, max: maxRows, flow: true, MaxWait: 2 * time.Second}
}

// fitsLocked reports whether n rows of nb bytes fit; an empty cache takes
// any request (one larger than the bounds is cached alone).
func (c *RowCache) fitsLocked(n, nb int) bool {
	if c.rows == 0 {
		return true
	}
	return c.rows+n <= c.max && (c.MaxBytes <= 0 || c.bytes+nb <= c.MaxBytes)
}

// reserve takes room for n rows of an estimated nb bytes, waiting for it
// while the writer is healthy (see Accept), and reports whether it got it.
func (c *RowCache) reserve(ctx context.Context, n, nb int) bool {
	var timer <-chan time.Time
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.fitsLocked(n, nb) {
			c.rows += n
			c.bytes += nb
			return true
		}
		if !c.flow {
			return false
		}
		if timer == nil {
			timer = time.After(c.MaxWait)
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-timer:
			c.mu.Lock()
			return false
		case <-ctx.Done():
			c.mu.Lock()
			return false
		}
		c.mu.Lock()
	}
}

// freedLocked wakes the requests waiting for room.
func (c *RowCache) freedLocked() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

func (c *RowCache) release(n, nb int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows -= n
	c.bytes -= nb
	c.freedLocked()
}

// put stores the rows of seq, which reserved estimate rows of estBytes
// bytes; b then counts what it holds.
func (c *RowCache) put(seq uint64, b *store.Batch, estimate, estBytes int) {
	mb := b.MemBytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows -= estimate
	c.bytes -= estBytes
	// Already acked: the writer read the spool first. The sink puts under
	// the spool's lock before the commit (spool.AppendHeld), so this only
	// guards a caller that puts late.
	if seq <= c.floor {
		c.freedLocked()
		return
	}
	c.batches[seq] = cachedRows{b: b, at: time.Now(), bytes: mb}
	c.rows += b.Rows()
	c.bytes += mb
}

// take removes and returns the rows of seq, if cached.
func (c *RowCache) take(seq uint64) (cachedRows, bool) {
	if c == nil {
		return cachedRows{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.batches[seq]
	if ok {
		delete(c.batches, seq)
		c.rows -= e.b.Rows()
		c.bytes -= e.bytes
		c.freedLocked()
	}
	return e, ok
}

// missing returns how many consecutive seqs from `from` (at most n) are not
// cached.
func (c *RowCache) missing(from uint64, n int) int {
	if c == nil {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		if _, ok := c.batches[from+uint64(i)]; ok {
			return i
		}
	}
	return n
}

// acked drops the rows of seqs <= upTo (rows put after the writer had read
// their record from the spool: not the sink's, which puts before the
// commit) and keeps later ones out.
func (c *RowCache) acked(upTo uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor = max(c.floor, upTo)
	for seq, e := range c.batches {
		if seq <= upTo {
			delete(c.batches, seq)
			c.rows -= e.b.Rows()
			c.bytes -= e.bytes
		}
	}
	c.freedLocked()
}

// setFlow makes requests wait for room (the writer inserts) or not.
func (c *RowCache) setFlow(on bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flow != on {
		c.flow = on
		c.freedLocked() // waiters re-check
	}
}
