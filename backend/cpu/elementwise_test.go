package cpu

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Test helpers for the kernels of elementwise.go, norms.go, rope.go and
// loss.go; their names start with kt so as not to clash with other tests of
// the package.

// ktTol is a tolerance for ktCheck: the largest relative error, each
// element's error measured against the larger of its |want| and floor times
// the largest |want| of the vector (so that an element that cancels to
// almost nothing is held to the scale of its neighbours rather than to its
// own).
type ktTol struct{ rel, floor float64 }

// ktF64 and ktF32 are tolerances for float64 and float32 results: float32
// kernels lose a few ulp of the operands' scale where terms cancel, hence
// the larger floor.
func ktF64(rel float64) ktTol { return ktTol{rel, 1e-3} }
func ktF32(rel float64) ktTol { return ktTol{rel, 1e-2} }

// ktExact asks for equal values.
var ktExact = ktTol{0, 1e-3}

// ktTypes are the compute dtypes with the tolerance of a forward kernel
// against its float64 reference. F32 kernels round each operation and use
// expf (2 ulp); 2e-5 covers a handful of roundings of values up to about
// ten.
var ktTypes = []struct {
	dt  tensor.DType
	tol ktTol
}{{tensor.F64, ktF64(1e-12)}, {tensor.F32, ktF32(2e-5)}}

// ktGradTol is the tolerance of a float64 backward kernel against central
// differences (h = 1e-5) of a float64 forward kernel.
var ktGradTol = ktF64(1e-6)

