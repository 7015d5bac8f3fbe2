package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/whet-ai/whet/backend"
	_ "github.com/whet-ai/whet/backend/cpu" // registers the CPU back end
	"github.com/whet-ai/whet/backend/cpu/gemm"
	"github.com/whet-ai/whet/tensor"
)

func init() {
	register(&Command{Name: "info", Short: "show the build, the back end in use and its GEMM speed", Run: runInfo})
}

func runInfo(env *Env, args []string) error {
	fs := newFlags(env, "info", "[--bench] [--size N]")
	bench := fs.Bool("bench", false, "multiply two random NxN matrices on the back end, check the result and report GFLOP/s")
	size := fs.Int("size", 1024, "matrix size for --bench")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if *size < 1 || *size > 16384 {
		return fmt.Errorf("%w: --size %d, want 1 to 16384", ErrUsage, *size)
	}
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	fmt.Fprintf(env.Stdout, "whet %s, %s %s/%s, %d CPUs\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(env.Stdout, "cpu features: %s\n", cpuFeatures())
	fmt.Fprintf(env.Stdout, "pure-Go GEMM kernels: %s\n", strings.Join(gemm.Kernels(), ", "))
	b, err := backend.Default()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "backend: %s\n", b.Describe())
	if !*bench {
		return nil
	}
	return benchGemm(env, b, *size)
}

// benchGemm times C = A*B for n x n random matrices and checks a sample of
// C's entries against dot products computed in float64.
func benchGemm(env *Env, b backend.Backend, n int) error {
	r := rand.New(rand.NewPCG(1, 1))
	a, bm := make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], bm[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	ta, err := backend.FromFloat32(b, a, n, n)
	if err != nil {
		return err
	}
	tb, err := backend.FromFloat32(b, bm, n, n)
	if err != nil {
		return err
	}
	tc, err := b.Alloc(tensor.F32, n, n)
	if err != nil {
		return err
	}
	g := &backend.Gemm{M: n, N: n, K: n, Alpha: 1,
		A: backend.Matrix{T: ta, LD: n}, B: backend.Matrix{T: tb, LD: n}, C: backend.Matrix{T: tc, LD: n}}
	var times []time.Duration
	for start := time.Now(); len(times) < 3 || (time.Since(start) < 2*time.Second && len(times) < 50); {
		t0 := time.Now()
		if err := b.Gemm(g); err != nil {
			return err
		}
		if err := b.Synchronize(); err != nil {
			return err
		}
		times = append(times, time.Since(t0))
	}
	c, err := backend.ToFloat32(b, tc)
	if err != nil {
		return err
	}
	worst := 0.0
	for range 256 {
		i, j := r.IntN(n), r.IntN(n)
		var want, mag float64
		for p := 0; p < n; p++ {
			x := float64(a[i*n+p]) * float64(bm[p*n+j])
			want += x
			mag += math.Abs(x)
		}
		worst = max(worst, math.Abs(float64(c[i*n+j])-want)/mag)
	}
	if worst > 1e-5 {
		return fmt.Errorf("GEMM check failed: relative error %.3g against float64 (want under 1e-5)", worst)
	}
	slices.Sort(times)
	med := times[len(times)/2]
	fmt.Fprintf(env.Stdout, "gemm %dx%dx%d: median %v over %d runs, %.1f GFLOP/s; checked against float64 (worst relative error %.2g)\n",
		n, n, n, med.Round(time.Microsecond), len(times), 2*float64(n)*float64(n)*float64(n)/med.Seconds()/1e9, worst)
	return nil
}

func cpuFeatures() string {
	var f []string
	for _, x := range []struct {
		name string
		has  bool
	}{
		{"avx2", cpu.X86.HasAVX2}, {"fma", cpu.X86.HasFMA}, {"avx512f", cpu.X86.HasAVX512F},
		{"avx512bf16", cpu.X86.HasAVX512BF16}, {"amx-bf16", cpu.X86.HasAMXBF16},
		{"asimd", cpu.ARM64.HasASIMD},
	} {
		if x.has {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		return "none detected"
	}
	return strings.Join(f, " ")
}
