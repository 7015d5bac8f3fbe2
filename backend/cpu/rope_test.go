package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// ktRoPE rotates x ([n, h, d]) from the definition: pair i, channels (i,
// i+R/2) or (2i, 2i+1), turns by pos*invFreq[i] (the other way with
// inverse), scaled by s.
func ktRoPE(x []float64, pos []int32, h, d int, r *backend.Rope, inverse bool) []float64 {
	out := append([]float64(nil), x...)
	half := len(r.InvFreq)
	s := r.Scale
	if s == 0 {
		s = 1
	}
	for t, p := range pos {
		for hh := range h {
			head := x[(t*h+hh)*d : (t*h+hh+1)*d]
			o := out[(t*h+hh)*d : (t*h+hh+1)*d]
			for i, f := range r.InvFreq {
				th := float64(p) * f
				if inverse {
					th = -th
				}
				a, b := i, i+half
				if r.Interleaved {
					a, b = 2*i, 2*i+1
				}
				o[a] = s * (head[a]*math.Cos(th) - head[b]*math.Sin(th))
				o[b] = s * (head[b]*math.Cos(th) + head[a]*math.Sin(th))
			}
		}
	}
	return out
}

// ktInvFreq is Llama's table of inverse frequencies for half pairs of a
// head of d channels: base^(-2i/d).
func ktInvFreq(half, d int) []float64 {
	f := make([]float64, half)
	for i := range f {
		f[i] = math.Pow(10000, -2*float64(i)/float64(d))
	}
	return f
}

func ktRoPERun(t *testing.T, b *Backend, dt tensor.DType, xv []float64, pos []int32, h, d int, r *backend.Rope, inverse bool) []float64 {
	t.Helper()
	x := ktTensor(t, b, dt, xv, len(pos), h, d)
	dst, _ := b.Alloc(dt, len(pos), h, d)
	ktOK(t, b.RoPE(dst, x, ktInts(t, b, pos, len(pos)), r, inverse))
	return ktValues(t, dst)
}

func TestKernelRoPEKnownValues(t *testing.T) {
	b := ktBackend(t, 1)
	// Two tokens at positions 1 and 3, two heads (the second the negation of
	// the first), heads of 6 channels of which 4 rotate, by pi/2 and pi/3
	// per position.
	head := []float64{1, 2, 3, 4, 5, 6}
	var xv []float64
	for range 2 {
		xv = append(xv, head...)
		for _, v := range head {
			xv = append(xv, -v)
		}
	}
	pos := []int32{1, 3}
	s3 := math.Sqrt(3)
	for _, c := range []struct {
		interleaved bool
		p1, p3      []float64 // the first head at positions 1 and 3
	}{
		// Pairs (0,2) by pi/2 and (1,3) by pi/3 at position 1; by 3pi/2 and pi at 3.
		{false, []float64{-3, 1 - 2*s3, 1, 2 + s3, 5, 6}, []float64{3, -2, -1, -4, 5, 6}},
		// Pairs (0,1) and (2,3).
		{true, []float64{-2, 1, 1.5 - 2*s3, 2 + 1.5*s3, 5, 6}, []float64{2, -1, -3, -4, 5, 6}},
	} {
		for _, scale := range []float64{0, 1, 2} {
			r := &backend.Rope{InvFreq: []float64{math.Pi / 2, math.Pi / 3}, Interleaved: c.interleaved, Scale: scale}
			var want []float64
			for _, hv := range [][]float64{c.p1, c.p3} {
				h := append([]float64(nil), hv...)
				for j := range 4 {
					h[j] *= max(scale, 1)
				}
				want = append(want, h...)
				for _, v := range h {
					want = append(want, -v)
				}
			}
			for _, tt := range ktTypes {
				got := ktRoPERun(t, b, tt.dt, xv, pos, 2, 6, r, false)
				tol := ktF64(1e-14)
				if tt.dt == tensor.F32 {
					tol = ktF32(1e-6)
				}
				ktCheck(t, fmt.Sprintf("interleaved=%v scale=%v %v", c.interleaved, scale, tt.dt), got, want, tol)
			}
		}
	}
}

func TestKernelRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, c := range []struct{ n, h, d, half int }{{1, 1, 2, 1}, {3, 2, 8, 4}, {5, 3, 10, 3}, {64, 4, 96, 48}, {64, 4, 96, 16}} {
				for _, interleaved := range []bool{false, true} {
					for _, inverse := range []bool{false, true} {
						for _, alias := range []bool{false, true} {
							rope := &backend.Rope{InvFreq: ktInvFreq(c.half, 2*c.half), Interleaved: interleaved, Scale: 0.9}
							what := fmt.Sprintf("%s %v %+v interleaved=%v inverse=%v alias=%v", name, tt.dt, c, interleaved, inverse, alias)
							xv := ktRand(r, tt.dt, c.n*c.h*c.d, 1)
							pos := make([]int32, c.n)
							for i := range pos {
								pos[i] = int32(r.IntN(4096))
							}
							x := ktTensor(t, b, tt.dt, xv, c.n, c.h, c.d)
							dst := x
							if !alias {
								dst, _ = b.Alloc(tt.dt, c.n, c.h, c.d)
							}
							ktOK(t, b.RoPE(dst, x, ktInts(t, b, pos, c.n), rope, inverse))
							ktCheck(t, what, ktValues(t, dst), ktRoPE(xv, pos, c.h, c.d, rope, inverse), tt.tol)
						}
					}
				}
			}
		}
	}
}

// TestKernelRoPEAdjoint checks that the inverse is the transpose,
// <RoPE(x), y> = <x, RoPE⁻¹(y)>, which makes it the backward pass, for
// both layouts, full and partial rotation, with and without Scale; and that
// without Scale it undoes the forward rotation.
func TestKernelRoPEAdjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	b := ktBackend(t, 3)
	const n, h, d = 7, 3, 12
	for _, half := range []int{6, 4} {
		for _, interleaved := range []bool{false, true} {
			for _, scale := range []float64{0, 0.7} {
				what := fmt.Sprintf("half=%d interleaved=%v scale=%v", half, interleaved, scale)
				rope := &backend.Rope{InvFreq: ktInvFreq(half, 2*half), Interleaved: interleaved, Scale: scale}
				xv, yv := ktRand(r, tensor.F64, n*h*d, 1), ktRand(r, tensor.F64, n*h*d, 1)
				pos := make([]int32, n)
				for i := range pos {
					pos[i] = int32(r.IntN(8192)) - 100
				}
				fx := ktRoPERun(t, b, tensor.F64, xv, pos, h, d, rope, false)
				iy := ktRoPERun(t, b, tensor.F64, yv, pos, h, d, rope, true)
				lhs, rhs := ktDot(fx, yv), ktDot(xv, iy)
				if math.Abs(lhs-rhs) > 1e-12*max(math.Abs(lhs), 1) {
					t.Errorf("%s: <RoPE(x), y> = %v, <x, RoPE^-1(y)> = %v", what, lhs, rhs)
				}
				if scale == 0 {
					back := ktRoPERun(t, b, tensor.F64, fx, pos, h, d, rope, true)
					ktCheck(t, what+" inverse(forward)", back, xv, ktF64(1e-12))
				}
			}
		}
	}
}

// TestKernelRoPELayouts checks that the Hugging Face half-split layout is
// the interleaved one after moving channels (i, i+R/2) to (2i, 2i+1).
func TestKernelRoPELayouts(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	b := ktBackend(t, 2)
	const n, h, d, half = 9, 2, 14, 5 // channels 10..13 pass through
	perm := make([]int, d)            // perm[i]: where half-split channel i goes
	for i := range half {
		perm[i], perm[i+half] = 2*i, 2*i+1
	}
	for i := 2 * half; i < d; i++ {
		perm[i] = i
	}
	permute := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for k := 0; k < len(v); k += d {
			for i := range d {
				out[k+perm[i]] = v[k+i]
			}
		}
		return out
	}
	for _, tt := range ktTypes {
		xv := ktRand(r, tt.dt, n*h*d, 1)
		pos := make([]int32, n)
		for i := range pos {
			pos[i] = int32(r.IntN(2048))
		}
		inv := ktInvFreq(half, 2*half)
		hf := ktRoPERun(t, b, tt.dt, xv, pos, h, d, &backend.Rope{InvFreq: inv}, false)
		il := ktRoPERun(t, b, tt.dt, permute(xv), pos, h, d, &backend.Rope{InvFreq: inv, Interleaved: true}, false)
		ktCheck(t, fmt.Sprintf("%v permuted half-split vs interleaved", tt.dt), permute(hf), il, ktExact)
	}
}
