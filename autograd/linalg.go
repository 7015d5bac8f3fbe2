package autograd

import (
	"errors"
	"fmt"
	"slices"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// gemm runs C = alpha*op(A)*op(B) + beta*C on whole row-major matrices, or
// batches of them at the given element strides (0 shares a matrix).
func (g *Graph) gemm(transA, transB bool, m, n, k int, alpha float64, a *tensor.Tensor, sa int, b *tensor.Tensor, sb int, beta float64, c *tensor.Tensor, sc int, batch int) error {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	return g.b.Gemm(&backend.Gemm{
		TransA: transA, TransB: transB, M: m, N: n, K: k, Alpha: alpha, Beta: beta,
		A: backend.Matrix{T: a, LD: lda, Stride: sa}, B: backend.Matrix{T: b, LD: ldb, Stride: sb},
		C: backend.Matrix{T: c, LD: n, Stride: sc}, Batch: batch,
	})
}

// beta is the GEMM beta that accumulates (1) or overwrites (0).
func beta(acc bool) float64 {
	if acc {
		return 1
	}
	return 0
}

// asDType returns t in dtype, converting a frozen BF16 or F16 weight into a
// pool temporary when it differs; done hands the temporary back.
func (g *Graph) asDType(t *tensor.Tensor, dtype tensor.DType) (conv *tensor.Tensor, done func(), err error) {
	if t.DType() == dtype {
		return t, func() {}, nil
	}
	c, err := g.temp(dtype, t.Shape()...)
	if err != nil {
		return nil, nil, err
	}
	if err := g.b.Convert(c, t); err != nil {
		g.pool.Put(c)
		return nil, nil, err
	}
	return c, func() { g.pool.Put(c) }, nil
}

// weight returns a linear layer's weight in dtype: the tensor itself, a
// converted copy of a frozen BF16 or F16 one, or the dequantised values of
// a quantised one (in a pool temporary, handed back by done).
func (g *Graph) weight(w *Var, dtype tensor.DType) (*tensor.Tensor, func(), error) {
	if w.Quant == nil {
		return g.asDType(w.Value, dtype)
	}
	q := w.Quant
	f, err := g.temp(tensor.F32, q.Rows, q.Cols)
	if err != nil {
		return nil, nil, err
	}
	if err := g.b.Dequantize(f, q, 0); err != nil {
		g.pool.Put(f)
		return nil, nil, fmt.Errorf("dequantize %s: %w", w.name, err)
	}
	if dtype == tensor.F32 {
		return f, func() { g.pool.Put(f) }, nil
	}
	c, done, err := g.asDType(f, dtype)
	g.pool.Put(f)
	return c, done, err
}

// computeDType checks that x is F32 or F64, the dtypes ops compute in.
func computeDType(x *Var) error {
	if dt := x.Value.DType(); dt != tensor.F32 && dt != tensor.F64 {
		return fmt.Errorf("%s is %v; ops compute in f32 or f64", x.name, dt)
	}
	return nil
}

// frozenOK checks a weight w against the compute dtype: the same dtype, or,
// when w gets no gradient, any float dtype converted on the fly.
func frozenOK(w *Var, dtype tensor.DType) error {
	if w.Value.DType() == dtype {
		return nil
	}
	if w.requires {
		return fmt.Errorf("%s is %v and trainable; a trainable weight must be %v like its input", w.name, w.Value.DType(), dtype)
	}
	if !w.Value.DType().IsFloat() {
		return fmt.Errorf("%s is %v, not a float", w.name, w.Value.DType())
	}
	return nil
}

// Linear returns x W^T + bias: x is [..., in], w is [out, in] (Hugging Face's
// nn.Linear layout) and bias, which may be nil, is [out]. A frozen w may be
// BF16 or F16; it is converted to x's dtype on the fly, in the forward pass
// and again in the backward pass, so no converted copy outlives the op. A
// frozen w costs no weight-gradient GEMM.
func (g *Graph) Linear(x, w, bias *Var) *Var {
	const op = "linear"
	if !g.ok(op, x) {
		return g.dead
	}
	if w == nil || (w.Value == nil && w.Quant == nil) {
		return g.fail(op, errors.New("the weight is nil"))
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	dt := x.Value.DType()
	xs, ws := x.Value.Shape(), w.Shape()
	if len(xs) < 1 || len(ws) != 2 || ws[1] != xs[len(xs)-1] {
		return g.fail(op, fmt.Errorf("input %v and weight %s %v: want [..., in] and [out, in]", xs, w.name, ws))
	}
	if w.Quant == nil {
		if err := frozenOK(w, dt); err != nil {
			return g.fail(op, err)
		}
	}
	in, out := ws[1], ws[0]
	rows := x.Value.Len() / max(in, 1)
	if in == 0 {
		rows = 0
		for _, d := range xs[:len(xs)-1] {
			rows = max(rows, 1) * d
		}
	}
	if bias != nil {
		if bias.Value.Len() != out || bias.Value.DType() != dt {
			return g.fail(op, fmt.Errorf("bias %s %v for %d outputs of %v", bias.name, bias.Value, out, dt))
		}
	}
	y, err := g.result(op, dt, append(xs[:len(xs)-1:len(xs)-1], out), x, w, bias)
	if err != nil {
		return g.fail(op, err)
	}
	wt, done, err := g.weight(w, dt)
	if err != nil {
		return g.fail(op, err)
	}
	err = g.gemm(false, true, rows, out, in, 1, x.Value, 0, wt, 0, 0, y.Value, 0, 1)
	done()
	if err == nil && bias != nil {
		err = g.b.Add(y.Value, y.Value, bias.Value)
	}
	if err != nil {
		return g.fail(op, err)
	}
	g.use(y, x, w, bias)
	g.record(y, func(dy *tensor.Tensor) error {
		if x.requires {
			err := g.accumulate(x, func(dst *tensor.Tensor, acc bool) error {
				wt, done, err := g.weight(w, dt)
				if err != nil {
					return err
				}
				defer done()
				return g.gemm(false, false, rows, in, out, 1, dy, 0, wt, 0, beta(acc), dst, 0, 1)
			})
			if err != nil {
				return err
			}
		}
		if w.requires {
			err := g.accumulate(w, func(dst *tensor.Tensor, acc bool) error {
				return g.gemm(true, false, out, in, rows, 1, dy, 0, x.Value, 0, beta(acc), dst, 0, 1)
			})
			if err != nil {
				return err
			}
		}
		if bias != nil && bias.requires {
			return g.accumulate(bias, func(dst *tensor.Tensor, acc bool) error {
				if !acc {
					if err := g.b.Fill(dst, 0); err != nil {
						return err
					}
				}
				return g.b.SumRows(dst, dy)
			})
		}
		return nil
	})
	return y
}

// MatMul returns op(a) op(b) for batches of matrices: a is [..., M, K] (or
// [..., K, M] with transA) and b is [..., K, N] (or [..., N, K] with
// transB), with the same leading batch dimensions, or b is one matrix shared
// by the whole batch. The result is [..., M, N].
func (g *Graph) MatMul(a, b *Var, transA, transB bool) *Var {
	const op = "matmul"
	if !g.ok(op, a, b) {
		return g.dead
	}
	if err := computeDType(a); err != nil {
		return g.fail(op, err)
	}
	dt := a.Value.DType()
	if b.Value.DType() != dt {
		return g.fail(op, fmt.Errorf("operands %v and %v differ in dtype", a.Value, b.Value))
	}
	as, bs := a.Value.Shape(), b.Value.Shape()
	if len(as) < 2 || len(bs) < 2 {
		return g.fail(op, fmt.Errorf("operands %v and %v: want matrices", as, bs))
	}
	m, k := as[len(as)-2], as[len(as)-1]
	if transA {
		m, k = k, m
	}
	k2, n := bs[len(bs)-2], bs[len(bs)-1]
	if transB {
		k2, n = n, k2
	}
	batchDims := as[:len(as)-2]
	shared := len(bs) == 2
	if k2 != k || (!shared && !slices.Equal(bs[:len(bs)-2], batchDims)) {
		return g.fail(op, fmt.Errorf("operands %v (trans %v) and %v (trans %v) do not multiply", as, transA, bs, transB))
	}
	batch := 1
	for _, d := range batchDims {
		batch *= d
	}
	sa, sb, sc := m*k, k*n, m*n
	if shared {
		sb = 0
		if transA && b.requires && batch > 1 {
			return g.fail(op, fmt.Errorf("a shared trainable %v with a transposed batch %v is not supported", bs, as))
		}
	}
	y, err := g.result(op, dt, append(slices.Clone(batchDims), m, n), a, b)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.gemm(transA, transB, m, n, k, 1, a.Value, sa, b.Value, sb, 0, y.Value, sc, batch); err != nil {
		return g.fail(op, err)
	}
	g.use(y, a, b)
	g.record(y, func(dy *tensor.Tensor) error {
		if a.requires {
			err := g.accumulate(a, func(dst *tensor.Tensor, acc bool) error {
				if !transA { // dA = dY op(B)^T
					return g.gemm(false, !transB, m, k, n, 1, dy, sc, b.Value, sb, beta(acc), dst, sa, batch)
				} // dA (K x M) = op(B) dY^T
				return g.gemm(transB, true, k, m, n, 1, b.Value, sb, dy, sc, beta(acc), dst, sa, batch)
			})
			if err != nil {
				return err
			}
		}
		if b.requires {
			return g.accumulate(b, func(dst *tensor.Tensor, acc bool) error {
				if shared { // one matrix: fold the batch into the rows of A and dY
					if !transB {
						return g.gemm(true, false, k, n, batch*m, 1, a.Value, 0, dy, 0, beta(acc), dst, 0, 1)
					}
					return g.gemm(true, false, n, k, batch*m, 1, dy, 0, a.Value, 0, beta(acc), dst, 0, 1)
				}
				if !transB { // dB = op(A)^T dY
					return g.gemm(!transA, false, k, n, m, 1, a.Value, sa, dy, sc, beta(acc), dst, sb, batch)
				} // dB (N x K) = dY^T op(A)
				return g.gemm(true, transA, n, k, m, 1, dy, sc, a.Value, sa, beta(acc), dst, sb, batch)
			})
		}
		return nil
	})
	return y
}
