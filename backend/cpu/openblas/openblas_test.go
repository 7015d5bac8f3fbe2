//go:build darwin || netbsd || (freebsd && cgo) || (linux && (cgo || !s390x))

package openblas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebitengine/purego"
)

// load returns the library or skips the test when OpenBLAS is not installed.
func load(tb testing.TB) *Lib {
	tb.Helper()
	l, err := Load()
	if err != nil {
		tb.Skip("OpenBLAS not installed: " + err.Error())
	}
	return l
}

// padNaN marks storage that BLAS must neither read (A, B padding) nor write
// (C padding); it is a quiet NaN with a recognisable payload.
var padNaN = math.Float32frombits(0x7fc0dead)

// gemmCase is one Sgemm call with its operands laid out row-major with
// (possibly) padded leading dimensions.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	alpha, beta    float32
	a, b, c0       []float32
}

// newCase builds operands for op(A) m×k, op(B) k×n, C m×n. pad is added to
// every leading dimension. A and B padding holds NaNs, so reading it would
// poison the result. When beta is 0, C is filled with NaN: BLAS must not read
// it.
func newCase(rng *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32) *gemmCase {
	tc := &gemmCase{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	tc.lda, tc.ldb, tc.ldc = max(1, colsA)+pad, max(1, colsB)+pad, max(1, n)+pad
	fill := func(rows, cols, ld int, nan bool) []float32 {
		s := make([]float32, max(1, rows*ld))
		for i := range s {
			s[i] = padNaN
		}
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if nan {
					s[r*ld+c] = float32(math.NaN())
				} else {
					s[r*ld+c] = rng.Float32()*2 - 1
				}
			}
		}
		return s
	}
	tc.a = fill(rowsA, colsA, tc.lda, false)
	tc.b = fill(rowsB, colsB, tc.ldb, false)
	tc.c0 = fill(m, n, tc.ldc, beta == 0)
	return tc
}

func (tc *gemmCase) opA(i, p int) float32 {
	if tc.transA {
		return tc.a[p*tc.lda+i]
	}
	return tc.a[i*tc.lda+p]
}

func (tc *gemmCase) opB(p, j int) float32 {
	if tc.transB {
		return tc.b[j*tc.ldb+p]
	}
	return tc.b[p*tc.ldb+j]
}

func (tc *gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s m=%d n=%d k=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g",
		t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.lda, tc.ldb, tc.ldc, tc.alpha, tc.beta)
}

// run calls sgemm on a fresh copy of C and returns it.
func (tc *gemmCase) run(sgemm func(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int)) []float32 {
	c := append([]float32(nil), tc.c0...)
	sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, &tc.a[0], tc.lda, &tc.b[0], tc.ldb, tc.beta, &c[0], tc.ldc)
	runtime.KeepAlive(tc)
	return c
}

