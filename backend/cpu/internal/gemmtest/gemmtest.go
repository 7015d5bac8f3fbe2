// Package gemmtest checks SGEMM implementations against a float64 reference.
// It is shared by the tests of the pure-Go GEMM, the OpenBLAS binding and the
// CPU back end, so that all are held to the same cases and tolerances.
package gemmtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Func is the signature of a row-major SGEMM under test.
type Func func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error

// Ref is the float64 reference: C = alpha*op(A)*op(B) + beta*C. It also
// returns, per element, sum_p |op(A)(i,p)*op(B)(p,j)|, the scale of the
// rounding error that float32 accumulation may make.
func Ref(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var x, y float64
				if transA {
					x = float64(a[p*lda+i])
				} else {
					x = float64(a[i*lda+p])
				}
				if transB {
					y = float64(b[j*ldb+p])
				} else {
					y = float64(b[p*ldb+j])
				}
				s += x * y
				sa += math.Abs(x * y)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
				sa = math.Abs(float64(alpha))*sa + math.Abs(float64(beta)*float64(c[i*ldc+j]))
			} else {
				sa *= math.Abs(float64(alpha))
			}
			want[i*n+j] = v
			mag[i*n+j] = sa
		}
	}
	return want, mag
}

// RandSlice returns n standard normal values.
func RandSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// Case is one product to check.
type Case struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
	Pad            int // extra elements per row beyond the minimum leading dimension
}

// String names the case for test output.
func (tc Case) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s_m%d_n%d_k%d_a%g_b%g_pad%d", t(tc.TransA), t(tc.TransB), tc.M, tc.N, tc.K, tc.Alpha, tc.Beta, tc.Pad)
}

// Run multiplies with fn and checks every element against the float64
// reference, and that C's padding is untouched.
func Run(t *testing.T, r *rand.Rand, tc Case, fn Func) {
	t.Helper()
	ar, ac := tc.M, tc.K
	if tc.TransA {
		ar, ac = tc.K, tc.M
	}
	br, bc := tc.K, tc.N
	if tc.TransB {
		br, bc = tc.N, tc.K
	}
	lda, ldb, ldc := max(ac, 1)+tc.Pad, max(bc, 1)+tc.Pad, max(tc.N, 1)+tc.Pad
	a := RandSlice(r, ar*lda)
	b := RandSlice(r, br*ldb)
	c := RandSlice(r, tc.M*ldc)
	if tc.Beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN()) // must not be read
		}
	}
	orig := append([]float32(nil), c...)
	want, mag := Ref(tc.TransA, tc.TransB, tc.M, tc.N, tc.K, tc.Alpha, a, lda, b, ldb, tc.Beta, orig, ldc)
	if err := fn(tc.TransA, tc.TransB, tc.M, tc.N, tc.K, tc.Alpha, a, lda, b, ldb, tc.Beta, c, ldc); err != nil {
		t.Fatalf("%v: %v", tc, err)
	}
	bad := 0
	for i := 0; i < tc.M; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= tc.N {
				if math.Float32bits(got) != math.Float32bits(orig[i*ldc+j]) {
					t.Errorf("%v: C[%d,%d] in the padding changed from %g to %g", tc, i, j, orig[i*ldc+j], got)
					bad++
				}
				continue
			}
			w := want[i*tc.N+j]
			tol := 1e-6*mag[i*tc.N+j]*math.Sqrt(float64(tc.K)+1) + 1e-30
			if d := math.Abs(float64(got) - w); !(d <= tol) {
				t.Errorf("%v: C[%d,%d] = %g, want %g (|diff| %g > tol %g)", tc, i, j, got, w, d, tol)
				bad++
			}
			if bad > 10 {
				t.FailNow()
			}
		}
	}
}

// Cases returns the shapes every implementation is checked on: odd sizes,
// vectors, K=1, LoRA's skinny shapes, sizes that cross the cache blocks, and
// every transpose and alpha/beta combination.
func Cases(r *rand.Rand, short bool) []Case {
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {7, 1, 3}, {5, 5, 1}, {1, 300, 17}, {300, 1, 17},
		{13, 17, 19}, {6, 16, 8}, {12, 32, 8}, {37, 70, 300}, {64, 64, 64},
		{300, 8, 64}, {8, 300, 64}, // LoRA: x*A^T with rank 8, and back up
		{200, 16, 513}, {200, 513, 16}, {0, 5, 5}, {5, 0, 5}, {5, 5, 0},
	}
	if !short {
		shapes = append(shapes, [3]int{257, 263, 269}, [3]int{130, 4200, 33}, [3]int{520, 40, 700},
			[3]int{1030, 16, 600}, [3]int{16, 1030, 600}, [3]int{600, 1030, 16}) // LoRA rank 16 at scale
	}
	for range 8 {
		shapes = append(shapes, [3]int{1 + r.IntN(90), 1 + r.IntN(90), 1 + r.IntN(90)})
	}
	var cs []Case
	ab := [][2]float32{{1, 0}, {0.5, 1}, {-1.5, 0.25}, {0, 2}, {1, 1}}
	for i, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			x := ab[(i+tr)%len(ab)]
			cs = append(cs, Case{TransA: tr&1 != 0, TransB: tr&2 != 0, M: s[0], N: s[1], K: s[2], Alpha: x[0], Beta: x[1], Pad: (i + tr) % 3})
		}
	}
	return cs
}
