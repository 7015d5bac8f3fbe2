package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// ---------------------------------------------------------------------------
// Independent float64 reference.
//
// Everything below decodes the 16-bit formats from their bit fields with
// float64 arithmetic (math.Ldexp is exact here) and never calls the code
// under test, so the tests compare against a second, unrelated derivation.

// f16Ref returns the value of binary16 bits h computed from the bit fields:
// sign * 2^(e-15) * (1 + m/1024) for normals and sign * 2^-14 * (m/1024)
// for subnormals. Inf and NaN map to ±Inf and NaN.
func f16Ref(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return math.Inf(int(s))
	case 0:
		return math.Copysign(math.Ldexp(m/1024, -14), s)
	}
	return math.Copysign(math.Ldexp(1+m/1024, e-15), s)
}

// bf16Ref returns the value of bfloat16 bits h computed from the bit
// fields: sign * 2^(e-127) * (1 + m/128) for normals and
// sign * 2^-126 * (m/128) for subnormals.
func bf16Ref(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	switch e {
	case 0xff:
		if m != 0 {
			return math.NaN()
		}
		return math.Inf(int(s))
	case 0:
		return math.Copysign(math.Ldexp(m/128, -126), s)
	}
	return math.Copysign(math.Ldexp(1+m/128, e-127), s)
}

func f16IsNaN(h uint16) bool  { return h&0x7c00 == 0x7c00 && h&0x03ff != 0 }
func bf16IsNaN(h uint16) bool { return h&0x7f80 == 0x7f80 && h&0x007f != 0 }

// refTable lists the non-negative finite values of a 16-bit format in
// increasing order; the index of a value is its bit pattern. One extra
// entry follows the largest finite value: the value the next pattern would
// have with an unbounded exponent (2^16 for f16, 2^128 for bf16). Its
// index is the +Inf pattern, so IEEE overflow rounding ("round as if the
// exponent range were unbounded, then overflow to Inf") falls out of the
// ordinary nearest search.
type refTable []float64

func buildTable(inf uint16, dec func(uint16) float64, virt float64) refTable {
	t := make(refTable, int(inf)+1)
	for h := range inf {
		t[h] = dec(h)
	}
	t[inf] = virt
	for i := 1; i < len(t); i++ {
		if !(t[i] > t[i-1]) {
			panic(fmt.Sprintf("reference table not increasing at %#04x", i))
		}
	}
	return t
}

var (
	f16Table  = sync.OnceValue(func() refTable { return buildTable(0x7c00, f16Ref, 0x1p16) })
	bf16Table = sync.OnceValue(func() refTable { return buildTable(0x7f80, bf16Ref, 0x1p128) })
)

// nearest returns the bits of the value in t nearest to x, ties to the
// even pattern (which is the even mantissa), with x's sign. NaN inputs are
// the caller's business.
func (t refTable) nearest(x float32) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	ax := math.Abs(float64(x))
	last := len(t) - 1
	if ax >= t[last] {
		return sign | uint16(last)
	}
	i, found := slices.BinarySearch(t, ax) // first index with t[i] >= ax
	if found {
		return sign | uint16(i)
	}
	// t[i-1] < ax < t[i]. Compare 2*ax against t[i-1]+t[i]: both sides are
	// exact in float64 (the sum has at most a dozen significant bits), so
	// the comparison and the tie detection are exact.
	lo, hi := i-1, i
	twice, sum := 2*ax, t[lo]+t[hi]
	switch {
	case twice < sum:
		return sign | uint16(lo)
	case twice > sum:
		return sign | uint16(hi)
	case lo%2 == 0:
		return sign | uint16(lo)
	}
	return sign | uint16(hi)
}

// ---------------------------------------------------------------------------
// Exhaustive tests over all 65,536 patterns.

func TestBF16RoundTripAllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F32FromBF16(h)
		got := BF16FromF32(f)
		if bf16IsNaN(h) {
			if !isNaN32(f) {
				t.Fatalf("F32FromBF16(%#04x) = %v, want NaN", h, f)
			}
			// Same sign, payload kept, quiet bit set.
			if want := h | 0x0040; got != want {
				t.Fatalf("BF16FromF32(F32FromBF16(%#04x)) = %#04x, want %#04x", h, got, want)
			}
			continue
		}
		if got != h {
			t.Fatalf("BF16FromF32(F32FromBF16(%#04x)) = %#04x, want identity", h, got)
		}
	}
}

