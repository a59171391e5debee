package telemetry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/drover-ml/drover/shared/semconv"
)

// ScopeName is the instrumentation scope of everything the agent records.
// Fixed-bin distributions come from the scope ScopeName+"/distribution".
const ScopeName = "github.com/drover-ml/drover/agent/telemetry"

// ResourceInfo identifies the agent in every export.
type ResourceInfo struct {
	AgentID  string // drover.agent.id
	HostName string // host.name
	Version  string // service.version: the agent's build version
}

// Option changes how New builds a Telemetry; the defaults suit production.
type Option func(*options)

type options struct {
	now            func() time.Time
	metricExporter sdkmetric.Exporter
	logExporter    sdklog.Exporter
}

// WithClock replaces time.Now for event timestamps, series start times and
// the once-per-interval limit on export error logs.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithMetricExporter replaces the OTLP metric exporter built from the
// config (the config's interval, timeout and temporality still apply; with
// Disabled it is not used). Its temporality selector applies only to the
// instruments the SDK aggregates; keep the SDK's default, cumulative, as
// the built exporters do. The per-request and fixed-bin series reach it in
// the config's Temporality whatever it selects, and with delta its Export
// must return nil only for data the receiver accepted: a nil return commits
// the deltas, an error carries them into the next export. Telemetry owns it
// and shuts it down, also when New fails.
func WithMetricExporter(e sdkmetric.Exporter) Option {
	return func(o *options) { o.metricExporter = e }
}

// WithLogExporter replaces the OTLP log exporter that carries events and
// samples (with Disabled it is not used). Telemetry owns it and shuts it
// down, also when New fails.
func WithLogExporter(e sdklog.Exporter) Option {
	return func(o *options) { o.logExporter = e }
}

// Telemetry owns the agent's meter and logger providers, their exporters
// and the Prometheus registry. Its methods are safe for concurrent use,
// never block on the network, and are no-ops on a nil *Telemetry, so a
// component can take one optionally.
type Telemetry struct {
	cfg Config
	tc  *tls.Config // verifies the collector; nil without TLS
	log *slog.Logger
	// endpoint is where the exporters send: cfg.Endpoint, or the one
	// FollowCollector last took from a registration answer.
	endpoint atomic.Pointer[string]
	// redirect serializes FollowCollector's exporter swaps.
	redirect sync.Mutex
	// injected: the exporters came from options, not from the config.
	injected bool
	now      func() time.Time
	errs     *errorLog

	mp      *sdkmetric.MeterProvider
	lp      *sdklog.LoggerProvider // nil when OTLP export is disabled
	bp      *sdklog.BatchProcessor // lp's, nil when OTLP export is disabled
	logger  otellog.Logger         // nil when OTLP export is disabled
	mexp    *metricExporter        // nil when OTLP export is disabled
	lexp    *logExporter           // nil when OTLP export is disabled
	prom    http.Handler
	pending atomic.Int64 // events handed to the batch processor, not yet exported
	closed  atomic.Bool

	shutdownOnce sync.Once
	shutdownErr  error

	inst   instruments
	attrs  attrCache
	series producer
	loaded atomic.Pointer[func() map[string]int]
	eval   atomic.Pointer[func(yield func(model, version, source, metric, class string, value float64))]
}

