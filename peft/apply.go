// Package peft holds adapters on frozen models in the format of Hugging
// Face's PEFT library: LoRA layers that wrap a model's linear layers, and
// their adapter directories (adapter_config.json and
// adapter_model.safetensors).
package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/nn"
)

// Config is the part of adapter_config.json that applying a LoRA adapter
// needs.
type Config struct {
	PeftType  string  `json:"peft_type"`
	R         int     `json:"r"`
	LoraAlpha float64 `json:"lora_alpha"`
	UseRSLoRA bool    `json:"use_rslora"`
	UseDoRA   bool    `json:"use_dora"`
	Bias      string  `json:"bias"`
}

// Scale is the factor of the adapter's term: lora_alpha/r, or
// lora_alpha/sqrt(r) with rsLoRA.
func (c *Config) Scale() float64 {
	if c.UseRSLoRA {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// LoRA is the term a LoRA adapter adds to a linear layer:
// y + Scale * (x A^T) B^T, with A [r, in] and B [out, r].
type LoRA struct {
	A, B  *autograd.Var
	Scale float64
}

// Forward adds the adapter's term to the frozen layer's output y.
func (l *LoRA) Forward(g *autograd.Graph, x, y *autograd.Var) *autograd.Var {
	return g.Add(y, g.Scale(g.Linear(g.Linear(x, l.A, nil), l.B, nil), l.Scale))
}

// keyPrefix is what PEFT puts before a base model's module names.
const keyPrefix = "base_model.model."

// Apply loads the LoRA adapter in dir (adapter_config.json and
// adapter_model.safetensors, as PEFT saves them) onto model's linear layers,
// frozen, and returns its config. Every adapter tensor must fit a layer of
// the model; what does not is an error naming it.
func Apply(b backend.Backend, model any, dir string) (*Config, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("adapter: parse %s: %w", cfgPath, err)
	}
	switch {
	case cfg.PeftType != "" && cfg.PeftType != "LORA":
		return nil, fmt.Errorf("adapter %s: peft_type %q, only LORA is supported", cfgPath, cfg.PeftType)
	case cfg.R <= 0:
		return nil, fmt.Errorf("adapter %s: r = %d, want a positive rank", cfgPath, cfg.R)
	case cfg.UseDoRA:
		return nil, fmt.Errorf("adapter %s: DoRA adapters are not supported yet", cfgPath)
	case cfg.Bias != "" && cfg.Bias != "none":
		return nil, fmt.Errorf("adapter %s: bias %q is not supported (want none)", cfgPath, cfg.Bias)
	}
	wPath := filepath.Join(dir, "adapter_model.safetensors")
	f, err := safetensors.Open(wPath)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	defer f.Close()
	used := map[string]bool{}
	load := func(name string, want []int) (*autograd.Var, error) {
		info, ok := f.Info(name)
		if !ok {
			return nil, fmt.Errorf("adapter %s: tensor %s is missing", wPath, name)
		}
		if !slices.Equal(info.Shape, want) {
			return nil, fmt.Errorf("adapter %s: tensor %s has shape %v, the base model needs %v", wPath, name, info.Shape, want)
		}
		dt, ok := info.DType.TensorDType()
		if !ok || !dt.IsFloat() {
			return nil, fmt.Errorf("adapter %s: tensor %s is %v, want a float dtype", wPath, name, info.DType)
		}
		raw, err := f.Raw(name)
		if err != nil {
			return nil, err
		}
		t, err := b.Alloc(dt, info.Shape...)
		if err != nil {
			return nil, err
		}
		if err := b.CopyFromHost(t, raw); err != nil {
			return nil, err
		}
		used[name] = true
		return autograd.Const(name, t), nil
	}
	for _, nl := range nn.Linears(model) {
		aName := keyPrefix + nl.Name + ".lora_A.weight"
		if _, ok := f.Info(aName); !ok {
			continue
		}
		w := nl.Layer.Weight.Value
		out, in := w.Dim(0), w.Dim(1)
		a, err := load(aName, []int{cfg.R, in})
		if err != nil {
			return nil, err
		}
		bv, err := load(keyPrefix+nl.Name+".lora_B.weight", []int{out, cfg.R})
		if err != nil {
			return nil, err
		}
		nl.Layer.Adapter = &LoRA{A: a, B: bv, Scale: cfg.Scale()}
	}
	var unused []string
	for _, n := range f.Names() {
		if !used[n] {
			unused = append(unused, n)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return nil, fmt.Errorf("adapter %s: %d tensors match no linear layer of the base model: %s", wPath, len(unused), strings.Join(unused[:min(5, len(unused))], ", "))
	}
	if len(used) == 0 {
		return nil, fmt.Errorf("adapter %s: no tensors", wPath)
	}
	return &cfg, nil
}
