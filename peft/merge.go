package peft

import (
	"fmt"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// Merge folds every layer's adapter into its base weight and detaches it
// from the layer:
//
//	LoRA: W' = W + scale * B A
//	DoRA: W' = (m / ||W + scale * B A||)[:, None] * (W + scale * B A)
//
// computed in the adapter's dtype (F32) on the back end: W converted, one
// GEMM with beta 1, for DoRA RowNorms and ScaleRows, then converted back to
// W's dtype into a new tensor. The original weights are kept for Unmerge,
// so until then the adapted layers hold two copies of their weights (for
// all-linear on a 7B model in bf16, about 13 GB more). Merging a merged
// adapter does nothing.
func (a *Adapter) Merge() error {
	if a.merged {
		return nil
	}
	merged := make([]*tensor.Tensor, len(a.Layers))
	for i, l := range a.Layers {
		w, err := l.mergedWeight()
		if err != nil {
			return fmt.Errorf("peft: merge %s: %w", l.Name, err)
		}
		merged[i] = w
	}
	for i, l := range a.Layers {
		l.orig = l.Linear.Weight
		l.Linear.Weight = autograd.Const(l.orig.Name(), merged[i])
		l.Linear.Adapter = nil
	}
	a.merged = true
	return nil
}

// mergedWeight returns the layer's merged weight in the base weight's
// dtype.
func (l *Layer) mergedWeight() (*tensor.Tensor, error) {
	b := l.ad.b
	w := l.Linear.Weight.Value
	dt := l.A.Value.DType()
	out, in := w.Dim(0), w.Dim(1)
	c, err := b.Alloc(dt, out, in)
	if err != nil {
		return nil, err
	}
	if err := l.combined(c); err != nil {
		return nil, err
	}
	if l.Magnitude != nil {
		s, err := b.Alloc(dt, out)
		if err != nil {
			return nil, err
		}
		if err := b.RowNorms(s, c, true); err != nil {
			return nil, err
		}
		if err := b.Mul(s, s, l.Magnitude.Value); err != nil {
			return nil, err
		}
		if err := b.ScaleRows(c, c, s); err != nil {
			return nil, err
		}
	}
	if w.DType() == dt {
		return c, nil
	}
	nw, err := b.Alloc(w.DType(), out, in)
	if err != nil {
		return nil, err
	}
	if err := b.Convert(nw, c); err != nil {
		return nil, err
	}
	return nw, nil
}

// Unmerge restores the base weights Merge replaced and attaches the adapter
// again. Unmerging an adapter that is not merged does nothing.
func (a *Adapter) Unmerge() {
	if !a.merged {
		return
	}
	for _, l := range a.Layers {
		l.Linear.Weight = l.orig
		l.orig = nil
		l.Linear.Adapter = l
	}
	a.merged = false
}

// Weight is one tensor of a model under its Hugging Face name.
type Weight struct {
	Name  string
	Value *tensor.Tensor
}

// MergedWeights merges the adapter (if it is not merged yet) and returns
// every weight of the model by Hugging Face name, in nn.Params order, the
// adapted layers' weights merged: the tensors of a merged checkpoint, each
// in its base dtype.
func (a *Adapter) MergedWeights() ([]Weight, error) {
	if err := a.Merge(); err != nil {
		return nil, err
	}
	return ModelWeights(a.model), nil
}

// ModelWeights returns every weight a model holds by Hugging Face name, in
// nn.Params order (weights a checkpoint lacks, such as absent biases, are
// left out).
func ModelWeights(model any) []Weight {
	var out []Weight
	for _, p := range nn.Params(model) {
		if v := *p.Var; v != nil && v.Value != nil {
			out = append(out, Weight{Name: p.Name, Value: v.Value})
		}
	}
	return out
}

// Detach unmerges the adapter if it is merged and removes it from its
// layers, leaving the base model as it was before Attach or Load.
func (a *Adapter) Detach() {
	a.Unmerge()
	for _, l := range a.Layers {
		if l.Linear.Adapter == l {
			l.Linear.Adapter = nil
		}
	}
}
