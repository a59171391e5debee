package oip

import (
	"math"
	"math/big"
	"math/bits"
)

// The shortest decimal text of a float32, byte for byte what
// strconv.AppendFloat(buf, float64(f), 'g', -1, 32) writes, in less than
// half its time: strconv spends as much on its general formatting (a decimal
// buffer, the choice among formats and precisions) as on finding the
// digits, and a response of 1000 FP32 outputs spends most of its encoding
// there. The digits come from the Dragonbox algorithm (Junekey Jeon,
// "Dragonbox: A New Floating-Point Binary-to-Decimal Conversion
// Algorithm", 2020: Algorithms 5.2, 5.4 and 5.6 for binary32, κ = 1),
// which the standard library uses too; the text is written straight into
// the caller's buffer. TestAppendFloat32MatchesStrconv compares the two on
// the edges and on random bit patterns; TestAppendFloat32AllValues, with
// DROVER_FTOA32_ALL=1, on all 2^32 of them.

// f32pow10 holds, for 10^k with k in [f32kMin, f32kMax], the 64-bit
// significand φ of 10^k rounded up (exact when it fits: 0 ≤ k ≤ 27), so
// that 10^k ≈ φ · 2^(f32pow10Exp(k)-64) with φ's top bit set: the φ̃k of
// the paper for binary32. Computed once from exact integers.
const (
	f32kMin = -31
	f32kMax = 46
)

var f32pow10 = func() (t [f32kMax - f32kMin + 1]uint64) {
	for k := f32kMin; k <= f32kMax; k++ {
		// num/den = 10^k exactly; scale it to [2^63, 2^64) and round up.
		num, den := big.NewInt(1), big.NewInt(1)
		ten := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(k))), nil)
		if k >= 0 {
			num = ten
		} else {
			den = ten
		}
		shift := 64 - f32pow10Exp(k) // φ = ⌈10^k · 2^(64-e)⌉
		if shift >= 0 {
			num.Lsh(num, uint(shift))
		} else {
			den.Lsh(den, uint(-shift))
		}
		q, r := new(big.Int).QuoRem(num, den, new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		if q.BitLen() != 64 {
			panic("oip: f32pow10 out of range")
		}
		t[k-f32kMin] = q.Uint64()
	}
	return t
}()

func abs(k int) int {
	if k < 0 {
		return -k
	}
	return k
}

// f32pow10Exp is 1 + ⌊k·log2(10)⌋ (exact for |k| ≤ 500): 10^k lies in
// [2^(e-1), 2^e).
func f32pow10Exp(k int) int { return 1 + (k*108853)>>15 }

// floorLog10Pow2 is ⌊e·log10(2)⌋ for |e| ≤ 1600.
func floorLog10Pow2(e int) int { return (e * 78913) >> 18 }

// floorLog10Pow2MinusLog10FourThirds is ⌊e·log10(2) − log10(4/3)⌋.
func floorLog10Pow2MinusLog10FourThirds(e int) int { return (e*631305 - 261663) >> 21 }

// f32pow returns φ̃k and β = e + (the binary exponent of 10^k) − 1.
func f32pow(k, e int) (phi uint64, beta int) {
	return f32pow10[k-f32kMin], e + f32pow10Exp(k) - 1
}

// mulUpper returns the integer part of x·φ/2^64 and whether the fraction's
// upper 32 bits are zero (the paper's test for an integer).
func mulUpper(x uint32, phi uint64) (uint32, bool) {
	hi, lo := bits.Mul64(uint64(x), phi)
	r := hi<<32 | lo>>32 // the upper 64 of the 96-bit product
	return uint32(r >> 32), uint32(r) == 0
}

// parity32 returns the parity of the integer part of x·φ·2^β/2^64 and
// whether its fraction is zero.
func parity32(x uint32, phi uint64, beta int) (parity, isInt bool) {
	r := uint64(x) * phi // the lower 64 bits of the 96-bit product
	return (r>>(64-beta))&1 != 0, uint32(r>>(32-beta)) == 0
}

// trimZeros removes the trailing decimal zeros of d (non-zero).
func trimZeros(d uint32) (uint32, int) {
	n := 0
	for d%10 == 0 {
		d /= 10
		n++
	}
	return d, n
}

