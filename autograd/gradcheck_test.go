package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/tensor"
)

func newCPU(t testing.TB) backend.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// input describes one input of a gradient-check case.
type input struct {
	shape []int
	grad  bool // a trainable leaf (Param); otherwise a Const
	// kind: "" normal random values; "pos" a positive value (e.g. weights
	// that are fine anywhere); integers are passed separately.
	scale float64
}

// gradCase is one op (or composition) under test: build computes the output
// from the inputs on g.
type gradCase struct {
	name   string
	inputs []input
	build  func(g *Graph, in []*Var) *Var
}

// hostRand returns n normal values times scale (1 when 0).
func hostRand(rng *rand.Rand, n int, scale float64) []float64 {
	if scale == 0 {
		scale = 1
	}
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64() * scale
	}
	return s
}

// objective runs the case forward on host values xs and returns
// sum(out * r) (computed on the host in float64).
func objective(t *testing.T, b backend.Backend, pool *Pool, dt tensor.DType, c gradCase, xs [][]float64, r []float64) float64 {
	t.Helper()
	g := New(b, pool)
	defer g.Release()
	in := make([]*Var, len(xs))
	for i, x := range xs {
		v, err := FromHost(b, dt, x, c.inputs[i].shape...)
		if err != nil {
			t.Fatal(err)
		}
		in[i] = Const(fmt.Sprint("in", i), v)
	}
	var out *Var
	g.NoGrad(func() { out = c.build(g, in) })
	vals, err := g.Value(out)
	if err != nil {
		t.Fatalf("%s: forward: %v", c.name, err)
	}
	s := 0.0
	for i, v := range vals {
		s += v * r[i]
	}
	return s
}

// analytic runs forward and backward in dtype dt on xs with output gradient
// r, and returns each trainable input's gradient (nil for the others).
func analytic(t *testing.T, b backend.Backend, pool *Pool, dt tensor.DType, c gradCase, xs [][]float64, r []float64) ([][]float64, []float64) {
	t.Helper()
	g := New(b, pool)
	defer g.Release()
	in := make([]*Var, len(xs))
	for i, x := range xs {
		v, err := FromHost(b, dt, x, c.inputs[i].shape...)
		if err != nil {
			t.Fatal(err)
		}
		if c.inputs[i].grad {
			gr, err := b.Alloc(dt, c.inputs[i].shape...)
			if err != nil {
				t.Fatal(err)
			}
			in[i] = Param(fmt.Sprint("in", i), v, gr)
		} else {
			in[i] = Const(fmt.Sprint("in", i), v)
		}
	}
	out := c.build(g, in)
	if g.Err() != nil {
		t.Fatalf("%s: forward: %v", c.name, g.Err())
	}
	outVals, err := g.Value(out)
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		r = hostRand(rand.New(rand.NewPCG(7, 7)), len(outVals), 1)
	}
	rt, err := FromHost(b, dt, r, out.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.BackwardFrom([]*Var{out}, []*tensor.Tensor{rt}); err != nil {
		t.Fatalf("%s: backward: %v", c.name, err)
	}
	grads := make([][]float64, len(xs))
	for i, v := range in {
		if !c.inputs[i].grad {
			if v.Grad != nil {
				t.Errorf("%s: frozen input %d got a gradient", c.name, i)
			}
			continue
		}
		if grads[i], err = ToHost(b, v.Grad); err != nil {
			t.Fatal(err)
		}
	}
	return grads, r
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// relErr is the norm-wise relative error ||a-b|| / max(||a||, ||b||), which
// does not blow up on individual entries near zero.
func relErr(a, b []float64) float64 {
	var d, na, nb float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	den := math.Sqrt(max(na, nb))
	if den == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d) / den
}

