// Package cpu is whet's CPU back end: tensors in host memory, GEMM through
// OpenBLAS when the library is installed and through whet's own pure-Go GEMM
// (package gemm) otherwise.
//
// Importing the package registers it with package backend under the name
// "cpu". Its behaviour follows the environment:
//
//	WHET_BLAS=auto|openblas|go   which GEMM to use (auto: OpenBLAS if found)
//	WHET_NUM_THREADS=N           threads for GEMM (default: all cores)
//	WHET_OPENBLAS_LIB=PATH       load OpenBLAS from PATH only
//	WHET_GEMM_KERNEL=NAME        pure-Go micro-kernel (avx512, avx2, go)
package cpu

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu/gemm"
	"github.com/whet-ai/whet/backend/cpu/openblas"
	"github.com/whet-ai/whet/tensor"
)

// Environment variables read by OptionsFromEnv.
const (
	EnvBLAS    = "WHET_BLAS"
	EnvThreads = "WHET_NUM_THREADS"
	EnvKernel  = "WHET_GEMM_KERNEL"
)

// BLAS choices for Options.BLAS.
const (
	BLASAuto     = "auto"     // OpenBLAS when it loads, else pure Go
	BLASOpenBLAS = "openblas" // OpenBLAS or an error
	BLASGo       = "go"       // pure Go
)

// Options configures a CPU back end.
type Options struct {
	BLAS    string // BLASAuto (default when empty), BLASOpenBLAS or BLASGo
	Threads int    // GEMM threads; 0 means all cores
	Kernel  string // pure-Go micro-kernel; empty picks the fastest
}

// OptionsFromEnv reads Options from WHET_BLAS, WHET_NUM_THREADS and
// WHET_GEMM_KERNEL. A malformed value is an error naming the variable.
func OptionsFromEnv() (Options, error) {
	opt := Options{BLAS: os.Getenv(EnvBLAS), Kernel: os.Getenv(EnvKernel)}
	if s := os.Getenv(EnvThreads); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Options{}, fmt.Errorf("%s=%q: want a whole number of threads, at least 1", EnvThreads, s)
		}
		opt.Threads = n
	}
	return opt, nil
}

func init() {
	backend.Register("cpu", 0, func() (backend.Backend, error) {
		opt, err := OptionsFromEnv()
		if err != nil {
			return nil, err
		}
		return New(opt)
	})
}

// Backend is the CPU back end. It is safe for concurrent use.
type Backend struct {
	threads int
	gemm    *gemm.Gemm
	serial  *gemm.Gemm    // one goroutine: for products inside parallel kernels
	blas    *openblas.Lib // nil when GEMM runs in Go
	note    string        // why OpenBLAS is not in use, for Describe
}

// New starts a CPU back end.
func New(opt Options) (*Backend, error) {
	threads := opt.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	g, err := gemm.New(opt.Kernel, threads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvKernel, err)
	}
	serial, err := gemm.New(opt.Kernel, 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvKernel, err)
	}
	b := &Backend{threads: threads, gemm: g, serial: serial}
	switch opt.BLAS {
	case "", BLASAuto:
		lib, err := openblas.Load()
		if err != nil {
			b.note = "OpenBLAS not found"
			break
		}
		b.useOpenBLAS(lib)
	case BLASOpenBLAS:
		lib, err := openblas.Load()
		if err != nil {
			return nil, fmt.Errorf("%s=openblas: %w", EnvBLAS, err)
		}
		b.useOpenBLAS(lib)
	case BLASGo:
		b.note = EnvBLAS + "=go"
	default:
		return nil, fmt.Errorf("%s=%q: want auto, openblas or go", EnvBLAS, opt.BLAS)
	}
	return b, nil
}

func (b *Backend) useOpenBLAS(lib *openblas.Lib) {
	lib.SetNumThreads(b.threads)
	b.blas = lib
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Describe says which GEMM runs and on how many threads, e.g.
// "cpu: OpenBLAS 0.3.21 (Haswell), 2 threads".
func (b *Backend) Describe() string {
	if b.blas != nil {
		return fmt.Sprintf("cpu: OpenBLAS %s (%s), %d threads", b.blas.Version(), b.blas.CoreName(), b.threads)
	}
	return fmt.Sprintf("cpu: pure-Go GEMM (%s), %d threads (%s)", b.gemm.Kernel(), b.threads, b.note)
}

// BLAS names the GEMM in use: "openblas" or "go".
func (b *Backend) BLAS() string {
	if b.blas != nil {
		return BLASOpenBLAS
	}
	return BLASGo
}

// Threads is the number of threads GEMM uses.
func (b *Backend) Threads() int { return b.threads }

// Synchronize returns nil: CPU work is done when its call returns.
func (b *Backend) Synchronize() error { return nil }

// storage is host memory aligned to a cache line.
type storage struct{ buf []byte }

func (s *storage) Len() int        { return len(s.buf) }
func (s *storage) Backend() string { return "cpu" }

// align is the alignment of every allocation: a cache line, and a whole
// AVX-512 register.
const align = 64

// Alloc returns a zeroed tensor in host memory.
func (b *Backend) Alloc(dtype tensor.DType, shape ...int) (*tensor.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("cpu: alloc of invalid dtype %v", dtype)
	}
	size := n * dtype.Size()
	raw := make([]byte, size+align)
	off := int(-uintptr(unsafe.Pointer(&raw[0])) & (align - 1))
	return tensor.New(&storage{buf: raw[off : off+size : off+size]}, dtype, 0, shape...)
}

