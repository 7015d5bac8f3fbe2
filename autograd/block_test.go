package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// blockConfig is the shape of a Llama-style pre-norm transformer block.
type blockConfig struct {
	hidden, heads, kvHeads, mlp int
}

func (c blockConfig) headDim() int { return c.hidden / c.heads }

// paramShapes lists the block's weights in Hugging Face's layouts.
func (c blockConfig) paramShapes() [][]int {
	hd := c.headDim()
	return [][]int{
		{c.hidden},                 // input_layernorm
		{c.heads * hd, c.hidden},   // q_proj
		{c.kvHeads * hd, c.hidden}, // k_proj
		{c.kvHeads * hd, c.hidden}, // v_proj
		{c.hidden, c.heads * hd},   // o_proj
		{c.hidden},                 // post_attention_layernorm
		{c.mlp, c.hidden},          // gate_proj
		{c.mlp, c.hidden},          // up_proj
		{c.hidden, c.mlp},          // down_proj
	}
}

// block is one Llama decoder layer: x + attn(norm(x)), then h + mlp(norm(h)).
// x is [B, T, hidden]; p holds the weights in paramShapes order.
func block(g *Graph, c blockConfig, x *Var, p []*Var, pos, segs *tensor.Tensor, rope *backend.Rope) *Var {
	bsz, T, hd := x.Value.Dim(0), x.Value.Dim(1), c.headDim()
	h := g.RMSNorm(x, p[0], 1e-5)
	q := g.Reshape(g.Linear(h, p[1], nil), bsz, T, c.heads, hd)
	k := g.Reshape(g.Linear(h, p[2], nil), bsz, T, c.kvHeads, hd)
	v := g.Reshape(g.Linear(h, p[3], nil), bsz, T, c.kvHeads, hd)
	q, k = g.RoPE(q, pos, rope), g.RoPE(k, pos, rope)
	a := g.Attention(q, k, v, AttentionOpts{Segments: segs})
	x = g.Add(x, g.Linear(g.Reshape(a, bsz, T, c.heads*hd), p[4], nil))
	h = g.RMSNorm(x, p[5], 1e-5)
	return g.Add(x, g.Linear(g.SwiGLU(g.Linear(h, p[6], nil), g.Linear(h, p[7], nil)), p[8], nil))
}

func ropeFor(headDim int) *backend.Rope {
	inv := make([]float64, headDim/2)
	for i := range inv {
		inv[i] = math.Pow(10000, -2*float64(i)/float64(headDim))
	}
	return &backend.Rope{InvFreq: inv}
}

// TestGradBlock checks a whole pre-norm block with GQA and RoPE against
// finite differences: every weight and the input.
func TestGradBlock(t *testing.T) {
	b := newCPU(t)
	c := blockConfig{hidden: 8, heads: 4, kvHeads: 2, mlp: 12}
	bsz, T := 2, 5
	pos := make([]int32, bsz*T)
	for i := range pos {
		pos[i] = int32(i % T)
	}
	posT, _ := Int32s(b, pos, bsz*T)
	rope := ropeFor(c.headDim())
	inputs := []input{{shape: []int{bsz, T, c.hidden}, grad: true}}
	for _, s := range c.paramShapes() {
		inputs = append(inputs, input{shape: s, grad: true, scale: 0.5})
	}
	checkGrad(t, gradCase{"llama-block", inputs, func(g *Graph, in []*Var) *Var {
		return block(g, c, in[0], in[1:], posT, nil, rope)
	}}, 3)
}

// TestPackedEqualsSeparate runs three documents packed into one row (with
// per-document positions and segment ids) and each on its own, through a
// block, and compares outputs and weight gradients in float64.
func TestPackedEqualsSeparate(t *testing.T) {
	b := newCPU(t)
	c := blockConfig{hidden: 16, heads: 4, kvHeads: 2, mlp: 24}
	rope := ropeFor(c.headDim())
	rng := rand.New(rand.NewPCG(1, 2))
	lens := []int{5, 3, 7}
	total := 15 + 2 // two padding tokens at the end
	weights := make([][]float64, 0)
	for _, s := range c.paramShapes() {
		n, _ := tensor.NumElements(s)
		weights = append(weights, hostRand(rng, n, 0.3))
	}
	x := hostRand(rng, total*c.hidden, 1)
	r := hostRand(rng, total*c.hidden, 1)
	// The padding rows get no output gradient: they attend to nothing, so
	// no separate run has them; their outputs are not compared either.
	clear(r[15*c.hidden:])
	// run builds the block on rows [lo, lo+n) of the packed data and
	// returns its output and the weight gradients for output gradient r.
	run := func(lo, n int, pos, segs []int32) ([]float64, [][]float64) {
		pool := NewPool(b)
		g := New(b, pool)
		defer g.Release()
		xv, _ := FromHost(b, tensor.F64, x[lo*c.hidden:(lo+n)*c.hidden], 1, n, c.hidden)
		ps := make([]*Var, len(weights))
		for i, w := range weights {
			v, _ := FromHost(b, tensor.F64, w, c.paramShapes()[i]...)
			gr, _ := b.Alloc(tensor.F64, c.paramShapes()[i]...)
			ps[i] = Param(fmt.Sprint("w", i), v, gr)
		}
		posT, _ := Int32s(b, pos, n)
		var segT *tensor.Tensor
		if segs != nil {
			segT, _ = Int32s(b, segs, 1, n)
		}
		out := block(g, c, Const("x", xv), ps, posT, segT, rope)
		rt, _ := FromHost(b, tensor.F64, r[lo*c.hidden:(lo+n)*c.hidden], 1, n, c.hidden)
		if err := g.BackwardFrom([]*Var{out}, []*tensor.Tensor{rt}); err != nil {
			t.Fatal(err)
		}
		o, err := g.Value(out)
		if err != nil {
			t.Fatal(err)
		}
		grads := make([][]float64, len(ps))
		for i, p := range ps {
			grads[i], _ = ToHost(b, p.Grad)
		}
		return o, grads
	}
	var pos, segs []int32
	for d, n := range lens {
		for i := range n {
			pos = append(pos, int32(i))
			segs = append(segs, int32(d))
		}
	}
	pos = append(pos, 0, 0)
	segs = append(segs, -1, -1)
	packedOut, packedGrads := run(0, total, pos, segs)
	sum := make([][]float64, len(weights))
	lo := 0
	for _, n := range lens {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32(i)
		}
		out, grads := run(lo, n, p, nil)
		if e := relErr(out, packedOut[lo*c.hidden:(lo+n)*c.hidden]); e > 1e-12 {
			t.Errorf("document at %d: packed output differs from separate: relative error %.3g", lo, e)
		}
		for i, gr := range grads {
			if sum[i] == nil {
				sum[i] = make([]float64, len(gr))
			}
			for j := range gr {
				sum[i][j] += gr[j]
			}
		}
		lo += n
	}
	for i := range packedGrads {
		if e := relErr(packedGrads[i], sum[i]); e > 1e-12 {
			t.Errorf("weight %d: packed gradient differs from the sum over documents: relative error %.3g", i, e)
		}
	}
}
