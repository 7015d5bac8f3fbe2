package cpu

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// This file holds the element-wise kernels of backend.Elementwise and the
// plumbing every kernel of this package shares: the dispatch on the compute
// dtype, operand checks whose errors name the operand, and the row chunking
// of reductions.
//
// Each kernel is a generic function over the compute type T (float32 for F32,
// float64 for F64); the exported method picks T from the dtype of the call's
// leading operand, and every other float operand must then have that dtype.

// Grain sizes for parallelFor: a goroutine costs about a microsecond to
// start, in which one core streams tens of kilobytes, so each gets at least
// this many elements.
const (
	ewGrain   = 1 << 15 // element-wise kernels
	rowElems  = 1 << 13 // row kernels (norms, softmax, losses): elements per goroutine
	colsGrain = 64      // ScatterAdd: columns per goroutine
)

// rowGrain is the grain, in rows of d elements, of a row kernel.
func rowGrain(d int) int { return max(1, rowElems/max(d, 1)) }

// useF64 reports whether kernel op computes in float64, from the dtype of its
// leading operand t; an error names the operand when t is missing or neither
// F32 nor F64.
func useF64(op, name string, t *tensor.Tensor) (bool, error) {
	if t == nil {
		return false, fmt.Errorf("cpu: %s: %s: missing tensor", op, name)
	}
	switch t.DType() {
	case tensor.F32:
		return false, nil
	case tensor.F64:
		return true, nil
	}
	return false, fmt.Errorf("cpu: %s: %s: tensor %v, want f32 or f64", op, name, t)
}

// kargs collects the operands of kernel op as slices of its compute type T.
// It keeps the first error, which names the kernel and the operand, so a
// kernel reads all its operands and then checks kargs.err once.
type kargs[T Float] struct {
	op  string
	err error
}

func (a *kargs[T]) fail(format string, args ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("cpu: "+a.op+": "+format, args...)
	}
}

// f returns the elements of the required operand t.
func (a *kargs[T]) f(name string, t *tensor.Tensor) []T {
	if a.err != nil {
		return nil
	}
	s, err := floats[T](name, t)
	if err != nil {
		a.err = fmt.Errorf("cpu: %s: %w", a.op, err)
	}
	return s
}

// opt returns the elements of the optional operand t: nil when t is nil.
func (a *kargs[T]) opt(name string, t *tensor.Tensor) []T {
	if t == nil {
		return nil
	}
	return a.f(name, t)
}

// i32 returns the elements of the required I32 operand t.
func (a *kargs[T]) i32(name string, t *tensor.Tensor) []int32 {
	if a.err != nil {
		return nil
	}
	if t == nil {
		a.fail("%s: missing tensor", name)
		return nil
	}
	s, err := Int32s(t)
	if err != nil {
		a.fail("%s: tensor %v, want i32", name, t)
	}
	return s
}

// size checks that the operand t, when not nil, has n elements; what says
// where n comes from (e.g. "x's").
func (a *kargs[T]) size(name string, t *tensor.Tensor, n int, what string) {
	if a.err == nil && t != nil && t.Len() != n {
		a.fail("%s: tensor %v has %d elements, want %d (%s)", name, t, t.Len(), n, what)
	}
}

// rows views the operand t as rows over its last dimension: n rows of d
// elements. A rank-0 tensor is an error.
func (a *kargs[T]) rows(name string, t *tensor.Tensor) (n, d int) {
	if a.err != nil {
		return 0, 0
	}
	if t == nil {
		a.fail("%s: missing tensor", name)
		return 0, 0
	}
	if t.Rank() == 0 {
		a.fail("%s: tensor %v has no last dimension", name, t)
		return 0, 0
	}
	n = 1
	for _, s := range t.Shape()[:t.Rank()-1] {
		n *= s
	}
	return n, t.Dim(-1)
}

// numChunks is the number of contiguous ranges that forChunks splits n items
// into at grain: as many as parallelFor would make.
func (b *Backend) numChunks(n, grain int) int {
	return max(1, min(b.threads, n/max(grain, 1)))
}

// forChunks runs fn concurrently on each of the nc contiguous ranges
// [c*n/nc, (c+1)*n/nc) of [0, n), passing the range's index c, so that a
// reduction can keep one partial per range and combine them in a fixed order.
func (b *Backend) forChunks(n, nc int, fn func(c, lo, hi int)) {
	b.parallelFor(nc, 1, func(clo, chi int) {
		for c := clo; c < chi; c++ {
			fn(c, c*n/nc, (c+1)*n/nc)
		}
	})
}

