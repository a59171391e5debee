// Command monitoring measures what live monitoring costs the serving path:
// drover-agent's throughput on a tiny classifier (-model big: 1000 inputs and
// 1000 outputs, so a sampled request observes and ships 2000 values) with
// telemetry off, then with telemetry on (exporting to an OTLP receiver in
// this process) and
// sampling 0 %, 5 % and 100 %, each run against a fresh agent process with
// the same closed-loop gRPC load; and the primary path's p99 without and
// with a 100 % shadow. It prints each run's throughput and its loss
// against telemetry off (target: ≤ 5 % at 5 % sampling), the agent's CPU
// per request and its increase against telemetry off (steadier than the
// throughput on a shared machine), and the p99 ratio (target: within
// noise).
//
// -agent-timer-slack D and -agent-sysmon-timer-slack D run the agents with
// process.timer_slack and process.sysmon_timer_slack D ("0s": the slack
// they started with, timer_slack's for sysmon; empty: the agent's default).
//
//	go run ./bench/monitoring [-duration 5s] [-clients 4] [-model tiny|big] [-agent-timer-slack 250us] [-agent-sysmon-timer-slack 2ms]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/bench/internal/agentproc"
	"github.com/drover-ml/drover/bench/internal/stats"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testmodels"
)

type sinkMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
}

func (*sinkMetrics) Export(context.Context, pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	return pmetricotlp.NewExportResponse(), nil
}

type sinkLogs struct {
	plogotlp.UnimplementedGRPCServer
}

func (*sinkLogs) Export(context.Context, plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	return plogotlp.NewExportResponse(), nil
}

func main() {
	d := flag.Duration("duration", 5*time.Second, "length of each run")
	clients := flag.Int("clients", 4, "concurrent clients")
	rounds := flag.Int("rounds", 3, "rounds of all throughput runs, interleaved; the median counts")
	rate := flag.Int("rate", 800, "open-loop request rate of the shadow p99 runs")
	var proc agentproc.Process
	agentproc.DefineFlags(&proc, false)
	model := flag.String("model", "tiny", "tiny (an 8-feature classifier) or big (1000 inputs, 1000 outputs: a sampled request observes and ships 2000 values)")
	flag.Parse()
	switch *model {
	case "tiny":
	case "big":
		bench = benchModel{name: "big", input: testmodels.BigInput, features: 1000}
	default:
		fmt.Fprintf(os.Stderr, "monitoring: -model %q: want tiny or big\n", *model)
		os.Exit(2)
	}
	if err := run(*d, *clients, *rounds, *rate, proc); err != nil {
		fmt.Fprintln(os.Stderr, "monitoring:", err)
		os.Exit(1)
	}
}

type result struct {
	tput float64
	n    int // requests answered
}

// benchModel is the model under load: its name in the store, its input
// and its width.
type benchModel struct {
	name, input string
	features    int
}

var bench = benchModel{name: "clf", input: testmodels.ClassifierInput, features: 8}

// inferRequest is one request to the model under load, with a fresh id.
func inferRequest(raw []byte) *pb.ModelInferRequest {
	return &pb.ModelInferRequest{
		ModelName: bench.name, Id: evaluate.NewRequestID(),
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: bench.input, Datatype: "FP32", Shape: []int64{1, int64(bench.features)}}},
		RawInputContents: [][]byte{raw},
	}
}

// inputRaw is the raw contents of the input every request sends.
func inputRaw() []byte {
	x := make([]float32, bench.features)
	for i := range x {
		x[i] = 0.1 * float32(i%10+1)
	}
	raw, _ := oip.AppendRaw(nil, x)
	return raw
}

