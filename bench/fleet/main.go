// Command fleet benchmarks fleet control (docs/fleet.md) on one machine:
// -agents simulated agents speaking the real control protocol (register,
// inventory on change and every heartbeat interval, long-poll of the
// desired state with If-None-Match) and -real-agents drover-agent
// processes follow one drover-collector process (the real binary, on the
// embedded ClickHouse engine, with a model published as v1 and v2: real
// ONNX files from shared/testmodels).
//
// Two measurements:
//
//   - convergence: rounds alternate `rollout v2` and `rollback` (to v1)
//     through the admin API (adminclient, what droverctl calls); each is
//     timed from the request until the fleet status shows every agent,
//     simulated and real, converged on the target (status polled every
//     -status-poll). Reported per round: p50 and p100 over agents.
//     Target: p100 ≤ 5 s.
//   - heartbeat load: the collector process's CPU time (utime+stime of
//     /proc/<pid>/stat) per second while the fleet heartbeats at the
//     collector's interval with no change, as a percentage of one core,
//     against the same collector idle before any agent registered (the
//     baseline, same run). Target ≤ 10 %. The simulated agents run in this
//     process and are not counted; the ClickHouse engine's CPU is printed
//     beside it.
//
// The anchors the issue names are printed as text: they are not measured
// here.
//
//	go run ./bench/fleet -agents 1000 -real-agents 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-ml/drover/bench/internal/agentproc"
	"github.com/drover-ml/drover/bench/internal/proc"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/shared/chembed"
	"github.com/drover-ml/drover/shared/testmodels"
)

const model = "fleetbench"

type options struct {
	agents, realAgents, rounds int
	heartbeat, idle            time.Duration
	applyDelay, statusPoll     time.Duration
	adminConns                 int
	keep                       bool
}

