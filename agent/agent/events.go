package agent

import (
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"

	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/semconv"
)

// recordEvent turns a version lifecycle event into telemetry: metrics, and
// an OTLP log record (docs/metrics.md, Events) so that the collector keeps
// the version history. An unloaded version's series and monitoring state
// are forgotten. It runs synchronously from the version set (see
// versions.Config.OnEvent): it must not block. tel and mon may be nil.
func recordEvent(tel *telemetry.Telemetry, mon *monitor.Monitor, e versions.Event) {
	version := strconv.FormatInt(e.Version, 10)
	var attrs []attribute.KeyValue
	if e.Reason != "" {
		attrs = append(attrs, attribute.String(semconv.AttrReason, e.Reason))
	}
	previous := attribute.String(semconv.AttrPrevious, strconv.FormatInt(e.Previous, 10))
	switch e.Kind {
	case versions.EventLoaded:
		tel.RecordLoad(e.Model, version, e.Duration, nil)
		tel.Event(semconv.EventLoaded, e.Model, version, append(attrs, attribute.Float64("drover.load.seconds", e.Duration.Seconds()))...)
	case versions.EventLoadFailed:
		tel.RecordLoad(e.Model, version, 0, errors.New(e.Reason))
		tel.Event(semconv.EventLoadFailed, e.Model, version, attrs...)
	case versions.EventRejected:
		tel.Event(semconv.EventRejected, e.Model, version, attrs...)
	case versions.EventSwapped:
		tel.RecordSwap(e.Model)
		tel.Event(semconv.EventSwapped, e.Model, version, append(attrs, previous)...)
	case versions.EventRolledBack:
		// The swap that goes with it is counted and sent on its own.
		tel.Event(semconv.EventRolledBack, e.Model, version, append(attrs, previous)...)
	case versions.EventUnloaded:
		tel.Event(semconv.EventUnloaded, e.Model, version, attrs...)
		tel.ForgetVersion(e.Model, version)
		if mon != nil {
			mon.Forget(e.Model, e.Version)
		}
	}
}
