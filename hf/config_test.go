package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/whet-ai/whet/tensor"
)

func ip(i int) *int         { return &i }
func bp(b bool) *bool       { return &b }
func fp(f float64) *float64 { return &f }
func stripRaw(c *Config) *Config {
	d := *c
	d.Raw = nil
	if d.RopeScaling != nil {
		rs := *d.RopeScaling
		rs.Raw = nil
		d.RopeScaling = &rs
	}
	return &d
}

// TestRealConfigs parses config.json files of real models and checks every
// parsed value, defaults included.
func TestRealConfigs(t *testing.T) {
	llama3 := func(factor float64, orig int) *RopeScaling {
		return &RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4,
			OriginalMaxPositionEmbeddings: orig, BetaFast: 32, BetaSlow: 1}
	}
	for _, tc := range []struct {
		file  string
		want  Config
		dtype tensor.DType
		sw    int // SlidingWindowSize
	}{
		{"llama-2-7b-hf.config.json", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32,
			NumAttentionHeads: 32, NumKeyValueHeads: 32, HeadDim: 128, MaxPositionEmbeddings: 4096,
			RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 10000, PartialRotaryFactor: 1,
			DType: "float16", BOSTokenID: ip(1), EOSTokenIDs: []int{2},
		}, tensor.F16, 0},
		{"llama-3.1-8b.config.json", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			VocabSize: 128256, HiddenSize: 4096, IntermediateSize: 14336, NumHiddenLayers: 32,
			NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 128, MaxPositionEmbeddings: 131072,
			RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 500000, RopeScaling: llama3(8, 8192),
			PartialRotaryFactor: 1, DType: "bfloat16", BOSTokenID: ip(128000), EOSTokenIDs: []int{128001},
		}, tensor.BF16, 0},
		{"llama-3.2-1b.config.json", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192, NumHiddenLayers: 16,
			NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 64, MaxPositionEmbeddings: 131072,
			RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 500000, RopeScaling: llama3(32, 8192),
			PartialRotaryFactor: 1, TieWordEmbeddings: true, DType: "bfloat16",
			BOSTokenID: ip(128000), EOSTokenIDs: []int{128001},
		}, tensor.BF16, 0},
		{"mistral-7b-v0.1.config.json", Config{
			ModelType: "mistral", Architectures: []string{"MistralForCausalLM"},
			VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 14336, NumHiddenLayers: 32,
			NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 128, MaxPositionEmbeddings: 32768,
			RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 10000, PartialRotaryFactor: 1,
			DType: "bfloat16", BOSTokenID: ip(1), EOSTokenIDs: []int{2}, SlidingWindow: 4096,
		}, tensor.BF16, 4096},
		{"qwen2.5-0.5b.config.json", Config{
			ModelType: "qwen2", Architectures: []string{"Qwen2ForCausalLM"},
			VocabSize: 151936, HiddenSize: 896, IntermediateSize: 4864, NumHiddenLayers: 24,
			NumAttentionHeads: 14, NumKeyValueHeads: 2, HeadDim: 64, MaxPositionEmbeddings: 32768,
			RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 1e6, PartialRotaryFactor: 1,
			TieWordEmbeddings: true, DType: "bfloat16", BOSTokenID: ip(151643), EOSTokenIDs: []int{151643},
			SlidingWindow: 32768, UseSlidingWindow: bp(false), MaxWindowLayers: 24,
		}, tensor.BF16, 0},
		{"qwen3-0.6b.config.json", Config{
			ModelType: "qwen3", Architectures: []string{"Qwen3ForCausalLM"},
			VocabSize: 151936, HiddenSize: 1024, IntermediateSize: 3072, NumHiddenLayers: 28,
			NumAttentionHeads: 16, NumKeyValueHeads: 8, HeadDim: 128, MaxPositionEmbeddings: 40960,
			RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 1e6, PartialRotaryFactor: 1,
			TieWordEmbeddings: true, DType: "bfloat16", BOSTokenID: ip(151643), EOSTokenIDs: []int{151645},
			UseSlidingWindow: bp(false), MaxWindowLayers: 28,
		}, tensor.BF16, 0},
		{"llama-3.2-3b-instruct.transformers5.config.json", Config{
			ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
			VocabSize: 128256, HiddenSize: 3072, IntermediateSize: 8192, NumHiddenLayers: 28,
			NumAttentionHeads: 24, NumKeyValueHeads: 8, HeadDim: 128, MaxPositionEmbeddings: 131072,
			RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 500000, RopeScaling: llama3(32, 8192),
			PartialRotaryFactor: 1, TieWordEmbeddings: true, DType: "bfloat16",
			BOSTokenID: ip(128000), EOSTokenIDs: []int{128001, 128008, 128009},
		}, tensor.BF16, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseConfig(path, data)
			if err != nil {
				t.Fatal(err)
			}
			if got := stripRaw(c); !reflect.DeepEqual(got, &tc.want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(&tc.want, "", " ")
				t.Errorf("parsed\n%s\nwant\n%s", g, w)
			}
			if got := c.TensorDType(); got != tc.dtype {
				t.Errorf("TensorDType = %v, want %v", got, tc.dtype)
			}
			if got := c.SlidingWindowSize(); got != tc.sw {
				t.Errorf("SlidingWindowSize = %d, want %d", got, tc.sw)
			}
			if _, ok := c.Raw["transformers_version"]; !ok {
				t.Error("Raw lacks transformers_version")
			}
			if c.RopeScaling != nil && c.RopeScaling.Raw["rope_type"] == nil {
				t.Error("RopeScaling.Raw lacks rope_type")
			}
		})
	}
}