// ktBackend returns a pure-Go CPU back end with the given thread count.
func ktBackend(t testing.TB, threads int) *Backend {
	t.Helper()
	b, err := New(Options{BLAS: BLASGo, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ktBackends are the back ends the kernel tests run on: one thread, and
// several (more than this machine may have, so that the parallel paths run).
func ktBackends(t testing.TB) map[string]*Backend {
	return map[string]*Backend{"threads=1": ktBackend(t, 1), "threads=4": ktBackend(t, 4)}
}

// ktTensor allocates a tensor of dtype dt holding vals, rounded to dt.
func ktTensor(t testing.TB, b *Backend, dt tensor.DType, vals []float64, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := b.Alloc(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != x.Len() {
		t.Fatalf("ktTensor: %d values for shape %v", len(vals), shape)
	}
	ktSet(t, x, vals)
	return x
}

// ktSet writes vals, rounded to x's dtype, into x.
func ktSet(t testing.TB, x *tensor.Tensor, vals []float64) {
	t.Helper()
	switch x.DType() {
	case tensor.F64:
		s, _ := Float64s(x)
		copy(s, vals)
	case tensor.F32:
		s, _ := Float32s(x)
		for i, v := range vals {
			s[i] = float32(v)
		}
	case tensor.BF16, tensor.F16:
		// Rounded once, by ktRoundTo, then exactly representable in float32
		// (float32(v) would round a second time).
		s, _ := Uint16s(x)
		for i, v := range vals {
			f := float32(ktRoundTo(x.DType(), v))
			if x.DType() == tensor.BF16 {
				s[i] = tensor.BF16FromF32(f)
			} else {
				s[i] = tensor.F16FromF32(f)
			}
		}
	default:
		t.Fatalf("ktSet: dtype %v", x.DType())
	}
}

// ktInts allocates an I32 tensor holding vals.
func ktInts(t testing.TB, b *Backend, vals []int32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := b.Alloc(tensor.I32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Int32s(x)
	if len(s) != len(vals) {
		t.Fatalf("ktInts: %d values for shape %v", len(vals), shape)
	}
	copy(s, vals)
	return x
}

// ktValues returns the elements of a float tensor as float64.
func ktValues(t testing.TB, x *tensor.Tensor) []float64 {
	t.Helper()
	out := make([]float64, x.Len())
	switch x.DType() {
	case tensor.F64:
		s, _ := Float64s(x)
		copy(out, s)
	case tensor.F32:
		s, _ := Float32s(x)
		for i, v := range s {
			out[i] = float64(v)
		}
	case tensor.BF16:
		s, _ := Uint16s(x)
		for i, h := range s {
			out[i] = float64(tensor.F32FromBF16(h))
		}
	case tensor.F16:
		s, _ := Uint16s(x)
		for i, h := range s {
			out[i] = float64(tensor.F32FromF16(h))
		}
	default:
		t.Fatalf("ktValues: dtype %v", x.DType())
	}
	return out
}

// ktRand returns n normal numbers of standard deviation sd, rounded to dt
// (so that the reference sees the values the kernel reads).
func ktRand(r *rand.Rand, dt tensor.DType, n int, sd float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = r.NormFloat64() * sd
		if dt == tensor.F32 {
			out[i] = float64(float32(out[i]))
		}
	}
	return out
}

// ktErr is the relative error of got against want, element by element, as
// ktTol describes it with the given floor; it returns the worst and where
// it is. Mismatched NaN and Inf count as infinite error.
func ktErr(got, want []float64, floor float64) (worst float64, at int) {
	scale := 0.0
	for _, w := range want {
		if !math.IsInf(w, 0) && !math.IsNaN(w) {
			scale = max(scale, math.Abs(w))
		}
	}
	floor *= scale
	if floor == 0 {
		floor = 1e-300
	}
	for i, w := range want {
		g := got[i]
		var e float64
		switch {
		case math.IsNaN(w) || math.IsNaN(g) || math.IsInf(w, 0) || math.IsInf(g, 0):
			if !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
				e = math.Inf(1)
			}
		default:
			e = math.Abs(g-w) / max(math.Abs(w), floor)
		}
		if e > worst || i == 0 {
			worst, at = max(worst, e), i
		}
	}
	return worst, at
}

// ktCheck fails the test when got differs from want by more than tol.
func ktCheck(t testing.TB, what string, got, want []float64, tol ktTol) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	if len(want) == 0 {
		return
	}
	if e, at := ktErr(got, want, tol.floor); e > tol.rel {
		t.Errorf("%s: relative error %.3g at %d (got %v, want %v), tolerance %g", what, e, at, got[at], want[at], tol.rel)
	}
}

// ktGrad returns the central-difference gradient of f at x, with step h =
// 1e-5 (relative to max(1, |x_i|)).
func ktGrad(x []float64, f func([]float64) float64) []float64 {
	g := make([]float64, len(x))
	xp := append([]float64(nil), x...)
	for i, v := range x {
		h := 1e-5 * max(1, math.Abs(v))
		xp[i] = v + h
		fp := f(xp)
		xp[i] = v - h
		fm := f(xp)
		xp[i] = v
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

// ktDot is sum(a*b).
func ktDot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// ktOK fails the test on err.
func ktOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ktRoundTo rounds v to dt by an independent route: math/big's rounding to
// 8 (BF16) or 11 (F16) significant bits, nearest even. It holds for values
// in the normal range of dt.
func ktRoundTo(dt tensor.DType, v float64) float64 {
	switch dt {
	case tensor.F32:
		return float64(float32(v))
	case tensor.BF16, tensor.F16:
		prec := uint(8)
		if dt == tensor.F16 {
			prec = 11
		}
		f, _ := new(big.Float).SetMode(big.ToNearestEven).SetPrec(prec).SetFloat64(v).Float64()
		return f
	}
	return v
}

var ktFloatTypes = []tensor.DType{tensor.F32, tensor.F64, tensor.BF16, tensor.F16}

func TestKernelFill(t *testing.T) {
	b := ktBackend(t, 4)
	const v = 1.2345678901234567
	for _, dt := range ktFloatTypes {
		x, err := b.Alloc(dt, 3, 70001)
		ktOK(t, err)
		ktOK(t, b.Fill(x, v))
		want := ktRoundTo(dt, v)
		for i, g := range ktValues(t, x) {
			if g != want {
				t.Fatalf("%v: element %d = %v, want %v", dt, i, g, want)
			}
		}
	}
	x, _ := b.Alloc(tensor.I32, 3)
	if err := b.Fill(x, 1); err == nil || !strings.Contains(err.Error(), "dst") {
		t.Errorf("Fill of i32: error %v, want one naming dst", err)
	}
}

func TestKernelConvert(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := ktBackend(t, 4)
	// Magnitudes from 1e-3 to 1e4: normal in every dtype, so ktRoundTo holds.
	vals := make([]float64, 50001)
	for i := range vals {
		vals[i] = math.Pow(10, -3+7*r.Float64())
		if r.IntN(2) == 0 {
			vals[i] = -vals[i]
		}
	}
	vals[0], vals[1] = 0, 1
	for _, sd := range ktFloatTypes {
		src := ktTensor(t, b, sd, vals, len(vals))
		in := ktValues(t, src)
		for i, v := range in {
			if w := ktRoundTo(sd, vals[i]); v != w {
				t.Fatalf("%v input %d: %v, want %v", sd, i, v, w)
			}
		}
		for _, dd := range ktFloatTypes {
			dst, err := b.Alloc(dd, len(vals))
			ktOK(t, err)
			ktOK(t, b.Convert(dst, src))
			for i, g := range ktValues(t, dst) {
				if w := ktRoundTo(dd, in[i]); g != w && !(g == 0 && w == 0) {
					t.Fatalf("%v -> %v: element %d (%v) = %v, want %v", sd, dd, i, in[i], g, w)
				}
			}
		}
	}

	// F32 -> BF16 and F16 bit for bit as the tensor package rounds, special
	// values (NaN, Inf, overflow, subnormals) included.
	f32s := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e5, -7e4, 65519, 65520, 1e-6, -3e-8, 1e-40, 3.4e38, -0.0}
	for range 10000 {
		f32s = append(f32s, float64(math.Float32frombits(r.Uint32())))
	}
	src := ktTensor(t, b, tensor.F32, f32s, len(f32s))
	s32, _ := Float32s(src)
	for _, dd := range []tensor.DType{tensor.BF16, tensor.F16} {
		dst, _ := b.Alloc(dd, len(f32s))
		ktOK(t, b.Convert(dst, src))
		got, _ := Uint16s(dst)
		for i, f := range s32 {
			want := tensor.BF16FromF32(f)
			if dd == tensor.F16 {
				want = tensor.F16FromF32(f)
			}
			if got[i] != want {
				t.Fatalf("f32 %g -> %v: %#04x, want %#04x", f, dd, got[i], want)
			}
		}
	}

	// F64 -> BF16 and F16 round once: values just above a tie in the 16-bit
	// format that float32 would round onto the tie.
	for _, c := range []struct {
		dt   tensor.DType
		v    float64
		want uint16
	}{
		{tensor.BF16, 1 + 0x1p-8 + 0x1p-30, 0x3f81},
		{tensor.BF16, -(1 + 0x1p-8 + 0x1p-30), 0xbf81},
		{tensor.BF16, 1 + 0x1p-8, 0x3f80}, // an exact tie goes to even
		{tensor.BF16, 1 + 3*0x1p-8 - 0x1p-40, 0x3f81},
		{tensor.F16, 1 + 0x1p-11 + 0x1p-40, 0x3c01},
		{tensor.F16, 1 + 0x1p-11, 0x3c00},
		{tensor.F16, 1e6, 0x7c00},
		{tensor.BF16, 1e300, 0x7f80},
		{tensor.BF16, 1e-300, 0x0000},
		{tensor.F16, -1e-300, 0x8000},
	} {
		src := ktTensor(t, b, tensor.F64, []float64{c.v}, 1)
		dst, _ := b.Alloc(c.dt, 1)
		ktOK(t, b.Convert(dst, src))
		if got, _ := Uint16s(dst); got[0] != c.want {
			t.Errorf("f64 %v -> %v: %#04x, want %#04x", c.v, c.dt, got[0], c.want)
		}
	}

	// Every BF16 and F16 bit pattern survives a round trip through F32 and
	// F64 (NaNs stay NaN), and BF16 -> F16 -> BF16 where F16 holds the value.
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		src, _ := b.Alloc(dt, 1<<16)
		bits, _ := Uint16s(src)
		for i := range bits {
			bits[i] = uint16(i)
		}
		for _, mid := range []tensor.DType{tensor.F32, tensor.F64} {
			m, _ := b.Alloc(mid, 1<<16)
			back, _ := b.Alloc(dt, 1<<16)
			ktOK(t, b.Convert(m, src))
			ktOK(t, b.Convert(back, m))
			got, _ := Uint16s(back)
			isNaN := func(h uint16) bool {
				if dt == tensor.BF16 {
					return h&0x7fff > 0x7f80
				}
				return h&0x7fff > 0x7c00
			}
			for i, h := range bits {
				if got[i] != h && !(isNaN(h) && isNaN(got[i])) {
					t.Fatalf("%v %#04x -> %v -> %v: %#04x", dt, h, mid, dt, got[i])
				}
			}
		}
	}

	// Errors name the operand.
	f, _ := b.Alloc(tensor.F32, 4)
	i, _ := b.Alloc(tensor.I32, 4)
	short, _ := b.Alloc(tensor.BF16, 3)
	for _, c := range []struct {
		dst, src *tensor.Tensor
		want     string
	}{{f, i, "src"}, {i, f, "dst"}, {short, f, "dst"}, {nil, f, "dst"}} {
		if err := b.Convert(c.dst, c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Convert(%v, %v): error %v, want one naming %s", c.dst, c.src, err, c.want)
		}
	}
}

func TestKernelAddMul(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct{ x, y []int }{
		{[]int{7, 13}, []int{7, 13}},
		{[]int{7, 13}, []int{13}},
		{[]int{7, 13}, []int{1}},
		{[]int{3, 5, 11}, []int{5, 11}},
		{[]int{1}, []int{1}},
		{[]int{0, 4}, []int{4}},
		{[]int{97, 1031}, []int{1031}},
		{[]int{97, 1031}, []int{97, 1031}},
		{[]int{50001}, []int{3}}, // not a row, but a divisor: repeats all the same
	}
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, c := range cases {
				for _, mul := range []bool{false, true} {
					for _, alias := range []bool{false, true} {
						what := fmt.Sprintf("%s %v x%v y%v mul=%v alias=%v", name, tt.dt, c.x, c.y, mul, alias)
						nx, _ := tensor.NumElements(c.x)
						ny, _ := tensor.NumElements(c.y)
						xv, yv := ktRand(r, tt.dt, nx, 2), ktRand(r, tt.dt, ny, 2)
						x, y := ktTensor(t, b, tt.dt, xv, c.x...), ktTensor(t, b, tt.dt, yv, c.y...)
						dst := x
						if !alias {
							dst, _ = b.Alloc(tt.dt, c.x...)
						}
						want := make([]float64, nx)
						for i := range want {
							if mul {
								want[i] = xv[i] * yv[i%ny]
							} else {
								want[i] = xv[i] + yv[i%ny]
							}
						}
						if mul {
							ktOK(t, b.Mul(dst, x, y))
						} else {
							ktOK(t, b.Add(dst, x, y))
						}
						ktCheck(t, what, ktValues(t, dst), want, tt.tol)
					}
				}
			}
		}
	}
}

