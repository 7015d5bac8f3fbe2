package cpu

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// AdamW is one fused AdamW step over p, g, m and v; see backend.Optimizers.
// It computes in the buffers' precision as torch's single-tensor AdamW
// does, with the bias corrections in float64.
func (b *Backend) AdamW(p, g, m, v *tensor.Tensor, a *backend.AdamWArgs) error {
	if p == nil || p.DType() == tensor.F64 {
		return adamW[float64](b, p, g, m, v, a)
	}
	return adamW[float32](b, p, g, m, v, a)
}

func sameLen(op string, n int, ts map[string]*tensor.Tensor) error {
	for name, t := range ts {
		if t != nil && t.Len() != n {
			return fmt.Errorf("cpu: %s: %s has %d elements, want %d", op, name, t.Len(), n)
		}
	}
	return nil
}

func adamW[T Float](b *Backend, pt, gt, mt, vt *tensor.Tensor, a *backend.AdamWArgs) error {
	const op = "AdamW"
	ps, err := floats[T](op+": p", pt)
	if err != nil {
		return err
	}
	gs, err := floats[T](op+": g", gt)
	if err != nil {
		return err
	}
	ms, err := floats[T](op+": m", mt)
	if err != nil {
		return err
	}
	vs, err := floats[T](op+": v", vt)
	if err != nil {
		return err
	}
	if err := sameLen(op, len(ps), map[string]*tensor.Tensor{"g": gt, "m": mt, "v": vt}); err != nil {
		return err
	}
	if a.Step < 1 {
		return fmt.Errorf("cpu: %s: step %d, want 1 or more", op, a.Step)
	}
	scale := T(1)
	if a.GradScale != 0 {
		scale = T(a.GradScale)
	}
	b1, b2, eps := T(a.Beta1), T(a.Beta2), T(a.Eps)
	decay := T(1 - a.LR*a.WeightDecay)
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	stepSize := T(a.LR / bc1)
	bc2sqrt := T(math.Sqrt(bc2))
	b.parallelFor(len(ps), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := gs[i] * scale
			p := ps[i] * decay
			m := ms[i]*b1 + (1-b1)*gi
			v := vs[i]*b2 + (1-b2)*gi*gi
			denom := T(math.Sqrt(float64(v)))/bc2sqrt + eps
			ps[i] = p - stepSize*(m/denom)
			ms[i], vs[i] = m, v
		}
	})
	return nil
}

// SGD is one fused step of SGD with momentum; see backend.Optimizers.
func (b *Backend) SGD(p, g, buf *tensor.Tensor, a *backend.SGDArgs) error {
	if p == nil || p.DType() == tensor.F64 {
		return sgd[float64](b, p, g, buf, a)
	}
	return sgd[float32](b, p, g, buf, a)
}

func sgd[T Float](b *Backend, pt, gt, bt *tensor.Tensor, a *backend.SGDArgs) error {
	const op = "SGD"
	ps, err := floats[T](op+": p", pt)
	if err != nil {
		return err
	}
	gs, err := floats[T](op+": g", gt)
	if err != nil {
		return err
	}
	var bs []T
	if a.Momentum != 0 {
		if bs, err = floats[T](op+": buf", bt); err != nil {
			return err
		}
	}
	if len(gs) != len(ps) || (a.Momentum != 0 && len(bs) != len(ps)) {
		return fmt.Errorf("cpu: %s: p, g and buf have %d, %d and %d elements", op, len(ps), len(gs), len(bs))
	}
	scale := T(1)
	if a.GradScale != 0 {
		scale = T(a.GradScale)
	}
	lr, mom, damp, wd := T(a.LR), T(a.Momentum), T(a.Dampening), T(a.WeightDecay)
	b.parallelFor(len(ps), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := gs[i]*scale + wd*ps[i]
			if mom != 0 {
				if a.First {
					bs[i] = d
				} else {
					bs[i] = mom*bs[i] + (1-damp)*d
				}
				if a.Nesterov {
					d += mom * bs[i]
				} else {
					d = bs[i]
				}
			}
			ps[i] -= lr * d
		}
	})
	return nil
}

