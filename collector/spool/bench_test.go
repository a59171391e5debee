package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend appends records from 8 goroutines, as the OTLP receivers
// do, and reports records/s, MB/s and, under SyncAlways, how many records
// each fsync covered and how long each took. The naive sub-benchmark is the
// baseline to compare SyncAlways with: one write+fsync per record under a
// mutex, what the spool would do without group commit or preallocation.
func BenchmarkAppend(b *testing.B) {
	const goroutines = 8
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
			b.Run(fmt.Sprintf("sync=%s/size=%d", pol, size), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{Sync: pol, MaxBytes: 1 << 40, Logger: discardLogger()})
				if err != nil {
					b.Fatal(err)
				}
				rec := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				runParallel(b, goroutines, func() error {
					_, err := s.Append(context.Background(), rec)
					return err
				})
				b.StopTimer()
				reportRate(b)
				if n := s.syncs.Load(); n > 0 && pol == SyncAlways {
					// Throughput is records/fsync over fsync latency; the
					// first is bounded by the 8 appenders, the second is
					// the disk's.
					b.ReportMetric(float64(b.N)/float64(n), "records/fsync")
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/commit")
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			})
		}
		b.Run(fmt.Sprintf("naive/size=%d", size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "naive"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var mu sync.Mutex
			var seq uint64
			b.SetBytes(int64(size))
			rec := make([]byte, size)
			buf := make([]byte, 0, size+headerSize)
			b.ResetTimer()
			runParallel(b, goroutines, func() error {
				mu.Lock()
				defer mu.Unlock()
				seq++
				buf = appendRecord(buf[:0], seq, rec)
				if _, err := f.Write(buf); err != nil {
					return err
				}
				return f.Sync()
			})
			b.StopTimer()
			reportRate(b)
		})
	}
}

// BenchmarkPipeline is Append from 8 goroutines with the writer loop
// (Wait, Read, Ack every 1000 records) running, as in the collector.
func BenchmarkPipeline(b *testing.B) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval} {
		b.Run("sync="+pol.String(), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Sync: pol, SyncEvery: 10 * time.Millisecond, Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() {
				var last uint64
				for ctx.Err() == nil {
					if s.Wait(ctx, last) != nil {
						return
					}
					recs, err := s.Read(last+1, 1000, 4<<20)
					if err != nil || len(recs) == 0 {
						continue
					}
					last = recs[len(recs)-1].Seq
					if err := s.Ack(last); err != nil {
						b.Error(err)
						return
					}
				}
			})
			rec := make([]byte, 1<<10)
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			runParallel(b, 8, func() error {
				for {
					_, err := s.Append(ctx, rec)
					if err != ErrFull {
						return err
					}
					time.Sleep(time.Millisecond)
				}
			})
			b.StopTimer()
			reportRate(b)
			cancel()
			wg.Wait()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// runParallel calls op b.N times in total from n goroutines.
func runParallel(b *testing.B, n int, op func() error) {
	var wg sync.WaitGroup
	for g := range n {
		count := b.N / n
		if g < b.N%n {
			count++
		}
		wg.Go(func() {
			for range count {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
