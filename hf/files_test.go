package hf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// modelDir makes a directory holding config.json and the given files (name
// to contents) and opens it.
func modelDir(t *testing.T, files map[string]string) *ModelDir {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["config.json"]; !ok {
		if _, ok := files[AdapterConfigFile]; !ok {
			write(t, filepath.Join(dir, "config.json"), "{}")
		}
	}
	for name, data := range files {
		write(t, filepath.Join(dir, name), data)
	}
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const index = `{
  "metadata": {"total_size": 16060522496},
  "weight_map": {
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors"
  }
}`

func TestWeights(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		format WeightsFormat
		want   []string // Files, relative
		gguf   []string
	}{
		{"single", map[string]string{"model.safetensors": "", "pytorch_model.bin": ""}, Safetensors, []string{"model.safetensors"}, nil},
		{"single wins over index", map[string]string{"model.safetensors": "", "model.safetensors.index.json": "{"}, Safetensors, []string{"model.safetensors"}, nil},
		{"sharded", map[string]string{"model.safetensors.index.json": index, "model-00001-of-00002.safetensors": "",
			"model-00002-of-00002.safetensors": "", "pytorch_model-00001-of-00002.bin": ""}, ShardedSafetensors,
			[]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}, nil},
		{"adapter", map[string]string{AdapterConfigFile: "{}", "adapter_model.safetensors": "", "adapter_model.bin": ""},
			AdapterSafetensors, []string{"adapter_model.safetensors"}, nil},
		{"gguf only", map[string]string{"model-Q4_K_M.gguf": "", "model-F16.GGUF": "", "pytorch_model.bin": ""}, GGUFOnly, nil,
			[]string{"model-F16.GGUF", "model-Q4_K_M.gguf"}},
		{"safetensors and gguf", map[string]string{"model.safetensors": "", "x.gguf": ""}, Safetensors, []string{"model.safetensors"}, []string{"x.gguf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := modelDir(t, tc.files)
			w, err := m.Weights()
			if err != nil {
				t.Fatal(err)
			}
			abs := func(names []string) []string {
				var out []string
				for _, n := range names {
					out = append(out, filepath.Join(m.Path(), n))
				}
				return out
			}
			if w.Format != tc.format || !reflect.DeepEqual(w.Files, abs(tc.want)) || !reflect.DeepEqual(w.GGUF, abs(tc.gguf)) {
				t.Errorf("Weights = %+v; want format %v, files %v, gguf %v", w, tc.format, tc.want, tc.gguf)
			}
			if tc.format == ShardedSafetensors {
				if w.Index != filepath.Join(m.Path(), SafetensorsIndexFile) || w.TotalSize != 16060522496 {
					t.Errorf("Index %q TotalSize %d", w.Index, w.TotalSize)
				}
				want := map[string]string{
					"lm_head.weight":            filepath.Join(m.Path(), "model-00002-of-00002.safetensors"),
					"model.embed_tokens.weight": filepath.Join(m.Path(), "model-00001-of-00002.safetensors"),
					"model.norm.weight":         filepath.Join(m.Path(), "model-00002-of-00002.safetensors"),
				}
				if !reflect.DeepEqual(w.WeightMap, want) {
					t.Errorf("WeightMap = %v", w.WeightMap)
				}
			} else if w.Index != "" || w.WeightMap != nil {
				t.Errorf("Index %q WeightMap %v for an unsharded model", w.Index, w.WeightMap)
			}
		})
	}
}

