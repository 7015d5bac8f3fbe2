package autograd

import (
	"fmt"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// accumulateParam adds a parameter-style gradient with a kernel that itself
// accumulates into its output (ScatterAdd, a norm's weight gradient): a fresh
// gradient is zeroed first.
func (g *Graph) accumulateParam(v *Var, kernel func(dst *tensor.Tensor) error) error {
	return g.accumulate(v, func(dst *tensor.Tensor, acc bool) error {
		if !acc {
			if err := g.b.Fill(dst, 0); err != nil {
				return err
			}
		}
		return kernel(dst)
	})
}

// Embedding returns the rows of table ([V, D]) at ids (an I32 tensor of any
// shape), shaped [ids..., D]. A frozen table may be BF16 or F16 (rows are
// converted to F32); a trainable one gets the rows' gradients added back
// (a scatter-add: repeated ids sum).
func (g *Graph) Embedding(table *Var, ids *tensor.Tensor) *Var {
	const op = "embedding"
	if !g.ok(op, table) {
		return g.dead
	}
	ts := table.Value.Shape()
	if len(ts) != 2 {
		return g.fail(op, fmt.Errorf("table %s %v, want [vocab, dim]", table.name, ts))
	}
	if ids == nil || ids.DType() != tensor.I32 {
		return g.fail(op, fmt.Errorf("ids %v, want i32", ids))
	}
	dt := table.Value.DType()
	if dt != tensor.F64 {
		dt = tensor.F32
	}
	if err := frozenOK(table, dt); err != nil {
		return g.fail(op, err)
	}
	out, err := g.result(op, dt, append(ids.Shape(), ts[1]), table)
	if err != nil {
		return g.fail(op, err)
	}
	flat, _ := out.Value.Reshape(ids.Len(), ts[1])
	if err := g.b.Gather(flat, table.Value, ids); err != nil {
		return g.fail(op, err)
	}
	g.record(out, func(dy *tensor.Tensor) error {
		return g.accumulateParam(table, func(dst *tensor.Tensor) error {
			d, _ := dy.Reshape(ids.Len(), ts[1])
			return g.b.ScatterAdd(dst, ids, d)
		})
	})
	return out
}

// normWeight returns a norm's weight in dtype, converting a frozen BF16 or
// F16 one into a temporary; done hands it back.
func (g *Graph) normWeight(w *Var, dt tensor.DType, d int) (*tensor.Tensor, func(), error) {
	if w == nil {
		return nil, func() {}, nil
	}
	if w.Value.Len() != d {
		return nil, nil, fmt.Errorf("weight %s %v for rows of %d", w.name, w.Value.Shape(), d)
	}
	if err := frozenOK(w, dt); err != nil {
		return nil, nil, err
	}
	return g.asDType(w.Value, dt)
}

// RMSNorm returns x / sqrt(mean(x²) + eps) * w over x's last dimension; w
// may be nil. The backward pass reuses the saved 1/rms of each row.
func (g *Graph) RMSNorm(x, w *Var, eps float64) *Var {
	const op = "rmsnorm"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	dt, d := x.Value.DType(), x.Value.Dim(-1)
	rows := x.Value.Len() / max(d, 1)
	wt, done, err := g.normWeight(w, dt, d)
	if err != nil {
		return g.fail(op, err)
	}
	defer done()
	out, err := g.result(op, dt, x.Value.Shape(), x, w)
	if err != nil {
		return g.fail(op, err)
	}
	rstd, err := g.alloc(dt, rows)
	if err != nil {
		return g.fail(op, err)
	}
	x2, _ := x.Value.Reshape(rows, d)
	y2, _ := out.Value.Reshape(rows, d)
	if err := g.b.RMSNorm(y2, rstd, x2, wt, eps); err != nil {
		return g.fail(op, err)
	}
	g.use(out, x, w)
	g.record(out, func(dy *tensor.Tensor) error {
		wt, done, err := g.normWeight(w, dt, d)
		if err != nil {
			return err
		}
		defer done()
		dy2, _ := dy.Reshape(rows, d)
		if w != nil && w.requires {
			err := g.accumulateParam(w, func(dst *tensor.Tensor) error {
				return g.b.RMSNormBackward(nil, dst, x2, wt, rstd, dy2)
			})
			if err != nil {
				return err
			}
		}
		return g.accumulateInto(x, func(dst *tensor.Tensor) error {
			dx2, _ := dst.Reshape(rows, d)
			return g.b.RMSNormBackward(dx2, nil, x2, wt, rstd, dy2)
		})
	})
	return out
}

// LayerNorm returns (x - mean) / sqrt(var + eps) * w + b over x's last
// dimension; w and b may be nil.
func (g *Graph) LayerNorm(x, w, b *Var, eps float64) *Var {
	const op = "layernorm"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	dt, d := x.Value.DType(), x.Value.Dim(-1)
	rows := x.Value.Len() / max(d, 1)
	wt, wdone, err := g.normWeight(w, dt, d)
	if err != nil {
		return g.fail(op, err)
	}
	defer wdone()
	bt, bdone, err := g.normWeight(b, dt, d)
	if err != nil {
		return g.fail(op, err)
	}
	defer bdone()
	out, err := g.result(op, dt, x.Value.Shape(), x, w, b)
	if err != nil {
		return g.fail(op, err)
	}
	mean, err := g.alloc(dt, rows)
	if err != nil {
		return g.fail(op, err)
	}
	rstd, err := g.alloc(dt, rows)
	if err != nil {
		return g.fail(op, err)
	}
	x2, _ := x.Value.Reshape(rows, d)
	y2, _ := out.Value.Reshape(rows, d)
	if err := g.b.LayerNorm(y2, mean, rstd, x2, wt, bt, eps); err != nil {
		return g.fail(op, err)
	}
	g.use(out, x, w, b)
	g.record(out, func(dy *tensor.Tensor) error {
		wt, done, err := g.normWeight(w, dt, d)
		if err != nil {
			return err
		}
		defer done()
		dy2, _ := dy.Reshape(rows, d)
		if w != nil && w.requires {
			err := g.accumulateParam(w, func(dst *tensor.Tensor) error {
				return g.b.LayerNormBackward(nil, dst, nil, x2, wt, mean, rstd, dy2)
			})
			if err != nil {
				return err
			}
		}
		if b != nil && b.requires {
			err := g.accumulateParam(b, func(dst *tensor.Tensor) error {
				return g.b.LayerNormBackward(nil, nil, dst, x2, wt, mean, rstd, dy2)
			})
			if err != nil {
				return err
			}
		}
		return g.accumulateInto(x, func(dst *tensor.Tensor) error {
			dx2, _ := dst.Reshape(rows, d)
			return g.b.LayerNormBackward(dx2, nil, nil, x2, wt, mean, rstd, dy2)
		})
	})
	return out
}

// RoPE rotates x ([..., H, D]: the heads of each token) by the rotary
// embedding r at positions pos (I32, one per token, so pos.Len() is x's
// element count over H*D). Packed rows pass per-document positions that
// restart at 0.
func (g *Graph) RoPE(x *Var, pos *tensor.Tensor, r *backend.Rope) *Var {
	const op = "rope"
	if !g.ok(op, x) {
		return g.dead
	}
	if err := computeDType(x); err != nil {
		return g.fail(op, err)
	}
	if x.Value.Rank() < 2 || pos == nil {
		return g.fail(op, fmt.Errorf("input %v, want [..., heads, dim], with positions", x.Value))
	}
	h, d := x.Value.Dim(-2), x.Value.Dim(-1)
	n := x.Value.Len() / max(h*d, 1)
	if pos.Len() != n {
		return g.fail(op, fmt.Errorf("%d positions for %d tokens of %v", pos.Len(), n, x.Value))
	}
	out, err := g.result(op, x.Value.DType(), x.Value.Shape(), x)
	if err != nil {
		return g.fail(op, err)
	}
	x3, _ := x.Value.Reshape(n, h, d)
	y3, _ := out.Value.Reshape(n, h, d)
	if err := g.b.RoPE(y3, x3, pos, r, false); err != nil {
		return g.fail(op, err)
	}
	g.record(out, func(dy *tensor.Tensor) error {
		dy3, _ := dy.Reshape(n, h, d)
		if x.Grad == nil && !x.param && out.Grad == dy && out.ownsGrad() {
			// Rotate dy in place and hand it over.
			if err := g.b.RoPE(dy3, dy3, pos, r, true); err != nil {
				return err
			}
			return g.passGrad(out, x, dy)
		}
		return g.accumulateInto(x, func(dst *tensor.Tensor) error {
			dx3, _ := dst.Reshape(n, h, d)
			return g.b.RoPE(dx3, dy3, pos, r, true)
		})
	})
	return out
}

// AttentionOpts are the masks and scale of Attention.
type AttentionOpts struct {
	// Segments ([B, Tk] I32), when not nil, numbers the documents of packed
	// rows (a token attends only within its document) and marks padding with
	// -1.
	Segments *tensor.Tensor
	// Window > 0 limits each query to the Window most recent keys.
	Window int
	// Scale multiplies the scores; 0 means 1/sqrt(head dim).
	Scale float64
}

// Attention is causal scaled-dot-product attention with grouped-query heads:
// q is [B, Tq, Hq, D], k and v are [B, Tk, Hkv, D] (see
// backend.AttentionArgs), and the result is [B, Tq, Hq, D]. It is fused: no
// Tq x Tk matrix of probabilities is kept; the backward pass recomputes them
// from each query's saved log-sum-exp.
func (g *Graph) Attention(q, k, v *Var, opt AttentionOpts) *Var {
	const op = "attention"
	if !g.ok(op, q, k, v) {
		return g.dead
	}
	if err := sameDType(q, k, v); err != nil {
		return g.fail(op, err)
	}
	if q.Value.Rank() != 4 {
		return g.fail(op, fmt.Errorf("q %v, want [batch, time, heads, dim]", q.Value))
	}
	out, err := g.result(op, q.Value.DType(), q.Value.Shape(), q, k, v)
	if err != nil {
		return g.fail(op, err)
	}
	args := backend.AttentionArgs{Q: q.Value, K: k.Value, V: v.Value, Segments: opt.Segments,
		Window: opt.Window, Scale: opt.Scale, Out: out.Value}
	if out.requires {
		qs := q.Value.Shape()
		if args.LSE, err = g.alloc(q.Value.DType(), qs[0], qs[2], qs[1]); err != nil {
			return g.fail(op, err)
		}
	}
	if err := g.b.Attention(&args); err != nil {
		return g.fail(op, err)
	}
	g.use(out, q, k, v)
	g.record(out, func(dy *tensor.Tensor) error {
		return g.multiGrad([]*Var{q, k, v}, func(d []*tensor.Tensor) error {
			a := args
			a.DOut, a.DQ, a.DK, a.DV = dy, d[0], d[1], d[2]
			return g.b.AttentionBackward(&a)
		})
	})
	return out
}

// CrossEntropy returns the summed cross-entropy of logits ([..., V]) against
// targets (I32, one per row), skipping rows whose target is
// backend.IgnoreIndex (-100), and the number of rows it counted. The loss is
// a sum, not a mean, so that a trainer can normalise by the tokens of a
// whole batch across micro-batches (Backward's seed).
//
// It is fused and in place: the forward pass keeps only each row's
// log-sum-exp, and the backward pass writes the logits' gradient over the
// logits themselves when nothing else reads them, so a large vocabulary costs
// one N x V buffer, not two.
func (g *Graph) CrossEntropy(logits *Var, targets *tensor.Tensor) (loss *Var, count int) {
	const op = "cross-entropy"
	if !g.ok(op, logits) {
		return g.dead, 0
	}
	if err := computeDType(logits); err != nil {
		return g.fail(op, err), 0
	}
	dt, vocab := logits.Value.DType(), logits.Value.Dim(-1)
	rows := logits.Value.Len() / max(vocab, 1)
	if targets == nil || targets.DType() != tensor.I32 || targets.Len() != rows {
		return g.fail(op, fmt.Errorf("targets %v for %d rows of logits %v, want i32", targets, rows, logits.Value)), 0
	}
	host := make([]int32, rows)
	if err := g.b.CopyToHost(int32Bytes(host), targets); err != nil {
		return g.fail(op, err), 0
	}
	for _, t := range host {
		if t != backend.IgnoreIndex {
			count++
		}
	}
	loss, err := g.result(op, dt, []int{1}, logits)
	if err != nil {
		return g.fail(op, err), 0
	}
	losses, err := g.temp(dt, rows)
	if err != nil {
		return g.fail(op, err), 0
	}
	defer g.pool.Put(losses)
	lse, err := g.alloc(dt, rows)
	if err != nil {
		return g.fail(op, err), 0
	}
	l2, _ := logits.Value.Reshape(rows, vocab)
	if err := g.b.CrossEntropy(losses, lse, l2, targets); err != nil {
		return g.fail(op, err), 0
	}
	if err := g.b.Fill(loss.Value, 0); err != nil {
		return g.fail(op, err), 0
	}
	if err := g.b.SumRows(loss.Value, losses); err != nil {
		return g.fail(op, err), 0
	}
	g.use(loss, logits)
	g.record(loss, func(dy *tensor.Tensor) error {
		if !logits.requires {
			return nil
		}
		if logits.Grad == nil && logits.pooled && !logits.param && logits.uses == 1 {
			// Only this op reads the logits: their memory takes the gradient.
			if err := g.b.CrossEntropyBackward(l2, l2, lse, targets, dy); err != nil {
				return err
			}
			logits.Grad = logits.Value
			logits.gradNotOwned = true
			return nil
		}
		return g.accumulateInto(logits, func(dst *tensor.Tensor) error {
			d2, _ := dst.Reshape(rows, vocab)
			return g.b.CrossEntropyBackward(d2, l2, lse, targets, dy)
		})
	})
	return loss, count
}
