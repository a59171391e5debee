package spool

import (
	"fmt"
	"os"
)

// cacheEntryOverhead is what a cached record costs besides its data.
const cacheEntryOverhead = 64

type cacheEntry struct {
	seq  uint64
	end  int64 // logical end offset
	data []byte
	// held: appended with AppendHeld; its data is not kept (nil), only its
	// end offset (for Ack), and a Read of it goes to the disk.
	held bool
}

// recordCache holds the most recent records, consecutive in seq, up to max
// bytes (data plus cacheEntryOverhead each); held records have no data.
type recordCache struct {
	ents  []cacheEntry
	head  int
	bytes int64
	max   int64
}

func (c *recordCache) push(e cacheEntry) {
	if c.max <= 0 {
		return
	}
	if n := len(c.ents); n > c.head && c.ents[n-1].seq+1 != e.seq {
		c.reset()
	}
	c.ents = append(c.ents, e)
	c.bytes += int64(len(e.data)) + cacheEntryOverhead
	for c.bytes > c.max && c.head < len(c.ents) {
		c.evict()
	}
}

func (c *recordCache) evict() {
	c.bytes -= int64(len(c.ents[c.head].data)) + cacheEntryOverhead
	c.ents[c.head] = cacheEntry{}
	c.head++
	if c.head == len(c.ents) {
		c.ents, c.head = c.ents[:0], 0
	} else if c.head >= 1024 && c.head >= len(c.ents)/2 {
		n := copy(c.ents, c.ents[c.head:])
		clear(c.ents[n:])
		c.ents, c.head = c.ents[:n], 0
	}
}

func (c *recordCache) reset() {
	clear(c.ents)
	c.ents, c.head, c.bytes = c.ents[:0], 0, 0
}

// index returns the position of seq in ents.
func (c *recordCache) index(seq uint64) (int, bool) {
	if c.head == len(c.ents) || seq < c.ents[c.head].seq {
		return 0, false
	}
	i := c.head + int(seq-c.ents[c.head].seq)
	return i, i < len(c.ents)
}

func (c *recordCache) get(seq uint64) (cacheEntry, bool) {
	i, ok := c.index(seq)
	if !ok {
		return cacheEntry{}, false
	}
	return c.ents[i], true
}

func (c *recordCache) dropThrough(seq uint64) {
	for c.head < len(c.ents) && c.ents[c.head].seq <= seq {
		c.evict()
	}
}

// cursor is the disk reader's position, kept between Reads because the
// writer reads on from where it stopped.
type cursor struct {
	f     *os.File
	first uint64 // segment f holds; 0 when none
	br    blockReader
	off   int64
	next  uint64 // seq of the record at off
}

func (c *cursor) close() {
	if c.f != nil {
		c.f.Close()
	}
	*c = cursor{}
}

// Read returns up to maxRecords records (and, past the first, up to
// maxBytes of data) with seq >= from, in seq order, from those visible:
// committed per the SyncPolicy and not yet acked. It returns at once, with
// nothing when nothing is there (use Wait to block). A limit <= 0 means no
// limit. Records come from memory when recent, else from disk through a
// cursor that continues where the previous Read stopped, so reading in
// order costs one pass over the data.
//
// Read is for the single writer goroutine; concurrent calls are safe but
// serialized. The returned Data must not be modified. A record that fails
// its checksum on disk yields a *CorruptError.
func (s *Spool) Read(from uint64, maxRecords int, maxBytes int) ([]Record, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	from = max(from, s.acked+1)
	upTo := s.committed
	if from > upTo {
		s.mu.Unlock()
		return nil, nil
	}
	if recs := s.readCacheLocked(from, upTo, maxRecords, maxBytes); recs != nil {
		s.mu.Unlock()
		return recs, nil
	}
	var segs []segment
	for _, g := range s.segs {
		if g.first > upTo {
			break
		}
		if g.last >= from && g.last >= g.first {
			segs = append(segs, *g)
		}
	}
	s.mu.Unlock()

	recs, end, err := s.readDisk(segs, from, upTo, maxRecords, maxBytes)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	s.mu.Lock()
	s.memo[s.memoNext] = seqEnd{seq: recs[len(recs)-1].Seq, end: end}
	s.memoNext = (s.memoNext + 1) % memoSize
	s.mu.Unlock()
	return recs, nil
}

func (s *Spool) readCacheLocked(from, upTo uint64, maxRecords, maxBytes int) []Record {
	i, ok := s.cache.index(from)
	if !ok {
		return nil
	}
	var recs []Record
	bytes := 0
	for ; i < len(s.cache.ents); i++ {
		e := s.cache.ents[i]
		if e.held || e.seq > upTo || full(len(recs), bytes+len(e.data), maxRecords, maxBytes) {
			break
		}
		recs = append(recs, Record{Seq: e.seq, Data: e.data})
		bytes += len(e.data)
	}
	return recs
}

// full reports whether a Read holding n records must stop before one that
// would bring its data to bytes.
func full(n, bytes, maxRecords, maxBytes int) bool {
	return n > 0 && (maxRecords > 0 && n >= maxRecords || maxBytes > 0 && bytes > maxBytes)
}

// readDisk reads records [from, upTo] from segs (copies of committed
// segment extents) and returns them with the logical end offset of the
// last one.
func (s *Spool) readDisk(segs []segment, from, upTo uint64, maxRecords, maxBytes int) ([]Record, int64, error) {
	var (
		recs  []Record
		spans []int // data of recs[i] is data[spans[i]:spans[i+1]]
		data  []byte
		end   int64
	)
	c := &s.cur
read:
	for _, g := range segs {
		if c.first != g.first || c.next > from {
			c.close()
			f, err := os.Open(segPath(s.dir, g.first))
			if err != nil {
				return nil, 0, fmt.Errorf("spool: read: %w", err)
			}
			*c = cursor{f: f, first: g.first, br: blockReader{r: f}, next: g.first}
		}
		for c.next <= min(g.last, upTo) {
			d, e, reason, err := recordAt(&c.br, c.off, g.size, c.next)
			if err != nil {
				c.close()
				return nil, 0, fmt.Errorf("spool: read %s: %w", segName(g.first), err)
			}
			if reason != "" {
				c.close()
				return nil, 0, &CorruptError{Path: segPath(s.dir, g.first), Offset: c.off, Reason: reason}
			}
			if c.next >= from {
				if full(len(recs), len(data)+len(d), maxRecords, maxBytes) {
					break read
				}
				if len(recs) == 0 {
					data = make([]byte, 0, max(len(d), min(maxBytes, 4<<20)))
				}
				spans = append(spans, len(data))
				data = append(data, d...)
				recs = append(recs, Record{Seq: c.next})
				end = g.base + e
			}
			c.off, c.next = e, c.next+1
		}
	}
	spans = append(spans, len(data))
	for i := range recs {
		recs[i].Data = data[spans[i]:spans[i+1]:spans[i+1]]
	}
	return recs, end, nil
}
