package spool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashHelperEnv, when set to a directory, makes the test binary run
// crashHelper on it instead of the tests.
const crashHelperEnv = "DROVER_SPOOL_CRASH_HELPER"

// crashPayload is the record the helper's goroutine g appends as its i-th.
func crashPayload(g, i int) []byte {
	n := (g*7919 + i*104729) % 5000
	return fmt.Appendf(nil, "g%d-i%d-%s", g, i, strings.Repeat(string(rune('a'+g)), n))
}

// crashHelper appends from 4 goroutines with SyncAlways and prints
// "R seq g i" for each acknowledged record, while a writer goroutine reads,
// sets intents and acks, printing "A seq" after each Ack. It runs until
// killed.
func crashHelper(dir string) int {
	s, err := Open(dir, Options{Sync: SyncAlways, SegmentBytes: 64 << 10, MaxBytes: 8 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		return 1
	}
	var out sync.Mutex
	emit := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		out.Lock()
		os.Stdout.WriteString(line) // one write per line: a kill never splits one
		out.Unlock()
	}
	round, _ := strconv.Atoi(os.Getenv(crashHelperEnv + "_ROUND"))
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				seq, err := s.Append(context.Background(), crashPayload(round*10+g, i))
				if err == ErrFull {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "helper append:", err)
					os.Exit(1)
				}
				emit("R %d %d %d\n", seq, round*10+g, i)
			}
		}()
	}
	// The writer acks with a lag of ackLag records, so that a kill leaves
	// plenty of acknowledged, unacked records for the parent to check.
	const ackLag = 1500
	last := s.Acked()
	if _, l, ok := s.Intent(); ok {
		last = max(last, l) // a real writer would re-insert this range first
	}
	for {
		if err := s.Wait(context.Background(), last); err != nil {
			fmt.Fprintln(os.Stderr, "helper wait:", err)
			return 1
		}
		recs, err := s.Read(last+1, 200, 0)
		if err != nil || len(recs) == 0 {
			fmt.Fprintln(os.Stderr, "helper read:", err)
			return 1
		}
		last = recs[len(recs)-1].Seq
		if last < ackLag || last-ackLag <= s.Acked() {
			continue
		}
		upTo := last - ackLag
		if err := s.SetIntent(s.Acked()+1, upTo); err != nil {
			fmt.Fprintln(os.Stderr, "helper intent:", err)
			return 1
		}
		if err := s.Ack(upTo); err != nil {
			fmt.Fprintln(os.Stderr, "helper ack:", err)
			return 1
		}
		emit("A %d\n", upTo)
	}
}

// TestCrashDurability SIGKILLs a helper process that appends with
// SyncAlways at a random moment, several times over the same directory,
// and checks that every record it was told is durable is there, with its
// content, and that the ack position never goes back.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	type owner struct{ g, i int }
	acked := map[uint64]owner{} // every seq ever reported, with its payload
	var maxAck uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashHelperEnv, round))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 500 + rng.IntN(3000)
		sc := bufio.NewScanner(stdout)
		lines, killed := 0, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 4 && f[0] == "R":
				seq, _ := strconv.ParseUint(f[1], 10, 64)
				g, _ := strconv.Atoi(f[2])
				i, _ := strconv.Atoi(f[3])
				if prev, dup := acked[seq]; dup {
					t.Fatalf("round %d: seq %d handed out twice: %v and %v", round, seq, prev, owner{g, i})
				}
				acked[seq] = owner{g, i}
			case len(f) == 2 && f[0] == "A":
				a, _ := strconv.ParseUint(f[1], 10, 64)
				maxAck = max(maxAck, a)
			default:
				t.Fatalf("round %d: helper printed %q", round, sc.Text())
			}
			if lines++; lines == killAfter && !killed {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed || !strings.Contains(fmt.Sprint(err), "killed") {
			t.Fatalf("round %d: helper ended by itself (%v): %s", round, err, stderr.String())
		}

		s := openT(t, dir, Options{SegmentBytes: 64 << 10, MaxBytes: 8 << 20})
		if got := s.Acked(); got < maxAck {
			t.Fatalf("round %d: Acked() = %d after restart, but Ack(%d) had returned", round, got, maxAck)
		}
		recs := readAll(t, s, 1)
		present := map[uint64][]byte{}
		for _, r := range recs {
			present[r.Seq] = r.Data
		}
		checked := 0
		for seq, o := range acked {
			if seq <= s.Acked() {
				continue // acked and deleted
			}
			data, ok := present[seq]
			if !ok {
				t.Fatalf("round %d: seq %d (g%d i%d) was acknowledged but is gone after SIGKILL", round, seq, o.g, o.i)
			}
			if want := crashPayload(o.g, o.i); string(data) != string(want) {
				t.Fatalf("round %d: seq %d holds %q, want %q", round, seq, trunc(data), trunc(want))
			}
			checked++
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].Seq != recs[i-1].Seq+1 {
				t.Fatalf("round %d: gap after seq %d (next %d)", round, recs[i-1].Seq, recs[i].Seq)
			}
		}
		t.Logf("round %d: killed after %d lines; %d acknowledged records checked, acked up to %d, %d records pending",
			round, killAfter, checked, s.Acked(), len(recs))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
