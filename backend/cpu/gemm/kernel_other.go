//go:build !amd64 || purego

package gemm

// available lists the kernels this CPU runs: the portable one alone.
func available() []kernel { return portable }
