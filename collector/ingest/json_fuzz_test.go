package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/store"
)

// convertingSink converts what the receiver would spool, as the writer
// later does.
type convertingSink struct{ t *testing.T }

func (s convertingSink) Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error {
	var b store.Batch
	if err := Convert(kind, payload, &b); err != nil {
		s.t.Fatalf("the receiver accepted a %v payload the writer cannot convert: %v", kind, err)
	}
	return nil
}

// FuzzOTLPJSON posts arbitrary bodies as OTLP/HTTP JSON (metrics and logs)
// to the receiver's handler, without the panic recovery of its server: no
// panic, a 200 or a 4xx answer, and anything accepted converts to rows.
func FuzzOTLPJSON(f *testing.F) {
	now := time.Now().UnixNano()
	f.Add(true, []byte(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h"}}]},"scopeMetrics":[{"metrics":[{"name":"drover.requests","sum":{"dataPoints":[{"asInt":"3","timeUnixNano":"`+itoa(now)+`","attributes":[{"key":"drover.model","value":{"stringValue":"iris"}},{"key":"drover.model.version","value":{"stringValue":"1"}}]}],"aggregationTemporality":2,"isMonotonic":true}}]}]}]}`))
	f.Add(true, []byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":[{"bucketCounts":["1","2"],"explicitBounds":[0.5],"timeUnixNano":"`+itoa(now)+`"}]}}]}]}]}`))
	f.Add(false, []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"`+itoa(now)+`","body":{"stringValue":"{\"inputs\":[1]}"},"attributes":[{"key":"drover.event","value":{"stringValue":"sample"}}]}]}]}]}`))
	f.Add(true, []byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asDouble":"NaN","timeUnixNano":"1"}]}}]}]}]}`))
	f.Add(false, []byte(`{`))
	f.Fuzz(func(t *testing.T, metrics bool, body []byte) {
		recv := NewReceiver(ReceiverConfig{MaxRequestBytes: 1 << 20}, convertingSink{t}, NewStats(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		kind, path := KindLogs, "/v1/logs"
		if metrics {
			kind, path = KindMetrics, "/v1/metrics"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		recv.serveHTTP(w, req, kind)
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
			t.Fatalf("answer %d: %s", w.Code, w.Body)
		}
	})
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}
