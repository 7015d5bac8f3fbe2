package peft

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/tensor"
)

// peftKeys are the keys PEFT 0.17.1's save_pretrained writes to
// adapter_config.json for a LoRA adapter.
var peftKeys = []string{
	"alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "corda_config", "eva_config",
	"exclude_modules", "fan_in_fan_out", "inference_mode", "init_lora_weights", "layer_replication",
	"layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha", "lora_bias", "lora_dropout",
	"megatron_config", "megatron_core", "modules_to_save", "peft_type", "qalora_group_size", "r",
	"rank_pattern", "revision", "target_modules", "target_parameters", "task_type",
	"trainable_token_indices", "use_dora", "use_qalora", "use_rslora",
}

func configKeys(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func tensorNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	sort.Strings(names)
	return names
}

// TestSaveLoadRoundTrip: Save writes PEFT's keys, shapes and config; Load
// (trainable or frozen) gives back the same values, config and logits; a
// second Save writes the same bytes.
func TestSaveLoadRoundTrip(t *testing.T) {
	b := testBackend(t)
	tests := []struct {
		name string
		mod  func(*LoraConfig)
	}{
		{"lora", nil},
		{"rslora-dropout", func(c *LoraConfig) { c.UseRSLoRA, c.LoraDropout = true, 0.05 }},
		{"dora", func(c *LoraConfig) { c.UseDoRA = true }},
		{"layers", func(c *LoraConfig) {
			c.TargetModules, c.LayersToTransform, c.LayersPattern = ModuleList("v_proj", "q_proj"), Ints{1}, Strings{"layers"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, b)
			cfg := testConfig(ModulePattern(AllLinear), tc.mod)
			cfg.BaseModelNameOrPath = base
			ad, err := Attach(b, m, cfg, 9)
			if err != nil {
				t.Fatal(err)
			}
			ad.SetTraining(false)
			want := logits(t, b, m)
			dir := filepath.Join(t.TempDir(), "adapter")
			if err := ad.Save(dir); err != nil {
				t.Fatal(err)
			}
			if got := configKeys(t, filepath.Join(dir, ConfigFile)); !slices.Equal(got, peftKeys) {
				t.Errorf("adapter_config.json keys %v, want PEFT's %v", got, peftKeys)
			}
			f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			if md := f.Metadata(); !reflect.DeepEqual(md, map[string]string{"format": "pt"}) {
				t.Errorf("metadata %v", md)
			}
			var wantKeys []string
			for _, l := range ad.Layers {
				wantKeys = append(wantKeys, KeyPrefix+l.Name+".lora_A.weight", KeyPrefix+l.Name+".lora_B.weight")
				if cfg.UseDoRA {
					wantKeys = append(wantKeys, KeyPrefix+l.Name+".lora_magnitude_vector")
				}
				out, in := l.Linear.Weight.Value.Dim(0), l.Linear.Weight.Value.Dim(1)
				for key, shape := range map[string][]int{KeyPrefix + l.Name + SuffixA: {4, in}, KeyPrefix + l.Name + SuffixB: {out, 4}} {
					if info, _ := f.Info(key); !slices.Equal(info.Shape, shape) || info.DType != safetensors.F32 {
						t.Errorf("%s: %v %v, want F32 %v", key, info.DType, info.Shape, shape)
					}
				}
			}
			f.Close()
			sort.Strings(wantKeys)
			if got := tensorNames(t, filepath.Join(dir, WeightsFile)); !slices.Equal(got, wantKeys) {
				t.Errorf("tensors %v, want %v", got, wantKeys)
			}

			for _, trainable := range []bool{true, false} {
				m2 := load(t, b)
				ad2, err := Load(b, m2, dir, trainable)
				if err != nil {
					t.Fatal(err)
				}
				if (ad2.Params != nil) != trainable {
					t.Errorf("trainable %v: ParamSet %v", trainable, ad2.Params != nil)
				}
				if ad2.Training() {
					t.Errorf("Load starts in training mode")
				}
				if len(ad2.Layers) != len(ad.Layers) {
					t.Fatalf("%d layers loaded, want %d", len(ad2.Layers), len(ad.Layers))
				}
				for i, l := range ad.Layers {
					l2 := ad2.Layers[i]
					if l2.Name != l.Name || l2.Scale != l.Scale || l2.Dropout != l.Dropout {
						t.Errorf("layer %s (scale %g, dropout %g), want %s (%g, %g)", l2.Name, l2.Scale, l2.Dropout, l.Name, l.Scale, l.Dropout)
					}
					if l2.A.RequiresGrad() != trainable {
						t.Errorf("%s: requires grad %v", l2.Name, l2.A.RequiresGrad())
					}
					pairs := [][2]*tensor.Tensor{{l.A.Value, l2.A.Value}, {l.B.Value, l2.B.Value}}
					if l.Magnitude != nil {
						pairs = append(pairs, [2]*tensor.Tensor{l.Magnitude.Value, l2.Magnitude.Value})
					}
					for _, p := range pairs {
						if !slices.Equal(p[0].Shape(), p[1].Shape()) || !slices.Equal(host(t, b, p[0]), host(t, b, p[1])) {
							t.Errorf("%s: a tensor differs after the round trip", l.Name)
						}
					}
				}
				saved := ad.Config.clone()
				saved.TargetModules = savedTargets(ad.Config, m, nil)
				if cfg.TargetModules.IsPattern {
					saved.TargetModules = ad2.Config.TargetModules // all-linear is written as the names
				}
				saved.InferenceMode = true
				if !reflect.DeepEqual(ad2.Config, saved) {
					a, _ := MarshalConfig(ad2.Config)
					w, _ := MarshalConfig(saved)
					t.Errorf("config after the round trip:\n%s\nwant\n%s", a, w)
				}
				if d := maxAbsDiff(logits(t, b, m2), want); d != 0 {
					t.Errorf("trainable %v: loaded adapter's logits differ by %.3g", trainable, d)
				}
				dir2 := filepath.Join(t.TempDir(), "again")
				if err := ad2.Save(dir2); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{ConfigFile, WeightsFile} {
					a, _ := os.ReadFile(filepath.Join(dir, name))
					c, _ := os.ReadFile(filepath.Join(dir2, name))
					if string(a) != string(c) {
						t.Errorf("%s differs after Load and Save", name)
					}
				}
			}
		})
	}
}

