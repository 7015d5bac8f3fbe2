package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	gonum "gonum.org/v1/gonum/blas/gonum"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu/gemm"
	"github.com/whet-ai/whet/backend/cpu/internal/gemmtest"
)

// benchShapes are the yardsticks: square products, and LoRA's skinny
// ones (x*A^T with rank 16, and the rank-16 product back up).
var benchShapes = [][3]int{ // M, N, K
	{1024, 1024, 1024},
	{2048, 2048, 2048},
	{2048, 16, 2048},
	{2048, 2048, 16},
}

// BenchmarkGemm measures C = A*B for each GEMM this machine has, through the
// Backend interface, with gonum's Sgemm in the same run as a yardstick. The
// thread count is WHET_NUM_THREADS, or all cores. Run it with
//
//	go test ./backend/cpu -run '^$' -bench Gemm -count 5
func BenchmarkGemm(b *testing.B) {
	opt, err := OptionsFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	impls := map[string]*Backend{}
	for _, k := range gemm.Kernels() {
		be, err := New(Options{BLAS: BLASGo, Threads: opt.Threads, Kernel: k})
		if err != nil {
			b.Fatal(err)
		}
		impls["go-"+k] = be
	}
	if be, err := New(Options{BLAS: BLASOpenBLAS, Threads: opt.Threads}); err == nil {
		impls["openblas"] = be
	} else {
		b.Logf("no OpenBLAS benchmark: %v", err)
	}
	for _, s := range benchShapes {
		m, n, k := s[0], s[1], s[2]
		r := rand.New(rand.NewPCG(1, 2))
		a, bm := gemmtest.RandSlice(r, m*k), gemmtest.RandSlice(r, k*n)
		flops := 2 * float64(m) * float64(n) * float64(k)
		shape := fmt.Sprintf("%dx%dx%d", m, n, k)
		for _, name := range []string{"openblas", "go-avx512", "go-avx2", "go-go"} {
			be := impls[name]
			if be == nil {
				continue
			}
			ta, _ := backend.FromFloat32(be, a, m, k)
			tb, _ := backend.FromFloat32(be, bm, k, n)
			tc, _ := be.Alloc(ta.DType(), m, n)
			g := &backend.Gemm{M: m, N: n, K: k, Alpha: 1,
				A: backend.Matrix{T: ta, LD: k}, B: backend.Matrix{T: tb, LD: n}, C: backend.Matrix{T: tc, LD: n}}
			b.Run("impl="+name+"/mnk="+shape, func(b *testing.B) {
				for b.Loop() {
					if err := be.Gemm(g); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		b.Run("impl=gonum/mnk="+shape, func(b *testing.B) {
			c := make([]float32, m*n)
			for b.Loop() {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bm, n, 0, c, n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
