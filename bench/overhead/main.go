// Command overhead measures what drover-agent adds to ONNX Runtime: the raw
// runtime's Run in this process versus the agent (a separate process) over
// gRPC (raw contents), REST with the binary extension and REST JSON, on a
// tiny tabular classifier and on a 4 MB model, at 1 and at N concurrent
// clients. It prints p50/p99 latency, throughput, the added p50 and the
// throughput ratio against the raw runtime, and the targets.
//
//	go run ./bench/overhead [-duration 5s] [-clients 4]
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
	"strconv"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/grpc"

	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/bench/internal/agentproc"
	"github.com/drover-ml/drover/bench/internal/stats"
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
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	clients := flag.Int("clients", 4, "concurrent clients for the throughput runs")
	flag.Parse()
	if err := run(*duration, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "overhead:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, n int) error {
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
	agent, err := agentproc.Start(bin, store, filepath.Join(tmp, "agent"), "runtime: {intra_op_threads: 1, inter_op_threads: 1}\n")
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

	fmt.Printf("drover-agent overhead vs raw ONNX Runtime %s (intra/inter-op threads 1), %s per run, batch 1\n\n", runtime.Version(), d)
	fmt.Printf("%-5s %-12s %3s %9s %9s %11s %11s %8s\n", "model", "path", "c", "p50 µs", "p99 µs", "req/s", "added p50", "tput %")
	for _, m := range models {
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
			{"grpc-raw", grpcRunner(gc, m, x)},
			{"rest-binary", restBinaryRunner(hc, agent.HTTPAddr, m, x)},
			{"rest-json", restJSONRunner(hc, agent.HTTPAddr, m, x)},
		}
		paths = append(paths[:1], append([]struct {
			name string
			fn   func() error
		}{
			{"grpc-noop", grpcNoop(gc)},
			{"rest-noop", restNoop(hc, agent.HTTPAddr)},
		}, paths[1:]...)...)
		for _, c := range []int{1, n} {
			var base result
			for _, p := range paths {
				if err := p.fn(); err != nil { // warm up and check
					return fmt.Errorf("%s %s: %w", m.name, p.name, err)
				}
				r := measure(p.fn, c, d)
				p50, p99 := stats.Quantile(r.lat, 0.5), stats.Quantile(r.lat, 0.99)
				if p.name == "raw-onnxrt" {
					base = r
					fmt.Printf("%-5s %-12s %3d %9.1f %9.1f %11.0f %11s %8s\n", m.name, p.name, c, stats.Micros(p50), stats.Micros(p99), r.throughput, "-", "100")
					continue
				}
				added := stats.Micros(p50) - stats.Micros(stats.Quantile(base.lat, 0.5))
				fmt.Printf("%-5s %-12s %3d %9.1f %9.1f %11.0f %+10.1fµs %7.0f%%\n", m.name, p.name, c, stats.Micros(p50), stats.Micros(p99), r.throughput, added, 100*r.throughput/base.throughput)
			}
		}
	}
	fmt.Println("\ngrpc-noop / rest-noop are the transport floor on this machine: the agent's ServerLive RPC and")
	fmt.Println("GET /v2/health/live, which do no work; the rows below them show what inference adds on top.")
	fmt.Println("targets: added p50 <= 60µs gRPC, <= 80µs REST binary, <= 120µs REST JSON; throughput >= 75% of raw")
	return nil
}

// measure runs fn from c goroutines for d and records every latency.
func measure(fn func() error, c int, d time.Duration) result {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
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
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d errors\n", errs)
	}
	return result{lat: all, throughput: float64(len(all)) / el}
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
