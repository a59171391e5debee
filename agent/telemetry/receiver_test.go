package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// receiver is an OTLP receiver (gRPC or HTTP/protobuf) that keeps every
// request it is sent.
type receiver struct {
	addr string

	mu      sync.Mutex
	metrics []pmetric.Metrics
	logs    []plog.Logs
	auth    []string // authorization metadata of each gRPC call
}

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	r *receiver
}

func (s *metricsService) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.r.addMetrics(req)
	return pmetricotlp.NewExportResponse(), nil
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	r *receiver
}

func (s *logsService) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	s.r.addLogs(req)
	return plogotlp.NewExportResponse(), nil
}

func (r *receiver) addMetrics(req pmetricotlp.ExportRequest) {
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	r.mu.Lock()
	r.metrics = append(r.metrics, md)
	r.mu.Unlock()
}

func (r *receiver) addLogs(req plogotlp.ExportRequest) {
	ld := plog.NewLogs()
	req.Logs().CopyTo(ld)
	r.mu.Lock()
	r.logs = append(r.logs, ld)
	r.mu.Unlock()
}

// startGRPCReceiver serves OTLP/gRPC on a loopback port until the test ends.
func startGRPCReceiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		r.mu.Lock()
		r.auth = append(r.auth, md.Get("authorization")...)
		r.mu.Unlock()
		return h(ctx, req)
	}))
	pmetricotlp.RegisterGRPCServer(srv, &metricsService{r: r})
	plogotlp.RegisterGRPCServer(srv, &logsService{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r
}

// startHTTPReceiver serves OTLP/HTTP (protobuf) on a loopback port until
// the test ends.
func startHTTPReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		er := pmetricotlp.NewExportRequest()
		if err := er.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.addMetrics(er)
		resp, _ := pmetricotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		er := plogotlp.NewExportRequest()
		if err := er.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.addLogs(er)
		resp, _ := plogotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.addr = srv.Listener.Addr().String()
	return r
}

// lastMetric returns the metric of that name, type and scope from the
// latest export that holds it, with its resource. For a cumulative metric
// that is the total; for a delta one, see sumTotal and histTotal.
func (r *receiver) lastMetric(name string, typ pmetric.MetricType, scope string) (pmetric.Metric, pcommon.Resource, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.metrics) - 1; i >= 0; i-- {
		rms := r.metrics[i].ResourceMetrics()
		for j := 0; j < rms.Len(); j++ {
			sms := rms.At(j).ScopeMetrics()
			for k := 0; k < sms.Len(); k++ {
				if sms.At(k).Scope().Name() != scope {
					continue
				}
				ms := sms.At(k).Metrics()
				for l := 0; l < ms.Len(); l++ {
					if m := ms.At(l); m.Name() == name && m.Type() == typ {
						return m, rms.At(j).Resource(), true
					}
				}
			}
		}
	}
	return pmetric.Metric{}, pcommon.Resource{}, false
}

// eachMetric calls f with every metric of that name, type and scope, in the
// order received.
func (r *receiver) eachMetric(name string, typ pmetric.MetricType, scope string, f func(pmetric.Metric)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, md := range r.metrics {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				if sms.At(j).Scope().Name() != scope {
					continue
				}
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					if m := ms.At(k); m.Name() == name && m.Type() == typ {
						f(m)
					}
				}
			}
		}
	}
}

// sumTotal returns the total of the int sum's points with the attributes
// want, as a backend would: the latest point of a cumulative sum, the sum
// of every point of a delta one; -1 if there is none. It fails the test if
// the sum changes temporality.
func (r *receiver) sumTotal(t *testing.T, name, scope string, want map[string]string) int64 {
	t.Helper()
	total := int64(-1)
	var temporality pmetric.AggregationTemporality
	r.eachMetric(name, pmetric.MetricTypeSum, scope, func(m pmetric.Metric) {
		if temporality == pmetric.AggregationTemporalityUnspecified {
			temporality = m.Sum().AggregationTemporality()
		} else if m.Sum().AggregationTemporality() != temporality {
			t.Errorf("%s: temporality %v, then %v", name, temporality, m.Sum().AggregationTemporality())
		}
		if v := sumValue(m, want); v >= 0 {
			if total < 0 || temporality == pmetric.AggregationTemporalityCumulative {
				total = v
			} else {
				total += v
			}
		}
	})
	return total
}

// histTotal returns the total of the histogram's points with the
// attributes want, like sumTotal (count -1 if there is none): count, sum
// and bucket counts; min and max of the latest point.
func (r *receiver) histTotal(t *testing.T, name, scope string, want map[string]string) (total histSummary) {
	t.Helper()
	total.count = -1
	var temporality pmetric.AggregationTemporality
	r.eachMetric(name, pmetric.MetricTypeHistogram, scope, func(m pmetric.Metric) {
		h := m.Histogram()
		if temporality == pmetric.AggregationTemporalityUnspecified {
			temporality = h.AggregationTemporality()
		} else if h.AggregationTemporality() != temporality {
			t.Errorf("%s: temporality %v, then %v", name, temporality, h.AggregationTemporality())
		}
		p, ok := histPoint(h.DataPoints(), want)
		if !ok {
			return
		}
		if total.count < 0 || temporality == pmetric.AggregationTemporalityCumulative {
			total = histSummary{bounds: p.ExplicitBounds().AsRaw()}
		}
		total.count = max(total.count, 0) + int64(p.Count()) //nolint:gosec // test counts
		total.sum += p.Sum()
		counts := p.BucketCounts().AsRaw()
		if total.counts == nil {
			total.counts = make([]uint64, len(counts))
		}
		for i := range counts {
			total.counts[i] += counts[i]
		}
		total.hasMin, total.min, total.max = p.HasMin(), p.Min(), p.Max()
		total.temporality = temporality
	})
	return total
}

// histSummary is what histTotal adds up.
type histSummary struct {
	count       int64
	sum         float64
	bounds      []float64
	counts      []uint64
	hasMin      bool
	min, max    float64
	temporality pmetric.AggregationTemporality
}

// logRecords returns every log record received, with its resource.
func (r *receiver) logRecords() ([]plog.LogRecord, []pcommon.Resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var recs []plog.LogRecord
	var res []pcommon.Resource
	for _, ld := range r.logs {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					recs = append(recs, lrs.At(k))
					res = append(res, rls.At(i).Resource())
				}
			}
		}
	}
	return recs, res
}

// matches reports whether attrs holds every key of want with its value.
func matches(attrs pcommon.Map, want map[string]string) bool {
	for k, v := range want {
		got, ok := attrs.Get(k)
		if !ok || got.AsString() != v {
			return false
		}
	}
	return true
}

// logCapture is a slog.Handler that keeps records.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCapture) WithGroup(string) slog.Handler            { return h }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// at returns the records of that level.
func (h *logCapture) at(level slog.Level) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

func attrOf(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}
