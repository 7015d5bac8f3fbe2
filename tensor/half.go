package tensor

import (
	"fmt"
	"math"
)

// This file converts between float32 and the two 16-bit float formats,
// bfloat16 and IEEE 754 binary16. The work is done with integer arithmetic
// on the bit patterns (the one float operation, scaling an f16 subnormal,
// is exact), so results do not depend on the FPU rounding mode, on
// operation fusion, or on how the hardware treats NaN payloads. Narrowing
// conversions round to nearest, ties to even.

// BF16FromF32 converts f to bfloat16 bits, rounding to nearest with ties to
// even. Finite values that round past the largest bfloat16 become ±Inf,
// ±Inf stays ±Inf, and a NaN stays a NaN of the same sign: it keeps the top
// 7 bits of its payload and is quieted (the top mantissa bit is set), so it
// can never turn into Inf.
func BF16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x0040
	}
	// Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry
	// out of the mantissa correctly bumps the exponent, up to Inf.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F32FromBF16 converts bfloat16 bits to float32. The conversion is exact,
// and NaN payloads are preserved.
func F32FromBF16(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// F16FromF32 converts f to IEEE 754 binary16 bits, rounding to nearest with
// ties to even. Results below the smallest normal are rounded correctly into
// the subnormal range and to ±0 on underflow (the sign is kept). Finite
// values of magnitude 65520 and above round to ±Inf, ±Inf stays ±Inf, and a
// NaN stays a NaN of the same sign: it keeps the top 10 bits of its payload
// and is quieted (the top mantissa bit is set).
func F16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	if h, ok := f16FromF32Normal(b); ok {
		return h
	}
	return f16FromF32Slow(b)
}

// f16FromF32Normal is the inlinable fast path of F16FromF32 for float32
// bits b: magnitudes in [2^-14, 2^16), which round to a normal f16 or, at
// the very top, carry into Inf. It reports false for every other input.
func f16FromF32Normal(b uint32) (uint16, bool) {
	a := b & 0x7fffffff
	if a-0x38800000 >= 0x47800000-0x38800000 { // one unsigned range check
		return 0, false
	}
	a -= (127 - 15) << 23 // rebias the exponent
	a += 0x0fff + (a>>13)&1
	return uint16(b>>16)&0x8000 | uint16(a>>13), true
}

// f16FromF32Slow handles the inputs outside F16FromF32's fast path: NaN,
// Inf and overflow, subnormal results, and underflow. b is the float32 bit
// pattern.
//
//go:noinline
func f16FromF32Slow(b uint32) uint16 {
	sign := uint16(b>>16) & 0x8000
	a := b & 0x7fffffff
	switch {
	case a > 0x7f800000: // NaN
		return sign | 0x7e00 | uint16(a>>13)&0x03ff
	case a >= 0x47800000: // >= 2^16 or Inf
		return sign | 0x7c00
	case a >= 0x33000000: // [2^-25, 2^-14): subnormal result (or 2^-14)
		e := a >> 23 // 102..112
		m := a&0x007fffff | 0x00800000
		shift := 126 - e // 14..24: the f16 result is m / 2^shift
		m += 1<<(shift-1) - 1 + (m>>shift)&1
		return sign | uint16(m>>shift)
	}
	return sign // < 2^-25: underflows to ±0 (2^-25 itself ties to 0)
}

// F32FromF16 converts IEEE 754 binary16 bits to float32. The conversion is
// exact for every value, subnormals included, and NaN payloads are
// preserved.
func F32FromF16(h uint16) float32 {
	if f, ok := f32FromF16Normal(h); ok {
		return f
	}
	return f32FromF16Slow(h)
}

// f32FromF16Normal is the inlinable fast path of F32FromF16: normal
// numbers (exponent field 1..30) only need the exponent rebiased. It
// reports false for zeros, subnormals, Inf and NaN.
func f32FromF16Normal(h uint16) (float32, bool) {
	x := uint32(h)
	if x&0x7c00-0x0400 >= 0x7800 { // one unsigned range check
		return 0, false
	}
	return math.Float32frombits(x&0x8000<<16 | (x&0x7fff<<13 + (127-15)<<23)), true
}

// f32FromF16Slow handles zeros, subnormals, Inf and NaN for F32FromF16.
//
//go:noinline
func f32FromF16Slow(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	m := uint32(h & 0x03ff)
	if h&0x7c00 != 0 { // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	// ±0 or subnormal: m * 2^-24 is exact in float32.
	return math.Float32frombits(sign | math.Float32bits(float32(m)*(1.0/(1<<24))))
}

// BF16FromF32Slice converts src[i] to bfloat16 bits in dst[i] as
// BF16FromF32 does, for every element of src. It requires
// len(dst) >= len(src) and panics otherwise; dst beyond len(src) is left
// untouched.
func BF16FromF32Slice(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		shortDst("BF16FromF32Slice", len(dst), len(src))
	}
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = BF16FromF32(f)
	}
}

// F32FromBF16Slice converts the bfloat16 bits src[i] to float32 in dst[i]
// as F32FromBF16 does, for every element of src. It requires
// len(dst) >= len(src) and panics otherwise; dst beyond len(src) is left
// untouched.
func F32FromBF16Slice(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		shortDst("F32FromBF16Slice", len(dst), len(src))
	}
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = F32FromBF16(h)
	}
}

// F16FromF32Slice converts src[i] to binary16 bits in dst[i] as F16FromF32
// does, for every element of src. It requires len(dst) >= len(src) and
// panics otherwise; dst beyond len(src) is left untouched.
func F16FromF32Slice(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		shortDst("F16FromF32Slice", len(dst), len(src))
	}
	dst = dst[:len(src)]
	for i, f := range src {
		b := math.Float32bits(f)
		if h, ok := f16FromF32Normal(b); ok {
			dst[i] = h
		} else {
			dst[i] = f16FromF32Slow(b)
		}
	}
}

// F32FromF16Slice converts the binary16 bits src[i] to float32 in dst[i] as
// F32FromF16 does, for every element of src. It requires
// len(dst) >= len(src) and panics otherwise; dst beyond len(src) is left
// untouched.
func F32FromF16Slice(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		shortDst("F32FromF16Slice", len(dst), len(src))
	}
	dst = dst[:len(src)]
	for i, h := range src {
		if f, ok := f32FromF16Normal(h); ok {
			dst[i] = f
		} else {
			dst[i] = f32FromF16Slow(h)
		}
	}
}

// shortDst panics for a destination slice shorter than its source. It is
// kept out of line so the callers' fast paths stay small.
//
//go:noinline
func shortDst(fn string, ldst, lsrc int) {
	panic(fmt.Sprintf("tensor.%s: destination too short: len(dst)=%d < len(src)=%d", fn, ldst, lsrc))
}
