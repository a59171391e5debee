package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashHelperEnv); dir != "" {
		os.Exit(crashHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

// waitVisible waits until Read can see seq.
func waitVisible(t testing.TB, s *Spool, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx, seq-1); err != nil {
		t.Fatalf("Wait(%d): %v", seq-1, err)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := map[string]Options{
		"always":            {Sync: SyncAlways},
		"always/no-cache":   {Sync: SyncAlways, CacheBytes: -1},
		"always/tiny-cache": {Sync: SyncAlways, CacheBytes: 10_000, SegmentBytes: 20_000},
		"interval":          {Sync: SyncInterval, SyncEvery: 5 * time.Millisecond},
		"interval/no-cache": {Sync: SyncInterval, SyncEvery: 5 * time.Millisecond, CacheBytes: -1, SegmentBytes: 50_000},
		"never":             {Sync: SyncNever},
		"never/no-cache":    {Sync: SyncNever, CacheBytes: -1, SegmentBytes: 8_000},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			s := openT(t, t.TempDir(), opts)
			const n = 300
			appendRange(t, s, 0, n, 1)
			waitVisible(t, s, n)
			checkPending(t, s, n, pendingBytes(0, n))
			checkRecords(t, readAll(t, s, 1), 1, n, 0)
			// Reads from the middle, backwards, and past the end.
			for _, from := range []uint64{150, 3, 299, 300, 1} {
				checkRecords(t, readAll(t, s, from), from, n, int(from-1))
			}
			if recs, err := s.Read(n+1, 10, 0); err != nil || len(recs) != 0 {
				t.Fatalf("Read past the end = %d records, %v; want none", len(recs), err)
			}

			if err := s.Ack(100); err != nil {
				t.Fatal(err)
			}
			if got := s.Acked(); got != 100 {
				t.Fatalf("Acked() = %d, want 100", got)
			}
			checkPending(t, s, n-100, pendingBytes(100, n))
			// Acked records are not returned, even when asked for.
			checkRecords(t, readAll(t, s, 1), 101, n, 100)
			if err := s.Ack(50); err != nil {
				t.Fatalf("Ack below the ack position: %v", err)
			}
			if got := s.Acked(); got != 100 {
				t.Fatalf("Acked() after a lower Ack = %d, want 100", got)
			}
			if err := s.Ack(n + 1); err == nil {
				t.Fatal("Ack beyond the last record succeeded")
			}
			if err := s.Ack(n); err != nil {
				t.Fatal(err)
			}
			checkPending(t, s, 0, 0)
		})
	}
}

func TestReadLimits(t *testing.T) {
	s := openT(t, t.TempDir(), Options{CacheBytes: -1})
	big := make([]byte, 10_000)
	for range 5 {
		if _, err := s.Append(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name                 string
		maxRecords, maxBytes int
		want                 int
	}{
		{"records", 3, 0, 3},
		{"bytes", 0, 25_000, 2},
		{"first record always", 10, 1, 1},
		{"unlimited", 0, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := s.Read(1, tt.maxRecords, tt.maxBytes)
			if err != nil || len(recs) != tt.want {
				t.Fatalf("Read(1, %d, %d) = %d records, %v; want %d", tt.maxRecords, tt.maxBytes, len(recs), err, tt.want)
			}
		})
	}
}

