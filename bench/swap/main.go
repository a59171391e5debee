// Command swap measures hot swaps under load: drover-agent (a separate
// process) serves a model while a constant-rate gRPC load runs and N new
// versions are published one after another by atomic rename. It reports
// failed requests (target 0), p99 during swaps ÷ steady p99 (target ≤ 1.5),
// publish-to-serving latency p50/p95 (target p95 ≤ 200 ms + the model's load
// time, which is measured separately with the raw runtime), and the agent's
// RSS before and after (target: no growth beyond noise).
//
// -agent-gomaxprocs N, -agent-adaptive-gomaxprocs B, -agent-timer-slack D
// and -agent-sysmon-timer-slack D run the agent with process.gomaxprocs,
// process.adaptive_gomaxprocs, process.timer_slack and
// process.sysmon_timer_slack set in its config file (0 and "" keep the
// agent's defaults), -debug-addr starts it with pprof on that
// address (to take an execution trace during the swaps).
//
//	go run ./bench/swap [-versions 100] [-rate 300] [-dim 512] [-agent-gomaxprocs 0] [-agent-adaptive-gomaxprocs true] [-agent-timer-slack 250us] [-agent-sysmon-timer-slack 2ms] [-debug-addr 127.0.0.1:6060]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/bench/internal/agentproc"
	"github.com/drover-ml/drover/bench/internal/stats"
	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testmodels"
)

type sample struct {
	sent    time.Time
	lat     time.Duration
	version int64
	err     error
}

func main() {
	versions := flag.Int("versions", 100, "versions to publish")
	rate := flag.Int("rate", 300, "requests per second (open loop)")
	dim := flag.Int("dim", 512, "model size: a dim×dim linear layer (512 ≈ 1 MB)")
	steady := flag.Duration("steady", 5*time.Second, "steady-state measurement before the swaps")
	var proc agentproc.Process
	agentproc.DefineFlags(&proc, true)
	debugAddr := flag.String("debug-addr", "", "start the agent with --debug-addr (pprof) on this address")
	flag.Parse()
	if err := run(*versions, *rate, *dim, *steady, proc, *debugAddr); err != nil {
		fmt.Fprintln(os.Stderr, "swap:", err)
		os.Exit(1)
	}
}

