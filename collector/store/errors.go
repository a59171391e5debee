package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// ErrorClass is what a ClickHouse error code says about an insert that
// failed with it.
type ErrorClass uint8

const (
	// ClassUnknown: a code the table does not list. Retried (the data is
	// kept), and counted so that someone looks
	// (drover_collector_insert_unknown_errors_total{code}).
	ClassUnknown ErrorClass = iota
	// ClassData: the rows themselves are refused (a type mismatch, a value
	// out of range, too many partitions in one INSERT); the same rows fail
	// again, whatever the server's state. Never retried as they are.
	ClassData
	// ClassAccess: the server refuses the user (failed login, missing grant,
	// quota, read-only): an operator fixes it; retried meanwhile.
	ClassAccess
	// ClassResource: the server is out of something (disk, memory, parts,
	// connections) or overloaded; retried.
	ClassResource
	// ClassUnavailable: network, timeouts, replicas, Keeper, a cancelled
	// query; retried.
	ClassUnavailable
	// ClassSchema: the schema is not (yet) what the collector writes: a
	// table, database or column missing (not migrated yet, ON CLUSTER DDL
	// not yet on this node); retried.
	ClassSchema
)

func (c ErrorClass) String() string {
	switch c {
	case ClassData:
		return "data"
	case ClassAccess:
		return "access"
	case ClassResource:
		return "resource"
	case ClassUnavailable:
		return "unavailable"
	case ClassSchema:
		return "schema"
	}
	return "unknown"
}

// Retryable reports whether an insert failing with an error of this class
// is retried with the same rows: every class but ClassData.
func (c ErrorClass) Retryable() bool { return c != ClassData }

