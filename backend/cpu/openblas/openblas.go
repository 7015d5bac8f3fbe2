//go:build darwin || netbsd || (freebsd && cgo) || (linux && (cgo || !s390x))

// Package openblas is a small binding to OpenBLAS's single-precision GEMM,
// loaded at run time with github.com/ebitengine/purego, so that the program
// builds with CGO_ENABLED=0 and runs (without the fast path) on machines where
// OpenBLAS is not installed.
//
// Use [Load] once and cache the returned [*Lib]; every method is safe for
// concurrent use. The library is never unloaded.
package openblas

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvLib is the environment variable that, when set to a non-empty value,
// names the only OpenBLAS library file [Load] tries.
const EnvLib = "WHET_OPENBLAS_LIB"

// installHint says how to get OpenBLAS; it ends every "not found" error.
const installHint = "install OpenBLAS (Debian/Ubuntu: apt-get install libopenblas0-pthread; " +
	"Fedora: dnf install openblas-threads; Arch: pacman -S openblas; macOS: brew install openblas)"

// Lib is a loaded OpenBLAS library.
//
// A Lib is created by [Load] and is safe for concurrent use. It holds the
// dlopen handle for the life of the process; there is no Close, because
// unloading OpenBLAS while its worker threads exist is not safe.
type Lib struct {
	handle uintptr
	path   string

	config   string
	coreName string
	version  string
	ilp64    bool // built with INTERFACE64 (64-bit BLAS integers)

	sgemm      uintptr // Fortran sgemm_: every argument by pointer
	cblasSgemm uintptr // cblas_sgemm: checked at load, used by the tests
	setThreads uintptr // void openblas_set_num_threads(int)
	getThreads uintptr // int openblas_get_num_threads(void)
}

// Load finds and opens OpenBLAS.
//
// If the environment variable WHET_OPENBLAS_LIB is set (non-empty), only that
// path is tried. Otherwise Load tries the usual sonames (resolved through the
// dynamic loader's search path) and then the usual Debian/Ubuntu, Fedora,
// Arch, Homebrew and /usr/local locations for the running GOOS/GOARCH, and
// keeps the first one that loads and really is OpenBLAS: it must export
// cblas_sgemm, sgemm_, openblas_get_config, openblas_get_corename,
// openblas_set_num_threads and openblas_get_num_threads. A generic BLAS such
// as the reference libblas.so.3 is rejected and the next candidate is tried.
//
// When nothing usable loads, the error names every path tried with the reason
// it failed, and says how to install OpenBLAS.
//
// Load does not cache: each call opens the library again (dlopen reference
// counting makes that cheap) and returns a new *Lib. Callers should call it
// once and keep the result.
func Load() (*Lib, error) {
	if p := os.Getenv(EnvLib); p != "" {
		l, err := open(p)
		if err != nil {
			return nil, fmt.Errorf("openblas: loading %s=%s: %w (point it at libopenblas, unset it to search the usual locations, or %s)",
				EnvLib, p, err, installHint)
		}
		return l, nil
	}
	return loadFirst(candidates())
}

// loadFirst returns the first of cands that loads and is OpenBLAS, or an
// error naming every candidate with the reason it failed.
func loadFirst(cands []string) (*Lib, error) {
	fails := make([]string, 0, len(cands))
	for _, p := range cands {
		l, err := open(p)
		if err == nil {
			return l, nil
		}
		fails = append(fails, p+": "+err.Error())
	}
	return nil, fmt.Errorf("openblas: no usable OpenBLAS library found (tried %s); %s, or set %s to its full path",
		strings.Join(fails, "; "), installHint, EnvLib)
}

// candidates lists the library names and paths Load tries, best first.
func candidates() []string {
	switch runtime.GOOS {
	case "darwin":
		return []string{
			"libopenblas.dylib",
			"libopenblas.0.dylib",
			"/opt/homebrew/opt/openblas/lib/libopenblas.dylib", // Homebrew, Apple silicon
			"/usr/local/opt/openblas/lib/libopenblas.dylib",    // Homebrew, Intel
			"/opt/local/lib/libopenblas.dylib",                 // MacPorts
			"/usr/local/lib/libopenblas.dylib",
			"/opt/OpenBLAS/lib/libopenblas.dylib", // OpenBLAS's default "make install" prefix
		}
	}
	// Sonames first, so the loader's search path (LD_LIBRARY_PATH, ld.so.cache,
	// Debian's alternatives) decides. Fedora's libopenblasp (pthreads) comes
	// before libopenblas.so.0, which on Fedora is the single-threaded build.
	c := []string{
		"libopenblasp.so.0", // Fedora/RHEL openblas-threads
		"libopenblas.so.0",  // Debian/Ubuntu (alternatives), Arch, Fedora openblas-serial
		"libopenblas.so",    // development symlink, source builds
		"libopenblaso.so.0", // Fedora/RHEL openblas-openmp
	}
	var triplet string
	switch runtime.GOARCH {
	case "amd64":
		triplet = "x86_64-linux-gnu"
	case "arm64":
		triplet = "aarch64-linux-gnu"
	case "ppc64le":
		triplet = "powerpc64le-linux-gnu"
	case "riscv64":
		triplet = "riscv64-linux-gnu"
	case "s390x":
		triplet = "s390x-linux-gnu"
	case "loong64":
		triplet = "loongarch64-linux-gnu"
	}
	if triplet != "" {
		d := "/usr/lib/" + triplet
		c = append(c,
			d+"/libopenblas.so.0",
			d+"/openblas-pthread/libopenblas.so.0",
			d+"/openblas-openmp/libopenblas.so.0",
			d+"/openblas-serial/libopenblas.so.0",
		)
	}
	c = append(c,
		"/usr/lib64/libopenblasp.so.0", // Fedora/RHEL/openSUSE
		"/usr/lib64/libopenblas.so.0",
		"/usr/lib64/libopenblaso.so.0",
		"/usr/lib/libopenblas.so.0", // Arch and others
		"/usr/local/lib/libopenblas.so.0",
		"/usr/local/lib/libopenblas.so",
		"/opt/OpenBLAS/lib/libopenblas.so", // OpenBLAS's default "make install" prefix
	)
	return c
}

