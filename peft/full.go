package peft

import (
	"fmt"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/tensor"
)

// Parameter groups of full fine-tuning.
const (
	GroupDecay   = "decay"    // matrices: embeddings, projections
	GroupNoDecay = "no_decay" // vectors: norms' weights and biases
)

// FullFineTune makes every weight of model trainable: it copies each one
// (nn.Params; BF16 and F16 converted) into one F32 ParamSet, named by its
// Hugging Face name, in the group "decay" for weights of two or more
// dimensions and "no_decay" for 1-D norms and biases, and replaces the
// model's Vars with the set's parameters. A Var shared by two fields (tied
// weights) becomes one parameter.
func FullFineTune(b backend.Backend, model any) (*optim.ParamSet, error) {
	params := nn.Params(model)
	var specs []optim.Spec
	first := map[*autograd.Var]string{}
	for _, p := range params {
		v := *p.Var
		if v == nil {
			continue
		}
		if v.Value == nil {
			return nil, fmt.Errorf("peft: weight %s has no value", p.Name)
		}
		if !v.Value.DType().IsFloat() {
			return nil, fmt.Errorf("peft: weight %s is %v, not a float", p.Name, v.Value.DType())
		}
		if _, dup := first[v]; dup {
			continue
		}
		first[v] = p.Name
		group := GroupDecay
		if v.Value.Rank() < 2 {
			group = GroupNoDecay
		}
		specs = append(specs, optim.Spec{Name: p.Name, Shape: v.Value.Shape(), Group: group})
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("peft: the model has no weights")
	}
	set, err := optim.NewParamSet(b, tensor.F32, specs)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	for v, name := range first {
		dst := set.Get(name).Var.Value
		if v.Value.DType() == tensor.F32 {
			err = b.Copy(dst, v.Value)
		} else {
			err = b.Convert(dst, v.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("peft: copy weight %s: %w", name, err)
		}
	}
	for _, p := range params {
		if v := *p.Var; v != nil {
			*p.Var = set.Get(first[v]).Var
		}
	}
	return set, nil
}