// Fill sets every element of dst (F32, F64, BF16 or F16) to v, rounded to
// nearest even in dst's dtype.
func (b *Backend) Fill(dst *tensor.Tensor, v float64) error {
	m, err := floatMemOf("Fill", "dst", dst)
	if err != nil {
		return err
	}
	switch m.dt {
	case tensor.F32:
		fillSlice(b, m.f32, float32(v))
	case tensor.F64:
		fillSlice(b, m.f64, v)
	case tensor.BF16:
		fillSlice(b, m.u16, tensor.BF16FromF32(f32RoundOdd(v)))
	case tensor.F16:
		fillSlice(b, m.u16, tensor.F16FromF32(f32RoundOdd(v)))
	}
	return nil
}

func fillSlice[E any](b *Backend, s []E, v E) {
	b.parallelFor(len(s), ewGrain, func(lo, hi int) {
		p := s[lo:hi]
		for i := range p {
			p[i] = v
		}
	})
}

// floatMem is the memory of a CPU tensor of any float dtype: f32, f64 or u16
// (the bits of BF16 or F16) is set, as dt says.
type floatMem struct {
	dt  tensor.DType
	f32 []float32
	f64 []float64
	u16 []uint16
}

// floatMemOf returns the memory of t, an operand of kernel op, which must be
// F32, F64, BF16 or F16.
func floatMemOf(op, name string, t *tensor.Tensor) (floatMem, error) {
	if t == nil {
		return floatMem{}, fmt.Errorf("cpu: %s: %s: missing tensor", op, name)
	}
	m := floatMem{dt: t.DType()}
	var err error
	switch m.dt {
	case tensor.F32:
		m.f32, err = Float32s(t)
	case tensor.F64:
		m.f64, err = Float64s(t)
	case tensor.BF16, tensor.F16:
		m.u16, err = Uint16s(t)
	default:
		return floatMem{}, fmt.Errorf("cpu: %s: %s: tensor %v, want a float dtype", op, name, t)
	}
	if err != nil {
		return floatMem{}, fmt.Errorf("cpu: %s: %s: %w", op, name, err)
	}
	return m, nil
}

// f32RoundOdd rounds v to float32 with round-to-odd: toward zero, with the
// last mantissa bit set when the result is inexact. Narrowing that result
// to BF16 or F16 (8 and 11 significant bits, against float32's 24) with
// round-to-nearest-even gives the correctly rounded narrowing of v itself,
// which float32(v) followed by a second rounding does not always do.
func f32RoundOdd(v float64) float32 {
	f := float32(v)
	if float64(f) == v || v != v {
		return f
	}
	bits := math.Float32bits(f)
	if math.Abs(float64(f)) > math.Abs(v) {
		bits-- // f rounded away from zero (possibly to Inf): step back
	}
	return math.Float32frombits(bits | 1)
}

// convertSpan converts n elements of src from element so on into dst from
// element do on. Every narrowing rounds to nearest even, once: F64 goes to
// BF16 and F16 through f32RoundOdd, and BF16 <-> F16 through float32, which
// holds both exactly.
func convertSpan(dst floatMem, do int, src floatMem, so, n int) {
	switch dst.dt {
	case tensor.F32:
		d := dst.f32[do : do+n]
		switch src.dt {
		case tensor.F32:
			copy(d, src.f32[so:so+n])
		case tensor.F64:
			for i, v := range src.f64[so : so+n] {
				d[i] = float32(v)
			}
		case tensor.BF16:
			tensor.F32FromBF16Slice(d, src.u16[so:so+n])
		case tensor.F16:
			tensor.F32FromF16Slice(d, src.u16[so:so+n])
		}
	case tensor.F64:
		d := dst.f64[do : do+n]
		switch src.dt {
		case tensor.F32:
			for i, v := range src.f32[so : so+n] {
				d[i] = float64(v)
			}
		case tensor.F64:
			copy(d, src.f64[so:so+n])
		case tensor.BF16:
			for i, h := range src.u16[so : so+n] {
				d[i] = float64(tensor.F32FromBF16(h))
			}
		case tensor.F16:
			for i, h := range src.u16[so : so+n] {
				d[i] = float64(tensor.F32FromF16(h))
			}
		}
	case tensor.BF16, tensor.F16:
		d := dst.u16[do : do+n]
		bf := dst.dt == tensor.BF16
		switch src.dt {
		case tensor.F32:
			if bf {
				tensor.BF16FromF32Slice(d, src.f32[so:so+n])
			} else {
				tensor.F16FromF32Slice(d, src.f32[so:so+n])
			}
		case tensor.F64:
			for i, v := range src.f64[so : so+n] {
				if bf {
					d[i] = tensor.BF16FromF32(f32RoundOdd(v))
				} else {
					d[i] = tensor.F16FromF32(f32RoundOdd(v))
				}
			}
		case dst.dt:
			copy(d, src.u16[so:so+n])
		case tensor.BF16: // to F16
			for i, h := range src.u16[so : so+n] {
				d[i] = tensor.F16FromF32(tensor.F32FromBF16(h))
			}
		case tensor.F16: // to BF16
			for i, h := range src.u16[so : so+n] {
				d[i] = tensor.BF16FromF32(tensor.F32FromF16(h))
			}
		}
	}
}

