// Package autograd is whet's reverse-mode automatic differentiation: define
// by run, on a tape.
//
// A Graph records each operation as it runs, with what its backward pass will
// need; Backward walks the tape in reverse and accumulates gradients into the
// leaves that require them. Every number is computed by the back end
// (backend.Backend): this package moves tensors between kernels and never
// touches their elements, so it runs unchanged on any back end.
//
// A training step looks like this:
//
//	g := autograd.New(b, pool)
//	x := g.Embedding(tok, ids)
//	... // the model's layers
//	loss, n := g.CrossEntropy(logits, targets)
//	if err := g.Backward(loss, 1/float64(tokens)); err != nil { ... }
//	g.Release() // hand every intermediate back to the pool
//
// Ops never return errors: the first failure is kept by the Graph, later ops
// do nothing, and Err, Backward and Value report it (the pattern of
// bufio.Scanner), so that a model's forward pass reads as its maths.
//
// Leaves are parameters (Param: a value and a gradient buffer, typically
// views into one contiguous buffer each, accumulated into across
// micro-batches) and constants (Const: frozen weights and inputs, which get no
// gradient buffer, and whose ops skip the weight-gradient GEMMs).
// Intermediate tensors come from a Pool and go back to it at Release;
// gradients of intermediates go back as soon as the backward pass has used
// them.
package autograd

