package oip

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestFloat64ToHalf(t *testing.T) {
	cases := map[string]struct {
		in   float64
		want uint16
	}{
		"one":                        {1, 0x3c00},
		"minus two":                  {-2, 0xc000},
		"max":                        {65504, 0x7bff},
		"rounds down to max":         {65519.99, 0x7bff},
		"tie to even overflows":      {65520, 0x7c00},
		"overflow":                   {1e6, 0x7c00},
		"negative overflow":          {-1e6, 0xfc00},
		"smallest normal":            {math.Ldexp(1, -14), 0x0400},
		"smallest subnormal":         {math.Ldexp(1, -24), 0x0001},
		"largest subnormal":          {math.Ldexp(1023, -24), 0x03ff},
		"subnormal rounds to normal": {math.Ldexp(1023.5, -24), 0x0400},
		"subnormal tie to even down": {math.Ldexp(2.5, -24), 0x0002},
		"subnormal tie to even up":   {math.Ldexp(3.5, -24), 0x0004},
		"half smallest: tie to zero": {math.Ldexp(1, -25), 0x0000},
		"above half smallest":        {math.Ldexp(1.0000001, -25), 0x0001},
		"1e-8 underflows":            {1e-8, 0x0000},
		"negative underflow":         {-1e-8, 0x8000},
		"minus zero":                 {math.Copysign(0, -1), 0x8000},
		"one third":                  {1.0 / 3, 0x3555},
		"tie to even: 1+2^-11":       {1 + math.Ldexp(1, -11), 0x3c00},
		"tie to even: 1+3*2^-11":     {1 + 3*math.Ldexp(1, -11), 0x3c02},
		"just above tie rounds up":   {1 + math.Ldexp(1, -11) + math.Ldexp(1, -40), 0x3c01},
		"no double rounding":         {1 + math.Ldexp(1, -11) + math.Ldexp(1, -30), 0x3c01}, // via float32 it would tie and go down
		"inf":                        {math.Inf(1), 0x7c00},
		"minus inf":                  {math.Inf(-1), 0xfc00},
		"float64 subnormal":          {5e-324, 0x0000},
		"pi":                         {math.Pi, 0x4248},
		"0.1":                        {0.1, 0x2e66},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Float64ToHalf(tc.in); got != tc.want {
				t.Errorf("Float64ToHalf(%v) = %#04x, want %#04x", tc.in, got, tc.want)
			}
		})
	}
	if h := Float64ToHalf(math.NaN()); !isHalfNaN(h) {
		t.Errorf("Float64ToHalf(NaN) = %#04x, want a NaN", h)
	}
}

func TestHalfRoundTripAll(t *testing.T) {
	for h := range 1 << 16 {
		f := HalfToFloat32(uint16(h))
		if isHalfNaN(uint16(h)) {
			if f == f {
				t.Errorf("HalfToFloat32(%#04x) = %v, want NaN", h, f)
			}
			continue
		}
		if got := Float64ToHalf(float64(f)); got != uint16(h) {
			t.Errorf("Float64ToHalf(HalfToFloat32(%#04x) = %v) = %#04x", h, f, got)
		}
		// The JSON text of a half reads back to the same half.
		s := string(appendHalf(nil, uint16(h)))
		if strings.HasPrefix(s, `"`) {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || Float64ToHalf(v) != uint16(h) {
			t.Errorf("half %#04x written as %s reads back as %#04x (%v)", h, s, Float64ToHalf(v), err)
		}
	}
}

// refHalf rounds f to half precision with math/big (normals) or by scaling
// (subnormals), as an independent reference.
func refHalf(f float64) uint16 {
	a := math.Abs(f)
	var sign uint16
	if math.Signbit(f) {
		sign = 0x8000
	}
	if a < math.Ldexp(1, -14) {
		return sign | uint16(math.RoundToEven(a*(1<<24)))
	}
	r, _ := new(big.Float).SetPrec(11).SetMode(big.ToNearestEven).SetFloat64(a).Float64()
	if r > 65504 {
		return sign | 0x7c00
	}
	return sign | Float64ToHalf(r) // r is exactly a half: conversion is exact
}

func TestFloat64ToHalfRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		// Exponents around the half range, full float64 mantissas.
		f := math.Ldexp(1+rng.Float64(), rng.IntN(50)-30)
		if rng.IntN(2) == 0 {
			f = -f
		}
		if got, want := Float64ToHalf(f), refHalf(f); got != want {
			t.Fatalf("Float64ToHalf(%v) = %#04x, reference %#04x", f, got, want)
		}
	}
}
