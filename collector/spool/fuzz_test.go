package spool

import (
	"bytes"
	"testing"
)

// FuzzScanSegment feeds arbitrary bytes to the segment reader as a segment
// whose first seq is 1: it must not panic, and what it accepts must be a
// valid prefix, re-encoding to exactly the bytes it covers.
func FuzzScanSegment(f *testing.F) {
	var seg []byte
	for i := range 6 {
		seg = appendRecord(seg, uint64(i+1), payload(i*37))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(seg[:20])
	f.Add(append(bytes.Clone(seg), make([]byte, 4096)...))
	flipped := bytes.Clone(seg)
	flipped[len(seg)/2] ^= 0x10
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(make([]byte, headerSize))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		var re []byte
		res, err := scanSegment(bytes.NewReader(data), int64(len(data)), 1, func(seq uint64, end int64, d []byte) error {
			re = appendRecord(re, seq, d)
			if int64(len(re)) != end {
				t.Fatalf("record %d ends at %d, re-encoded prefix is %d bytes", seq, end, len(re))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan of in-memory bytes failed: %v", err)
		}
		if res.end > int64(len(data)) || !bytes.Equal(re, data[:res.end]) {
			t.Fatalf("accepted prefix of %d bytes does not re-encode to the input", res.end)
		}
		if res.n > 0 && res.last != uint64(res.n) {
			t.Fatalf("%d records, last seq %d", res.n, res.last)
		}
		switch {
		case res.end == int64(len(data)) && res.tail != tailNone,
			res.end < int64(len(data)) && res.tail == tailNone:
			t.Fatalf("tail %v with %d of %d bytes accepted", res.tail, res.end, len(data))
		case res.tail == tailZero && !allZeroBytes(data[res.end:]):
			t.Fatal("tail reported zero but is not")
		}
	})
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendRecord appends a whole encoded record (header and data), as the
// spool writes it.
func appendRecord(dst []byte, seq uint64, data []byte) []byte {
	return append(appendHeader(dst, seq, data), data...)
}
