package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// ktCrossEntropy is cross-entropy from its definition, per row of v logits:
// loss = log(sum(exp(row))) - row[t], 0 for an ignored row.
func ktCrossEntropy(x []float64, targets []int32, v int) (loss, lse []float64) {
	for i, t := range targets {
		row := x[i*v : (i+1)*v]
		var s float64
		for _, z := range row {
			s += math.Exp(z)
		}
		l := math.Log(s)
		lse = append(lse, l)
		if t == backend.IgnoreIndex {
			loss = append(loss, 0)
		} else {
			loss = append(loss, l-row[t])
		}
	}
	return loss, lse
}

// ktTargets returns n targets in [0, v), about a quarter of them ignored.
func ktTargets(r *rand.Rand, n, v int) []int32 {
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = int32(r.IntN(v))
		if r.IntN(4) == 0 {
			ts[i] = backend.IgnoreIndex
		}
	}
	return ts
}

func TestKernelCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for name, b := range ktBackends(t) {
		for _, tt := range ktTypes {
			for _, c := range []struct{ n, v int }{{1, 1}, {9, 37}, {4, 2}, {64, 1000}} {
				what := fmt.Sprintf("%s %v %dx%d", name, tt.dt, c.n, c.v)
				xv := ktRand(r, tt.dt, c.n*c.v, 3)
				ts := ktTargets(r, c.n, c.v)
				logits := ktTensor(t, b, tt.dt, xv, c.n, c.v)
				losses, _ := b.Alloc(tt.dt, c.n)
				lse, _ := b.Alloc(tt.dt, c.n)
				ktOK(t, b.CrossEntropy(losses, lse, logits, ktInts(t, b, ts, c.n)))
				wl, we := ktCrossEntropy(xv, ts, c.v)
				ktCheck(t, what+" loss", ktValues(t, losses), wl, tt.tol)
				ktCheck(t, what+" lse", ktValues(t, lse), we, tt.tol)
			}
		}
	}
}

func TestKernelCrossEntropyBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	b := ktBackend(t, 3)
	const n, v, g = 6, 11, 0.7
	xv := ktRand(r, tensor.F64, n*v, 2)
	ts := []int32{3, backend.IgnoreIndex, 0, 10, backend.IgnoreIndex, 3}
	targets := ktInts(t, b, ts, n)
	obj := func(xv []float64) float64 {
		losses, _ := b.Alloc(tensor.F64, n)
		lse, _ := b.Alloc(tensor.F64, n)
		ktOK(t, b.CrossEntropy(losses, lse, ktTensor(t, b, tensor.F64, xv, n, v), targets))
		var s float64
		for _, l := range ktValues(t, losses) {
			s += g * l
		}
		return s
	}
	want := ktGrad(xv, obj)
	for i, tg := range ts {
		if tg == backend.IgnoreIndex {
			for j := range v {
				if want[i*v+j] != 0 {
					t.Fatalf("ignored row %d has gradient %v", i, want[i*v+j])
				}
			}
		}
	}
	for _, tt := range ktTypes {
		for _, inPlace := range []bool{false, true} {
			what := fmt.Sprintf("%v in place=%v", tt.dt, inPlace)
			logits := ktTensor(t, b, tt.dt, xv, n, v)
			losses, _ := b.Alloc(tt.dt, n)
			lse, _ := b.Alloc(tt.dt, n)
			ktOK(t, b.CrossEntropy(losses, lse, logits, targets))
			dlogits := logits
			if !inPlace {
				dlogits = ktTensor(t, b, tt.dt, ktRand(r, tt.dt, n*v, 1), n, v) // overwritten
			}
			ktOK(t, b.CrossEntropyBackward(dlogits, logits, lse, targets, ktTensor(t, b, tt.dt, []float64{g}, 1)))
			tol := ktGradTol
			if tt.dt == tensor.F32 {
				tol = ktF32(1e-5)
			}
			ktCheck(t, what, ktValues(t, dlogits), want, tol)
		}
	}

	// A large in-place case across threads, against the definition.
	for name, b := range ktBackends(t) {
		const n, v = 48, 3001
		for _, tt := range ktTypes {
			xv := ktRand(r, tt.dt, n*v, 3)
			ts := ktTargets(r, n, v)
			targets := ktInts(t, b, ts, n)
			logits := ktTensor(t, b, tt.dt, xv, n, v)
			losses, _ := b.Alloc(tt.dt, n)
			lse, _ := b.Alloc(tt.dt, n)
			ktOK(t, b.CrossEntropy(losses, lse, logits, targets))
			ktOK(t, b.CrossEntropyBackward(logits, logits, lse, targets, ktTensor(t, b, tt.dt, []float64{1.5}, 1)))
			want := make([]float64, n*v)
			sm := ktSoftmax(xv, v)
			for i, tg := range ts {
				if tg == backend.IgnoreIndex {
					continue
				}
				for j := range v {
					want[i*v+j] = 1.5 * sm[i*v+j]
				}
				want[i*v+int(tg)] -= 1.5
			}
			// Measured against each row's scale: a row's softmax values are
			// tiny next to its -g at the target.
			got := ktValues(t, logits)
			tol := tt.tol
			if tt.dt == tensor.F32 {
				tol = ktF32(1e-4) // exp(x - lse) with lse rounded to float32
			}
			for i := range n {
				ktCheck(t, fmt.Sprintf("%s %v row %d", name, tt.dt, i), got[i*v:(i+1)*v], want[i*v:(i+1)*v], tol)
			}
		}
	}
}
