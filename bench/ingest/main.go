// Command ingest measures OTLP metric ingest into ClickHouse: Drover's
// collector against an OpenTelemetry Collector built with the contrib
// clickhouseexporter (bench/ingest/otelcol, its own module), one after the
// other against the same embedded ClickHouse engine, with the same
// pre-encoded requests replayed over OTLP/gRPC by a few concurrent senders.
//
// For each system it reports points/s, CPU seconds per point of the
// collector process and of the ClickHouse process (from /proc, from the
// first request until every point is visible in ClickHouse), the
// collector's peak RSS and the rows stored against the points sent; then
// Drover's total CPU per point ÷ the exporter's (target ≤ 1/3). The systems
// are measured in turn -repeat times (3), and the verdict compares each
// system's median: on a shared machine a slow minute can land on one run of
// one system, which a single pair would report as the ratio.
//
// Then an outage drill (Drover only): under a steady load ClickHouse is
// stopped for -outage and started again on the same port and data
// directory; it reports points sent and stored, duplicates, and how long
// after the restart everything sent before it was in ClickHouse.
//
//	go run ./bench/ingest [-points 2000000] [-outage 60s]
//
// -systems drover=PATH,drover measures another build of drover-collector
// (another revision, built with go build -o PATH) and this one in the same
// run, each into its own database, to compare changes under the same noise.
//
// -tls serves OTLP/gRPC over TLS on every system (a CA and a certificate
// for 127.0.0.1 made for the run); the senders verify it. Drover's
// receivers also take a bearer token, with or without -tls.
//
// DROVER_BENCH_PPROF=host:port serves the collector's pprof there (for a
// CPU profile during the run); DROVER_BENCH_EXTRA_CONFIG is YAML appended
// to the collector's config (for example "writer:\n  batch_rows: 100000\n").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-ml/drover/bench/internal/proc"
	"github.com/drover-ml/drover/bench/internal/stats"
	"github.com/drover-ml/drover/shared/chembed"
)

type options struct {
	points        int
	hosts         int
	hostsPerReq   int
	senders       int
	systems       string
	outage        time.Duration
	drillInterval time.Duration
	keep          bool
	gaugesOnly    bool
	delta         bool
	repeat        int
	rate          float64
	tls           bool
}

