package cpu

import (
	"math"
	"testing"
)

// ulps is the distance in units of the last place between got and the
// float32 nearest to want.
func ulps(got float32, want float64) float64 {
	w := float32(want)
	if got == w {
		return 0
	}
	ulp := math.Nextafter32(w, float32(math.Inf(1))) - w
	if ulp == 0 || math.IsInf(float64(ulp), 0) {
		ulp = w - math.Nextafter32(w, 0)
	}
	return math.Abs(float64(got)-want) / float64(ulp)
}

func TestExpf(t *testing.T) {
	worst, at := 0.0, float32(0)
	// Every float32 from -104 to 89 at a stride that visits ~4M values.
	for bits := uint32(0); bits < 1<<31; bits += 1 << 9 {
		for _, x := range []float32{math.Float32frombits(bits), -math.Float32frombits(bits)} {
			if x > 89 || x < -104 || x != x {
				continue
			}
			want := math.Exp(float64(x))
			got := expf(x)
			if want < 1.2e-38 { // subnormal: absolute error is what matters
				if math.Abs(float64(got)-want) > 1.5e-45 {
					t.Fatalf("expf(%g) = %g, want %g", x, got, want)
				}
				continue
			}
			if u := ulps(got, want); u > worst {
				worst, at = u, x
			}
		}
	}
	t.Logf("worst error %.2f ulp at x=%g", worst, at)
	if worst > 2 {
		t.Errorf("expf error %.2f ulp at %g, want <= 2", worst, at)
	}
	for _, c := range []struct{ x, want float32 }{
		{float32(math.Inf(-1)), 0}, {float32(math.Inf(1)), float32(math.Inf(1))}, {-200, 0}, {200, float32(math.Inf(1))}, {0, 1},
	} {
		if got := expf(c.x); got != c.want {
			t.Errorf("expf(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if nan := expf(float32(math.NaN())); nan == nan {
		t.Errorf("expf(NaN) = %g, want NaN", nan)
	}
}

func BenchmarkExpf(b *testing.B) {
	xs := make([]float32, 4096)
	for i := range xs {
		xs[i] = float32(i)/256 - 8
	}
	ys := make([]float32, len(xs))
	b.Run("expf", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				ys[i] = expf(x)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(xs)), "ns/exp")
	})
	b.Run("math.Exp", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				ys[i] = float32(math.Exp(float64(x)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(xs)), "ns/exp")
	})
}

// TestRowMaxSum checks the vector max and float64 sum (where the CPU has
// them) against plain loops, at lengths around the vector width.
func TestRowMaxSum(t *testing.T) {
	for n := 1; n < 70; n++ {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i*7+n))) * 1e3
		}
		want, sum := float32(math.Inf(-1)), 0.0
		for _, v := range x {
			want = max(want, v)
			sum += float64(v)
		}
		if got := rowMax(x); got != want {
			t.Errorf("rowMax of %d: %g, want %g", n, got, want)
		}
		if got := sumF64(x); math.Abs(got-sum) > 1e-9*math.Abs(sum)+1e-9 {
			t.Errorf("sumF64 of %d: %g, want %g", n, got, sum)
		}
	}
}