func TestKernelScale(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := ktBackend(t, 4)
	for _, tt := range ktTypes {
		for _, n := range []int{1, 17, 100003} {
			xv, dv := ktRand(r, tt.dt, n, 1), ktRand(r, tt.dt, n, 1)
			s := -1.7
			if tt.dt == tensor.F32 {
				s = float64(float32(s))
			}
			x := ktTensor(t, b, tt.dt, xv, n)
			dst, _ := b.Alloc(tt.dt, n)
			ktOK(t, b.Scale(dst, x, s))
			want := make([]float64, n)
			for i := range want {
				want[i] = s * xv[i]
			}
			ktCheck(t, fmt.Sprintf("Scale %v %d", tt.dt, n), ktValues(t, dst), want, tt.tol)
			ktOK(t, b.Scale(x, x, s))
			ktCheck(t, fmt.Sprintf("Scale in place %v %d", tt.dt, n), ktValues(t, x), want, tt.tol)

			acc := ktTensor(t, b, tt.dt, dv, n)
			x = ktTensor(t, b, tt.dt, xv, n)
			ktOK(t, b.AddScaled(acc, x, s))
			for i := range want {
				want[i] = dv[i] + s*xv[i]
			}
			ktCheck(t, fmt.Sprintf("AddScaled %v %d", tt.dt, n), ktValues(t, acc), want, tt.tol)
		}
	}
}

