package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/peft"
)

// TestPrequantizedLoads: a checkpoint written by whet quantize loads back
// with its layers quantised, and computes exactly what the same model
// quantised at load time computes.
func TestPrequantizedLoads(t *testing.T) {
	base := filepath.Join("..", "models", "testdata", "golden", "llama-gqa")
	out := filepath.Join(t.TempDir(), "nf4")
	if code, o, e := run(t, "quantize", "--model", base, "--to", "nf4", "--double-quant", "--out", out); code != 0 {
		t.Fatalf("quantize: exit %d: %s\n%s", code, e, o)
	}
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	logits := func(m models.Model) []float64 {
		g := autograd.New(b, autograd.NewPool(b))
		defer g.Release()
		ids, _ := autograd.Int32s(b, []int32{3, 1, 4, 1, 5}, 1, 5)
		pos, _ := autograd.Int32s(b, []int32{0, 1, 2, 3, 4}, 5)
		var v []float64
		g.NoGrad(func() { v, err = g.Value(m.Logits(g, m.Forward(g, models.Inputs{IDs: ids, Positions: pos}))) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	pre, err := models.Load(b, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := countQuantized(pre.Model); n != 14 {
		t.Errorf("%d quantised layers loaded, want 14", n)
	}
	md, _ := hf.Resolve(base, "")
	atLoad, err := models.LoadDir(b, md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.Quantize(b, atLoad.Model, models.QuantOptions{Kind: backend.QuantNF4, DoubleQuant: true}); err != nil {
		t.Fatal(err)
	}
	a, c := logits(pre.Model), logits(atLoad.Model)
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("logit %d: %v from the checkpoint, %v quantised at load", i, a[i], c[i])
		}
	}
}

func countQuantized(m models.Model) int {
	n := 0
	for _, nl := range nn.Linears(m) {
		if nl.Layer.Weight.Quant != nil {
			n++
		}
	}
	return n
}

// TestMergeOntoQuantizedBase: merging onto a quantised base dequantises it
// first and says so; the output is a plain dense model.
func TestMergeOntoQuantizedBase(t *testing.T) {
	base := filepath.Join("..", "models", "testdata", "golden", "llama-gqa")
	dir := t.TempDir()
	q := filepath.Join(dir, "nf4")
	if code, o, e := run(t, "quantize", "--model", base, "--to", "nf4", "--out", q); code != 0 {
		t.Fatalf("quantize: exit %d: %s\n%s", code, e, o)
	}
	b, _ := backend.Default()
	l, err := models.Load(b, q, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := peft.NewLoraConfig(peft.ModuleList("q_proj", "v_proj"))
	cfg.R, cfg.LoraAlpha, cfg.InitLoraWeights = 4, 8, peft.InitRandom
	ad, err := peft.Attach(b, l.Model, cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "adapter")
	if err := ad.Save(adapter); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(dir, "merged")
	code, out, e := run(t, "merge", "--adapter", adapter, "--base", q, "--out", merged)
	if code != 0 {
		t.Fatalf("merge: exit %d: %s\n%s", code, e, out)
	}
	if !strings.Contains(out, "quantised (nf4)") || !strings.Contains(out, "dequantised") {
		t.Errorf("merge did not say it dequantised the base:\n%s", out)
	}
	cfgJSON, _ := os.ReadFile(filepath.Join(merged, "config.json"))
	if strings.Contains(string(cfgJSON), "quantization_config") {
		t.Error("the merged model's config.json still has a quantization_config")
	}
	m, err := models.Load(b, merged, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := countQuantized(m.Model); n != 0 {
		t.Errorf("the merged model has %d quantised layers", n)
	}
}
