// Command registry benchmarks the model registry's publish and pull over
// HTTP against the raw floor on the same machine, in one run:
//
//   - publish: droverctl's client (adminclient.Publish) uploads a version
//     of -mb MB (a small real model.onnx and a weights.bin of random
//     bytes) through the registry's handler on loopback into a file://
//     store (the blob fsynced, the record in the embedded ClickHouse);
//     the baseline PUTs the same bytes over loopback to a minimal handler
//     that writes them into a file on the same disk and fsyncs it.
//     Two ratios: with the client's digest pass (the whole publish) and
//     without it (from the first byte sent).
//   - pull: adminclient.Pull downloads the version (digest verified,
//     fsynced, renamed) against a plain GET of the same bytes served by
//     http.ServeFile from the page cache, written into a file and fsynced.
//
// Ratios are throughput of Drover / throughput of the baseline (1 = as fast
// as the floor), over the median of -rounds rounds. Peak RSS growth is
// the process's (client and server both) high-water mark during each phase
// above its resident size before it (/proc/self/clear_refs, VmHWM).
//
// The client's digest pass (adminclient.Publish hashes every file before
// it sends it) is counted in the first publish ratio and not in the second.
//
//	go run ./bench/registry -mb 100
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testmodels"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/registry:", err)
		os.Exit(1)
	}
}

type phase struct {
	name     string
	times    []time.Duration
	rssGrowK []int64
}

func (p *phase) median() time.Duration {
	s := slices.Clone(p.times)
	slices.Sort(s)
	return s[len(s)/2]
}

func (p *phase) maxRSS() int64 { return slices.Max(p.rssGrowK) }

