package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/semconv"
)

// Limits are the rules every data point and log record must meet when it
// is received, before it is spooled (docs/collector.md, "Input rules"). A
// point or record that breaks one is left out of the request, counted in
// the OTLP partial-success answer (rejected_data_points or
// rejected_log_records, with a message saying why) and in
// drover_collector_invalid_total{kind,reason}; the rest of the request is
// stored. A resource that breaks an attribute rule takes all its points
// with it.
type Limits struct {
	// MaxAge: a point whose timestamp is older than this (now - MaxAge) is
	// rejected (ClickHouse's day partitions and TTL are no place for it: a
	// request spanning more than 100 days is refused whole by ClickHouse).
	// Default 168h. A log record without a timestamp is judged by its
	// observed time; one with neither is too old.
	MaxAge time.Duration
	// MaxFuture: a point more than this ahead of the collector's clock is
	// rejected. Default 1h.
	MaxFuture time.Duration
	// MaxAttributes bounds the attributes of one point, log record or
	// resource; default 64.
	MaxAttributes int
	// MaxKeyBytes and MaxValueBytes bound an attribute's key and its value
	// (as the string it is stored as); defaults 128 and 8192.
	MaxKeyBytes, MaxValueBytes int
}

// Default limits.
const (
	DefaultMaxAge        = 168 * time.Hour
	DefaultMaxFuture     = time.Hour
	DefaultMaxAttributes = 64
	DefaultMaxKeyBytes   = 128
	DefaultMaxValueBytes = 8192
)

func (l Limits) withDefaults() Limits {
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultMaxAge
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = DefaultMaxFuture
	}
	if l.MaxAttributes <= 0 {
		l.MaxAttributes = DefaultMaxAttributes
	}
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	return l
}

// reason is why a point or record was rejected.
type reason int

const (
	reasonTooOld reason = iota
	reasonTooNew
	reasonModel
	reasonVersion
	reasonAttributes
	nReasons
)

// reasonLabels are the reason label of drover_collector_invalid_total.
var reasonLabels = [nReasons]string{"too_old", "too_new", "model", "version", "attributes"}

// edge applies Limits to one request. It is used by one goroutine, for one
// request; checking a point allocates nothing.
type edge struct {
	lim      Limits
	min, max uint64 // accepted timestamps, unix nanoseconds

	counts [nReasons]int
	// The first offence of each reason, for the message.
	firstTime [2]uint64
	firstStr  [nReasons]string

	// The last model and version found valid: a request's points name the
	// same few, checked once each.
	okModel, okVersion string

	// pairs is attrsBad's scratch: a map's attributes as strings (flat).
	pairs []string
}

func newEdge(lim Limits, now time.Time) *edge {
	e := &edge{lim: lim}
	if t := now.Add(-lim.MaxAge).UnixNano(); t > 0 {
		e.min = uint64(t)
	}
	e.max = uint64(now.Add(lim.MaxFuture).UnixNano())
	return e
}

func (e *edge) reject(r reason, s string) bool {
	if e.counts[r] == 0 {
		e.firstStr[r] = s
	}
	e.counts[r]++
	return true
}

func (e *edge) rejectTime(r reason, t uint64) bool {
	if e.counts[r] == 0 {
		e.firstTime[r] = t
	}
	e.counts[r]++
	return true
}

// attrBad checks one attribute, its value as the string it is stored
// as: the rule it breaks, if any.
func (e *edge) attrBad(k, s string) (reason, string, bool) {
	if len(k) > e.lim.MaxKeyBytes {
		return reasonAttributes, "a key of " + strconv.Itoa(len(k)) + " bytes", true
	}
	if len(s) > e.lim.MaxValueBytes {
		return reasonAttributes, k + ": a value of " + strconv.Itoa(len(s)) + " bytes", true
	}
	switch k {
	case semconv.AttrModel:
		if s != e.okModel {
			if s != "" && !manifest.ValidName(s) {
				return reasonModel, s, true
			}
			e.okModel = s
		}
	case semconv.AttrModelVersion:
		if s != e.okVersion {
			if s != "" && !validVersion(s) {
				return reasonVersion, s, true
			}
			e.okVersion = s
		}
	}
	return 0, "", false
}

