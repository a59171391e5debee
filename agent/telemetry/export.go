package telemetry

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/credentials"
)

// newOTLPMetricExporter builds the OTLP metric exporter of cfg (defaults
// applied). Retries are off: the next export carries whatever a failed one
// would have, because the SDK's instruments are cumulative and the delta
// series are computed since the last successful export (see delta.go).
// With TLS on, tc (nil: the system's roots) verifies the collector.
func newOTLPMetricExporter(ctx context.Context, cfg Config, tc *tls.Config) (sdkmetric.Exporter, error) {
	if cfg.Protocol == ProtocolHTTP {
		opts := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpoint(cfg.Endpoint),
			otlpmetrichttp.WithTimeout(cfg.Timeout),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		}
		if cfg.insecure() {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		} else if tc != nil {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tc))
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlpmetrichttp.WithHeaders(cfg.Headers))
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	opts := []otlpmetricgrpc.Option{
		otlpmetricgrpc.WithEndpoint(cfg.Endpoint),
		otlpmetricgrpc.WithTimeout(cfg.Timeout),
		otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
	}
	if cfg.insecure() {
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	} else if tc != nil {
		opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlpmetricgrpc.WithHeaders(cfg.Headers))
	}
	return otlpmetricgrpc.New(ctx, opts...)
}

// newOTLPLogExporter builds the OTLP log exporter of cfg (defaults
// applied). Events are not cumulative, so a failed export is retried, within
// the export timeout.
func newOTLPLogExporter(ctx context.Context, cfg Config, tc *tls.Config) (sdklog.Exporter, error) {
	initial := min(cfg.Timeout/4, time.Second)
	if cfg.Protocol == ProtocolHTTP {
		opts := []otlploghttp.Option{
			otlploghttp.WithEndpoint(cfg.Endpoint),
			otlploghttp.WithTimeout(cfg.Timeout),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{
				Enabled: true, InitialInterval: initial, MaxInterval: cfg.Timeout, MaxElapsedTime: cfg.Timeout,
			}),
		}
		if cfg.insecure() {
			opts = append(opts, otlploghttp.WithInsecure())
		} else if tc != nil {
			opts = append(opts, otlploghttp.WithTLSClientConfig(tc))
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(cfg.Headers))
		}
		return otlploghttp.New(ctx, opts...)
	}
	opts := []otlploggrpc.Option{
		otlploggrpc.WithEndpoint(cfg.Endpoint),
		otlploggrpc.WithTimeout(cfg.Timeout),
		otlploggrpc.WithRetry(otlploggrpc.RetryConfig{
			Enabled: true, InitialInterval: initial, MaxInterval: cfg.Timeout, MaxElapsedTime: cfg.Timeout,
		}),
	}
	if cfg.insecure() {
		opts = append(opts, otlploggrpc.WithInsecure())
	} else if tc != nil {
		opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlploggrpc.WithHeaders(cfg.Headers))
	}
	return otlploggrpc.New(ctx, opts...)
}

// errorLog logs export failures at most once per interval (with the number
// left out since the last line), and a recovery once per failing signal.
// It replaces the SDK's global error handler for export errors, which this
// package must not set.
type errorLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	last       time.Time // of the last line logged; zero before the first
	suppressed int
	failing    map[string]bool
}

func newErrorLog(log *slog.Logger, every time.Duration, now func() time.Time) *errorLog {
	return &errorLog{log: log, every: every, now: now, failing: map[string]bool{}}
}

func (l *errorLog) failed(signal string, err error) {
	l.mu.Lock()
	l.failing[signal] = true
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.suppressed = 0
	l.last = now
	l.mu.Unlock()
	l.log.Error("telemetry export failed; retrying every interval",
		"signal", signal, "suppressed", n, "interval", l.every, "err", err)
}

func (l *errorLog) succeeded(signal string) {
	l.mu.Lock()
	was := l.failing[signal]
	delete(l.failing, signal)
	l.mu.Unlock()
	if was {
		l.log.Info("telemetry export recovered", "signal", signal)
	}
}

// exportResult remembers the outcome of the latest export, so ForceFlush
// can report what the SDK was not told (see metricExporter).
type exportResult struct {
	mu  sync.Mutex
	seq uint64
	err error
}

func (r *exportResult) set(err error) {
	r.mu.Lock()
	r.seq++
	r.err = err
	r.mu.Unlock()
}

func (r *exportResult) get() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq, r.err
}

// metricExporter decorates an exporter: errors go to the rate-limited
// errorLog and are not returned, because the periodic reader would hand
// them to the global otel error handler once per interval per exporter.
// With a delta producer, a successful export commits the snapshots that
// producer took for it, and a failed one commits nothing, so the next
// export's deltas carry its counts too (see delta.go).
//
// The exporter it decorates changes when the agent follows a collector's
// registration answer (FollowCollector): mu guards it, and an export holds
// it read-locked, so a swap waits for the export in flight.
type metricExporter struct {
	mu    sync.RWMutex
	exp   sdkmetric.Exporter
	errs  *errorLog
	delta *deltaProducer // nil with cumulative temporality
	last  exportResult
}

func (e *metricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.mu.RLock()
	err := e.exp.Export(ctx, rm)
	e.mu.RUnlock()
	if err == nil && e.delta != nil {
		e.delta.commit()
	}
	e.last.set(err)
	if err != nil {
		e.errs.failed("metrics", fmt.Errorf("export metrics: %w", err))
		return nil
	}
	e.errs.succeeded("metrics")
	return nil
}

// logExporter decorates the event exporter like metricExporter, and
// releases the queue slots of the records it was handed (see
// Telemetry.admit). When the collector changes (swap) while an export is
// in flight, that export is cancelled and its records go to the new
// collector: an export to a collector that died would otherwise hold the
// queue for the whole export timeout and then drop its batch, while the
// queue, full, drops every new event.
type logExporter struct {
	mu       sync.Mutex // guards exp, gen, cancel, inflight
	exp      sdklog.Exporter
	gen      uint64             // incremented by swap
	cancel   context.CancelFunc // of the export in flight
	inflight chan struct{}      // closed when the export in flight ends
	errs     *errorLog
	pending  *atomic.Int64
	last     exportResult
	// timeout bounds an export sent again to a new collector (the first
	// attempt's deadline, the batch processor's, may be nearly spent).
	timeout time.Duration
}

func (e *logExporter) Export(ctx context.Context, records []sdklog.Record) error {
	if len(records) == 0 {
		return nil
	}
	defer e.pending.Add(-int64(len(records)))
	var err error
	for attempt := 0; ; attempt++ {
		e.mu.Lock()
		exp, gen := e.exp, e.gen
		var ectx context.Context
		var cancel context.CancelFunc
		if attempt > 0 && e.timeout > 0 {
			ectx, cancel = context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
		} else {
			ectx, cancel = context.WithCancel(ctx)
		}
		done := make(chan struct{})
		e.cancel, e.inflight = cancel, done
		e.mu.Unlock()
		err = exp.Export(ectx, records)
		cancel()
		e.mu.Lock()
		swapped := e.gen != gen
		e.cancel, e.inflight = nil, nil
		e.mu.Unlock()
		close(done)
		if err == nil || !swapped {
			break
		}
		// The collector changed during the export: send to the new one.
	}
	e.last.set(err)
	if err != nil {
		e.errs.failed("events", fmt.Errorf("export %d events: %w", len(records), err))
		return nil
	}
	e.errs.succeeded("events")
	return nil
}