func run(d time.Duration, clients, rounds, rate int, ap agentproc.Process) error {
	tmp, err := os.MkdirTemp("", "drover-monbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rng := rand.New(rand.NewSource(3))
	w := make([][]float32, 8)
	for i := range w {
		w[i] = []float32{rng.Float32(), rng.Float32(), rng.Float32()}
	}
	store := filepath.Join(tmp, "models")
	for v := int64(1); v <= 2; v++ {
		m, err := testmodels.Classifier(w, []float32{0.1 * float32(v), 0.2, 0.3})
		if bench.name == "big" {
			m, err = testmodels.Big(1000, 1000, v)
		}
		if err != nil {
			return err
		}
		if _, err := testmodels.WriteVersion(store, bench.name, v, m); err != nil {
			return err
		}
	}
	bin, err := agentproc.Build(tmp)
	if err != nil {
		return err
	}
	// An OTLP receiver that accepts and discards, so telemetry really exports.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(gs, &sinkMetrics{})
	plogotlp.RegisterGRPCServer(gs, &sinkLogs{})
	go gs.Serve(ln)
	defer gs.Stop()

	base := "runtime: {intra_op_threads: 1, inter_op_threads: 1}\nmodels: {" + bench.name + ": {policy: {latest: 1%s}}}\n"
	tel := fmt.Sprintf("telemetry: {endpoint: %q, interval: 1s}\n", ln.Addr().String())
	runs := []struct{ name, cfg string }{
		{"telemetry off", "telemetry: {disabled: true}\nmonitoring: {rate: 0}\n" + fmt.Sprintf(base, "")},
		{"telemetry on, sampling 0%", tel + "monitoring: {rate: 0}\n" + fmt.Sprintf(base, "")},
		{"telemetry on, sampling 5%", tel + "monitoring: {rate: 0.05}\n" + fmt.Sprintf(base, "")},
		{"telemetry on, sampling 100%", tel + "monitoring: {rate: 1}\n" + fmt.Sprintf(base, "")},
	}
	start := func(i int, cfg string) (*agentproc.Agent, error) {
		return agentproc.Start(bin, store, filepath.Join(tmp, fmt.Sprintf("agent-%d", i)), cfg+ap.YAML())
	}
	what := "tiny classifier"
	if bench.name == "big" {
		what = "1000-input, 1000-output model"
	}
	fmt.Printf("monitoring cost on drover-agent: "+what+", gRPC, %d closed-loop clients, %s per run, median of %d interleaved rounds, agent %s\n\n", clients, d, rounds, ap)
	// Per run: throughput, and the agent's CPU per request (from /proc),
	// which on a shared, noisy machine varies less than the throughput:
	// when the agent is CPU-bound, its CPU per request against telemetry
	// off is the throughput it loses. This process's CPU (the clients and
	// the OTLP receiver, which in production is the collector, elsewhere)
	// is not counted there.
	tputs := make([][]float64, len(runs))
	cpus := make([][]float64, len(runs))
	for r := 0; r < rounds; r++ {
		for i, run := range runs {
			agent, err := start(i, run.cfg)
			if err != nil {
				return err
			}
			cpu0, _ := agent.CPUSeconds()
			res, err := load(agent.GRPCAddr, clients, d)
			cpu1, _ := agent.CPUSeconds()
			agent.Stop()
			if err != nil {
				return fmt.Errorf("%s: %w", run.name, err)
			}
			tputs[i] = append(tputs[i], res.tput)
			if res.n > 0 {
				cpus[i] = append(cpus[i], (cpu1-cpu0)/float64(res.n)*1e6)
			}
		}
	}
	fmt.Printf("%-30s %10s %9s %13s %9s   %s\n", "run", "req/s", "vs off", "agent cpu µs", "vs off", "rounds (req/s; agent cpu µs/req)")
	offT, offC := stats.Median(tputs[0]), stats.Median(cpus[0])
	for i, run := range runs {
		m, c := stats.Median(tputs[i]), stats.Median(cpus[i])
		fmt.Printf("%-30s %10.0f %+8.1f%% %13.1f %+8.1f%%   %.0f; %.1f\n", run.name, m, 100*(m/offT-1), c, 100*(c/offC-1), tputs[i], cpus[i])
	}
	fmt.Println("(agent cpu µs: the agent's CPU per request; its increase against telemetry off is the throughput a CPU-bound agent loses)")
	// A sampled request's own cost from the 100 % and 0 % rows (the same
	// telemetry; every request sampled, or none): a difference of two
	// large numbers, which this machine's noise moves far less than the
	// few per cent between the 5 % and off rows. At a rate r the agent
	// spends r times that more per request.
	perSample := stats.Median(cpus[3]) - stats.Median(cpus[1])
	fmt.Printf("a sampled request costs the agent %.1f µs more (100%% row - 0%% row): at 5%% sampling %.1f µs per request, %.1f%% of telemetry off's %.1f µs\n",
		perSample, 0.05*perSample, 100*0.05*perSample/offC, offC)

	// Shadow: the primary's latency under a fixed open-loop rate (below
	// saturation, as in production), without and with a 100% shadow.
	var p99s [2]time.Duration
	var sent [2]int
	for i, cfg := range []string{tel + "monitoring: {rate: 0.05}\n" + fmt.Sprintf(base, ""), tel + "monitoring: {rate: 0.05}\n" + fmt.Sprintf(base, ", shadow: {version: 1, percent: 100}")} {
		agent, err := start(10+i, cfg)
		if err != nil {
			return err
		}
		lat, err := openLoop(agent.GRPCAddr, rate, 2*d)
		agent.Stop()
		if err != nil {
			return err
		}
		p99s[i], sent[i] = stats.Quantile(lat, 0.99), len(lat)
	}
	fmt.Printf("\nshadow 100%% at %d req/s open loop: primary p99 %.1f µs vs %.1f µs without shadow (ratio %.2f; %d and %d requests)\n",
		rate, stats.Micros(p99s[1]), stats.Micros(p99s[0]), float64(p99s[1])/float64(p99s[0]), sent[1], sent[0])
	fmt.Println("targets: throughput loss <= 5% at 5% sampling; shadow must not move the primary p99 beyond noise")
	return nil
}

// openLoop sends rate requests per second for d, each with a fresh id,
// whatever the latency, and returns the latencies.
func openLoop(addr string, rate int, d time.Duration) ([]time.Duration, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := pb.NewGRPCInferenceServiceClient(conn)
	raw := inputRaw()
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	for t := range tick.C {
		if t.After(end) {
			break
		}
		wg.Add(1)
		go func(sent time.Time) {
			defer wg.Done()
			req := inferRequest(raw)
			_, err := c.ModelInfer(context.Background(), req, grpc.WaitForReady(true))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			lat = append(lat, time.Since(sent))
		}(t)
	}
	wg.Wait()
	return lat, firstErr
}

// load runs closed-loop clients, each request with a fresh id (so sampling
// and shadowing pick their shares), and returns throughput and latency.
func load(addr string, clients int, d time.Duration) (result, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	c := pb.NewGRPCInferenceServiceClient(conn)
	raw := inputRaw()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<15)
			for ctx.Err() == nil {
				req := inferRequest(raw)
				t0 := time.Now()
				if _, err := c.ModelInfer(context.Background(), req, grpc.WaitForReady(true)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	el := time.Since(start).Seconds()
	return result{tput: float64(len(all)) / el, n: len(all)}, nil
}