import (
	"errors"
	"fmt"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Var is a tensor in a graph: a value, and, when it requires one, a gradient.
type Var struct {
	// Value is the tensor. For intermediates it belongs to the graph's pool
	// until Release.
	Value *tensor.Tensor
	// Quant, when not nil, is a frozen quantised weight matrix, and Value
	// is nil: Linear dequantises it as it uses it (see Quantized).
	Quant *backend.QuantWeight
	// Grad is the gradient of the loss with respect to Value, after
	// Backward. A parameter's Grad is its gradient buffer, added to by every
	// Backward; an intermediate's is released during Backward, once used.
	Grad *tensor.Tensor

	name     string
	requires bool
	param    bool // Grad is caller-owned and accumulates
	pooled   bool // Value belongs to the pool
	uses     int  // recorded ops that read this Var
	// gradNotOwned says Grad is memory the graph must not hand back on its
	// own: the caller's (BackwardFrom) or Value's (cross-entropy in place).
	gradNotOwned bool
}

// Param returns a trainable leaf: Backward adds the gradient of value into
// grad, which must have value's dtype and shape (a view into a contiguous
// gradient buffer, typically). name is used in errors.
func Param(name string, value, grad *tensor.Tensor) *Var {
	return &Var{Value: value, Grad: grad, name: name, requires: true, param: true}
}

// Const returns a leaf that gets no gradient: a frozen weight or an input.
func Const(name string, value *tensor.Tensor) *Var {
	return &Var{Value: value, name: name}
}

// Quantized returns a frozen leaf holding a quantised weight matrix
// (NF4, FP4 or int8): it costs its quantised size in memory, and Linear
// dequantises it one layer at a time, in the forward pass and again for the
// input's gradient, so the dequantised model never exists whole.
func Quantized(name string, q *backend.QuantWeight) *Var {
	return &Var{Quant: q, name: name}
}

// RequiresGrad reports whether the loss's gradient flows to v.
func (v *Var) RequiresGrad() bool { return v.requires }

// Name is the name given to a leaf, or the op that made an intermediate.
func (v *Var) Name() string { return v.name }

// Shape is the value's shape.
func (v *Var) Shape() []int {
	if v.Quant != nil {
		return []int{v.Quant.Rows, v.Quant.Cols}
	}
	return v.Value.Shape()
}

// node is one recorded operation: its output, and the closure that
// propagates the output's gradient to its inputs.
type node struct {
	out      *Var
	backward func(dy *tensor.Tensor) error
	always   bool // run even when out has no gradient (checkpoint's node)
}

// Graph records the operations of one forward pass for Backward. A Graph is
// not safe for concurrent use; ranks and threads each use their own.
type Graph struct {
	b      backend.Backend
	pool   *Pool
	tape   []node
	owned  []*tensor.Tensor // pool tensors to hand back at Release
	noGrad int
	err    error
	dead   *Var
}

// New returns an empty graph that computes on b and takes intermediate
// memory from pool (which must allocate on b).
func New(b backend.Backend, pool *Pool) *Graph {
	return &Graph{b: b, pool: pool}
}

// Backend is the back end the graph computes on.
func (g *Graph) Backend() backend.Backend { return g.b }

// Pool is the pool the graph takes memory from.
func (g *Graph) Pool() *Pool { return g.pool }

// Err returns the first error any op met, or nil.
func (g *Graph) Err() error { return g.err }

// fail records err (the first one wins) and returns a placeholder Var that
// later ops pass through untouched.
func (g *Graph) fail(op string, err error) *Var {
	if g.err == nil {
		g.err = fmt.Errorf("autograd: %s: %w", op, err)
	}
	if g.dead == nil {
		g.dead = &Var{name: "error"}
	}
	return g.dead
}

// Fail records err as the graph's error, as if an op had failed, so that
// code built on the ops (a model's loss) reports its own failures the same
// way. It returns a placeholder Var.
func (g *Graph) Fail(err error) *Var { return g.fail("model", err) }

// ok reports whether ops may run: no earlier error, and every input present.
func (g *Graph) ok(op string, vs ...*Var) bool {
	if g.err != nil {
		return false
	}
	for i, v := range vs {
		switch {
		case v != nil && v.Quant != nil:
			g.fail(op, fmt.Errorf("input %d (%s) is a quantised weight, which only a linear layer reads", i, v.name))
			return false
		case v == nil || v.Value == nil:
			g.fail(op, fmt.Errorf("input %d is nil", i))
			return false
		}
	}
	return true
}

// NoGrad runs fn with recording off: ops inside compute values only, as for
// evaluation and generation. Calls nest.
func (g *Graph) NoGrad(fn func()) {
	g.noGrad++
	defer func() { g.noGrad-- }()
	fn()
}

// Grad reports whether ops record for the backward pass.
func (g *Graph) Grad() bool { return g.noGrad == 0 }

// alloc takes a tensor from the pool that the graph hands back at Release.
func (g *Graph) alloc(dtype tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := g.pool.Get(dtype, shape...)
	if err != nil {
		return nil, err
	}
	g.owned = append(g.owned, t)
	return t, nil
}

// temp takes a tensor from the pool that the caller hands back with
// g.pool.Put as soon as it is done with it.
func (g *Graph) temp(dtype tensor.DType, shape ...int) (*tensor.Tensor, error) {
	return g.pool.Get(dtype, shape...)
}

// result allocates the output of an op and returns its Var, which requires
// a gradient when grad mode is on and any input requires one.
func (g *Graph) result(op string, dtype tensor.DType, shape []int, inputs ...*Var) (*Var, error) {
	t, err := g.alloc(dtype, shape...)
	if err != nil {
		return nil, err
	}
	v := &Var{Value: t, name: op, pooled: true}
	if g.noGrad == 0 {
		for _, in := range inputs {
			if in != nil && in.requires {
				v.requires = true
				break
			}
		}
	}
	return v, nil
}

// record appends out's backward closure to the tape, when out requires a
// gradient.
func (g *Graph) record(out *Var, backward func(dy *tensor.Tensor) error) {
	if out.requires {
		g.tape = append(g.tape, node{out: out, backward: backward})
	}
}

// use counts out's inputs as read by a recorded op, so that an op that
// would overwrite its input in the backward pass knows whether anyone else
// still needs it.
func (g *Graph) use(out *Var, inputs ...*Var) {
	if !out.requires {
		return
	}
	for _, in := range inputs {
		if in != nil {
			in.uses++
		}
	}
}

// ownsGrad reports whether v's gradient is the graph's to hand over or
// overwrite.
func (v *Var) ownsGrad() bool { return v.Grad != nil && !v.param && !v.gradNotOwned }

// accumulate adds a gradient contribution to v. compute writes the
// contribution into dst, overwriting it when accumulate is false and adding
// to it when true; kernels that cannot add (most element-wise ones) pass
// through accumulateInto instead.
func (g *Graph) accumulate(v *Var, compute func(dst *tensor.Tensor, accumulate bool) error) error {
	if !v.requires {
		return nil
	}
	if v.Grad != nil {
		return compute(v.Grad, true)
	}
	t, err := g.temp(v.Value.DType(), v.Value.Shape()...)
	if err != nil {
		return err
	}
	if err := compute(t, false); err != nil {
		g.pool.Put(t)
		return err
	}
	v.Grad = t
	return nil
}

// accumulateInto is accumulate for kernels that only overwrite their output:
// when v already has a gradient, the contribution goes to a temporary that
// is then added.
func (g *Graph) accumulateInto(v *Var, compute func(dst *tensor.Tensor) error) error {
	return g.accumulate(v, func(dst *tensor.Tensor, acc bool) error {
		if !acc {
			return compute(dst)
		}
		t, err := g.temp(dst.DType(), dst.Shape()...)
		if err != nil {
			return err
		}
		defer g.pool.Put(t)
		if err := compute(t); err != nil {
			return err
		}
		return g.b.AddScaled(dst, t, 1)
	})
}

// Backward propagates the gradient of loss (a one-element Var) back through
// the tape, seeding it with seed: the gradient of the objective with respect
// to loss. A trainer that sums losses over micro-batches seeds with
// 1/(tokens in the whole batch). Parameters' gradients are added to; the
// gradients of intermediates are released as soon as they are used.
func (g *Graph) Backward(loss *Var, seed float64) error {
	if g.err != nil {
		return g.err
	}
	if loss == nil || loss.Value == nil || loss.Value.Len() != 1 {
		return errors.New("autograd: Backward needs a one-element loss")
	}
	if !loss.requires {
		return errors.New("autograd: Backward: the loss does not depend on anything that requires a gradient")
	}
	dy, err := g.temp(loss.Value.DType(), loss.Value.Shape()...)
	if err != nil {
		return err
	}
	defer g.pool.Put(dy)
	if err := g.b.Fill(dy, seed); err != nil {
		return err
	}
	return g.BackwardFrom([]*Var{loss}, []*tensor.Tensor{dy})
}

// BackwardFrom propagates given gradients of outs (each of its Var's shape
// and dtype) back through the tape. It reads grads and leaves them to the
// caller; for a parameter out they are added to its gradient.
func (g *Graph) BackwardFrom(outs []*Var, grads []*tensor.Tensor) error {
	if g.err != nil {
		return g.err
	}
	if len(outs) != len(grads) {
		return fmt.Errorf("autograd: BackwardFrom: %d outputs, %d gradients", len(outs), len(grads))
	}
	for i, v := range outs {
		if !v.requires {
			continue
		}
		if grads[i].Len() != v.Value.Len() || grads[i].DType() != v.Value.DType() {
			return fmt.Errorf("autograd: BackwardFrom: gradient %v for %s %v", grads[i], v.name, v.Value)
		}
		if v.Grad == nil && !v.param {
			v.Grad = grads[i]
			v.gradNotOwned = true
			continue
		}
		if err := g.b.AddScaled(v.Grad, grads[i], 1); err != nil {
			return err
		}
	}
	for i := len(g.tape) - 1; i >= 0; i-- {
		n := g.tape[i]
		dy := n.out.Grad
		if dy == nil && !n.always {
			continue // nothing downstream of this op reached the loss
		}
		if err := n.backward(dy); err != nil {
			g.err = fmt.Errorf("autograd: backward of %s: %w", n.out.name, err)
			return g.err
		}
		if n.always {
			continue
		}
		// An op may have handed dy over to its input (a reshape does);
		// then it has set out.Grad to nil.
		if !n.out.param && n.out.Grad != nil {
			if !n.out.gradNotOwned {
				g.pool.Put(n.out.Grad)
			}
			n.out.Grad = nil
		}
	}
	g.tape = g.tape[:0]
	return nil
}

// Release hands every intermediate tensor back to the pool and empties the
// tape, ready for the next step. Vars made by the graph must not be used
// afterwards; leaves are untouched.
func (g *Graph) Release() {
	for _, n := range g.tape {
		if n.out.Grad != nil && !n.out.param && !n.out.gradNotOwned {
			g.pool.Put(n.out.Grad)
		}
		n.out.Grad = nil
	}
	for i, t := range g.owned {
		g.pool.Put(t)
		g.owned[i] = nil
	}
	g.owned = g.owned[:0]
	clear(g.tape)
	g.tape = g.tape[:0]
	g.err = nil
	g.noGrad = 0
}

// Value copies v's value to the host as float64s (for losses, logging and
// tests). It is a synchronisation point.
func (g *Graph) Value(v *Var) ([]float64, error) {
	if g.err != nil {
		return nil, g.err
	}
	return ToHost(g.b, v.Value)
}

// ToHost copies a float tensor of any dtype to the host as float64s.
func ToHost(b backend.Backend, t *tensor.Tensor) ([]float64, error) {
	if t.DType() == tensor.F64 {
		out := make([]float64, t.Len())
		if err := b.CopyToHost(float64Bytes(out), t); err != nil {
			return nil, err
		}
		return out, nil
	}
	if !t.DType().IsFloat() {
		return nil, fmt.Errorf("autograd: ToHost of %v", t)
	}
	f32 := t
	if t.DType() != tensor.F32 {
		c, err := b.Alloc(tensor.F32, t.Shape()...)
		if err != nil {
			return nil, err
		}
		if err := b.Convert(c, t); err != nil {
			return nil, err
		}
		f32 = c
	}
	s, err := backend.ToFloat32(b, f32)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = float64(x)
	}
	return out, nil
}

