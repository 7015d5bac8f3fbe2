package cpu

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu/internal/gemmtest"
	"github.com/whet-ai/whet/tensor"
)

// backends returns a CPU back end per GEMM implementation this machine has:
// pure Go with each micro-kernel, and OpenBLAS when it loads.
func backends(t testing.TB) map[string]*Backend {
	t.Helper()
	out := map[string]*Backend{}
	for _, k := range []string{"", "go"} {
		b, err := New(Options{BLAS: BLASGo, Threads: 2, Kernel: k})
		if err != nil {
			t.Fatal(err)
		}
		out["go/"+b.gemm.Kernel()] = b
	}
	if b, err := New(Options{BLAS: BLASOpenBLAS, Threads: 2}); err == nil {
		out["openblas"] = b
	} else {
		t.Logf("OpenBLAS path not tested: %v", err)
	}
	return out
}

// viaBackend runs SGEMM through the Backend interface, with the operands
// placed at an offset inside larger tensors.
func viaBackend(b *Backend) gemmtest.Func {
	return func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) error {
		const off = 3
		put := func(s []float32) (*tensor.Tensor, error) {
			return backend.FromFloat32(b, append(make([]float32, off), s...), off+len(s))
		}
		ta, err := put(a)
		if err != nil {
			return err
		}
		tb, err := put(bm)
		if err != nil {
			return err
		}
		tc, err := put(c)
		if err != nil {
			return err
		}
		err = b.Gemm(&backend.Gemm{TransA: transA, TransB: transB, M: m, N: n, K: k, Alpha: float64(alpha), Beta: float64(beta),
			A: backend.Matrix{T: ta, Offset: off, LD: lda}, B: backend.Matrix{T: tb, Offset: off, LD: ldb}, C: backend.Matrix{T: tc, Offset: off, LD: ldc}})
		if err != nil {
			return err
		}
		got, err := backend.ToFloat32(b, tc)
		if err != nil {
			return err
		}
		copy(c, got[off:])
		return nil
	}
}

func TestGemm(t *testing.T) {
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			for _, tc := range gemmtest.Cases(r, testing.Short()) {
				gemmtest.Run(t, r, tc, viaBackend(b))
			}
		})
	}
}

func TestGemmBatched(t *testing.T) {
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			const batch, m, n, k = 4, 9, 11, 13
			a := gemmtest.RandSlice(r, batch*m*k)
			bm := gemmtest.RandSlice(r, n*k) // shared across the batch, transposed
			c := gemmtest.RandSlice(r, batch*m*n)
			ta, _ := backend.FromFloat32(b, a, batch, m, k)
			tb, _ := backend.FromFloat32(b, bm, n, k)
			tc, _ := backend.FromFloat32(b, c, batch, m, n)
			err := b.Gemm(&backend.Gemm{TransB: true, M: m, N: n, K: k, Alpha: 2, Beta: -1, Batch: batch,
				A: backend.Matrix{T: ta, LD: k, Stride: m * k}, B: backend.Matrix{T: tb, LD: k}, C: backend.Matrix{T: tc, LD: n, Stride: m * n}})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := backend.ToFloat32(b, tc)
			for i := 0; i < batch; i++ {
				want, mag := gemmtest.Ref(false, true, m, n, k, 2, a[i*m*k:], k, bm, k, -1, c[i*m*n:], n)
				for j := range want {
					if d := got[i*m*n+j] - float32(want[j]); d*d > float32(1e-10*mag[j]*mag[j]) {
						t.Fatalf("batch %d element %d: got %g want %g", i, j, got[i*m*n+j], want[j])
					}
				}
			}
		})
	}
}