// check compares c with a float64 reference. The bound allows for float32
// accumulation: 1e-5 relative to sum_k |alpha·a·b| + |beta·c0|, plus 1e-6.
// NaNs fail. C's padding must be untouched.
func (tc *gemmCase) check(t *testing.T, c []float32) {
	t.Helper()
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var sum, abs float64
			for p := 0; p < tc.k; p++ {
				x := float64(tc.opA(i, p)) * float64(tc.opB(p, j))
				sum += x
				abs += math.Abs(x)
			}
			ref := float64(tc.alpha) * sum
			scale := math.Abs(float64(tc.alpha)) * abs
			if tc.beta != 0 {
				bc := float64(tc.beta) * float64(tc.c0[i*tc.ldc+j])
				ref += bc
				scale += math.Abs(bc)
			}
			got := float64(c[i*tc.ldc+j])
			if diff := math.Abs(got - ref); !(diff <= 1e-5*scale+1e-6) {
				if bad < 5 {
					t.Errorf("%v: C[%d,%d] = %g, want %g (diff %g, bound %g)", tc, i, j, got, ref, diff, 1e-5*scale+1e-6)
				}
				bad++
			}
		}
	}
	for i := range c {
		if r, col := i/tc.ldc, i%tc.ldc; r < tc.m && col < tc.n {
			continue
		}
		if math.Float32bits(c[i]) != math.Float32bits(padNaN) {
			if bad < 5 {
				t.Errorf("%v: C padding at %d changed to %g", tc, i, c[i])
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%v: %d mismatches in total", tc, bad)
	}
}

func TestSgemm(t *testing.T) {
	l := load(t)
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{ // m, n, k
		{1, 1, 1},
		{1, 37, 5},   // 1×N
		{37, 1, 5},   // N×1
		{1, 1, 300},  // dot product
		{5, 7, 1},    // K=1 (outer product)
		{64, 64, 1},  // K=1, larger
		{3, 5, 7},    // odd
		{17, 19, 23}, // odd
		{64, 64, 64},
		{129, 65, 33},
		{1, 128, 64},
		{128, 1, 64},
		{2048, 37, 16}, // skinny
		{16, 2048, 37},
		{200, 3, 257},
	}
	for range 8 {
		shapes = append(shapes, [3]int{1 + rng.IntN(150), 1 + rng.IntN(150), 1 + rng.IntN(150)})
	}
	scalars := [][2]float32{ // alpha, beta
		{1, 0},
		{-0.75, 1.5},
		{2.5, 0}, // C pre-filled with NaN
		{0.5, -1},
		{1, 1},
	}
	for si, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("m%d_n%d_k%d", m, n, k), func(t *testing.T) {
			for ti := range 4 {
				transA, transB := ti&1 != 0, ti&2 != 0
				for pi, pad := range []int{0, 1 + rng.IntN(9)} {
					ab := scalars[(si+ti+pi)%len(scalars)]
					tc := newCase(rng, transA, transB, m, n, k, pad, ab[0], ab[1])
					tc.check(t, tc.run(l.Sgemm))
				}
			}
		})
	}
}

// TestSgemmBetaZeroNaN: with beta = 0, C is output only; NaNs in it must not
// leak into the result.
func TestSgemmBetaZeroNaN(t *testing.T) {
	l := load(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for ti := range 4 {
		tc := newCase(rng, ti&1 != 0, ti&2 != 0, 33, 17, 9, 3, 1.25, 0)
		c := tc.run(l.Sgemm)
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				if v := c[i*tc.ldc+j]; math.IsNaN(float64(v)) {
					t.Fatalf("%v: C[%d,%d] is NaN", tc, i, j)
				}
			}
		}
		tc.check(t, c)
	}
}

// TestSgemmMatchesCBLAS calls cblas_sgemm directly through purego's
// reflect-based RegisterFunc, which passes alpha and beta as float32 in XMM
// registers, and checks that it agrees with Sgemm (which goes through sgemm_).
func TestSgemmMatchesCBLAS(t *testing.T) {
	l := load(t)
	if l.ilp64 {
		t.Skip("ILP64 OpenBLAS: cblas integer arguments are 64-bit")
	}
	var cblas func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	purego.RegisterFunc(&cblas, l.cblasSgemm)
	viaCBLAS := func(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
		const rowMajor, noTrans, trans = 101, 111, 112
		ta, tb := int32(noTrans), int32(noTrans)
		if transA {
			ta = trans
		}
		if transB {
			tb = trans
		}
		cblas(rowMajor, ta, tb, int32(m), int32(n), int32(k), alpha, a, int32(lda), b, int32(ldb), beta, c, int32(ldc))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for ti := range 4 {
		tc := newCase(rng, ti&1 != 0, ti&2 != 0, 23, 31, 19, 2, -1.75, 0.625)
		want := tc.run(viaCBLAS)
		tc.check(t, want) // cblas_sgemm itself is right, so purego passed the floats correctly
		got := tc.run(l.Sgemm)
		same := true
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				same = false
			}
		}
		tc.check(t, got)
		t.Logf("%v: bitwise identical to cblas_sgemm: %v", tc, same)
	}
}

