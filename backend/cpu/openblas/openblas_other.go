//go:build !(darwin || netbsd || (freebsd && cgo) || (linux && (cgo || !s390x)))

// Package openblas is a small binding to OpenBLAS's single-precision GEMM,
// loaded at run time. On this platform run-time loading is not supported and
// [Load] always fails.
package openblas

import (
	"fmt"
	"runtime"
)

// EnvLib is the environment variable that, when set to a non-empty value,
// names the only OpenBLAS library file [Load] tries.
const EnvLib = "WHET_OPENBLAS_LIB"

// Lib is a loaded OpenBLAS library. On this platform none can be loaded.
type Lib struct{}

// Load always fails on this platform.
func Load() (*Lib, error) {
	return nil, fmt.Errorf("openblas: loading OpenBLAS at run time is not supported on %s/%s", runtime.GOOS, runtime.GOARCH)
}

// Path returns "" on this platform.
func (l *Lib) Path() string { return "" }

// Config returns "" on this platform.
func (l *Lib) Config() string { return "" }

// CoreName returns "" on this platform.
func (l *Lib) CoreName() string { return "" }

// Version returns "" on this platform.
func (l *Lib) Version() string { return "" }

// SetNumThreads does nothing on this platform.
func (l *Lib) SetNumThreads(n int) {}

// NumThreads returns 0 on this platform.
func (l *Lib) NumThreads() int { return 0 }

// Sgemm panics on this platform: no Lib can be loaded.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
	panic("openblas: Sgemm is not supported on " + runtime.GOOS + "/" + runtime.GOARCH)
}
