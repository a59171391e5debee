package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// FollowingCollectors returns c for an agent that follows collectors whose
// agent token is in tokenFile (control.token_file): without an explicit
// endpoint, OTLP goes where the collectors' registration answers say
// (FollowCollector) and carries that token; with one, the token is
// telemetry.token_file, or tokenFile when that is empty.
func (c Config) FollowingCollectors(tokenFile string) Config {
	if c.TokenFile == "" || !c.ExplicitEndpoint() {
		c.TokenFile = tokenFile
	}
	return c
}

// Endpoint returns where the OTLP exporters send now: the configured
// endpoint, or the one FollowCollector last switched to.
func (t *Telemetry) Endpoint() string {
	if t == nil {
		return ""
	}
	return *t.endpoint.Load()
}

// FollowCollector points the OTLP exporters at the endpoint a collector's
// registration answer names (docs/fleet.md, the control channel): grpc
// (host:port) with protocol grpc, the host:port of the http URL with
// protocol http/protobuf. TLS, headers and the token stay the
// configuration's. It changes nothing when the configuration names an
// endpoint (Config.ExplicitEndpoint), when export is disabled, when the
// exporters were injected (WithMetricExporter, WithLogExporter), or when
// the endpoint is already the one in use; it reports whether it switched.
//
// A switch builds new exporters, swaps them in and shuts the old ones
// down: what the failed exports did not deliver goes with the next export
// (metrics, after the export in flight ended); an events export in flight
// is cancelled and sent to the new collector. Safe for concurrent use.
func (t *Telemetry) FollowCollector(ctx context.Context, grpc, http string) (bool, error) {
	if t == nil || t.mexp == nil || t.lexp == nil || t.cfg.ExplicitEndpoint() || t.injected {
		return false, nil
	}
	ep, err := collectorEndpoint(t.cfg, grpc, http)
	if err != nil || ep == "" {
		return false, err
	}
	t.redirect.Lock()
	defer t.redirect.Unlock()
	if t.closed.Load() || ep == t.Endpoint() {
		return false, nil
	}
	cfg := t.cfg
	cfg.Endpoint = ep
	mexp, err := newOTLPMetricExporter(ctx, cfg, t.tc)
	if err != nil {
		return false, fmt.Errorf("otlp metric exporter for %s: %w", ep, err)
	}
	lexp, err := newOTLPLogExporter(ctx, cfg, t.tc)
	if err != nil {
		_ = mexp.Shutdown(ctx)
		return false, fmt.Errorf("otlp log exporter for %s: %w", ep, err)
	}
	oldM := t.mexp.swap(mexp)
	oldL := t.lexp.swap(lexp)
	prev := t.Endpoint()
	t.endpoint.Store(&ep)
	t.log.Info("telemetry: sending OTLP where the collector says", "endpoint", ep, "protocol", cfg.Protocol, "previous", prev)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
	defer cancel()
	if err := errors.Join(oldM.Shutdown(sctx), oldL.Shutdown(sctx)); err != nil {
		t.log.Debug("telemetry: shut down the previous exporters", "endpoint", prev, "err", err)
	}
	return true, nil
}

// collectorEndpoint picks, from a registration answer, the endpoint of
// cfg's protocol as host:port ("" when the collector names none).
func collectorEndpoint(cfg Config, grpc, http string) (string, error) {
	if cfg.Protocol != ProtocolHTTP {
		if grpc == "" {
			return "", nil
		}
		if err := validEndpoint(grpc); err != nil {
			return "", fmt.Errorf("the collector's otlp.grpc: %w", err)
		}
		return grpc, nil
	}
	if http == "" {
		return "", nil
	}
	u, err := url.Parse(http)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("the collector's otlp.http: want an http:// or https:// URL, got %q", http)
	}
	if u.Scheme == "https" && cfg.insecure() {
		return "", fmt.Errorf("the collector's otlp.http %s needs TLS, but telemetry.insecure is true: configure telemetry.tls", http)
	}
	if err := validEndpoint(u.Host); err != nil {
		return "", fmt.Errorf("the collector's otlp.http: %w", err)
	}
	return u.Host, nil
}

// swap makes exp the exporter, once the export in flight (if any) ended,
// and returns the previous one.
func (e *metricExporter) swap(exp sdkmetric.Exporter) sdkmetric.Exporter {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.exp
	e.exp = exp
	return old
}

func (e *metricExporter) current() sdkmetric.Exporter {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.exp
}

func (e *metricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.current().Temporality(k)
}

func (e *metricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return e.current().Aggregation(k)
}

func (e *metricExporter) ForceFlush(ctx context.Context) error { return e.current().ForceFlush(ctx) }
func (e *metricExporter) Shutdown(ctx context.Context) error   { return e.current().Shutdown(ctx) }

// swap makes exp the exporter for events and returns the previous one,
// once the export in flight (if any) has ended: it cancels that export,
// which then sends its records to exp (see logExporter).
func (e *logExporter) swap(exp sdklog.Exporter) sdklog.Exporter {
	e.mu.Lock()
	old := e.exp
	e.exp = exp
	e.gen++
	if e.cancel != nil {
		e.cancel()
	}
	inflight := e.inflight
	e.mu.Unlock()
	if inflight != nil {
		<-inflight // the old exporter is no longer in use
	}
	return old
}

func (e *logExporter) current() sdklog.Exporter {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exp
}

func (e *logExporter) ForceFlush(ctx context.Context) error { return e.current().ForceFlush(ctx) }
func (e *logExporter) Shutdown(ctx context.Context) error   { return e.current().Shutdown(ctx) }