func TestWeightsErrors(t *testing.T) {
	shard := "model-00001-of-00001.safetensors"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
		not   []string
	}{
		{"pickle only", map[string]string{"pytorch_model.bin": "", "training_args.bin": ""},
			[]string{"holds only pickle checkpoints (pytorch_model.bin, training_args.bin)", "unpickling runs arbitrary code",
				"AutoModelForCausalLM.from_pretrained('DIR').save_pretrained('DIR-safetensors', safe_serialization=True)",
				"https://huggingface.co/spaces/safetensors/convert"}, nil},
		{"sharded pickle", map[string]string{"pytorch_model.bin.index.json": "{}", "pytorch_model-00001-of-00002.bin": "", "pytorch_model-00002-of-00002.bin": ""},
			[]string{"pytorch_model-00001-of-00002.bin, pytorch_model-00002-of-00002.bin, pytorch_model.bin.index.json", "arbitrary code"}, nil},
		{"other pickles", map[string]string{"consolidated.00.pth": "", "model.pt": "", "last.ckpt": "", "state.pkl": ""},
			[]string{"consolidated.00.pth, last.ckpt, model.pt, state.pkl", "arbitrary code"}, nil},
		{"adapter pickle", map[string]string{AdapterConfigFile: "{}", "adapter_model.bin": ""},
			[]string{"torch.load('DIR/adapter_model.bin', weights_only=True), 'DIR/adapter_model.safetensors'", "arbitrary code"}, []string{"AutoModelForCausalLM"}},
		{"nothing", map[string]string{"tokenizer.json": "{}"},
			[]string{"no weights in model directory DIR: looked for model.safetensors, model.safetensors.index.json, adapter_model.safetensors and *.gguf"}, []string{"found"}},
		{"unsupported formats", map[string]string{"tf_model.h5": "", "flax_model.msgpack": "", "consolidated.safetensors": ""},
			[]string{"found consolidated.safetensors, flax_model.msgpack, tf_model.h5, which whet does not load"}, nil},
		{"shards without index", map[string]string{"model-00001-of-00002.safetensors": "", "model-00002-of-00002.safetensors": ""},
			[]string{"found model-00001-of-00002.safetensors, model-00002-of-00002.safetensors, which whet does not load; shards without their model.safetensors.index.json"}, nil},
		{"missing shard", map[string]string{SafetensorsIndexFile: `{"weight_map": {"a": "` + shard + `", "b": "model-00002.safetensors", "c": "model-00002.safetensors"}}`, shard: ""},
			[]string{"DIR/model.safetensors.index.json names shard model-00002.safetensors (for tensor \"b\" and others), which is missing from DIR"}, nil},
		{"shard escapes", map[string]string{SafetensorsIndexFile: `{"weight_map": {"a": "../x.safetensors"}}`},
			[]string{`DIR/model.safetensors.index.json: field "weight_map.a": shard "../x.safetensors" is not a .safetensors file name in the model directory`}, nil},
		{"shard absolute", map[string]string{SafetensorsIndexFile: `{"weight_map": {"a": "/etc/passwd"}}`},
			[]string{`field "weight_map.a": shard "/etc/passwd"`}, nil},
		{"shard not safetensors", map[string]string{SafetensorsIndexFile: `{"weight_map": {"a": "pytorch_model.bin"}}`},
			[]string{`field "weight_map.a": shard "pytorch_model.bin"`}, nil},
		{"shard number", map[string]string{SafetensorsIndexFile: `{"weight_map": {"a": 1}}`},
			[]string{`field "weight_map.a": want a string, got number 1`}, nil},
		{"empty weight_map", map[string]string{SafetensorsIndexFile: `{"metadata": {}, "weight_map": {}}`},
			[]string{`DIR/model.safetensors.index.json: field "weight_map": missing or empty`}, nil},
		{"bad total_size", map[string]string{SafetensorsIndexFile: `{"metadata": {"total_size": "big"}, "weight_map": {"a": "` + shard + `"}}`, shard: ""},
			[]string{`field "metadata.total_size": want a size in bytes, got string "big"`}, nil},
		{"index syntax", map[string]string{SafetensorsIndexFile: "{\n\"weight_map\": {\"a\": \"x.safetensors\",}\n}"},
			[]string{"DIR/model.safetensors.index.json:2:37: invalid JSON"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := modelDir(t, tc.files)
			w, err := m.Weights()
			if err == nil {
				t.Fatalf("Weights = %+v; want an error", w)
			}
			msg := strings.ReplaceAll(err.Error(), m.Path(), "DIR")
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("error lacks %q:\n%s", s, msg)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(msg, s) {
					t.Errorf("error should not contain %q:\n%s", s, msg)
				}
			}
		})
	}
}

func TestWeightsDanglingLink(t *testing.T) {
	m := modelDir(t, nil)
	if err := os.Symlink("../blobs/missing", filepath.Join(m.Path(), SafetensorsFile)); err != nil {
		t.Fatal(err)
	}
	_, err := m.Weights()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(m.Path(), SafetensorsFile)+" is a link to a missing file") {
		t.Errorf("Weights with a dangling model.safetensors: error %v", err)
	}
}

func TestTokenizerFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  TokenizerFiles
	}{
		{"llama 2", []string{"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"},
			TokenizerFiles{TokenizerJSON: "tokenizer.json", SentencePiece: "tokenizer.model", TokenizerConfig: "tokenizer_config.json", SpecialTokensMap: "special_tokens_map.json"}},
		{"qwen", []string{"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"},
			TokenizerFiles{TokenizerJSON: "tokenizer.json", TokenizerConfig: "tokenizer_config.json"}},
		{"chat template jinja wins", []string{"chat_template.jinja", "chat_template.json"}, TokenizerFiles{ChatTemplate: "chat_template.jinja"}},
		{"chat template json", []string{"chat_template.json"}, TokenizerFiles{ChatTemplate: "chat_template.json"}},
		{"none", nil, TokenizerFiles{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for _, f := range tc.files {
				files[f] = "{}"
			}
			m := modelDir(t, files)
			got, err := m.TokenizerFiles()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			for _, p := range []*string{&want.TokenizerJSON, &want.TokenizerConfig, &want.SpecialTokensMap, &want.SentencePiece, &want.ChatTemplate} {
				if *p != "" {
					*p = filepath.Join(m.Path(), *p)
				}
			}
			if got != want {
				t.Errorf("TokenizerFiles = %+v\nwant %+v", got, want)
			}
		})
	}

	m := modelDir(t, nil)
	if err := os.Mkdir(filepath.Join(m.Path(), "tokenizer.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TokenizerFiles(); err == nil || !strings.Contains(err.Error(), "tokenizer.json is not a regular file") {
		t.Errorf("TokenizerFiles with a directory for tokenizer.json: error %v", err)
	}
}

func TestModelDirConfigs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "qwen3-0.6b.config.json"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(filepath.Join("testdata", "qwen3-0.6b.generation_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := modelDir(t, map[string]string{"config.json": string(data), GenerationConfigFile: string(gen)})
	c, err := m.Config()
	if err != nil || c.ModelType != "qwen3" || c.HeadDim != 128 {
		t.Fatalf("Config = %+v, %v", c, err)
	}
	g, ok, err := m.GenerationConfig()
	if err != nil || !ok || *g.TopK != 20 {
		t.Fatalf("GenerationConfig = %+v, %v, %v", g, ok, err)
	}

	// Absent generation config: no error.
	m = modelDir(t, nil)
	if g, ok, err := m.GenerationConfig(); g != nil || ok || err != nil {
		t.Errorf("GenerationConfig without the file = %v, %v, %v; want nil, false, nil", g, ok, err)
	}
	// Errors name the file.
	m = modelDir(t, map[string]string{"config.json": `{"model_type": "llama"}`, GenerationConfigFile: `{"top_k": "20"}`})
	if _, err := m.Config(); err == nil || !strings.Contains(err.Error(), filepath.Join(m.Path(), "config.json")+`: field "vocab_size": missing`) {
		t.Errorf("Config: error %v", err)
	}
	if _, _, err := m.GenerationConfig(); err == nil || !strings.Contains(err.Error(), filepath.Join(m.Path(), GenerationConfigFile)+`: field "top_k": want an integer, got string "20"`) {
		t.Errorf("GenerationConfig: error %v", err)
	}
	// A dangling generation_config.json is an error, not an absent file.
	if err := os.Remove(filepath.Join(m.Path(), GenerationConfigFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(m.Path(), GenerationConfigFile)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := m.GenerationConfig(); ok || err == nil || !strings.Contains(err.Error(), "link to a missing file") {
		t.Errorf("GenerationConfig with a dangling link = %v, %v", ok, err)
	}
	// An adapter directory has no config.json to read.
	m = modelDir(t, map[string]string{AdapterConfigFile: "{}"})
	if _, err := m.Config(); err == nil || !strings.Contains(err.Error(), "PEFT adapter; its base model's config.json is elsewhere") {
		t.Errorf("Config of an adapter directory: error %v", err)
	}
}