func TestSegmentRollover(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 16 << 10, CacheBytes: -1})
	const n = 200
	appendRange(t, s, 0, n, 1)
	files := segFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("%d segment files for %d bytes of 16 KiB segments: %v", len(files), pendingBytes(0, n), files)
	}
	// Each file is named by the seq of its first record.
	var firsts []uint64
	for _, f := range files {
		first, ok := parseSegName(f)
		if !ok {
			t.Fatalf("bad segment name %q", f)
		}
		firsts = append(firsts, first)
	}
	if firsts[0] != 1 || !slices.IsSorted(firsts) {
		t.Fatalf("segment firsts %v", firsts)
	}
	for i, first := range firsts {
		recs, err := s.Read(first, 1, 0)
		if err != nil || len(recs) != 1 || recs[0].Seq != first {
			t.Fatalf("segment %d: Read(%d) = %v, %v", i, first, recs, err)
		}
		if i > 0 {
			// The record before a segment's first one is in the previous file.
			checkRecords(t, readAll(t, s, first-1)[:2], first-1, first, int(first-2))
		}
	}
	checkRecords(t, readAll(t, s, 1), 1, n, 0)

	// Acking up to the middle of segment 3 deletes segments 0..2 only.
	upTo := firsts[3] + 1
	if err := s.Ack(upTo); err != nil {
		t.Fatal(err)
	}
	if got := segFiles(t, dir); !slices.Equal(got, files[3:]) {
		t.Fatalf("after Ack(%d): segments %v, want %v", upTo, got, files[3:])
	}
	checkPending(t, s, int64(n-upTo), pendingBytes(int(upTo), n))
	checkRecords(t, readAll(t, s, 1), upTo+1, n, int(upTo))
	// The active segment stays until it is sealed, even when fully acked.
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	if got := segFiles(t, dir); len(got) != 1 || got[0] != files[len(files)-1] {
		t.Fatalf("after acking everything: segments %v, want only the active %s", got, files[len(files)-1])
	}
	checkPending(t, s, 0, 0)
}

func TestBatchAndEmptyRecords(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1000})
	recs := [][]byte{payload(0), payload(1), {}, payload(3), payload(4)}
	recs[2] = payload(2)
	first, err := s.AppendBatch(context.Background(), recs)
	if err != nil || first != 1 {
		t.Fatalf("AppendBatch = %d, %v; want 1", first, err)
	}
	seq, err := s.Append(context.Background(), nil)
	if err != nil || seq != 6 {
		t.Fatalf("Append(nil) = %d, %v; want 6", seq, err)
	}
	got := readAll(t, s, 1)
	checkRecords(t, got[:5], 1, 5, 0)
	if len(got) != 6 || len(got[5].Data) != 0 {
		t.Fatalf("empty record read back as %v", got[5:])
	}
	if _, err := s.AppendBatch(context.Background(), nil); err == nil {
		t.Fatal("AppendBatch(nil) succeeded")
	}
}

func TestRestart(t *testing.T) {
	for _, opts := range []Options{
		{Sync: SyncAlways, SegmentBytes: 8 << 10},
		{Sync: SyncInterval, SegmentBytes: 8 << 10, SyncEvery: 5 * time.Millisecond},
		{Sync: SyncNever, SegmentBytes: 8 << 10},
	} {
		t.Run(opts.Sync.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, opts)
			appendRange(t, s, 0, 100, 1)
			waitVisible(t, s, 100)
			if err := s.Ack(40); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openT(t, dir, opts)
			if got := s.Acked(); got != 40 {
				t.Fatalf("Acked() after restart = %d, want 40", got)
			}
			checkPending(t, s, 60, pendingBytes(40, 100))
			checkRecords(t, readAll(t, s, 1), 41, 100, 40)
			appendRange(t, s, 100, 150, 101)
			waitVisible(t, s, 150)
			checkRecords(t, readAll(t, s, 41), 41, 150, 40)

			// Ack everything; once the segments are sealed (Close) the next
			// Ack deletes them all, and seqs still continue.
			if err := s.Ack(150); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, opts)
			if files := segFiles(t, dir); len(files) != 0 {
				t.Fatalf("segments left after acking everything and reopening: %v", files)
			}
			checkPending(t, s, 0, 0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, opts)
			if got := s.Acked(); got != 150 {
				t.Fatalf("Acked() = %d, want 150", got)
			}
			appendRange(t, s, 150, 151, 151)
			waitVisible(t, s, 151)
			checkRecords(t, readAll(t, s, 1), 151, 151, 150)
		})
	}
}