func main() {
	var o options
	flag.IntVar(&o.points, "points", 2_000_000, "points to send to each system (rounded up to whole rounds)")
	flag.IntVar(&o.hosts, "hosts", 1000, "agents (each sends 20 points per round: 2 models × 5 gauges + 5 histograms)")
	flag.IntVar(&o.hostsPerReq, "hosts-per-request", 50, "agents per OTLP request (50 → 1000 points)")
	flag.IntVar(&o.senders, "senders", 4, "concurrent gRPC senders")
	flag.StringVar(&o.systems, "systems", "drover,otel", "systems to compare, in order; drover=PATH is a drover-collector binary built elsewhere (another revision)")
	flag.DurationVar(&o.outage, "outage", 60*time.Second, "ClickHouse outage in the drill (0 skips the drill)")
	flag.DurationVar(&o.drillInterval, "drill-interval", time.Second, "one round per interval during the drill")
	flag.BoolVar(&o.gaugesOnly, "gauges-only", false, "send the histogram series as gauges (the issue's reference numbers are per gauge point)")
	flag.BoolVar(&o.delta, "delta", false, "send histograms with delta temporality, as drover-agent does (Drover rolls them up per minute and hour)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, data)")
	flag.Float64Var(&o.rate, "rate", 0, "offered points/s (whole rounds paced evenly; 0: as fast as each system acknowledges). At the same offered rate the systems' peak RSS compare like for like")
	flag.BoolVar(&o.tls, "tls", false, "OTLP/gRPC over TLS on every system (a certificate made for the run)")
	flag.IntVar(&o.repeat, "repeat", 3, "rounds of measuring every system in turn; the verdict uses each system's median (a noisy minute on a shared machine moves one run, not the median)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// result is one system's measurement.
type result struct {
	name                string
	sent, rows, dups    int64
	rejected, retries   int64
	sendWall, flushWall time.Duration
	collCPU, chCPU      float64
	// chTailCPU is what ClickHouse spent after the rows were visible,
	// until it went quiet: the merges of the parts this system wrote.
	chTailCPU float64
	peakRSS   int64
}

func (r result) perPoint(cpu float64) float64 { return cpu / float64(r.sent) * 1e6 }
func (r result) total() float64               { return r.perPoint(r.collCPU + r.chCPU) }
func (r result) settled() float64             { return r.perPoint(r.collCPU + r.chCPU + r.chTailCPU) }

func run(ctx context.Context, o options) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "drover-ingest-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("temporary directory:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.tls {
		if serverTLS, err = newTLSFiles(filepath.Join(tmp, "tls")); err != nil {
			return err
		}
		fmt.Println("OTLP/gRPC over TLS (ECDSA P-256 certificate for 127.0.0.1)")
	}

	// Build first, so compiling is not on anyone's CPU bill.
	bins := map[string]string{}
	for _, s := range strings.Split(o.systems, ",") {
		switch name, path, _ := strings.Cut(s, "="); {
		case name == "drover" && path != "":
			bins[s] = path // a build of another revision, to compare two
		case s == "drover":
			bins[s] = filepath.Join(tmp, "drover-collector")
			err = proc.GoBuild(root, "github.com/drover-ml/drover/collector/cmd/drover-collector", bins[s])
		case s == "otel":
			bins[s] = filepath.Join(tmp, "otelcol-bench")
			fmt.Println("building the OTel Collector (bench/ingest/otelcol; the first build takes minutes)...")
			err = proc.GoBuild(filepath.Join(root, "bench", "ingest", "otelcol"), ".", bins[s])
		default:
			err = fmt.Errorf("-systems: unknown system %q (want drover, otel)", s)
		}
		if err != nil {
			return err
		}
	}
	if o.outage > 0 && bins["drover"] == "" {
		bins["drover"] = filepath.Join(tmp, "drover-collector")
		if err := proc.GoBuild(root, "github.com/drover-ml/drover/collector/cmd/drover-collector", bins["drover"]); err != nil {
			return err
		}
	}

	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute).UTC()
	w, err := NewWorkload(o.hosts, o.hostsPerReq, o.gaugesOnly, o.delta, base, 10*time.Second)
	if err != nil {
		return err
	}
	rounds := (o.points + w.PointsPerRound - 1) / w.PointsPerRound
	fmt.Printf("workload: %d agents, %d series (%d gauge, %d histogram points per round), %d requests of ~%d points (%.0f KiB) per round, %d rounds = %d points per system; %d senders\n",
		o.hosts, w.PointsPerRound, w.GaugesPerRound, w.HistsPerRound, len(w.Requests), w.PointsPerRound/len(w.Requests),
		float64(w.BytesPerRound)/float64(len(w.Requests))/1024, rounds, rounds*w.PointsPerRound, o.senders)

	chLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	chCfg := chembed.Config{DataDir: filepath.Join(tmp, "clickhouse"), Logger: chLog}
	eng, err := chembed.Start(ctx, chCfg)
	if err != nil {
		return err
	}
	defer func() { _ = eng.Stop(context.Background()) }()
	fmt.Printf("clickhouse: %s engine, pid %d, %s\n", eng.Mode(), eng.PID(), eng.Addr())

	var results []result
	k := 0 // each measurement writes its own database
	for range max(o.repeat, 1) {
		for _, s := range strings.Split(o.systems, ",") {
			r, err := measure(ctx, s, k, bins[s], filepath.Join(tmp, fmt.Sprintf("system-%d", k)), eng, w, rounds, o.senders, o.rate)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			results = append(results, r)
			k++
		}
	}
	printResults(results, o.rate)

	if o.outage > 0 {
		d := drill{bin: bins["drover"], dir: filepath.Join(tmp, "drill"), chCfg: chCfg, eng: eng, w: w,
			outage: o.outage, interval: o.drillInterval, senders: o.senders}
		err := d.run(ctx)
		eng = d.eng // the engine was restarted
		if err != nil {
			return fmt.Errorf("outage drill: %w", err)
		}
	}
	return nil
}

