package spool

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/drover-ml/drover/shared/durable"
)

// scanned is what recovery learned about one segment file.
type scanned struct {
	first    uint64
	size     int64 // file size
	res      scanResult
	ackedOff int64 // end offset of record state.acked, when in this segment
}

// recover rebuilds the in-memory state from dir. It first decides, then
// changes files, so that a refusal (*CorruptError) leaves dir untouched.
func (s *Spool) recover() error {
	if err := os.Remove(filepath.Join(s.dir, stateTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open spool: %w", err)
	}
	st, err := readState(s.dir)
	var lost []*CorruptError
	if ce := (*CorruptError)(nil); errors.As(err, &ce) {
		// A damaged state file: the ack position is unknown, so every
		// retained record is treated as unacked (duplicates, not loss).
		lost, st = append(lost, ce), ackState{}
	} else if err != nil {
		return err
	}

	segs, err := s.scanAll(st.acked)
	if err != nil {
		return err
	}

	// Which unacked records are gone? A bad record is a torn write only in
	// the last segment, and only past what is known committed: older
	// segments were fsynced before the next one was created.
	var highest uint64 // highest valid seq on disk
	for i, sc := range segs {
		path := segPath(s.dir, sc.first)
		if sc.res.n > 0 {
			highest = sc.res.last
		}
		next := uint64(0) // first seq of the next segment
		if i+1 < len(segs) {
			next = segs[i+1].first
		}
		switch {
		case next == 0:
		case sc.res.tail == tailBad:
			lost = append(lost, &CorruptError{Path: path, Offset: sc.res.end, FirstLost: sc.res.last + 1, LastLost: next - 1, Reason: sc.res.reason})
		case sc.res.last+1 < next:
			lost = append(lost, &CorruptError{Path: path, Offset: sc.res.end, FirstLost: sc.res.last + 1, LastLost: next - 1,
				Reason: fmt.Sprintf("segment ends at seq %d but the next one starts at %d", sc.res.last, next)})
		case sc.res.last+1 > next:
			return &CorruptError{Path: path, Offset: -1,
				Reason: fmt.Sprintf("segment holds seqs up to %d, overlapping the next one, which starts at %d", sc.res.last, next)}
		}
	}
	if len(segs) > 0 && segs[0].first > st.acked+1 {
		lost = append(lost, &CorruptError{Path: segPath(s.dir, segs[0].first), Offset: -1, FirstLost: st.acked + 1, LastLost: segs[0].first - 1,
			Reason: "records between the ack position and the first segment are missing"})
	}
	if floor := max(highest, st.acked); floor < st.lastSeq {
		path := s.dir
		var off int64 = -1
		reason := "records known committed are missing"
		if n := len(segs); n > 0 {
			path, off = segPath(s.dir, segs[n-1].first), segs[n-1].res.end
			if segs[n-1].res.tail == tailBad {
				reason = "bad record before the last committed one: " + segs[n-1].res.reason
			}
		}
		lost = append(lost, &CorruptError{Path: path, Offset: off, FirstLost: floor + 1, LastLost: st.lastSeq, Reason: reason})
	}
	// Losses at or below the ack position do not matter.
	var errs []error
	for _, e := range lost {
		if e.FirstLost != 0 {
			if e.LastLost <= st.acked {
				continue
			}
			e.FirstLost = max(e.FirstLost, st.acked+1)
		}
		if !s.opts.SkipCorrupt {
			errs = append(errs, e)
			continue
		}
		s.log.Error("spool: corrupt data skipped; records lost", "path", e.Path, "offset", e.Offset,
			"first_lost", e.FirstLost, "last_lost", e.LastLost, "reason", e.Reason)
	}
	if len(errs) > 0 {
		return fmt.Errorf("open spool %s (Options.SkipCorrupt continues without the lost records): %w", s.dir, errors.Join(errs...))
	}

	// Now change files: trim the last segment, drop empty and acked ones.
	changed := false
	for i, sc := range segs {
		path := segPath(s.dir, sc.first)
		if i == len(segs)-1 && sc.res.end < sc.size {
			if sc.res.tail == tailBad {
				s.log.Warn("spool: truncated torn tail of the last segment", "segment", path,
					"offset", sc.res.end, "dropped_bytes", sc.size-sc.res.end, "reason", sc.res.reason)
			}
			if err := truncateSync(path, sc.res.end); err != nil {
				return err
			}
		}
		if sc.res.n == 0 || sc.res.last <= st.acked {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("open spool: %w", err)
			}
			changed = true
		}
	}
	if changed {
		if err := durable.SyncDir(s.dir); err != nil {
			return err
		}
	}

	// Rebuild the in-memory state from what is kept.
	if st.hasIntent && st.intentLast <= st.acked {
		st.hasIntent, st.intentFirst, st.intentLast = false, 0, 0
	}
	s.state, s.acked = st, st.acked
	var base int64
	for _, sc := range segs {
		if sc.res.n == 0 || sc.res.last <= st.acked {
			continue
		}
		if sc.first <= st.acked {
			s.ackedEnd = base + sc.ackedOff
		}
		s.segs = append(s.segs, &segment{first: sc.first, last: sc.res.last, size: sc.res.end, base: base, sealed: true, listed: true})
		base += sc.res.end
	}
	s.appendedEnd = base
	s.pendingRecords = s.countLocked(st.acked, highest)
	s.committed = max(highest, st.acked, st.lastSeq, st.intentLast)
	s.nextSeq = s.committed + 1
	s.w.written, s.w.logical = s.committed, base
	return nil
}

// scanAll scans every segment file in dir in seq order.
func (s *Spool) scanAll(acked uint64) ([]scanned, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	var segs []scanned
	for _, e := range ents {
		if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, scanned{first: first})
		}
	}
	slices.SortFunc(segs, func(a, b scanned) int { return cmp.Compare(a.first, b.first) })
	for i := range segs {
		sc := &segs[i]
		path := segPath(s.dir, sc.first)
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		fi, err := f.Stat()
		if err == nil {
			sc.size = fi.Size()
			sc.res, err = scanSegment(f, sc.size, sc.first, func(seq uint64, end int64, _ []byte) error {
				if seq == acked {
					sc.ackedOff = end
				}
				return nil
			})
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("open spool: scan %s: %w", path, err)
		}
	}
	return segs, nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("open spool: truncate %s: %w", path, err)
	}
	return nil
}
