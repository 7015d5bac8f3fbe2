package gemm

import (
	"runtime"
	"testing"
)

// TestSteadyStateAllocs checks that repeated products reuse their packing
// buffers: what a call allocates is the goroutines' bookkeeping, not memory
// proportional to the matrices.
func TestSteadyStateAllocs(t *testing.T) {
	g, err := New("", 2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	g.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) // warm the pools
	var before, after runtimeMem
	before.read()
	allocs := testing.AllocsPerRun(20, func() {
		g.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	})
	after.read()
	perCall := float64(after.bytes-before.bytes) / 21
	if perCall > 16<<10 {
		t.Errorf("%.0f bytes and %.0f allocations per %dx%dx%d product; want the packing buffers reused", perCall, allocs, n, n, n)
	}
}

type runtimeMem struct{ bytes uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.bytes = s.TotalAlloc
}