func run(nVersions, rate, dim int, steady time.Duration, ap agentproc.Process, debugAddr string) error {
	if err := runtime.Init(""); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "drover-swap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	store := filepath.Join(tmp, "models")
	models := make([][]byte, nVersions+2)
	for v := 1; v <= nVersions+1; v++ {
		if models[v], err = testmodels.Big(dim, dim, int64(v)); err != nil {
			return err
		}
	}
	if _, err := testmodels.WriteVersion(store, "m", 1, models[1]); err != nil {
		return err
	}
	loadTime, err := rawLoadTime(models[1])
	if err != nil {
		return err
	}

	bin, err := agentproc.Build(tmp)
	if err != nil {
		return err
	}
	conf := "runtime: {intra_op_threads: 1, inter_op_threads: 1}\n" + ap.YAML()
	agent, err := agentproc.Start(bin, store, filepath.Join(tmp, "agent"), conf, agentproc.DebugFlag(debugAddr)...)
	if err != nil {
		return err
	}
	defer agent.Stop()
	client, conn, err := agent.Client()
	if err != nil {
		return err
	}
	defer conn.Close()

	x := make([]float32, dim)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	raw, _ := oip.AppendRaw(nil, x)
	req := &pb.ModelInferRequest{
		ModelName:        "m",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: testmodels.BigInput, Datatype: "FP32", Shape: []int64{1, int64(dim)}}},
		RawInputContents: [][]byte{raw},
	}

	// Open-loop load: a request every 1/rate s, whatever the latency.
	var (
		mu      sync.Mutex
		samples []sample
		latest  atomic.Int64
		seenAt  sync.Map // version -> time first answered
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case t := <-tick.C:
				wg.Add(1)
				go func(sent time.Time) {
					defer wg.Done()
					resp, err := client.ModelInfer(context.Background(), req)
					s := sample{sent: sent, lat: time.Since(sent), err: err}
					if err == nil {
						s.version, _ = strconv.ParseInt(resp.ModelVersion, 10, 64)
						seenAt.LoadOrStore(s.version, time.Now())
						for {
							cur := latest.Load()
							if s.version <= cur || latest.CompareAndSwap(cur, s.version) {
								break
							}
						}
					}
					mu.Lock()
					samples = append(samples, s)
					mu.Unlock()
				}(t)
			}
		}
	}()

	time.Sleep(steady)
	debug.FreeOSMemory()
	rssBefore, _ := agent.RSS()
	swapStart := time.Now()
	var pubToServe []time.Duration
	var rssWarm int64 // after the first 10% of swaps: allocator caches warmed
	for v := 2; v <= nVersions+1; v++ {
		published := time.Now()
		if _, err := testmodels.WriteVersion(store, "m", int64(v), models[v]); err != nil {
			cancel()
			return err
		}
		deadline := published.Add(30 * time.Second)
		for latest.Load() < int64(v) {
			if time.Now().After(deadline) {
				cancel()
				return fmt.Errorf("version %d not serving 30s after publishing", v)
			}
			time.Sleep(time.Millisecond)
		}
		at, _ := seenAt.Load(int64(v))
		pubToServe = append(pubToServe, at.(time.Time).Sub(published))
		if v == 1+max(nVersions/10, 1) {
			rssWarm, _ = agent.RSS()
		}
	}
	swapEnd := time.Now()
	time.Sleep(2 * time.Second) // let the last retired versions drain and close
	cancel()
	wg.Wait()
	time.Sleep(time.Second)
	rssAfter, _ := agent.RSS()

	var steadyLat, swapLat []time.Duration
	failed := 0
	var firstErr error
	for _, s := range samples {
		if s.err != nil {
			failed++
			if firstErr == nil {
				firstErr = s.err
			}
			continue
		}
		switch {
		case s.sent.Before(swapStart):
			steadyLat = append(steadyLat, s.lat)
		case s.sent.Before(swapEnd):
			swapLat = append(swapLat, s.lat)
		}
	}
	sp99, wp99 := stats.Quantile(steadyLat, 0.99), stats.Quantile(swapLat, 0.99)
	fmt.Printf("hot swap under load: %d versions of a %dx%d linear model (%.1f MB each), %d req/s over gRPC, agent %s\n\n",
		nVersions, dim, dim, float64(len(models[1]))/1e6, rate, ap)
	fmt.Printf("requests                 %d (%d during swaps), failed %d (target 0)\n", len(samples), len(swapLat), failed)
	if firstErr != nil {
		fmt.Printf("first error              %v\n", firstErr)
	}
	fmt.Printf("p50 steady / swaps       %.0f µs / %.0f µs\n", stats.Micros(stats.Quantile(steadyLat, 0.5)), stats.Micros(stats.Quantile(swapLat, 0.5)))
	fmt.Printf("p99 steady / swaps       %.0f µs / %.0f µs, ratio %.2f (target <= 1.5)\n", stats.Micros(sp99), stats.Micros(wp99), float64(wp99)/float64(sp99))
	fmt.Printf("publish -> serving       p50 %.1f ms, p95 %.1f ms, max %.1f ms (target p95 <= 200 ms + load time)\n",
		ms(stats.Quantile(pubToServe, 0.5)), ms(stats.Quantile(pubToServe, 0.95)), ms(stats.Quantile(pubToServe, 1)))
	fmt.Printf("model load time (raw)    %.1f ms (session create + 3 warm-up runs with the raw runtime)\n", ms(loadTime))
	fmt.Printf("agent RSS                before %.1f MB, after %d swaps %.1f MB, after all %d %.1f MB (%+.1f MB since the first %d)\n",
		float64(rssBefore)/1e6, max(nVersions/10, 1), float64(rssWarm)/1e6, nVersions, float64(rssAfter)/1e6, float64(rssAfter-rssWarm)/1e6, max(nVersions/10, 1))
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// rawLoadTime is the median time the raw runtime takes to create a session
// for the model and run it three times.
func rawLoadTime(model []byte) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		opts, _ := ort.NewSessionOptions()
		opts.SetIntraOpNumThreads(1)
		opts.SetInterOpNumThreads(1)
		s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{testmodels.BigInput}, []string{testmodels.BigOutput}, opts)
		opts.Destroy()
		if err != nil {
			return 0, err
		}
		dim := int64(0)
		ins, _, err := ort.GetInputOutputInfoWithONNXData(model)
		if err == nil && len(ins) == 1 {
			dim = ins[0].Dimensions[1]
		}
		in, _ := ort.NewTensor(ort.NewShape(1, dim), make([]float32, dim))
		for r := 0; r < 3; r++ {
			out := []ort.Value{nil}
			if err := s.Run([]ort.Value{in}, out); err != nil {
				return 0, err
			}
			out[0].Destroy()
		}
		in.Destroy()
		s.Destroy()
		ds = append(ds, time.Since(start))
	}
	return stats.Quantile(ds, 0.5), nil
}
