package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/peft"
	"github.com/whet-ai/whet/tensor"
)

// mergeBase copies the llama-gqa golden checkpoint to a temporary
// directory, with a tokenizer_config.json and generation_config.json to be
// copied along.
func mergeBase(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "models", "testdata", "golden", "llama-gqa")
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"tokenizer_config.json": `{"model_max_length": 256}`, "generation_config.json": `{"bos_token_id": 1}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mergeLogits runs a model on a fixed batch.
func mergeLogits(t *testing.T, b backend.Backend, m models.Model) []float64 {
	t.Helper()
	ids := []int32{1, 4, 9, 16, 25, 36, 49, 64}
	idT, _ := autograd.Int32s(b, ids, 1, len(ids))
	pos := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	posT, _ := autograd.Int32s(b, pos, len(pos))
	g := autograd.New(b, autograd.NewPool(b))
	defer g.Release()
	var out []float64
	var err error
	g.NoGrad(func() { out, err = g.Value(m.Logits(g, m.Forward(g, models.Inputs{IDs: idT, Positions: posT}))) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMerge: whet merge writes a model whose logits are the base's with the
// adapter applied, for LoRA and DoRA, in the base's dtype or --dtype.
func TestMerge(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dora  bool
		dtype string
		want  tensor.DType
	}{
		{"lora", false, "", tensor.F32},
		{"dora", true, "", tensor.F32},
		{"lora-bf16", false, "bf16", tensor.BF16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			baseDir := mergeBase(t)
			l, err := models.Load(b, baseDir, "")
			if err != nil {
				t.Fatal(err)
			}
			cfg := peft.NewLoraConfig(peft.ModulePattern(peft.AllLinear))
			cfg.R, cfg.LoraAlpha, cfg.UseDoRA, cfg.InitLoraWeights = 4, 8, tc.dora, peft.InitRandom
			cfg.BaseModelNameOrPath = baseDir
			ad, err := peft.Attach(b, l.Model, cfg, 5)
			if err != nil {
				t.Fatal(err)
			}
			ad.SetTraining(false)
			want := mergeLogits(t, b, l.Model)
			adapterDir := filepath.Join(t.TempDir(), "adapter")
			if err := ad.Save(adapterDir); err != nil {
				t.Fatal(err)
			}
			args := []string{"merge", "--adapter", adapterDir}
			if tc.dtype != "" {
				args = append(args, "--dtype", tc.dtype)
			}
			code, out, errOut := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, s := range []string{"into 14 layers", "tokenizer_config.json", "generation_config.json"} {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			merged := filepath.Join(adapterDir, "merged")
			st, err := safetensors.OpenDir(merged)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range st.Names() {
				info, _ := st.Info(name)
				if dt, _ := info.DType.TensorDType(); dt != tc.want {
					t.Errorf("%s is %v, want %v", name, dt, tc.want)
				}
			}
			st.Close()
			var conf map[string]any
			data, _ := os.ReadFile(filepath.Join(merged, "config.json"))
			if err := json.Unmarshal(data, &conf); err != nil {
				t.Fatal(err)
			}
			if wantName := map[tensor.DType]string{tensor.F32: "float32", tensor.BF16: "bfloat16"}[tc.want]; conf["torch_dtype"] != wantName {
				t.Errorf("config.json torch_dtype %v, want %s", conf["torch_dtype"], wantName)
			}
			ml, err := models.Load(b, merged, "")
			if err != nil {
				t.Fatal(err)
			}
			got := mergeLogits(t, b, ml.Model)
			tol := 1e-4
			if tc.want == tensor.BF16 {
				tol = 0.1 // bf16 weights
			}
			d := 0.0
			for i := range got {
				d = max(d, math.Abs(got[i]-want[i]))
			}
			if d > tol {
				t.Errorf("merged model's logits differ from the adapter's by %.3g", d)
			}
			// A second merge into the same directory needs --force.
			if code, _, errOut := run(t, args...); code != 1 || !strings.Contains(errOut, "not empty") {
				t.Errorf("second merge: exit %d, %s", code, errOut)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	baseDir := mergeBase(t)
	if code, _, _ := run(t, "merge"); code != 2 {
		t.Errorf("no --adapter: exit %d, want 2", code)
	}
	if code, _, errOut := run(t, "merge", "--adapter", t.TempDir()); code != 1 || !strings.Contains(errOut, "adapter_config.json") {
		t.Errorf("empty adapter dir: exit %d, %s", code, errOut)
	}
	b, _ := backend.Default()
	l, err := models.Load(b, baseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	ad, err := peft.Attach(b, l.Model, peft.NewLoraConfig(peft.ModuleList("q_proj")), 1)
	if err != nil {
		t.Fatal(err)
	}
	adapterDir := filepath.Join(t.TempDir(), "adapter")
	if err := ad.Save(adapterDir); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "merge", "--adapter", adapterDir); code != 2 || !strings.Contains(errOut, "give --base") {
		t.Errorf("no base: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "merge", "--adapter", adapterDir, "--base", baseDir, "--out", baseDir, "--force"); code != 1 || !strings.Contains(errOut, "base model's directory") {
		t.Errorf("out = base: exit %d, %s", code, errOut)
	}
	if code, _, _ := run(t, "merge", "--adapter", adapterDir, "--dtype", "int8"); code != 2 {
		t.Errorf("bad dtype: exit %d, want 2", code)
	}
}
