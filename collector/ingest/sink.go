package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// recordSink is a Sink that also takes a payload with room for the spool
// record header in front of it (rec[recordHeader:] is the payload), which
// saves copying the request once.
type recordSink interface {
	acceptRecord(ctx context.Context, kind Kind, rec []byte, points int, decoded any) error
}

// SpoolSink is the Sink of the receivers: it appends each request to the
// spool (durably, per the spool's sync policy) before it is acknowledged,
// and, when Rows is set, converts the request the receiver already decoded
// into rows kept in memory for the writer, so the writer neither reads the
// spool nor decodes the request again (after a restart, or for requests
// that found the cache full, it does).
type SpoolSink struct {
	Spool *spool.Spool
	Stats *Stats
	Rows  *RowCache
	// Resources caches converted OTLP resources; nil: the package default.
	// Give the writer the same one.
	Resources *ResourceCache
}

// Accept appends the payload; a full spool is ErrBackpressure. While the
// writer keeps inserting, a request waits (up to RowCache's MaxWait) for
// room in the row cache first: the receivers then go at the pace of
// ClickHouse and every request is decoded once. When the writer cannot
// insert, requests go to the spool at once and are decoded again on replay.
func (s *SpoolSink) Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error {
	rec := make([]byte, recordHeader+len(payload))
	copy(rec[recordHeader:], payload)
	return s.acceptRecord(ctx, kind, rec, points, decoded)
}

func (s *SpoolSink) acceptRecord(ctx context.Context, kind Kind, rec []byte, points int, decoded any) error {
	// The rows' memory is estimated from the payload's size until they are
	// converted (OTLP's protobuf and the rows take about the same).
	estBytes := len(rec) - recordHeader
	cache := s.Rows != nil && s.Rows.reserve(ctx, points, estBytes)
	putRecordHeader(rec, kind, time.Now())
	// The rows are converted before the record is spooled and put in the
	// cache under its seq before it can be committed, so the writer, woken
	// by the commit, takes them instead of reading and decoding the record
	// again (before, it won that race for about half the records).
	var b *store.Batch
	if cache {
		b = &store.Batch{}
		switch d := decoded.(type) {
		case *store.Batch:
			b = d
		case pmetric.Metrics:
			s.Resources.convertMetrics(d, b)
		case plog.Logs:
			s.Resources.convertLogs(d, b)
		default:
			s.Rows.release(points, estBytes)
			cache = false
		}
	}
	var err error
	held := false
	if cache {
		_, err = s.Spool.AppendHeld(ctx, rec, func(seq uint64) {
			s.Rows.put(seq, b, points, estBytes)
			held = true
		})
	} else {
		_, err = s.Spool.Append(ctx, rec)
	}
	switch {
	case errors.Is(err, spool.ErrFull):
		err = ErrBackpressure
	case err != nil:
		err = fmt.Errorf("spool: %w", err)
	}
	if err != nil {
		if cache && !held {
			s.Rows.release(points, estBytes)
		}
		return err
	}
	if s.Stats != nil {
		s.Stats.spooled(kind, points)
	}
	return nil
}
