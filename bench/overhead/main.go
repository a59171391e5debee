// Command overhead measures what drover-agent adds to ONNX Runtime: the raw
// runtime's Run in this process versus the agent (a separate process) over
// gRPC (raw contents), REST with the binary extension and REST JSON, on a
// tiny tabular classifier and on a 4 MB model, at 1 and at N concurrent
// clients. It prints p50/p99 latency, throughput, the added p50 and the
// throughput ratio against the raw runtime, and the targets.
//
// It also reads the CPU each request costs: the agent's (from /proc) and
// this process's (the clients', or the raw runtime's compute), so that
// "beyond" is the agent's CPU per request beyond the transport floor (the
// agent's CPU per empty RPC of the same transport) and the compute (the
// raw runtime's CPU per request); and the ceiling the machine allows,
// cores / (CPU per empty RPC, clients and agent, + CPU per raw run), with
// Drover's throughput as a share of it. On a loaded machine the cores this
// run gets are not all of them, so the share is also given per CPU spent:
// (floor + compute) / Drover's CPU per request, which is the throughput
// share when the run is CPU-bound. Last, open-loop runs at fixed rates
// (light load) give the p50 of the raw runtime's run, of the empty RPCs
// and of Drover's request, each timed from its send; what Drover adds at a
// rate is its p50 less the empty RPC's and the raw run's at that rate (a
// run after an idle gap is slower than back to back: cold caches, a
// sleeping CPU). With one client, the empty RPCs are also measured after
// an idle gap as long as the compute ("+gap"), the agent's idle time before
// each inference request: "bey gap" is the agent's CPU beyond that floor
// and the compute, which tells the transport's cost after idling (wake-ups
// of parked threads, cold caches) from the agent's own work.
//
// With -rounds N every path is measured N times, the paths in turn, and
// each figure is the median over the rounds.
//
// -agent-gomaxprocs N, -agent-adaptive-gomaxprocs B, -agent-timer-slack D
// and -agent-sysmon-timer-slack D run the agent with process.gomaxprocs,
// process.adaptive_gomaxprocs, process.timer_slack and
// process.sysmon_timer_slack set in its config file (an operator's
// settings; 0 and "" keep the agent's defaults), to compare with the
// default in another run. -closed=false measures only the open-loop rows
// (to profile the agent at light load).
//
//	go run ./bench/overhead [-duration 5s] [-clients 4] [-rounds 1] [-agent-gomaxprocs 0] [-agent-adaptive-gomaxprocs true] [-agent-timer-slack 250us] [-agent-sysmon-timer-slack 2ms] [-rates 100,300,1000] [-closed=true] [-debug-addr 127.0.0.1:6060]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/grpc"

	"github.com/drover-ml/drover/bench/internal/agentproc"
	"github.com/drover-ml/drover/bench/internal/proc"
	"github.com/drover-ml/drover/bench/internal/stats"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testmodels"
)

type model struct {
	name     string
	onnx     []byte
	in, out  string
	features int
}

type result struct {
	lat        []time.Duration
	throughput float64
	// cpuSelf and cpuAgent are CPU seconds per request of this process
	// (clients, or the raw runtime) and of the agent.
	cpuSelf, cpuAgent float64
}

