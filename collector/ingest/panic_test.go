package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/shared/semconv"
)

// panickySink panics on its first n calls, then accepts.
type panickySink struct{ left atomic.Int32 }

func (p *panickySink) Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error {
	if p.left.Add(-1) >= 0 {
		panic("injected by the test")
	}
	return nil
}

// TestReceiverPanicIsAnInternalError: a panic while handling an OTLP
// request (gRPC or HTTP) is answered as an internal error and counted,
// and the receiver goes on serving.
func TestReceiverPanicIsAnInternalError(t *testing.T) {
	stats := NewStats(prometheus.NewRegistry())
	sink := &panickySink{}
	sink.left.Store(2)
	recv := NewReceiver(ReceiverConfig{}, sink, stats, slog.New(slog.DiscardHandler))
	conn, httpAddr := serve(t, recv, nil)
	client := pmetricotlp.NewGRPCClient(conn)
	req := pmetricotlp.NewExportRequestFromMetrics(edgeMetrics(map[string]string{semconv.AttrHostName: "h"},
		edgePoint{time.Now(), map[string]string{semconv.AttrModel: "iris", semconv.AttrModelVersion: "3"}}))

	if _, err := client.Export(context.Background(), req); status.Code(err) != codes.Internal {
		t.Errorf("gRPC request that panicked: %v, want Internal", err)
	}
	body, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	post := func() int {
		resp, err := http.Post("http://"+httpAddr+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusInternalServerError {
		t.Errorf("HTTP request that panicked: %d, want 500", code)
	}
	if got := testutil.ToFloat64(stats.Panics.WithLabelValues("otlp")); got != 2 {
		t.Errorf("drover_collector_panics_total{server=otlp} = %v, want 2", got)
	}
	if _, err := client.Export(context.Background(), req); err != nil {
		t.Errorf("gRPC after the panics: %v", err)
	}
	if code := post(); code != http.StatusOK {
		t.Errorf("HTTP after the panics: %d", code)
	}
}