// shortestFloat32 returns the shortest decimal d·10^exp that reads back as
// the positive finite float32 with significand mant (hidden bit included)
// and binary exponent e (value mant·2^e), the closest of those when there
// are several, ties to even. d has no trailing zeros.
func shortestFloat32(mant uint32, e int, normal bool) (d uint32, exp int) {
	if mant == 1<<23 && normal {
		// The interval is shorter below than above (Algorithm 5.6).
		k0 := -floorLog10Pow2MinusLog10FourThirds(e)
		phi, beta := f32pow(k0, e)
		xi := uint32((phi - phi>>25) >> (40 - beta))
		zi := uint32((phi + phi>>24) >> (40 - beta))
		if e != 2 && e != 3 {
			xi++ // the left end is not an integer: it is excluded
		}
		if q := zi / 10; xi <= q*10 {
			q, z := trimZeros(q)
			return q, -k0 + 1 + z
		}
		y := uint32(phi>>(39-beta)+1) / 2
		if e == -77 && y%2 != 0 {
			y-- // a tie, to even
		} else if y < xi {
			y++
		}
		return y, -k0
	}
	// Algorithm 5.2, κ = 1.
	k0 := -floorLog10Pow2(e)
	phi, beta := f32pow(1+k0, e)
	zi, zInt := mulUpper((2*mant+1)<<beta, phi)
	s, r := zi/100, zi%100
	delta := uint32(phi >> (63 - beta))
	switch {
	case r < delta:
		if r != 0 || !zInt || mant%2 == 0 {
			s, z := trimZeros(s)
			return s, -k0 + 1 + z
		}
		s--
		r = 100
	case r == delta:
		if par, xInt := parity32(2*mant-1, phi, beta); par || xInt && mant%2 == 0 {
			s, z := trimZeros(s)
			return s, -k0 + 1 + z
		}
	}
	// Algorithm 5.4: the digit after s, correctly rounded.
	dd := r + 5 - delta/2
	t, rho := dd/10, dd%10
	y := 10*s + t
	if rho == 0 {
		if par, yInt := parity32(2*mant, phi, beta); par != ((dd-5)%2 != 0) || yInt && y%2 != 0 {
			y--
		}
	}
	return y, -k0
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendFloat32 appends f as strconv.AppendFloat(buf, float64(f), 'g', -1,
// 32) would.
func appendFloat32(buf []byte, f float32) []byte {
	b := math.Float32bits(f)
	if b&(1<<31) != 0 {
		buf = append(buf, '-')
	}
	frac, bexp := b&(1<<23-1), int(b>>23)&0xff
	switch {
	case bexp == 0xff:
		if frac != 0 {
			return append(buf[:len(buf)-int(b>>31)], "NaN"...)
		}
		if b>>31 == 0 {
			return append(buf, "+Inf"...)
		}
		return append(buf, "Inf"...)
	case bexp == 0 && frac == 0:
		return append(buf, '0')
	}
	mant, e := frac|1<<23, bexp-150
	if bexp == 0 {
		mant, e = frac, -149
	}
	d, exp := shortestFloat32(mant, e, bexp != 0)

	// The digits of d, at most 9, right-aligned in digs.
	var digs [10]byte
	i := len(digs)
	for d >= 100 {
		q := d / 100
		r := (d - q*100) * 2
		i -= 2
		digs[i], digs[i+1] = digitPairs[r], digitPairs[r+1]
		d = q
	}
	if d >= 10 {
		i -= 2
		digs[i], digs[i+1] = digitPairs[d*2], digitPairs[d*2+1]
	} else {
		i--
		digs[i] = byte('0' + d)
	}
	nd := len(digs) - i
	dp := nd + exp // the decimal point's place: the value is 0.digs × 10^dp
	ds := digs[i:]

	if x := dp - 1; x < -4 || x >= 6 {
		// d.ddde±XX
		buf = append(buf, ds[0])
		if nd > 1 {
			buf = append(buf, '.')
			buf = append(buf, ds[1:]...)
		}
		buf = append(buf, 'e')
		if x < 0 {
			buf = append(buf, '-')
			x = -x
		} else {
			buf = append(buf, '+')
		}
		if x < 10 {
			return append(buf, '0', byte('0'+x))
		}
		return append(buf, digitPairs[2*x], digitPairs[2*x+1])
	}
	switch {
	case dp <= 0: // 0.000ddd
		buf = append(buf, '0', '.')
		for ; dp < 0; dp++ {
			buf = append(buf, '0')
		}
		return append(buf, ds...)
	case dp >= nd: // ddd000
		buf = append(buf, ds...)
		for ; dp > nd; dp-- {
			buf = append(buf, '0')
		}
		return buf
	default: // dd.ddd
		buf = append(buf, ds[:dp]...)
		buf = append(buf, '.')
		return append(buf, ds[dp:]...)
	}
}
