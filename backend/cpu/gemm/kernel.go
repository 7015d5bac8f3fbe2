package gemm

import (
	"fmt"
	"strings"
	"unsafe"
)

// kernelFunc computes C[0:mr, 0:nr] = alpha*A*B + beta*C, where a points to a
// packed panel of k columns of mr values, b to a packed panel of k rows of nr
// values, and c to a row-major tile with leading dimension ldc. It must not
// read C when beta is 0.
type kernelFunc func(k int, a, b, c *float32, ldc int, alpha, beta float32)

// kernel is a micro-kernel with its tile and the cache blocking it is tuned for.
type kernel struct {
	name       string
	mr, nr     int // register tile
	kc, mc, nc int // cache blocks: kc x nr of B in L1, mc x kc of A in L2, kc x nc of B in L3
	fn         kernelFunc
	rowA       rowAFunc // reads A unpacked; nil where the kernel has no such variant
}

// rowAFunc is kernelFunc reading A where it lies: a points at a row-major
// mr x k block of A with leading dimension lda.
type rowAFunc func(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

// portable kernels exist everywhere; the amd64 file adds the assembly ones.
var portable = []kernel{
	{name: "go", mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048, fn: kernelGo4x4},
}

// Kernels lists the micro-kernels that this CPU can run, fastest first.
func Kernels() []string {
	var names []string
	for _, k := range available() {
		names = append(names, k.name)
	}
	return names
}

func lookupKernel(name string) (kernel, error) {
	ks := available()
	if name == "" {
		return ks[0], nil
	}
	for _, k := range ks {
		if k.name == name {
			return k, nil
		}
	}
	return kernel{}, fmt.Errorf("gemm: kernel %q is not available on this CPU (have %s)", name, strings.Join(Kernels(), ", "))
}

// genericKernel returns a portable kernel for any tile, used to test the
// blocking logic with the tiles of kernels this CPU cannot run.
func genericKernel(mr, nr, kc, mc, nc int) kernel {
	fn := func(k int, a, b, c *float32, ldc int, alpha, beta float32) {
		as := unsafe.Slice(a, k*mr)
		bs := unsafe.Slice(b, k*nr)
		cs := unsafe.Slice(c, (mr-1)*ldc+nr)
		acc := make([]float32, mr*nr)
		for p := 0; p < k; p++ {
			for i := 0; i < mr; i++ {
				ai := as[p*mr+i]
				for j := 0; j < nr; j++ {
					acc[i*nr+j] += ai * bs[p*nr+j]
				}
			}
		}
		for i := 0; i < mr; i++ {
			for j := 0; j < nr; j++ {
				v := alpha * acc[i*nr+j]
				if beta != 0 {
					v += beta * cs[i*ldc+j]
				}
				cs[i*ldc+j] = v
			}
		}
	}
	rowA := func(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32) {
		as := unsafe.Slice(a, (mr-1)*lda+k)
		packed := make([]float32, mr*k)
		for i := 0; i < mr; i++ {
			for p := 0; p < k; p++ {
				packed[p*mr+i] = as[i*lda+p]
			}
		}
		fn(k, &packed[0], b, c, ldc, alpha, beta)
	}
	return kernel{name: fmt.Sprintf("generic%dx%d", mr, nr), mr: mr, nr: nr, kc: kc, mc: mc, nc: nc, fn: fn, rowA: rowA}
}

// kernelGo4x4 is the portable micro-kernel: a 4x4 tile held in 16 locals.
func kernelGo4x4(k int, a, b, c *float32, ldc int, alpha, beta float32) {
	as := unsafe.Slice(a, 4*k)
	bs := unsafe.Slice(b, 4*k)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < k; p++ {
		ap := as[4*p : 4*p+4 : 4*p+4]
		bp := bs[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := unsafe.Slice(c, 3*ldc+4)
	rows := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	for i := range rows {
		row := cs[i*ldc : i*ldc+4 : i*ldc+4]
		for j, v := range rows[i] {
			if beta == 0 {
				row[j] = alpha * v
			} else {
				row[j] = alpha*v + beta*row[j]
			}
		}
	}
}