// Bytes returns the host memory of a CPU tensor's elements. Writing to it
// writes the tensor.
func Bytes(t *tensor.Tensor) ([]byte, error) {
	s, ok := t.Storage().(*storage)
	if !ok {
		return nil, fmt.Errorf("cpu: tensor %v is not in CPU memory", t)
	}
	sz := t.DType().Size()
	return s.buf[t.Offset()*sz : (t.Offset()+t.Len())*sz], nil
}

// Float32s returns the elements of a CPU F32 tensor as a slice that aliases
// the tensor's memory.
func Float32s(t *tensor.Tensor) ([]float32, error) {
	if t.DType() != tensor.F32 {
		return nil, fmt.Errorf("cpu: tensor %v is not f32", t)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), len(raw)/4), nil
}

// CopyFromHost fills dst with src, the raw bytes of dst's dtype.
func (b *Backend) CopyFromHost(dst *tensor.Tensor, src []byte) error {
	d, err := Bytes(dst)
	if err != nil {
		return err
	}
	if len(src) != len(d) {
		return fmt.Errorf("cpu: copy of %d bytes into %v, which holds %d", len(src), dst, len(d))
	}
	copy(d, src)
	return nil
}

// CopyToHost copies src's elements, as raw bytes, into dst.
func (b *Backend) CopyToHost(dst []byte, src *tensor.Tensor) error {
	s, err := Bytes(src)
	if err != nil {
		return err
	}
	if len(dst) != len(s) {
		return fmt.Errorf("cpu: copy of %v (%d bytes) into %d bytes", src, len(s), len(dst))
	}
	copy(dst, s)
	return nil
}

// Copy copies src's elements into dst.
func (b *Backend) Copy(dst, src *tensor.Tensor) error {
	if dst.DType() != src.DType() || dst.Len() != src.Len() {
		return fmt.Errorf("cpu: copy %v into %v: dtype or size differs", src, dst)
	}
	d, err := Bytes(dst)
	if err != nil {
		return err
	}
	s, err := Bytes(src)
	if err != nil {
		return err
	}
	copy(d, s)
	return nil
}

// Gemm computes C = Alpha*op(A)*op(B) + Beta*C on F32 tensors, or on F64
// tensors (all three of one dtype). F64 products run in a plain parallel Go
// loop: whet uses them to check gradients, not to train.
func (b *Backend) Gemm(g *backend.Gemm) error {
	if err := g.Validate(tensor.F32, tensor.F64); err != nil {
		return err
	}
	if g.A.T.DType() != g.C.T.DType() || g.B.T.DType() != g.C.T.DType() {
		return fmt.Errorf("gemm: operands %v, %v and %v differ in dtype", g.A.T, g.B.T, g.C.T)
	}
	if g.C.T.DType() == tensor.F64 {
		return b.dgemm(g)
	}
	var ops [3][]float32
	for i, m := range []backend.Matrix{g.A, g.B, g.C} {
		s, err := Float32s(m.T)
		if err != nil {
			return fmt.Errorf("gemm: %w", err)
		}
		ops[i] = s[m.Offset:]
	}
	a, bm, c := ops[0], ops[1], ops[2]
	alpha, beta := float32(g.Alpha), float32(g.Beta)
	batch := g.BatchCount()
	// Degenerate products, and sizes past OpenBLAS's 32-bit integers, run in Go.
	if b.blas == nil || g.M == 0 || g.N == 0 || g.K == 0 || max(g.M, g.N, g.K, g.A.LD, g.B.LD, g.C.LD) > math.MaxInt32 {
		return b.gemm.SgemmStrided(g.TransA, g.TransB, g.M, g.N, g.K, alpha,
			a, g.A.LD, g.A.Stride, bm, g.B.LD, g.B.Stride, beta, c, g.C.LD, g.C.Stride, batch)
	}
	if err := gemm.Check(g.TransA, g.TransB, g.M, g.N, g.K, len(a), g.A.LD, g.A.Stride,
		len(bm), g.B.LD, g.B.Stride, len(c), g.C.LD, g.C.Stride, batch); err != nil {
		return err
	}
	for i := 0; i < batch; i++ {
		b.blas.Sgemm(g.TransA, g.TransB, g.M, g.N, g.K, alpha, &a[i*g.A.Stride], g.A.LD,
			&bm[i*g.B.Stride], g.B.LD, beta, &c[i*g.C.Stride], g.C.LD)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(bm)
	runtime.KeepAlive(c)
	return nil
}

var _ backend.Backend = (*Backend)(nil)