func main() {
	var o options
	flag.IntVar(&o.agents, "agents", 1000, "simulated agents")
	flag.IntVar(&o.realAgents, "real-agents", 3, "drover-agent processes following the collector")
	flag.IntVar(&o.rounds, "rounds", 6, "convergence rounds, alternating rollout v2 and rollback to v1")
	flag.DurationVar(&o.heartbeat, "heartbeat", 60*time.Second, "how long the heartbeat load is measured")
	flag.DurationVar(&o.idle, "idle", 20*time.Second, "how long the idle collector (the baseline) is measured")
	flag.DurationVar(&o.applyDelay, "apply-delay", 0, "simulated agents apply a change after a random delay up to this (0: at once)")
	flag.DurationVar(&o.statusPoll, "status-poll", 50*time.Millisecond, "how often the fleet status is read during a round (the resolution of the times)")
	flag.IntVar(&o.adminConns, "admin-max-connections", -1, "the collector's admin.max_connections (-1: 2 per agent + 64, since each agent holds a long-poll and an inventory connection; 0: the collector's default, 16384)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}

// round is one change and how long the fleet took to converge on it.
type round struct {
	change      string
	target      uint64
	call        time.Duration   // the admin API's answer
	sim, real   []time.Duration // each agent's first converged status
	statusReads []time.Duration // how long each status read took
	// accepted: when the collector accepted each simulated agent's
	// inventory at the change's revision (the agent's clock, the same
	// machine): the convergence without the status read's latency.
	accepted []time.Duration
}

func run(ctx context.Context, o options) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "drover-bench-fleet-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("temporary directory:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// Build first, so compiling is not on anyone's CPU bill.
	collBin := filepath.Join(tmp, "drover-collector")
	if err := proc.GoBuild(root, "github.com/drover-ml/drover/collector/cmd/drover-collector", collBin); err != nil {
		return err
	}
	var agentBin string
	if o.realAgents > 0 {
		if agentBin, err = agentproc.Build(tmp); err != nil {
			return err
		}
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := chembed.Start(ctx, chembed.Config{DataDir: filepath.Join(tmp, "clickhouse"), Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = eng.Stop(context.Background()) }()

	if o.adminConns < 0 {
		o.adminConns = 2*(o.agents+o.realAgents) + 64
	}
	coll, admin, adminToken, agentToken, err := startCollector(collBin, o.adminConns, filepath.Join(tmp, "collector"), url.UserPassword(chembed.User, eng.Password()).String()+"@"+eng.Addr())
	if err != nil {
		return err
	}
	defer coll.Stop()
	base := "http://" + admin
	cl, err := adminclient.NewClient(adminclient.Config{URLs: []string{base}, Token: adminToken})
	if err != nil {
		return err
	}
	defer cl.Close()
	fmt.Printf("fleet bench: %d simulated + %d real agents, 1 drover-collector (pid %d, admin.max_connections %d), ClickHouse %s engine (pid %d), %d rounds, %s, %d CPUs\n",
		o.agents, o.realAgents, coll.PID(), o.adminConns, eng.Mode(), eng.PID(), o.rounds, runtime.Version(), runtime.NumCPU())

	// Two real ONNX versions.
	for v, w := range [][][]float32{{{1, 0}, {0, 1}}, {{2, 0}, {0, 2}}} {
		onnx, err := testmodels.Linear("X", "Y", w, []float32{0, 0})
		if err != nil {
			return err
		}
		dir := filepath.Join(tmp, fmt.Sprintf("publish-v%d", v+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "model.onnx"), onnx, 0o644); err != nil {
			return err
		}
		res, _, err := cl.Publish(ctx, model, dir, adminclient.PublishOptions{Message: "bench/fleet"})
		if err != nil {
			return fmt.Errorf("publish v%d: %w", v+1, err)
		}
		if res.Version != uint64(v+1) {
			return fmt.Errorf("publish: got v%d, want v%d", res.Version, v+1)
		}
	}
	if _, _, err := cl.Rollout(ctx, model, adminclient.RolloutRequest{Version: 1, Reason: "bench/fleet: start"}); err != nil {
		return fmt.Errorf("rollout v1: %w", err)
	}

	// Baseline: the collector with the desired state and no agent.
	idleCPU := cpuRate(coll.PID(), eng.PID(), o.idle)
	fmt.Printf("idle collector: %.2f %% of a core over %s\n", idleCPU.coll*100, o.idle)

	// Real agents: an empty model directory; they download v1.
	tokenFile := filepath.Join(tmp, "agent.token")
	if err := os.WriteFile(tokenFile, []byte(agentToken+"\n"), 0o600); err != nil {
		return err
	}
	var reals []*agentproc.Agent
	defer func() {
		for _, a := range reals {
			_ = a.Stop()
		}
	}()
	for i := range o.realAgents {
		d := filepath.Join(tmp, fmt.Sprintf("agent-%d", i))
		md := filepath.Join(d, "models")
		if err := os.MkdirAll(md, 0o755); err != nil {
			return err
		}
		cfg := fmt.Sprintf("control:\n  collectors: [%q]\n  token_file: %s\n  labels: {real: \"true\"}\n", base, tokenFile)
		a, err := agentproc.Start(agentBin, md, filepath.Join(d, "data"), cfg)
		if err != nil {
			return fmt.Errorf("real agent %d: %w", i, err)
		}
		reals = append(reals, a)
	}

	// Simulated agents share one transport: two connections each (the
	// long-poll and the inventory).
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2*o.agents + 16, IdleConnTimeout: 5 * time.Minute}}
	simCtx, stopSim := context.WithCancel(ctx)
	sims := make([]*simAgent, o.agents)
	starting := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopSim()
	counters := &simCounters{}
	for i := range o.agents {
		a := &simAgent{id: fmt.Sprintf("sim-%05d", i), host: fmt.Sprintf("sim-host-%05d", i), base: base, token: agentToken,
			model: model, hc: hc, applyDelay: o.applyDelay, counters: counters}
		sims[i] = a
		a.run(simCtx, &wg, starting)
	}
	total := o.agents + o.realAgents
	start := time.Now()
	if err := waitConverged(ctx, cl, total, 1, 3*time.Minute); err != nil {
		return fmt.Errorf("initial v1 on every agent: %w (simulated errors: %d, last: %v)", err, counters.errors.Load(), counters.lastErr.Load())
	}
	fmt.Printf("all %d agents registered and serving v1 after %.1fs\n", total, time.Since(start).Seconds())

	var rounds []round
	for i := range o.rounds {
		r, err := measureRound(ctx, cl, sims, total, i%2 == 0, o.statusPoll)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		rounds = append(rounds, r)
		fmt.Printf("  round %d: %-12s → v%d: p50 %6.3fs  p100 %6.3fs (real agents p100 %s)\n", i+1, r.change, r.target,
			pct(r.allTimes(), 50).Seconds(), pct(r.allTimes(), 100).Seconds(), fmtMax(r.real))
		sleep(ctx, 2*time.Second) // let the last inventories land
	}

	// Heartbeat load: no change, every agent heartbeating.
	sleep(ctx, 2*time.Second)
	inv0, p0, e0 := counters.inventories.Load(), counters.polls304.Load(), counters.errors.Load()
	self0 := cpuSeconds(os.Getpid())
	hb := cpuRate(coll.PID(), eng.PID(), o.heartbeat)
	self := (cpuSeconds(os.Getpid()) - self0) / o.heartbeat.Seconds()
	inv, polls, errs := counters.inventories.Load()-inv0, counters.polls304.Load()-p0, counters.errors.Load()-e0
	rss := proc.StatusBytes(coll.PID(), "VmRSS")
	stopSim()

	printResults(o, rounds, idleCPU, hb, self, inv, polls, errs, rss)
	return nil
}

// startCollector runs drover-collector serve on the engine at chAddr
// (user:password@host:port) with
// an admin and an agent token of its own (auth.tokens_file).
func startCollector(bin string, adminConns int, dir, chAddr string) (p *proc.Proc, admin, adminToken, agentToken string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", "", err
	}
	adminToken, adminSum, err := auth.NewToken()
	if err != nil {
		return nil, "", "", "", err
	}
	agentToken, agentSum, err := auth.NewToken()
	if err != nil {
		return nil, "", "", "", err
	}
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "- name: bench-admin\n  role: admin\n  sha256: %s\n- name: bench-agent\n  role: agent\n  sha256: %s\n", adminSum, agentSum), 0o600); err != nil {
		return nil, "", "", "", err
	}
	cfg := filepath.Join(dir, "collector.yaml")
	yaml := "clickhouse:\n  database: drover_fleet\nauth:\n  tokens_file: " + tokens + "\n"
	if adminConns > 0 {
		yaml += fmt.Sprintf("admin:\n  max_connections: %d\n", adminConns)
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		return nil, "", "", "", err
	}
	admin = proc.FreeAddr()
	p, err = proc.Start(bin, []string{"serve", "--config", cfg, "--clickhouse", "clickhouse://" + chAddr + "/default",
		"--data-dir", dir, "--otlp-grpc-addr", proc.FreeAddr(), "--otlp-http-addr", proc.FreeAddr(), "--admin-addr", admin,
		"--no-gossip", "--log-level", "warn"}, filepath.Join(dir, "collector.log"))
	if err != nil {
		return nil, "", "", "", err
	}
	if err := p.WaitReady(2*time.Minute, func() bool { return proc.HTTPOK("http://" + admin + "/readyz") }); err != nil {
		p.Stop()
		return nil, "", "", "", fmt.Errorf("drover-collector: %w", err)
	}
	return p, admin, adminToken, agentToken, nil
}

