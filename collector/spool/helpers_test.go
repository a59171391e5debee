package spool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/testenv"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bufLogger logs into l.
func bufLogger(l *testenv.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// openT opens a spool that is closed when the test ends.
func openT(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// payload is the deterministic content of record i: sizes vary from 0 to a
// few KiB so that records straddle block and page boundaries.
func payload(i int) []byte {
	n := (i * 397) % 3000
	if i%10 == 0 {
		n = 0
	}
	p := make([]byte, 0, n+16)
	p = fmt.Appendf(p, "r%d:", i)
	for len(p) < n {
		p = append(p, byte('a'+(i+len(p))%26))
	}
	return p
}

// appendRange appends payload(i) for i in [lo, hi) and checks the seqs.
func appendRange(t testing.TB, s *Spool, lo, hi int, firstSeq uint64) {
	t.Helper()
	for i := lo; i < hi; i++ {
		seq, err := s.Append(context.Background(), payload(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		if want := firstSeq + uint64(i-lo); seq != want {
			t.Fatalf("Append(%d) = seq %d, want %d", i, seq, want)
		}
	}
}

// readAll reads every visible record from from on, in chunks.
func readAll(t testing.TB, s *Spool, from uint64) []Record {
	t.Helper()
	var all []Record
	for {
		recs, err := s.Read(from, 7, 5000)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if len(recs) == 0 {
			return all
		}
		for _, r := range recs {
			all = append(all, Record{Seq: r.Seq, Data: slices.Clone(r.Data)})
		}
		from = recs[len(recs)-1].Seq + 1
	}
}

// checkRecords asserts that recs are exactly seqs [first, last] and that
// seq q holds payload(q - first + firstIdx).
func checkRecords(t testing.TB, recs []Record, first, last uint64, firstIdx int) {
	t.Helper()
	if want := int(last - first + 1); len(recs) != want {
		t.Fatalf("got %d records, want %d (seqs %d..%d)", len(recs), want, first, last)
	}
	for i, r := range recs {
		if want := first + uint64(i); r.Seq != want {
			t.Fatalf("record %d: seq %d, want %d", i, r.Seq, want)
		}
		if want := payload(firstIdx + i); !bytes.Equal(r.Data, want) {
			t.Fatalf("seq %d: data %q, want %q", r.Seq, trunc(r.Data), trunc(want))
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// pendingBytes is what Pending should report for payload(i), i in [lo, hi).
func pendingBytes(lo, hi int) int64 {
	var n int64
	for i := lo; i < hi; i++ {
		n += int64(headerSize + len(payload(i)))
	}
	return n
}

func checkPending(t testing.TB, s *Spool, records, bytes int64) {
	t.Helper()
	if r, b := s.Pending(); r != records || b != bytes {
		t.Fatalf("Pending() = %d records, %d bytes; want %d, %d", r, b, records, bytes)
	}
}

// segFiles lists the segment files in dir, in seq order.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// copyDir snapshots dir as a crash would leave it: what is in the files now.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