// cpu is the CPU per request of both processes.
func (r result) cpu() float64 { return r.cpuSelf + r.cpuAgent }

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	clients := flag.Int("clients", 4, "concurrent clients for the throughput runs")
	var proc agentproc.Process
	agentproc.DefineFlags(&proc, true)
	rounds := flag.Int("rounds", 1, "measure every path this many times, the paths in turn, and report each figure's median (3 on a noisy machine)")
	debugAddr := flag.String("debug-addr", "", "start the agent with --debug-addr (pprof) on this address, to profile it during the runs")
	rates := flag.String("rates", "100,300,1000", "open-loop request rates (req/s) for the light-load rows; empty for none")
	only := flag.String("models", "tiny,big", "the models to measure (tiny, big), comma-separated")
	closed := flag.Bool("closed", true, "measure the closed-loop rows (false: only the open-loop ones, e.g. to profile the agent at light load)")
	flag.Parse()
	var rs []int
	for _, f := range strings.Split(*rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			fmt.Fprintf(os.Stderr, "overhead: -rates: %q is not a positive integer\n", f)
			os.Exit(2)
		}
		rs = append(rs, r)
	}
	names := strings.Split(*only, ",")
	for _, m := range names {
		if m != "tiny" && m != "big" {
			fmt.Fprintf(os.Stderr, "overhead: -models: %q is not a model (tiny, big)\n", m)
			os.Exit(2)
		}
	}
	if *rounds < 1 {
		fmt.Fprintf(os.Stderr, "overhead: -rounds must be >= 1, got %d\n", *rounds)
		os.Exit(2)
	}
	if err := run(*duration, *clients, *rounds, proc, rs, *debugAddr, names, *closed); err != nil {
		fmt.Fprintln(os.Stderr, "overhead:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, n, rounds int, ac agentproc.Process, rates []int, debugAddr string, only []string, closedLoop bool) error {
	if err := runtime.Init(""); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "drover-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	rng := rand.New(rand.NewSource(1))
	w := make([][]float32, 8)
	for i := range w {
		w[i] = []float32{rng.Float32(), rng.Float32(), rng.Float32()}
	}
	tiny, err := testmodels.Classifier(w, []float32{0.1, 0.2, 0.3})
	if err != nil {
		return err
	}
	big, err := testmodels.Big(1000, 1000, 7)
	if err != nil {
		return err
	}
	models := []model{
		{"tiny", tiny, testmodels.ClassifierInput, testmodels.ClassifierProbabilities, 8},
		{"big", big, testmodels.BigInput, testmodels.BigOutput, 1000},
	}
	store := filepath.Join(tmp, "models")
	for _, m := range models {
		if _, err := testmodels.WriteVersion(store, m.name, 1, m.onnx); err != nil {
			return err
		}
	}
	bin, err := agentproc.Build(tmp)
	if err != nil {
		return err
	}
	conf := "runtime: {intra_op_threads: 1, inter_op_threads: 1}\n"
	conf += ac.YAML()
	procs := ", agent " + ac.String()
	agent, err := agentproc.Start(bin, store, filepath.Join(tmp, "agent"), conf, agentproc.DebugFlag(debugAddr)...)
	if err != nil {
		return err
	}
	defer agent.Stop()
	gc, conn, err := agent.Client()
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	cpuAgent := func() float64 { c, _ := agent.CPUSeconds(); return c }
	ncpu := goruntime.NumCPU()

	fmt.Printf("drover-agent overhead vs raw ONNX Runtime %s (intra/inter-op threads 1), %s per run, batch 1, %d CPUs%s\n\n", runtime.Version(), d, ncpu, procs)
	fmt.Printf("%-5s %-12s %3s %9s %9s %9s %11s %8s %9s %9s %9s %9s %7s %7s %9s\n", "model", "path", "c", "p50 µs", "p99 µs", "req/s", "added p50", "tput %",
		"cpu µs", "agent µs", "beyond", "ceiling", "share", "cpu sh", "bey gap")
	type openRow struct {
		model, path string
		rate        int
		p50, p99    time.Duration
		achieved    float64
	}
	var open []openRow
	var summary []string
	for _, m := range models {
		if !slices.Contains(only, m.name) {
			continue
		}
		x := make([]float32, m.features)
		for i := range x {
			x[i] = rng.Float32()
		}
		raw, err := rawRunner(m, x)
		if err != nil {
			return err
		}
		paths := []struct {
			name string
			fn   func() error
		}{
			{"raw-onnxrt", raw},
			{"grpc-noop", grpcNoop(gc)},
			{"rest-noop", restNoop(hc, agent.HTTPAddr)},
			{"grpc-raw", grpcRunner(gc, m, x)},
			{"rest-binary", restBinaryRunner(hc, agent.HTTPAddr, m, x)},
			{"rest-json", restJSONRunner(hc, agent.HTTPAddr, m, x)},
		}
		var rawP50 time.Duration
		clientCounts := []int{1, n}
		if !closedLoop {
			clientCounts = nil
		}
		for _, c := range clientCounts {
			// Every path is measured once per round, the paths in turn, so
			// that a slow minute of the shared machine lands on one round of
			// each rather than on all of one path; each figure is the
			// median over the rounds (latencies: all requests of all rounds).
			runs := map[string][]result{}
			for round := 0; round < rounds; round++ {
				var roundRaw time.Duration
				for _, p := range paths {
					if round == 0 {
						if err := p.fn(); err != nil { // warm up and check
							return fmt.Errorf("%s %s: %w", m.name, p.name, err)
						}
					}
					r := measure(p.fn, c, d, cpuAgent)
					runs[p.name] = append(runs[p.name], r)
					if p.name == "raw-onnxrt" {
						roundRaw = stats.Quantile(r.lat, 0.5)
					}
					if c == 1 && strings.HasSuffix(p.name, "-noop") {
						// The same empty RPC after an idle gap as long as
						// the compute: what the transport costs the agent
						// when it has been idle for that long, as its
						// threads are while a request computes.
						runs[p.name+"+gap"] = append(runs[p.name+"+gap"], measure(afterGap(p.fn, roundRaw), 1, d, cpuAgent))
					}
				}
			}
			base := medianResult(runs["raw-onnxrt"])
			floors := map[string]result{}
			gapFloors := map[string]result{}
			for _, p := range paths {
				r := medianResult(runs[p.name])
				p50, p99 := stats.Quantile(r.lat, 0.5), stats.Quantile(r.lat, 0.99)
				if p.name == "raw-onnxrt" {
					if c == 1 {
						rawP50 = p50
					}
					fmt.Printf("%-5s %-12s %3d %9.1f %9.1f %11.0f %11s %8s %9.1f %9s\n", m.name, p.name, c, stats.Micros(p50), stats.Micros(p99), r.throughput, "-", "100", r.cpuSelf*1e6, "-")
					continue
				}
				added := stats.Micros(p50) - stats.Micros(stats.Quantile(base.lat, 0.5))
				line := fmt.Sprintf("%-5s %-12s %3d %9.1f %9.1f %11.0f %+10.1fµs %7.0f%% %9.1f %9.1f", m.name, p.name, c, stats.Micros(p50), stats.Micros(p99), r.throughput, added, 100*r.throughput/base.throughput, r.cpu()*1e6, r.cpuAgent*1e6)
				if strings.HasSuffix(p.name, "-noop") {
					floors[strings.TrimSuffix(p.name, "-noop")] = r
					fmt.Println(line)
					if gr, ok := runs[p.name+"+gap"]; ok {
						g := medianResult(gr)
						gapFloors[strings.TrimSuffix(p.name, "-noop")] = g
						fmt.Printf("%-5s %-12s %3d %9s %9s %11.0f %11s %8s %9s %9.1f\n", m.name, p.name+"+gap", c, "-", "-", g.throughput, "-", "-", "-", g.cpuAgent*1e6)
					}
					continue
				}
				floor := floors[strings.SplitN(p.name, "-", 2)[0]]
				// The agent's CPU per request beyond its CPU per empty RPC
				// and the compute; the ceiling is what the cores allow when
				// each request costs the empty RPC (both sides) and the raw
				// run; the CPU share is the same ratio per CPU spent.
				beyond := (r.cpuAgent - floor.cpuAgent - base.cpuSelf) * 1e6
				ceiling := float64(ncpu) / (floor.cpu() + base.cpuSelf)
				share := 100 * r.throughput / ceiling
				cpuShare := 100 * (floor.cpu() + base.cpuSelf) / r.cpu()
				gapBeyond := ""
				if g, ok := gapFloors[strings.SplitN(p.name, "-", 2)[0]]; ok {
					gapBeyond = fmt.Sprintf(" %+9.1f", (r.cpuAgent-g.cpuAgent-base.cpuSelf)*1e6)
				}
				fmt.Printf("%s %+9.1f %9.0f %6.0f%% %6.0f%%%s\n", line, beyond, ceiling, share, cpuShare, gapBeyond)
				if p.name != "rest-json" {
					summary = append(summary, fmt.Sprintf("%-5s %-12s %3d  beyond %+6.1f µs (%s)  cpu share %3.0f%% (%s)%s", m.name, p.name, c, beyond, verdict(beyond <= 40), cpuShare, verdict(cpuShare >= 85), gapBeyond))
				}
			}
		}
		for _, rate := range rates {
			for _, p := range paths[0:5] {
				lat, achieved := openLoop(p.fn, rate, d)
				open = append(open, openRow{m.name, p.name, rate, stats.Quantile(lat, 0.5), stats.Quantile(lat, 0.99), achieved})
			}
		}
		if len(rates) > 0 {
			fmt.Printf("\nopen loop, %s: p50 of the raw runtime, the empty RPCs and Drover's request at fixed rates\n", m.name)
			fmt.Printf("(closed-loop compute p50 %.1f µs; beyond: p50 - the empty RPC's p50 - the raw runtime's p50, both at the same rate)\n", stats.Micros(rawP50))
			fmt.Printf("%-5s %-12s %6s %9s %9s %9s %9s\n", "model", "path", "req/s", "sent/s", "p50 µs", "p99 µs", "beyond")
			floor := map[int]time.Duration{}
			compute := map[int]time.Duration{}
			for _, o := range open {
				if o.model != m.name {
					continue
				}
				if o.path == "raw-onnxrt" || strings.HasSuffix(o.path, "-noop") {
					if o.path == "raw-onnxrt" {
						compute[o.rate] = o.p50
					} else {
						floor[o.rate*10+transportIndex(o.path)] = o.p50
					}
					fmt.Printf("%-5s %-12s %6d %9.0f %9.1f %9.1f\n", o.model, o.path, o.rate, o.achieved, stats.Micros(o.p50), stats.Micros(o.p99))
					continue
				}
				beyond := stats.Micros(o.p50) - stats.Micros(floor[o.rate*10+transportIndex(o.path)]) - stats.Micros(compute[o.rate])
				fmt.Printf("%-5s %-12s %6d %9.0f %9.1f %9.1f %+9.1f\n", o.model, o.path, o.rate, o.achieved, stats.Micros(o.p50), stats.Micros(o.p99), beyond)
				summary = append(summary, fmt.Sprintf("%-5s %-12s %4d/s open loop p50 beyond floor+compute %+6.1f µs (%s)", o.model, o.path, o.rate, beyond, verdict(beyond <= 40)))
			}
			fmt.Println()
		}
	}
	fmt.Println("\ngrpc-noop / rest-noop are the transport floor on this machine: the agent's ServerLive RPC and")
	fmt.Println("GET /v2/health/live, which do no work; the rows below them show what inference adds on top.")
	fmt.Println("cpu µs: CPU per request of clients and agent (of this process for raw-onnxrt: the compute); agent µs: the agent's;")
	fmt.Println("beyond: agent µs - the empty RPC's agent µs - the compute; ceiling: CPUs / (empty RPC's cpu µs + compute);")
	fmt.Println("share: req/s / ceiling (low when other processes hold CPUs); cpu sh: (empty RPC's cpu µs + compute) / cpu µs.")
	fmt.Println("+gap: the empty RPC sent after a busy wait in the client as long as the compute (the agent idles that long before")
	fmt.Println("each request, as its transport does while a request computes); bey gap (1 client): agent µs - that row's agent µs - compute.")
	fmt.Println("targets: added p50 <= 60µs gRPC, <= 80µs REST binary, <= 120µs REST JSON; throughput >= 75% of raw;")
	fmt.Println("issue 18: beyond <= 40 µs and share >= 85% (gRPC raw, REST binary; tiny, big; 1 and N clients);")
	fmt.Println("open-loop p50 <= empty RPC p50 + compute + 40 µs at each rate (compute: the raw runtime's p50 at that rate)")
	fmt.Println()
	for _, l := range summary {
		fmt.Println(l)
	}
	return nil
}

// medianResult is the median of each figure over rounds; its latencies are
// every round's.
func medianResult(rs []result) result {
	var out result
	for _, r := range rs {
		out.lat = append(out.lat, r.lat...)
	}
	out.throughput = stats.MedianOf(rs, func(r result) float64 { return r.throughput })
	out.cpuSelf = stats.MedianOf(rs, func(r result) float64 { return r.cpuSelf })
	out.cpuAgent = stats.MedianOf(rs, func(r result) float64 { return r.cpuAgent })
	return out
}

// measure runs fn from c goroutines for d and records every latency and
// the CPU per request of this process and of the agent (agentCPU).
func measure(fn func() error, c int, d time.Duration, agentCPU func() float64) result {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	self0, agent0 := proc.SelfCPUSeconds(), agentCPU()
	start := time.Now()
	var errs int
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			e := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := fn(); err != nil {
					e++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	self, agent := proc.SelfCPUSeconds()-self0, agentCPU()-agent0
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d errors\n", errs)
	}
	r := result{lat: all, throughput: float64(len(all)) / el}
	if n := float64(len(all)); n > 0 {
		r.cpuSelf, r.cpuAgent = self/n, agent/n
	}
	return r
}

// openLoop sends requests at a fixed rate for d, each in its own goroutine
// at its scheduled time, whether or not earlier ones have answered, and
// returns each latency, counted from its send, and the rate achieved.
func openLoop(fn func() error, rate int, d time.Duration) ([]time.Duration, float64) {
	interval := time.Second / time.Duration(rate)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	sent, errs := 0, 0
	for next := start; next.Sub(start) < d; next = next.Add(interval) {
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			// From the send, not from the tick: the tick's lateness (the
			// sleep's wake-up, the goroutine's start) is this client's, and
			// at these rates it is larger than what is measured.
			at := time.Now()
			err := fn()
			l := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, l)
		}()
	}
	el := time.Since(start).Seconds()
	wg.Wait()
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d errors\n", errs)
	}
	return lat, float64(sent) / el
}

