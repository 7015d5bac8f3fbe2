package models

import (
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/quant"
)

// BenchmarkQuantLinear measures the forward pass of a linear layer (512
// tokens, 2048 -> 2048) with an NF4 weight (dequantised for the layer, then
// one GEMM) next to the same layer with a dense F32 weight: GFLOP/s.
func BenchmarkQuantLinear(b *testing.B) {
	be, err := backend.Default()
	if err != nil {
		b.Fatal(err)
	}
	const T, in, out = 512, 2048, 2048
	rng := rand.New(rand.NewPCG(1, 1))
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.02)
	}
	wt, _ := backend.FromFloat32(be, w, out, in)
	q, err := quant.Quantize(be, wt, backend.QuantNF4, quant.Options{DoubleQuant: true})
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, T*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xt, _ := backend.FromFloat32(be, x, T, in)
	for _, c := range []struct {
		name string
		w    *autograd.Var
	}{{"nf4", autograd.Quantized("w", q)}, {"f32", autograd.Const("w", wt)}} {
		b.Run(c.name, func(b *testing.B) {
			pool := autograd.NewPool(be)
			for b.Loop() {
				g := autograd.New(be, pool)
				g.NoGrad(func() { g.Linear(autograd.Const("x", xt), c.w, nil) })
				if g.Err() != nil {
					b.Fatal(g.Err())
				}
				g.Release()
			}
			b.ReportMetric(2*T*in*out*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
