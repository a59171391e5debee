package ingest

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// A spool record is: kind (1 byte), receive time (8 bytes, unix nanoseconds,
// little-endian), then the OTLP export request as protobuf.
const recordHeader = 9

// putRecordHeader writes the header into rec[:recordHeader], in front of
// the payload that rec[recordHeader:] already holds.
func putRecordHeader(rec []byte, kind Kind, at time.Time) {
	rec[0] = byte(kind)
	binary.LittleEndian.PutUint64(rec[1:], uint64(at.UnixNano()))
}

// decodeRecord splits a spool record into its kind, receive time and
// payload (which shares rec's memory).
func decodeRecord(rec []byte) (Kind, time.Time, []byte, error) {
	if len(rec) < recordHeader {
		return 0, time.Time{}, nil, fmt.Errorf("spool record of %d bytes is shorter than its header", len(rec))
	}
	return Kind(rec[0]), time.Unix(0, int64(binary.LittleEndian.Uint64(rec[1:]))), rec[recordHeader:], nil
}

// estimatePoints guesses rows from payload size (about 60 bytes of OTLP per
// data point) so batching needs no decode.
func estimatePoints(rec []byte) int { return max(1, (len(rec)-recordHeader)/60) }

// token is the deduplication token of the batch of spool records
// first..last of the spool whose ID is spoolID: the same range always gets
// the same token, and another spool's (another collector's) never does.
func token(spoolID string, first, last uint64) string {
	return "spool-" + spoolID + "-" + strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
}
