package peft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/nn"
)

// writeAdapter writes a PEFT-format adapter by hand (not with Save) for the
// given modules ([out, in]) with random A and B, and returns the values.
func writeAdapter(t *testing.T, dir string, r int, alpha float64, rslora bool, modules map[string][2]int) map[string][2][]float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var ts []safetensors.Tensor
	vals := map[string][2][]float32{}
	names := map[string]bool{}
	keys := make([]string, 0, len(modules))
	for name := range modules {
		keys = append(keys, name)
	}
	sort.Strings(keys)
	for _, name := range keys {
		out, in := modules[name][0], modules[name][1]
		a := make([]float32, r*in)
		bb := make([]float32, out*r)
		for i := range a {
			a[i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range bb {
			bb[i] = float32(rng.NormFloat64() * 0.3)
		}
		vals[name] = [2][]float32{a, bb}
		ts = append(ts,
			safetensors.Tensor{Name: KeyPrefix + name + SuffixA, DType: safetensors.F32, Shape: []int{r, in}, Data: backend.Float32Bytes(a)},
			safetensors.Tensor{Name: KeyPrefix + name + SuffixB, DType: safetensors.F32, Shape: []int{out, r}, Data: backend.Float32Bytes(bb)})
		names[fmt.Sprintf("%q", name[strings.LastIndex(name, ".")+1:])] = true
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	var list []string
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	cfg := fmt.Sprintf(`{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": %d, "lora_alpha": %g, "use_rslora": %v, "use_dora": false, "bias": "none", "target_modules": [%s]}`,
		r, alpha, rslora, strings.Join(list, ", "))
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return vals
}

// TestApplyEqualsMerged: a model with a LoRA adapter gives the logits of
// the base with W + scale*B*A merged in by hand (in float64 on the host),
// with the plain and the rsLoRA scale.
func TestApplyEqualsMerged(t *testing.T) {
	b := testBackend(t)
	modules := map[string][2]int{
		"model.layers.0.self_attn.q_proj": {64, 64},
		"model.layers.1.self_attn.v_proj": {16, 64},
		"model.layers.1.mlp.down_proj":    {64, 96},
	}
	for _, rs := range []bool{false, true} {
		t.Run(fmt.Sprintf("rslora=%v", rs), func(t *testing.T) {
			dir := t.TempDir()
			const r, alpha = 4, 8.0
			vals := writeAdapter(t, dir, r, alpha, rs, modules)
			m := load(t, b)
			baseLogits := logits(t, b, m)
			cfg, err := Apply(b, m, dir)
			if err != nil {
				t.Fatal(err)
			}
			scale := alpha / r
			if rs {
				scale = alpha / math.Sqrt(r)
			}
			if cfg.Scale() != scale {
				t.Errorf("scale %g, want %g", cfg.Scale(), scale)
			}
			got := logits(t, b, m)

			merged := load(t, b)
			for _, nl := range nn.Linears(merged) {
				v, ok := vals[nl.Name]
				if !ok {
					continue
				}
				w := host(t, b, nl.Layer.Weight.Value)
				out, in := modules[nl.Name][0], modules[nl.Name][1]
				for o := range out {
					for i := range in {
						s := 0.0
						for k := range r {
							s += float64(v[1][o*r+k]) * float64(v[0][k*in+i])
						}
						w[o*in+i] += scale * s
					}
				}
				wt, _ := autograd.FromHost(b, nl.Layer.Weight.Value.DType(), w, out, in)
				nl.Layer.Weight = autograd.Const(nl.Name, wt)
			}
			want := logits(t, b, merged)
			if e := relErr(got, want); e > 1e-5 {
				t.Errorf("adapter logits differ from merged weights: relative error %.3g", e)
			}
			if e := relErr(baseLogits, want); e < 1e-3 {
				t.Errorf("the adapter barely changed the logits (%.3g); the test checks nothing", e)
			}
		})
	}
}

// TestApplyErrors: an adapter that does not fit the base says what.
func TestApplyErrors(t *testing.T) {
	b := testBackend(t)
	tests := []struct {
		name    string
		modules map[string][2]int
		want    string
	}{
		{"wrong shape", map[string][2]int{"model.layers.0.self_attn.q_proj": {64, 32}}, "lora_A.weight has shape [4 32], the base model needs [4 64]"},
		{"unknown layer", map[string][2]int{"model.layers.7.self_attn.q_proj": {64, 64}}, "match no linear layer"},
		{"missing config", nil, "adapter_config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.modules != nil {
				writeAdapter(t, dir, 4, 8, false, tc.modules)
			}
			if _, err := Apply(b, load(t, b), dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
