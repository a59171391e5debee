package chembed_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/chembed"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startEngine(t *testing.T, dir string) *chembed.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := chembed.Start(ctx, chembed.Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

func connect(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatalf("ping %s: %v", dsn, err)
	}
	return conn
}

type tableStats struct {
	Rows     uint64
	SumValue float64
	Hosts    uint64
	LabelSum uint64
}

func readStats(t *testing.T, conn driver.Conn) tableStats {
	t.Helper()
	var s tableStats
	row := conn.QueryRow(context.Background(), `
		SELECT count(), sum(value), uniqExact(host), sum(toUInt64(labels['shard']))
		FROM drover_it.points`)
	if err := row.Scan(&s.Rows, &s.SumValue, &s.Hosts, &s.LabelSum); err != nil {
		t.Fatalf("read back: %v", err)
	}
	return s
}

// TestMillionRowsSurviveRestart inserts 1M rows into a MergeTree table with
// LowCardinality and Map columns through clickhouse-go, restarts the engine
// on the same data directory and reads them back.
func TestMillionRowsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir)
	conn := connect(t, e.DSN("default"))
	ctx := context.Background()
	for _, q := range []string{
		`CREATE DATABASE drover_it`,
		`CREATE TABLE drover_it.points (
			ts DateTime64(3) CODEC(DoubleDelta),
			host LowCardinality(String),
			metric LowCardinality(String),
			value Float64 CODEC(Gorilla),
			labels Map(LowCardinality(String), String)
		) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (metric, host, ts)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	const rows = 1_000_000
	const batchSize = 100_000
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var want tableStats
	want.Rows = rows
	want.Hosts = 100
	start := time.Now()
	for off := 0; off < rows; off += batchSize {
		b, err := conn.PrepareBatch(ctx, "INSERT INTO drover_it.points")
		if err != nil {
			t.Fatal(err)
		}
		for i := off; i < off+batchSize; i++ {
			v := float64(i%1000) * 0.5
			shard := i % 7
			want.SumValue += v
			want.LabelSum += uint64(shard)
			if err := b.Append(
				base.Add(time.Duration(i)*time.Millisecond),
				"host-"+strconv.Itoa(i%100),
				"drover_requests",
				v,
				map[string]string{"shard": strconv.Itoa(shard), "model": "iris"},
			); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatalf("insert batch at %d: %v", off, err)
		}
	}
	t.Logf("inserted %d rows in %s (%.0f rows/s)", rows, time.Since(start), rows/time.Since(start).Seconds())

	if got := readStats(t, conn); got != want {
		t.Fatalf("before restart: got %+v, want %+v", got, want)
	}
	conn.Close()
	if err := e.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}

	e2 := startEngine(t, dir)
	if e2.Addr() == e.Addr() {
		t.Logf("restarted engine reuses address %s", e2.Addr())
	}
	conn2 := connect(t, e2.DSN("default"))
	if got := readStats(t, conn2); got != want {
		t.Fatalf("after restart: got %+v, want %+v", got, want)
	}
}

func TestStopIsIdempotentAndStopsProcess(t *testing.T) {
	e := startEngine(t, t.TempDir())
	pid := e.PID()
	for i := 0; i < 2; i++ {
		if err := e.Stop(context.Background()); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
	select {
	case <-e.Exited():
	default:
		t.Fatal("Exited not closed after Stop")
	}
	if alive(pid) {
		t.Fatalf("engine pid %d still running after Stop", pid)
	}
}

func TestStartFailsClearly(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "libchdb.so")
	if err := os.WriteFile(bogus, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := chembed.Start(ctx, chembed.Config{DataDir: t.TempDir(), Mode: chembed.ModeCHDB, Library: bogus, Logger: quietLogger()})
	if err == nil {
		t.Fatal("start with a bogus library succeeded")
	}
	if !strings.Contains(err.Error(), "dlopen") || !strings.Contains(err.Error(), bogus) {
		t.Fatalf("error does not name the problem: %v", err)
	}
	if _, err := chembed.Start(ctx, chembed.Config{}); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Fatalf("missing DataDir: got %v", err)
	}
}

// TestSIGKILLLeavesNoChild runs a helper process that starts an engine, kills
// the helper with SIGKILL and checks that the engine goes away too.
func TestSIGKILLLeavesNoChild(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CHEMBED_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pidc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "ENGINE_PID="); ok {
				n, _ := strconv.Atoi(p)
				pidc <- n
			}
		}
		close(pidc)
	}()
	var pid int
	select {
	case pid = <-pidc:
	case <-time.After(2 * time.Minute):
		t.Fatal("helper did not report an engine pid")
	}
	if pid == 0 || !alive(pid) {
		t.Fatalf("engine pid %d not running", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("engine pid %d still running 30s after its parent was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMain doubles as the helper process for TestSIGKILLLeavesNoChild: with
// CHEMBED_HELPER_DIR set it starts an engine, prints its pid and waits to be
// killed.
func TestMain(m *testing.M) {
	dir := os.Getenv("CHEMBED_HELPER_DIR")
	if dir == "" {
		goleak.VerifyTestMain(m)
		return
	}
	e, err := chembed.Start(context.Background(), chembed.Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	fmt.Printf("ENGINE_PID=%d\n", e.PID())
	select {} // wait to be killed
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