// Convert copies src into dst, converting between F32, F64, BF16 and F16;
// narrowing rounds to nearest even (from F64 directly, not through a second
// rounding in float32). The two must have equal element counts.
func (b *Backend) Convert(dst, src *tensor.Tensor) error {
	s, err := floatMemOf("Convert", "src", src)
	if err != nil {
		return err
	}
	d, err := floatMemOf("Convert", "dst", dst)
	if err != nil {
		return err
	}
	if dst.Len() != src.Len() {
		return fmt.Errorf("cpu: Convert: dst: tensor %v has %d elements, want %d (src's)", dst, dst.Len(), src.Len())
	}
	b.parallelFor(src.Len(), ewGrain, func(lo, hi int) { convertSpan(d, lo, s, lo, hi-lo) })
	return nil
}

// Add sets dst = x + y, where y has as many elements as x or a divisor of
// that many, repeating over x's leading rows. Only element counts are
// checked: x and dst may differ in shape. dst may be x.
func (b *Backend) Add(dst, x, y *tensor.Tensor) error {
	f64, err := useF64("Add", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return binary[float64](b, "Add", false, dst, x, y)
	}
	return binary[float32](b, "Add", false, dst, x, y)
}

// Mul sets dst = x * y, element-wise, with Add's broadcast rule. dst may be x.
func (b *Backend) Mul(dst, x, y *tensor.Tensor) error {
	f64, err := useF64("Mul", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return binary[float64](b, "Mul", true, dst, x, y)
	}
	return binary[float32](b, "Mul", true, dst, x, y)
}

func binary[T Float](b *Backend, op string, mul bool, dst, x, y *tensor.Tensor) error {
	a := kargs[T]{op: op}
	xs, ys, ds := a.f("x", x), a.f("y", y), a.f("dst", dst)
	a.size("dst", dst, x.Len(), "x's")
	n, m := len(xs), len(ys)
	if a.err == nil && (m == 0 && n != 0 || m != 0 && n%m != 0) {
		a.fail("y: tensor %v has %d elements, which do not divide x's %d", y, m, n)
	}
	if a.err != nil {
		return a.err
	}
	b.parallelFor(n, ewGrain, func(lo, hi int) {
		for i := lo; i < hi; {
			j := i % m
			k := min(hi-i, m-j)
			d := ds[i : i+k]
			xr, yr := xs[i:i+k], ys[j:j+k]
			xr, yr = xr[:len(d)], yr[:len(d)]
			if mul {
				for q := range d {
					d[q] = xr[q] * yr[q]
				}
			} else {
				for q := range d {
					d[q] = xr[q] + yr[q]
				}
			}
			i += k
		}
	})
	return nil
}

// Scale sets dst = s * x. dst may be x.
func (b *Backend) Scale(dst, x *tensor.Tensor, s float64) error {
	f64, err := useF64("Scale", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return scale[float64](b, "Scale", false, dst, x, s)
	}
	return scale[float32](b, "Scale", false, dst, x, s)
}

// AddScaled sets dst += s * x.
func (b *Backend) AddScaled(dst, x *tensor.Tensor, s float64) error {
	f64, err := useF64("AddScaled", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return scale[float64](b, "AddScaled", true, dst, x, s)
	}
	return scale[float32](b, "AddScaled", true, dst, x, s)
}

func scale[T Float](b *Backend, op string, acc bool, dst, x *tensor.Tensor, s float64) error {
	a := kargs[T]{op: op}
	xs, ds := a.f("x", x), a.f("dst", dst)
	a.size("dst", dst, x.Len(), "x's")
	if a.err != nil {
		return a.err
	}
	st := T(s)
	b.parallelFor(len(xs), ewGrain, func(lo, hi int) {
		d, xr := ds[lo:hi], xs[lo:hi]
		xr = xr[:len(d)]
		if acc {
			for i := range d {
				d[i] += st * xr[i]
			}
		} else {
			for i := range d {
				d[i] = st * xr[i]
			}
		}
	})
	return nil
}

// SumRows views x as rows of dst.Len() elements and adds the sum of those
// rows to dst. The sums accumulate in float64: each of at most Threads
// contiguous blocks of rows gets its own partial sums, which are added in
// block order, so the result depends on the thread count only through
// float64 rounding.
func (b *Backend) SumRows(dst, x *tensor.Tensor) error {
	f64, err := useF64("SumRows", "dst", dst)
	if err != nil {
		return err
	}
	if f64 {
		return sumRows[float64](b, dst, x)
	}
	return sumRows[float32](b, dst, x)
}