// TestSavedTargets: all-linear is written as the module names, or as the
// shortest suffixes once there are 20 or more (PEFT's rule).
func TestSavedTargets(t *testing.T) {
	b := testBackend(t)
	m := load(t, b)
	cfg := testConfig(ModulePattern(AllLinear), nil)
	targets, err := SelectTargets(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, nl := range targets {
		names = append(names, nl.Name)
	}
	if got := savedTargets(cfg, m, names); len(got.Names) != 14 || got.IsPattern {
		t.Errorf("14 targets saved as %v", got)
	}
	// With 28 fake names the suffixes are the projection names.
	var many []string
	for i := range 4 {
		for _, n := range names[:7] {
			many = append(many, strings.Replace(n, "layers.0.", fmt.Sprintf("layers.%d.", i), 1))
		}
	}
	got := savedTargets(cfg, m, many)
	want := []string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}
	if !slices.Equal(got.Names, want) {
		t.Errorf("28 targets saved as %v, want %v", got.Names, want)
	}
	// Every layer but q_proj of layer 0: q_proj would also select it.
	got = savedTargets(cfg, m, append(many[1:], "lm_head"))
	if slices.Contains(got.Names, "q_proj") || !slices.Contains(got.Names, "lm_head") {
		t.Errorf("suffixes %v select more than the targets", got.Names)
	}
}

// writeTensors writes an adapter directory from raw parts, for the error
// cases of Load.
func writeTensors(t *testing.T, dir, cfg string, ts map[string][]int) {
	t.Helper()
	var list []safetensors.Tensor
	for name, shape := range ts {
		n := 1
		for _, d := range shape {
			n *= d
		}
		list = append(list, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: backend.Float32Bytes(make([]float32, n))})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), list, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadErrors: whatever does not fit the base, or is not supported, is