// TestSgemmConcurrent calls Sgemm from several goroutines at once.
func TestSgemmConcurrent(t *testing.T) {
	l := load(t)
	var wg sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(uint64(g), 99))
		cases := make([]*gemmCase, 4)
		for i := range cases {
			cases[i] = newCase(rng, i&1 != 0, i&2 != 0, 40+g, 30+i, 50, g%3, 0.5, 0)
		}
		results := make([][]float32, len(cases))
		wg.Go(func() {
			for range 10 {
				for i, tc := range cases {
					results[i] = tc.run(l.Sgemm)
				}
			}
		})
		t.Cleanup(func() {
			for i, tc := range cases {
				tc.check(t, results[i])
			}
		})
	}
	wg.Wait()
}

func TestSgemmNoAlloc(t *testing.T) {
	l := load(t)
	rng := rand.New(rand.NewPCG(7, 8))
	tc := newCase(rng, false, true, 8, 8, 8, 0, 1, 0)
	c := make([]float32, len(tc.c0))
	allocs := testing.AllocsPerRun(100, func() {
		l.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, &tc.a[0], tc.lda, &tc.b[0], tc.ldb, tc.beta, &c[0], tc.ldc)
	})
	if allocs != 0 {
		t.Errorf("Sgemm allocates %v times per call, want 0", allocs)
	}
}

func TestInfo(t *testing.T) {
	l := load(t)
	t.Logf("Path=%q Config=%q CoreName=%q Version=%q NumThreads=%d", l.Path(), l.Config(), l.CoreName(), l.Version(), l.NumThreads())
	if l.Path() == "" {
		t.Error("Path is empty")
	}
	if !strings.HasPrefix(l.Config(), "OpenBLAS") {
		t.Errorf("Config = %q, want it to start with OpenBLAS", l.Config())
	}
	if l.CoreName() == "" {
		t.Error("CoreName is empty")
	}
	if v := l.Version(); v == "" || strings.Trim(v, "0123456789.") != "" && !strings.Contains(v, ".dev") {
		t.Errorf("Version = %q, want something like 0.3.21", v)
	}
}

func TestThreads(t *testing.T) {
	l := load(t)
	orig := l.NumThreads()
	defer l.SetNumThreads(orig)
	if orig < 1 {
		t.Errorf("NumThreads = %d, want >= 1", orig)
	}
	l.SetNumThreads(1)
	if got := l.NumThreads(); got != 1 {
		t.Errorf("after SetNumThreads(1): NumThreads = %d", got)
	}
	l.SetNumThreads(2)
	switch got := l.NumThreads(); got {
	case 2:
	case 1:
		t.Logf("after SetNumThreads(2): NumThreads = 1 (single-threaded build? config %q)", l.Config())
	default:
		t.Errorf("after SetNumThreads(2): NumThreads = %d", got)
	}
	// A product big enough for OpenBLAS to use its worker threads.
	rng := rand.New(rand.NewPCG(9, 10))
	tc := newCase(rng, false, false, 256, 256, 256, 0, 1, 0)
	tc.check(t, tc.run(l.Sgemm))
}

func TestLoadTwice(t *testing.T) {
	l1 := load(t)
	l2, err := Load()
	if err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if l1.Config() != l2.Config() || l1.Path() != l2.Path() {
		t.Errorf("second Load differs: %q %q vs %q %q", l1.Path(), l1.Config(), l2.Path(), l2.Config())
	}
}

func TestLoadEnvNonexistent(t *testing.T) {
	const p = "/nonexistent/libopenblas.so"
	t.Setenv(EnvLib, p)
	l, err := Load()
	if err == nil {
		t.Fatalf("Load with %s=%s succeeded (%q)", EnvLib, p, l.Path())
	}
	t.Log(err)
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name %s", err, p)
	}
	if !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("error %q does not say how to install OpenBLAS", err)
	}
}