// afterGap returns fn preceded by a busy wait of gap in this process: the
// agent idles that long before each request, as its transport does while a
// request computes (a sleep would wait a timer tick, far longer).
func afterGap(fn func() error, gap time.Duration) func() error {
	return func() error {
		for t0 := time.Now(); time.Since(t0) < gap; {
		}
		return fn()
	}
}

// transportIndex tells the two transports apart in the open-loop floors.
func transportIndex(path string) int {
	if strings.HasPrefix(path, "grpc") {
		return 0
	}
	return 1
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// rawRunner is the baseline: what a program embedding ONNX Runtime does per
// request (wrap the input, run, read the output).
func rawRunner(m model, x []float32) (func() error, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	outs := []string{m.out}
	if m.name == "tiny" {
		outs = []string{testmodels.ClassifierLabel, testmodels.ClassifierProbabilities}
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(m.onnx, []string{m.in}, outs, opts)
	if err != nil {
		return nil, err
	}
	return func() error {
		in, err := ort.NewTensor(ort.NewShape(1, int64(len(x))), x)
		if err != nil {
			return err
		}
		defer in.Destroy()
		o := make([]ort.Value, len(outs))
		if err := s.Run([]ort.Value{in}, o); err != nil {
			return err
		}
		for _, v := range o {
			v.Destroy()
		}
		return nil
	}, nil
}

func grpcRunner(c pb.GRPCInferenceServiceClient, m model, x []float32) func() error {
	raw, _ := oip.AppendRaw(nil, x)
	req := &pb.ModelInferRequest{
		ModelName:        m.name,
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: m.in, Datatype: "FP32", Shape: []int64{1, int64(len(x))}}},
		RawInputContents: [][]byte{raw},
	}
	return func() error {
		_, err := c.ModelInfer(context.Background(), req, grpc.WaitForReady(true))
		return err
	}
}

