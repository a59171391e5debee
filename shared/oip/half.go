package oip

import "math"

// Half precision (FP16): conversions between IEEE 754 binary16 bits and
// float32/float64, used by the REST decoder and encoder (FP16 travels as
// JSON numbers) and by package evaluate (predictions read from FP16
// outputs).

// Float64ToHalf converts f to the nearest IEEE 754 half-precision value
// (ties to even) and returns its bits. Values beyond the half range become
// ±Inf, values below half the smallest subnormal ±0; NaN stays NaN (quiet).
// Converting directly from float64 avoids the double rounding of going
// through float32.
func Float64ToHalf(f float64) uint16 {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0x7ff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 1023
	switch {
	case e > 15:
		return sign | 0x7c00
	case e >= -14: // a normal half, unless rounding carries it to Inf
		m := mant >> 42
		rem := mant & (1<<42 - 1)
		h := uint32(e+15)<<10 | uint32(m)
		if rem > 1<<41 || (rem == 1<<41 && m&1 == 1) {
			h++ // a carry out of the mantissa increments the exponent, as it should
		}
		return sign | uint16(h)
	case e < -25: // below 2^-25, half the smallest subnormal: rounds to 0
		return sign
	}
	// A subnormal half: count units of 2^-24. The value is
	// (mant|1<<52) * 2^(e-52), so the count is that shifted right by 28-e.
	full := mant | 1<<52
	shift := uint(28 - e) // 43..53
	m := full >> shift
	rem := full & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || (rem == half && m&1 == 1) {
		m++ // may become 0x400, the smallest normal: the right encoding
	}
	return sign | uint16(m)
}

// HalfToFloat32 returns the value of the IEEE 754 half-precision bits h
// (exact: every half is a float32).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
