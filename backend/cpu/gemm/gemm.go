// Package gemm is whet's pure-Go single-precision matrix multiply.
//
// It follows the structure of GotoBLAS and BLIS: the operands are cut into
// cache-sized blocks, each block of A and B is packed into a contiguous panel
// layout, and a register-blocked micro-kernel multiplies panels. On amd64 the
// micro-kernel is Go assembly for AVX-512 or AVX2+FMA, chosen from the CPU's
// features; elsewhere it is portable Go. The work of each block is shared among
// goroutines.
//
// All matrices are row-major. The package is the fallback for the CPU back end
// when OpenBLAS is absent, and is used directly where a call is too small for a
// foreign-function call to pay.
//
//go:generate go run ./internal/asmgen
package gemm

import (
	"fmt"
	"sync"
)

// Gemm multiplies matrices with one micro-kernel and a fixed number of
// goroutines. A Gemm is safe for concurrent use.
type Gemm struct {
	kern    kernel
	threads int
	bufsA   freeList // packed blocks of A, one per worker
	bufsB   freeList // packed blocks of B, one per call
	// directPanels is the most B panels for which the kernel reads A unpacked.
	directPanels int
}

// New returns a Gemm that uses the named micro-kernel ("" picks the fastest
// this CPU supports; see Kernels) and up to threads goroutines per call.
func New(kernelName string, threads int) (*Gemm, error) {
	if threads < 1 {
		return nil, fmt.Errorf("gemm: thread count %d, want at least 1", threads)
	}
	k, err := lookupKernel(kernelName)
	if err != nil {
		return nil, err
	}
	return &Gemm{kern: k, threads: threads, directPanels: directPanels}, nil
}

// Kernel names the micro-kernel in use and its tile, e.g. "avx2 6x16".
func (g *Gemm) Kernel() string { return fmt.Sprintf("%s %dx%d", g.kern.name, g.kern.mr, g.kern.nr) }

// Threads reports the number of goroutines a call may use.
func (g *Gemm) Threads() int { return g.threads }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(X) is X or its transpose. op(A) is m x k, op(B) is k x n and C is m x n;
// lda, ldb and ldc are the row strides of A, B and C as stored. As in BLAS,
// C is not read when beta is 0. Slices too short for the shapes and strides are
// an error; nothing is written then.
func (g *Gemm) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	return g.SgemmStrided(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1)
}

// SgemmStrided computes batch products: for each i < batch it does Sgemm on
// the matrices that start at a[i*strideA:], b[i*strideB:] and c[i*strideC:].
// A stride of 0 shares one matrix across the batch (not allowed for C when
// batch > 1).
func (g *Gemm) SgemmStrided(transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda, strideA int, b []float32, ldb, strideB int,
	beta float32, c []float32, ldc, strideC int, batch int) error {
	if err := Check(transA, transB, m, n, k, len(a), lda, strideA, len(b), ldb, strideB, len(c), ldc, strideC, batch); err != nil {
		return err
	}
	if m == 0 || n == 0 || batch == 0 {
		return nil
	}
	flops := 2 * m * n * k
	threads := g.threads
	if flops < smallFlops {
		threads = 1
	}
	if batch > 1 && threads > 1 && flops < 2*128*128*128 {
		// Many small products: one goroutine per share of the batch.
		parallelFor(min(threads, batch), batch, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				g.one(1, transA, transB, m, n, k, alpha, from(a, i*strideA), lda, from(b, i*strideB), ldb, beta, from(c, i*strideC), ldc)
			}
		})
		return nil
	}
	for i := 0; i < batch; i++ {
		g.one(threads, transA, transB, m, n, k, alpha, from(a, i*strideA), lda, from(b, i*strideB), ldb, beta, from(c, i*strideC), ldc)
	}
	return nil
}

// smallFlops is the size below which a product runs on one goroutine.
const smallFlops = 2 * 48 * 48 * 48

