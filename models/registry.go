package models

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/hf"
)

// Model is a causal language model.
type Model interface {
	// Config is the model's configuration.
	Config() *hf.Config
	// Forward returns the final hidden states [B, T, hidden].
	Forward(g *autograd.Graph, in Inputs) *autograd.Var
	// Logits projects hidden states onto the vocabulary.
	Logits(g *autograd.Graph, h *autograd.Var) *autograd.Var
	// Loss is the summed next-token cross-entropy against labels in
	// Hugging Face's convention, and the number of tokens scored.
	Loss(g *autograd.Graph, in Inputs, labels []int32) (*autograd.Var, int)
	// Optional reports whether the named weight may be absent from a
	// checkpoint.
	Optional(name string) bool
}

// Constructor makes a model with the shape of cfg and no weights.
type Constructor func(cfg *hf.Config) (Model, error)

var (
	mu       sync.RWMutex
	registry = map[string]Constructor{}
)

// Register makes a model type available to New. It panics on a duplicate,
// as it runs at init.
func Register(modelType string, c Constructor) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[modelType]; dup {
		panic("models: duplicate model type " + modelType)
	}
	registry[modelType] = c
}

// Types lists the registered model types.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// New makes a model of cfg's model_type, with no weights loaded.
func New(cfg *hf.Config) (Model, error) {
	mu.RLock()
	c, ok := registry[cfg.ModelType]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("model_type %q is not supported (supported: %s)", cfg.ModelType, strings.Join(Types(), ", "))
	}
	return c(cfg)
}

func optionalSuffix(name string, suffixes ...string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}
