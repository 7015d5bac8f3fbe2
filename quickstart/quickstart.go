// Package quickstart builds whet's built-in example, which runs on a fresh
// machine with nothing downloaded: a tiny Llama with random weights and a
// byte-level tokenizer, and a synthetic dataset whose answers can be
// checked: made-up facts ("What colour is the glorp? Teal."), which a LoRA
// adapter learns.
package quickstart

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/tensor"
	"github.com/whet-ai/whet/trainer"
)

// Config is the tiny model: a Llama with grouped-query attention.
var Config = map[string]any{
	"architectures":           []string{"LlamaForCausalLM"},
	"model_type":              "llama",
	"vocab_size":              vocabSize,
	"hidden_size":             96,
	"intermediate_size":       256,
	"num_hidden_layers":       2,
	"num_attention_heads":     6,
	"num_key_value_heads":     2,
	"max_position_embeddings": 256,
	"rms_norm_eps":            1e-5,
	"rope_theta":              10000.0,
	"tie_word_embeddings":     false,
	"bos_token_id":            bosID,
	"eos_token_id":            eosID,
	"torch_dtype":             "float32",
}

// The vocabulary: the two special tokens, then the 256 bytes.
const (
	bosID     = 0
	eosID     = 1
	vocabSize = 258
)

// Fact is one question of the synthetic task and its answer.
type Fact struct {
	Question, Answer string
}

// Facts returns the task: the colour of each made-up creature.
func Facts() []Fact {
	creatures := []string{"glorp", "zib", "mox", "trundle", "quib", "fennet", "vask", "plim", "drozzle", "yarn-eel", "snib", "kettlewing"}
	colours := []string{"teal", "amber", "violet", "crimson", "olive", "silver", "coral", "indigo", "ochre", "jade", "rust", "ivory"}
	out := make([]Fact, len(creatures))
	for i, c := range creatures {
		out[i] = Fact{Question: fmt.Sprintf("What colour is the %s?", c), Answer: " " + strings.ToUpper(colours[i][:1]) + colours[i][1:] + "."}
	}
	return out
}

// Prompt is the text before an answer.
func Prompt(f Fact) string { return "Q: " + f.Question + "\nA:" }

// Build writes the base model to dir/base, the dataset to dir/data and
// returns the recipe that trains a LoRA adapter into dir/lora-out.
func Build(dir string, seed uint64) (*trainer.Recipe, error) {
	base := filepath.Join(dir, "base")
	if err := writeModel(base, seed); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	var lines []string
	for range 8 { // eight copies of each fact per epoch
		for _, f := range Facts() {
			js, _ := json.Marshal(map[string]string{"prompt": Prompt(f), "completion": f.Answer})
			lines = append(lines, string(js))
		}
	}
	train := filepath.Join(dataDir, "facts.jsonl")
	if err := os.WriteFile(train, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	rc := trainer.DefaultRecipe()
	rc.Model = base
	rc.Data.Files = []string{train}
	rc.Data.Format = "completion"
	rc.Data.SequenceLen = 128
	rc.Data.Packing = true
	rc.Data.EvalFraction = 0
	rc.LoRA.R, rc.LoRA.Alpha, rc.LoRA.Dropout = 16, 32, 0
	rc.Optimizer.LR = 5e-3
	rc.Schedule.Name, rc.Schedule.WarmupSteps, rc.Schedule.WarmupRatio = "cosine", 10, 0
	rc.Epochs = 12
	rc.MicroBatchSize = 4
	rc.GradientAccumulationSteps = 1
	rc.SaveSteps = 100
	rc.LoggingSteps = 10
	rc.OutputDir = filepath.Join(dir, "lora-out")
	rc.Seed = seed
	return &rc, nil
}

// writeModel writes a Hugging Face directory: config.json, random weights,
// a byte-level tokenizer.json and tokenizer_config.json.
func writeModel(dir string, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(Config, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	hidden, inter := Config["hidden_size"].(int), Config["intermediate_size"].(int)
	heads, kv := Config["num_attention_heads"].(int), Config["num_key_value_heads"].(int)
	hd := hidden / heads
	shapes := map[string][]int{
		"model.embed_tokens.weight": {vocabSize, hidden},
		"model.norm.weight":         {hidden},
		"lm_head.weight":            {vocabSize, hidden},
	}
	for l := range Config["num_hidden_layers"].(int) {
		p := fmt.Sprintf("model.layers.%d.", l)
		shapes[p+"input_layernorm.weight"] = []int{hidden}
		shapes[p+"post_attention_layernorm.weight"] = []int{hidden}
		shapes[p+"self_attn.q_proj.weight"] = []int{heads * hd, hidden}
		shapes[p+"self_attn.k_proj.weight"] = []int{kv * hd, hidden}
		shapes[p+"self_attn.v_proj.weight"] = []int{kv * hd, hidden}
		shapes[p+"self_attn.o_proj.weight"] = []int{hidden, heads * hd}
		shapes[p+"mlp.gate_proj.weight"] = []int{inter, hidden}
		shapes[p+"mlp.up_proj.weight"] = []int{inter, hidden}
		shapes[p+"mlp.down_proj.weight"] = []int{hidden, inter}
	}
	rng := rand.New(rand.NewPCG(seed, 0x71a7))
	var ts []safetensors.Tensor
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	slices.Sort(names) // the same weights for the same seed
	for _, name := range names {
		shape := shapes[name]
		n, _ := tensor.NumElements(shape)
		vals := make([]float32, n)
		for i := range vals {
			if len(shape) == 1 {
				vals[i] = 1 // norm weights
			} else {
				vals[i] = float32(rng.NormFloat64() * 0.05)
			}
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: backend.Float32Bytes(vals)})
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		return err
	}
	tok, err := tokenizerJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok, 0o644); err != nil {
		return err
	}
	tc := `{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "model_max_length": 256, "tokenizer_class": "PreTrainedTokenizerFast"}`
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644)
}

// tokenizerJSON is a byte-level tokenizer with no merges: every byte is a
// token (GPT-2's byte-to-character mapping), after <s> and </s>; encoding
// adds <s> in front.
func tokenizerJSON() ([]byte, error) {
	vocab := map[string]int{"<s>": bosID, "</s>": eosID}
	for b, r := range byteChars() {
		vocab[string(r)] = 2 + b
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	t := map[string]any{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  []any{special(bosID, "<s>"), special(eosID, "</s>")},
		"normalizer":    nil,
		"pre_tokenizer": byteLevel,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{bosID}, "tokens": []string{"<s>"}}},
		},
		"decoder": byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []any{}},
	}
	return json.MarshalIndent(t, "", "  ")
}

// byteChars is GPT-2's mapping of the 256 bytes to printable characters.
func byteChars() [256]rune {
	var out [256]rune
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			out[b] = rune(b)
		} else {
			out[b] = rune(256 + n)
			n++
		}
	}
	return out
}
