package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/quant"
)

// quantizeBase copies the llama-gqa golden checkpoint to a temporary
// directory, with tokenizer and generation configs to be copied along.
func quantizeBase(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "models", "testdata", "golden", "llama-gqa")
	dir := filepath.Join(t.TempDir(), "llama-gqa")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
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

// scales returns the per-block (4-bit) or per-row (int8) scales a decoded
// weight dequantises with.
func scales(t *testing.T, b backend.Backend, w *backend.QuantWeight) []float32 {
	t.Helper()
	if w.QAbsmax == nil {
		s, err := backend.ToFloat32(b, w.Absmax)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	q := make([]byte, w.QAbsmax.Len())
	if err := b.CopyToHost(q, w.QAbsmax); err != nil {
		t.Fatal(err)
	}
	na, _ := backend.ToFloat32(b, w.NestedAbsmax)
	nc, _ := backend.ToFloat32(b, w.NestedCode)
	out := make([]float32, len(q))
	for i, c := range q {
		out[i] = float32(nc[c]*na[i/w.NestedBlockSize]) + float32(w.Offset)
	}
	return out
}

// TestQuantize quantises the llama-gqa checkpoint, reads the output back
// with quant.Decode, and checks every weight: the linear projections within
// the format's error bound, everything else byte for byte.
func TestQuantize(t *testing.T) {
	t.Setenv("WHET_BLAS", "go")
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		kind      backend.QuantKind
		block     int
		double    bool
		maxRelErr float64 // relative Frobenius error of a weight
	}{
		{"nf4", []string{"--to", "nf4"}, backend.QuantNF4, 64, false, 0.15},
		{"nf4-double-128", []string{"--to", "NF4", "--double-quant", "--blocksize", "128"}, backend.QuantNF4, 128, true, 0.15},
		{"fp4-double", []string{"--to", "fp4", "--double-quant"}, backend.QuantFP4, 64, true, 0.2},
		{"int8", []string{"--to", "int8"}, backend.QuantInt8, 0, false, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := quantizeBase(t)
			out := filepath.Join(t.TempDir(), "out")
			code, stdout, stderr := run(t, append([]string{"quantize", "--model", base, "--out", out}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, want := range []string{"quantised 14 linear weights", "kept 7 weights", "smaller", "tokenizer_config.json", "generation_config.json"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			orig, err := safetensors.Open(filepath.Join(base, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			q, err := safetensors.OpenDir(out)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			get := quant.FileGetter(q)
			quantised := 0
			for _, info := range orig.Tensors() {
				name := info.Name
				w, ok, err := quant.Decode(b, name, get)
				if err != nil {
					t.Fatal(err)
				}
				if !isQuantizeTarget(name, info.Shape) {
					if ok {
						t.Fatalf("%s was quantised", name)
					}
					a, _ := orig.Raw(name)
					c, err := q.Raw(name)
					if err != nil {
						t.Fatal(err)
					}
					qi, _ := q.Info(name)
					if !slices.Equal(a, c) || qi.DType != info.DType || !slices.Equal(qi.Shape, info.Shape) {
						t.Errorf("%s changed", name)
					}
					continue
				}
				if !ok {
					t.Fatalf("%s was not quantised", name)
				}
				quantised++
				if w.Kind != tc.kind || w.Rows != info.Shape[0] || w.Cols != info.Shape[1] || w.BlockSize != tc.block || (w.QAbsmax != nil) != tc.double {
					t.Fatalf("%s: decoded %v %dx%d block %d double %v", name, w.Kind, w.Rows, w.Cols, w.BlockSize, w.QAbsmax != nil)
				}
				x, err := orig.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				d, err := quant.Dequantize(b, w)
				if err != nil {
					t.Fatal(err)
				}
				y, _ := backend.ToFloat32(b, d)
				s := scales(t, b, w)
				half := 0.0 // half the largest gap between adjacent code values
				if tc.kind != backend.QuantInt8 {
					code, _ := quant.Code(tc.kind)
					slices.Sort(code)
					for j := 1; j < len(code); j++ {
						half = max(half, float64(code[j]-code[j-1])/2)
					}
				}
				var num, den float64
				for i := range x {
					e := math.Abs(float64(x[i] - y[i]))
					num += e * e
					den += float64(x[i]) * float64(x[i])
					var bound float64
					if tc.kind == backend.QuantInt8 {
						bound = float64(s[i/w.Cols]) / 127 * 0.5 * (1 + 1e-5)
					} else {
						// Half the largest code gap of the block's true
						// absmax, plus the error of the stored scale.
						k := i / w.BlockSize
						am := 0.0
						for _, v := range x[k*w.BlockSize : min(len(x), (k+1)*w.BlockSize)] {
							am = max(am, math.Abs(float64(v)))
						}
						bound = am*half*(1+1e-5) + math.Abs(am-float64(s[k]))
					}
					if e > bound+1e-12 {
						t.Fatalf("%s[%d]: %v -> %v, error %g > bound %g", name, i, x[i], y[i], e, bound)
					}
				}
				if r := math.Sqrt(num / den); r > tc.maxRelErr {
					t.Errorf("%s: relative error %.4f > %.4f", name, r, tc.maxRelErr)
				}
			}
			if quantised != 14 {
				t.Errorf("%d weights quantised, want 14", quantised)
			}
			// Every key is a weight of the original or a companion of one.
			for _, name := range q.Names() {
				if _, ok := orig.Info(name); ok {
					continue
				}
				if w, ok := quant.CompanionOf(name); !ok || !isQuantizeTarget(w, []int{1, 1}) {
					t.Errorf("unexpected tensor %s", name)
				}
			}

			var cfg map[string]any
			raw, err := os.ReadFile(filepath.Join(out, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["hidden_size"] != 64.0 || cfg["model_type"] != "llama" {
				t.Errorf("config.json lost the model's keys: %v", cfg)
			}
			qc, _ := cfg["quantization_config"].(map[string]any)
			four := tc.kind != backend.QuantInt8
			wantType := "fp4"
			if tc.kind == backend.QuantNF4 {
				wantType = "nf4"
			}
			for k, v := range map[string]any{
				"quant_method": "bitsandbytes", "load_in_4bit": four, "load_in_8bit": !four,
				"bnb_4bit_quant_type": wantType, "bnb_4bit_use_double_quant": tc.double,
				"bnb_4bit_compute_dtype": "float32", "llm_int8_threshold": 6.0,
			} {
				if qc[k] != v {
					t.Errorf("quantization_config[%q] = %v, want %v", k, qc[k], v)
				}
			}
			if !strings.Contains(string(raw), `"llm_int8_threshold": 6.0`) {
				t.Errorf("config.json: llm_int8_threshold not written as 6.0:\n%s", raw)
			}
			for _, f := range []string{"tokenizer_config.json", "generation_config.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s not copied: %v", f, err)
				}
			}
		})
	}
}

func TestQuantizeDefaultOut(t *testing.T) {
	t.Setenv("WHET_BLAS", "go")
	base := quantizeBase(t)
	if code, _, stderr := run(t, "quantize", "--model", base, "--to", "fp4"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(base+"-fp4", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	// A second run refuses the now non-empty directory, unless --force.
	if code, _, stderr := run(t, "quantize", "--model", base, "--to", "fp4"); code != 1 || !strings.Contains(stderr, "not empty") {
		t.Errorf("second run: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "quantize", "--model", base, "--to", "fp4", "--force"); code != 0 {
		t.Errorf("--force: exit %d, stderr %q", code, stderr)
	}
	// The output is not itself a model whet can quantise again.
	if code, _, _ := run(t, "quantize", "--model", base+"-fp4", "--to", "nf4", "--out", filepath.Join(t.TempDir(), "x")); code == 0 {
		t.Error("quantising a quantised checkpoint succeeded")
	}
}

func TestQuantizeUsage(t *testing.T) {
	base := quantizeBase(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "nf4"}, "--model is required"},
		{[]string{"--model", base}, "--to is required"},
		{[]string{"--model", base, "--to", "int4"}, `unknown format "int4"`},
		{[]string{"--model", base, "--to", "int8", "--double-quant"}, "--double-quant applies to nf4 and fp4"},
		{[]string{"--model", base, "--to", "int8", "--blocksize", "128"}, "--blocksize applies to nf4 and fp4"},
		{[]string{"--model", base, "--to", "nf4", "--blocksize", "48"}, "block size 48"},
		{[]string{"--model", base, "--to", "nf4", "--blocksize", "8192"}, "block size 8192"},
		{[]string{"--model", base, "--to", "nf4", "--shard-size", "x"}, "--shard-size"},
		{[]string{"--model", "model.gguf", "--to", "nf4"}, "GGUF"},
		{[]string{"--model", base, "--to", "nf4", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.ReplaceAll(strings.Join(tc.args, " "), base, "BASE"), func(t *testing.T) {
			code, _, stderr := run(t, append([]string{"quantize"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tc.want)
			}
		})
	}
	// The model's own directory is refused as the output.
	if code, _, stderr := run(t, "quantize", "--model", base, "--to", "nf4", "--out", base, "--force"); code != 1 || !strings.Contains(stderr, "model's directory") {
		t.Errorf("--out = --model: exit %d, stderr %q", code, stderr)
	}
}