func TestF16RoundTripAllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F32FromF16(h)
		got := F16FromF32(f)
		if f16IsNaN(h) {
			if !isNaN32(f) {
				t.Fatalf("F32FromF16(%#04x) = %v, want NaN", h, f)
			}
			if want := h | 0x0200; got != want {
				t.Fatalf("F16FromF32(F32FromF16(%#04x)) = %#04x, want %#04x", h, got, want)
			}
			continue
		}
		if got != h {
			t.Fatalf("F16FromF32(F32FromF16(%#04x)) = %#04x, want identity", h, got)
		}
	}
}

// TestWideningMatchesReference checks F32FromF16 and F32FromBF16 against
// the float64 bit-field decoding for every pattern, including the sign of
// zero and the NaN payload.
func TestWideningMatchesReference(t *testing.T) {
	cases := []struct {
		name   string
		conv   func(uint16) float32
		ref    func(uint16) float64
		isNaN  func(uint16) bool
		payMsk uint16
		payShl uint
	}{
		{"F32FromF16", F32FromF16, f16Ref, f16IsNaN, 0x03ff, 13},
		{"F32FromBF16", F32FromBF16, bf16Ref, bf16IsNaN, 0x007f, 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range 1 << 16 {
				h := uint16(i)
				got := c.conv(h)
				bits := math.Float32bits(got)
				if wantNeg := h&0x8000 != 0; (bits>>31 == 1) != wantNeg {
					t.Fatalf("%s(%#04x) = %v (%#08x): wrong sign", c.name, h, got, bits)
				}
				if c.isNaN(h) {
					wantBits := uint32(h)&0x8000<<16 | 0x7f800000 | uint32(h&c.payMsk)<<c.payShl
					if bits != wantBits {
						t.Fatalf("%s(%#04x) = %#08x, want NaN %#08x", c.name, h, bits, wantBits)
					}
					continue
				}
				if want := c.ref(h); float64(got) != want {
					t.Fatalf("%s(%#04x) = %g, want %g", c.name, h, got, want)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Rounding at and around every midpoint.

// TestRoundingTies walks every pair of adjacent representable magnitudes
// (including the largest finite value paired with the virtual next value
// that stands for overflow), in both signs. The exact midpoint must round
// to the pattern with the even mantissa; the float32 values just above and
// just below it must round to the nearer neighbour.
func TestRoundingTies(t *testing.T) {
	cases := []struct {
		name string
		conv func(float32) uint16
		tab  refTable
	}{
		{"F16FromF32", F16FromF32, f16Table()},
		{"BF16FromF32", BF16FromF32, bf16Table()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pairs := 0
			for lo := 0; lo+1 < len(c.tab); lo++ {
				hi := lo + 1
				mid64 := (c.tab[lo] + c.tab[hi]) / 2
				mid := float32(mid64)
				if float64(mid) != mid64 {
					t.Fatalf("midpoint of %#04x and %#04x (%g) is not a float32", lo, hi, mid64)
				}
				even := uint16(lo)
				if lo%2 != 0 {
					even = uint16(hi)
				}
				above := math.Nextafter32(mid, float32(math.Inf(1)))
				below := math.Nextafter32(mid, 0)
				for _, sign := range []uint16{0, 0x8000} {
					neg := func(x float32) float32 {
						if sign != 0 {
							return -x
						}
						return x
					}
					checks := []struct {
						what string
						x    float32
						want uint16
					}{
						{"midpoint", neg(mid), sign | even},
						{"above midpoint", neg(above), sign | uint16(hi)},
						{"below midpoint", neg(below), sign | uint16(lo)},
					}
					for _, k := range checks {
						if got := c.conv(k.x); got != k.want {
							t.Fatalf("%s(%g = %#08x) [%s of %#04x,%#04x] = %#04x, want %#04x",
								c.name, k.x, math.Float32bits(k.x), k.what, sign|uint16(lo), sign|uint16(hi), got, k.want)
						}
					}
				}
				pairs++
			}
			if pairs != len(c.tab)-1 {
				t.Fatalf("checked %d pairs, want %d", pairs, len(c.tab)-1)
			}
		})
	}
}

// TestNarrowingEdges pins down well-known bit patterns: subnormal and
// overflow thresholds, signed zeros, infinities and NaN quieting.
func TestNarrowingEdges(t *testing.T) {
	f := math.Float32frombits
	inf := float32(math.Inf(1))
	f16 := []struct {
		x    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                        // largest finite
		{math.Nextafter32(65520, 0), 0x7bff},   // just under the overflow threshold
		{65520, 0x7c00},                        // threshold: ties to even = Inf
		{-65520, 0xfc00},                       //
		{65536, 0x7c00},                        //
		{math.MaxFloat32, 0x7c00},              //
		{inf, 0x7c00},                          //
		{-inf, 0xfc00},                         //
		{0x1p-14, 0x0400},                      // smallest normal
		{math.Nextafter32(0x1p-14, 0), 0x0400}, // rounds up into the normals
		{0x1p-24, 0x0001},                      // smallest subnormal
		{0x1p-25, 0x0000},                      // tie with zero: to even
		{-0x1p-25, 0x8000},                     //
		{math.Nextafter32(0x1p-25, 1), 0x0001}, //
		{0x3p-25, 0x0002},                      // 1.5 * 2^-24: tie, to even
		{0x5p-25, 0x0002},                      // 2.5 * 2^-24: tie, to even
		{math.SmallestNonzeroFloat32, 0x0000},  //
		{-math.SmallestNonzeroFloat32, 0x8000}, //
		{f(0x7fc00000), 0x7e00},                // quiet NaN
		{f(0xffc00000), 0xfe00},                // negative quiet NaN
		{f(0x7f800001), 0x7e00},                // signalling NaN, payload below f16 precision: still NaN
		{f(0x7fa00000), 0x7f00},                // signalling NaN: quieted, payload kept
		{f(0xff802000), 0xfe01},                // low payload bit that fits
	}
	for _, c := range f16 {
		if got := F16FromF32(c.x); got != c.want {
			t.Errorf("F16FromF32(%g = %#08x) = %#04x, want %#04x", c.x, math.Float32bits(c.x), got, c.want)
		}
	}
	bf16 := []struct {
		x    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3f80},
		{f(0x7f7f0000), 0x7f7f},                    // largest finite
		{f(0x7f7f7fff), 0x7f7f},                    // just under the overflow threshold
		{f(0x7f7f8000), 0x7f80},                    // threshold 2^128*(1-2^-9): to Inf
		{f(0xff7f8000), 0xff80},                    //
		{math.MaxFloat32, 0x7f80},                  //
		{inf, 0x7f80},                              //
		{-inf, 0xff80},                             //
		{f(0x00008000), 0x0000},                    // tie with zero: to even
		{f(0x00018000), 0x0002},                    // tie: to even
		{f(0x00008001), 0x0001},                    //
		{f(0x3f808000), 0x3f80},                    // 1 + 2^-8: tie, to even
		{f(0x3f818000), 0x3f82},                    // tie, to even (up)
		{f(0x7fc00000), 0x7fc0},                    // quiet NaN
		{f(0x7f800001), 0x7fc0},                    // sNaN whose payload would truncate to Inf
		{f(0xff80ffff), 0xffc0},                    // negative sNaN, ditto: rounding must not carry
		{f(0x7fffffff), 0x7fff},                    // NaN with all payload bits: no carry into the sign
		{f(0xff810000), 0xffc1},                    // payload kept
		{math.SmallestNonzeroFloat32, 0x0000},      //
		{f(0x807fffff), 0x8080},                    // largest subnormal rounds up to -2^-126
		{math.Nextafter32(0x1p-126, 0), 0x0080},    //
		{f(0x477ff000) /* 65520: exact */, 0x4780}, // 65520 = 0x1.ffep15 rounds to 2^16 in bf16
	}
	for _, c := range bf16 {
		if got := BF16FromF32(c.x); got != c.want {
			t.Errorf("BF16FromF32(%g = %#08x) = %#04x, want %#04x", c.x, math.Float32bits(c.x), got, c.want)
		}
	}
}

// ---------------------------------------------------------------------------
// Random inputs against the nearest-value reference.

// randFloat32 draws from a mix of distributions: arbitrary bit patterns
// (every exponent, NaN and Inf included), magnitudes around the f16 range
// (subnormal, normal and overflowing), and values within a few ulps of
// f16 and bf16 midpoints.
func randFloat32(r *rand.Rand) float32 {
	u := r.Uint32()
	switch r.IntN(4) {
	case 0: // any bit pattern
	case 1: // exponent 2^-31 .. 2^18
		u = u&0x807fffff | (96+r.Uint32N(50))<<23
	case 2: // near an f16 midpoint
		u = u&0x807fe000 | (100+r.Uint32N(45))<<23 | (0x1000 + r.Uint32N(5) - 2)
	case 3: // near a bf16 midpoint, any finite exponent
		u = u&0x807f0000 | r.Uint32N(255)<<23 | (0x8000 + r.Uint32N(5) - 2)
	}
	return math.Float32frombits(u)
}

func isNaN32(x float32) bool { return x != x }

// nearestMismatch converts x with conv and returns "" if the result is the
// nearest value per tab (or, for a NaN x, a NaN of the same sign), and a
// description of the mismatch otherwise. It is cheap enough to call
// millions of times (no t.Helper on the hot path).
func nearestMismatch(name string, conv func(float32) uint16, tab refTable, isNaN func(uint16) bool, x float32) string {
	got := conv(x)
	if isNaN32(x) {
		if !isNaN(got) || got>>15 != uint16(math.Float32bits(x)>>31) {
			return fmt.Sprintf("%s(NaN %#08x) = %#04x, want a NaN of the same sign", name, math.Float32bits(x), got)
		}
		return ""
	}
	if want := tab.nearest(x); got != want {
		return fmt.Sprintf("%s(%g = %#08x) = %#04x, want %#04x", name, x, math.Float32bits(x), got, want)
	}
	return ""
}

func TestNarrowingRandomNearest(t *testing.T) {
	n := 3 << 20
	if testing.Short() {
		n = 1 << 16
	}
	r := rand.New(rand.NewPCG(0x5eed, 0x7e45))
	ft, bt := f16Table(), bf16Table()
	for range n {
		x := randFloat32(r)
		if msg := nearestMismatch("F16FromF32", F16FromF32, ft, f16IsNaN, x); msg != "" {
			t.Fatal(msg)
		}
		if msg := nearestMismatch("BF16FromF32", BF16FromF32, bt, bf16IsNaN, x); msg != "" {
			t.Fatal(msg)
		}
	}
}

func FuzzF16RoundTrip(f *testing.F) {
	for _, x := range []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 65504, 65519.996, 65520, -65520,
		0x1p-14, 0x1p-24, 0x1p-25, 0x3p-26, 0x1.8p-24, math.SmallestNonzeroFloat32,
		math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffa00000),
	} {
		f.Add(x)
	}
	tab := f16Table()
	f.Fuzz(func(t *testing.T, x float32) {
		if msg := nearestMismatch("F16FromF32", F16FromF32, tab, f16IsNaN, x); msg != "" {
			t.Fatal(msg)
		}
		// The result converts back exactly and re-narrows to itself.
		h := F16FromF32(x)
		if back := F16FromF32(F32FromF16(h)); back != h {
			t.Fatalf("F16FromF32(F32FromF16(%#04x)) = %#04x", h, back)
		}
		// The sign always survives (zeros and NaNs included).
		if h>>15 != uint16(math.Float32bits(x)>>31) {
			t.Fatalf("F16FromF32(%#08x) = %#04x: sign lost", math.Float32bits(x), h)
		}
	})
}

// ---------------------------------------------------------------------------
// Slice forms.

func TestSliceMatchesScalar(t *testing.T) {
	const n = 1 << 16
	const sentinel = 0xabcd
	all := make([]uint16, n)
	for i := range all {
		all[i] = uint16(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	src32 := make([]float32, n)
	for i := range src32 {
		src32[i] = randFloat32(r)
	}

	widen := []struct {
		name   string
		slice  func([]float32, []uint16)
		scalar func(uint16) float32
	}{
		{"F32FromBF16Slice", F32FromBF16Slice, F32FromBF16},
		{"F32FromF16Slice", F32FromF16Slice, F32FromF16},
	}
	for _, c := range widen {
		dst := make([]float32, n+1)
		dst[n] = sentinel
		c.slice(dst, all)
		for i, h := range all {
			if g, w := math.Float32bits(dst[i]), math.Float32bits(c.scalar(h)); g != w {
				t.Fatalf("%s: element %d (%#04x) = %#08x, want %#08x", c.name, i, h, g, w)
			}
		}
		if dst[n] != sentinel {
			t.Fatalf("%s wrote past len(src)", c.name)
		}
	}

	narrow := []struct {
		name   string
		slice  func([]uint16, []float32)
		scalar func(float32) uint16
	}{
		{"BF16FromF32Slice", BF16FromF32Slice, BF16FromF32},
		{"F16FromF32Slice", F16FromF32Slice, F16FromF32},
	}
	for _, c := range narrow {
		dst := make([]uint16, n+1)
		dst[n] = sentinel
		c.slice(dst, src32)
		for i, x := range src32 {
			if g, w := dst[i], c.scalar(x); g != w {
				t.Fatalf("%s: element %d (%#08x) = %#04x, want %#04x", c.name, i, math.Float32bits(x), g, w)
			}
		}
		if dst[n] != sentinel {
			t.Fatalf("%s wrote past len(src)", c.name)
		}
		c.slice(nil, nil) // empty is fine
	}
}

func TestSliceShortDstPanics(t *testing.T) {
	cases := []struct {
		name string
		call func()
	}{
		{"BF16FromF32Slice", func() { BF16FromF32Slice(make([]uint16, 2), make([]float32, 3)) }},
		{"F32FromBF16Slice", func() { F32FromBF16Slice(make([]float32, 2), make([]uint16, 3)) }},
		{"F16FromF32Slice", func() { F16FromF32Slice(make([]uint16, 2), make([]float32, 3)) }},
		{"F32FromF16Slice", func() { F32FromF16Slice(make([]float32, 2), make([]uint16, 3)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, c.name) || !strings.Contains(msg, "len(dst)=2 < len(src)=3") {
					t.Fatalf("panic value %#v, want a message naming %s and both lengths", r, c.name)
				}
			}()
			c.call()
		})
	}
}

// ---------------------------------------------------------------------------
// DType (kept here so the package has a single test file).

func TestDType(t *testing.T) {
	cases := []struct {
		d      DType
		size   int
		str    string
		float  bool
		spells []string
	}{
		{F32, 4, "f32", true, []string{"f32", "F32", "float32"}},
		{BF16, 2, "bf16", true, []string{"bf16", "BF16", "bfloat16"}},
		{F16, 2, "f16", true, []string{"f16", "F16", "float16"}},
		{I32, 4, "i32", false, []string{"i32", "I32", "int32"}},
		{I64, 8, "i64", false, []string{"i64", "I64", "int64"}},
		{F64, 8, "f64", true, []string{"f64", "F64", "float64"}},
		{U8, 1, "u8", false, []string{"u8", "U8", "uint8"}},
	}
	for _, c := range cases {
		if got := c.d.Size(); got != c.size {
			t.Errorf("%v.Size() = %d, want %d", c.d, got, c.size)
		}
		if got := c.d.String(); got != c.str {
			t.Errorf("DType(%d).String() = %q, want %q", uint8(c.d), got, c.str)
		}
		if got := c.d.IsFloat(); got != c.float {
			t.Errorf("%v.IsFloat() = %v, want %v", c.d, got, c.float)
		}
		for _, s := range c.spells {
			if got, err := ParseDType(s); err != nil || got != c.d {
				t.Errorf("ParseDType(%q) = %v, %v; want %v, nil", s, got, err, c.d)
			}
		}
	}
	if Invalid != 0 || F32 != 1 {
		t.Errorf("Invalid = %d, F32 = %d; want 0, 1", Invalid, F32)
	}
	if Invalid.Size() != 0 || Invalid.IsFloat() || Invalid.String() != "invalid" {
		t.Errorf("Invalid: Size %d, IsFloat %v, String %q", Invalid.Size(), Invalid.IsFloat(), Invalid.String())
	}
	if got := DType(200).String(); got != "dtype(200)" {
		t.Errorf("DType(200).String() = %q", got)
	}
	for _, s := range []string{"", "fp32", "Float32", "torch.float32", "double", "I8", "bool", "invalid"} {
		if d, err := ParseDType(s); err == nil || d != Invalid {
			t.Errorf("ParseDType(%q) = %v, %v; want Invalid and an error", s, d, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Benchmarks. SetBytes counts the source bytes converted per op, so MB/s
// is input throughput; Melem/s is also reported.

const benchN = 1 << 16

func benchF32Src() []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, benchN)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	return src
}

func reportElems(b *testing.B) {
	b.ReportMetric(float64(b.N)*benchN/b.Elapsed().Seconds()/1e6, "Melem/s")
}

func benchNarrow(b *testing.B, conv func([]uint16, []float32)) {
	src, dst := benchF32Src(), make([]uint16, benchN)
	b.SetBytes(4 * benchN)
	for b.Loop() {
		conv(dst, src)
	}
	reportElems(b)
}

func benchWiden(b *testing.B, narrow func([]uint16, []float32), conv func([]float32, []uint16)) {
	src, dst := make([]uint16, benchN), make([]float32, benchN)
	narrow(src, benchF32Src())
	b.SetBytes(2 * benchN)
	for b.Loop() {
		conv(dst, src)
	}
	reportElems(b)
}

func BenchmarkBF16FromF32Slice(b *testing.B) { benchNarrow(b, BF16FromF32Slice) }
func BenchmarkF16FromF32Slice(b *testing.B)  { benchNarrow(b, F16FromF32Slice) }
func BenchmarkF32FromBF16Slice(b *testing.B) { benchWiden(b, BF16FromF32Slice, F32FromBF16Slice) }
func BenchmarkF32FromF16Slice(b *testing.B)  { benchWiden(b, F16FromF32Slice, F32FromF16Slice) }