func TestKernelSumRows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, c := range []struct{ rows, m int }{{1000, 1}, {3, 7}, {5000, 13}, {40, 1031}, {1, 5}, {0, 4}} {
				what := fmt.Sprintf("%s %v %dx%d", name, tt.dt, c.rows, c.m)
				xv, dv := ktRand(r, tt.dt, c.rows*c.m, 1), ktRand(r, tt.dt, c.m, 1)
				x := ktTensor(t, b, tt.dt, xv, c.rows, c.m)
				dst := ktTensor(t, b, tt.dt, dv, c.m)
				ktOK(t, b.SumRows(dst, x))
				want := append([]float64(nil), dv...)
				for i, v := range xv {
					want[i%c.m] += v
				}
				ktCheck(t, what, ktValues(t, dst), want, tt.tol)
			}
		}
	}
}

// Reference activations, from their definitions.
func ktAct(f backend.Act, x float64) float64 {
	switch f {
	case backend.SiLU:
		return x / (1 + math.Exp(-x))
	case backend.GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case backend.GELUErf:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	}
	panic("activation")
}

var ktActs = []backend.Act{backend.SiLU, backend.GELUTanh, backend.GELUErf}

func TestKernelActivation(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	b := ktBackend(t, 4)
	for _, tt := range ktTypes {
		for _, f := range ktActs {
			for _, alias := range []bool{false, true} {
				const n = 37 * 1029
				xv := ktRand(r, tt.dt, n, 2.5)
				xv[0], xv[1] = -30, 30
				x := ktTensor(t, b, tt.dt, xv, 37, 1029)
				dst := x
				if !alias {
					dst, _ = b.Alloc(tt.dt, 37, 1029)
				}
				ktOK(t, b.Activation(f, dst, x))
				want := make([]float64, n)
				for i, v := range xv {
					want[i] = ktAct(f, v)
				}
				ktCheck(t, fmt.Sprintf("act %d %v alias=%v", f, tt.dt, alias), ktValues(t, dst), want, tt.tol)
			}
		}
	}
}

func TestKernelActivationBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	b := ktBackend(t, 2)
	for _, f := range ktActs {
		xv, rv := ktRand(r, tensor.F64, 35, 2), ktRand(r, tensor.F64, 35, 1)
		obj := func(xv []float64) float64 {
			x := ktTensor(t, b, tensor.F64, xv, 5, 7)
			y, _ := b.Alloc(tensor.F64, 5, 7)
			ktOK(t, b.Activation(f, y, x))
			return ktDot(ktValues(t, y), rv)
		}
		x := ktTensor(t, b, tensor.F64, xv, 5, 7)
		dy := ktTensor(t, b, tensor.F64, rv, 5, 7)
		dx, _ := b.Alloc(tensor.F64, 5, 7)
		ktOK(t, b.ActivationBackward(f, dx, x, dy))
		ktCheck(t, fmt.Sprintf("act %d dx", f), ktValues(t, dx), ktGrad(xv, obj), ktGradTol)
		// F32 against the float64 derivative, and dx in dy's place.
		x32 := ktTensor(t, b, tensor.F32, xv, 5, 7)
		dy32 := ktTensor(t, b, tensor.F32, rv, 5, 7)
		ktOK(t, b.ActivationBackward(f, dy32, x32, dy32))
		ktCheck(t, fmt.Sprintf("act %d dx f32", f), ktValues(t, dy32), ktValues(t, dx), ktF32(1e-5))
	}
}

func TestKernelSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	b := ktBackend(t, 4)
	for _, tt := range ktTypes {
		const n = 3 * 11 * 2001
		gv, uv := ktRand(r, tt.dt, n, 2), ktRand(r, tt.dt, n, 1)
		gate, up := ktTensor(t, b, tt.dt, gv, 3, 11, 2001), ktTensor(t, b, tt.dt, uv, 3, 11, 2001)
		dst, _ := b.Alloc(tt.dt, 3, 11, 2001)
		ktOK(t, b.SwiGLU(dst, gate, up))
		want := make([]float64, n)
		for i, g := range gv {
			want[i] = g / (1 + math.Exp(-g)) * uv[i]
		}
		ktCheck(t, fmt.Sprintf("SwiGLU %v", tt.dt), ktValues(t, dst), want, tt.tol)
	}

	// Backward against central differences of the float64 forward kernel.
	gv, uv, rv := ktRand(r, tensor.F64, 24, 2), ktRand(r, tensor.F64, 24, 1), ktRand(r, tensor.F64, 24, 1)
	obj := func(gv, uv []float64) float64 {
		y, _ := b.Alloc(tensor.F64, 4, 6)
		ktOK(t, b.SwiGLU(y, ktTensor(t, b, tensor.F64, gv, 4, 6), ktTensor(t, b, tensor.F64, uv, 4, 6)))
		return ktDot(ktValues(t, y), rv)
	}
	gate, up := ktTensor(t, b, tensor.F64, gv, 4, 6), ktTensor(t, b, tensor.F64, uv, 4, 6)
	dy := ktTensor(t, b, tensor.F64, rv, 4, 6)
	dgate, _ := b.Alloc(tensor.F64, 4, 6)
	dup, _ := b.Alloc(tensor.F64, 4, 6)
	ktOK(t, b.SwiGLUBackward(dgate, dup, gate, up, dy))
	wantG := ktGrad(gv, func(g []float64) float64 { return obj(g, uv) })
	wantU := ktGrad(uv, func(u []float64) float64 { return obj(gv, u) })
	ktCheck(t, "dgate", ktValues(t, dgate), wantG, ktGradTol)
	ktCheck(t, "dup", ktValues(t, dup), wantU, ktGradTol)
	// Either output alone gives the same values.
	only, _ := b.Alloc(tensor.F64, 4, 6)
	ktOK(t, b.SwiGLUBackward(only, nil, gate, up, dy))
	ktCheck(t, "dgate alone", ktValues(t, only), ktValues(t, dgate), ktF64(1e-15))
	ktOK(t, b.SwiGLUBackward(nil, only, gate, up, dy))
	ktCheck(t, "dup alone", ktValues(t, only), ktValues(t, dup), ktF64(1e-15))
	ktOK(t, b.SwiGLUBackward(nil, nil, gate, up, dy))
	// F32 against the float64 gradients.
	g32, u32, dy32 := ktTensor(t, b, tensor.F32, gv, 4, 6), ktTensor(t, b, tensor.F32, uv, 4, 6), ktTensor(t, b, tensor.F32, rv, 4, 6)
	dg32, _ := b.Alloc(tensor.F32, 4, 6)
	du32, _ := b.Alloc(tensor.F32, 4, 6)
	ktOK(t, b.SwiGLUBackward(dg32, du32, g32, u32, dy32))
	ktCheck(t, "dgate f32", ktValues(t, dg32), wantG, ktF32(1e-5))
	ktCheck(t, "dup f32", ktValues(t, du32), wantU, ktF32(1e-5))
}