// New builds the providers and starts the periodic metric export and the
// event batch processor. It does not connect: an unreachable collector shows
// up later as one error log line per interval, never as an error here or a
// slower caller. ctx is only used while building. Call Shutdown to flush
// and stop.
func New(ctx context.Context, cfg Config, res ResourceInfo, log *slog.Logger, opts ...Option) (*Telemetry, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	// Until the providers own them, the injected exporters are ours to
	// close on failure.
	closeInjected := func(metrics, logs bool) {
		if metrics && o.metricExporter != nil {
			_ = o.metricExporter.Shutdown(ctx)
		}
		if logs && o.logExporter != nil {
			_ = o.logExporter.Shutdown(ctx)
		}
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		closeInjected(true, true)
		return nil, fmt.Errorf("telemetry config: %w", err)
	}
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		tok := strings.TrimSpace(string(b))
		if err == nil && (tok == "" || strings.ContainsAny(tok, " \t\r\n")) {
			err = errors.New("want one token on one line")
		}
		if err != nil {
			closeInjected(true, true)
			return nil, fmt.Errorf("telemetry.token_file: %w", err)
		}
		headers := maps.Clone(cfg.Headers)
		if headers == nil {
			headers = map[string]string{}
		}
		headers["authorization"] = "Bearer " + tok
		cfg.Headers = headers
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tc *tls.Config
	if cfg.TLS != nil && !cfg.insecure() {
		var err error
		tc, err = cfg.TLS.Config(func(err error) { log.Error("telemetry: client certificate changed but does not load", "err", err) })
		if err != nil {
			closeInjected(true, true)
			return nil, fmt.Errorf("telemetry.tls: %w", err)
		}
	}
	t := &Telemetry{cfg: cfg, log: log, now: o.now, tc: tc}
	t.endpoint.Store(&cfg.Endpoint)
	t.injected = o.metricExporter != nil || o.logExporter != nil
	t.errs = newErrorLog(log, cfg.Interval, o.now)
	t.series.init(t, res.Version)

	r := resource.NewSchemaless(
		attribute.String(semconv.AttrServiceName, semconv.ServiceNameAgent),
		attribute.String(semconv.AttrHostName, res.HostName),
		attribute.String(semconv.AttrAgentID, res.AgentID),
		attribute.String(semconv.AttrServiceVersion, res.Version),
	)

	reg := prometheus.NewRegistry()
	pe, err := promexp.New(promexp.WithRegisterer(reg), promexp.WithProducer(&t.series))
	if err != nil {
		closeInjected(true, true)
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t.prom = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})

	mopts := []sdkmetric.Option{
		sdkmetric.WithResource(r),
		sdkmetric.WithReader(pe),
		// Exemplars need trace context, which the agent does not have; off,
		// they cost nothing on the hot path.
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: semconv.MetricDistribution, Scope: instrumentation.Scope{Name: ScopeName}},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}},
		)),
	}
	if !cfg.Disabled {
		exp := o.metricExporter
		if exp == nil {
			if exp, err = newOTLPMetricExporter(ctx, cfg, tc); err != nil {
				_ = pe.Shutdown(ctx)
				closeInjected(false, true)
				return nil, fmt.Errorf("otlp metric exporter: %w", err)
			}
		}
		// Prometheus needs cumulative data, so only the OTLP reader gets
		// the delta view of the series; its reader's temporality selector
		// (for the SDK's instruments) stays the exporter's.
		var series sdkmetric.Producer = &t.series
		if cfg.Temporality == TemporalityDelta {
			t.series.delta = newDeltaProducer(&t.series)
			series = t.series.delta
		}
		t.mexp = &metricExporter{exp: exp, errs: t.errs, delta: t.series.delta}
		// The delta producer relies on this reader to collect and export
		// one after the other, without batches (see delta.go).
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(t.mexp,
			sdkmetric.WithInterval(cfg.Interval),
			sdkmetric.WithTimeout(cfg.Timeout),
			sdkmetric.WithProducer(series),
		)))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)
	if cfg.Disabled {
		closeInjected(true, true) // not used
	}

	if !cfg.Disabled {
		exp := o.logExporter
		if exp == nil {
			if exp, err = newOTLPLogExporter(ctx, cfg, tc); err != nil {
				_ = t.mp.Shutdown(ctx)
				return nil, fmt.Errorf("otlp log exporter: %w", err)
			}
		}
		t.lexp = &logExporter{exp: exp, errs: t.errs, pending: &t.pending, timeout: cfg.Timeout}
		// The queue never overflows on its own: admit keeps at most
		// MaxQueue records between Event and the end of their export.
		t.bp = sdklog.NewBatchProcessor(t.lexp,
			sdklog.WithMaxQueueSize(cfg.MaxQueue),
			sdklog.WithExportMaxBatchSize(min(512, cfg.MaxQueue)),
			sdklog.WithExportInterval(cfg.Interval),
			sdklog.WithExportTimeout(cfg.Timeout),
		)
		t.lp = sdklog.NewLoggerProvider(sdklog.WithResource(r), sdklog.WithProcessor(t.bp))
		t.logger = t.lp.Logger(ScopeName, otellog.WithInstrumentationVersion(res.Version))
	}

	meter := t.mp.Meter(ScopeName, metric.WithInstrumentationVersion(res.Version))
	if err := t.inst.init(meter, t); err != nil {
		_ = t.Shutdown(ctx)
		return nil, fmt.Errorf("telemetry instruments: %w", err)
	}
	return t, nil
}

