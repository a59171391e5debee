package evaluate

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGeneratedIDsSampleAtTheirRate: each rate samples its share of the
// ids from NewRequestID.
func TestGeneratedIDsSampleAtTheirRate(t *testing.T) {
	const n = 200000
	seen := make(map[string]bool, n)
	for _, rate := range []float64{0.01, 0.05, 0.5} {
		hits := 0
		for i := 0; i < n; i++ {
			id := NewRequestID()
			if len(id) != 32 || seen[id] {
				t.Fatalf("id %q is malformed or repeated", id)
			}
			seen[id] = true
			if Sampled(id, rate) {
				hits++
			}
		}
		share, sd := float64(hits)/n, math.Sqrt(rate*(1-rate)/n)
		if math.Abs(share-rate) > 5*sd {
			t.Errorf("rate %v: sampled share %v, want within %v", rate, share, 5*sd)
		}
	}
}

// TestRequestIDsAreUnpredictable: no part of a generated id is shared
// between ids or steps like a counter: every hex digit position takes
// every value over a few thousand ids, and no two consecutive ids have an
// equal half or halves one apart.
func TestRequestIDsAreUnpredictable(t *testing.T) {
	const n = 5000
	var digits [32]map[byte]bool
	for i := range digits {
		digits[i] = map[byte]bool{}
	}
	var prevHi, prevLo uint64
	for i := range n {
		id := NewRequestID()
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != 16 {
			t.Fatalf("id %q is not 32 hex digits", id)
		}
		for j := range 32 {
			digits[j][id[j]] = true
		}
		hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		if i > 0 && (hi == prevHi || lo == prevLo || lo-prevLo == 1 || hi-prevHi == 1) {
			t.Fatalf("consecutive ids share or step a half: %016x%016x after %016x%016x", hi, lo, prevHi, prevLo)
		}
		prevHi, prevLo = hi, lo
	}
	for j, d := range digits {
		if len(d) != 16 {
			t.Fatalf("hex digit %d took %d values over %d ids, want 16: part of the id is fixed", j, len(d), n)
		}
	}
}

// TestRequestIDsDifferAcrossRuns: two runs of the process (this test
// binary, run again) generate ids that share nothing with each other's or
// with this run's.
func TestRequestIDsDifferAcrossRuns(t *testing.T) {
	if os.Getenv("DROVER_PRINT_REQUEST_IDS") == "1" {
		for range 100 {
			fmt.Println("id", NewRequestID())
		}
		return
	}
	run := func() []string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequestIDsDifferAcrossRuns$", "-test.count=1")
		cmd.Env = append(os.Environ(), "DROVER_PRINT_REQUEST_IDS=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run the test binary again: %v\n%s", err, out)
		}
		var ids []string
		for l := range strings.SplitSeq(string(out), "\n") {
			if id, ok := strings.CutPrefix(l, "id "); ok {
				ids = append(ids, id)
			}
		}
		if len(ids) != 100 {
			t.Fatalf("the second run printed %d ids, want 100:\n%s", len(ids), out)
		}
		return ids
	}
	seen := map[string]int{}
	halves := map[string]int{}
	for r, ids := range [][]string{run(), run(), {NewRequestID(), NewRequestID()}} {
		for _, id := range ids {
			for _, h := range []string{id[:16], id[16:]} {
				if prev, ok := halves[h]; ok && prev != r {
					t.Fatalf("runs %d and %d generated ids sharing the half %s", prev, r, h)
				}
				halves[h] = r
			}
			if _, dup := seen[id]; dup {
				t.Fatalf("id %s generated twice", id)
			}
			seen[id] = r
		}
	}
}
