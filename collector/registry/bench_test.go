package registry

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPutAgainstRawFile stores one file (DROVER_BENCH_MB, default 32
// MB) through Blobs.Put into a file:// store, and writes the same bytes into
// a plain file with fsync, in the same run, and reports put/raw as the
// throughput ratio (1 = as fast as the raw write). Put's digest pass is
// counted (it hashes while it writes); the raw write does not hash.
//
//	go test -run - -bench PutAgainstRawFile ./collector/registry
func BenchmarkPutAgainstRawFile(b *testing.B) {
	mb := 32
	if s := os.Getenv("DROVER_BENCH_MB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			mb = n
		}
	}
	data := randomBytes(mb<<20, 7)
	digest := digestOf(data)
	dir := b.TempDir()
	u, err := FileURL(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenBlobs(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var raw, put time.Duration
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		p := filepath.Join(dir, "raw-"+strconv.Itoa(i))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)
		_ = os.Remove(p)

		start = time.Now()
		if _, err := s.Put(context.Background(), digest, int64(len(data)), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		put += time.Since(start)
		if err := s.bucket.Delete(context.Background(), blobKey(digest)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(raw.Seconds()/put.Seconds(), "put/raw")
}