// ErrorCodes is the class of every ClickHouse error code the collector
// knows (names as in ClickHouse's src/Common/ErrorCodes.cpp, checked with
// errorCodeToName on the engine the tests run). An insert is retried on
// every class but ClassData; a code not listed is ClassUnknown, also
// retried. docs/collector.md lists the table; a test keeps the two equal.
//
// One code is two things: TOO_MANY_PARTS (252) is also what ClickHouse
// answers to an INSERT whose rows fall into more partitions than
// max_partitions_per_insert_block ("Too many partitions for single INSERT
// block"): data, which no wait cures (ClassOf reads the message).
var ErrorCodes = map[int32]struct {
	Name  string
	Class ErrorClass
}{
	// Data: the rows are refused.
	6:   {"CANNOT_PARSE_TEXT", ClassData},
	19:  {"SIZE_OF_FIXED_STRING_DOESNT_MATCH", ClassData},
	26:  {"CANNOT_PARSE_QUOTED_STRING", ClassData},
	27:  {"CANNOT_PARSE_INPUT_ASSERTION_FAILED", ClassData},
	36:  {"BAD_ARGUMENTS", ClassData},
	38:  {"CANNOT_PARSE_DATE", ClassData},
	41:  {"CANNOT_PARSE_DATETIME", ClassData},
	43:  {"ILLEGAL_TYPE_OF_ARGUMENT", ClassData},
	44:  {"ILLEGAL_COLUMN", ClassData},
	53:  {"TYPE_MISMATCH", ClassData},
	62:  {"SYNTAX_ERROR", ClassData},
	69:  {"ARGUMENT_OUT_OF_BOUND", ClassData},
	70:  {"CANNOT_CONVERT_TYPE", ClassData},
	72:  {"CANNOT_PARSE_NUMBER", ClassData},
	117: {"INCORRECT_DATA", ClassData},
	128: {"TOO_LARGE_ARRAY_SIZE", ClassData},
	131: {"TOO_LARGE_STRING_SIZE", ClassData},
	190: {"SIZES_OF_ARRAYS_DONT_MATCH", ClassData},
	248: {"INVALID_PARTITION_VALUE", ClassData},
	321: {"VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", ClassData},
	349: {"CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", ClassData},
	376: {"CANNOT_PARSE_UUID", ClassData},
	407: {"DECIMAL_OVERFLOW", ClassData},
	467: {"CANNOT_PARSE_BOOL", ClassData},
	469: {"VIOLATED_CONSTRAINT", ClassData},
	565: {"TOO_MANY_PARTITIONS", ClassData},
	691: {"UNKNOWN_ELEMENT_OF_ENUM", ClassData},
	760: {"UNICODE_ERROR", ClassData},

	// Access: an operator fixes the user, its grants or quota.
	164: {"READONLY", ClassAccess},
	192: {"UNKNOWN_USER", ClassAccess},
	193: {"WRONG_PASSWORD", ClassAccess},
	194: {"REQUIRED_PASSWORD", ClassAccess},
	195: {"IP_ADDRESS_NOT_ALLOWED", ClassAccess},
	201: {"QUOTA_EXCEEDED", ClassAccess},
	291: {"DATABASE_ACCESS_DENIED", ClassAccess},
	452: {"SETTING_CONSTRAINT_VIOLATION", ClassAccess},
	472: {"READONLY_SETTING", ClassAccess},
	497: {"ACCESS_DENIED", ClassAccess},
	516: {"AUTHENTICATION_FAILED", ClassAccess},
	700: {"USER_SESSION_LIMIT_EXCEEDED", ClassAccess},
	720: {"USER_EXPIRED", ClassAccess},
	767: {"REQUIRED_SECOND_FACTOR", ClassAccess},

	// Resource: the server is out of something, or overloaded.
	75:  {"CANNOT_WRITE_TO_FILE_DESCRIPTOR", ClassResource},
	76:  {"CANNOT_OPEN_FILE", ClassResource},
	172: {"CANNOT_CREATE_DIRECTORY", ClassResource},
	173: {"CANNOT_ALLOCATE_MEMORY", ClassResource},
	202: {"TOO_MANY_SIMULTANEOUS_QUERIES", ClassResource},
	203: {"NO_FREE_CONNECTION", ClassResource},
	204: {"CANNOT_FSYNC", ClassResource},
	241: {"MEMORY_LIMIT_EXCEEDED", ClassResource},
	242: {"TABLE_IS_READ_ONLY", ClassResource},
	243: {"NOT_ENOUGH_SPACE", ClassResource},
	252: {"TOO_MANY_PARTS", ClassResource},
	290: {"LIMIT_EXCEEDED", ClassResource},
	364: {"RECEIVED_ERROR_TOO_MANY_REQUESTS", ClassResource},
	384: {"PART_IS_TEMPORARILY_LOCKED", ClassResource},
	425: {"SYSTEM_ERROR", ClassResource},
	439: {"CANNOT_SCHEDULE_TASK", ClassResource},
	473: {"DEADLOCK_AVOIDED", ClassResource},
	499: {"S3_ERROR", ClassResource},
	574: {"DISTRIBUTED_TOO_MANY_PENDING_BYTES", ClassResource},
	586: {"CANNOT_CREATE_FILE", ClassResource},
	692: {"TOO_MANY_MUTATIONS", ClassResource},
	738: {"PART_IS_LOCKED", ClassResource},
	745: {"SERVER_OVERLOADED", ClassResource},
	749: {"TCP_CONNECTION_LIMIT_REACHED", ClassResource},
	776: {"RESOURCE_LIMIT_EXCEEDED", ClassResource},
	777: {"MEMORY_RESERVATION_KILLED", ClassResource},
	778: {"MEMORY_RESERVATION_FAILED", ClassResource},

	// Unavailable: network, timeouts, replicas, Keeper, cancellation.
	95:  {"CANNOT_READ_FROM_SOCKET", ClassUnavailable},
	96:  {"CANNOT_WRITE_TO_SOCKET", ClassUnavailable},
	159: {"TIMEOUT_EXCEEDED", ClassUnavailable},
	160: {"TOO_SLOW", ClassUnavailable},
	198: {"DNS_ERROR", ClassUnavailable},
	209: {"SOCKET_TIMEOUT", ClassUnavailable},
	210: {"NETWORK_ERROR", ClassUnavailable},
	225: {"NO_ZOOKEEPER", ClassUnavailable},
	236: {"ABORTED", ClassUnavailable},
	244: {"UNEXPECTED_ZOOKEEPER_ERROR", ClassUnavailable},
	254: {"NO_ACTIVE_REPLICAS", ClassUnavailable},
	265: {"NO_AVAILABLE_REPLICA", ClassUnavailable},
	279: {"ALL_CONNECTION_TRIES_FAILED", ClassUnavailable},
	285: {"TOO_FEW_LIVE_REPLICAS", ClassUnavailable},
	286: {"UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", ClassUnavailable},
	289: {"REPLICA_IS_NOT_IN_QUORUM", ClassUnavailable},
	297: {"SHARD_HAS_NO_CONNECTIONS", ClassUnavailable},
	319: {"UNKNOWN_STATUS_OF_INSERT", ClassUnavailable},
	394: {"QUERY_WAS_CANCELLED", ClassUnavailable},
	410: {"EXTERNAL_SERVER_IS_NOT_RESPONDING", ClassUnavailable},
	519: {"NO_REMOTE_SHARD_AVAILABLE", ClassUnavailable},
	733: {"TABLE_IS_BEING_RESTARTED", ClassUnavailable},
	735: {"QUERY_WAS_CANCELLED_BY_CLIENT", ClassUnavailable},
	904: {"TOO_MANY_UNAVAILABLE_SHARDS", ClassUnavailable},
	999: {"KEEPER_EXCEPTION", ClassUnavailable},

	// Schema: not migrated yet, or DDL not yet on this node.
	16:  {"NO_SUCH_COLUMN_IN_TABLE", ClassSchema},
	60:  {"UNKNOWN_TABLE", ClassSchema},
	81:  {"UNKNOWN_DATABASE", ClassSchema},
	218: {"TABLE_IS_DROPPED", ClassSchema},
}