func TestGemmErrors(t *testing.T) {
	b, err := New(Options{BLAS: BLASGo, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := b.Alloc(tensor.F32, 4, 4)
	h, _ := b.Alloc(tensor.BF16, 4, 4)
	for _, tc := range []struct {
		name string
		g    backend.Gemm
		want string
	}{
		{"no tensor", backend.Gemm{M: 4, N: 4, K: 4, A: backend.Matrix{T: f, LD: 4}, C: backend.Matrix{T: f, LD: 4}}, "B has no tensor"},
		{"dtype", backend.Gemm{M: 4, N: 4, K: 4, A: backend.Matrix{T: f, LD: 4}, B: backend.Matrix{T: h, LD: 4}, C: backend.Matrix{T: f, LD: 4}}, "B is bf16"},
		{"too big", backend.Gemm{M: 5, N: 4, K: 4, A: backend.Matrix{T: f, LD: 4}, B: backend.Matrix{T: f, LD: 4}, C: backend.Matrix{T: f, LD: 4}}, "A needs 20 elements"},
		{"offset", backend.Gemm{M: 4, N: 4, K: 4, A: backend.Matrix{T: f, LD: 4, Offset: 1}, B: backend.Matrix{T: f, LD: 4}, C: backend.Matrix{T: f, LD: 4}}, "A needs 16 elements"},
		{"bad offset", backend.Gemm{M: 4, N: 4, K: 4, A: backend.Matrix{T: f, LD: 4, Offset: 17}, B: backend.Matrix{T: f, LD: 4}, C: backend.Matrix{T: f, LD: 4}}, "offset 17 outside"},
	} {
		err := b.Gemm(&tc.g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestAllocAndCopy(t *testing.T) {
	b, err := New(Options{BLAS: BLASGo, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.I32, tensor.I64} {
		x, err := b.Alloc(dt, 3, 5)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := Bytes(x)
		if len(raw) != 15*dt.Size() {
			t.Errorf("%v: %d bytes, want %d", dt, len(raw), 15*dt.Size())
		}
		if p := uintptr(unsafe.Pointer(&raw[0])); p%align != 0 {
			t.Errorf("%v: address %#x not aligned to %d", dt, p, align)
		}
		for i, v := range raw {
			if v != 0 {
				t.Fatalf("%v: byte %d is %d, want zeroed memory", dt, i, v)
			}
		}
		src := make([]byte, len(raw))
		for i := range src {
			src[i] = byte(i*7 + 1)
		}
		if err := b.CopyFromHost(x, src); err != nil {
			t.Fatal(err)
		}
		y, _ := b.Alloc(dt, 15)
		if err := b.Copy(y, x); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, len(src))
		if err := b.CopyToHost(back, y); err != nil {
			t.Fatal(err)
		}
		if string(back) != string(src) {
			t.Errorf("%v: round trip changed the bytes", dt)
		}
		if err := b.CopyFromHost(x, src[1:]); err == nil || !strings.Contains(err.Error(), "holds") {
			t.Errorf("%v: short copy: %v", dt, err)
		}
	}
	// A view into a flat buffer reads and writes its own elements only.
	flat, _ := backend.FromFloat32(b, []float32{0, 1, 2, 3, 4, 5, 6, 7}, 8)
	v, err := flat.View(2, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := backend.ToFloat32(b, v)
	if len(got) != 4 || got[0] != 2 || got[3] != 5 {
		t.Errorf("view elements %v, want [2 3 4 5]", got)
	}
	f16, _ := b.Alloc(tensor.F16, 2)
	if err := b.Copy(f16, v); err == nil {
		t.Error("copy between dtypes: no error")
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // substring of the error, or of Describe when ok
		ok   bool
	}{
		{map[string]string{EnvBLAS: "go", EnvThreads: "3"}, "pure-Go GEMM", true},
		{map[string]string{EnvBLAS: "go", EnvThreads: "3"}, "3 threads", true},
		{map[string]string{EnvBLAS: "mkl"}, `WHET_BLAS="mkl": want auto, openblas or go`, false},
		{map[string]string{EnvThreads: "0"}, "WHET_NUM_THREADS", false},
		{map[string]string{EnvThreads: "two"}, "WHET_NUM_THREADS", false},
		{map[string]string{EnvKernel: "sse9"}, `kernel "sse9" is not available`, false},
		{map[string]string{"WHET_OPENBLAS_LIB": "/nonexistent/libopenblas.so.0"}, "OpenBLAS not found", true},
		{map[string]string{"WHET_OPENBLAS_LIB": "/nonexistent/libopenblas.so.0", EnvBLAS: "openblas"}, "/nonexistent/libopenblas.so.0", false},
	} {
		for _, k := range []string{EnvBLAS, EnvThreads, EnvKernel, "WHET_OPENBLAS_LIB"} {
			t.Setenv(k, tc.env[k])
		}
		opt, err := OptionsFromEnv()
		var b *Backend
		if err == nil {
			b, err = New(opt)
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.ok && !strings.Contains(b.Describe(), tc.want):
			t.Errorf("%v: Describe() = %q, want it to contain %q", tc.env, b.Describe(), tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one containing %q", tc.env, err, tc.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	t.Setenv(backend.EnvBackend, "")
	t.Setenv(EnvBLAS, "go")
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "cpu" || !strings.HasPrefix(b.Describe(), "cpu: ") {
		t.Errorf("default back end %q: %q", b.Name(), b.Describe())
	}
	t.Setenv(backend.EnvBackend, "tpu")
	if _, err := backend.Default(); err == nil || !strings.Contains(err.Error(), `"tpu" is not built in (have cpu)`) {
		t.Errorf("WHET_BACKEND=tpu: %v", err)
	}
}