// measure runs one system: start it, let ClickHouse go quiet, replay the
// rounds, wait until every point is a row, stop it.
func measure(ctx context.Context, system string, i int, bin, dir string, eng *chembed.Engine, w *Workload, rounds, senders int, rate float64) (result, error) {
	var c *Collector
	var err error
	switch name, path, _ := strings.Cut(system, "="); name {
	case "drover":
		db := "drover"
		if i > 0 {
			db = fmt.Sprintf("drover_%d", i) // each run its own tables
		}
		c, err = startDrover(bin, dir, authAddr(eng), db)
		if err == nil && path != "" {
			c.Name = "drover=" + filepath.Base(path)
		}
	case "otel":
		db := "otel"
		if i > 0 {
			db = fmt.Sprintf("otel_%d", i)
		}
		c, err = startOtel(bin, dir, authAddr(eng), db)
	}
	if err != nil {
		return result{}, err
	}
	defer c.Stop()
	quiesce(eng.PID())
	s, err := NewSender(c.GRPCAddr, c.SendToken, w, serverTLS)
	if err != nil {
		return result{}, err
	}
	defer s.Close()

	cpuC0 := c.CPU()
	cpuCH0, _ := proc.CPUSeconds(eng.PID())
	t0 := time.Now()
	if rate > 0 {
		interval := time.Duration(float64(w.PointsPerRound) / rate * float64(time.Second))
		fmt.Printf("\n== %s: sending %d points at %.0f points/s (a round of %d every %s)...\n", c.Name, rounds*w.PointsPerRound, rate,
			w.PointsPerRound, interval)
		late, err := s.Rate(ctx, rounds, interval, senders)
		if err != nil {
			return result{}, err
		}
		if late > 0 {
			fmt.Printf("   %d of %d rounds started late (the system acknowledged slower than offered)\n", late, rounds)
		}
	} else {
		fmt.Printf("\n== %s: sending %d points...\n", c.Name, rounds*w.PointsPerRound)
		if err := s.Burst(ctx, 0, rounds, senders); err != nil {
			return result{}, err
		}
	}
	r := result{name: c.Name, sent: s.Points.Load(), rejected: s.Rejected.Load(), retries: s.Retries.Load(), sendWall: time.Since(t0)}
	fmt.Printf("   acknowledged %d points in %s; waiting for the rows...\n", r.sent, r.sendWall.Round(time.Millisecond))
	_, werr := waitRows(chHTTP(eng), c.Tables, r.sent, 5*time.Minute)
	r.flushWall = time.Since(t0)
	r.collCPU = c.CPU() - cpuC0
	cpuCH1, _ := proc.CPUSeconds(eng.PID())
	r.chCPU = cpuCH1 - cpuCH0
	r.peakRSS = c.PeakRSS()
	if werr != nil {
		fmt.Println("   WARNING:", werr)
	}
	// Count again a little later: a count that keeps growing past the
	// points sent would be duplicates. Before counting, let ClickHouse go
	// quiet: the merges of the parts just written cost CPU too, more with
	// more, smaller inserts, and are billed as the tail.
	time.Sleep(2 * time.Second)
	quiesce(eng.PID())
	cpuCH2, _ := proc.CPUSeconds(eng.PID())
	r.chTailCPU = cpuCH2 - cpuCH1
	if r.rows, err = countRows(chHTTP(eng), c.Tables); err != nil {
		return r, err
	}
	r.dups, err = duplicates(chHTTP(eng), system, c.Database)
	if err != nil {
		return r, err
	}
	fmt.Printf("   all rows after %s; collector CPU %.2f s, ClickHouse CPU %.2f s (then %.2f s until it went quiet)\n", r.flushWall.Round(time.Millisecond), r.collCPU, r.chCPU, r.chTailCPU)
	return r, nil
}

