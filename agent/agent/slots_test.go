package agent_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestAdaptiveGoMaxProcs runs an agent with process.adaptive_gomaxprocs:
// one slot while it idles, all of them (Go's default) while four clients
// keep inferences in flight, all of them at once for a new version's load,
// and Go's default again once it stopped.
func TestAdaptiveGoMaxProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	before := goruntime.GOMAXPROCS(0)
	goruntime.SetDefaultGOMAXPROCS()
	all := goruntime.GOMAXPROCS(0)
	t.Cleanup(func() { goruntime.GOMAXPROCS(before) })
	if all < 2 {
		t.Skip("one CPU: nothing to adapt")
	}
	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	publish(t, root, "lin", 1, 1)
	file := agenttest.File()
	file.Process.AdaptiveGoMaxProcs = true
	httpL, grpcL := listen(t), listen(t)
	base := "http://" + httpL.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var logs testenv.Buffer
	go func() {
		done <- agent.Run(ctx, agent.Config{File: file, ModelDir: root, DataDir: t.TempDir(), DrainTimeout: 5 * time.Second},
			agent.Listeners{HTTP: httpL, GRPC: grpcL}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	testenv.Eventually(t, agenttest.Wait, "lin v1 ready", func() bool {
		code, _ := get(t, base+"/v2/models/lin/versions/1/ready")
		return code == http.StatusOK
	})
	testenv.Eventually(t, agenttest.Wait, "one slot while idle", func() bool { return goruntime.GOMAXPROCS(0) == 1 })

	// A new version takes all slots as its load starts (a hold), not once
	// goroutines have queued for one.
	publish(t, root, "lin", 2, 2)
	testenv.Eventually(t, agenttest.Wait, "lin v2 ready", func() bool {
		code, _ := get(t, base+"/v2/models/lin/versions/2/ready")
		return code == http.StatusOK
	})
	if !strings.Contains(logs.String(), `msg="process.adaptive_gomaxprocs: all slots" gomaxprocs=`+strconv.Itoa(all)+` next_try=`) ||
		!strings.Contains(logs.String(), "hold=true") {
		var lines []string
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "adaptive_gomaxprocs") {
				lines = append(lines, l)
			}
		}
		t.Errorf("no hold for v2's load; the slot changes logged:\n%s", strings.Join(lines, ""))
	}

	testenv.Eventually(t, agenttest.Wait, "one slot again after v2's load", func() bool { return goruntime.GOMAXPROCS(0) == 1 })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	body := []byte(`{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(base+"/v2/models/lin/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("infer: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	testenv.Eventually(t, agenttest.Wait, "all slots with four clients", func() bool { return goruntime.GOMAXPROCS(0) == all })
	close(stop)
	wg.Wait()

	stopRun(t, cancel, done)
	if got := goruntime.GOMAXPROCS(0); got != all {
		t.Errorf("after Run: GOMAXPROCS %d, want Go's default %d", got, all)
	}
}