func TestErrFull(t *testing.T) {
	const maxBytes = 10_000
	s := openT(t, t.TempDir(), Options{MaxBytes: maxBytes, SegmentBytes: 3000})
	rec := make([]byte, 984) // 1000 bytes with the header
	ctx := context.Background()
	for i := range 10 {
		if _, err := s.Append(ctx, rec); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	checkPending(t, s, 10, maxBytes)
	if _, err := s.Append(ctx, rec); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes: %v, want ErrFull", err)
	}
	if _, err := s.Append(ctx, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Append of an empty record past MaxBytes: %v, want ErrFull", err)
	}
	if _, err := s.AppendBatch(ctx, [][]byte{rec, rec}); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendBatch past MaxBytes: %v, want ErrFull", err)
	}
	checkPending(t, s, 10, maxBytes)
	if _, err := s.Append(ctx, make([]byte, maxBytes)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a record larger than the spool: %v, want ErrTooLarge", err)
	}

	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	checkPending(t, s, 8, maxBytes-2000)
	seq, err := s.AppendBatch(ctx, [][]byte{rec, rec})
	if err != nil || seq != 11 {
		t.Fatalf("AppendBatch after Ack freed space = %d, %v; want 11", seq, err)
	}
	if _, err := s.Append(ctx, rec); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes again: %v, want ErrFull", err)
	}
}

func TestWait(t *testing.T) {
	t.Run("wakes on append", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{})
		woke := make(chan error, 1)
		go func() { woke <- s.Wait(context.Background(), 0) }()
		select {
		case err := <-woke:
			t.Fatalf("Wait returned %v before any append", err)
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := s.Append(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := <-woke; err != nil {
			t.Fatalf("Wait = %v, want nil", err)
		}
		// Records already there: returns at once.
		if err := s.Wait(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("interval commit", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{Sync: SyncInterval, SyncEvery: 5 * time.Millisecond})
		woke := make(chan error, 1)
		go func() { woke <- s.Wait(context.Background(), 0) }()
		if _, err := s.Append(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := <-woke; err != nil {
			t.Fatalf("Wait = %v, want nil", err)
		}
	})
	t.Run("ctx cancel", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		woke := make(chan error, 1)
		go func() { woke <- s.Wait(ctx, 0) }()
		cancel()
		if err := <-woke; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{})
		woke := make(chan error, 1)
		go func() { woke <- s.Wait(context.Background(), 0) }()
		s.Close()
		if err := <-woke; !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait = %v, want ErrClosed", err)
		}
	})
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := s.Append(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: discardLogger()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of an open spool: %v, want ErrLocked", err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.AppendBatch(ctx, [][]byte{{1}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendBatch after Close: %v", err)
	}
	if _, err := s.Read(1, 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
	if err := s.SetIntent(1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetIntent after Close: %v", err)
	}
	// The lock is released.
	s2 := openT(t, dir, Options{})
	checkPending(t, s2, 1, headerSize+1)
}

func TestAppendContext(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a done ctx: %v", err)
	}
	checkPending(t, s, 0, 0)
}