// duplicates is count() − uniqExact over a point's identity (series and
// time), summed over the gauge and histogram tables.
func duplicates(httpAddr, system, db string) (int64, error) {
	var qs []string
	switch system {
	case "drover":
		for _, t := range []string{"metrics_gauge", "metrics_histogram"} {
			qs = append(qs, fmt.Sprintf("SELECT count() - uniqExact(host, model, model_version, metric, attributes, time) FROM %s.%s", db, t))
		}
	case "otel":
		for _, t := range []string{"otel_metrics_gauge", "otel_metrics_histogram"} {
			qs = append(qs, fmt.Sprintf("SELECT count() - uniqExact(ResourceAttributes, MetricName, Attributes, TimeUnix) FROM %s.%s", db, t))
		}
	}
	var n int64
	for _, q := range qs {
		out, err := chQuery(httpAddr, q)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q", q, out)
		}
		n += v
	}
	return n, nil
}

// quiesce waits (up to 30 s) until ClickHouse uses under 5% of a core, so
// merges left by the previous system are not billed to the next one.
func quiesce(pid int) {
	deadline := time.Now().Add(30 * time.Second)
	prev, _ := proc.CPUSeconds(pid)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		cur, _ := proc.CPUSeconds(pid)
		if cur-prev < 0.05 {
			return
		}
		prev = cur
	}
}

func printResults(rs []result, rate float64) {
	fmt.Println()
	fmt.Println("CPU is user+system seconds from /proc/<pid>/stat, from the first request until every point was a row in ClickHouse.")
	fmt.Println("points/s: acknowledged by the collector (send) and stored in ClickHouse (end to end).")
	fmt.Println("CH tail: ClickHouse's CPU after that, until it went quiet (the merges of the parts written), per point; +tail: total with it.")
	fmt.Printf("%-28s %9s %10s %10s %10s %10s %10s %8s %8s %8s %20s %5s\n", "system", "points", "send pt/s", "e2e pt/s",
		"coll µs/pt", "CH µs/pt", "total µs/pt", "CH tail", "+tail", "RSS MB", "rows stored / sent", "dups")
	for _, r := range rs {
		exact := "exact"
		if r.rows != r.sent {
			exact = "NOT exact"
		}
		fmt.Printf("%-28s %9d %10.0f %10.0f %10.2f %10.2f %10.2f %8.2f %8.2f %8.0f %9d/%-9d %s %d\n", r.name, r.sent,
			float64(r.sent)/r.sendWall.Seconds(), float64(r.sent)/r.flushWall.Seconds(),
			r.perPoint(r.collCPU), r.perPoint(r.chCPU), r.total(), r.perPoint(r.chTailCPU), r.settled(), float64(r.peakRSS)/(1<<20), r.rows, r.sent, exact, r.dups)
		if r.rejected > 0 || r.retries > 0 {
			fmt.Printf("   %s: %d points rejected (partial success), %d requests retried\n", r.name, r.rejected, r.retries)
		}
	}
	// The verdict: Drover's median against the exporter's, over the rounds.
	byName := map[string][]result{}
	for _, r := range rs {
		byName[r.name] = append(byName[r.name], r)
	}
	d, e := byName["drover"], byName[otelName]
	if len(d) == 0 || len(e) == 0 {
		return
	}
	med := stats.MedianOf[result, float64]
	total := func(r result) float64 { return r.total() }
	coll := func(r result) float64 { return r.perPoint(r.collCPU) }
	chp := func(r result) float64 { return r.perPoint(r.chCPU) }
	ratio := med(d, total) / med(e, total)
	verdict := "MET"
	if ratio > 1.0/3 {
		verdict = "NOT MET"
	}
	var rounds []string
	for i := range min(len(d), len(e)) {
		rounds = append(rounds, fmt.Sprintf("%.3f", d[i].total()/e[i].total()))
	}
	fmt.Printf("\nDrover total CPU per point ÷ exporter's, medians of %d and %d runs: %.3f (target ≤ 0.333: %s); collector alone %.3f, ClickHouse alone %.3f; round by round: %s\n",
		len(d), len(e), ratio, verdict, med(d, coll)/med(e, coll), med(d, chp)/med(e, chp), strings.Join(rounds, ", "))
	settled := func(r result) float64 { return r.settled() }
	fmt.Printf("with ClickHouse's CPU until it went quiet (the merges that followed): %.3f\n", med(d, settled)/med(e, settled))
	rss := func(r result) float64 { return float64(r.peakRSS) / (1 << 20) }
	rv := "MET"
	switch {
	case rate <= 0:
		rv = "not judged: each system ran at its own rate; use -rate"
	case med(d, rss) > med(e, rss):
		rv = "NOT MET"
	}
	fmt.Printf("collector peak RSS (VmHWM), medians: Drover %.0f MB, exporter %.0f MB, ratio %.2f (target ≤ 1 at the same offered rate: %s)\n",
		med(d, rss), med(e, rss), med(d, rss)/med(e, rss), rv)
}