// tooManyPartitions starts the message of TOO_MANY_PARTS for an INSERT
// whose rows span more than max_partitions_per_insert_block partitions.
const tooManyPartitions = "Too many partitions for single INSERT block"

// classOfCode is the class of a server error.
func classOfCode(code int32, msg string) ErrorClass {
	if code == 252 && strings.Contains(msg, tooManyPartitions) {
		return ClassData
	}
	if c, ok := ErrorCodes[code]; ok {
		return c.Class
	}
	return ClassUnknown
}

// ServerError is the code and message of the first ClickHouse server
// exception in err (either client's, however wrapped or joined); ok is
// false when err holds none.
func ServerError(err error) (code int32, msg string, ok bool) {
	var ce *clickhouse.Exception
	if errors.As(err, &ce) {
		return ce.Code, ce.Message, true
	}
	var ne *ch.Exception
	if errors.As(err, &ne) {
		return int32(ne.Code), ne.Message, true
	}
	return 0, "", false
}

// UnknownCodes returns the codes of the server exceptions in err that
// ErrorCodes does not list (each once, in order): retried, and worth an
// alert.
func UnknownCodes(err error) []int32 {
	var out []int32
	walk(err, func(e error) {
		code, msg, ok := exceptionOf(e)
		if ok && classOfCode(code, msg) == ClassUnknown {
			for _, c := range out {
				if c == code {
					return
				}
			}
			out = append(out, code)
		}
	})
	return out
}

// CodeLabel is a code as a metric label or a dead letter's: its decimal
// value.
func CodeLabel(code int32) string { return strconv.Itoa(int(code)) }

// walk calls f on err and every error it wraps or joins.
func walk(err error, f func(error)) {
	for err != nil {
		f(err)
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c, f)
			}
			return
		}
		err = errors.Unwrap(err)
	}
}

func exceptionOf(err error) (int32, string, bool) {
	switch e := err.(type) {
	case *clickhouse.Exception:
		return e.Code, e.Message, true
	case *ch.Exception:
		return int32(e.Code), e.Message, true
	}
	return 0, "", false
}

// IsRetryable reports whether err, from Insert or Migrate, is worth retrying
// with the same data: ClickHouse is unreachable, timed out, overloaded
// (too many parts, memory limit), out of disk, refuses the user (failed
// login, missing grant, quota) or is not ready, or ctx ended before the
// insert finished; a server error whose code ErrorCodes does not list is
// retried too. It is false for nil and for errors of the data, which the
// same rows will hit again: values the driver cannot convert, server
// errors of ClassData (type mismatches, too many partitions for one
// INSERT), and errors of no known kind (the client refused the rows). For
// an error that joins several (errors.Join), it is true if any of them is
// retryable.
func IsRetryable(err error) bool { return retryable(err, true) }

// retryable is IsRetryable; unknown says whether a server error of
// ClassUnknown is retryable.
func retryable(err error, unknown bool) bool {
	code := func(c int32, msg string) bool {
		cl := classOfCode(c, msg)
		if cl == ClassUnknown {
			return unknown
		}
		return cl.Retryable()
	}
	switch e := err.(type) {
	case nil:
		return false
	case *clickhouse.Exception:
		return code(e.Code, e.Message)
	case *ch.Exception: // the metric tables' inserts (native.go)
		return code(int32(e.Code), e.Message)
	case *column.ColumnConverterError, *column.Error, *column.UnsupportedColumnTypeError:
		return false
	case net.Error: // dial, read and write failures, timeouts
		return true
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if retryable(c, unknown) {
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
	return retryable(errors.Unwrap(err), unknown)
}

// IsAccessError reports whether err holds a server error of ClassAccess
// (bad credentials, a missing grant, a quota). Inserts retry it; a schema
// applied at start does not (the collector refuses to start with
// credentials that cannot work).
func IsAccessError(err error) bool {
	found := false
	walk(err, func(e error) {
		if code, msg, ok := exceptionOf(e); ok && classOfCode(code, msg) == ClassAccess {
			found = true
		}
	})
	return found
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
