package gemm

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestSteadyStateAllocs checks that repeated products reuse their packing
// buffers: what a call allocates is the goroutines' bookkeeping, not memory
// proportional to the matrices (a 300x300x300 product packs about 600 KB).
func TestSteadyStateAllocs(t *testing.T) {
	// Let a collection run at any time: the buffers must survive it.
	debug.FreeOSMemory()
	g, err := New("", 2)
	if err != nil {
		t.Fatal(err)
	}
	const n, calls = 300, 20
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	g.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) // warm the pools
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	before, objects := s.TotalAlloc, s.Mallocs
	for i := range calls {
		g.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		if i%5 == 0 {
			runtime.GC()
		}
	}
	runtime.ReadMemStats(&s)
	perCall := float64(s.TotalAlloc-before) / calls
	t.Logf("%.0f bytes in %.1f allocations per call", perCall, float64(s.Mallocs-objects)/calls)
	if perCall > 16<<10 {
		t.Errorf("%.0f bytes per %dx%dx%d product; want the packing buffers reused", perCall, n, n, n)
	}
}