// SumSquares sets dst's one element to the sum of squares of x, in float64
// with fixed per-chunk partials (the same result for any thread count).
func (b *Backend) SumSquares(dst, x *tensor.Tensor) error {
	if x == nil || x.DType() == tensor.F64 {
		return sumSquares[float64](b, dst, x)
	}
	return sumSquares[float32](b, dst, x)
}

func sumSquares[T Float](b *Backend, dt, xt *tensor.Tensor) error {
	xs, err := floats[T]("SumSquares: x", xt)
	if err != nil {
		return err
	}
	ds, err := floats[T]("SumSquares: dst", dt)
	if err != nil {
		return err
	}
	if len(ds) != 1 {
		return fmt.Errorf("cpu: SumSquares: dst has %d elements, want 1", len(ds))
	}
	const chunk = 1 << 14
	parts := make([]float64, (len(xs)+chunk-1)/chunk)
	b.parallelFor(len(parts), 1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			s := 0.0
			for _, v := range xs[c*chunk : min((c+1)*chunk, len(xs))] {
				s += float64(v) * float64(v)
			}
			parts[c] = s
		}
	})
	total := 0.0
	for _, s := range parts {
		total += s
	}
	ds[0] = T(total)
	return nil
}

// RowNorms sets dst[i] to the norm of row i of x, or its reciprocal.
func (b *Backend) RowNorms(dst, x *tensor.Tensor, inverse bool) error {
	if x == nil || x.DType() == tensor.F64 {
		return rowNorms[float64](b, dst, x, inverse)
	}
	return rowNorms[float32](b, dst, x, inverse)
}

func rowNorms[T Float](b *Backend, dt, xt *tensor.Tensor, inverse bool) error {
	xs, err := floats[T]("RowNorms: x", xt)
	if err != nil {
		return err
	}
	ds, err := floats[T]("RowNorms: dst", dt)
	if err != nil {
		return err
	}
	if xt.Rank() != 2 || len(ds) != xt.Dim(0) {
		return fmt.Errorf("cpu: RowNorms: x %v and dst %v, want [N, D] and [N]", xt, dt)
	}
	d := xt.Dim(1)
	b.parallelFor(len(ds), max(1, 4096/max(d, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := 0.0
			for _, v := range xs[i*d : (i+1)*d] {
				s += float64(v) * float64(v)
			}
			n := math.Sqrt(s)
			if inverse {
				n = 1 / n
			}
			ds[i] = T(n)
		}
	})
	return nil
}

// ScaleRows sets dst[i,:] = x[i,:] * s[i].
func (b *Backend) ScaleRows(dst, x, s *tensor.Tensor) error {
	if x == nil || x.DType() == tensor.F64 {
		return scaleRows[float64](b, dst, x, s)
	}
	return scaleRows[float32](b, dst, x, s)
}

func scaleRows[T Float](b *Backend, dt, xt, st *tensor.Tensor) error {
	xs, err := floats[T]("ScaleRows: x", xt)
	if err != nil {
		return err
	}
	ds, err := floats[T]("ScaleRows: dst", dt)
	if err != nil {
		return err
	}
	ss, err := floats[T]("ScaleRows: s", st)
	if err != nil {
		return err
	}
	if xt.Rank() != 2 || len(ss) != xt.Dim(0) || len(ds) != len(xs) {
		return fmt.Errorf("cpu: ScaleRows: x %v, s %v, dst %v, want [N, D], [N], [N, D]", xt, st, dt)
	}
	d := xt.Dim(1)
	b.parallelFor(len(ss), max(1, 4096/max(d, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := ss[i]
			for j, v := range xs[i*d : (i+1)*d] {
				ds[i*d+j] = v * f
			}
		}
	})
	return nil
}