// waitConverged polls the fleet status until total agents are converged
// on serving version v.
func waitConverged(ctx context.Context, cl *adminclient.Client, total int, v uint64, timeout time.Duration) error {
	deadline, printed := time.Now().Add(timeout), time.Now()
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, _, err := cl.FleetStatus(ctx, model)
		if err == nil {
			n := 0
			for _, a := range st.Agents {
				if a.State == adminclient.StateConverged && a.Serving != nil && *a.Serving == v {
					n++
				}
			}
			if n >= total {
				return nil
			}
			next := fmt.Sprintf("%d of %d converged on v%d (progress %+v)", n, total, v, st.Progress)
			if time.Since(printed) > 15*time.Second {
				fmt.Println("  waiting:", next)
				printed = time.Now()
			}
			last = next
		} else {
			last = err.Error()
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("after %s: %s", timeout, last)
}

// measureRound makes one change (rollout v2, or rollback to v1) and times
// each agent from the request to its first converged status on it.
func measureRound(ctx context.Context, cl *adminclient.Client, sims []*simAgent, total int, rollout bool, poll time.Duration) (round, error) {
	r := round{change: "rollback", target: 1}
	t0 := time.Now()
	var ds *adminclient.DesiredState
	var err error
	if rollout {
		r.change, r.target = "rollout", 2
		ds, _, err = cl.Rollout(ctx, model, adminclient.RolloutRequest{Version: 2, Reason: "bench/fleet"})
	} else {
		ds, _, err = cl.Rollback(ctx, model, adminclient.RollbackRequest{Reason: "bench/fleet"})
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w", r.change, err)
	}
	r.call = time.Since(t0)
	if ds.Serving != r.target {
		return r, fmt.Errorf("%s answered serving v%d, want v%d", r.change, ds.Serving, r.target)
	}
	seen := map[string]bool{}
	deadline := t0.Add(60 * time.Second)
	for len(seen) < total {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return r, fmt.Errorf("%s: %d of %d agents converged after 60s", r.change, len(seen), total)
		}
		sent := time.Now()
		st, _, err := cl.FleetStatus(ctx, model)
		at := time.Since(t0)
		r.statusReads = append(r.statusReads, time.Since(sent))
		if err == nil && st.Desired.Revision >= ds.Revision {
			for _, a := range st.Agents {
				if seen[a.Agent] || a.State != adminclient.StateConverged || a.Serving == nil || *a.Serving != r.target || a.Revision < ds.Revision {
					continue
				}
				seen[a.Agent] = true
				if strings.HasPrefix(a.Agent, "sim-") {
					r.sim = append(r.sim, at)
				} else {
					r.real = append(r.real, at)
				}
			}
		}
		sleep(ctx, poll)
	}
	for _, a := range sims {
		if at := a.acceptedAt(ds.Revision); !at.IsZero() {
			r.accepted = append(r.accepted, at.Sub(t0))
		}
	}
	return r, nil
}