// validVersion: a version is a decimal integer (the name of its
// directory, docs/manifest.md), at most 19 digits.
func validVersion(s string) bool {
	if len(s) == 0 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// attrsBad checks m without counting: the rule it breaks, if any.
func (e *edge) attrsBad(m pcommon.Map) (reason, string, bool) {
	if n := m.Len(); n > e.lim.MaxAttributes { // before flat: an oversized map is not copied
		return reasonAttributes, strconv.Itoa(n) + " attributes", true
	}
	e.pairs = flat(e.pairs[:0], m)
	return e.pairsBad(e.pairs)
}

// pairsBad is attrsBad for attributes as strings (flat).
func (e *edge) pairsBad(pairs []string) (reason, string, bool) {
	if n := len(pairs) / 2; n > e.lim.MaxAttributes {
		return reasonAttributes, strconv.Itoa(n) + " attributes", true
	}
	for i := 0; i < len(pairs); i += 2 {
		if r, s, bad := e.attrBad(pairs[i], pairs[i+1]); bad {
			return r, s, true
		}
	}
	return 0, "", false
}

// badAttrs checks m; true (and counted) if it breaks a rule.
func (e *edge) badAttrs(m pcommon.Map) bool {
	if r, s, bad := e.attrsBad(m); bad {
		return e.reject(r, s)
	}
	return false
}

// rejectN counts n offences of reason r.
func (e *edge) rejectN(r reason, s string, n int) {
	if n > 0 && e.counts[r] == 0 {
		e.firstStr[r] = s
	}
	e.counts[r] += n
}

// badPoint checks a point's timestamp and attributes.
func (e *edge) badPoint(t pcommon.Timestamp, attrs pcommon.Map) bool {
	switch ts := uint64(t); {
	case ts < e.min:
		return e.rejectTime(reasonTooOld, ts)
	case ts > e.max:
		return e.rejectTime(reasonTooNew, ts)
	}
	return e.badAttrs(attrs)
}

func (e *edge) rejected() int {
	n := 0
	for _, c := range e.counts {
		n += c
	}
	return n
}

// metrics removes from md the points that break a rule and returns how
// many it removed.
func (e *edge) metrics(md pmetric.Metrics) int {
	rms := md.ResourceMetrics()
	rms.RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		if r, s, bad := e.attrsBad(rm.Resource().Attributes()); bad {
			// The resource goes, with its points.
			e.rejectN(r, s, resourcePoints(rm))
			return true
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeGauge:
					m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return e.badPoint(dp.Timestamp(), dp.Attributes()) })
				case pmetric.MetricTypeSum:
					m.Sum().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return e.badPoint(dp.Timestamp(), dp.Attributes()) })
				case pmetric.MetricTypeHistogram:
					m.Histogram().DataPoints().RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return e.badPoint(dp.Timestamp(), dp.Attributes()) })
				case pmetric.MetricTypeExponentialHistogram:
					m.ExponentialHistogram().DataPoints().RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool {
						return e.badPoint(dp.Timestamp(), dp.Attributes())
					})
				case pmetric.MetricTypeSummary:
					m.Summary().DataPoints().RemoveIf(func(dp pmetric.SummaryDataPoint) bool { return e.badPoint(dp.Timestamp(), dp.Attributes()) })
				}
			}
		}
		return false
	})
	return e.rejected()
}

// resourcePoints counts the data points of one resource.
func resourcePoints(rm pmetric.ResourceMetrics) int {
	n := 0
	sms := rm.ScopeMetrics()
	for j := 0; j < sms.Len(); j++ {
		ms := sms.At(j).Metrics()
		for k := 0; k < ms.Len(); k++ {
			switch m := ms.At(k); m.Type() {
			case pmetric.MetricTypeGauge:
				n += m.Gauge().DataPoints().Len()
			case pmetric.MetricTypeSum:
				n += m.Sum().DataPoints().Len()
			case pmetric.MetricTypeHistogram:
				n += m.Histogram().DataPoints().Len()
			case pmetric.MetricTypeExponentialHistogram:
				n += m.ExponentialHistogram().DataPoints().Len()
			case pmetric.MetricTypeSummary:
				n += m.Summary().DataPoints().Len()
			}
		}
	}
	return n
}

// logs removes from ld the log records that break a rule and returns how
// many it removed.
func (e *edge) logs(ld plog.Logs) int {
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		if r, s, bad := e.attrsBad(rl.Resource().Attributes()); bad {
			n := 0
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				n += rl.ScopeLogs().At(j).LogRecords().Len()
			}
			e.rejectN(r, s, n)
			return true
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sls.At(j).LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				t := lr.Timestamp()
				if t == 0 {
					t = lr.ObservedTimestamp()
				}
				return e.badPoint(t, lr.Attributes())
			})
		}
		return false
	})
	return e.rejected()
}

// message is the partial-success error message: how many were rejected
// for what, with the first example of each reason.
func (e *edge) message(what string, total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d %s rejected:", e.rejected(), total, what)
	sep := " "
	for r := range nReasons {
		n := e.counts[r]
		if n == 0 {
			continue
		}
		b.WriteString(sep)
		sep = "; "
		switch r {
		case reasonTooOld:
			fmt.Fprintf(&b, "%d with a timestamp more than %s old (otlp.max_age), first %s", n, e.lim.MaxAge, stamp(e.firstTime[r]))
		case reasonTooNew:
			fmt.Fprintf(&b, "%d with a timestamp more than %s ahead (otlp.max_future), first %s", n, e.lim.MaxFuture, stamp(e.firstTime[r]))
		case reasonModel:
			fmt.Fprintf(&b, "%d with an invalid %s %q (a model name is 1 to 128 of A-Z a-z 0-9 _ . -, starting with a letter or digit)", n, semconv.AttrModel, clip(e.firstStr[r]))
		case reasonVersion:
			fmt.Fprintf(&b, "%d with an invalid %s %q (a version is a decimal integer)", n, semconv.AttrModelVersion, clip(e.firstStr[r]))
		case reasonAttributes:
			fmt.Fprintf(&b, "%d over the attribute limits (%d attributes, keys of %d bytes, values of %d bytes), first %s",
				n, e.lim.MaxAttributes, e.lim.MaxKeyBytes, e.lim.MaxValueBytes, clip(e.firstStr[r]))
		}
	}
	return b.String()
}

func stamp(t uint64) string { return time.Unix(0, int64(t)).UTC().Format(time.RFC3339Nano) }

// clip shortens what a client sent for a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// screen applies r's limits to a decoded request (pmetric.Metrics or
// plog.Logs) of total points or records: it removes the ones that break a
// rule and returns how many it removed and the partial-success message.
func (r *Receiver) screen(kind Kind, decoded any, total int) (rejected int, msg string) {
	e := newEdge(r.cfg.Limits, time.Now())
	what := "data points"
	switch d := decoded.(type) {
	case pmetric.Metrics:
		rejected = e.metrics(d)
	case plog.Logs:
		rejected = e.logs(d)
		what = "log records"
	}
	if rejected == 0 {
		return 0, ""
	}
	r.stats.invalid(kind, &e.counts)
	return rejected, e.message(what, total)
}