// TestLoadRejectsNonOpenBLAS points EnvLib at libraries that load but are not
// OpenBLAS.
func TestLoadRejectsNonOpenBLAS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses Linux library names")
	}
	libs := []string{"libm.so.6"}
	// The reference BLAS (Debian/Ubuntu libblas3) exports cblas_sgemm but not
	// openblas_get_config.
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", "/usr/lib/aarch64-linux-gnu/blas/libblas.so.3"} {
		if _, err := os.Stat(p); err == nil {
			libs = append(libs, p)
		}
	}
	for _, p := range libs {
		t.Setenv(EnvLib, p)
		_, err := Load()
		if err == nil {
			t.Errorf("Load accepted %s", p)
			continue
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "not OpenBLAS") || !strings.Contains(err.Error(), p) {
			t.Errorf("error for %s = %q, want it to name the path and say it is not OpenBLAS", p, err)
		}
	}
}

// TestLoadErrorListsCandidates checks the "nothing loads" error without
// depending on what is installed.
func TestLoadErrorListsCandidates(t *testing.T) {
	cands := []string{"/nonexistent/a/libopenblas.so.0", "/nonexistent/b/libopenblas.so"}
	if runtime.GOOS == "linux" {
		cands = append(cands, "libm.so.6") // loads, but is rejected
	}
	_, err := loadFirst(cands)
	if err == nil {
		t.Fatal("loadFirst succeeded")
	}
	t.Log(err)
	for _, p := range cands {
		if !strings.Contains(err.Error(), p+": ") {
			t.Errorf("error does not name %s", p)
		}
	}
	for _, want := range []string{"apt-get install libopenblas0-pthread", EnvLib} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	for _, p := range candidates() {
		if p == "" || strings.ContainsAny(p, "; ") {
			t.Errorf("bad candidate %q", p)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64", "0.3.21"},
		{"OpenBLAS 0.3.26.dev DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=128", "0.3.26.dev"},
		{"OpenBLAS 0.3.28  USE64BITINT DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=512", "0.3.28"},
		{"DYNAMIC_ARCH NO_AFFINITY Haswell", ""},
		{"OpenBLAS", ""},
		{"", ""},
	} {
		if got := parseVersion(tc.config); got != tc.want {
			t.Errorf("parseVersion(%q) = %q, want %q", tc.config, got, tc.want)
		}
	}
}

// BenchmarkSgemm2048 multiplies two 2048×2048 matrices, with one thread and
// with one per CPU, and reports GFLOP/s (2·n³ flops per product).
func BenchmarkSgemm2048(b *testing.B) {
	l := load(b)
	const n = 2048
	rng := rand.New(rand.NewPCG(11, 12))
	a := make([]float32, n*n)
	bm := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = rng.Float32()*2 - 1
		bm[i] = rng.Float32()*2 - 1
	}
	orig := l.NumThreads()
	defer l.SetNumThreads(orig)
	threads := []int{1}
	if cpus := runtime.NumCPU(); cpus > 1 {
		threads = append(threads, cpus)
	}
	for _, th := range threads {
		b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) {
			l.SetNumThreads(th)
			l.Sgemm(false, false, n, n, n, 1, &a[0], n, &bm[0], n, 0, &c[0], n) // warm up the thread pool
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				l.Sgemm(false, false, n, n, n, 1, &a[0], n, &bm[0], n, 0, &c[0], n)
			}
			sec := time.Since(start).Seconds()
			b.ReportMetric(2*n*n*n*float64(b.N)/sec/1e9, "GFLOP/s")
			b.ReportMetric(float64(l.NumThreads()), "threads")
		})
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(bm)
	runtime.KeepAlive(c)
}