func sumRows[T Float](b *Backend, dst, x *tensor.Tensor) error {
	a := kargs[T]{op: "SumRows"}
	ds, xs := a.f("dst", dst), a.f("x", x)
	m, n := len(ds), len(xs)
	if a.err == nil && (m == 0 && n != 0 || m != 0 && n%m != 0) {
		a.fail("x: tensor %v has %d elements, not a whole number of rows of dst's %d", x, n, m)
	}
	if a.err != nil || n == 0 {
		return a.err
	}
	rows := n / m
	nc := b.numChunks(rows, rowGrain(m))
	part := make([]float64, nc*m)
	b.forChunks(rows, nc, func(c, lo, hi int) {
		p := part[c*m : (c+1)*m]
		for r := lo; r < hi; r++ {
			xr := xs[r*m : (r+1)*m]
			xr = xr[:len(p)]
			for j := range p {
				p[j] += float64(xr[j])
			}
		}
	})
	addPartials(ds, part, nc)
	return nil
}

// Activation sets dst = f(x). dst may be x.
//
// SiLU is x*sigmoid(x); GELUTanh is 0.5x(1+tanh(u)), u = sqrt(2/pi)(x +
// 0.044715x³), computed as the equal x*sigmoid(2u), which keeps its
// precision for negative x; GELUErf is 0.5x(1+erf(x/sqrt2)), computed as
// 0.5x*erfc(-x/sqrt2) for the same reason. Sigmoids use expf for F32; erfc
// runs in float64 for both dtypes.
func (b *Backend) Activation(f backend.Act, dst, x *tensor.Tensor) error {
	f64, err := useF64("Activation", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return activation[float64](b, f, false, dst, x, nil)
	}
	return activation[float32](b, f, false, dst, x, nil)
}

// ActivationBackward sets dx = dy * f'(x). dx may be x or dy.
func (b *Backend) ActivationBackward(f backend.Act, dx, x, dy *tensor.Tensor) error {
	f64, err := useF64("ActivationBackward", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return activation[float64](b, f, true, dx, x, dy)
	}
	return activation[float32](b, f, true, dx, x, dy)
}

// Constants of the GELU forms.
const (
	geluC      = 0.7978845608028654 // sqrt(2/pi)
	geluK      = 0.044715           // cubic coefficient of the tanh form
	invSqrt2   = 0.7071067811865476 // 1/sqrt(2)
	invSqrt2Pi = 0.3989422804014327 // 1/sqrt(2*pi)
)

// expBlockLen is the length of the blocks in which kernels take
// exponentials: a stack buffer this long stays in L1.
const expBlockLen = 512

// expBlock sets e[i] = exp(a*x[i] + c); e may be x. For float32 it is expf
// with its fast path inlined in the loop (the same operations, so the same
// results, at about two thirds of the cost of a call per element); for
// float64, math.Exp.
func expBlock[T Float](e, x []T, a, c T) {
	switch x := any(x).(type) {
	case []float32:
		expBlockF32(any(e).([]float32), x, float32(a), float32(c))
	case []float64:
		e := any(e).([]float64)
		e = e[:len(x)]
		af, cf := float64(a), float64(c)
		for i, v := range x {
			e[i] = math.Exp(af*v + cf)
		}
	}
}

func expBlockF32(e, x []float32, a, c float32) {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	e = e[:len(x)]
	// The vector code, where there is one, does groups of eight whose
	// arguments lie in [-87, 88] (no NaN, overflow or subnormal result);
	// a group it stops at, and the tail, go to the series below.
	for len(x) >= 8 {
		n := expAffineVec(e, x, a, c)
		e, x = e[n:], x[n:]
		if len(x) >= 8 {
			expSeries(e[:8], x[:8], a, c)
			e, x = e[8:], x[8:]
		}
	}
	expSeries(e, x, a, c)
}

// expSeries is expBlockF32's scalar path: expf with the affine argument.
func expSeries(e, x []float32, a, c float32) {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	e = e[:len(x)]
	for i, v := range x {
		v = a*v + c
		if !(v >= -87 && v <= 88) { // NaN, overflow and subnormal results
			e[i] = expf(v)
			continue
		}
		t := v*log2e + 12582912
		n := t - 12582912
		r := v - n*ln2hi - n*ln2lo
		p := float32(1.0 / 5040)
		p = p*r + 1.0/720
		p = p*r + 1.0/120
		p = p*r + 1.0/24
		p = p*r + 1.0/6
		p = p*r + 0.5
		p = p*r + 1
		p = p*r + 1
		e[i] = p * math.Float32frombits((math.Float32bits(t)-0x4b400000+127)<<23)
	}
}

