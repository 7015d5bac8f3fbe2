package models

import (
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/tensor"
)

// TestQuantizedLinear: a model whose linear layers are quantised (NF4, FP4,
// int8) gives, through the per-layer dequantisation in Linear, the logits
// and input gradients of the same model with those layers dequantised into
// dense F32 weights up front; and it holds its layers at their quantised
// size.
func TestQuantizedLinear(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opt  QuantOptions
	}{
		{"nf4", QuantOptions{Kind: backend.QuantNF4}},
		{"nf4-double", QuantOptions{Kind: backend.QuantNF4, DoubleQuant: true}},
		{"fp4", QuantOptions{Kind: backend.QuantFP4, BlockSize: 128}},
		{"int8", QuantOptions{Kind: backend.QuantInt8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			load := func() Model {
				md, _ := hf.Resolve(filepath.Join("testdata", "golden", "llama-gqa"), "")
				l, err := LoadDir(b, md)
				if err != nil {
					t.Fatal(err)
				}
				return l.Model
			}
			q := load()
			dense := WeightBytes(q)
			n, err := Quantize(b, q, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if n != 14 {
				t.Errorf("quantised %d layers, want 14 (7 projections x 2 layers)", n)
			}
			t.Logf("weights %d bytes dense, %d quantised", dense, WeightBytes(q))
			if WeightBytes(q) >= dense {
				t.Errorf("quantised model takes %d bytes, dense %d", WeightBytes(q), dense)
			}
			d := load()
			if _, err := Quantize(b, d, c.opt); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Dequantize(b, d); err != nil {
				t.Fatal(err)
			}
			run := func(m Model) ([]float64, []float64) {
				g := autograd.New(b, autograd.NewPool(b))
				defer g.Release()
				ids, _ := autograd.Int32s(b, []int32{5, 9, 2, 7, 1, 3}, 1, 6)
				pos, _ := autograd.Int32s(b, []int32{0, 1, 2, 3, 4, 5}, 6)
				emb := m.(*Llama).Embed
				gr, _ := b.Alloc(tensor.F32, emb.Shape()...)
				m.(*Llama).Embed = autograd.Param("embed", emb.Value, gr)
				logits := m.Logits(g, m.Forward(g, Inputs{IDs: ids, Positions: pos}))
				out, err := g.Value(logits)
				if err != nil {
					t.Fatal(err)
				}
				dy, _ := b.Alloc(tensor.F32, logits.Shape()...)
				b.Fill(dy, 1)
				if err := g.BackwardFrom([]*autograd.Var{logits}, []*tensor.Tensor{dy}); err != nil {
					t.Fatal(err)
				}
				grad, _ := autograd.ToHost(b, gr)
				return out, grad
			}
			lq, gq := run(q)
			ld, gd := run(d)
			if e := relErr(lq, ld); e > 1e-6 {
				t.Errorf("logits differ from the dequantised model's: relative error %.3g", e)
			}
			if e := relErr(gq, gd); e > 1e-6 {
				t.Errorf("gradients differ from the dequantised model's: relative error %.3g", e)
			}
		})
	}
}
