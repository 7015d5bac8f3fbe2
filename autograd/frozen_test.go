package autograd

import (
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/tensor"
)

// TestFrozenHalfWeights: a frozen BF16 or F16 weight, converted on the fly
// by Linear, RMSNorm and Embedding, gives the same values and input
// gradients as the F32 weight holding the same (rounded) numbers.
func TestFrozenHalfWeights(t *testing.T) {
	b := newCPU(t)
	rng := rand.New(rand.NewPCG(9, 9))
	const n, in, out, vocab = 5, 12, 7, 10
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		// Weights in dt, and the same values in F32.
		half := func(vals []float64, shape ...int) (h, f *tensor.Tensor) {
			f64, _ := FromHost(b, tensor.F64, vals, shape...)
			h, _ = b.Alloc(dt, shape...)
			if err := b.Convert(h, f64); err != nil {
				t.Fatal(err)
			}
			f, _ = b.Alloc(tensor.F32, shape...)
			if err := b.Convert(f, h); err != nil {
				t.Fatal(err)
			}
			return h, f
		}
		wh, wf := half(hostRand(rng, out*in, 1), out, in)
		nh, nf := half(hostRand(rng, in, 1), in)
		eh, ef := half(hostRand(rng, vocab*in, 1), vocab, in)
		ids, _ := Int32s(b, []int32{3, 1, 4, 1, 5}, n)
		xv, _ := FromHost(b, tensor.F32, hostRand(rng, n*in, 1), n, in)
		dy, _ := FromHost(b, tensor.F32, hostRand(rng, n*out, 1), n, out)
		run := func(w, nw, emb *tensor.Tensor) (y, dx []float64) {
			g := New(b, NewPool(b))
			defer g.Release()
			gx, _ := b.Alloc(tensor.F32, n, in)
			x := Param("x", xv, gx)
			h := g.Add(g.RMSNorm(x, Const("norm", nw), 1e-6), g.Embedding(Const("emb", emb), ids))
			o := g.Linear(h, Const("w", w), nil)
			if err := g.BackwardFrom([]*Var{o}, []*tensor.Tensor{dy}); err != nil {
				t.Fatal(err)
			}
			y, _ = g.Value(o)
			dx, _ = ToHost(b, gx)
			return y, dx
		}
		yh, dxh := run(wh, nh, eh)
		yf, dxf := run(wf, nf, ef)
		if e := relErr(yh, yf); e != 0 {
			t.Errorf("%v weights: output differs from f32 weights by %.3g", dt, e)
		}
		if e := relErr(dxh, dxf); e != 0 {
			t.Errorf("%v weights: input gradient differs from f32 weights by %.3g", dt, e)
		}
	}
	// A trainable weight must match its input's dtype.
	g := New(b, NewPool(b))
	defer g.Release()
	wb, _ := b.Alloc(tensor.BF16, 3, 4)
	gw, _ := b.Alloc(tensor.BF16, 3, 4)
	xv, _ := b.Alloc(tensor.F32, 2, 4)
	g.Linear(Const("x", xv), Param("w", wb, gw), nil)
	if g.Err() == nil {
		t.Error("a trainable bf16 weight under an f32 input was accepted")
	}
}
