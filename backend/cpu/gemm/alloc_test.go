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
	// A garbage collection empties sync.Pools by design, and so does a change
	// of GOMAXPROCS (which testing.AllocsPerRun makes); keep both out of the
	// measurement so that the test sees only what the calls allocate.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
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
	for range calls {
		g.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	}
	runtime.ReadMemStats(&s)
	perCall := float64(s.TotalAlloc-before) / calls
	t.Logf("%.0f bytes in %.1f allocations per call", perCall, float64(s.Mallocs-objects)/calls)
	if perCall > 16<<10 {
		t.Errorf("%.0f bytes per %dx%dx%d product; want the packing buffers reused", perCall, n, n, n)
	}
}
