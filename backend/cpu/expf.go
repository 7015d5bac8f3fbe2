package cpu

import (
	"math"
	"unsafe"
)

// expf is exp for float32, within 2 ulp of the correctly rounded value over
// the whole range, and several times faster than math.Exp: softmax,
// attention, cross-entropy and SiLU each take one per element.
//
// It reduces x = n*ln2 + r with |r| <= ln2/2 (ln2 split in two parts so
// that n*ln2_hi is exact), evaluates e^r by its Taylor series to degree 7
// (truncation error under 2e-8 relative), and multiplies by 2^n through the
// exponent bits.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // 9 significant bits: n*ln2hi is exact for |n| < 2^15
		ln2lo = -2.12194440e-4
	)
	switch {
	case x != x: // NaN
		return x
	case x > 88.0:
		if x > 88.72284 {
			return float32(math.Inf(1))
		}
		return float32(math.Exp(float64(x)))
	case x < -87.0:
		if x < -103.97282 {
			return 0
		}
		return float32(math.Exp(float64(x))) // subnormal results
	}
	// Adding 1.5*2^23 rounds x*log2e to an integer n in the low mantissa bits.
	t := x*log2e + 12582912
	n := t - 12582912
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.0 / 5040)
	p = p*r + 1.0/720
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits((math.Float32bits(t)-0x4b400000+127)<<23)
}

// exp is e^x in the kernel's precision: expf for float32, math.Exp for
// float64.
func exp[T Float](x T) T {
	if unsafe.Sizeof(x) == 4 {
		return T(expf(float32(x)))
	}
	return T(math.Exp(float64(x)))
}
