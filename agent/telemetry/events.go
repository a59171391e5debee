package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"

	"github.com/drover-ml/drover/shared/semconv"
)

// Event sends a lifecycle event of a model version (kind is one of
// semconv.Event*, for example semconv.EventSwapped) as an OTLP log record
// with event name kind and the attributes drover.event, drover.model,
// drover.model.version and attrs (for example semconv.AttrReason or
// semconv.AttrPrevious). It never blocks: when MaxQueue events wait for
// export the event is dropped and counted in drover.events.dropped. With
// OTLP export disabled, or after Shutdown, it does nothing.
func (t *Telemetry) Event(kind string, model, version string, attrs ...attribute.KeyValue) {
	if t == nil || t.logger == nil || t.closed.Load() {
		return
	}
	if !t.admit(kind) {
		return
	}
	now := t.now()
	var r otellog.Record
	r.SetEventName(kind)
	r.SetTimestamp(now)
	r.SetObservedTimestamp(now)
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetBody(attribute.StringValue(kind + " " + model + " v" + version))
	r.AddAttributes(
		attribute.String(semconv.AttrEventKind, kind),
		attribute.String(semconv.AttrModel, model),
		attribute.String(semconv.AttrModelVersion, version),
	)
	r.AddAttributes(attrs...)
	t.logger.Emit(context.Background(), r)
}

// Sample sends a sampled request (training data) as an OTLP log record
// with event name semconv.EventSample, timestamp ts, the attributes
// drover.event, drover.model, drover.model.version and drover.request.id,
// and as body the JSON text {"inputs":<inputsJSON>,"outputs":<outputsJSON>}.
// Each part must be one JSON value, as oip's encoder writes it (it is not
// validated again: that took more CPU than the encoding); an empty one is
// sent as null. It queues like Event (bounded, dropped and
// counted when full) and does not keep the slices.
func (t *Telemetry) Sample(model, version, requestID string, inputsJSON, outputsJSON []byte, ts time.Time) {
	if t == nil || t.logger == nil || t.closed.Load() {
		return
	}
	if !t.admit(semconv.EventSample) {
		return
	}
	body := make([]byte, 0, len(inputsJSON)+len(outputsJSON)+24)
	body = append(body, `{"inputs":`...)
	body = appendJSON(body, inputsJSON)
	body = append(body, `,"outputs":`...)
	body = appendJSON(body, outputsJSON)
	body = append(body, '}')

	var r otellog.Record
	r.SetEventName(semconv.EventSample)
	r.SetTimestamp(ts)
	r.SetObservedTimestamp(t.now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetBody(attribute.StringValue(string(body)))
	r.AddAttributes(
		attribute.String(semconv.AttrEventKind, semconv.EventSample),
		attribute.String(semconv.AttrModel, model),
		attribute.String(semconv.AttrModelVersion, version),
		attribute.String(semconv.AttrRequestID, requestID),
	)
	t.logger.Emit(context.Background(), r)
}

// appendJSON appends the JSON value b, or null when b is empty.
func appendJSON(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// admit takes a queue slot for one record, or counts it as dropped. A slot
// is released when the exporter returns from the export that carried the
// record (logExporter), so at most MaxQueue records are ever queued or in
// flight and the batch processor's own queue (of that size) never drops.
func (t *Telemetry) admit(kind string) bool {
	if t.pending.Add(1) <= int64(t.cfg.MaxQueue) {
		return true
	}
	t.pending.Add(-1)
	a := t.attrs.get(attrKey{kind: setEventKnd, a: kind})
	t.inst.eventsDropped.Add(context.Background(), 1, a.add...)
	return false
}