// an error saying which file and tensor.
func TestLoadErrors(t *testing.T) {
	b := testBackend(t)
	const q = KeyPrefix + "model.layers.0.self_attn.q_proj"
	const lora = `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}`
	const dora = `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true}`
	ok := map[string][]int{q + SuffixA: {4, 64}, q + SuffixB: {64, 4}}
	with := func(extra map[string][]int, drop ...string) map[string][]int {
		m := map[string][]int{}
		for k, v := range ok {
			if !slices.Contains(drop, k) {
				m[k] = v
			}
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		cfg  string
		ts   map[string][]int
		want string
	}{
		{"wrong shape of A", lora, with(map[string][]int{q + SuffixA: {4, 32}}), "lora_A.weight has shape [4 32], the base model needs [4 64]"},
		{"wrong rank of B", lora, with(map[string][]int{q + SuffixB: {64, 8}}), "lora_B.weight has shape [64 8], the base model needs [64 4]"},
		{"unknown module", lora, with(map[string][]int{KeyPrefix + "model.layers.9.mlp.up_proj" + SuffixA: {4, 64}}), "match no linear layer of the base model: " + KeyPrefix + "model.layers.9.mlp.up_proj.lora_A.weight"},
		{"missing lora_B", lora, with(nil, q+SuffixB), "tensor " + q + ".lora_B.weight is missing"},
		{"missing lora_A", lora, with(nil, q+SuffixA), "tensor " + q + ".lora_A.weight is missing"},
		{"missing magnitude", dora, ok, "lora_magnitude_vector is missing (use_dora is true)"},
		{"unexpected magnitude", lora, with(map[string][]int{q + SuffixMagnitude: {64}}), "but use_dora is false"},
		{"wrong magnitude", dora, with(map[string][]int{q + SuffixMagnitude: {16}}), "lora_magnitude_vector has shape [16], the base model needs [64]"},
		{"foreign tensor", lora, with(map[string][]int{KeyPrefix + "model.embed_tokens.weight": {128, 64}}), "are not LoRA weights"},
		{"fan_in_fan_out", `{"r": 4, "target_modules": ["q_proj"], "fan_in_fan_out": true}`, ok, "fan_in_fan_out is not supported"},
		{"rank_pattern", `{"r": 4, "target_modules": ["q_proj"], "rank_pattern": {"q_proj": 8}}`, ok, "rank_pattern"},
		{"modules_to_save", `{"r": 4, "target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}`, ok, `modules_to_save ["lm_head"] is not supported`},
		{"bias", `{"r": 4, "target_modules": ["q_proj"], "bias": "all"}`, ok, `bias "all" is not supported`},
		{"not lora", `{"peft_type": "IA3", "r": 4}`, ok, `peft_type "IA3"`},
		{"bad json", `{"r": "four"}`, ok, "parse"},
		{"bad init", `{"r": 4, "init_lora_weights": 3}`, ok, "init_lora_weights"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTensors(t, dir, tc.cfg, tc.ts)
			m := load(t, b)
			_, err := Load(b, m, dir, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// Both magnitude spellings load.
	for _, key := range []string{q + SuffixMagnitude, q + SuffixMagnitude + ".weight"} {
		dir := t.TempDir()
		writeTensors(t, dir, dora, with(map[string][]int{key: {64}}))
		if _, err := Load(b, load(t, b), dir, false); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
}

// TestConfigJSON: a config written by PEFT 0.21.2 is read with its values,
// unknown keys are kept, defaults are PEFT's, and a new config writes PEFT
// 0.17.1's keys.
func TestConfigJSON(t *testing.T) {
	const peftWritten = `{
  "alora_invocation_tokens": null, "alpha_pattern": {}, "arrow_config": null, "auto_mapping": null,
  "base_model_name_or_path": "meta-llama/Llama-3.2-1B", "bias": "none", "corda_config": null,
  "ensure_weight_tying": false, "eva_config": null, "exclude_modules": null, "fan_in_fan_out": false,
  "inference_mode": true, "init_lora_weights": "gaussian", "kasa_config": null, "layer_replication": null,
  "layers_pattern": "layers", "layers_to_transform": 3, "loftq_config": {}, "lora_alpha": 32, "lora_bias": false,
  "lora_dropout": 0.05, "lora_ga_config": null, "megatron_config": null, "megatron_core": "megatron.core",
  "modules_to_save": null, "monteclora_config": null, "peft_type": "LORA", "peft_version": "0.21.2",
  "qalora_group_size": 16, "r": 16, "rank_pattern": {}, "revision": null,
  "target_modules": ["v_proj", "q_proj"], "target_parameters": null, "task_type": "CAUSAL_LM",
  "trainable_token_indices": null, "use_bdlora": null, "use_dora": true, "use_qalora": false,
  "use_rslora": true, "velora_config": null, "some_future_option": {"x": 1}
}`
	var c LoraConfig
	if err := json.Unmarshal([]byte(peftWritten), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.R != 16 || c.LoraAlpha != 32 || c.LoraDropout != 0.05 || !c.UseDoRA || !c.UseRSLoRA ||
		c.InitLoraWeights != InitGaussian || !slices.Equal(c.LayersToTransform, Ints{3}) ||
		!slices.Equal(c.LayersPattern, Strings{"layers"}) || !slices.Equal(c.TargetModules.Names, []string{"v_proj", "q_proj"}) ||
		c.BaseModelNameOrPath != "meta-llama/Llama-3.2-1B" || c.Scale() != 8 {
		t.Errorf("parsed %+v", c)
	}
	data, err := MarshalConfig(&c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["some_future_option"]) != `{"x":1}` && !strings.Contains(string(data), `"some_future_option": {`) {
		t.Errorf("unknown key lost: %s", data)
	}
	if string(m["layers_to_transform"]) == "" || !strings.Contains(string(data), `"target_modules": [`) {
		t.Errorf("written: %s", data)
	}

	// Defaults: a minimal config gets PEFT's.
	var d LoraConfig
	if err := json.Unmarshal([]byte(`{"target_modules": "all-linear"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.R != 8 || d.LoraAlpha != 8 || d.Bias != "none" || d.InitLoraWeights != InitDefault || d.MegatronCore != "megatron.core" ||
		d.QALoRAGroupSize != 16 || !d.TargetModules.IsPattern || d.TargetModules.Pattern != AllLinear {
		t.Errorf("defaults %+v", d)
	}
	for _, tc := range []struct {
		in   InitWeights
		want string
	}{{"", "true"}, {InitDefault, "true"}, {InitRandom, "false"}, {InitGaussian, `"gaussian"`}, {"pissa_niter_4", `"pissa_niter_4"`}} {
		if got, _ := json.Marshal(tc.in); string(got) != tc.want {
			t.Errorf("init_lora_weights %q written as %s, want %s", tc.in, got, tc.want)
		}
	}
	// A new config writes exactly PEFT's key set.
	data, err = MarshalConfig(NewLoraConfig(ModuleList("q_proj")))
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, peftKeys) {
		t.Errorf("keys %v, want %v", keys, peftKeys)
	}
}