// checkGrad compares the analytic float64 gradients of c with central finite
// differences in float64, and the float32 gradients with the float64 ones.
func checkGrad(t *testing.T, c gradCase, seed uint64) {
	t.Helper()
	b := newCPU(t)
	pool := NewPool(b)
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([][]float64, len(c.inputs))
	for i, in := range c.inputs {
		n, _ := tensor.NumElements(in.shape)
		xs[i] = hostRand(rng, n, in.scale)
	}
	grads, r := analytic(t, b, pool, tensor.F64, c, xs, nil)
	const h = 1e-6
	for i, in := range c.inputs {
		if !in.grad {
			continue
		}
		num := make([]float64, len(xs[i]))
		for j := range xs[i] {
			orig := xs[i][j]
			xs[i][j] = orig + h
			fp := objective(t, b, pool, tensor.F64, c, xs, r)
			xs[i][j] = orig - h
			fm := objective(t, b, pool, tensor.F64, c, xs, r)
			xs[i][j] = orig
			num[j] = (fp - fm) / (2 * h)
		}
		if e := relErr(grads[i], num); e > 1e-6 || math.IsNaN(e) {
			t.Errorf("%s: input %d %v: f64 gradient vs finite differences: relative error %.3g > 1e-6", c.name, i, in.shape, e)
		}
	}
	// float32: the same gradients within float32 rounding.
	g32, _ := analytic(t, b, pool, tensor.F32, c, xs, r)
	for i, in := range c.inputs {
		if !in.grad {
			continue
		}
		if n := math.Sqrt(dot(grads[i], grads[i])); n < 1e-9 {
			// The gradient is zero (a softmax over one key, a layer norm
			// over two channels): float32 leaves rounding noise.
			if n32 := math.Sqrt(dot(g32[i], g32[i])); n32 > 1e-5 {
				t.Errorf("%s: input %d %v: f32 gradient norm %.3g where f64's is %.3g", c.name, i, in.shape, n32, n)
			}
			continue
		}
		if e := relErr(g32[i], grads[i]); e > f32Tol || math.IsNaN(e) {
			t.Errorf("%s: input %d %v: f32 gradient vs f64: relative error %.3g > %g", c.name, i, in.shape, e, f32Tol)
		}
	}
	if pool.InUse() != 0 {
		t.Errorf("%s: %d bytes still in use after Release", c.name, pool.InUse())
	}
}

// f32Tol is the documented float32 tolerance of gradients: the norm-wise
// relative error of float32 gradients against float64 ones. Sums of a few
// hundred float32 products carry relative errors near 1e-6; 1e-4 leaves room
// for cancellation in the backward passes of norms and softmax.
const f32Tol = 1e-4

