package cpu

import (
	"fmt"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu/gemm"
)

// dgemm is Gemm on F64 tensors: a plain loop, parallel over rows of C. It
// serves gradient checks in float64, where exactness matters and sizes are
// small.
func (b *Backend) dgemm(g *backend.Gemm) error {
	var ops [3][]float64
	for i, m := range []backend.Matrix{g.A, g.B, g.C} {
		s, err := Float64s(m.T)
		if err != nil {
			return fmt.Errorf("gemm: %w", err)
		}
		ops[i] = s[m.Offset:]
	}
	a, bm, c := ops[0], ops[1], ops[2]
	batch := g.BatchCount()
	if err := gemm.Check(g.TransA, g.TransB, g.M, g.N, g.K, len(a), g.A.LD, g.A.Stride,
		len(bm), g.B.LD, g.B.Stride, len(c), g.C.LD, g.C.Stride, batch); err != nil {
		return err
	}
	m, n, k := g.M, g.N, g.K
	b.parallelFor(batch*m, max(1, 4096/max(1, n*k)), func(lo, hi int) {
		row := make([]float64, n)
		for r := lo; r < hi; r++ {
			bi, i := r/m, r%m
			ab, bb, cb := a[bi*g.A.Stride:], bm[bi*g.B.Stride:], c[bi*g.C.Stride:]
			clear(row)
			for p := 0; p < k; p++ {
				var av float64
				if g.TransA {
					av = ab[p*g.A.LD+i]
				} else {
					av = ab[i*g.A.LD+p]
				}
				if av == 0 {
					continue
				}
				if g.TransB {
					for j := range row {
						row[j] += av * bb[j*g.B.LD+p]
					}
				} else {
					br := bb[p*g.B.LD : p*g.B.LD+n]
					for j, bv := range br {
						row[j] += av * bv
					}
				}
			}
			cr := cb[i*g.C.LD : i*g.C.LD+n]
			for j := range cr {
				if g.Beta == 0 {
					cr[j] = g.Alpha * row[j]
				} else {
					cr[j] = g.Alpha*row[j] + g.Beta*cr[j]
				}
			}
		}
	})
	return nil
}

// gemmSerial computes C = alpha*op(A)*op(B) + beta*C on the calling
// goroutine, for kernels that are already parallel over their own work items
// (attention heads and blocks). float32 runs the pure-Go packed GEMM (whose
// small-product path reads A in place); float64 runs a plain loop. Operands
// are row-major with leading dimensions lda, ldb and ldc; C is not read when
// beta is 0. It returns an error for slices too short for the shapes.
func gemmSerial[T Float](b *Backend, transA, transB bool, m, n, k int, alpha T, a []T, lda int, bm []T, ldb int, beta T, c []T, ldc int) error {
	switch a := any(a).(type) {
	case []float32:
		return b.serial.Sgemm(transA, transB, m, n, k, float32(alpha), a, lda, any(bm).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		bb, cc := any(bm).([]float64), any(c).([]float64)
		if err := gemm.Check(transA, transB, m, n, k, len(a), lda, 0, len(bb), ldb, 0, len(cc), ldc, 0, 1); err != nil {
			return err
		}
		al, be := float64(alpha), float64(beta)
		row := make([]float64, n)
		for i := 0; i < m; i++ {
			clear(row)
			for p := 0; p < k; p++ {
				var av float64
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					for j := range row {
						row[j] += av * bb[j*ldb+p]
					}
				} else {
					for j, bv := range bb[p*ldb : p*ldb+n] {
						row[j] += av * bv
					}
				}
			}
			cr := cc[i*ldc : i*ldc+n]
			for j := range cr {
				if be == 0 {
					cr[j] = al * row[j]
				} else {
					cr[j] = al*row[j] + be*cr[j]
				}
			}
		}
	}
	return nil
}