func run() error {
	mb := flag.Int("mb", 100, "size of the version in MB")
	rounds := flag.Int("rounds", 3, "rounds; the median is reported")
	ch := flag.String("clickhouse", store.Embedded, "embedded, or a clickhouse:// DSN")
	dirFlag := flag.String("dir", "", "working directory (default: a temporary one; on the disk under test)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()

	tmp := *dirFlag
	if tmp == "" {
		d, err := os.MkdirTemp("", "drover-bench-registry-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		tmp = d
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	backend, err := store.Open(ctx, *ch, tmp, log)
	if err != nil {
		return err
	}
	defer backend.Close(context.Background())
	const db = "drover_bench"
	if err := backend.Conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return err
	}
	if err := store.Migrate(ctx, backend.Conn, store.MigrateOptions{Database: db}); err != nil {
		return err
	}
	u, err := registry.FileURL(filepath.Join(tmp, "blobs"))
	if err != nil {
		return err
	}
	blobs, err := registry.OpenBlobs(ctx, u)
	if err != nil {
		return err
	}
	defer blobs.Close()
	reg := registry.New(backend.Conn, blobs, registry.Options{Database: db, Logger: log})

	// One loopback server: the registry's routes and the baselines.
	mux := http.NewServeMux()
	for p, h := range reg.Routes(nil) {
		mux.Handle(p, h)
	}
	rawDir := filepath.Join(tmp, "raw")
	if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return err
	}
	mux.HandleFunc("PUT /raw/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := rawPut(filepath.Join(rawDir, r.PathValue("name")), r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /raw/{name}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(rawDir, r.PathValue("name")))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	base := "http://" + l.Addr().String()
	cl, err := adminclient.NewClient(adminclient.Config{URLs: []string{base}})
	if err != nil {
		return err
	}
	defer cl.Close()
	hc := &http.Client{}

	model, err := testmodels.Linear("X", "Y", [][]float32{{1, 2}, {3, 4}}, []float32{0, 0})
	if err != nil {
		return err
	}
	size := int64(*mb) << 20
	fmt.Printf("registry bench: a version of %d MB (model.onnx %d B + weights.bin), %d rounds, %s, GOMAXPROCS %d\n",
		*mb, len(model), *rounds, runtime.Version(), runtime.GOMAXPROCS(0))

	pub := &phase{name: "publish (with the client's digest pass)"}
	up := &phase{name: "publish (upload only, digest pass not counted)"}
	rawUp := &phase{name: "baseline: PUT into a file + fsync"}
	pull := &phase{name: "pull (verify, fsync, rename)"}
	rawDown := &phase{name: "baseline: GET from page cache into a file + fsync"}
	for round := range *rounds {
		src := filepath.Join(tmp, fmt.Sprintf("src-%d", round))
		if err := writeVersion(src, model, size, round); err != nil {
			return err
		}

		// Baseline upload: the same bytes, one PUT per file.
		start, rss := measureStart()
		for _, name := range []string{"model.onnx", "weights.bin"} {
			if err := putFile(ctx, hc, base+"/raw/"+strconv.Itoa(round)+"-"+name, filepath.Join(src, name)); err != nil {
				return err
			}
		}
		rawUp.add(start, rss)

		start, rss = measureStart()
		var uploadStart time.Time
		res, _, err := cl.Publish(ctx, "bench", src, adminclient.PublishOptions{Message: "bench", Progress: func(ph string, done, _ int64) {
			if ph == "upload" && uploadStart.IsZero() {
				uploadStart = time.Now()
			}
		}})
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		pub.add(start, rss)
		up.times = append(up.times, time.Since(uploadStart))
		up.rssGrowK = append(up.rssGrowK, pub.rssGrowK[len(pub.rssGrowK)-1])
		if !res.Created {
			return errors.New("publish deduplicated: the rounds' contents must differ")
		}

		// Baseline download: the weights from the page cache (just
		// written and read), into a file with fsync.
		rawFile := base + "/raw/" + strconv.Itoa(round) + "-weights.bin"
		if err := getFile(ctx, hc, rawFile, filepath.Join(tmp, "warm")); err != nil { // page cache warm
			return err
		}
		start, rss = measureStart()
		for _, name := range []string{"model.onnx", "weights.bin"} {
			if err := getFile(ctx, hc, base+"/raw/"+strconv.Itoa(round)+"-"+name, filepath.Join(tmp, fmt.Sprintf("down-%d-%s", round, name))); err != nil {
				return err
			}
		}
		rawDown.add(start, rss)

		start, rss = measureStart()
		dest := filepath.Join(tmp, fmt.Sprintf("pulled-%d", round))
		if _, _, err := cl.Pull(ctx, "bench", res.Version, dest, adminclient.PullOptions{}); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		pull.add(start, rss)

		for _, p := range []string{src, dest, filepath.Join(tmp, "warm"), filepath.Join(tmp, fmt.Sprintf("down-%d-model.onnx", round)),
			filepath.Join(tmp, fmt.Sprintf("down-%d-weights.bin", round)), filepath.Join(rawDir, strconv.Itoa(round)+"-weights.bin")} {
			_ = os.RemoveAll(p)
		}
	}

	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	for _, p := range []*phase{pub, up, rawUp, pull, rawDown} {
		fmt.Printf("  %-50s median %8.3fs  %7.1f MB/s  peak RSS growth %6.1f MiB\n", p.name, p.median().Seconds(), mbps(p.median()), float64(p.maxRSS())/1024)
	}
	fmt.Printf("publish / raw upload:            %.2f (with the client's digest pass)\n", rawUp.median().Seconds()/pub.median().Seconds())
	fmt.Printf("publish / raw upload:            %.2f (upload only: digest pass not counted)\n", rawUp.median().Seconds()/up.median().Seconds())
	fmt.Printf("pull / raw download:             %.2f\n", rawDown.median().Seconds()/pull.median().Seconds())
	fmt.Println("(throughput ratios: 1 = as fast as the baseline; target ≥ 0.80)")
	return nil
}

func (p *phase) add(start time.Time, rssBefore int64) {
	p.times = append(p.times, time.Since(start))
	p.rssGrowK = append(p.rssGrowK, max(0, peakRSSK()-rssBefore))
}

// measureStart collects garbage, resets the peak RSS and returns the time
// and the resident size (KiB).
func measureStart() (time.Time, int64) {
	syscall.Sync() // no phase pays for the writeback of an earlier one's dirty pages
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM (Linux)
	return time.Now(), statusK("VmRSS:")
}

func peakRSSK() int64 { return statusK("VmHWM:") }

func statusK(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// writeVersion writes model.onnx and size bytes of weights.bin (random,
// with the round in the first bytes so every round is new content).
func writeVersion(dir string, model []byte, size int64, round int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "weights.bin"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for written := int64(0); written < size; {
		_, _ = rand.Read(buf)
		if written == 0 {
			binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano())+uint64(round))
		}
		n := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		written += n
	}
	return f.Close()
}

func rawPut(path string, body io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func putFile(ctx context.Context, hc *http.Client, url, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}

func getFile(ctx context.Context, hc *http.Client, url, dest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
