package oip

import (
	"math"
	"strconv"
	"unsafe"
)

// Numbers of "data" arrays, one at a time: parseFloat32 and the parsers
// that viaToken makes of the conv functions below check JSON's grammar and
// convert as strconv does with the datatype's bit size, which is exactly
// what encoding/json uses, so both give the same values. scanArray
// (rest_envelope.go) runs them over an array; anything they refuse (strings,
// null, numbers out of range, a fraction for an integer type) sends the
// caller to the encoding/json path, whose results and errors stay the
// reference.

// parseFloat32 parses the number at b[i:] in JSON's grammar and converts
// it as strconv.ParseFloat with bit size 32 does, in one pass: it returns
// the value and the number's end, or ok false when b[i:] does not start
// with a JSON number or the number is out of float32's range.
func parseFloat32(b []byte, i int) (f float32, end int, ok bool) {
	neg, m, digits, exp, end, ok := scanDecimal(b, i)
	if !ok {
		return 0, 0, false
	}
	if digits <= 15 {
		if f, ok := decimalToFloat32(neg, m, exp); ok {
			return f, end, true
		}
	}
	f64, err := strconv.ParseFloat(unsafe.String(&b[i], end-i), 32)
	return float32(f64), end, err == nil
}

// scanDecimal reads the JSON number at b[i:]
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) as ±m·10^exp, m
// holding its first 19 significant digits at most and digits counting
// them all (m is exact when digits ≤ 19).
func scanDecimal(b []byte, i int) (neg bool, m uint64, digits, exp, end int, ok bool) {
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) {
		return
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			if digits < 19 {
				m = m*10 + uint64(d)
			} else {
				exp++
			}
			digits++
		}
	default:
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		first := i
		if m == 0 {
			for i < len(b) && b[i] == '0' { // not significant
				i++
				exp--
			}
		}
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			if digits < 19 {
				m = m*10 + uint64(d)
				exp--
			}
			digits++
		}
		if i == first {
			return
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		first, e := i, 0
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			if e < 10000 {
				e = e*10 + int(d)
			}
		}
		if i == first {
			return
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	return neg, m, digits, exp, i, true
}

// pow10 are the powers of ten that float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decimalToFloat32 converts ±m·10^exp, m < 10^15, correctly rounded, or
// reports false. m and 10^|exp| (|exp| ≤ 22) are exact in float64, so
// m·10^exp (or m/10^-exp) is one correctly rounded float64 operation
// (Clinger's fast path). Rounding that float64 to float32 is then correct
// too unless it lies exactly halfway between two float32s (the exact value
// may be on either side of it): that case, and any result outside
// float32's normal range, is left to strconv.
func decimalToFloat32(neg bool, m uint64, exp int) (float32, bool) {
	if m == 0 {
		if neg {
			return float32(math.Copysign(0, -1)), true
		}
		return 0, true
	}
	var f float64
	switch {
	case exp >= 0 && exp < len(pow10):
		f = float64(m) * pow10[exp]
	case exp < 0 && -exp < len(pow10):
		f = float64(m) / pow10[-exp]
	default:
		return 0, false
	}
	// Outside float32's normal range the midpoint test below does not hold.
	if f < 0x1p-125 || f > 0x1p127 {
		return 0, false
	}
	if math.Float64bits(f)&(1<<29-1) == 1<<28 {
		return 0, false // halfway between two float32s: let strconv decide
	}
	if neg {
		f = -f
	}
	return float32(f), true
}

func convFloat64(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func convInt[T int8 | int16 | int32 | int64](bits int) func(string) (T, bool) {
	return func(s string) (T, bool) {
		v, err := strconv.ParseInt(s, 10, bits)
		return T(v), err == nil
	}
}

func convUint[T uint8 | uint16 | uint32 | uint64](bits int) func(string) (T, bool) {
	return func(s string) (T, bool) {
		v, err := strconv.ParseUint(s, 10, bits)
		return T(v), err == nil
	}
}

var (
	convInt8   = convInt[int8](8)
	convInt16  = convInt[int16](16)
	convInt32  = convInt[int32](32)
	convInt64  = convInt[int64](64)
	convUint8  = convUint[uint8](8)
	convUint16 = convUint[uint16](16)
	convUint32 = convUint[uint32](32)
	convUint64 = convUint[uint64](64)
)

func scanAny[T any](s []T, ok bool) (any, bool) {
	if !ok {
		return nil, false
	}
	return s, true
}