// cfg returns a minimal valid config as JSON with members replaced or, for
// the value del, removed.
func cfg(t testing.TB, edits map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
		"num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 256,
	}
	for k, v := range edits {
		if v == del {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type deleteMarker struct{}

var del = deleteMarker{}

type obj = map[string]any

func TestConfigDefaultsAndPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits obj
		check func(t *testing.T, c *Config)
	}{
		{"defaults", nil, func(t *testing.T, c *Config) {
			want := &Config{ModelType: "llama", VocabSize: 1000, HiddenSize: 64, IntermediateSize: 128,
				NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 4, HeadDim: 16,
				MaxPositionEmbeddings: 256, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 10000,
				PartialRotaryFactor: 1}
			if got := stripRaw(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if c.TensorDType() != tensor.Invalid {
				t.Errorf("TensorDType without a dtype = %v", c.TensorDType())
			}
		}},
		{"nulls mean defaults", obj{"num_key_value_heads": nil, "head_dim": nil, "rope_theta": nil,
			"pad_token_id": nil, "eos_token_id": nil, "sliding_window": nil, "torch_dtype": nil}, func(t *testing.T, c *Config) {
			if c.NumKeyValueHeads != 4 || c.HeadDim != 16 || c.RopeTheta != 10000 || c.PadTokenID != nil ||
				c.EOSTokenIDs != nil || c.SlidingWindow != 0 || c.DType != "" {
				t.Errorf("got %+v", c)
			}
		}},
		{"head_dim overrides hidden/heads", obj{"head_dim": 32, "hidden_size": 60}, func(t *testing.T, c *Config) {
			if c.HeadDim != 32 {
				t.Errorf("HeadDim = %d", c.HeadDim)
			}
		}},
		{"dtype wins over torch_dtype", obj{"dtype": "bfloat16", "torch_dtype": "float32"}, func(t *testing.T, c *Config) {
			if c.DType != "bfloat16" || c.TensorDType() != tensor.BF16 {
				t.Errorf("DType = %q", c.DType)
			}
		}},
		{"float64", obj{"torch_dtype": "float64"}, func(t *testing.T, c *Config) {
			if c.DType != "float64" || c.TensorDType() != tensor.F64 {
				t.Errorf("DType = %q, TensorDType = %v", c.DType, c.TensorDType())
			}
		}},
		{"integral floats are integers", obj{"hidden_size": 64.0, "vocab_size": 1e3}, func(t *testing.T, c *Config) {
			if c.HiddenSize != 64 || c.VocabSize != 1000 {
				t.Errorf("HiddenSize %d VocabSize %d", c.HiddenSize, c.VocabSize)
			}
		}},
		{"eos list", obj{"eos_token_id": []int{1, 2, 3}, "pad_token_id": -1}, func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(c.EOSTokenIDs, []int{1, 2, 3}) || *c.PadTokenID != -1 {
				t.Errorf("EOS %v pad %v", c.EOSTokenIDs, c.PadTokenID)
			}
		}},
		{"use_sliding_window true keeps the window", obj{"sliding_window": 4096, "use_sliding_window": true}, func(t *testing.T, c *Config) {
			if c.SlidingWindowSize() != 4096 {
				t.Errorf("SlidingWindowSize = %d", c.SlidingWindowSize())
			}
		}},
		{"legacy type key", obj{"rope_scaling": obj{"type": "linear", "factor": 2}}, func(t *testing.T, c *Config) {
			if c.RopeScaling == nil || c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 2 ||
				c.RopeScaling.OriginalMaxPositionEmbeddings != 0 {
				t.Errorf("RopeScaling = %+v", c.RopeScaling)
			}
		}},
		{"rope_type wins over type", obj{"rope_scaling": obj{"type": "linear", "rope_type": "dynamic", "factor": 2}}, func(t *testing.T, c *Config) {
			if c.RopeScaling.Type != "dynamic" {
				t.Errorf("Type = %q", c.RopeScaling.Type)
			}
		}},
		{"rope_type default is plain RoPE", obj{"rope_scaling": obj{"rope_type": "default"}}, func(t *testing.T, c *Config) {
			if c.RopeScaling != nil {
				t.Errorf("RopeScaling = %+v", c.RopeScaling)
			}
		}},
		{"empty rope_scaling is plain RoPE", obj{"rope_scaling": obj{}}, func(t *testing.T, c *Config) {
			if c.RopeScaling != nil {
				t.Errorf("RopeScaling = %+v", c.RopeScaling)
			}
		}},
		{"rope_parameters theta wins over top level", obj{"rope_theta": 1234, "rope_parameters": obj{"rope_theta": 5e5, "rope_type": "default"}}, func(t *testing.T, c *Config) {
			if c.RopeTheta != 5e5 || c.RopeScaling != nil {
				t.Errorf("RopeTheta %v RopeScaling %+v", c.RopeTheta, c.RopeScaling)
			}
		}},
		{"rope_parameters theta only", obj{"rope_parameters": obj{"rope_theta": 1e6}}, func(t *testing.T, c *Config) {
			if c.RopeTheta != 1e6 || c.RopeScaling != nil {
				t.Errorf("RopeTheta %v RopeScaling %+v", c.RopeTheta, c.RopeScaling)
			}
		}},
		{"top-level theta when rope_parameters has none", obj{"rope_theta": 1234, "rope_parameters": obj{"rope_type": "linear", "factor": 4}}, func(t *testing.T, c *Config) {
			if c.RopeTheta != 1234 || c.RopeScaling.Factor != 4 {
				t.Errorf("RopeTheta %v RopeScaling %+v", c.RopeTheta, c.RopeScaling)
			}
		}},
		{"rope_scaling wins over rope_parameters", obj{"rope_scaling": obj{"rope_type": "linear", "factor": 2},
			"rope_parameters": obj{"rope_type": "dynamic", "factor": 8}}, func(t *testing.T, c *Config) {
			if c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 2 {
				t.Errorf("RopeScaling = %+v", c.RopeScaling)
			}
		}},
		{"llama3 original length defaults to max_position_embeddings", obj{"rope_parameters": obj{"rope_type": "llama3", "factor": 8,
			"low_freq_factor": 1, "high_freq_factor": 4}}, func(t *testing.T, c *Config) {
			if c.RopeScaling.OriginalMaxPositionEmbeddings != 256 {
				t.Errorf("OriginalMaxPositionEmbeddings = %d", c.RopeScaling.OriginalMaxPositionEmbeddings)
			}
		}},
		{"yarn defaults", obj{"rope_scaling": obj{"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 64}}, func(t *testing.T, c *Config) {
			rs := c.RopeScaling
			if rs.BetaFast != 32 || rs.BetaSlow != 1 || rs.AttentionFactor != nil || rs.OriginalMaxPositionEmbeddings != 64 {
				t.Errorf("RopeScaling = %+v", rs)
			}
		}},
		{"yarn explicit", obj{"rope_scaling": obj{"rope_type": "yarn", "factor": 4, "beta_fast": 16, "beta_slow": 2, "attention_factor": 0.5}}, func(t *testing.T, c *Config) {
			rs := c.RopeScaling
			if rs.BetaFast != 16 || rs.BetaSlow != 2 || *rs.AttentionFactor != 0.5 || rs.OriginalMaxPositionEmbeddings != 256 {
				t.Errorf("RopeScaling = %+v", rs)
			}
		}},
		{"longrope, top-level original length wins", obj{"original_max_position_embeddings": 128, "rope_scaling": obj{"type": "longrope",
			"short_factor": make([]float64, 8), "long_factor": make([]float64, 8), "original_max_position_embeddings": 64}}, func(t *testing.T, c *Config) {
			rs := c.RopeScaling
			if rs.OriginalMaxPositionEmbeddings != 128 || len(rs.ShortFactor) != 8 || rs.Factor != 0 {
				t.Errorf("RopeScaling = %+v", rs)
			}
		}},
		{"partial rotary factor", obj{"partial_rotary_factor": 0.5}, func(t *testing.T, c *Config) {
			if c.PartialRotaryFactor != 0.5 {
				t.Errorf("PartialRotaryFactor = %v", c.PartialRotaryFactor)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("config.json", cfg(t, tc.edits))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte // used when edits is nil
		edits obj
		want  string
	}{
		{name: "syntax", data: []byte("{\n  \"model_type\": \"llama\",\n  \"hidden_size\": ,\n}"), want: "x/config.json:3:18: invalid JSON"},
		{name: "truncated", data: []byte("{\n  \"model_type\": \"llama\""), want: "x/config.json:2:24: invalid JSON: unexpected end of JSON input"},
		{name: "not an object", data: []byte(`[1, 2]`), want: "want a JSON object at the top level, got array"},
		{name: "null", data: []byte(`null`), want: "want a JSON object at the top level, got null"},
		{name: "empty", data: []byte(``), want: "x/config.json:1:1: invalid JSON"},
		{name: "no model_type", edits: obj{"model_type": del}, want: `field "model_type": missing`},
		{name: "empty hidden_act", edits: obj{"hidden_act": ""}, want: `field "hidden_act": empty`},
		{name: "model_type number", edits: obj{"model_type": 3}, want: `field "model_type": want a string, got number 3`},
		{name: "architectures string", edits: obj{"architectures": "LlamaForCausalLM"}, want: `field "architectures": want an array of strings`},
		{name: "missing hidden_size", edits: obj{"hidden_size": del}, want: `field "hidden_size": missing; want a positive integer`},
		{name: "null vocab_size", edits: obj{"vocab_size": nil}, want: `field "vocab_size": missing`},
		{name: "zero layers", edits: obj{"num_hidden_layers": 0}, want: `field "num_hidden_layers": 0 is out of range; want a positive integer`},
		{name: "negative intermediate", edits: obj{"intermediate_size": -4}, want: `field "intermediate_size": -4 is out of range`},
		{name: "huge", edits: obj{"hidden_size": 1e12}, want: `field "hidden_size": 1000000000000 is out of range`},
		{name: "quoted int", edits: obj{"hidden_size": "4096"}, want: `field "hidden_size": want an integer, got string "4096"`},
		{name: "fractional", edits: obj{"max_position_embeddings": 2048.5}, want: `field "max_position_embeddings": want an integer, got number 2048.5`},
		{name: "heads do not divide hidden", edits: obj{"num_attention_heads": 3}, want: `field "num_attention_heads": 3 does not divide hidden_size (64)`},
		{name: "kv heads do not divide heads", edits: obj{"num_key_value_heads": 3}, want: `field "num_key_value_heads": 3 does not divide num_attention_heads (4)`},
		{name: "kv heads zero", edits: obj{"num_key_value_heads": 0}, want: `field "num_key_value_heads": 0 is out of range`},
		{name: "head_dim zero", edits: obj{"head_dim": 0}, want: `field "head_dim": 0 is out of range`},
		{name: "eps zero", edits: obj{"rms_norm_eps": 0}, want: `field "rms_norm_eps": 0 is not positive`},
		{name: "theta negative", edits: obj{"rope_theta": -1}, want: `field "rope_theta": -1 is not positive`},
		{name: "theta string", edits: obj{"rope_theta": "1e4"}, want: `field "rope_theta": want a number, got string`},
		{name: "tie yes", edits: obj{"tie_word_embeddings": "yes"}, want: `field "tie_word_embeddings": want true or false, got string "yes"`},
		{name: "bias 1", edits: obj{"attention_bias": 1}, want: `field "attention_bias": want true or false, got number 1`},
		{name: "unknown torch_dtype", edits: obj{"torch_dtype": "float8_e4m3fn"}, want: `field "torch_dtype": unknown dtype "float8_e4m3fn"`},
		{name: "unknown dtype", edits: obj{"dtype": "int4"}, want: `field "dtype": unknown dtype "int4"`},
		{name: "eos string", edits: obj{"eos_token_id": "2"}, want: `field "eos_token_id": want a token id or an array of token ids, got string`},
		{name: "eos list with string", edits: obj{"eos_token_id": []any{1, "2"}}, want: `field "eos_token_id": element 1: want a token id, got string "2"`},
		{name: "pad fraction", edits: obj{"pad_token_id": 1.5}, want: `field "pad_token_id": want a token id (an integer) or null, got number 1.5`},
		{name: "bos list", edits: obj{"bos_token_id": []int{1}}, want: `field "bos_token_id": want a token id (an integer) or null, got array`},
		{name: "negative window", edits: obj{"sliding_window": -1}, want: `field "sliding_window": -1 is out of range; want an integer >= 0`},
		{name: "use_sliding_window string", edits: obj{"use_sliding_window": "false"}, want: `field "use_sliding_window": want true or false`},
		{name: "rope_scaling string", edits: obj{"rope_scaling": "llama3"}, want: `field "rope_scaling": want an object or null, got string`},
		{name: "unknown rope type", edits: obj{"rope_scaling": obj{"rope_type": "su", "factor": 2}}, want: `field "rope_scaling.rope_type": unknown RoPE type "su"`},
		{name: "unknown legacy type", edits: obj{"rope_scaling": obj{"type": "mrope"}}, want: `field "rope_scaling.type": unknown RoPE type "mrope"`},
		{name: "unknown rope_parameters type", edits: obj{"rope_parameters": obj{"rope_type": "proportional", "rope_theta": 1e4}}, want: `field "rope_parameters.rope_type": unknown RoPE type "proportional"`},
		{name: "linear without factor", edits: obj{"rope_scaling": obj{"rope_type": "linear"}}, want: `field "rope_scaling.factor": missing; RoPE type "linear" needs a scaling factor`},
		{name: "factor below 1", edits: obj{"rope_scaling": obj{"rope_type": "dynamic", "factor": 0.5}}, want: `field "rope_scaling.factor": 0.5 is out of range; want a factor >= 1`},
		{name: "llama3 without low_freq_factor", edits: obj{"rope_scaling": obj{"rope_type": "llama3", "factor": 8, "high_freq_factor": 4, "original_max_position_embeddings": 64}},
			want: `field "rope_scaling.low_freq_factor": missing; RoPE type "llama3" needs it`},
		{name: "llama3 high <= low", edits: obj{"rope_scaling": obj{"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4}},
			want: `field "rope_scaling.high_freq_factor": 4 must be greater than low_freq_factor (4)`},
		{name: "llama3 original length zero", edits: obj{"rope_scaling": obj{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 0}},
			want: `field "rope_scaling.original_max_position_embeddings": 0 is out of range`},
		{name: "yarn beta order", edits: obj{"rope_scaling": obj{"rope_type": "yarn", "factor": 4, "beta_fast": 1, "beta_slow": 2}}, want: `field "rope_scaling.beta_fast": 1 is less than beta_slow (2)`},
		{name: "longrope factors", edits: obj{"rope_scaling": obj{"rope_type": "longrope", "short_factor": []float64{1, 2}, "long_factor": make([]float64, 8)}},
			want: `field "rope_scaling.short_factor": has 2 factors; want 8`},
		{name: "longrope missing factors", edits: obj{"rope_scaling": obj{"rope_type": "longrope", "short_factor": make([]float64, 8)}},
			want: `field "rope_scaling.long_factor": missing`},
		{name: "per-layer rope", edits: obj{"rope_parameters": obj{"full_attention": obj{"rope_type": "default"}}},
			want: `field "rope_parameters.full_attention": per-layer-type RoPE parameters are not supported`},
		{name: "rope_parameters theta", edits: obj{"rope_parameters": obj{"rope_theta": 0}}, want: `field "rope_parameters.rope_theta": 0 is not positive`},
		{name: "partial rotary", edits: obj{"partial_rotary_factor": 1.5}, want: `field "partial_rotary_factor": 1.5 is out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if tc.edits != nil {
				data = cfg(t, tc.edits)
			}
			c, err := ParseConfig("x/config.json", data)
			if err == nil {
				t.Fatalf("parsed %+v; want an error containing %q", c, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "x/config.json") {
				t.Errorf("error %q\nwant it to start with the file name and contain %q", err, tc.want)
			}
		})
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("{\n  \"a\": 1,\n  \"b\": x\n}")
	for _, tc := range []struct {
		offset    int64
		line, col int
	}{
		{0, 1, 1}, {1, 1, 1}, {2, 1, 2}, {3, 2, 1}, {4, 2, 2}, {20, 3, 8}, {24, 4, 2}, {100, 4, 2},
	} {
		if l, c := lineCol(data, tc.offset); l != tc.line || c != tc.col {
			t.Errorf("lineCol(%d) = %d:%d, want %d:%d", tc.offset, l, c, tc.line, tc.col)
		}
	}
}

func TestGenerationConfig(t *testing.T) {
	for _, tc := range []struct {
		file string
		want GenerationConfig
	}{
		{"qwen3-0.6b.generation_config.json", GenerationConfig{BOSTokenID: ip(151643), EOSTokenIDs: []int{151645, 151643},
			PadTokenID: ip(151643), DoSample: bp(true), Temperature: fp(0.6), TopP: fp(0.95), TopK: ip(20)}},
		{"llama-3.2-1b.generation_config.json", GenerationConfig{BOSTokenID: ip(128000), EOSTokenIDs: []int{128001},
			DoSample: bp(true), Temperature: fp(0.6), TopP: fp(0.9)}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ParseGenerationConfig(path, data)
			if err != nil {
				t.Fatal(err)
			}
			if g.Raw["transformers_version"] == nil {
				t.Error("Raw lacks transformers_version")
			}
			g.Raw = nil
			if !reflect.DeepEqual(*g, tc.want) {
				t.Errorf("got %+v\nwant %+v", *g, tc.want)
			}
		})
	}

	full := `{"max_new_tokens": 512, "max_length": 4096, "repetition_penalty": 1.1, "top_k": 0, "temperature": 0, "pad_token_id": null}`
	g, err := ParseGenerationConfig("g.json", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if *g.MaxNewTokens != 512 || *g.MaxLength != 4096 || *g.RepetitionPenalty != 1.1 || *g.TopK != 0 || *g.Temperature != 0 || g.PadTokenID != nil {
		t.Errorf("got %+v", g)
	}

	for _, tc := range []struct{ data, want string }{
		{`{"top_p": 1.5}`, `g.json: field "top_p": 1.5 is out of range; want a number from 0 to 1`},
		{`{"temperature": -1}`, `g.json: field "temperature": -1 is out of range; want a number at least 0`},
		{`{"repetition_penalty": 0}`, `g.json: field "repetition_penalty": 0 is out of range; want a number greater than 0`},
		{`{"top_k": -1}`, `g.json: field "top_k": -1 is out of range; want an integer >= 0`},
		{`{"max_new_tokens": 0}`, `g.json: field "max_new_tokens": 0 is out of range; want a positive integer`},
		{`{"do_sample": "true"}`, `g.json: field "do_sample": want true or false`},
		{`{"eos_token_id": [1, null]}`, `g.json: field "eos_token_id": element 1: want a token id, got null`},
		{"{\"top_p\": 0.9,,}", `g.json:1:15: invalid JSON`},
	} {
		if _, err := ParseGenerationConfig("g.json", []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseGenerationConfig(%s): error %v, want %q", tc.data, err, tc.want)
		}
	}
}
