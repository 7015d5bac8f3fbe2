package autograd

import (
	"fmt"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// passGrad gives dy, the gradient of out, to x whose gradient is the same
// tensor: it hands dy over when x has no gradient yet (no copy), and adds it
// otherwise. After a hand-over out.Grad is nil, so that the backward pass
// does not release it.
func (g *Graph) passGrad(out, x *Var, dy *tensor.Tensor) error {
	if !x.requires {
		return nil
	}
	if x.Grad == nil && !x.param && out.Grad == dy && out.ownsGrad() {
		r, err := dy.Reshape(x.Value.Shape()...)
		if err != nil {
			return err
		}
		x.Grad = r
		out.Grad = nil
		return nil
	}
	return g.accumulate(x, func(dst *tensor.Tensor, acc bool) error {
		if acc {
			return g.b.AddScaled(dst, dy, 1)
		}
		return g.b.Copy(dst, dy)
	})
}

// sameDType checks that every input shares x's compute dtype.
func sameDType(x *Var, others ...*Var) error {
	if err := computeDType(x); err != nil {
		return err
	}
	for _, o := range others {
		if o != nil && o.Value.DType() != x.Value.DType() {
			return fmt.Errorf("%s is %v, %s is %v", x.name, x.Value.DType(), o.name, o.Value.DType())
		}
	}
	return nil
}

// broadcastOK checks Add's and Mul's rule: y has x's shape, or y's elements
// repeat over x's leading rows.
func broadcastOK(x, y *Var) error {
	nx, ny := x.Value.Len(), y.Value.Len()
	if nx == ny && tensor.SameShape(x.Value, y.Value) {
		return nil
	}
	if ny == 0 || nx%ny != 0 {
		return fmt.Errorf("%s %v does not broadcast over %s %v", y.name, y.Value.Shape(), x.name, x.Value.Shape())
	}
	return nil
}

// binary runs an element-wise kernel with Add's broadcast rule on x and y
// and returns its result, or the placeholder after an error.
func (g *Graph) binary(op string, kernel func(dst, x, y *tensor.Tensor) error, x, y *Var) *Var {
	if !g.ok(op, x, y) {
		return g.dead
	}
	if err := sameDType(x, y); err != nil {
		return g.fail(op, err)
	}
	if err := broadcastOK(x, y); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x, y)
	if err != nil {
		return g.fail(op, err)
	}
	if err := kernel(out.Value, x.Value, y.Value); err != nil {
		return g.fail(op, err)
	}
	return out
}

// Add returns x + y. y has x's shape or repeats over x's leading rows (a
// bias); a residual connection is Add(x, f(x)).
func (g *Graph) Add(x, y *Var) *Var {
	out := g.binary("add", g.b.Add, x, y)
	if out == g.dead {
		return out
	}
	bcast := y.Value.Len() != x.Value.Len()
	g.record(out, func(dy *tensor.Tensor) error {
		if y.requires {
			var err error
			if bcast {
				err = g.accumulate(y, func(dst *tensor.Tensor, acc bool) error {
					if !acc {
						if err := g.b.Fill(dst, 0); err != nil {
							return err
						}
					}
					return g.b.SumRows(dst, dy)
				})
			} else if x.requires {
				err = g.accumulate(y, func(dst *tensor.Tensor, acc bool) error {
					if acc {
						return g.b.AddScaled(dst, dy, 1)
					}
					return g.b.Copy(dst, dy)
				})
			} else {
				err = g.passGrad(out, y, dy)
			}
			if err != nil {
				return err
			}
		}
		return g.passGrad(out, x, dy)
	})
	return out
}

// Mul returns x * y element-wise, with Add's broadcast rule for y.
func (g *Graph) Mul(x, y *Var) *Var {
	out := g.binary("mul", g.b.Mul, x, y)
	if out == g.dead {
		return out
	}
	g.use(out, x, y)
	bcast := y.Value.Len() != x.Value.Len()
	g.record(out, func(dy *tensor.Tensor) error {
		if x.requires {
			if err := g.accumulateInto(x, func(dst *tensor.Tensor) error { return g.b.Mul(dst, dy, y.Value) }); err != nil {
				return err
			}
		}
		if !y.requires {
			return nil
		}
		if !bcast {
			return g.accumulateInto(y, func(dst *tensor.Tensor) error { return g.b.Mul(dst, dy, x.Value) })
		}
		t, err := g.temp(dy.DType(), dy.Shape()...)
		if err != nil {
			return err
		}
		defer g.pool.Put(t)
		if err := g.b.Mul(t, dy, x.Value); err != nil {
			return err
		}
		return g.accumulate(y, func(dst *tensor.Tensor, acc bool) error {
			if !acc {
				if err := g.b.Fill(dst, 0); err != nil {
					return err
				}
			}
			return g.b.SumRows(dst, t)
		})
	})
	return out
}

// Scale returns s * x.
func (g *Graph) Scale(x *Var, s float64) *Var {
	const op = "scale"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.b.Scale(out.Value, x.Value, s); err != nil {
		return g.fail(op, err)
	}
	g.record(out, func(dy *tensor.Tensor) error {
		return g.accumulate(x, func(dst *tensor.Tensor, acc bool) error {
			if acc {
				return g.b.AddScaled(dst, dy, s)
			}
			return g.b.Scale(dst, dy, s)
		})
	})
	return out
}

