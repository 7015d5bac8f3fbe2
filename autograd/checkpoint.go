package autograd

import (
	"fmt"
	"slices"

	"github.com/whet-ai/whet/tensor"
)

// Block is a piece of a model that Checkpoint can run twice: it computes its
// outputs from its inputs with the ops of g, which it must use for all its
// work (not a graph captured from outside). Parameters it reads are leaves
// captured as usual. Anything random in it must be derived from explicit
// seeds (Dropout's), so that the second run equals the first.
type Block func(g *Graph, inputs []*Var) []*Var

// Checkpoint runs fn on inputs keeping only the inputs and outputs: the
// block's intermediate tensors go back to the pool as soon as it returns,
// and the backward pass runs the block's forward pass again, on a graph of
// its own, to get them back. This trades one more forward pass for the
// memory of every activation inside the block (gradient checkpointing, as
// torch.utils.checkpoint). The gradients are the same as without it.
func (g *Graph) Checkpoint(fn Block, inputs ...*Var) []*Var {
	const op = "checkpoint"
	if !g.ok(op, inputs...) {
		return []*Var{g.dead}
	}
	if g.noGrad > 0 {
		return fn(g, inputs)
	}
	// First run: values only, on a child graph whose memory is handed back
	// at once, except the outputs'.
	sub := New(g.b, g.pool)
	sub.noGrad = 1
	outs := fn(sub, inputs)
	if sub.err != nil {
		sub.Release()
		return []*Var{g.fail(op, sub.err)}
	}
	results := make([]*Var, len(outs))
	keep := map[tensor.Storage]bool{}
	for i, o := range outs {
		keep[o.Value.Storage()] = true
		results[i] = &Var{Value: o.Value, name: op, pooled: o.pooled, requires: true}
	}
	for i, t := range sub.owned {
		if keep[t.Storage()] {
			g.owned = append(g.owned, t)
		} else {
			g.pool.Put(t)
		}
		sub.owned[i] = nil
	}
	sub.owned = sub.owned[:0]
	for _, in := range inputs {
		in.uses++
	}
	// The backward pass of all the outputs is one node, recorded last so
	// that it runs first, once every output's gradient is complete: it
	// recomputes, then backpropagates through the recomputation. The
	// outputs' own nodes do nothing but let the tape release gradients the
	// recomputation did not take.
	for _, r := range results {
		g.record(r, func(*tensor.Tensor) error { return nil })
	}
	g.tape = append(g.tape, node{out: results[0], always: true, backward: func(*tensor.Tensor) error {
		for _, r := range results {
			if r.Grad != nil {
				return g.recompute(fn, inputs, results)
			}
		}
		return nil
	}})
	return results
}

// recompute reruns a checkpointed block with recording on, backpropagates
// the gradients of its outputs through it, and adds the gradients of its
// inputs to the outer graph's inputs.
func (g *Graph) recompute(fn Block, inputs, results []*Var) error {
	sub := New(g.b, g.pool)
	defer sub.Release()
	// Stand-ins for the inputs: the same values, so the block's parameters
	// (outer leaves) get their gradients directly, while the inputs'
	// gradients are collected here and passed on.
	ins := make([]*Var, len(inputs))
	for i, in := range inputs {
		ins[i] = &Var{Value: in.Value, name: in.name, requires: in.requires}
	}
	outs := fn(sub, ins)
	if sub.err != nil {
		return sub.err
	}
	if len(outs) != len(results) {
		return fmt.Errorf("checkpointed block returned %d outputs on recomputation, %d before", len(outs), len(results))
	}
	var vs []*Var
	var grads []*tensor.Tensor
	for i, o := range outs {
		r := results[i]
		if r.Grad == nil || !o.requires {
			continue
		}
		vs = append(vs, o)
		grads = append(grads, r.Grad)
		if slices.Contains(results[:i], r) {
			return fmt.Errorf("checkpointed block returns one tensor twice")
		}
		r.Grad = nil
	}
	err := sub.BackwardFrom(vs, grads)
	for _, d := range grads {
		g.pool.Put(d)
	}
	if err != nil {
		return err
	}
	for i, in := range inputs {
		if !in.requires || ins[i].Grad == nil {
			continue
		}
		d := ins[i].Grad
		ins[i].Grad = nil
		if in.Grad == nil && !in.param {
			in.Grad = d // the sub-graph's tensor, from the shared pool
			continue
		}
		err := g.b.AddScaled(in.Grad, d, 1)
		g.pool.Put(d)
		if err != nil {
			return err
		}
	}
	return nil
}