func TestConcurrentAppenders(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval} {
		t.Run(pol.String(), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Sync: pol, SyncEvery: 2 * time.Millisecond, SegmentBytes: 32 << 10, CacheBytes: 64 << 10})
			const goroutines, each = 8, 150
			var (
				mu    sync.Mutex
				owner = map[uint64][]byte{}
				wg    sync.WaitGroup
			)
			// The writer reads and acks concurrently, checking order.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var readErr error
			var readSeqs []uint64
			var writer sync.WaitGroup
			writer.Go(func() {
				var last uint64
				for len(readSeqs) < goroutines*each {
					if err := s.Wait(ctx, last); err != nil {
						readErr = err
						return
					}
					recs, err := s.Read(last+1, 50, 0)
					if err != nil {
						readErr = err
						return
					}
					for _, r := range recs {
						readSeqs = append(readSeqs, r.Seq)
						mu.Lock()
						want, ok := owner[r.Seq]
						mu.Unlock()
						// Under SyncInterval Read may see a record before its
						// Append has returned; it is checked at the end then.
						if ok && string(want) != string(r.Data) {
							readErr = errors.New("data mismatch at seq")
							return
						}
						last = r.Seq
					}
					if len(recs) > 0 && len(readSeqs)%3 == 0 {
						if err := s.Ack(last); err != nil {
							readErr = err
							return
						}
					}
				}
			})
			for g := range goroutines {
				wg.Go(func() {
					var prev uint64
					for i := range each {
						data := payload(g*each + i)
						seq, err := s.Append(context.Background(), data)
						if err != nil {
							t.Error(err)
							return
						}
						if seq <= prev {
							t.Errorf("goroutine %d: seq %d after %d", g, seq, prev)
						}
						prev = seq
						mu.Lock()
						owner[seq] = data
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				cancel()
			}
			writer.Wait()
			if readErr != nil {
				t.Fatal(readErr)
			}
			// Seqs are exactly 1..N, each handed out once, read in order.
			if len(owner) != goroutines*each {
				t.Fatalf("%d distinct seqs, want %d", len(owner), goroutines*each)
			}
			for i, q := range readSeqs {
				if q != uint64(i+1) {
					t.Fatalf("read #%d has seq %d, want %d", i, q, i+1)
				}
				if _, ok := owner[q]; !ok {
					t.Fatalf("seq %d read but never returned by Append", q)
				}
			}
		})
	}
}

func TestIntent(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, _, ok := s.Intent(); ok {
		t.Fatal("fresh spool has an intent")
	}
	appendRange(t, s, 0, 20, 1)
	for _, bad := range [][2]uint64{{0, 5}, {6, 5}, {1, 21}, {15, 30}} {
		if err := s.SetIntent(bad[0], bad[1]); err == nil {
			t.Errorf("SetIntent(%d, %d) succeeded", bad[0], bad[1])
		}
	}
	if err := s.SetIntent(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	if f, l, ok := s.Intent(); !ok || f != 1 || l != 10 {
		t.Fatalf("Intent() after restart = %d, %d, %v; want 1, 10, true", f, l, ok)
	}
	if err := s.Ack(5); err != nil {
		t.Fatal(err)
	}
	if f, l, ok := s.Intent(); !ok || f != 1 || l != 10 {
		t.Fatalf("Intent() after Ack(5) = %d, %d, %v; want it kept", f, l, ok)
	}
	if err := s.SetIntent(5, 12); err == nil {
		t.Fatal("SetIntent starting at an acked seq succeeded")
	}
	if err := s.Ack(10); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.Intent(); ok {
		t.Fatal("Ack(last) did not clear the intent")
	}
	if err := s.SetIntent(11, 20); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	if f, l, ok := s.Intent(); !ok || f != 11 || l != 20 {
		t.Fatalf("Intent() = %d, %d, %v; want 11, 20, true", f, l, ok)
	}
	if err := s.Ack(20); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	if _, _, ok := s.Intent(); ok {
		t.Fatal("intent cleared by Ack came back after restart")
	}
}

// TestAckOffsets acks positions that are neither cached nor just read, so
// Ack finds their offsets on disk, and checks the byte accounting.
func TestAckOffsets(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CacheBytes: -1, SegmentBytes: 20_000})
	appendRange(t, s, 0, 100, 1)
	for _, upTo := range []int{3, 4, 30, 57, 58, 99, 100} {
		if err := s.Ack(uint64(upTo)); err != nil {
			t.Fatal(err)
		}
		checkPending(t, s, int64(100-upTo), pendingBytes(upTo, 100))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The same after a restart, where nothing is in memory.
	s = openT(t, dir, Options{CacheBytes: -1, SegmentBytes: 20_000})
	appendRange(t, s, 100, 200, 101)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{CacheBytes: -1, SegmentBytes: 20_000})
	for _, upTo := range []int{120, 121, 170, 200} {
		if err := s.Ack(uint64(upTo)); err != nil {
			t.Fatal(err)
		}
		checkPending(t, s, int64(200-upTo), pendingBytes(upTo, 200))
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := map[string]struct {
		opts Options
		ok   bool
	}{
		"zero value":        {Options{}, true},
		"tiny MaxBytes":     {Options{MaxBytes: 10}, false},
		"negative segment":  {Options{SegmentBytes: -1}, false},
		"unknown policy":    {Options{Sync: SyncPolicy(7)}, false},
		"negative interval": {Options{SyncEvery: -time.Second}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				if _, err := Open(filepath.Join(t.TempDir(), "s"), tt.opts); err == nil {
					t.Fatal("Open accepted invalid options")
				}
			}
		})
	}
}