func (r round) allTimes() []time.Duration { return append(slices.Clone(r.sim), r.real...) }

// pct is the p-th percentile (nearest rank) of ds; 0 for none.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func fmtMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", slices.Max(ds).Seconds())
}

// rates are CPU seconds per second.
type rates struct{ coll, ch float64 }

// cpuRate measures the CPU time per second of the collector and the
// ClickHouse engine over d.
func cpuRate(collPID, chPID int, d time.Duration) rates {
	c0, h0, t0 := cpuSeconds(collPID), cpuSeconds(chPID), time.Now()
	time.Sleep(d)
	el := time.Since(t0).Seconds()
	return rates{coll: (cpuSeconds(collPID) - c0) / el, ch: (cpuSeconds(chPID) - h0) / el}
}

func printResults(o options, rounds []round, idle, hb rates, self float64, inv, polls, errs int64, rss int64) {
	fmt.Println()
	fmt.Printf("convergence: change → every agent (%d simulated, %d real) converged in the fleet status (status read every %s;\n  an agent's time is when the first status read showing it converged returned; status read: median duration of one read;\n  sim accepted: when the collector answered 204 to each simulated agent's inventory at the new revision)\n",
		o.agents, o.realAgents, o.statusPoll)
	fmt.Printf("  %-5s %-9s %-6s %9s %9s %9s %10s %12s %22s\n", "round", "change", "target", "API call", "p50", "p100", "real p100", "status read", "sim accepted p50/p100")
	byChange := map[string][]time.Duration{}
	p50s := map[string][]time.Duration{}
	for i, r := range rounds {
		all := r.allTimes()
		fmt.Printf("  %-5d %-9s v%-5d %8.3fs %8.3fs %8.3fs %10s %11.3fs %22s\n", i+1, r.change, r.target, r.call.Seconds(),
			pct(all, 50).Seconds(), pct(all, 100).Seconds(), fmtMax(r.real), pct(r.statusReads, 50).Seconds(),
			fmt.Sprintf("%.3fs/%.3fs", pct(r.accepted, 50).Seconds(), pct(r.accepted, 100).Seconds()))
		byChange[r.change] = append(byChange[r.change], pct(all, 100))
		p50s[r.change] = append(p50s[r.change], pct(all, 50))
	}
	for _, c := range []string{"rollback", "rollout"} {
		if len(byChange[c]) == 0 {
			continue
		}
		fmt.Printf("  %-9s over %d rounds: p50 (median of rounds) %.3fs, p100 (worst round) %.3fs  [target p100 ≤ 5s: %s]\n",
			c, len(byChange[c]), pct(p50s[c], 50).Seconds(), slices.Max(byChange[c]).Seconds(), verdict(slices.Max(byChange[c]) <= 5*time.Second))
	}
	fmt.Println()
	fmt.Printf("heartbeat load: %d agents, no change, %s (collector's heartbeat interval; long-polls of 30s)\n", o.agents+o.realAgents, o.heartbeat)
	fmt.Printf("  simulated requests: %.0f inventories/s, %.0f long-polls ended 304/s, %d errors\n",
		float64(inv)/o.heartbeat.Seconds(), float64(polls)/o.heartbeat.Seconds(), errs)
	fmt.Printf("  %-44s %8s %12s\n", "", "idle", "heartbeats")
	fmt.Printf("  %-44s %7.2f%% %11.2f%%\n", "drover-collector CPU (% of one core)", idle.coll*100, hb.coll*100)
	fmt.Printf("  %-44s %7.2f%% %11.2f%%\n", "ClickHouse engine CPU (not the collector's)", idle.ch*100, hb.ch*100)
	fmt.Printf("  %-44s %8s %11.2f%%\n", "this process (simulated agents; not counted)", "", self*100)
	fmt.Printf("  collector RSS %.0f MiB\n", float64(rss)/(1<<20))
	fmt.Printf("  collector heartbeat load %.2f %% of a core (%.2f %% above idle; ratio to idle %.1f×)  [target ≤ 10%%: %s]\n",
		hb.coll*100, (hb.coll-idle.coll)*100, hb.coll/max(idle.coll, 1e-9), verdict(hb.coll <= 0.10))
	fmt.Println()
	fmt.Println("anchors (not measured here):")
	fmt.Println("  - a Kubernetes DaemonSet rolling update replaces pods node by node (maxUnavailable, default 1;")
	fmt.Println("    each new pod pulls, starts and passes readiness): minutes for a fleet, not seconds.")
	fmt.Println("  - TF Serving reloads its model config only when it polls the file, every")
	fmt.Println("    --model_config_file_poll_wait_seconds (0, no polling, by default), and each server")
	fmt.Println("    polls on its own: no fleet status, no rollback command.")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// cpuSeconds is proc.CPUSeconds, -1 when the process cannot be read.
func cpuSeconds(pid int) float64 {
	c, err := proc.CPUSeconds(pid)
	if err != nil {
		return -1
	}
	return c
}