// dims draws a random size in [lo, hi].
func dims(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

func TestGradOps(t *testing.T) {
	for trial := range 3 {
		rng := rand.New(rand.NewPCG(uint64(trial), 99))
		n, k, m := dims(rng, 1, 7), dims(rng, 1, 9), dims(rng, 1, 6)
		batch := dims(rng, 1, 3)
		d := dims(rng, 2, 9)
		cases := []gradCase{
			{"linear", []input{{shape: []int{n, k}, grad: true}, {shape: []int{m, k}, grad: true}, {shape: []int{m}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Linear(in[0], in[1], in[2]) }},
			{"linear/frozen-weight", []input{{shape: []int{batch, n, k}, grad: true}, {shape: []int{m, k}}},
				func(g *Graph, in []*Var) *Var { return g.Linear(in[0], in[1], nil) }},
			{"matmul", []input{{shape: []int{batch, n, k}, grad: true}, {shape: []int{batch, k, m}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], false, false) }},
			{"matmul/transA", []input{{shape: []int{batch, k, n}, grad: true}, {shape: []int{batch, k, m}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], true, false) }},
			{"matmul/transB", []input{{shape: []int{batch, n, k}, grad: true}, {shape: []int{batch, m, k}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], false, true) }},
			{"matmul/transAB", []input{{shape: []int{batch, k, n}, grad: true}, {shape: []int{batch, m, k}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], true, true) }},
			{"matmul/shared-b", []input{{shape: []int{batch, n, k}, grad: true}, {shape: []int{k, m}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], false, false) }},
			{"matmul/shared-bT", []input{{shape: []int{batch, n, k}, grad: true}, {shape: []int{m, k}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.MatMul(in[0], in[1], false, true) }},
			{"add", []input{{shape: []int{n, d}, grad: true}, {shape: []int{n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Add(in[0], in[1]) }},
			{"add/broadcast", []input{{shape: []int{batch, n, d}, grad: true}, {shape: []int{d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Add(in[0], in[1]) }},
			{"add/residual-reuse", []input{{shape: []int{n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Add(in[0], g.Mul(in[0], in[0])) }},
			{"mul", []input{{shape: []int{n, d}, grad: true}, {shape: []int{n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Mul(in[0], in[1]) }},
			{"mul/broadcast", []input{{shape: []int{n, d}, grad: true}, {shape: []int{d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Mul(in[0], in[1]) }},
			{"scale", []input{{shape: []int{n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Scale(in[0], -1.7) }},
			{"reshape", []input{{shape: []int{n, d}, grad: true}, {shape: []int{d, n}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Mul(g.Reshape(in[0], d, n), in[1]) }},
			{"silu", []input{{shape: []int{n, d}, grad: true, scale: 3}},
				func(g *Graph, in []*Var) *Var { return g.Act(backend.SiLU, in[0]) }},
			{"gelu-tanh", []input{{shape: []int{n, d}, grad: true, scale: 3}},
				func(g *Graph, in []*Var) *Var { return g.Act(backend.GELUTanh, in[0]) }},
			{"gelu-erf", []input{{shape: []int{n, d}, grad: true, scale: 3}},
				func(g *Graph, in []*Var) *Var { return g.Act(backend.GELUErf, in[0]) }},
			{"swiglu", []input{{shape: []int{n, d}, grad: true, scale: 3}, {shape: []int{n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.SwiGLU(in[0], in[1]) }},
			{"softmax", []input{{shape: []int{n, d}, grad: true, scale: 2}},
				func(g *Graph, in []*Var) *Var { return g.Softmax(in[0]) }},
			{"dropout", []input{{shape: []int{n, 3 * d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Dropout(in[0], 0.3, 12345) }},
			{"rmsnorm", []input{{shape: []int{n, d}, grad: true}, {shape: []int{d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.RMSNorm(in[0], in[1], 1e-5) }},
			{"rmsnorm/no-weight", []input{{shape: []int{batch, n, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.RMSNorm(in[0], nil, 1e-6) }},
			// Over two channels a layer norm's output is ±1 whatever the
			// input, and its tiny gradient is all cancellation: use three.
			{"layernorm", []input{{shape: []int{n, d + 1}, grad: true}, {shape: []int{d + 1}, grad: true}, {shape: []int{d + 1}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.LayerNorm(in[0], in[1], in[2], 1e-5) }},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%d", c.name, trial), func(t *testing.T) { checkGrad(t, c, uint64(trial)+1) })
		}
	}
}

// TestGradIndexed checks the ops that take integer operands: embedding,
// RoPE, attention and cross-entropy.
func TestGradIndexed(t *testing.T) {
	b := newCPU(t)
	for trial := range 3 {
		rng := rand.New(rand.NewPCG(uint64(trial), 5))
		n, vocab, d := dims(rng, 1, 9), dims(rng, 2, 11), dims(rng, 1, 6)
		ids := make([]int32, n)
		targets := make([]int32, n)
		for i := range ids {
			ids[i] = int32(rng.IntN(vocab))
			targets[i] = int32(rng.IntN(vocab))
			if rng.IntN(4) == 0 {
				targets[i] = backend.IgnoreIndex
			}
		}
		idT, err := Int32s(b, ids, n)
		if err != nil {
			t.Fatal(err)
		}
		tgT, _ := Int32s(b, targets, n)
		bsz, T, hkv := dims(rng, 1, 2), dims(rng, 1, 7), dims(rng, 1, 2)
		hq, hd := hkv*dims(rng, 1, 3), 2*dims(rng, 1, 4)
		pos := make([]int32, bsz*T)
		segs := make([]int32, bsz*T)
		for i := range pos {
			pos[i] = int32(rng.IntN(50))
			segs[i] = int32(rng.IntN(2))
		}
		segs[0] = 0
		posT, _ := Int32s(b, pos, bsz*T)
		segT, _ := Int32s(b, segs, bsz, T)
		inv := make([]float64, hd/2)
		for i := range inv {
			inv[i] = math.Pow(10000, -2*float64(i)/float64(hd))
		}
		for _, c := range []gradCase{
			{"embedding", []input{{shape: []int{vocab, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Embedding(in[0], idT) }},
			{"rope/half", []input{{shape: []int{bsz, T, hq, hd}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.RoPE(in[0], posT, &backend.Rope{InvFreq: inv}) }},
			{"rope/interleaved", []input{{shape: []int{bsz, T, hq, hd}, grad: true}},
				func(g *Graph, in []*Var) *Var {
					return g.RoPE(in[0], posT, &backend.Rope{InvFreq: inv, Interleaved: true})
				}},
			{"attention", []input{{shape: []int{bsz, T, hq, hd}, grad: true}, {shape: []int{bsz, T, hkv, hd}, grad: true}, {shape: []int{bsz, T, hkv, hd}, grad: true}},
				func(g *Graph, in []*Var) *Var { return g.Attention(in[0], in[1], in[2], AttentionOpts{}) }},
			{"attention/segments-window", []input{{shape: []int{bsz, T, hq, hd}, grad: true}, {shape: []int{bsz, T, hkv, hd}, grad: true}, {shape: []int{bsz, T, hkv, hd}, grad: true}},
				func(g *Graph, in []*Var) *Var {
					return g.Attention(in[0], in[1], in[2], AttentionOpts{Segments: segT, Window: 3})
				}},
			{"cross-entropy", []input{{shape: []int{n, vocab}, grad: true, scale: 2}},
				func(g *Graph, in []*Var) *Var { l, _ := g.CrossEntropy(in[0], tgT); return l }},
			{"cross-entropy/in-place", []input{{shape: []int{n, d}, grad: true}, {shape: []int{vocab, d}, grad: true}},
				func(g *Graph, in []*Var) *Var { l, _ := g.CrossEntropy(g.Linear(in[0], in[1], nil), tgT); return l }},
		} {
			t.Run(fmt.Sprintf("%s/%d", c.name, trial), func(t *testing.T) { checkGrad(t, c, uint64(trial)+11) })
		}
	}
}
