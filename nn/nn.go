// Package nn holds the layers that model definitions are built from. A layer
// is a struct whose fields are its weights (autograd leaves), tagged with
// their checkpoint names, and a Forward method that runs it on an
// autograd.Graph.
package nn

import (
	"github.com/whet-ai/whet/autograd"
)

// Linear is y = x W^T + b, with W in Hugging Face's [out, in] layout. An
// Adapter, when set, adds its own term to the output (LoRA and its
// variants): a model definition holds plain Linear layers and receives
// adapters without changing.
type Linear struct {
	Weight *autograd.Var `hf:"weight"`
	Bias   *autograd.Var `hf:"bias"` // nil when the layer has none
	// Adapter, when not nil, sees the layer's input and output.
	Adapter Adapter
}

// Adapter modifies a Linear layer's output: Forward returns the layer's new
// output given its input x and the frozen layer's output y.
type Adapter interface {
	Forward(g *autograd.Graph, x, y *autograd.Var) *autograd.Var
}

// Forward returns x W^T + b, plus the adapter's term.
func (l *Linear) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	y := g.Linear(x, l.Weight, l.Bias)
	if l.Adapter != nil {
		y = l.Adapter.Forward(g, x, y)
	}
	return y
}

// RMSNorm is Llama's root-mean-square norm with a learned scale.
type RMSNorm struct {
	Weight *autograd.Var `hf:"weight"`
	Eps    float64
}

// Forward normalises x over its last dimension.
func (n *RMSNorm) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.RMSNorm(x, n.Weight, n.Eps)
}
