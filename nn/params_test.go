package nn_test

import (
	"slices"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/nn"
)

type block struct {
	Norm nn.RMSNorm    `hf:"input_layernorm"`
	Q    nn.Linear     `hf:"q_proj"`
	Skip *autograd.Var // untagged: not a weight
}

type model struct {
	Embed  *autograd.Var `hf:"model.embed_tokens.weight"`
	Layers []*block      `hf:"model.layers"`
	Head   *nn.Linear    `hf:"lm_head"`
	None   *nn.Linear    `hf:"absent"`
}

func TestParamsAndLinears(t *testing.T) {
	m := &model{Layers: []*block{{}, {}}, Head: &nn.Linear{}}
	var names []string
	for _, p := range nn.Params(m) {
		names = append(names, p.Name)
	}
	want := []string{
		"model.embed_tokens.weight",
		"model.layers.0.input_layernorm.weight", "model.layers.0.q_proj.weight", "model.layers.0.q_proj.bias",
		"model.layers.1.input_layernorm.weight", "model.layers.1.q_proj.weight", "model.layers.1.q_proj.bias",
		"lm_head.weight", "lm_head.bias",
	}
	if !slices.Equal(names, want) {
		t.Errorf("Params names:\n got %q\nwant %q", names, want)
	}
	// The pointers reach the fields.
	v := autograd.Const("x", nil)
	*nn.Params(m)[2].Var = v
	if m.Layers[0].Q.Weight != v {
		t.Error("Params' Var does not point at the field")
	}
	var lin []string
	for _, l := range nn.Linears(m) {
		lin = append(lin, l.Name)
	}
	if want := []string{"model.layers.0.q_proj", "model.layers.1.q_proj", "lm_head"}; !slices.Equal(lin, want) {
		t.Errorf("Linears: got %q, want %q", lin, want)
	}
	if nn.Linears(m)[2].Layer != m.Head {
		t.Error("Linears' layer is not the model's")
	}
}
