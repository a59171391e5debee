package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// retryableCodes are the ClickHouse error codes of a server that is
// unavailable, overloaded or not ready yet: the same insert can succeed
// later. Every other server error (a type mismatch, a value out of range, a
// syntax error) is permanent for the data that caused it.
var retryableCodes = map[int32]string{
	60:  "UNKNOWN_TABLE", // not migrated yet, or ON CLUSTER DDL not yet on this node
	81:  "UNKNOWN_DATABASE",
	159: "TIMEOUT_EXCEEDED",
	160: "TOO_SLOW",
	164: "READONLY",
	173: "CANNOT_ALLOCATE_MEMORY",
	202: "TOO_MANY_SIMULTANEOUS_QUERIES",
	203: "NO_FREE_CONNECTION",
	209: "SOCKET_TIMEOUT",
	210: "NETWORK_ERROR",
	225: "NO_ZOOKEEPER",
	236: "ABORTED",
	241: "MEMORY_LIMIT_EXCEEDED",
	242: "TABLE_IS_READ_ONLY",
	252: "TOO_MANY_PARTS",
	279: "ALL_CONNECTION_TRIES_FAILED",
	285: "TOO_FEW_LIVE_REPLICAS",
	286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
	319: "UNKNOWN_STATUS_OF_INSERT",
	394: "QUERY_WAS_CANCELLED",
	439: "CANNOT_SCHEDULE_TASK",
	473: "DEADLOCK_AVOIDED",
	574: "DISTRIBUTED_TOO_MANY_PENDING_BYTES",
	745: "SERVER_OVERLOADED",
	999: "KEEPER_EXCEPTION",
}

// IsRetryable reports whether err, from Insert or Migrate, is worth retrying
// with the same data: ClickHouse is unreachable, timed out, overloaded (too
// many parts, memory limit) or not ready, or ctx ended before the insert
// finished. It is false for nil and for permanent errors, which the same
// data will hit again: values the driver cannot convert and server errors
// such as type mismatches and syntax errors. An error of unknown kind is
// permanent. For an error that joins several (errors.Join), it is true if
// any of them is retryable.
func IsRetryable(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *clickhouse.Exception:
		_, ok := retryableCodes[e.Code]
		return ok
	case *ch.Exception: // the metric tables' inserts (native.go)
		_, ok := retryableCodes[int32(e.Code)]
		return ok
	case *column.ColumnConverterError, *column.Error, *column.UnsupportedColumnTypeError:
		return false
	case net.Error: // dial, read and write failures, timeouts
		return true
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if IsRetryable(c) {
				return true
			}
		}
		return false
	}
	for _, t := range transient {
		if err == t {
			return true
		}
	}
	return IsRetryable(errors.Unwrap(err))
}

// transient are errors of a connection or a deadline, not of the data.
var transient = []error{
	context.DeadlineExceeded, context.Canceled,
	io.EOF, io.ErrUnexpectedEOF,
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	driver.ErrBadConn,
	clickhouse.ErrAcquireConnTimeout, clickhouse.ErrConnectionClosed,
	ch.ErrClosed,
	errStoreClosed, // the Store closed under a writer that still runs: keep the batch
}
