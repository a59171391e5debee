package ingest

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/drover-ml/drover/collector/store"
)

// Stats are the collector's own ingest metrics. The zero value is usable
// (and records nothing); NewStats registers them on reg. A Stats must not
// be copied once used.
type Stats struct {
	Received      *prometheus.CounterVec // points/records received, by kind
	Rejected      *prometheus.CounterVec // points/records refused (backpressure, errors), by kind
	Invalid       *prometheus.CounterVec // points/records rejected at receive time for breaking a rule (Limits), by kind and reason
	Spooled       *prometheus.CounterVec // points/records made durable in the spool, by kind
	Written       *prometheus.CounterVec // rows inserted into ClickHouse, by table
	Replayed      prometheus.Counter     // spool records replayed after a restart
	InsertErrors  *prometheus.CounterVec // failed inserts, by retryable
	DeadLetters   *prometheus.CounterVec // rows refused for their data and set aside, by where (table, file, dropped)
	UnknownErrors *prometheus.CounterVec // failed inserts with a ClickHouse error code store.ErrorCodes does not list, by code
	Panics        *prometheus.CounterVec // request handlers that panicked (answered as internal errors), by server (otlp, admin)
	BatchRows     prometheus.Histogram   // rows per insert batch
	InsertSeconds prometheus.Histogram   // insert latency
	LagSeconds    prometheus.GaugeFunc   // age of the oldest unwritten spool record, computed when read
	SpoolBytes    prometheus.Gauge       // bytes waiting in the spool
	SpoolRecords  prometheus.Gauge       // records waiting in the spool

	// oldest is the receive time (unix nanoseconds) of the oldest record
	// the writer has taken from the spool and not yet written; 0: none.
	oldest atomic.Int64
}

// NewStats creates the metrics and registers them on reg.
func NewStats(reg prometheus.Registerer) *Stats {
	s := &Stats{
		Received:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_received_total", Help: "OTLP data points and log records received."}, []string{"kind"}),
		Rejected:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_rejected_total", Help: "OTLP data points and log records refused (spool full or error); senders retry them."}, []string{"kind"}),
		Invalid:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_invalid_total", Help: "OTLP data points and log records rejected when received for breaking an input rule (reason: too_old, too_new, model, version, attributes); reported to the sender as a partial success, not retried."}, []string{"kind", "reason"}),
		Spooled:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_spooled_total", Help: "OTLP data points and log records made durable in the spool (acknowledged)."}, []string{"kind"}),
		Written:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_written_rows_total", Help: "Rows inserted into ClickHouse."}, []string{"table"}),
		Replayed:      prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_collector_replayed_records_total", Help: "Spool records written after a restart (they had been acknowledged before it)."}),
		InsertErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_insert_errors_total", Help: "Failed ClickHouse inserts."}, []string{"retryable"}),
		DeadLetters:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_dead_letters_total", Help: "Rows ClickHouse refused for their data, set aside: where=table (dead_letters), file (the dead-letter file, when the table refused them too) or dropped (neither could take them)."}, []string{"where"}),
		UnknownErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_insert_unknown_errors_total", Help: "Failed ClickHouse inserts whose error code the collector does not classify (retried); alert on it."}, []string{"code"}),
		Panics:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_collector_panics_total", Help: "Request handlers that panicked and were answered as internal errors (a bug: see the log line with the stack), by server: otlp or admin."}, []string{"server"}),
		BatchRows:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_collector_batch_rows", Help: "Rows per ClickHouse insert batch.", Buckets: prometheus.ExponentialBuckets(100, 4, 8)}),
		InsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_collector_insert_duration_seconds", Help: "ClickHouse insert latency per batch.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		SpoolBytes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "drover_collector_spool_bytes", Help: "Bytes in the spool not yet in ClickHouse."}),
		SpoolRecords:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "drover_collector_spool_records", Help: "Requests in the spool not yet in ClickHouse."}),
	}
	s.LagSeconds = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_collector_lag_seconds", Help: "Age of the oldest spool record not yet in ClickHouse."},
		func() float64 { return s.Lag(time.Now()).Seconds() })
	reg.MustRegister(s.Received, s.Rejected, s.Invalid, s.Spooled, s.Written, s.Replayed, s.InsertErrors, s.DeadLetters, s.UnknownErrors, s.Panics, s.BatchRows, s.InsertSeconds, s.LagSeconds, s.SpoolBytes, s.SpoolRecords)
	return s
}

// Lag is how long the oldest record the writer holds and has not yet
// written (in the batch it collects, or inserts and retries) has waited at
// now; 0 when it holds none. It keeps growing while inserts fail.
func (s *Stats) Lag(now time.Time) time.Duration {
	at := s.oldestPending()
	if at == 0 {
		return 0
	}
	return max(0, now.Sub(time.Unix(0, at)))
}

func (s *Stats) oldestPending() int64 { return s.oldest.Load() }

// setOldestPending records the receive time of the oldest record not yet
// written (zero: none).
func (s *Stats) setOldestPending(at time.Time) {
	if at.IsZero() {
		s.oldest.Store(0)
		return
	}
	s.oldest.Store(at.UnixNano())
}

// unknownCodes counts the error codes of err that store.ErrorCodes does
// not list (codes past 9999, which no ClickHouse has, as "other": the
// label's values stay bounded whatever a server sends).
func (s *Stats) unknownCodes(err error) []int32 {
	codes := store.UnknownCodes(err)
	if s.UnknownErrors == nil {
		return codes
	}
	for _, c := range codes {
		label := "other"
		if c >= 0 && c < 10000 {
			label = store.CodeLabel(c)
		}
		s.UnknownErrors.WithLabelValues(label).Inc()
	}
	return codes
}

func (s *Stats) received(k Kind, n int) {
	if s.Received != nil {
		s.Received.WithLabelValues(k.String()).Add(float64(n))
	}
}

func (s *Stats) rejected(k Kind, n int) {
	if s.Rejected != nil {
		s.Rejected.WithLabelValues(k.String()).Add(float64(n))
	}
}

func (s *Stats) invalid(k Kind, counts *[nReasons]int) {
	for r, n := range counts {
		if n > 0 {
			s.received(k, n)
			if s.Invalid != nil {
				s.Invalid.WithLabelValues(k.String(), reasonLabels[r]).Add(float64(n))
			}
		}
	}
}

func (s *Stats) spooled(k Kind, n int) {
	if s.Spooled != nil {
		s.Spooled.WithLabelValues(k.String()).Add(float64(n))
	}
}

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }
func protoJSON(m proto.Message) ([]byte, error)    { return protojson.Marshal(m) }