func grpcNoop(c pb.GRPCInferenceServiceClient) func() error {
	return func() error {
		_, err := c.ServerLive(context.Background(), &pb.ServerLiveRequest{})
		return err
	}
}

func restNoop(hc *http.Client, addr string) func() error {
	url := "http://" + addr + "/v2/health/live"
	return func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
}

func post(hc *http.Client, url string, body []byte, hdr map[string]string) error {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

func restBinaryRunner(hc *http.Client, addr string, m model, x []float32) func() error {
	raw, _ := oip.AppendRaw(nil, x)
	hdr := fmt.Sprintf(`{"inputs":[{"name":%q,"shape":[1,%d],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, m.in, len(x), len(raw))
	body := append([]byte(hdr), raw...)
	h := map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr)), "Content-Type": "application/octet-stream"}
	url := "http://" + addr + "/v2/models/" + m.name + "/infer"
	return func() error { return post(hc, url, body, h) }
}

func restJSONRunner(hc *http.Client, addr string, m model, x []float32) func() error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"inputs":[{"name":%q,"shape":[1,%d],"datatype":"FP32","data":[`, m.in, len(x))
	for i, v := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	b.WriteString("]}]}")
	body := b.Bytes()
	h := map[string]string{"Content-Type": "application/json"}
	url := "http://" + addr + "/v2/models/" + m.name + "/infer"
	return func() error { return post(hc, url, body, h) }
}
