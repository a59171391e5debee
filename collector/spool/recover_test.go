package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/testenv"
)

// recordBounds returns the start offset of every record in a segment file.
func recordBounds(t *testing.T, path string) []int64 {
	t.Helper()
	first, ok := parseSegName(filepath.Base(path))
	if !ok {
		t.Fatalf("not a segment: %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	starts := []int64{0}
	_, err = scanSegment(bytes.NewReader(b), int64(len(b)), first, func(_ uint64, end int64, _ []byte) error {
		starts = append(starts, end)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return starts[:len(starts)-1]
}

func patchFile(t *testing.T, path string, f func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

// crashedSpool appends payload(0..n-1) with SyncAlways and returns a copy of
// the directory as a crash right now would leave it (no Close: the active
// segment keeps its preallocated zeros, the state file is not updated), and
// the path of the last segment in the copy.
func crashedSpool(t *testing.T, n int) (dir, last string) {
	t.Helper()
	src := t.TempDir()
	s := openT(t, src, Options{SegmentBytes: 16 << 10})
	appendRange(t, s, 0, n, 1)
	dir = copyDir(t, src)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	return dir, filepath.Join(dir, files[len(files)-1])
}

func TestTornTail(t *testing.T) {
	const n = 60
	tests := map[string]struct {
		damage func(b []byte, last int64) []byte // last: start of the last record
		keep   int                               // records that survive
		warn   bool
	}{
		"clean crash, zero padding": {func(b []byte, _ int64) []byte { return b }, n, false},
		"cut inside header":         {func(b []byte, last int64) []byte { return b[:last+5] }, n - 1, true},
		"cut inside data": {func(b []byte, last int64) []byte {
			return b[:last+headerSize+int64(len(payload(n-1)))/2]
		}, n - 1, true},
		"cut after header": {func(b []byte, last int64) []byte { return b[:last+headerSize] }, n - 1, true},
		"flipped data byte": {func(b []byte, last int64) []byte {
			b[last+headerSize+2] ^= 0x40
			return b
		}, n - 1, true},
		"flipped seq byte": {func(b []byte, last int64) []byte {
			b[last+9] ^= 1
			return b
		}, n - 1, true},
		"length past end": {func(b []byte, last int64) []byte {
			binary.LittleEndian.PutUint32(b[last:], 1<<30)
			return b
		}, n - 1, true},
		"garbage after last record": {func(b []byte, last int64) []byte {
			end := last + headerSize + int64(len(payload(n-1)))
			copy(b[end:], "half a record from an unsynced write")
			return b
		}, n, true},
		"zeroed last record": {func(b []byte, last int64) []byte {
			clear(b[last:])
			return b
		}, n - 1, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir, last := crashedSpool(t, n)
			bounds := recordBounds(t, last)
			if len(bounds) < 2 {
				t.Fatalf("last segment has %d records; the test needs more", len(bounds))
			}
			patchFile(t, last, func(b []byte) []byte { return tt.damage(b, bounds[len(bounds)-1]) })

			var logs testenv.Buffer
			s := openT(t, dir, Options{SegmentBytes: 16 << 10, Logger: bufLogger(&logs)})
			checkRecords(t, readAll(t, s, 1), 1, uint64(tt.keep), 0)
			checkPending(t, s, int64(tt.keep), pendingBytes(0, tt.keep))
			if got := strings.Contains(logs.String(), "torn tail"); got != tt.warn {
				t.Errorf("torn tail logged: %v, want %v; log:\n%s", got, tt.warn, logs.String())
			}
			// The tail is gone from the file, not just skipped.
			fi, err := os.Stat(last)
			if err != nil {
				t.Fatal(err)
			}
			if want := pendingBytes(0, tt.keep) - sizeBefore(t, dir, last); fi.Size() != want {
				t.Errorf("last segment is %d bytes after recovery, want %d", fi.Size(), want)
			}

			// Appending continues right after the kept records, and all of
			// it survives another restart.
			appendRange(t, s, tt.keep, tt.keep+5, uint64(tt.keep+1))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, Options{SegmentBytes: 16 << 10})
			checkRecords(t, readAll(t, s, 1), 1, uint64(tt.keep+5), 0)
		})
	}
}

// sizeBefore is the bytes of valid records in the segments before last.
func sizeBefore(t *testing.T, dir, last string) int64 {
	t.Helper()
	var n int64
	for _, f := range segFiles(t, dir) {
		p := filepath.Join(dir, f)
		if p == last {
			break
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// sealedSpool appends payload(0..n-1) over several segments and closes the
// spool, so every segment is sealed and the state knows seq n committed.
func sealedSpool(t *testing.T, n int) (dir string, files []string) {
	t.Helper()
	dir = t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 8 << 10})
	appendRange(t, s, 0, n, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files = segFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d segments, the test needs 4", len(files))
	}
	return dir, files
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestCorruption(t *testing.T) {
	const n = 80
	tests := map[string]struct {
		damage     func(t *testing.T, dir string, files []string)
		firstLost  func(files []string) uint64 // 0: no seq range (state file)
		lastLost   func(files []string) uint64
		lostRecord int // records that SkipCorrupt drops
	}{
		"bad record in an older segment": {
			damage: func(t *testing.T, dir string, files []string) {
				p := filepath.Join(dir, files[1])
				bounds := recordBounds(t, p)
				patchFile(t, p, func(b []byte) []byte { b[bounds[1]+headerSize] ^= 0xff; return b })
			},
			firstLost: func(files []string) uint64 { return first(files[1]) + 1 },
			lastLost:  func(files []string) uint64 { return first(files[2]) - 1 },
		},
		"older segment cut short": {
			damage: func(t *testing.T, dir string, files []string) {
				p := filepath.Join(dir, files[2])
				bounds := recordBounds(t, p)
				patchFile(t, p, func(b []byte) []byte { return b[:bounds[2]] })
			},
			firstLost: func(files []string) uint64 { return first(files[2]) + 2 },
			lastLost:  func(files []string) uint64 { return first(files[3]) - 1 },
		},
		"missing segment": {
			damage: func(t *testing.T, dir string, files []string) {
				if err := os.Remove(filepath.Join(dir, files[1])); err != nil {
					t.Fatal(err)
				}
			},
			firstLost: func(files []string) uint64 { return first(files[1]) },
			lastLost:  func(files []string) uint64 { return first(files[2]) - 1 },
		},
		"committed tail of the last segment": {
			// After Close the state says seq n is committed, so a bad
			// last record is not a torn write.
			damage: func(t *testing.T, dir string, files []string) {
				p := filepath.Join(dir, files[len(files)-1])
				bounds := recordBounds(t, p)
				patchFile(t, p, func(b []byte) []byte { b[bounds[len(bounds)-1]+headerSize] ^= 1; return b })
			},
			firstLost: func([]string) uint64 { return n },
			lastLost:  func([]string) uint64 { return n },
		},
		"damaged state file": {
			damage: func(t *testing.T, dir string, files []string) {
				patchFile(t, filepath.Join(dir, stateFile), func(b []byte) []byte { b[10] ^= 1; return b })
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir, files := sealedSpool(t, n)
			tt.damage(t, dir, files)
			before := snapshot(t, dir)

			_, err := Open(dir, Options{SegmentBytes: 8 << 10, Logger: discardLogger()})
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want a *CorruptError", err)
			}
			var wantFirst, wantLast uint64
			if tt.firstLost != nil {
				wantFirst, wantLast = tt.firstLost(files), tt.lastLost(files)
			}
			if ce.FirstLost != wantFirst || ce.LastLost != wantLast {
				t.Fatalf("CorruptError lost %d..%d, want %d..%d (%v)", ce.FirstLost, ce.LastLost, wantFirst, wantLast, ce)
			}
			if after := snapshot(t, dir); len(after) != len(before) {
				t.Fatal("a refused Open changed the directory")
			} else {
				for k, v := range before {
					if after[k] != v {
						t.Fatalf("a refused Open changed %s", k)
					}
				}
			}

			// SkipCorrupt serves everything else, loudly.
			var logs testenv.Buffer
			s := openT(t, dir, Options{SegmentBytes: 8 << 10, SkipCorrupt: true, Logger: bufLogger(&logs)})
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("no error logged for the corruption:\n%s", logs.String())
			}
			got := readAll(t, s, 1)
			var want []uint64
			for q := uint64(1); q <= n; q++ {
				if q < wantFirst || q > wantLast {
					want = append(want, q)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			for i, r := range got {
				if r.Seq != want[i] || !bytes.Equal(r.Data, payload(int(r.Seq-1))) {
					t.Fatalf("record %d: seq %d %q, want seq %d", i, r.Seq, trunc(r.Data), want[i])
				}
			}
			if recs, _ := s.Pending(); recs != int64(len(want)) {
				t.Fatalf("Pending records = %d, want %d", recs, len(want))
			}
			seq, err := s.Append(context.Background(), payload(n))
			if err != nil || seq != n+1 {
				t.Fatalf("Append after skipping = %d, %v; want %d", seq, err, n+1)
			}
			// Once acked past, the loss no longer stops Open.
			if err := s.Ack(n + 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, Options{SegmentBytes: 8 << 10})
			checkPending(t, s, 0, 0)
		})
	}
}

func first(name string) uint64 {
	q, _ := parseSegName(name)
	return q
}