// ktSoftmax is the softmax of each row of d elements, from the definition.
func ktSoftmax(x []float64, d int) []float64 {
	out := make([]float64, len(x))
	for i := 0; i < len(x); i += d {
		var s float64
		for _, v := range x[i : i+d] {
			s += math.Exp(v)
		}
		for j, v := range x[i : i+d] {
			out[i+j] = math.Exp(v) / s
		}
	}
	return out
}

func TestKernelSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, sh := range [][]int{{1, 1}, {5, 7}, {2, 3, 33}, {61, 1000}} {
				for _, alias := range []bool{false, true} {
					n, _ := tensor.NumElements(sh)
					d := sh[len(sh)-1]
					xv := ktRand(r, tt.dt, n, 3)
					if d > 2 {
						xv[1] = math.Inf(-1) // a masked entry
					}
					x := ktTensor(t, b, tt.dt, xv, sh...)
					dst := x
					if !alias {
						dst, _ = b.Alloc(tt.dt, sh...)
					}
					ktOK(t, b.Softmax(dst, x))
					ktCheck(t, fmt.Sprintf("%s %v %v alias=%v", name, tt.dt, sh, alias), ktValues(t, dst), ktSoftmax(xv, d), tt.tol)
				}
			}
		}
		// A row of -Inf only becomes zeros; other rows are unaffected.
		inf := math.Inf(-1)
		x := ktTensor(t, b, tensor.F32, []float64{inf, inf, inf, 0, 0, math.Log(2)}, 2, 3)
		ktOK(t, b.Softmax(x, x))
		ktCheck(t, "masked row", ktValues(t, x), []float64{0, 0, 0, 0.25, 0.25, 0.5}, ktF32(1e-6))
	}

	// Backward against central differences.
	b := ktBackend(t, 2)
	xv, rv := ktRand(r, tensor.F64, 4*9, 2), ktRand(r, tensor.F64, 4*9, 1)
	obj := func(xv []float64) float64 {
		y, _ := b.Alloc(tensor.F64, 4, 9)
		ktOK(t, b.Softmax(y, ktTensor(t, b, tensor.F64, xv, 4, 9)))
		return ktDot(ktValues(t, y), rv)
	}
	y, _ := b.Alloc(tensor.F64, 4, 9)
	ktOK(t, b.Softmax(y, ktTensor(t, b, tensor.F64, xv, 4, 9)))
	dy := ktTensor(t, b, tensor.F64, rv, 4, 9)
	dx, _ := b.Alloc(tensor.F64, 4, 9)
	ktOK(t, b.SoftmaxBackward(dx, y, dy))
	want := ktGrad(xv, obj)
	ktCheck(t, "softmax dx", ktValues(t, dx), want, ktGradTol)
	ktOK(t, b.SoftmaxBackward(dy, y, dy)) // in dy's place
	ktCheck(t, "softmax dx in place", ktValues(t, dy), want, ktGradTol)
}

