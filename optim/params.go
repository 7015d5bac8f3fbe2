// Package optim holds the optimisers (AdamW, SGD with momentum), learning
// rate schedules, gradient clipping, and the parameter set they work on:
// every trainable tensor as a named view into one contiguous value buffer,
// with its gradient a view into one contiguous gradient buffer (llm.c's
// layout), so that an optimiser step, a gradient all-reduce and a
// checkpoint are each one pass over one slice.
package optim

import (
	"fmt"
	"slices"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Spec describes one trainable tensor of a ParamSet.
type Spec struct {
	Name  string
	Shape []int
	// Group names the parameter group (its learning-rate multiplier and
	// weight decay; see Group). Tensors of one group are laid out together.
	Group string
}

// Param is one trainable tensor: its place in the buffers, and the autograd
// leaf that views it.
type Param struct {
	Spec
	Offset, Len int
	Var         *autograd.Var
}

// ParamSet is the trainable parameters of a run.
type ParamSet struct {
	b backend.Backend
	// Values and Grads are the two contiguous buffers, [N] each.
	Values, Grads *tensor.Tensor
	// Params are the tensors in buffer order: grouped, and in Spec order
	// within a group.
	Params []*Param
	byName map[string]*Param
}

// NewParamSet allocates the buffers for specs on b, in dtype (F32, or F64
// for checks), zeroed, and makes each tensor an autograd.Param viewing them.
// Names must be unique.
func NewParamSet(b backend.Backend, dtype tensor.DType, specs []Spec) (*ParamSet, error) {
	var groups []string
	for _, s := range specs {
		if !slices.Contains(groups, s.Group) {
			groups = append(groups, s.Group)
		}
	}
	ordered := make([]Spec, 0, len(specs))
	for _, g := range groups {
		for _, s := range specs {
			if s.Group == g {
				ordered = append(ordered, s)
			}
		}
	}
	total := 0
	set := &ParamSet{b: b, byName: map[string]*Param{}}
	for _, s := range ordered {
		n, err := tensor.NumElements(s.Shape)
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", s.Name, err)
		}
		if _, dup := set.byName[s.Name]; dup {
			return nil, fmt.Errorf("param %s: duplicate name", s.Name)
		}
		p := &Param{Spec: s, Offset: total, Len: n}
		set.Params = append(set.Params, p)
		set.byName[s.Name] = p
		total += n
	}
	var err error
	if set.Values, err = b.Alloc(dtype, total); err != nil {
		return nil, err
	}
	if set.Grads, err = b.Alloc(dtype, total); err != nil {
		return nil, err
	}
	for _, p := range set.Params {
		v, err := set.Values.View(p.Offset, p.Shape...)
		if err != nil {
			return nil, err
		}
		g, err := set.Grads.View(p.Offset, p.Shape...)
		if err != nil {
			return nil, err
		}
		p.Var = autograd.Param(p.Name, v, g)
	}
	return set, nil
}

// Backend is the back end the buffers live on.
func (s *ParamSet) Backend() backend.Backend { return s.b }

// Len is the number of scalar parameters.
func (s *ParamSet) Len() int { return s.Values.Len() }

// Get returns the named parameter, or nil.
func (s *ParamSet) Get(name string) *Param { return s.byName[name] }

// ZeroGrad clears the gradient buffer, before a new accumulation window.
func (s *ParamSet) ZeroGrad() error { return s.b.Fill(s.Grads, 0) }

// ranges returns the [offset, offset+len) spans of each group, in buffer
// order: one span per group, since groups are laid out together.
func (s *ParamSet) ranges() []span {
	var out []span
	for _, p := range s.Params {
		if k := len(out); k > 0 && out[k-1].group == p.Group {
			out[k-1].end = p.Offset + p.Len
			continue
		}
		out = append(out, span{group: p.Group, start: p.Offset, end: p.Offset + p.Len})
	}
	return out
}

type span struct {
	group      string
	start, end int
}
