package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/tensor"
)

// Benchmarks of the memory-bound row kernels on a [512, 32000] F32 tensor
// (a batch of 512 tokens over a 32000-word vocabulary). Each reports the
// bytes it must move as GB/s (the sum of the tensors read and written once
// per pass) and the time per row. The thread count is WHET_NUM_THREADS, or
// all cores. Run them with
//
//	go test ./backend/cpu -run '^$' -bench 'RMSNorm|SwiGLU|CrossEntropy|Softmax'
const ktBenchRows, ktBenchCols = 512, 32000

func ktBenchBackend(b *testing.B) *Backend {
	opt, err := OptionsFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	opt.BLAS = BLASGo
	be, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// ktBenchTensor returns a [rows, cols] F32 tensor of normal numbers of
// standard deviation sd.
func ktBenchTensor(b *testing.B, be *Backend, sd float64, shape ...int) *tensor.Tensor {
	x, err := be.Alloc(tensor.F32, shape...)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := Float32s(x)
	r := rand.New(rand.NewPCG(1, uint64(len(s))))
	for i := range s {
		s[i] = float32(r.NormFloat64() * sd)
	}
	return x
}

// ktBenchReport reports GB/s for passes of bytes each, and ns per row.
func ktBenchReport(b *testing.B, bytes int) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(bytes)/ns, "GB/s")
	b.ReportMetric(ns/ktBenchRows, "ns/row")
}

func BenchmarkRMSNorm(b *testing.B) {
	be := ktBenchBackend(b)
	x, w, dy := ktBenchTensor(b, be, 1, ktBenchRows, ktBenchCols), ktBenchTensor(b, be, 1, ktBenchCols), ktBenchTensor(b, be, 1, ktBenchRows, ktBenchCols)
	y := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	dx := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	dw := ktBenchTensor(b, be, 0, ktBenchCols)
	rstd := ktBenchTensor(b, be, 0, ktBenchRows)
	b.Run("fwd+bwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.RMSNorm(y, rstd, x, w, 1e-6); err != nil {
				b.Fatal(err)
			}
			if err := be.RMSNormBackward(dx, dw, x, w, rstd, dy); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 5*4*ktBenchRows*ktBenchCols) // x -> y; x, dy -> dx
	})
}

func BenchmarkSwiGLU(b *testing.B) {
	be := ktBenchBackend(b)
	gate, up, dy := ktBenchTensor(b, be, 2, ktBenchRows, ktBenchCols), ktBenchTensor(b, be, 1, ktBenchRows, ktBenchCols), ktBenchTensor(b, be, 1, ktBenchRows, ktBenchCols)
	y := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	dgate := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	dup := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	b.Run("fwd+bwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.SwiGLU(y, gate, up); err != nil {
				b.Fatal(err)
			}
			if err := be.SwiGLUBackward(dgate, dup, gate, up, dy); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 8*4*ktBenchRows*ktBenchCols) // gate, up -> y; gate, up, dy -> dgate, dup
	})
}

func BenchmarkCrossEntropy(b *testing.B) {
	be := ktBenchBackend(b)
	logits := ktBenchTensor(b, be, 3, ktBenchRows, ktBenchCols)
	work := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	targets, _ := be.Alloc(tensor.I32, ktBenchRows)
	ts, _ := Int32s(targets)
	for i := range ts {
		ts[i] = int32(i * 61 % ktBenchCols)
	}
	losses := ktBenchTensor(b, be, 0, ktBenchRows)
	lse := ktBenchTensor(b, be, 0, ktBenchRows)
	dloss := ktBenchTensor(b, be, 0, 1)
	if err := be.Fill(dloss, 1.0/ktBenchRows); err != nil {
		b.Fatal(err)
	}
	b.Run("fwd+bwd", func(b *testing.B) {
		for b.Loop() {
			// The gradient overwrites the logits, so each pass starts from a
			// copy; the copy is timed apart, below, and not counted here.
			b.StopTimer()
			if err := be.Copy(work, logits); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := be.CrossEntropy(losses, lse, work, targets); err != nil {
				b.Fatal(err)
			}
			if err := be.CrossEntropyBackward(work, work, lse, targets, dloss); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 3*4*ktBenchRows*ktBenchCols) // logits read; then read and written in place
	})
	b.Run("fwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.CrossEntropy(losses, lse, logits, targets); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 4*ktBenchRows*ktBenchCols)
	})
}

func BenchmarkSoftmax(b *testing.B) {
	be := ktBenchBackend(b)
	x := ktBenchTensor(b, be, 3, ktBenchRows, ktBenchCols)
	y := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	dy := ktBenchTensor(b, be, 1, ktBenchRows, ktBenchCols)
	dx := ktBenchTensor(b, be, 0, ktBenchRows, ktBenchCols)
	b.Run("fwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.Softmax(y, x); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 2*4*ktBenchRows*ktBenchCols)
	})
	b.Run("bwd", func(b *testing.B) {
		for b.Loop() {
			if err := be.SoftmaxBackward(dx, y, dy); err != nil {
				b.Fatal(err)
			}
		}
		ktBenchReport(b, 3*4*ktBenchRows*ktBenchCols)
	})
}
