package oip

import (
	"math"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

func checkFloat32Text(t *testing.T, b uint32) bool {
	t.Helper()
	f := math.Float32frombits(b)
	want := strconv.AppendFloat(nil, float64(f), 'g', -1, 32)
	if got := appendFloat32(nil, f); string(got) != string(want) {
		t.Errorf("appendFloat32(%#08x = %v) = %s, want %s", b, f, got, want)
		return false
	}
	return true
}

// TestAppendFloat32MatchesStrconv: the text is strconv's, byte for byte, on
// the edges (zeros, subnormals, every power of two, the binades' last
// values, the special exponents of the algorithm, decimal round numbers,
// NaN and the infinities) and on random bit patterns.
func TestAppendFloat32MatchesStrconv(t *testing.T) {
	var cases []uint32
	for e := uint32(0); e <= 0xff; e++ {
		for _, frac := range []uint32{0, 1, 2, 3, 1<<23 - 1, 1<<23 - 2, 1 << 22, 0x2aaaaa, 0x555555} {
			cases = append(cases, e<<23|frac)
		}
	}
	for _, f := range []float32{1, 0.1, 0.2, 0.3, 1e6, 999999, 1e-4, 9.9999e-5, 1e-5, 123456, 1234567, 16777216, 3.4028235e38, 1e-45, 1.17549435e-38, 0.6046603, 100, 1e21, 1e-7} {
		cases = append(cases, math.Float32bits(f), math.Float32bits(f)+1, math.Float32bits(f)-1)
	}
	rng := rand.New(rand.NewSource(1))
	for range 1 << 20 {
		cases = append(cases, rng.Uint32())
	}
	failed := 0
	for _, c := range cases {
		for _, b := range []uint32{c, c | 1<<31} {
			if !checkFloat32Text(t, b) {
				if failed++; failed > 20 {
					t.Fatal("too many failures")
				}
			}
		}
	}
}

// TestAppendFloat32AllValues compares all 2^32 bit patterns (minutes on two
// cores); it runs with DROVER_FTOA32_ALL=1.
func TestAppendFloat32AllValues(t *testing.T) {
	if os.Getenv("DROVER_FTOA32_ALL") != "1" {
		t.Skip("set DROVER_FTOA32_ALL=1 to compare every float32 with strconv")
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []uint32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got, want []byte
			for hi := uint64(w); hi < 1<<16; hi += uint64(workers) {
				for lo := uint64(0); lo < 1<<16; lo++ {
					b := uint32(hi<<16 | lo)
					f := math.Float32frombits(b)
					got = appendFloat32(got[:0], f)
					want = strconv.AppendFloat(want[:0], float64(f), 'g', -1, 32)
					if string(got) != string(want) {
						mu.Lock()
						if len(bad) < 20 {
							bad = append(bad, b)
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, b := range bad {
		checkFloat32Text(t, b)
	}
}

func BenchmarkAppendFloat32(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	fs := make([]float32, 1000)
	for i := range fs {
		fs[i] = rng.Float32()*10 - 5
	}
	buf := make([]byte, 0, 64)
	b.Run("drover", func(b *testing.B) {
		for b.Loop() {
			for _, f := range fs {
				buf = appendFloat32(buf[:0], f)
			}
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for b.Loop() {
			for _, f := range fs {
				buf = strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)
			}
		}
	})
}
