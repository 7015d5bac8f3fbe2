package peft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	_ "github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
)

var base = filepath.Join("..", "models", "testdata", "golden", "llama-gqa")

func load(t *testing.T, b backend.Backend) models.Model {
	t.Helper()
	md, err := hf.Resolve(base, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := models.LoadDir(b, md)
	if err != nil {
		t.Fatal(err)
	}
	return l.Model
}

func logits(t *testing.T, b backend.Backend, m models.Model) []float64 {
	t.Helper()
	g := autograd.New(b, autograd.NewPool(b))
	defer g.Release()
	ids := []int32{1, 4, 9, 16, 25, 36, 49, 64}
	idT, _ := autograd.Int32s(b, ids, 1, len(ids))
	pos := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	posT, _ := autograd.Int32s(b, pos, len(pos))
	var out []float64
	var err error
	g.NoGrad(func() {
		out, err = g.Value(m.Logits(g, m.Forward(g, models.Inputs{IDs: idT, Positions: posT})))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func f32bytes(v []float32) []byte { return backend.Float32Bytes(v) }

// writeAdapter writes a PEFT-format adapter for the given modules with
// random A and B, and returns the values.
func writeAdapter(t *testing.T, dir string, r int, alpha float64, rslora bool, modules map[string][2]int) map[string][2][]float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var ts []safetensors.Tensor
	vals := map[string][2][]float32{}
	var names []string
	for name, shape := range modules {
		out, in := shape[0], shape[1]
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
			safetensors.Tensor{Name: "base_model.model." + name + ".lora_A.weight", DType: safetensors.F32, Shape: []int{r, in}, Data: f32bytes(a)},
			safetensors.Tensor{Name: "base_model.model." + name + ".lora_B.weight", DType: safetensors.F32, Shape: []int{out, r}, Data: f32bytes(bb)})
		names = append(names, fmt.Sprintf("%q", name[strings.LastIndex(name, ".")+1:]))
	}
	if err := safetensors.Write(filepath.Join(dir, "adapter_model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": %d, "lora_alpha": %g, "use_rslora": %v, "use_dora": false, "bias": "none", "target_modules": [%s]}`,
		r, alpha, rslora, strings.Join(names, ", "))
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return vals
}

// TestApplyEqualsMerged: a model with a LoRA adapter gives the logits of
// the base with W + scale*B*A merged in by hand (in float64 on the host),
// with the plain and the rsLoRA scale.
func TestApplyEqualsMerged(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string][2]int{
		"model.layers.0.self_attn.q_proj": {64, 64},
		"model.layers.1.self_attn.v_proj": {16, 64},
		"model.layers.1.mlp.down_proj":    {64, 96},
	}
	for _, rs := range []bool{false, true} {
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
			w, _ := autograd.ToHost(b, nl.Layer.Weight.Value)
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
		var d, n, moved float64
		for i := range want {
			d += (got[i] - want[i]) * (got[i] - want[i])
			n += want[i] * want[i]
			moved += (baseLogits[i] - want[i]) * (baseLogits[i] - want[i])
		}
		if math.Sqrt(d/n) > 1e-5 {
			t.Errorf("rslora=%v: adapter logits differ from merged weights: relative error %.3g", rs, math.Sqrt(d/n))
		}
		if math.Sqrt(moved/n) < 1e-3 {
			t.Errorf("rslora=%v: the adapter barely changed the logits; the test checks nothing", rs)
		}
	}
}

// TestApplyErrors: an adapter that does not fit the base says what.
func TestApplyErrors(t *testing.T) {
	b, _ := backend.Default()
	dir := t.TempDir()
	writeAdapter(t, dir, 4, 8, false, map[string][2]int{"model.layers.0.self_attn.q_proj": {64, 32}})
	if _, err := Apply(b, load(t, b), dir); err == nil || !strings.Contains(err.Error(), "lora_A.weight has shape [4 32], the base model needs [4 64]") {
		t.Errorf("wrong shape: %v", err)
	}
	dir = t.TempDir()
	writeAdapter(t, dir, 4, 8, false, map[string][2]int{"model.layers.7.self_attn.q_proj": {64, 64}})
	if _, err := Apply(b, load(t, b), dir); err == nil || !strings.Contains(err.Error(), "match no linear layer") {
		t.Errorf("unknown layer: %v", err)
	}
	if _, err := Apply(b, load(t, b), t.TempDir()); err == nil || !strings.Contains(err.Error(), "adapter_config.json") {
		t.Errorf("missing config: %v", err)
	}
}
