package hf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfig feeds arbitrary bytes to ParseConfig. It must never panic; an
// error must name the file; and a config it accepts must satisfy every
// invariant the models layer relies on. Seeds: the real configs in
// testdata, the committed corpus in testdata/fuzz/FuzzConfig, and the
// inline cases below.
func FuzzConfig(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.config.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed configs in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `"x"`, `{"model_type": null}`,
		`{"model_type":"llama","vocab_size":1,"hidden_size":1,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":1,"max_position_embeddings":1}`,
		`{"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"long_factor":[1,1]}}`,
		`{"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"rope_parameters":{"rope_type":"yarn","factor":4,"rope_theta":1e4}}`,
		`{"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"eos_token_id":[1,2],"hidden_size":9}`,
		`{"hidden_size": 1e400}`, `{"hidden_size": -0}`, `{"eos_token_id": [9223372036854775808]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz/config.json"
		c, err := ParseConfig(name, data)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseConfig returned both %+v and %v", c, err)
			}
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not start with the file name: %v", err)
			}
			return
		}
		for _, v := range []struct {
			name string
			n    int
		}{
			{"VocabSize", c.VocabSize}, {"HiddenSize", c.HiddenSize}, {"IntermediateSize", c.IntermediateSize},
			{"NumHiddenLayers", c.NumHiddenLayers}, {"NumAttentionHeads", c.NumAttentionHeads},
			{"NumKeyValueHeads", c.NumKeyValueHeads}, {"HeadDim", c.HeadDim}, {"MaxPositionEmbeddings", c.MaxPositionEmbeddings},
		} {
			if v.n <= 0 || v.n > maxDim {
				t.Fatalf("%s = %d accepted", v.name, v.n)
			}
		}
		if c.ModelType == "" || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
			t.Fatalf("accepted %+v", c)
		}
		if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) || !(c.PartialRotaryFactor > 0 && c.PartialRotaryFactor <= 1) {
			t.Fatalf("accepted eps %v theta %v partial %v", c.RMSNormEps, c.RopeTheta, c.PartialRotaryFactor)
		}
		if c.SlidingWindow < 0 || c.MaxWindowLayers < 0 || c.HiddenAct == "" {
			t.Fatalf("accepted %+v", c)
		}
		if c.DType != "" && !strings.Contains(" float32 float16 bfloat16 float64 ", " "+c.DType+" ") {
			t.Fatalf("accepted dtype %q", c.DType)
		}
		if rs := c.RopeScaling; rs != nil {
			switch rs.Type {
			case "linear", "dynamic", "yarn", "llama3":
				if !(rs.Factor >= 1) {
					t.Fatalf("accepted %s factor %v", rs.Type, rs.Factor)
				}
			case "longrope":
				half := int(float64(c.HeadDim)*c.PartialRotaryFactor) / 2
				if len(rs.ShortFactor) != half || len(rs.LongFactor) != half {
					t.Fatalf("accepted longrope factors %d/%d for half %d", len(rs.ShortFactor), len(rs.LongFactor), half)
				}
			default:
				t.Fatalf("accepted rope type %q", rs.Type)
			}
			if rs.Type == "llama3" && !(rs.HighFreqFactor > rs.LowFreqFactor && rs.LowFreqFactor > 0) {
				t.Fatalf("accepted llama3 low %v high %v", rs.LowFreqFactor, rs.HighFreqFactor)
			}
			if (rs.Type == "llama3" || rs.Type == "yarn" || rs.Type == "longrope") && rs.OriginalMaxPositionEmbeddings <= 0 {
				t.Fatalf("accepted %s without an original length", rs.Type)
			}
			if rs.BetaFast < rs.BetaSlow {
				t.Fatalf("accepted beta_fast %v < beta_slow %v", rs.BetaFast, rs.BetaSlow)
			}
		}
		// Parsing is deterministic.
		c2, err := ParseConfig(name, data)
		if err != nil || c2.HeadDim != c.HeadDim || c2.RopeTheta != c.RopeTheta {
			t.Fatalf("second parse differs: %+v, %v", c2, err)
		}
	})
}

// FuzzGenerationConfig feeds arbitrary bytes to ParseGenerationConfig: no
// panics, errors name the file, accepted values are in range.
func FuzzGenerationConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.generation_config.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"top_p": 1, "top_k": 0, "temperature": 0, "max_new_tokens": 1, "repetition_penalty": 1e-9}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz/generation_config.json"
		g, err := ParseGenerationConfig(name, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not start with the file name: %v", err)
			}
			return
		}
		if g.TopP != nil && !(*g.TopP >= 0 && *g.TopP <= 1) || g.Temperature != nil && !(*g.Temperature >= 0) ||
			g.TopK != nil && *g.TopK < 0 || g.MaxNewTokens != nil && *g.MaxNewTokens < 1 ||
			g.RepetitionPenalty != nil && !(*g.RepetitionPenalty > 0) {
			t.Fatalf("accepted %+v", g)
		}
	})
}