// open dlopens path and checks that it is OpenBLAS. On failure it closes the
// handle again.
func open(path string) (*Lib, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, &dlopenError{path: path, err: err}
	}
	l, err := bind(h, path)
	if err != nil {
		_ = purego.Dlclose(h)
		return nil, err
	}
	return l, nil
}

// dlopenError is a dlopen failure. Its message drops the path that dlerror
// usually starts with, because Load's errors name the path already.
type dlopenError struct {
	path string
	err  error
}

func (e *dlopenError) Error() string {
	return "dlopen: " + strings.TrimPrefix(e.err.Error(), e.path+": ")
}

func (e *dlopenError) Unwrap() error { return e.err }

// bind resolves the symbols Lib needs from an open handle.
func bind(h uintptr, path string) (*Lib, error) {
	sym := func(name string) uintptr {
		p, err := purego.Dlsym(h, name)
		if err != nil {
			return 0
		}
		return p
	}
	cblasSgemm := sym("cblas_sgemm")
	getConfig := sym("openblas_get_config")
	if cblasSgemm == 0 || getConfig == 0 {
		var missing []string
		if cblasSgemm == 0 {
			missing = append(missing, "cblas_sgemm")
		}
		if getConfig == 0 {
			missing = append(missing, "openblas_get_config")
		}
		return nil, fmt.Errorf("loaded, but it is not OpenBLAS: it lacks %s (a generic BLAS such as the reference libblas.so.3 is not supported)",
			strings.Join(missing, " and "))
	}
	l := &Lib{
		handle:     h,
		path:       path,
		sgemm:      sym("sgemm_"),
		cblasSgemm: cblasSgemm,
		setThreads: sym("openblas_set_num_threads"),
		getThreads: sym("openblas_get_num_threads"),
	}
	getCoreName := sym("openblas_get_corename")
	for _, f := range []struct {
		name string
		p    uintptr
	}{
		{"sgemm_", l.sgemm},
		{"openblas_set_num_threads", l.setThreads},
		{"openblas_get_num_threads", l.getThreads},
		{"openblas_get_corename", getCoreName},
	} {
		if f.p == 0 {
			return nil, fmt.Errorf("OpenBLAS library lacks %s (too old or unusual build)", f.name)
		}
	}

	// Both return pointers to static strings; purego copies them into Go
	// strings. Read once here: openblas_get_config formats into a shared
	// static buffer and is not safe to call concurrently.
	var cfgFn, coreFn func() string
	purego.RegisterFunc(&cfgFn, getConfig)
	purego.RegisterFunc(&coreFn, getCoreName)
	l.config = strings.TrimSpace(cfgFn())
	l.coreName = strings.TrimSpace(coreFn())
	l.version = parseVersion(l.config)
	l.ilp64 = hasWord(l.config, "USE64BITINT")
	return l, nil
}

// parseVersion returns the version number that follows "OpenBLAS" in an
// openblas_get_config string, or "" if there is none (builds before 0.3.0 do
// not include it).
func parseVersion(config string) string {
	f := strings.Fields(config)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "OpenBLAS" {
			v := f[i+1]
			if v != "" && v[0] >= '0' && v[0] <= '9' {
				return v
			}
		}
	}
	return ""
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Path returns the name or path that was passed to dlopen and loaded, for
// example "libopenblas.so.0" when the loader's search path found it.
func (l *Lib) Path() string { return l.path }

// Config returns openblas_get_config(), read once at load, for example
// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
func (l *Lib) Config() string { return l.config }

// CoreName returns openblas_get_corename(), read once at load: the CPU kernel
// set OpenBLAS chose, for example "Haswell".
func (l *Lib) CoreName() string { return l.coreName }

// Version returns the OpenBLAS version parsed from [Lib.Config], for example
// "0.3.21", or "" if the config string does not contain one.
func (l *Lib) Version() string { return l.version }