// Check validates the shapes, strides and slice lengths of a (strided) SGEMM
// call and returns an error that says which operand is wrong. It is exported
// so that other implementations behind the same call validate identically.
func Check(transA, transB bool, m, n, k int, lenA, lda, strideA, lenB, ldb, strideB, lenC, ldc, strideC, batch int) error {
	if m < 0 || n < 0 || k < 0 || batch < 0 {
		return fmt.Errorf("gemm: negative size m=%d n=%d k=%d batch=%d", m, n, k, batch)
	}
	if strideA < 0 || strideB < 0 || strideC < 0 {
		return fmt.Errorf("gemm: negative batch stride (%d, %d, %d)", strideA, strideB, strideC)
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if err := checkMatrix("A", ar, ac, lenA, lda, strideA, batch); err != nil {
		return err
	}
	if err := checkMatrix("B", br, bc, lenB, ldb, strideB, batch); err != nil {
		return err
	}
	if err := checkMatrix("C", m, n, lenC, ldc, strideC, batch); err != nil {
		return err
	}
	if batch > 1 && strideC == 0 && m > 0 && n > 0 {
		return fmt.Errorf("gemm: C batch stride is 0 with batch %d: the products would overwrite each other", batch)
	}
	return nil
}

func checkMatrix(name string, rows, cols, length, ld, stride, batch int) error {
	if ld < max(cols, 1) {
		return fmt.Errorf("gemm: %s is %dx%d but its leading dimension is %d, want at least %d", name, rows, cols, ld, max(cols, 1))
	}
	if rows == 0 || cols == 0 || batch == 0 {
		return nil
	}
	need := (batch-1)*stride + (rows-1)*ld + cols
	if length < need {
		return fmt.Errorf("gemm: %s needs %d elements (%d batches of %dx%d, ld %d, stride %d), slice has %d",
			name, need, batch, rows, cols, ld, stride, length)
	}
	return nil
}

// one computes a single product with up to threads goroutines.
func (g *Gemm) one(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if k == 0 || alpha == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	kr := g.kern
	mr, nr := kr.mr, kr.nr
	kc0, mc0, nc0 := kr.kc, kr.mc, kr.nc

	bpBuf := g.bufsB.get(min(kc0, k) * roundUp(min(nc0, n), nr))
	defer g.bufsB.put(bpBuf)
	bp := *bpBuf

	for jc := 0; jc < n; jc += nc0 {
		nc := min(nc0, n-jc)
		tm, tn := split(threads, ceilDiv(m, mr), ceilDiv(nc, nr))
		for pc := 0; pc < k; pc += kc0 {
			kc := min(kc0, k-pc)
			bt := beta
			if pc > 0 {
				bt = 1
			}
			panels := ceilDiv(nc, nr)
			parallelFor(min(tm*tn, panels), panels, func(lo, hi int) {
				for jp := lo; jp < hi; jp++ {
					packB(bp[jp*kc*nr:(jp+1)*kc*nr], b, ldb, transB, pc, kc, jc+jp*nr, min(nr, nc-jp*nr), nr)
				}
			})
			parallelFor(tm*tn, tm*tn, func(lo, hi int) {
				for w := lo; w < hi; w++ {
					wm, wn := w/tn, w%tn
					i0, i1 := share(ceilDiv(m, mr), tm, wm)
					j0, j1 := share(panels, tn, wn)
					g.macro(transA, m, kc, alpha, a, lda, pc, bp, bt, c, ldc, i0*mr, min(i1*mr, m), jc, j0, j1, nc, mc0)
				}
			})
		}
	}
}

// macro runs the micro-kernel over rows [i0,i1) of C and B panels [j0,j1) of
// the packed block bp, whose first column is C's column jc.
func (g *Gemm) macro(transA bool, m, kc int, alpha float32, a []float32, lda, pc int, bp []float32, beta float32, c []float32, ldc int, i0, i1, jc, j0, j1, nc, mc0 int) {
	if i0 >= i1 || j0 >= j1 {
		return
	}
	kr := g.kern
	mr, nr := kr.mr, kr.nr
	// Packing A pays when each of its panels meets many panels of B; for a
	// few (LoRA's rank-r products, matrix-vector-like shapes) the kernel
	// reads A where it lies, and only a ragged last panel is packed.
	direct := !transA && kr.rowA != nil && j1-j0 <= g.directPanels
	apBuf := g.bufsA.get(roundUp(min(mc0, i1-i0), mr)*kc + mr*nr)
	defer g.bufsA.put(apBuf)
	ap := (*apBuf)[:len(*apBuf)-mr*nr]
	tmp := (*apBuf)[len(*apBuf)-mr*nr:]
	for ic := i0; ic < i1; ic += mc0 {
		mc := min(mc0, i1-ic)
		full := mc / mr * mr // rows in whole panels
		switch {
		case !direct:
			packA(ap, a, lda, transA, ic, mc, pc, kc, mr)
		case full < mc:
			packA(ap[full*kc:], a, lda, false, ic+full, mc-full, pc, kc, mr)
		}
		for jp := j0; jp < j1; jp++ {
			col := jc + jp*nr
			cols := min(nr, jc+nc-col)
			bpan := &bp[jp*kc*nr]
			for ir := 0; ir < mc; ir += mr {
				rows := min(mr, mc-ir)
				ci := (ic+ir)*ldc + col
				if rows == mr && cols == nr {
					if direct {
						kr.rowA(kc, &a[(ic+ir)*lda+pc], lda, bpan, &c[ci], ldc, alpha, beta)
					} else {
						kr.fn(kc, &ap[ir*kc], bpan, &c[ci], ldc, alpha, beta)
					}
					continue
				}
				// A ragged tile: compute the whole tile into tmp, copy what fits.
				if direct && rows == mr {
					kr.rowA(kc, &a[(ic+ir)*lda+pc], lda, bpan, &tmp[0], nr, alpha, 0)
				} else {
					kr.fn(kc, &ap[ir*kc], bpan, &tmp[0], nr, alpha, 0)
				}
				for r := 0; r < rows; r++ {
					dst := c[ci+r*ldc : ci+r*ldc+cols]
					src := tmp[r*nr : r*nr+cols]
					if beta == 0 {
						copy(dst, src)
						continue
					}
					for j := range dst {
						dst[j] = beta*dst[j] + src[j]
					}
				}
			}
		}
	}
}

// directPanels is the default for Gemm.directPanels.
const directPanels = 2

// scale sets C = beta*C, or C = 0 without reading C when beta is 0.
func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// packA copies rows [i0,i0+mc) and columns [p0,p0+kc) of op(A) into dst as
// ceil(mc/mr) panels; panel q holds, for each p, the mr values of rows
// q*mr..q*mr+mr-1 (zero past row mc).
func packA(dst, a []float32, lda int, trans bool, i0, mc, p0, kc, mr int) {
	for q := 0; q*mr < mc; q++ {
		pan := dst[q*mr*kc : (q+1)*mr*kc]
		rows := min(mr, mc-q*mr)
		if trans {
			// op(A)(i,p) = a[p*lda+i]: each p reads a contiguous run of rows.
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i0+q*mr:]
				d := pan[p*mr : p*mr+mr]
				copy(d[:rows], src[:rows])
				clear(d[rows:])
			}
			continue
		}
		for r := 0; r < rows; r++ {
			src := a[(i0+q*mr+r)*lda+p0:]
			src = src[:kc]
			for p, x := range src {
				pan[p*mr+r] = x
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				pan[p*mr+r] = 0
			}
		}
	}
}

