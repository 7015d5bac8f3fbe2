package cpu

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// checkTargets returns an error naming the first row whose target is
// neither IgnoreIndex nor in [0, v).
func checkTargets(op string, ts []int32, v int) error {
	for i, t := range ts {
		if t != backend.IgnoreIndex && (t < 0 || int(t) >= v) {
			return fmt.Errorf("cpu: %s: targets: row %d has target %d, outside [0, %d) and not IgnoreIndex (%d)",
				op, i, t, v, backend.IgnoreIndex)
		}
	}
	return nil
}

// logSumExp is log(sum(exp(r))) of a non-empty row: max + log(sum(exp(r -
// max))), the exponentials taken by expBlock in blocks (in T: expf for
// float32) and summed in float64.
func logSumExp[T Float](r []T) float64 {
	mx := rowMax(r)
	if math.IsInf(float64(mx), 0) {
		return float64(mx) // all -Inf, or +Inf somewhere
	}
	var buf [expBlockLen]T
	var sum float64
	for o := 0; o < len(r); o += expBlockLen {
		e := buf[:min(expBlockLen, len(r)-o)]
		expBlock(e, r[o:o+len(e)], 1, -mx)
		sum += sumF64(e)
	}
	return float64(mx) + math.Log(sum)
}

// CrossEntropy computes, for each row of logits ([..., V], rows over the
// last dimension) with target t (targets, I32, one per row), loss =
// logsumexp(row) - row[t] into losses, and stores logsumexp(row) in lse; a
// row whose target is IgnoreIndex gets loss 0 (and its lse all the same).
// A target outside [0, V) is an error naming the row, found before anything
// is written. losses and lse have one element per row, in any shape.
func (b *Backend) CrossEntropy(losses, lse, logits, targets *tensor.Tensor) error {
	f64, err := useF64("CrossEntropy", "logits", logits)
	if err != nil {
		return err
	}
	if f64 {
		return crossEntropy[float64](b, losses, lse, logits, targets)
	}
	return crossEntropy[float32](b, losses, lse, logits, targets)
}

func crossEntropy[T Float](b *Backend, losses, lse, logits, targets *tensor.Tensor) error {
	const op = "CrossEntropy"
	a := kargs[T]{op: op}
	n, v := a.rows("logits", logits)
	xs, ls, es, ts := a.f("logits", logits), a.f("losses", losses), a.f("lse", lse), a.i32("targets", targets)
	a.size("losses", losses, n, "logits' rows")
	a.size("lse", lse, n, "logits' rows")
	a.size("targets", targets, n, "logits' rows")
	if a.err == nil && v == 0 && n > 0 {
		a.fail("logits: tensor %v has no classes", logits)
	}
	if a.err != nil {
		return a.err
	}
	if err := checkTargets(op, ts, v); err != nil {
		return err
	}
	b.parallelFor(n, rowGrain(v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := xs[i*v : (i+1)*v]
			l := logSumExp(row)
			es[i] = T(l)
			if t := ts[i]; t == backend.IgnoreIndex {
				ls[i] = 0
			} else {
				ls[i] = T(l - float64(row[t]))
			}
		}
	})
	return nil
}

// CrossEntropyBackward sets dlogits = g * (softmax(row) - onehot(t)) for
// each row, with g the one element of dloss and softmax(row) = exp(row -
// lse) from the lse that CrossEntropy stored; ignored rows get zeros.
// dlogits may be logits itself: each element is read once, just before it
// is overwritten, so the gradient takes the logits' memory.
func (b *Backend) CrossEntropyBackward(dlogits, logits, lse, targets, dloss *tensor.Tensor) error {
	f64, err := useF64("CrossEntropyBackward", "logits", logits)
	if err != nil {
		return err
	}
	if f64 {
		return crossEntropyBackward[float64](b, dlogits, logits, lse, targets, dloss)
	}
	return crossEntropyBackward[float32](b, dlogits, logits, lse, targets, dloss)
}

func crossEntropyBackward[T Float](b *Backend, dlogits, logits, lse, targets, dloss *tensor.Tensor) error {
	const op = "CrossEntropyBackward"
	a := kargs[T]{op: op}
	n, v := a.rows("logits", logits)
	xs, ds, es := a.f("logits", logits), a.f("dlogits", dlogits), a.f("lse", lse)
	ts, gs := a.i32("targets", targets), a.f("dloss", dloss)
	a.size("dlogits", dlogits, n*v, "logits'")
	a.size("lse", lse, n, "logits' rows")
	a.size("targets", targets, n, "logits' rows")
	a.size("dloss", dloss, 1, "a scalar")
	if a.err != nil {
		return a.err
	}
	if err := checkTargets(op, ts, v); err != nil {
		return err
	}
	g := gs[0]
	b.parallelFor(n, rowGrain(v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, dr := xs[i*v:(i+1)*v], ds[i*v:(i+1)*v]
			t := ts[i]
			if t == backend.IgnoreIndex {
				clear(dr)
				continue
			}
			// In blocks, so that the scaling pass finds its block in L1.
			for o := 0; o < v; o += expBlockLen {
				db := dr[o:min(o+expBlockLen, v)]
				expBlock(db, xr[o:o+len(db)], 1, -es[i])
				for j := range db {
					db[j] *= g
				}
			}
			dr[t] -= g
		}
	})
	return nil
}