// ktSplitMix64 returns the generator SplitMix64 seeded with seed, written
// out from its published definition: each call gives the next output.
func ktSplitMix64(seed uint64) func() uint64 {
	state := seed
	return func() uint64 {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
}

func TestKernelDropout(t *testing.T) {
	// The generator is SplitMix64, whose first output for seed 0 is a
	// published test value.
	if got := dropoutBits(0, 0); got != 0xe220a8397b1dcdaf {
		t.Errorf("dropoutBits(0, 0) = %#x, want SplitMix64's 0xe220a8397b1dcdaf", got)
	}
	next := ktSplitMix64(12345)
	for i := range 100 {
		if got, want := dropoutBits(12345, uint64(i)), next(); got != want {
			t.Fatalf("dropoutBits(12345, %d) = %#x, want %#x", i, got, want)
		}
	}

	const n = 1_000_000
	b1, b4 := ktBackend(t, 1), ktBackend(t, 4)
	ones := make([]float64, n)
	for i := range ones {
		ones[i] = 1
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.F64} {
		for _, p := range []float64{0.1, 0.5, 0.9} {
			x := ktTensor(t, b1, dt, ones, 1000, 1000)
			y1, _ := b1.Alloc(dt, 1000, 1000)
			y4, _ := b4.Alloc(dt, 1000, 1000)
			ktOK(t, b1.Dropout(y1, x, p, 42))
			ktOK(t, b4.Dropout(y4, x, p, 42))
			v1, v4 := ktValues(t, y1), ktValues(t, y4)
			zeros, sum := 0, 0.0
			next := ktSplitMix64(42)
			for i, v := range v1 {
				if v != v4[i] {
					t.Fatalf("%v p=%v: element %d is %v with 1 thread, %v with 4", dt, p, i, v, v4[i])
				}
				// The documented mask: drop when the top 53 bits of the
				// i-th SplitMix64 output, over 2^53, fall below p.
				drop := float64(next()>>11)/(1<<53) < p
				if drop != (v == 0) {
					t.Fatalf("%v p=%v: element %d = %v, want dropped=%v", dt, p, i, v, drop)
				}
				if v == 0 {
					zeros++
				} else if math.Abs(v-1/(1-p)) > 1e-6 {
					t.Fatalf("%v p=%v: kept element %d = %v, want %v", dt, p, i, v, 1/(1-p))
				}
				sum += v
			}
			frac := float64(zeros) / n
			if sd := math.Sqrt(p * (1 - p) / n); math.Abs(frac-p) > 5*sd {
				t.Errorf("%v p=%v: %v of elements dropped", dt, p, frac)
			}
			mean := sum / n
			if sd := math.Sqrt(p / (1 - p) / n); math.Abs(mean-1) > 5*sd {
				t.Errorf("%v p=%v: mean %v, want 1", dt, p, mean)
			}
			// Same seed, same mask, in place too; another seed, another mask.
			ktOK(t, b4.Dropout(x, x, p, 42))
			ktCheck(t, "in place", ktValues(t, x), v1, ktExact)
			ktOK(t, b4.Dropout(y4, y4, 0, 0))
			ktCheck(t, "p=0", ktValues(t, y4), v1, ktExact)
			x = ktTensor(t, b1, dt, ones, 1000, 1000)
			ktOK(t, b4.Dropout(y4, x, p, 43))
			differ := 0
			for i, v := range ktValues(t, y4) {
				if (v == 0) != (v1[i] == 0) {
					differ++
				}
			}
			if want := 2 * p * (1 - p) * n; math.Abs(float64(differ)-want) > 0.05*want {
				t.Errorf("%v p=%v: seeds 42 and 43 differ in %d places, want about %v", dt, p, differ, want)
			}
		}
		x := ktTensor(t, b4, dt, ones[:1000], 1000)
		ktOK(t, b4.Dropout(x, x, 1, 7))
		ktCheck(t, "p=1", ktValues(t, x), make([]float64, 1000), ktExact)
		for _, p := range []float64{-0.1, 1.5, math.NaN()} {
			if err := b4.Dropout(x, x, p, 7); err == nil || !strings.Contains(err.Error(), "p =") {
				t.Errorf("Dropout p=%v: error %v", p, err)
			}
		}
	}
}

func TestKernelGather(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for name, b := range ktBackends(t) {
		for _, d := range []int{1, 7, 300} {
			const v = 11
			ids := []int32{3, 0, 10, 3, 3, 7, 1, 0, 10, 5}
			tv := ktRand(r, tensor.F64, v*d, 1)
			for _, tdt := range ktFloatTypes {
				table := ktTensor(t, b, tdt, tv, v, d)
				tab := ktValues(t, table)
				for _, tt := range ktTypes {
					dst, _ := b.Alloc(tt.dt, 2, 5, d)
					ktOK(t, b.Gather(dst, table, ktInts(t, b, ids, 2, 5)))
					want := make([]float64, 0, len(ids)*d)
					for _, id := range ids {
						for _, x := range tab[int(id)*d : int(id+1)*d] {
							want = append(want, ktRoundTo(tt.dt, x))
						}
					}
					ktCheck(t, fmt.Sprintf("%s gather %v -> %v d=%d", name, tdt, tt.dt, d), ktValues(t, dst), want, ktExact)
				}
			}
		}
	}
	b := ktBackend(t, 2)
	table, _ := b.Alloc(tensor.BF16, 5, 3)
	dst, _ := b.Alloc(tensor.F32, 3, 3)
	for _, c := range []struct {
		ids  []int32
		want string
	}{{[]int32{0, 5, 1}, "ids[1] = 5"}, {[]int32{0, 1, -1}, "ids[2] = -1"}} {
		err := b.Gather(dst, table, ktInts(t, b, c.ids, 3))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Gather ids %v: error %v, want %q", c.ids, err, c.want)
		}
	}
}

func TestKernelScatterAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, d := range []int{1, 7, 1000} {
				const v = 6
				ids := []int32{2, 0, 5, 2, 2, 1, 0, 5, 2}
				dv, gv := ktRand(r, tt.dt, v*d, 1), ktRand(r, tt.dt, len(ids)*d, 1)
				dtable := ktTensor(t, b, tt.dt, dv, v, d)
				ktOK(t, b.ScatterAdd(dtable, ktInts(t, b, ids, 3, 3), ktTensor(t, b, tt.dt, gv, 3, 3, d)))
				want := append([]float64(nil), dv...)
				for i, id := range ids {
					for j := range d {
						want[int(id)*d+j] += gv[i*d+j]
					}
				}
				ktCheck(t, fmt.Sprintf("%s %v d=%d", name, tt.dt, d), ktValues(t, dtable), want, tt.tol)
			}
		}
	}

	// ScatterAdd is Gather's backward: central differences of
	// sum(Gather(table) * R) with repeated ids.
	b := ktBackend(t, 3)
	ids := ktInts(t, b, []int32{1, 3, 1, 1, 0}, 5)
	tv, rv := ktRand(r, tensor.F64, 4*3, 1), ktRand(r, tensor.F64, 5*3, 1)
	obj := func(tv []float64) float64 {
		y, _ := b.Alloc(tensor.F64, 5, 3)
		ktOK(t, b.Gather(y, ktTensor(t, b, tensor.F64, tv, 4, 3), ids))
		return ktDot(ktValues(t, y), rv)
	}
	dtable, _ := b.Alloc(tensor.F64, 4, 3)
	ktOK(t, b.ScatterAdd(dtable, ids, ktTensor(t, b, tensor.F64, rv, 5, 3)))
	ktCheck(t, "dtable", ktValues(t, dtable), ktGrad(tv, obj), ktGradTol)

	err := b.ScatterAdd(dtable, ktInts(t, b, []int32{0, 4, 0, 0, 0}, 5), ktTensor(t, b, tensor.F64, rv, 5, 3))
	if err == nil || !strings.Contains(err.Error(), "ids[1] = 4") {
		t.Errorf("ScatterAdd with id 4 of 4: error %v", err)
	}
}

// TestKernelErrors checks that operands of the wrong dtype, size or shape,
// missing operands and bad integer operands are errors that name the
// operand, for every kernel.
func TestKernelErrors(t *testing.T) {
	b := ktBackend(t, 2)
	f32 := func(shape ...int) *tensor.Tensor { x, _ := b.Alloc(tensor.F32, shape...); return x }
	f64 := func(shape ...int) *tensor.Tensor { x, _ := b.Alloc(tensor.F64, shape...); return x }
	i32 := func(vals ...int32) *tensor.Tensor { return ktInts(t, b, vals, len(vals)) }
	scalar, _ := b.Alloc(tensor.F32)
	rope := &backend.Rope{InvFreq: []float64{1, 0.5}}
	one := f32(1)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"Add dtype", b.Add(f32(4), f32(4), f64(4)), "y: tensor f64[4]@cpu, want f32"},
		{"Add broadcast", b.Add(f32(2, 3), f32(2, 3), f32(4)), "y: "},
		{"Add dst", b.Add(f32(5), f32(2, 3), f32(3)), "dst: "},
		{"Add nil dst", b.Add(nil, f32(2, 3), f32(3)), "dst: missing"},
		{"Add int x", b.Add(f32(3), i32(1, 2, 3), f32(3)), "x: "},
		{"Mul empty y", b.Mul(f32(3), f32(3), f32(0)), "y: "},
		{"Scale dst", b.Scale(f32(4), f32(3), 2), "dst: "},
		{"AddScaled dtype", b.AddScaled(f64(3), f32(3), 2), "dst: "},
		{"SumRows rows", b.SumRows(f32(3), f32(2, 4)), "x: "},
		{"SumRows dtype", b.SumRows(f32(3), f64(2, 3)), "x: "},
		{"Activation kind", b.Activation(backend.Act(9), f32(3), f32(3)), "activation"},
		{"Activation dst", b.Activation(backend.SiLU, f32(4), f32(3)), "dst: "},
		{"ActivationBackward dy", b.ActivationBackward(backend.GELUErf, f32(3), f32(3), f32(2)), "dy: "},
		{"SwiGLU up", b.SwiGLU(f32(3), f32(3), f32(4)), "up: "},
		{"SwiGLUBackward dup", b.SwiGLUBackward(nil, f64(3), f32(3), f32(3), f32(3)), "dup: "},
		{"Softmax dst", b.Softmax(f32(3, 4), f32(4, 3)), "dst: "},
		{"Softmax scalar", b.Softmax(scalar, scalar), "x: "},
		{"SoftmaxBackward dy", b.SoftmaxBackward(f32(2, 3), f32(2, 3), f32(3)), "dy: "},
		{"Dropout dst", b.Dropout(f32(2), f32(3), 0.5, 1), "dst: "},
		{"Gather table rank", b.Gather(f32(2, 3), f32(6), i32(0, 1)), "table: "},
		{"Gather dst", b.Gather(f32(2, 4), f32(5, 3), i32(0, 1)), "dst: "},
		{"Gather ids dtype", b.Gather(f32(2, 3), f32(5, 3), f32(2)), "ids: "},
		{"Gather bf16 dst", func() error { d, _ := b.Alloc(tensor.BF16, 2, 3); return b.Gather(d, f32(5, 3), i32(0, 1)) }(), "dst: "},
		{"ScatterAdd dy", b.ScatterAdd(f32(5, 3), i32(0, 1), f32(2, 4)), "dy: "},
		{"RMSNorm rstd", b.RMSNorm(f32(2, 3), f32(3), f32(2, 3), nil, 1e-6), "rstd: "},
		{"RMSNorm w", b.RMSNorm(f32(2, 3), f32(2), f32(2, 3), f32(2), 1e-6), "w: "},
		{"RMSNorm y dtype", b.RMSNorm(f64(2, 3), f32(2), f32(2, 3), nil, 1e-6), "y: "},
		{"RMSNormBackward dw", b.RMSNormBackward(nil, f32(4), f32(2, 3), nil, f32(2), f32(2, 3)), "dw: "},
		{"RMSNormBackward dy", b.RMSNormBackward(f32(2, 3), nil, f32(2, 3), nil, f32(2), f32(3, 3)), "dy: "},
		{"LayerNorm mean", b.LayerNorm(f32(2, 3), f32(3), f32(2), f32(2, 3), nil, nil, 1e-5), "mean: "},
		{"LayerNorm b", b.LayerNorm(f32(2, 3), f32(2), f32(2), f32(2, 3), nil, f32(2), 1e-5), "b: "},
		{"LayerNormBackward db", b.LayerNormBackward(nil, nil, f64(3), f32(2, 3), nil, f32(2), f32(2), f32(2, 3)), "db: "},
		{"LayerNormBackward rstd", b.LayerNormBackward(f32(2, 3), nil, nil, f32(2, 3), nil, f32(2), nil, f32(2, 3)), "rstd: missing"},
		{"RoPE rank", b.RoPE(f32(2, 8), f32(2, 8), i32(0, 1), rope, false), "x: "},
		{"RoPE pos dtype", b.RoPE(f32(2, 1, 8), f32(2, 1, 8), f32(2), rope, false), "pos: "},
		{"RoPE pos size", b.RoPE(f32(2, 1, 8), f32(2, 1, 8), i32(0, 1, 2), rope, false), "pos: "},
		{"RoPE too many channels", b.RoPE(f32(2, 1, 3), f32(2, 1, 3), i32(0, 1), rope, false), "Rope rotates 4 channels"},
		{"RoPE nil Rope", b.RoPE(f32(2, 1, 8), f32(2, 1, 8), i32(0, 1), nil, false), "Rope"},
		{"RoPE dst", b.RoPE(f32(2, 1, 4), f32(2, 1, 8), i32(0, 1), rope, false), "dst: "},
		{"CrossEntropy target", b.CrossEntropy(f32(3), f32(3), f32(3, 5), i32(0, 5, 1)), "row 1 has target 5"},
		{"CrossEntropy negative target", b.CrossEntropy(f32(3), f32(3), f32(3, 5), i32(0, 1, -1)), "row 2 has target -1"},
		{"CrossEntropy lse", b.CrossEntropy(f32(3), f32(2), f32(3, 5), i32(0, 1, 2)), "lse: "},
		{"CrossEntropy targets", b.CrossEntropy(f32(3), f32(3), f32(3, 5), i32(0, 1)), "targets: "},
		{"CrossEntropy losses dtype", b.CrossEntropy(f64(3), f32(3), f32(3, 5), i32(0, 1, 2)), "losses: "},
		{"CrossEntropyBackward dloss", b.CrossEntropyBackward(f32(3, 5), f32(3, 5), f32(3), i32(0, 1, 2), f32(2)), "dloss: "},
		{"CrossEntropyBackward target", b.CrossEntropyBackward(f32(3, 5), f32(3, 5), f32(3), i32(0, 1, 7), one), "row 2 has target 7"},
		{"CrossEntropyBackward dlogits", b.CrossEntropyBackward(f32(3, 4), f32(3, 5), f32(3), i32(0, 1, 2), one), "dlogits: "},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
}