// Reshape returns x with a new shape (one dimension may be -1), sharing its
// memory.
func (g *Graph) Reshape(x *Var, shape ...int) *Var {
	const op = "reshape"
	if !g.ok(op, x) {
		return g.dead
	}
	r, err := x.Value.Reshape(shape...)
	if err != nil {
		return g.fail(op, err)
	}
	out := &Var{Value: r, name: op, requires: x.requires && g.noGrad == 0}
	g.record(out, func(dy *tensor.Tensor) error { return g.passGrad(out, x, dy) })
	return out
}

// Act returns f(x) for a point-wise activation (SiLU, GELU).
func (g *Graph) Act(f backend.Act, x *Var) *Var {
	const op = "activation"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.b.Activation(f, out.Value, x.Value); err != nil {
		return g.fail(op, err)
	}
	g.use(out, x)
	g.record(out, func(dy *tensor.Tensor) error {
		return g.accumulateInto(x, func(dst *tensor.Tensor) error { return g.b.ActivationBackward(f, dst, x.Value, dy) })
	})
	return out
}

// SwiGLU returns silu(gate) * up, fused: the backward pass recomputes
// silu(gate) instead of keeping it.
func (g *Graph) SwiGLU(gate, up *Var) *Var {
	const op = "swiglu"
	if !g.ok(op, gate, up) {
		return g.dead
	}
	if err := sameDType(gate, up); err != nil {
		return g.fail(op, err)
	}
	if !tensor.SameShape(gate.Value, up.Value) {
		return g.fail(op, fmt.Errorf("gate %v and up %v differ in shape", gate.Value, up.Value))
	}
	out, err := g.result(op, gate.Value.DType(), gate.Value.Shape(), gate, up)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.b.SwiGLU(out.Value, gate.Value, up.Value); err != nil {
		return g.fail(op, err)
	}
	g.use(out, gate, up)
	g.record(out, func(dy *tensor.Tensor) error {
		return g.multiGrad([]*Var{gate, up}, func(dsts []*tensor.Tensor) error {
			return g.b.SwiGLUBackward(dsts[0], dsts[1], gate.Value, up.Value, dy)
		})
	})
	return out
}

// multiGrad runs a kernel that writes (overwrites) the gradients of several
// inputs at once: each input that requires a gradient gets either a fresh
// gradient tensor or, when it already has one, a temporary that is then
// added; the others get nil, which the kernels read as "not needed".
func (g *Graph) multiGrad(vs []*Var, kernel func(dsts []*tensor.Tensor) error) error {
	dsts := make([]*tensor.Tensor, len(vs))
	adds := make([]bool, len(vs))
	defer func() {
		for i, d := range dsts {
			if adds[i] && d != nil {
				g.pool.Put(d)
			}
		}
	}()
	for i, v := range vs {
		if v == nil || !v.requires {
			continue
		}
		t, err := g.temp(v.Value.DType(), v.Value.Shape()...)
		if err != nil {
			return err
		}
		dsts[i] = t
		adds[i] = v.Grad != nil
	}
	if err := kernel(dsts); err != nil {
		for i, d := range dsts {
			if !adds[i] && d != nil {
				g.pool.Put(d)
			}
		}
		return err
	}
	for i, v := range vs {
		if dsts[i] == nil {
			continue
		}
		if adds[i] {
			if err := g.b.AddScaled(v.Grad, dsts[i], 1); err != nil {
				return err
			}
		} else {
			v.Grad = dsts[i]
		}
	}
	return nil
}

// Softmax returns the softmax of x over its last dimension.
func (g *Graph) Softmax(x *Var) *Var {
	const op = "softmax"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.b.Softmax(out.Value, x.Value); err != nil {
		return g.fail(op, err)
	}
	g.record(out, func(dy *tensor.Tensor) error {
		return g.accumulateInto(x, func(dst *tensor.Tensor) error { return g.b.SoftmaxBackward(dst, out.Value, dy) })
	})
	return out
}

// Dropout zeroes each element of x with probability p and scales the rest by
// 1/(1-p), with the mask drawn from seed by a counter-based generator. The
// backward pass draws the same mask again from the seed, so nothing is kept,
// and a recomputation under Checkpoint sees the same mask. Callers derive a
// distinct seed per step and site (see Seed); p = 0, as in evaluation, is
// the identity.
func (g *Graph) Dropout(x *Var, p float64, seed uint64) *Var {
	const op = "dropout"
	if !g.ok(op, x) {
		return g.dead
	}
	if p < 0 || p >= 1 {
		return g.fail(op, fmt.Errorf("probability %g, want [0, 1)", p))
	}
	if p == 0 {
		return x
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x)
	if err != nil {
		return g.fail(op, err)
	}
	if err := g.b.Dropout(out.Value, x.Value, p, seed); err != nil {
		return g.fail(op, err)
	}
	g.record(out, func(dy *tensor.Tensor) error {
		return g.accumulateInto(x, func(dst *tensor.Tensor) error { return g.b.Dropout(dst, dy, p, seed) })
	})
	return out
}

// Seed mixes a base seed with indices (step, layer, site, ...) into a
// well-spread seed for Dropout (splitmix64 over each value in turn).
func Seed(base uint64, idx ...uint64) uint64 {
	z := base
	for _, v := range append(idx, 0) {
		z += 0x9e3779b97f4a7c15 ^ v
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
	}
	return z
}
