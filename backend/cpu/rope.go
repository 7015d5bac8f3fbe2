package cpu

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// RoPE rotates x ([N, H, D]) by positions pos ([N], I32) into dst, which
// may be x. With R = 2*len(r.InvFreq) (at most D), pair i of each head is
// channels (i, i+R/2), or (2i, 2i+1) when r.Interleaved, and turns by the
// angle pos*InvFreq[i]:
//
//	(a, b) -> (a*c - b*s, b*c + a*s),  c = Scale*cos(angle), s = Scale*sin(angle)
//
// (Hugging Face's q*cos + rotate_half(q)*sin for the half-split layout).
// Channels from R on pass through. Each token's cos and sin are computed
// once, in float64, and applied to all its heads. inverse negates s: the
// transpose of the forward map, which is its backward pass.
func (b *Backend) RoPE(dst, x, pos *tensor.Tensor, r *backend.Rope, inverse bool) error {
	f64, err := useF64("RoPE", "x", x)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("cpu: RoPE: missing Rope")
	}
	if f64 {
		return rope[float64](b, dst, x, pos, r, inverse)
	}
	return rope[float32](b, dst, x, pos, r, inverse)
}

func rope[T Float](b *Backend, dst, x, pos *tensor.Tensor, r *backend.Rope, inverse bool) error {
	a := kargs[T]{op: "RoPE"}
	xs, ds, ps := a.f("x", x), a.f("dst", dst), a.i32("pos", pos)
	if a.err == nil && x.Rank() != 3 {
		a.fail("x: tensor %v, want rank 3 [N, H, D]", x)
	}
	if a.err != nil {
		return a.err
	}
	n, h, d := x.Dim(0), x.Dim(1), x.Dim(2)
	a.size("dst", dst, n*h*d, "x's")
	a.size("pos", pos, n, "x's tokens")
	half := len(r.InvFreq)
	rot := 2 * half
	if a.err == nil && rot > d {
		a.fail("Rope rotates %d channels, x's heads have %d", rot, d)
	}
	if a.err != nil {
		return a.err
	}
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	b.parallelFor(n, max(1, rowElems/max(h*d, 1)), func(lo, hi int) {
		cs := make([]T, 2*half)
		cos, sin := cs[:half], cs[half:]
		for t := lo; t < hi; t++ {
			p := float64(ps[t])
			for i, f := range r.InvFreq {
				s, c := math.Sincos(p * f)
				if inverse {
					s = -s
				}
				cos[i], sin[i] = T(c*scale), T(s*scale)
			}
			for hh := 0; hh < h; hh++ {
				off := (t*h + hh) * d
				xr, dr := xs[off:off+d], ds[off:off+d]
				if r.Interleaved {
					xp, dp := xr[:rot], dr[:rot]
					for i := range half {
						x0, x1 := xp[2*i], xp[2*i+1]
						c, s := cos[i], sin[i]
						dp[2*i] = x0*c - x1*s
						dp[2*i+1] = x1*c + x0*s
					}
				} else {
					x1, x2 := xr[:half], xr[half:rot]
					d1, d2 := dr[:half], dr[half:rot]
					x2, d1, d2 = x2[:len(x1)], d1[:len(x1)], d2[:len(x1)]
					for i, u := range x1 {
						v := x2[i]
						c, s := cos[i], sin[i]
						d1[i] = u*c - v*s
						d2[i] = v*c + u*s
					}
				}
				copy(dr[rot:], xr[rot:])
			}
		}
	})
	return nil
}