// TestKernelExpBlock checks the float32 exponential the kernels use,
// expBlock (vector code where the CPU has it, expf's series elsewhere),
// against math.Exp: within 2 ulp over the normal range, exact at the
// specials, with the affine argument a*x+c, out of place and in place.
func TestKernelExpBlock(t *testing.T) {
	var xs []float32
	for bits := uint32(0); bits < 1<<31; bits += 1 << 12 {
		f := math.Float32frombits(bits)
		xs = append(xs, f, -f)
	}
	// A dense run inside the vector code's range, in whole chunks.
	for i := range 1 << 16 {
		xs = append(xs, -87+175*float32(i)/(1<<16))
	}
	xs = append(xs, -87, 88, -87.00001, 88.00001, -104, -103.97, 88.72, 89,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()))
	check := func(e, xs []float32, a, c float32) {
		t.Helper()
		for i, x := range xs {
			arg := a*x + c
			want := math.Exp(float64(arg))
			got := e[i]
			switch {
			case arg != arg:
				if got == got {
					t.Fatalf("expBlock(%v*%g + %v) = %g, want NaN", a, x, c, got)
				}
			case want < 1.2e-38 || math.IsInf(float64(float32(want)), 0):
				if float64(got) != float64(float32(want)) && math.Abs(float64(got)-want) > 1.5e-45 {
					t.Fatalf("expBlock(%v*%g + %v) = %g, want %g", a, x, c, got, want)
				}
			default:
				if u := ulps(got, want); u > 2 {
					t.Fatalf("expBlock(%v*%g + %v) = %g, want %g (%.1f ulp)", a, x, c, got, want, u)
				}
			}
		}
	}
	e := make([]float32, len(xs))
	for _, ac := range [][2]float32{{1, 0}, {-1, 0}, {1, -3.5}, {-2, 0.25}} {
		expBlock(e, xs, ac[0], ac[1])
		check(e, xs, ac[0], ac[1])
		in := append([]float32(nil), xs...)
		expBlock(in, in, ac[0], ac[1])
		check(in, xs, ac[0], ac[1])
	}
	// In place, and float64 through math.Exp.
	expBlock(xs[:3], xs[:3], 1, 0)
	x64 := []float64{-1, 0, 2.5}
	expBlock(x64, x64, 2, 1)
	for i, v := range []float64{-1, 0, 2.5} {
		if x64[i] != math.Exp(2*v+1) {
			t.Errorf("float64 expBlock(%v) = %v, want %v", v, x64[i], math.Exp(2*v+1))
		}
	}
}