// FromHost allocates a tensor of dtype (F32 or F64) on b holding data.
func FromHost(b backend.Backend, dtype tensor.DType, data []float64, shape ...int) (*tensor.Tensor, error) {
	t, err := b.Alloc(dtype, shape...)
	if err != nil {
		return nil, err
	}
	if t.Len() != len(data) {
		return nil, fmt.Errorf("autograd: FromHost: %d values for shape %v", len(data), shape)
	}
	switch dtype {
	case tensor.F64:
		err = b.CopyFromHost(t, float64Bytes(data))
	case tensor.F32:
		s := make([]float32, len(data))
		for i, x := range data {
			s[i] = float32(x)
		}
		err = b.CopyFromHost(t, backend.Float32Bytes(s))
	default:
		err = fmt.Errorf("autograd: FromHost of dtype %v", dtype)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Int32s allocates an I32 tensor on b holding data (token ids, positions,
// targets, segments).
func Int32s(b backend.Backend, data []int32, shape ...int) (*tensor.Tensor, error) {
	t, err := b.Alloc(tensor.I32, shape...)
	if err != nil {
		return nil, err
	}
	if t.Len() != len(data) {
		return nil, fmt.Errorf("autograd: Int32s: %d values for shape %v", len(data), shape)
	}
	if err := b.CopyFromHost(t, int32Bytes(data)); err != nil {
		return nil, err
	}
	return t, nil
}
