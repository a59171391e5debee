// Package telemetry is the agent's OpenTelemetry instrumentation: the
// metrics of serving, loading, sampling, evaluation and shadowing, drift
// distributions, and lifecycle events and samples as OTLP log records.
//
// One Telemetry owns its providers (no otel globals are read or set). Metrics
// are exported over OTLP every interval and served in the Prometheus text
// format by PrometheusHandler; events and samples go through a bounded
// batch queue. Recording never waits for the network: when the collector
// is unreachable, metrics keep aggregating in memory (cumulative, or delta
// since the last successful export, so the next successful export catches
// up), events beyond the queue are dropped and counted, and the failure is
// logged at most once per interval.
//
// Names and attribute keys come from shared/semconv and are documented in
// docs/metrics.md.
package telemetry