// sumF64 is sum(x) in float64. It and the other reductions below keep four
// partial sums, so that the additions do not wait on each other (Go does
// not vectorise).
func sumF64[T Float](x []T) float64 {
	if f, ok := any(x).([]float32); ok {
		if s, n := sumVec(f); n > 0 {
			for _, v := range f[n:] {
				s += float64(v)
			}
			return s
		}
	}
	var s0, s1, s2, s3 float64
	for ; len(x) >= 4; x = x[4:] {
		s0 += float64(x[0])
		s1 += float64(x[1])
		s2 += float64(x[2])
		s3 += float64(x[3])
	}
	for _, v := range x {
		s0 += float64(v)
	}
	return (s0 + s1) + (s2 + s3)
}

// sumSqF64 is sum((x-c)²) in float64.
func sumSqF64[T Float](x []T, c float64) float64 {
	var s0, s1, s2, s3 float64
	for ; len(x) >= 4; x = x[4:] {
		v0, v1, v2, v3 := float64(x[0])-c, float64(x[1])-c, float64(x[2])-c, float64(x[3])-c
		s0 += v0 * v0
		s1 += v1 * v1
		s2 += v2 * v2
		s3 += v3 * v3
	}
	for _, v := range x {
		s0 += (float64(v) - c) * (float64(v) - c)
	}
	return (s0 + s1) + (s2 + s3)
}