// PrometheusHandler serves the metrics in the Prometheus text format from a
// registry private to t (the agent mounts it at /metrics). Fixed-bin
// distributions appear as classic histograms.
func (t *Telemetry) PrometheusHandler() http.Handler {
	if t == nil {
		return http.NotFoundHandler()
	}
	return t.prom
}

// ForceFlush exports the metrics and the queued events now. It returns the
// export error, if the exports it caused failed, or ctx's error.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	if t == nil || t.closed.Load() {
		return nil
	}
	var errs []error
	if t.mexp != nil {
		errs = append(errs, flushAndCheck(ctx, &t.mexp.last, t.mp.ForceFlush))
	}
	if t.lexp != nil {
		errs = append(errs, flushAndCheck(ctx, &t.lexp.last, t.lp.ForceFlush))
	}
	return errors.Join(errs...)
}

func flushAndCheck(ctx context.Context, last *exportResult, flush func(context.Context) error) error {
	before, _ := last.get()
	if err := flush(ctx); err != nil {
		return err
	}
	if after, err := last.get(); after != before {
		return err
	}
	return nil
}

// Shutdown exports what is left and stops the exporters, returning by the
// time ctx is done (then with ctx's error, and what was not exported is
// lost). Recording methods become no-ops. It is idempotent, and safe on a
// nil *Telemetry.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.shutdownOnce.Do(func() {
		// Under redirect: a FollowCollector in progress swaps its
		// exporters in first, so the ones shut down below are the last.
		t.redirect.Lock()
		t.closed.Store(true)
		t.redirect.Unlock()
		// Metrics and events share ctx's time rather than one waiting for
		// the other.
		var wg sync.WaitGroup
		var merr, lerr error
		wg.Go(func() {
			if t.mp == nil {
				return
			}
			if t.mexp == nil {
				merr = t.mp.Shutdown(ctx)
				return
			}
			merr = flushAndCheck(ctx, &t.mexp.last, t.mp.Shutdown)
		})
		if t.lp != nil {
			wg.Go(func() {
				lerr = flushAndCheck(ctx, &t.lexp.last, t.lp.Shutdown)
				// When ctx ends while a flush is in progress, the provider
				// returns without stopping its processor; stop it here (a
				// no-op if the provider did), or its goroutine and
				// connection would outlive t.
				_ = t.bp.Shutdown(ctx)
			})
		}
		wg.Wait()
		if merr != nil {
			merr = fmt.Errorf("shutdown metrics: %w", merr)
		}
		if lerr != nil {
			lerr = fmt.Errorf("shutdown events: %w", lerr)
		}
		t.shutdownErr = errors.Join(merr, lerr)
	})
	return t.shutdownErr
}

// promErrorLog routes promhttp's errors to slog.
type promErrorLog struct{ log *slog.Logger }

func (l promErrorLog) Println(v ...any) {
	l.log.Warn("prometheus scrape", "err", fmt.Sprint(v...))
}
