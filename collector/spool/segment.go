package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk record: length (uint32) | crc32c (uint32) over seq+data | seq
// (uint64) | data, all little-endian. A segment file is a run of records
// with consecutive seqs, the first one equal to the seq in the file name,
// optionally followed by zero bytes (preallocated space never written).
const (
	headerSize = 16
	segSuffix  = ".seg"
	// readBlock is how much a scan or a disk Read fetches per system call.
	readBlock = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errStopScan, returned by a scanSegment callback, ends the scan early
// without error.
var errStopScan = errors.New("stop scan")

func recordCRC(seq uint64, data []byte) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	return crc32.Update(crc32.Update(0, castagnoli, b[:]), castagnoli, data)
}

// appendHeader appends the header of the record of seq holding data.
func appendHeader(dst []byte, seq uint64, data []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[4:], recordCRC(seq, data))
	binary.LittleEndian.PutUint64(h[8:], seq)
	return append(dst, h[:]...)
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first seq named by a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || first == 0 {
		return 0, false
	}
	return first, true
}

// blockReader serves byte ranges of a file below a limit from a buffer
// refilled readBlock bytes at a time. Callers only ask for bytes that can
// no longer change (committed records), so a buffered range never goes
// stale.
type blockReader struct {
	r   io.ReaderAt
	buf []byte
	off int64 // file offset of buf[0]
}

// at returns the n bytes at off; they must end at or below limit. The slice
// is valid until the next call.
func (b *blockReader) at(off int64, n int, limit int64) ([]byte, error) {
	if off >= b.off && off+int64(n) <= b.off+int64(len(b.buf)) {
		return b.buf[off-b.off : off-b.off+int64(n)], nil
	}
	if off+int64(n) > limit {
		return nil, io.ErrUnexpectedEOF
	}
	want := int64(max(n, readBlock))
	want = min(want, limit-off)
	if int64(cap(b.buf)) < want || cap(b.buf) > 4*readBlock && want <= readBlock {
		// Grow for a large record; shrink back once it has been read so
		// one huge record does not pin its buffer.
		b.buf = make([]byte, want)
	}
	b.buf = b.buf[:want]
	m, err := b.r.ReadAt(b.buf, off)
	b.buf, b.off = b.buf[:m], off
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b.buf[:n], nil
}

// recordAt decodes the record at off, which must have seq want and end at or
// below limit. reason is non-empty when the bytes there are not such a
// record; err reports only I/O errors.
func recordAt(br *blockReader, off, limit int64, want uint64) (data []byte, end int64, reason string, err error) {
	if limit-off < headerSize {
		return nil, 0, fmt.Sprintf("%d bytes left, short of a record header", limit-off), nil
	}
	h, err := br.at(off, headerSize, limit)
	if err != nil {
		return nil, 0, "", err
	}
	length := binary.LittleEndian.Uint32(h[0:])
	sum := binary.LittleEndian.Uint32(h[4:])
	seq := binary.LittleEndian.Uint64(h[8:])
	if seq != want {
		return nil, 0, fmt.Sprintf("seq %d, want %d", seq, want), nil
	}
	end = off + headerSize + int64(length)
	if end > limit {
		return nil, 0, fmt.Sprintf("record length %d runs past the end (%d bytes left)", length, limit-off-headerSize), nil
	}
	data, err = br.at(off+headerSize, int(length), limit)
	if err != nil {
		return nil, 0, "", err
	}
	if got := recordCRC(seq, data); got != sum {
		return nil, 0, fmt.Sprintf("checksum %08x, want %08x", got, sum), nil
	}
	return data, end, "", nil
}

// tailKind says what follows the valid records of a segment.
type tailKind int

const (
	tailNone tailKind = iota // nothing: the records end at the end of the file
	tailZero                 // only zero bytes: preallocated, never written
	tailBad                  // bytes that are not a valid record
)

// scanResult describes the valid prefix of a segment file.
type scanResult struct {
	n      int64  // valid records
	last   uint64 // seq of the last valid record; first-1 when n == 0
	end    int64  // offset just past the last valid record
	tail   tailKind
	reason string // why the bytes at end are not a record, when tail != tailNone
}

// scanSegment reads the records of a segment whose first seq is first from
// r, which holds size bytes, calling fn (when not nil) with each valid
// record's seq, end offset and data (valid only during the call). It stops
// at the first byte that does not start a valid record with the next seq
// and reports what follows. It never panics or allocates more than one
// record plus readBlock bytes, whatever r holds. fn may return errStopScan.
func scanSegment(r io.ReaderAt, size int64, first uint64, fn func(seq uint64, end int64, data []byte) error) (scanResult, error) {
	br := &blockReader{r: r}
	res := scanResult{last: first - 1}
	for off := int64(0); off < size; {
		data, end, reason, err := recordAt(br, off, size, res.last+1)
		if err != nil {
			return res, err
		}
		if reason != "" {
			zero, err := allZero(br, off, size)
			if err != nil {
				return res, err
			}
			res.tail, res.reason = tailBad, reason
			if zero {
				res.tail = tailZero
			}
			return res, nil
		}
		res.n, res.last, res.end = res.n+1, res.last+1, end
		off = end
		if fn != nil {
			if err := fn(res.last, end, data); err != nil {
				if err == errStopScan {
					return res, nil
				}
				return res, err
			}
		}
	}
	return res, nil
}

func allZero(br *blockReader, off, size int64) (bool, error) {
	for off < size {
		n := int(min(size-off, readBlock))
		b, err := br.at(off, n, size)
		if err != nil {
			return false, err
		}
		for _, c := range b {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
	}
	return true, nil
}

// segPath is the path of the segment starting at first in dir.
func segPath(dir string, first uint64) string { return filepath.Join(dir, segName(first)) }
