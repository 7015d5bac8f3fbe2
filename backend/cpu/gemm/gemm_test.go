package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend/cpu/internal/gemmtest"
)

func TestSgemm(t *testing.T) {
	type impl struct {
		name string
		g    *Gemm
	}
	var impls []impl
	for _, name := range Kernels() {
		for _, th := range []int{1, 3} {
			g, err := New(name, th)
			if err != nil {
				t.Fatal(err)
			}
			impls = append(impls, impl{fmt.Sprintf("%s/threads%d", name, th), g})
		}
	}
	// The tiles and blocks of every assembly kernel, run with a portable kernel,
	// so the blocking logic is checked for tiles this CPU cannot run; small
	// cache blocks so that the tests cross many block edges.
	for _, k := range []kernel{genericKernel(6, 16, 256, 144, 4096), genericKernel(12, 32, 256, 192, 4096), genericKernel(3, 5, 7, 9, 11)} {
		impls = append(impls, impl{k.name + "/threads2", &Gemm{kern: k, threads: 2}})
	}
	for _, k := range available() {
		small := k
		small.kc, small.mc, small.nc = 9, 2*k.mr, 3*k.nr
		impls = append(impls, impl{k.name + "-smallblocks/threads2", &Gemm{kern: small, threads: 2}})
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			for _, tc := range gemmtest.Cases(r, testing.Short()) {
				gemmtest.Run(t, r, tc, im.g.Sgemm)
			}
		})
	}
}

func TestSgemmStrided(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, th := range []int{1, 2} {
		g, err := New("", th)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			m, n, k, batch    int
			shareA, transB    bool
			strideExtraA, pad int
		}{
			{3, 4, 5, 1, false, false, 0, 0}, {16, 8, 64, 12, false, true, 3, 1}, {33, 65, 17, 5, true, false, 0, 2}, {130, 150, 140, 3, false, false, 7, 0},
		} {
			lda, ldb, ldc := tc.k+tc.pad, tc.n+tc.pad, tc.n+tc.pad
			if tc.transB {
				ldb = tc.k + tc.pad
			}
			sa := tc.m*lda + tc.strideExtraA
			if tc.shareA {
				sa = 0
			}
			brows := tc.k
			if tc.transB {
				brows = tc.n
			}
			sb, sc := brows*ldb+1, tc.m*ldc+2
			a := gemmtest.RandSlice(r, sa*(tc.batch-1)+tc.m*lda)
			b := gemmtest.RandSlice(r, sb*(tc.batch-1)+brows*ldb)
			c := gemmtest.RandSlice(r, sc*(tc.batch-1)+tc.m*ldc)
			orig := append([]float32(nil), c...)
			if err := g.SgemmStrided(false, tc.transB, tc.m, tc.n, tc.k, 0.75, a, lda, sa, b, ldb, sb, 0.5, c, ldc, sc, tc.batch); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tc.batch; i++ {
				want, mag := gemmtest.Ref(false, tc.transB, tc.m, tc.n, tc.k, 0.75, a[i*sa:], lda, b[i*sb:], ldb, 0.5, orig[i*sc:], ldc)
				for x := 0; x < tc.m; x++ {
					for y := 0; y < tc.n; y++ {
						got := float64(c[i*sc+x*ldc+y])
						if d := math.Abs(got - want[x*tc.n+y]); d > 1e-6*mag[x*tc.n+y]*math.Sqrt(float64(tc.k))+1e-30 {
							t.Fatalf("threads %d %+v batch %d C[%d,%d] = %g, want %g", th, tc, i, x, y, got, want[x*tc.n+y])
						}
					}
				}
			}
		}
	}
}

func TestCheckErrors(t *testing.T) {
	g, err := New("", 2)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := make([]float32, 12), make([]float32, 12), make([]float32, 12)
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"short A", func() error { return g.Sgemm(false, false, 4, 3, 4, 1, a, 4, b, 3, 0, c, 3) }, "A needs 16 elements"},
		{"short C", func() error { return g.Sgemm(false, false, 3, 5, 4, 1, a, 4, make([]float32, 20), 5, 0, c, 5) }, "C needs 15"},
		{"small lda", func() error { return g.Sgemm(false, false, 3, 3, 4, 1, a, 3, b, 3, 0, c, 3) }, "leading dimension is 3, want at least 4"},
		{"negative", func() error { return g.Sgemm(false, false, -1, 3, 4, 1, a, 4, b, 3, 0, c, 3) }, "negative size"},
		{"C stride 0", func() error {
			return g.SgemmStrided(false, false, 2, 2, 2, 1, a, 2, 4, b, 2, 4, 0, c, 2, 0, 2)
		}, "overwrite"},
	} {
		err := tc.call()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := New("nosuchkernel", 1); err == nil || !strings.Contains(err.Error(), "nosuchkernel") {
		t.Errorf("New(nosuchkernel): %v", err)
	}
	if _, err := New("", 0); err == nil {
		t.Error("New with 0 threads: no error")
	}
}
