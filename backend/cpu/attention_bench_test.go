package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// BenchmarkAttention measures fused attention in F32 at the Llama block
// benchmark's shape (batch 1, 512 tokens, 16 query heads, 4 key-value heads,
// head dimension 64, causal), forward and forward+backward, with a GEMM of
// the block's projection shape (512x1024x1024) in the same run as a
// yardstick. GFLOP/s counts 4*B*Hq*D per causal (query, key) pair forward,
// and 2.5 times that backward. The thread count is WHET_NUM_THREADS, or all
// cores. Run it with
//
//	go test ./backend/cpu -run '^$' -bench Attention -count 3
func BenchmarkAttention(b *testing.B) {
	opt, err := OptionsFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	be, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s", be.Describe())
	const B, T, Hq, Hkv, D = 1, 512, 16, 4, 64
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(shape ...int) *tensor.Tensor {
		n, _ := tensor.NumElements(shape)
		x := make([]float32, n)
		for i := range x {
			x[i] = 2*r.Float32() - 1
		}
		t, err := backend.FromFloat32(be, x, shape...)
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	a := &backend.AttentionArgs{
		Q: mk(B, T, Hq, D), K: mk(B, T, Hkv, D), V: mk(B, T, Hkv, D),
		Out: mk(B, T, Hq, D), LSE: mk(B, Hq, T),
		DOut: mk(B, T, Hq, D), DQ: mk(B, T, Hq, D), DK: mk(B, T, Hkv, D), DV: mk(B, T, Hkv, D),
	}
	pairs := float64(T) * (T + 1) / 2
	fwd := 4 * B * Hq * D * pairs
	b.Run("pass=fwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.Attention(a); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(fwd*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("pass=fwd+bwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.Attention(a); err != nil {
				b.Fatal(err)
			}
			if err := be.AttentionBackward(a); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(3.5*fwd*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("pass=gemm-512x1024x1024", func(b *testing.B) {
		const m, n, k = 512, 1024, 1024
		x, w, y := mk(m, k), mk(k, n), mk(m, n)
		g := &backend.Gemm{M: m, N: n, K: k, Alpha: 1,
			A: backend.Matrix{T: x, LD: k}, B: backend.Matrix{T: w, LD: n}, C: backend.Matrix{T: y, LD: n}}
		for b.Loop() {
			if err := be.Gemm(g); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(2*m*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