// packB copies rows [p0,p0+kc) and columns [j0,j0+cols) of op(B) into dst,
// one panel of kc rows of nr values (zero past column cols).
func packB(dst, b []float32, ldb int, trans bool, p0, kc, j0, cols, nr int) {
	if !trans {
		for p := 0; p < kc; p++ {
			d := dst[p*nr : p*nr+nr]
			copy(d[:cols], b[(p0+p)*ldb+j0:])
			clear(d[cols:])
		}
		return
	}
	// op(B)(p,j) = b[j*ldb+p]: each column j reads a contiguous run.
	for j := 0; j < cols; j++ {
		src := b[(j0+j)*ldb+p0:]
		src = src[:kc]
		for p, x := range src {
			dst[p*nr+j] = x
		}
	}
	for j := cols; j < nr; j++ {
		for p := 0; p < kc; p++ {
			dst[p*nr+j] = 0
		}
	}
}

// split chooses a grid of tm x tn workers for a block of bm x bn tiles that
// minimises the most tiles any worker gets, preferring to split rows.
func split(threads, bm, bn int) (tm, tn int) {
	tm, tn = 1, 1
	best := -1
	for t := threads; t >= 1; t-- {
		if threads%t != 0 {
			continue
		}
		u := threads / t
		if t > bm || u > bn {
			continue
		}
		cost := ceilDiv(bm, t) * ceilDiv(bn, u)
		if best < 0 || cost < best {
			best, tm, tn = cost, t, u
		}
	}
	return tm, tn
}

// share returns the half-open range of n items that worker w of t gets.
func share(n, t, w int) (lo, hi int) {
	return n * w / t, n * (w + 1) / t
}

// parallelFor calls fn on t contiguous shares of [0,n), concurrently when t > 1.
func parallelFor(t, n int, fn func(lo, hi int)) {
	if t <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < t; w++ {
		lo, hi := share(n, t, w)
		wg.Go(func() { fn(lo, hi) })
	}
	lo, hi := share(n, t, 0)
	fn(lo, hi)
	wg.Wait()
}

// freeList keeps packing buffers for reuse. Unlike a sync.Pool it never
// drops them (a pool is emptied by every garbage collection, and a goroutine
// on another P may miss a pooled buffer), so a steady stream of products
// allocates nothing. What it holds is bounded by the cache blocks: at most
// maxFree buffers of at most kc*nc floats.
type freeList struct {
	mu   sync.Mutex
	bufs []*[]float32
}

const maxFree = 8

// get returns a buffer of n floats, reused when one is large enough.
func (f *freeList) get(n int) *[]float32 {
	f.mu.Lock()
	for i, p := range f.bufs {
		if cap(*p) >= n {
			last := len(f.bufs) - 1
			f.bufs[i] = f.bufs[last]
			f.bufs = f.bufs[:last]
			f.mu.Unlock()
			*p = (*p)[:n]
			return p
		}
	}
	f.mu.Unlock()
	// Round up so that a buffer can serve later, slightly larger requests.
	s := make([]float32, n, roundUp(n, 1024))
	return &s
}

// put returns a buffer for reuse.
func (f *freeList) put(p *[]float32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bufs) < maxFree {
		f.bufs = append(f.bufs, p)
		return
	}
	// Full: keep the larger buffers.
	for i, q := range f.bufs {
		if cap(*q) < cap(*p) {
			f.bufs[i] = p
			return
		}
	}
}

// from returns s[off:], or an empty slice where off is past the end (an
// operand with no elements, such as A when k is 0).
func from(s []float32, off int) []float32 { return s[min(off, len(s)):] }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
