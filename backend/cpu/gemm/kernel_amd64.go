//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:noescape
func kernelAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernelAVX2RowA(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernelAVX512RowA(k int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernelAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)

// available lists the kernels this CPU runs, fastest first. The blocking
// follows the caches of the CPUs each instruction set is found on: B's kc x nr
// panel stays in a 32-48 KiB L1, A's mc x kc block in a 512 KiB-2 MiB L2.
func available() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, kernel{name: "avx512", mr: 12, nr: 32, kc: 256, mc: 192, nc: 4096, fn: kernelAVX512, rowA: kernelAVX512RowA})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernel{name: "avx2", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096, fn: kernelAVX2, rowA: kernelAVX2RowA})
	}
	return append(ks, portable...)
}