// SetNumThreads calls openblas_set_num_threads(n). The setting is global to
// the process (shared by every Lib for the same library). OpenBLAS caps n at
// the MAX_THREADS it was built with; n < 1 leaves the choice to OpenBLAS.
func (l *Lib) SetNumThreads(n int) {
	if n > 1<<30 {
		n = 1 << 30
	}
	if n < 0 {
		n = 0
	}
	purego.SyscallN(l.setThreads, uintptr(n))
}

// NumThreads returns openblas_get_num_threads(): the number of threads
// OpenBLAS currently uses.
func (l *Lib) NumThreads() int {
	r, _, _ := purego.SyscallN(l.getThreads)
	return int(int32(r)) // C int: only the low 32 bits of the register are defined
}

// sgemmCall is the per-call argument block for sgemm_. The Fortran interface
// takes every argument by pointer, so the scalars must live in memory; the
// blocks are pooled so that Sgemm does not allocate.
type sgemmCall struct {
	args    [13]uintptr
	a, b, c unsafe.Pointer // keep the matrices reachable (and off the stack) during the call
	i32     [6]int32       // n, m, k, ldb, lda, ldc for LP64 builds
	i64     [6]int64       // the same for ILP64 (USE64BITINT) builds
	alpha   float32
	beta    float32
	transA  byte
	transB  byte
}

var sgemmPool = sync.Pool{New: func() any { return new(sgemmCall) }}

// Sgemm computes the row-major C = alpha*op(A)*op(B) + beta*C, where op(X) is
// X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. It is what
// cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
// transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta,
// c, ldc) computes.
//
// a, b and c point to the first element of each matrix; lda, ldb and ldc are
// row-major leading dimensions (the distance, in elements, between the
// starts of consecutive rows as stored: A is stored m×k, or k×m when transA,
// and likewise B). When beta is 0, C is not read, so it may hold NaNs.
//
// Nothing is validated here: the caller must check that the dimensions are
// non-negative and fit the library's integer type (int32 unless OpenBLAS was
// built with INTERFACE64), that each leading dimension is at least
// max(1, row length), and that the slices behind a, b and c are long enough.
// OpenBLAS reports invalid arguments on stderr (via xerbla) and returns
// without computing.
//
// The memory must not contain Go pointers. Sgemm keeps a, b and c reachable
// until it returns, but a caller that derives them from slices should still
// hold the slices (for example with runtime.KeepAlive) until Sgemm returns.
// Sgemm does not allocate.
//
// Internally Sgemm calls OpenBLAS's Fortran entry point sgemm_ with the
// operands swapped (row-major C is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ), exactly
// as OpenBLAS's own cblas_sgemm does for CblasRowMajor. sgemm_ takes only
// pointers, so it goes through purego.SyscallN without the per-call
// allocations of a reflect-based purego.RegisterFunc wrapper.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
	s := sgemmPool.Get().(*sgemmCall)
	s.transA, s.transB = 'N', 'N'
	if transA {
		s.transA = 'T'
	}
	if transB {
		s.transB = 'T'
	}
	s.alpha, s.beta = alpha, beta
	s.a, s.b, s.c = unsafe.Pointer(a), unsafe.Pointer(b), unsafe.Pointer(c)

	// Column-major view: C'(n×m) = op(B)'(n×k) · op(A)'(k×m).
	var ints [6]uintptr
	if l.ilp64 {
		s.i64 = [6]int64{int64(n), int64(m), int64(k), int64(ldb), int64(lda), int64(ldc)}
		for i := range ints {
			ints[i] = uintptr(unsafe.Pointer(&s.i64[i]))
		}
	} else {
		s.i32 = [6]int32{int32(n), int32(m), int32(k), int32(ldb), int32(lda), int32(ldc)}
		for i := range ints {
			ints[i] = uintptr(unsafe.Pointer(&s.i32[i]))
		}
	}
	s.args = [13]uintptr{
		uintptr(unsafe.Pointer(&s.transB)), // TRANSA (of the swapped product)
		uintptr(unsafe.Pointer(&s.transA)), // TRANSB
		ints[0],                            // M = n
		ints[1],                            // N = m
		ints[2],                            // K = k
		uintptr(unsafe.Pointer(&s.alpha)),  // ALPHA
		uintptr(s.b),                       // A = b
		ints[3],                            // LDA = ldb
		uintptr(s.a),                       // B = a
		ints[4],                            // LDB = lda
		uintptr(unsafe.Pointer(&s.beta)),   // BETA
		uintptr(s.c),                       // C
		ints[5],                            // LDC = ldc
	}
	// s is heap-allocated (pooled) and referenced by this frame until after
	// the call, so every pointer in s.args stays valid: the scalars are fields
	// of s, and the matrices are held by s.a, s.b and s.c, which also makes
	// them escape to the heap, where they cannot move.
	purego.SyscallN(l.sgemm, s.args[:]...)
	s.a, s.b, s.c = nil, nil, nil
	sgemmPool.Put(s)
}