// drill is the outage drill against Drover.
type drill struct {
	bin, dir string
	chCfg    chembed.Config
	eng      *chembed.Engine
	w        *Workload
	outage   time.Duration
	interval time.Duration
	senders  int
}

func (d *drill) run(ctx context.Context) error {
	const warm, after = 5 * time.Second, 10 * time.Second
	c, err := startDrover(d.bin, d.dir, authAddr(d.eng), "drover_drill")
	if err != nil {
		return err
	}
	defer c.Stop()
	s, err := NewSender(c.GRPCAddr, c.SendToken, d.w, serverTLS)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("\n== outage drill: Drover under %.0f points/s; ClickHouse stopped for %s after %s, sending goes on %s after the restart\n",
		float64(d.w.PointsPerRound)/d.interval.Seconds(), d.outage, warm, after)

	sctx, stopSending := context.WithCancel(ctx)
	type paced struct {
		rounds int
		err    error
	}
	done := make(chan paced, 1)
	go func() {
		n, err := s.Paced(sctx, 0, d.interval, d.senders)
		done <- paced{n, err}
	}()
	stopSending2 := func() paced { stopSending(); return <-done }

	sleep := func(t time.Duration) error {
		select {
		case <-time.After(t):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(warm); err != nil {
		stopSending2()
		return err
	}
	port := func(addr string) int { p, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:]); return p }
	cfg := d.chCfg
	cfg.TCPPort, cfg.HTTPPort = port(d.eng.Addr()), port(d.eng.HTTPAddr())
	stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
	tStopping, atStop := time.Now(), s.Points.Load()
	err = d.eng.Stop(stopCtx)
	cancel()
	tStop := time.Now()
	fmt.Printf("   %s ClickHouse stopping after %d points; stopped (%s) %s later\n", stamp(tStopping), atStop, errOrOK(err), tStop.Sub(tStopping).Round(time.Millisecond))
	var maxSpool float64
	for time.Since(tStop) < d.outage {
		if err := sleep(time.Second); err != nil {
			stopSending2()
			return err
		}
		if v, err := droverMetric(c.Admin, c.Token, "drover_collector_spool_records"); err == nil {
			maxSpool = max(maxSpool, v)
		}
	}
	eng, err := chembed.Start(ctx, cfg)
	if err != nil {
		stopSending2()
		return fmt.Errorf("restart clickhouse: %w", err)
	}
	d.eng = eng
	tRestart := time.Now()
	// Rounds finished before the restart: all of them must reach ClickHouse.
	doneRounds := int(s.Round.Load())
	before := int64(doneRounds * d.w.PointsPerRound)
	cutoff := d.w.RoundTime(doneRounds).Format("2006-01-02 15:04:05.000000000")
	fmt.Printf("   %s ClickHouse started again (down %s since it was stopped); %d points acknowledged by then (%d whole rounds = %d points before %s), spool peaked at %.0f requests\n",
		stamp(tRestart), tRestart.Sub(tStop).Round(time.Millisecond), s.Points.Load(), doneRounds, before, cutoff, maxSpool)

	drained := make(chan time.Duration, 1)
	go func() {
		tables := []string{"drover_drill.metrics_gauge", "drover_drill.metrics_histogram"}
		for {
			var n int64
			var qerr error
			for _, t := range tables {
				out, err := chQuery(chHTTP(eng), fmt.Sprintf("SELECT count() FROM %s WHERE time < toDateTime64('%s', 9, 'UTC')", t, cutoff))
				if err != nil {
					qerr = err
					break
				}
				v, _ := strconv.ParseInt(out, 10, 64)
				n += v
			}
			if qerr == nil && n >= before {
				drained <- time.Since(tRestart)
				return
			}
			if time.Since(tRestart) > 5*time.Minute {
				drained <- -1
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if err := sleep(after); err != nil {
		stopSending2()
		return err
	}
	p := stopSending2()
	if p.err != nil {
		return p.err
	}
	sent := s.Points.Load()
	drain := <-drained
	tables := []string{"drover_drill.metrics_gauge", "drover_drill.metrics_histogram"}
	_, werr := waitRows(chHTTP(eng), tables, sent, 5*time.Minute)
	var rows int64
	tAll := time.Since(tRestart)
	spoolEmpty := pollSpoolEmpty(c.Admin, c.Token, time.Minute)
	time.Sleep(2 * time.Second)
	if rows, err = countRows(chHTTP(eng), tables); err != nil {
		return err
	}
	dups, err := duplicates(chHTTP(eng), "drover", "drover_drill")
	if err != nil {
		return err
	}
	exact := "exact"
	if rows != sent {
		exact = "NOT exact"
	}
	fmt.Printf("   %d rounds sent, %d points acknowledged (%d rejected, %d requests retried)\n", p.rounds, sent, s.Rejected.Load(), s.Retries.Load())
	fmt.Printf("   points stored: %d of %d sent (%s); duplicates (count − uniqExact(series, time)): %d\n", rows, sent, exact, dups)
	if drain >= 0 {
		fmt.Printf("   spool drain: everything sent before the restart was in ClickHouse %s after the restart\n", drain.Round(time.Millisecond))
	} else {
		fmt.Println("   spool drain: NOT drained 5 min after the restart")
	}
	fmt.Printf("   all %d points stored %s after the restart (sending stopped %s after it); spool_records 0: %v\n",
		rows, tAll.Round(time.Millisecond), after, spoolEmpty)
	if werr != nil {
		fmt.Println("   WARNING:", werr)
	}
	return nil
}

func pollSpoolEmpty(admin, token string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, err := droverMetric(admin, token, "drover_collector_spool_records"); err == nil && v == 0 {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func errOrOK(err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return "ok"
	}
	return err.Error()
}

// authAddr is the engine's user:password@host:port, for the DSNs and
// endpoints the collectors under test are given.
// chHTTP is the engine's HTTP address with its user and password, for
// chQuery (the default user has no grants on the collectors' tables).
func chHTTP(e *chembed.Engine) string {
	return url.UserPassword(chembed.User, e.Password()).String() + "@" + e.HTTPAddr()
}

func authAddr(e *chembed.Engine) string {
	return url.UserPassword(chembed.User, e.Password()).String() + "@" + e.Addr()
}