// dotF64 is sum(x*y) in float64; y is at least as long as x.
func dotF64[T Float](x, y []T) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	for len(x) >= 4 && len(y) >= 4 {
		s0 += float64(x[0]) * float64(y[0])
		s1 += float64(x[1]) * float64(y[1])
		s2 += float64(x[2]) * float64(y[2])
		s3 += float64(x[3]) * float64(y[3])
		x, y = x[4:], y[4:]
	}
	for i, v := range x {
		s0 += float64(v) * float64(y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dot3F64 is sum(x*y*z) in float64; y and z are at least as long as x.
func dot3F64[T Float](x, y, z []T) float64 {
	y, z = y[:len(x)], z[:len(x)]
	var s0, s1, s2, s3 float64
	for len(x) >= 4 && len(y) >= 4 && len(z) >= 4 {
		s0 += float64(x[0]) * float64(y[0]) * float64(z[0])
		s1 += float64(x[1]) * float64(y[1]) * float64(z[1])
		s2 += float64(x[2]) * float64(y[2]) * float64(z[2])
		s3 += float64(x[3]) * float64(y[3]) * float64(z[3])
		x, y, z = x[4:], y[4:], z[4:]
	}
	for i, v := range x {
		s0 += float64(v) * float64(y[i]) * float64(z[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func geluErf(x float64) float64 { return 0.5 * x * math.Erfc(-x*invSqrt2) }

// geluErfGrad is Phi(x) + x*phi(x).
func geluErfGrad(x float64) float64 {
	return 0.5*math.Erfc(-x*invSqrt2) + x*invSqrt2Pi*math.Exp(-0.5*x*x)
}

// activation runs Activation (grad false: dst = f(x)) or ActivationBackward
// (grad true: dst = dy*f'(x)). SiLU and GELUTanh are x*sigmoid(z), z = x or
// 2u, in blocks: e = exp(-z) by expBlock, then sigmoid(z) = 1/(1+e), and
//
//	SiLU' = s(1 + x(1-s)),  GELUTanh' = s + x*s(1-s)*2u',  u' = sqrt(2/pi)(1 + 3*0.044715x²).
func activation[T Float](b *Backend, f backend.Act, grad bool, dst, x, dy *tensor.Tensor) error {
	op, dname := "Activation", "dst"
	if grad {
		op, dname = "ActivationBackward", "dx"
	}
	a := kargs[T]{op: op}
	xs, ds := a.f("x", x), a.f(dname, dst)
	a.size(dname, dst, x.Len(), "x's")
	var gs []T
	if grad {
		gs = a.f("dy", dy)
		a.size("dy", dy, x.Len(), "x's")
	}
	if a.err == nil && f != backend.SiLU && f != backend.GELUTanh && f != backend.GELUErf {
		a.fail("unknown activation %d", f)
	}
	if a.err != nil {
		return a.err
	}
	b.parallelFor(len(xs), ewGrain/4, func(lo, hi int) {
		if f == backend.GELUErf {
			d, xr := ds[lo:hi], xs[lo:hi]
			xr = xr[:len(d)]
			if !grad {
				for i, v := range xr {
					d[i] = T(geluErf(float64(v)))
				}
				return
			}
			g := gs[lo:hi]
			g = g[:len(d)]
			for i, v := range xr {
				d[i] = g[i] * T(geluErfGrad(float64(v)))
			}
			return
		}
		var buf [expBlockLen]T
		for o := lo; o < hi; o += expBlockLen {
			k := min(expBlockLen, hi-o)
			d, xr, e := ds[o:o+k], xs[o:o+k], buf[:k]
			xr = xr[:len(d)]
			if f == backend.SiLU {
				expBlock(e, xr, -1, 0)
			} else {
				for i, v := range xr {
					e[i] = T(geluC) * (v + T(geluK)*v*v*v)
				}
				expBlock(e, e, -2, 0)
			}
			e = e[:len(d)]
			switch {
			case !grad:
				for i, v := range xr {
					d[i] = v / (1 + e[i])
				}
			case f == backend.SiLU:
				g := gs[o : o+k]
				g = g[:len(d)]
				for i, v := range xr {
					s := 1 / (1 + e[i])
					d[i] = g[i] * s * (1 + v*(1-s))
				}
			default:
				g := gs[o : o+k]
				g = g[:len(d)]
				for i, v := range xr {
					s := 1 / (1 + e[i])
					d[i] = g[i] * (s + v*s*(1-s)*2*T(geluC)*(1+3*T(geluK)*v*v))
				}
			}
		}
	})
	return nil
}

// SwiGLU sets dst = silu(gate) * up. dst may be gate or up.
func (b *Backend) SwiGLU(dst, gate, up *tensor.Tensor) error {
	f64, err := useF64("SwiGLU", "gate", gate)
	if err != nil {
		return err
	}
	if f64 {
		return swiGLU[float64](b, dst, gate, up)
	}
	return swiGLU[float32](b, dst, gate, up)
}

func swiGLU[T Float](b *Backend, dst, gate, up *tensor.Tensor) error {
	a := kargs[T]{op: "SwiGLU"}
	gs, us, ds := a.f("gate", gate), a.f("up", up), a.f("dst", dst)
	a.size("up", up, gate.Len(), "gate's")
	a.size("dst", dst, gate.Len(), "gate's")
	if a.err != nil {
		return a.err
	}
	b.parallelFor(len(gs), ewGrain/4, func(lo, hi int) {
		var buf [expBlockLen]T
		for o := lo; o < hi; o += expBlockLen {
			k := min(expBlockLen, hi-o)
			d, g, u, e := ds[o:o+k], gs[o:o+k], us[o:o+k], buf[:k]
			g, u, e = g[:len(d)], u[:len(d)], e[:len(d)]
			expBlock(e, g, -1, 0)
			for i, x := range g {
				d[i] = x / (1 + e[i]) * u[i]
			}
		}
	})
	return nil
}

// SwiGLUBackward sets dgate = dy*up*silu'(gate) and dup = dy*silu(gate);
// either may be nil. Each may be the gate, up or dy it is computed from.
func (b *Backend) SwiGLUBackward(dgate, dup, gate, up, dy *tensor.Tensor) error {
	f64, err := useF64("SwiGLUBackward", "gate", gate)
	if err != nil {
		return err
	}
	if f64 {
		return swiGLUBackward[float64](b, dgate, dup, gate, up, dy)
	}
	return swiGLUBackward[float32](b, dgate, dup, gate, up, dy)
}

func swiGLUBackward[T Float](b *Backend, dgate, dup, gate, up, dy *tensor.Tensor) error {
	a := kargs[T]{op: "SwiGLUBackward"}
	gs, us, dys := a.f("gate", gate), a.f("up", up), a.f("dy", dy)
	dgs, dus := a.opt("dgate", dgate), a.opt("dup", dup)
	n := gate.Len()
	a.size("up", up, n, "gate's")
	a.size("dy", dy, n, "gate's")
	a.size("dgate", dgate, n, "gate's")
	a.size("dup", dup, n, "gate's")
	if a.err != nil || dgate == nil && dup == nil {
		return a.err
	}
	b.parallelFor(n, ewGrain/4, func(lo, hi int) {
		var buf [expBlockLen]T
		for o := lo; o < hi; o += expBlockLen {
			k := min(expBlockLen, hi-o)
			g, u, dy, e := gs[o:o+k], us[o:o+k], dys[o:o+k], buf[:k]
			u, dy, e = u[:len(g)], dy[:len(g)], e[:len(g)]
			expBlock(e, g, -1, 0)
			switch {
			case dgs != nil && dus != nil:
				dg, du := dgs[o:o+k], dus[o:o+k]
				dg, du = dg[:len(g)], du[:len(g)]
				for i, x := range g {
					s := 1 / (1 + e[i])
					gy, uu := dy[i], u[i]
					dg[i] = gy * uu * s * (1 + x*(1-s))
					du[i] = gy * x * s
				}
			case dgs != nil:
				dg := dgs[o : o+k]
				dg = dg[:len(g)]
				for i, x := range g {
					s := 1 / (1 + e[i])
					dg[i] = dy[i] * u[i] * s * (1 + x*(1-s))
				}
			default:
				du := dus[o : o+k]
				du = du[:len(g)]
				for i, x := range g {
					du[i] = dy[i] * x / (1 + e[i])
				}
			}
		}
	})
	return nil
}

// Softmax sets dst to the softmax of x over its last dimension: exp(x -
// max) / sum, the sum accumulated in float64. A row whose elements are all
// -Inf (nothing to attend to) becomes zeros. dst may be x.
func (b *Backend) Softmax(dst, x *tensor.Tensor) error {
	f64, err := useF64("Softmax", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return softmax[float64](b, dst, x)
	}
	return softmax[float32](b, dst, x)
}

func softmax[T Float](b *Backend, dst, x *tensor.Tensor) error {
	a := kargs[T]{op: "Softmax"}
	n, d := a.rows("x", x)
	xs, ds := a.f("x", x), a.f("dst", dst)
	a.size("dst", dst, n*d, "x's")
	if a.err == nil && dst.Rank() > 0 && dst.Dim(-1) != d {
		a.fail("dst: tensor %v has rows of %d, x's have %d", dst, dst.Dim(-1), d)
	}
	if a.err != nil || d == 0 {
		return a.err
	}
	b.parallelFor(n, rowGrain(d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, dr := xs[i*d:(i+1)*d], ds[i*d:(i+1)*d]
			mx := rowMax(xr)
			if math.IsInf(float64(mx), -1) {
				clear(dr)
				continue
			}
			expBlock(dr, xr, 1, -mx)
			inv := T(1 / sumF64(dr))
			for j := range dr {
				dr[j] *= inv
			}
		}
	})
	return nil
}

// rowMax is the largest element of a non-empty row; a NaN in the row
// propagates through the exponentials that use it.
func rowMax[T Float](r []T) T {
	if f, ok := any(r).([]float32); ok {
		if m, n := maxVec(f); n > 0 {
			for _, v := range f[n:] {
				m = max(m, v)
			}
			return T(m)
		}
	}
	m0, m1 := r[0], r[0]
	for ; len(r) >= 2; r = r[2:] {
		m0, m1 = max(m0, r[0]), max(m1, r[1])
	}
	if len(r) == 1 {
		m0 = max(m0, r[0])
	}
	return max(m0, m1)
}

// SoftmaxBackward sets dx = y * (dy - sum(dy*y)) row by row, the sum in
// float64. dx may be dy.
func (b *Backend) SoftmaxBackward(dx, y, dy *tensor.Tensor) error {
	f64, err := useF64("SoftmaxBackward", "y", y)
	if err != nil {
		return err
	}
	if f64 {
		return softmaxBackward[float64](b, dx, y, dy)
	}
	return softmaxBackward[float32](b, dx, y, dy)
}

func softmaxBackward[T Float](b *Backend, dx, y, dy *tensor.Tensor) error {
	a := kargs[T]{op: "SoftmaxBackward"}
	n, d := a.rows("y", y)
	ys, gs, ds := a.f("y", y), a.f("dy", dy), a.f("dx", dx)
	a.size("dy", dy, n*d, "y's")
	a.size("dx", dx, n*d, "y's")
	if a.err != nil || d == 0 {
		return a.err
	}
	b.parallelFor(n, rowGrain(d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yr, gr, dr := ys[i*d:(i+1)*d], gs[i*d:(i+1)*d], ds[i*d:(i+1)*d]
			gr, dr = gr[:len(yr)], dr[:len(yr)]
			dt := T(dotF64(yr, gr))
			for j, v := range yr {
				dr[j] = v * (gr[j] - dt)
			}
		}
	})
	return nil
}

// dropoutBits is the i-th output, counting from 0, of the SplitMix64
// generator seeded with seed (Steele, Lea and Flood, 2014; the generator of
// java.util.SplittableRandom): the state after i+1 steps of adding the
// golden-ratio increment, put through the MurmurHash3-style finaliser with
// Stafford's "Mix13" constants. It depends on (seed, i) alone.
func dropoutBits(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Dropout sets dst = x * m / (1-p). m_i, for the i-th element of x in
// row-major order (from 0), is 0 when u_i < p and 1 otherwise, where u_i =
// (dropoutBits(seed, i) >> 11) / 2^53 is a uniform number in [0, 1) from
// the top 53 bits of the i-th SplitMix64 output for seed:
//
//	z := seed + (i+1)*0x9e3779b97f4a7c15          // mod 2^64
//	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
//	z = (z ^ z>>27) * 0x94d049bb133111eb
//	z ^= z >> 31
//	drop := z>>11 < ceil(p * 2^53)
//
// The mask depends on (seed, i) alone, not on the thread count or the
// back end. p = 0 copies x, p = 1 zeroes dst; p outside [0, 1] is an error.
// dst may be x.
func (b *Backend) Dropout(dst, x *tensor.Tensor, p float64, seed uint64) error {
	f64, err := useF64("Dropout", "x", x)
	if err != nil {
		return err
	}
	if f64 {
		return dropout[float64](b, dst, x, p, seed)
	}
	return dropout[float32](b, dst, x, p, seed)
}

func dropout[T Float](b *Backend, dst, x *tensor.Tensor, p float64, seed uint64) error {
	a := kargs[T]{op: "Dropout"}
	xs, ds := a.f("x", x), a.f("dst", dst)
	a.size("dst", dst, x.Len(), "x's")
	if a.err == nil && !(p >= 0 && p <= 1) {
		a.fail("p = %v, want a probability in [0, 1]", p)
	}
	if a.err != nil {
		return a.err
	}
	thr := uint64(math.Ceil(p * (1 << 53))) // exact: p*2^53 is p with a new exponent
	scale := T(1 / (1 - p))
	b.parallelFor(len(xs), ewGrain/4, func(lo, hi int) {
		d, xr := ds[lo:hi], xs[lo:hi]
		xr = xr[:len(d)]
		switch {
		case p == 0:
			copy(d, xr)
		case p == 1:
			clear(d)
		default:
			for i, v := range xr {
				if dropoutBits(seed, uint64(lo+i))>>11 < thr {
					d[i] = 0
				} else {
					d[i] = v * scale
				}
			}
		}
	})
	return nil
}

// checkIDs returns an error naming the first id outside [0, v), by its
// position and value.
func checkIDs(op, name string, ids []int32, v int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("cpu: %s: %s[%d] = %d, outside [0, %d)", op, name, i, id, v)
		}
	}
	return nil
}

// Gather sets dst[i,:] = table[ids[i],:]. dst (F32 or F64) has len(ids)*D
// elements, in any shape; table is [V, D] of any float dtype, converted to
// dst's as Convert does; ids are I32 of any shape. An id outside [0, V) is
// an error naming its position and value, and leaves dst unwritten.
func (b *Backend) Gather(dst, table, ids *tensor.Tensor) error {
	const op = "Gather"
	if _, err := useF64(op, "dst", dst); err != nil {
		return err
	}
	d, err := floatMemOf(op, "dst", dst)
	if err != nil {
		return err
	}
	t, err := floatMemOf(op, "table", table)
	if err != nil {
		return err
	}
	a := kargs[float32]{op: op}
	is := a.i32("ids", ids)
	if a.err != nil {
		return a.err
	}
	if table.Rank() != 2 {
		return fmt.Errorf("cpu: %s: table: tensor %v, want rank 2 [V, D]", op, table)
	}
	v, dim := table.Dim(0), table.Dim(1)
	if dst.Len() != len(is)*dim {
		return fmt.Errorf("cpu: %s: dst: tensor %v has %d elements, want %d (%d ids of table's rows of %d)",
			op, dst, dst.Len(), len(is)*dim, len(is), dim)
	}
	if err := checkIDs(op, "ids", is, v); err != nil {
		return err
	}
	b.parallelFor(len(is), rowGrain(dim), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			convertSpan(d, i*dim, t, int(is[i])*dim, dim)
		}
	})
	return nil
}

// ScatterAdd adds dy[i,:] to dtable[ids[i],:]; repeated ids sum. dtable is
// [V, D]; dy has len(ids)*D elements. The D columns are split among the
// workers, each of which walks every id, so no two write one element, and
// the sums are in id order whatever the thread count. An id outside [0, V)
// is an error naming its position and value, and leaves dtable unchanged.
func (b *Backend) ScatterAdd(dtable, ids, dy *tensor.Tensor) error {
	f64, err := useF64("ScatterAdd", "dtable", dtable)
	if err != nil {
		return err
	}
	if f64 {
		return scatterAdd[float64](b, dtable, ids, dy)
	}
	return scatterAdd[float32](b, dtable, ids, dy)
}

func scatterAdd[T Float](b *Backend, dtable, ids, dy *tensor.Tensor) error {
	const op = "ScatterAdd"
	a := kargs[T]{op: op}
	ts, is, gs := a.f("dtable", dtable), a.i32("ids", ids), a.f("dy", dy)
	if a.err == nil && dtable.Rank() != 2 {
		a.fail("dtable: tensor %v, want rank 2 [V, D]", dtable)
	}
	if a.err != nil {
		return a.err
	}
	v, dim := dtable.Dim(0), dtable.Dim(1)
	a.size("dy", dy, len(is)*dim, fmt.Sprintf("%d ids of dtable's rows of %d", len(is), dim))
	if a.err != nil {
		return a.err
	}
	if err := checkIDs(op, "ids", is, v); err != nil {
		return err
	}
	// Each worker takes a block of columns; with few columns and many ids,
	// the grain in columns shrinks so that each still has work to share.
	grain := max(1, min(colsGrain, ewGrain/max(len(is), 1)))
	b.parallelFor(dim, grain, func(lo, hi int) {
		for i, id := range is {
			src := gs[i*dim+lo : i*dim+hi]
			d := ts[int(id)*dim+lo : int(id)*dim+hi]
			d = d[:len(src)]
			for j, g := range src {
				d[j] += g
			}
		}
	})
	return nil
}