func TestLargeRecords(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1 << 20, CacheBytes: -1}
	s := openT(t, dir, opts)
	big := func(i int) []byte {
		b := make([]byte, 3<<20+i)
		for j := range b {
			b[j] = byte(i + j/4096)
		}
		return b
	}
	for i := range 3 {
		if seq, err := s.Append(context.Background(), big(i)); err != nil || seq != uint64(i+1) {
			t.Fatalf("Append(big %d) = %d, %v", i, seq, err)
		}
	}
	check := func() {
		t.Helper()
		for i := range 3 {
			recs, err := s.Read(uint64(i+1), 1, 0)
			if err != nil || len(recs) != 1 || string(recs[0].Data) != string(big(i)) {
				t.Fatalf("Read(%d): %d records, %v; want big record %d", i+1, len(recs), err, i)
			}
		}
	}
	check()
	if got := len(segFiles(t, dir)); got != 3 {
		t.Fatalf("%d segments, want one per record larger than SegmentBytes", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	check()
}

func TestCacheBound(t *testing.T) {
	const cacheBytes = 20_000
	s := openT(t, t.TempDir(), Options{CacheBytes: cacheBytes, SegmentBytes: 30_000})
	appendRange(t, s, 0, 400, 1)
	s.mu.Lock()
	bytes, n := s.cache.bytes, len(s.cache.ents)-s.cache.head
	s.mu.Unlock()
	if bytes > cacheBytes || n == 0 {
		t.Fatalf("cache holds %d bytes in %d records, want 1..%d bytes", bytes, n, cacheBytes)
	}
	// Old records come from disk, recent ones from memory, all correct.
	checkRecords(t, readAll(t, s, 1), 1, 400, 0)
	checkRecords(t, readAll(t, s, 395), 395, 400, 394)
}

// TestAppendHeld: held runs with the record's seq before a reader woken
// by the commit can see the record; held records are not cached in memory
// (the caller holds them decoded) yet read back from disk exactly, mixed
// with cached ones in any order; held does not run on ErrFull.
func TestAppendHeld(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 20_000})
	var mu sync.Mutex
	heldSeqs := map[uint64]bool{}
	// A reader that, once woken by a commit, checks that held already ran
	// for every committed held record.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bad := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var seen uint64
		for {
			if err := s.Wait(ctx, seen); err != nil {
				return
			}
			seen = s.Committed()
			mu.Lock()
			for q := uint64(1); q <= seen; q++ {
				if q%3 != 0 && !heldSeqs[q] {
					select {
					case bad <- fmt.Sprintf("seq %d committed before held ran", q):
					default:
					}
				}
			}
			mu.Unlock()
		}
	}()
	const n = 120
	for i := range n {
		var seq uint64
		var err error
		if i%3 == 2 { // seqs 3, 6, 9, ...: plain, cached
			seq, err = s.Append(context.Background(), payload(i))
		} else {
			ran := uint64(0)
			seq, err = s.AppendHeld(context.Background(), payload(i), func(q uint64) {
				// Under the spool's lock, which the committer needs to
				// take the record: it cannot be committed yet.
				if s.mu.TryLock() {
					s.mu.Unlock()
					t.Errorf("held(%d) ran without the spool's lock", q)
				}
				if s.committed >= q {
					t.Errorf("held(%d) ran after the record was committed (committed %d)", q, s.committed)
				}
				mu.Lock()
				heldSeqs[q] = true
				mu.Unlock()
				ran = q
			})
			if err == nil && ran != seq {
				t.Fatalf("held ran with seq %d, Append returned %d", ran, seq)
			}
		}
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	waitVisible(t, s, n)
	cancel()
	<-done
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	// Held records keep only their end offsets in the memory cache (for
	// Ack, which scans the segment otherwise), not their data.
	s.mu.Lock()
	for i := s.cache.head; i < len(s.cache.ents); i++ {
		if e := s.cache.ents[i]; (e.seq%3 != 0) != e.held || e.held && e.data != nil {
			t.Errorf("cache entry %d: held %v, %d bytes; want held without data for seqs not divisible by 3", e.seq, e.held, len(e.data))
		}
	}
	if end, scan := s.endOfLocked(50); scan.first != 0 || end == 0 {
		t.Errorf("end of held record 50: %d, scan segment %d; want it from memory", end, scan.first)
	}
	s.mu.Unlock()
	checkRecords(t, readAll(t, s, 1), 1, n, 0)
	checkRecords(t, readAll(t, s, 50), 50, n, 49)

	full := openT(t, t.TempDir(), Options{MaxBytes: 4096, SegmentBytes: 4096})
	ran := false
	if _, err := full.AppendHeld(context.Background(), make([]byte, 3000), func(uint64) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := full.AppendHeld(context.Background(), make([]byte, 3000), func(uint64) { ran = true }); !errors.Is(err, ErrFull) || ran {
		t.Fatalf("AppendHeld on a full spool = %v, held ran %v; want ErrFull, not run", err, ran)
	}
}

// TestWriteFailure makes creating the first segment fail (a directory sits
// where the file must go): the failure is sticky and reported everywhere.
func TestWriteFailure(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, segName(1)), 0o750); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	s, err := Open(dir, Options{Logger: bufLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err1 := s.Append(ctx, []byte("x"))
	_, err2 := s.Append(ctx, []byte("y"))
	if err1 == nil || err2 == nil || errors.Is(err1, ErrClosed) {
		t.Fatalf("Appends after a failed write = %v, %v; want the write error", err1, err2)
	}
	if err := s.Wait(ctx, 0); err == nil {
		t.Fatal("Wait on a failed spool returned nil")
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d errors logged, want 1:\n%s", n, logs.String())
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close of a failed spool returned nil")
	}
}

func TestSyncPolicyText(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		b, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var q SyncPolicy
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Fatalf("round trip of %v through %q = %v, %v", p, b, q, err)
		}
	}
	var q SyncPolicy
	if err := q.UnmarshalText([]byte("sometimes")); err == nil {
		t.Fatal(`UnmarshalText("sometimes") succeeded`)
	}
}

// TestID: a spool keeps its id across restarts; another directory has
// another; a damaged id file is replaced, with a warning.
func TestID(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	id := s.ID()
	if !validID(id) {
		t.Fatalf("id %q is not 16 hex digits", id)
	}
	s.Close()
	if got := openT(t, dir, Options{}).ID(); got != id {
		t.Errorf("after a restart the id is %q, want %q", got, id)
	}
	if other := openT(t, t.TempDir(), Options{}).ID(); other == id {
		t.Errorf("two spools share the id %q", id)
	}

	dir2 := t.TempDir()
	openT(t, dir2, Options{}).Close()
	if err := os.WriteFile(filepath.Join(dir2, idFile), []byte("not hex\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	s2 := openT(t, dir2, Options{Logger: bufLogger(&logs)})
	if !validID(s2.ID()) {
		t.Errorf("after a damaged id file the id is %q", s2.ID())
	}
	if !strings.Contains(logs.String(), "spool id file was damaged") {
		t.Errorf("no warning for the damaged id file: %s", logs.String())
	}
}
