package oip

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// convFloat32 converts a whole JSON number as strconv.ParseFloat(s, 32)
// does.
func convFloat32(s string) (float32, bool) {
	f, end, ok := parseFloat32([]byte(s), 0)
	return f, ok && end == len(s)
}

// fastFloat32 is parseFloat32's fast path alone: false where it would
// call strconv.
func fastFloat32(s string) (float32, bool) {
	neg, m, digits, exp, end, ok := scanDecimal([]byte(s), 0)
	if !ok || end != len(s) || digits > 15 {
		return 0, false
	}
	return decimalToFloat32(neg, m, exp)
}

// checkFloat32 compares the fast path alone and convFloat32 with strconv.
func checkFloat32(t *testing.T, s string) {
	t.Helper()
	want, err := strconv.ParseFloat(s, 32)
	if got, ok := convFloat32(s); ok != (err == nil) {
		t.Fatalf("convFloat32(%q) = %v, %v; strconv: %v", s, got, ok, err)
	} else if ok && math.Float32bits(got) != math.Float32bits(float32(want)) {
		t.Fatalf("convFloat32(%q) = %v (%#x), strconv %v (%#x)", s, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
	}
	got, ok := fastFloat32(s)
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("fastFloat32(%q) = %v, strconv refuses it: %v", s, got, err)
	}
	if math.Float32bits(got) != math.Float32bits(float32(want)) {
		t.Fatalf("fastFloat32(%q) = %v (%#x), strconv %v (%#x)", s, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
	}
}

// TestFastFloat32 compares the fast path with strconv on every kind of
// number the encoder writes and on random decimals of every length.
func TestFastFloat32(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "0.5", "3.4028235e38", "1e-38", "1.17549435e-38", "16777217",
		"0.1", "0.2", "0.3", "123456.789", "1e22", "1e23", "9007199254740993", "0.60466176", "1e-45", "-2.5e-3",
		"0.000000000000000000000000000000000000000000001", "100000000000000000000000000000000000000000", "1e39", "-1e39",
		"0.00000000000000000000000000000000000000000000000001", "1.00000005960464477550", "1e-99999", "1e99999",
		"123456789012345678901234567890e-20", "0.1234567890123456789012345"} {
		checkFloat32(t, s)
	}
	hits := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(rng.Uint32())
		if f != f || math.IsInf(float64(f), 0) {
			continue
		}
		s := strconv.FormatFloat(float64(f), 'g', -1, 32)
		checkFloat32(t, s)
		// Decimals with more digits than the float32 needs.
		d := strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(20)-10)), 'g', 1+rng.IntN(16), 64)
		checkFloat32(t, d)
		if _, ok := fastFloat32(d); ok {
			hits++
		}
	}
	if hits == 0 {
		t.Fatal("the fast path never applied")
	}
}

// FuzzFastFloat32 checks the fast path against strconv on any number text.
func FuzzFastFloat32(f *testing.F) {
	for _, s := range []string{"0.60466176", "1e22", "-0", "3.4028235e38", "1.0000000596046448"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := fastParser{b: []byte(s)}
		if !p.number() || p.i != len(s) {
			return // not a JSON number: the scanner never passes it
		}
		checkFloat32(t, s)
	})
}
