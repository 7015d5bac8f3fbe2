package trainer

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/hf"
)

// goldenLlama is a tiny Llama model directory whose config.json says
// max_position_embeddings: 256.
var goldenLlama = filepath.Join("..", "models", "testdata", "golden", "llama-gqa")

// storiesGGUF is the stories260K model (llama.context_length 2048), which
// lives beside the repository, not in it.
var storiesGGUF = filepath.Join("..", "..", "shared", "models", "stories260K.gguf")

func parse(t *testing.T, src string) *Recipe {
	t.Helper()
	r, err := ParseRecipe("r.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseRecipe(%q): %v", src, err)
	}
	return r
}

// problemKeys lists the key paths of the problems in err, which must be a
// *RecipeError.
func problemKeys(t *testing.T, err error) []string {
	t.Helper()
	var re *RecipeError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RecipeError", err, err)
	}
	var keys []string
	for _, p := range re.Problems {
		keys = append(keys, p.Key)
	}
	return keys
}

// validRecipe is the default recipe with what it lacks to be valid.
func validRecipe() *Recipe {
	r := DefaultRecipe()
	r.Model = "meta-llama/Llama-3.2-1B-Instruct"
	r.Data.Files = []string{"train.jsonl"}
	return &r
}

func TestDefaults(t *testing.T) {
	want := DefaultRecipe()
	for _, src := range []string{"", "\n\n", "# only a comment\n", "---\n", "null\n", "~", "{}"} {
		r, err := ParseRecipe("r.yaml", []byte(src))
		if err != nil {
			t.Errorf("ParseRecipe(%q): %v", src, err)
			continue
		}
		if !reflect.DeepEqual(*r, want) {
			t.Errorf("ParseRecipe(%q) = %+v, want the default recipe", src, *r)
		}
	}
	// The defaults are valid but for what only the user can say.
	err := want.Validate()
	if got := problemKeys(t, err); !slices.Equal(got, []string{"model", "data.files"}) {
		t.Errorf("default recipe: problems with %v, want model and data.files: %v", got, err)
	}
	if err := validRecipe().Validate(); err != nil {
		t.Errorf("default recipe with a model and files: %v", err)
	}
}

func TestShippedRecipes(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "recipes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 3 {
		t.Fatalf("found %d recipes in ../recipes, want at least 3", len(paths))
	}
	got := map[string]*Recipe{}
	for _, p := range paths {
		r, err := LoadRecipe(p)
		if err != nil {
			t.Errorf("LoadRecipe(%s): %v", p, err)
			continue
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%s does not validate: %v", p, err)
		}
		if strings.Contains(r.Model, "shared/") || strings.Contains(r.Model, "stories260K") {
			t.Errorf("%s uses the test model %s, which users do not have", p, r.Model)
		}
		got[filepath.Base(p)] = r
	}
	if r := got["quickstart.yaml"]; r != nil {
		if r.Model != "HuggingFaceTB/SmolLM2-135M-Instruct" || !slices.Equal(r.Data.Files, []string{"./data/train.jsonl"}) {
			t.Errorf("quickstart.yaml: model %q, files %q", r.Model, r.Data.Files)
		}
	} else {
		t.Error("recipes/quickstart.yaml is missing")
	}
	if r := got["lora-llama.yaml"]; r != nil {
		if r.Method != "lora" || r.LoRA.R != 16 || !slices.Equal(r.LoRA.TargetModules, []string{"all-linear"}) ||
			!r.Data.Packing || r.Data.Format != "messages" || r.Schedule.Name != "cosine" ||
			r.EvalSteps != 100 || r.SaveSteps != 200 || !strings.Contains(r.Model, "Llama-3.2-1B-Instruct") {
			t.Errorf("lora-llama.yaml is not the recipe it says: %+v", r)
		}
	} else {
		t.Error("recipes/lora-llama.yaml is missing")
	}
	if r := got["full-llama.yaml"]; r != nil {
		lora := got["lora-llama.yaml"]
		if r.Method != "full" || r.Optimizer.WeightDecay != 0.01 || !r.GradientCheckpointing ||
			lora != nil && r.Optimizer.LR >= lora.Optimizer.LR {
			t.Errorf("full-llama.yaml is not the recipe it says: %+v", r)
		}
	} else {
		t.Error("recipes/full-llama.yaml is missing")
	}
}

func TestParseUnknownKey(t *testing.T) {
	for _, c := range []struct {
		src        string
		line       int
		key        string
		suggestion string
	}{
		{"lora:\n  rank: 8\n", 2, "lora.rank", "lora.r"},
		{"optimzer:\n  lr: 1\n", 1, "optimzer", "optimizer"},
		{"epochs: 1\nmicro_batch: 2\n", 2, "micro_batch", "micro_batch_size"},
		{"Micro-Batch-Size: 2\n", 1, "Micro-Batch-Size", "micro_batch_size"},
		{"packing: true\n", 1, "packing", "data.packing"},
		{"learning_rate: 1.0e-4\n", 1, "learning_rate", "optimizer.lr"},
		{"lr: 1.0e-4\n", 1, "lr", "optimizer.lr"},
		{"lora_r: 8\n", 1, "lora_r", "lora.r"},
		{"lora:\n  lora_alpha: 8\n", 2, "lora.lora_alpha", "lora.alpha"},
		{"data:\n  sequence_length: 8\n", 2, "data.sequence_length", "data.sequence_len"},
		{"data:\n  fields:\n    instrucion: question\n", 3, "data.fields.instrucion", "data.fields.instruction"},
		{"schedule:\n  warmup: 10\n", 2, "schedule.warmup", "schedule.warmup_steps"},
		{"zzzzzzzz: 1\n", 1, "zzzzzzzz", ""},
	} {
		_, err := ParseRecipe("r.yaml", []byte(c.src))
		if err == nil {
			t.Errorf("ParseRecipe(%q) = nil error, want unknown key %s", c.src, c.key)
			continue
		}
		var ke *KeyError
		if !errors.As(err, &ke) {
			t.Errorf("ParseRecipe(%q): %v is not a *KeyError", c.src, err)
			continue
		}
		if !ke.Unknown || ke.Key != c.key || ke.Line != c.line || ke.Suggestion != c.suggestion || ke.Source != "r.yaml" {
			t.Errorf("ParseRecipe(%q): %+v, want key %s line %d suggestion %q", c.src, *ke, c.key, c.line, c.suggestion)
		}
		want := `unknown key "` + c.key + `"`
		if c.suggestion != "" {
			want += ` (did you mean "` + c.suggestion + `"?)`
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "r.yaml:") || !strings.HasSuffix(msg, want) {
			t.Errorf("ParseRecipe(%q) = %q, want r.yaml:%d: %s", c.src, msg, c.line, want)
		}
	}
}

func TestParseWrongTypes(t *testing.T) {
	for _, c := range []struct {
		src  string
		want string // the whole message, or the part that names the type
	}{
		{"epochs: three\n", `r.yaml:1: epochs: expected a non-negative integer, got string "three"`},
		{"epochs: 1.5\n", `r.yaml:1: epochs: expected a non-negative integer, got 1.5`},
		{"epochs: 99999999999999999999999\n", `r.yaml:1: epochs: expected a non-negative integer`},
		{"micro_batch_size: -1\n", `r.yaml:1: micro_batch_size: expected a positive integer, got -1`},
		{"seed: -1\n", `r.yaml:1: seed: expected a non-negative integer, got -1`},
		{"model: [a, b]\n", `r.yaml:1: model: expected a string, got a list`},
		{"\nlora: [1, 2]\n", `r.yaml:2: lora: expected a mapping of keys (the lora section), got a list`},
		{"data:\n  fields: [a]\n", `r.yaml:2: data.fields: expected a mapping of field names to the names in the data, got a list`},
		{"data:\n  files: {a: b}\n", `r.yaml:2: data.files: expected a list of strings, got a mapping`},
		{"data:\n  files: [a, [b]]\n", `r.yaml:2: data.files[1]: expected a string, got a list`},
		{"data:\n  packing: maybe\n", `r.yaml:2: data.packing: expected true or false, got string "maybe"`},
		{"optimizer:\n  lr: \"1e-4\"\n", `r.yaml:2: optimizer.lr: expected a positive number, got string "1e-4" (write the number without quotes)`},
		{"optimizer:\n  lr: -1.0e-4\n", `r.yaml:2: optimizer.lr: expected a positive number, got -1.0e-4`},
		{"optimizer:\n  lr: .nan\n", `optimizer.lr: expected a positive number, got .nan`},
		{"optimizer:\n  weight_decay: .inf\n", `optimizer.weight_decay: expected a non-negative number, got .inf`},
		{"optimizer:\n  betas:\n    - 0.9\n    - high\n", `r.yaml:4: optimizer.betas[1]: expected a non-negative number, got string "high"`},
		{"lora:\n  layers_to_transform: [0, -1]\n", `lora.layers_to_transform[1]: expected a non-negative integer, got -1`},
		{"data:\n  files: [a, ~]\n", `data.files[1]: expected a string, got null`},
		{"- a\n- b\n", `r.yaml:1: expected a mapping of recipe keys, got a list`},
		{"just text\n", `expected a mapping of recipe keys, got string "just text"`},
		{"lora:\n  r: 8\n  r: 16\n", `r.yaml:3: lora.r: given twice (first on line 2)`},
		{"lora:\n  r: 8\n bad: [\n", `r.yaml:2: invalid YAML: did not find expected key`},
		{"epochs: 1\n---\nepochs: 2\n", `a second YAML document`},
		{"a: *nowhere\n", `invalid YAML`},
		{"lora:\n  <<: 3\n", `r.yaml:2: lora: a merge key (<<) takes a mapping or a list of mappings, got 3`},
		{"? [a, b]\n: 1\n", `r.yaml:1: expected a key name, got a list`},
	} {
		_, err := ParseRecipe("r.yaml", []byte(c.src))
		if err == nil {
			t.Errorf("ParseRecipe(%q) = nil error, want %s", c.src, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRecipe(%q):\n got %s\nwant %s", c.src, err, c.want)
		}
		var re *RecipeError
		if !errors.As(err, &re) {
			t.Errorf("ParseRecipe(%q): %T is not a *RecipeError", c.src, err)
		}
	}
}

// TestParseAllProblems checks that one parse reports every problem.
func TestParseAllProblems(t *testing.T) {
	src := "lora:\n  rank: 8\n  alpha: x\nepochs: -1\nfoo: 1\n"
	_, err := ParseRecipe("r.yaml", []byte(src))
	keys := problemKeys(t, err)
	if want := []string{"lora.rank", "lora.alpha", "epochs", "foo"}; !slices.Equal(keys, want) {
		t.Errorf("problems with %v, want %v: %v", keys, want, err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "4 problems in the recipe:\n  - r.yaml:2: ") {
		t.Errorf("message %q does not start with the count and the first problem", msg)
	}
}

func TestParseValues(t *testing.T) {
	r := parse(t, `
x-defaults:
  lora: &lora {r: 8, alpha: 16, dropout: 0.1}
  keys:
    - &epochs epochs
model: &model ./models/llama
lora:
  <<: *lora
  alpha: 64
optimizer:
  lr: &lr 1.0e-4
  betas: [0.8, 0.95]
schedule:
  name: linear
  warmup_steps: 1e2
data:
  files: train.jsonl
  eval_files: [a.jsonl, "b c.jsonl"]
  packing: no
  shuffle: Yes
  fields: {instruction: question, output: answer}
  format:
*epochs : 3
max_steps: 0x10
seed: 18446744073709551615
memory_limit_gb: 8
`)
	want := DefaultRecipe()
	want.Model = "./models/llama"
	want.LoRA.R, want.LoRA.Alpha, want.LoRA.Dropout = 8, 64, 0.1
	want.Optimizer.LR, want.Optimizer.Betas = 1e-4, []float64{0.8, 0.95}
	want.Schedule.Name, want.Schedule.WarmupSteps = "linear", 100
	want.Data.Files = []string{"train.jsonl"}
	want.Data.EvalFiles = []string{"a.jsonl", "b c.jsonl"}
	want.Data.Packing, want.Data.Shuffle = false, true
	want.Data.Fields = map[string]string{"instruction": "question", "output": "answer"}
	want.Epochs, want.MaxSteps, want.Seed, want.MemoryLimitGB = 3, 16, math.MaxUint64, 8
	if !reflect.DeepEqual(*r, want) {
		t.Errorf("got  %+v\nwant %+v", *r, want)
	}

	// An empty list or mapping empties the default; null keeps it.
	r = parse(t, "lora:\n  target_modules: []\n  target_regex: q_proj\noptimizer:\n  betas:\n")
	if r.LoRA.TargetModules != nil || !slices.Equal(r.Optimizer.Betas, DefaultRecipe().Optimizer.Betas) {
		t.Errorf("target_modules %q, betas %v", r.LoRA.TargetModules, r.Optimizer.Betas)
	}
	// A merge key may take a list; the first mapping that has a key wins.
	r = parse(t, "x-a: &a {r: 1, alpha: 2}\nx-b: &b {r: 3, dropout: 0.5}\nlora:\n  <<: [*a, *b]\n")
	if r.LoRA.R != 1 || r.LoRA.Alpha != 2 || r.LoRA.Dropout != 0.5 {
		t.Errorf("merged lora: %+v", r.LoRA)
	}
}

func TestLoadRecipe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my.yaml")
	if err := os.WriteFile(path, []byte("model: m\n\nlora:\n  rnak: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadRecipe(path)
	if err == nil || err.Error() != path+`:4: unknown key "lora.rnak" (did you mean "lora.r"?)` {
		t.Errorf("LoadRecipe: %v", err)
	}
	if _, err := LoadRecipe(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadRecipe of a missing file: %v", err)
	}
}

func TestSet(t *testing.T) {
	for _, c := range []struct {
		set   string
		check func(r *Recipe) bool
	}{
		{"lora.r=32", func(r *Recipe) bool { return r.LoRA.R == 32 }},
		{" lora.alpha = 8 ", func(r *Recipe) bool { return r.LoRA.Alpha == 8 }},
		{"optimizer.lr=1e-4", func(r *Recipe) bool { return r.Optimizer.LR == 1e-4 }},
		{"optimizer.betas=[0.8, 0.99]", func(r *Recipe) bool { return slices.Equal(r.Optimizer.Betas, []float64{0.8, 0.99}) }},
		{"data.files=[a.jsonl,b.jsonl]", func(r *Recipe) bool { return slices.Equal(r.Data.Files, []string{"a.jsonl", "b.jsonl"}) }},
		{"data.files=a.jsonl", func(r *Recipe) bool { return slices.Equal(r.Data.Files, []string{"a.jsonl"}) }},
		{"data.files=*.jsonl", func(r *Recipe) bool { return slices.Equal(r.Data.Files, []string{"*.jsonl"}) }},
		{"data.files=a, b.jsonl", func(r *Recipe) bool { return slices.Equal(r.Data.Files, []string{"a, b.jsonl"}) }},
		{"data.eval_files=", func(r *Recipe) bool { return r.Data.EvalFiles == nil }},
		{"lora.target_modules=[q_proj, v_proj]", func(r *Recipe) bool {
			return slices.Equal(r.LoRA.TargetModules, []string{"q_proj", "v_proj"})
		}},
		{"lora.layers_to_transform=[0, 3]", func(r *Recipe) bool { return slices.Equal(r.LoRA.LayersToTransform, []int{0, 3}) }},
		{"data.packing=false", func(r *Recipe) bool { return !r.Data.Packing }},
		{"gradient_checkpointing=true", func(r *Recipe) bool { return r.GradientCheckpointing }},
		{"data.fields.instruction=question", func(r *Recipe) bool { return r.Data.Fields["instruction"] == "question" }},
		{"data.fields={input: context}", func(r *Recipe) bool {
			return reflect.DeepEqual(r.Data.Fields, map[string]string{"input": "context"})
		}},
		{"lora={r: 4, dropout: 0}", func(r *Recipe) bool { return r.LoRA.R == 4 && r.LoRA.Dropout == 0 && r.LoRA.Alpha == 32 }},
		{"model=~/models/My Llama: v2", func(r *Recipe) bool { return r.Model == "~/models/My Llama: v2" }},
		{`revision="v1.0"`, func(r *Recipe) bool { return r.Revision == "v1.0" }},
		{"output_dir=", func(r *Recipe) bool { return r.OutputDir == "" }},
		{"data.chat_template=tool_use", func(r *Recipe) bool { return r.Data.ChatTemplate == "tool_use" }},
		{"seed=7", func(r *Recipe) bool { return r.Seed == 7 }},
		{"max_steps=1e3", func(r *Recipe) bool { return r.MaxSteps == 1000 }},
	} {
		r := DefaultRecipe()
		r.Data.Fields = map[string]string{"output": "answer"}
		if err := r.Set(c.set); err != nil {
			t.Errorf("Set(%q): %v", c.set, err)
			continue
		}
		if !c.check(&r) {
			t.Errorf("Set(%q) gave %+v", c.set, r)
		}
		if c.set == "data.fields.instruction=question" && r.Data.Fields["output"] != "answer" {
			t.Errorf("Set(%q) lost the other fields: %v", c.set, r.Data.Fields)
		}
	}
}

func TestSetErrors(t *testing.T) {
	for _, c := range []struct {
		set, want string
	}{
		{"lora.rank=32", `--set lora.rank=32: unknown key "lora.rank" (did you mean "lora.r"?)`},
		{"optimizer.learning_rate=1e-4", `--set optimizer.learning_rate=1e-4: unknown key "optimizer.learning_rate" (did you mean "optimizer.lr"?)`},
		{"lr=1e-4", `--set lr=1e-4: unknown key "lr" (did you mean "optimizer.lr"?)`},
		{"lora.r=abc", `--set lora.r=abc: lora.r: expected a positive integer, got string "abc"`},
		{"lora.r=-3", `--set lora.r=-3: lora.r: expected a positive integer, got -3`},
		{"lora.r=", `--set lora.r=: lora.r: expected a positive integer, got nothing`},
		{"lora.r=null", `lora.r: expected a positive integer, got null`},
		{"lora.r=[1", `--set lora.r=[1: lora.r: expected a positive integer; "[1" is not a YAML value`},
		{"lora.r.x=1", `--set lora.r.x=1: lora.r: takes a positive integer, so it has no key "x"`},
		{"lora=3", `--set lora=3: lora: expected a mapping of keys (the lora section), got 3`},
		{"lora={r: x}", `--set lora={r: x}: lora.r: expected a positive integer, got string "x"`},
		{"lora={rank: 4}", `--set lora={rank: 4}: unknown key "lora.rank" (did you mean "lora.r"?)`},
		{"data.files={a: b}", `data.files: expected a list of strings, got a mapping`},
		{"data.packing=maybe", `data.packing: expected true or false, got string "maybe"`},
		{"data.fields.instrucion=q", `unknown key "data.fields.instrucion" (did you mean "data.fields.instruction"?)`},
		{"data.fields={prompt: [a]}", `data.fields.prompt: expected a string, got a list`},
		{"optimizer.betas=[0.9, x]", `optimizer.betas[1]: expected a non-negative number, got string "x"`},
		{"noequals", `--set: "noequals": want KEY=VALUE`},
		{"=3", `want KEY=VALUE`},
	} {
		r := DefaultRecipe()
		err := r.Set(c.set)
		if err == nil {
			t.Errorf("Set(%q) = nil error, want %s", c.set, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set(%q):\n got %s\nwant %s", c.set, err, c.want)
		}
		if !reflect.DeepEqual(r, DefaultRecipe()) {
			t.Errorf("Set(%q) failed but changed the recipe: %+v", c.set, r)
		}
	}
}

func TestValidateEachRule(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(r *Recipe)
		key    string // "" for a valid recipe
	}{
		{"valid", func(r *Recipe) {}, ""},
		{"full", func(r *Recipe) { r.Method = "full" }, ""},
		{"max steps without epochs", func(r *Recipe) { r.Epochs, r.MaxSteps = 0, 100 }, ""},
		{"sgd nesterov", func(r *Recipe) { r.Optimizer.Name, r.Optimizer.Momentum, r.Optimizer.Nesterov = "sgd", 0.9, true }, ""},
		{"regex only", func(r *Recipe) { r.LoRA.TargetModules, r.LoRA.TargetRegex = nil, `.*\.(q|v)_proj` }, ""},
		{"eval", func(r *Recipe) { r.EvalSteps, r.Data.EvalFraction = 10, 0.1 }, ""},
		{"every format", func(r *Recipe) { r.Data.Format = "sharegpt" }, ""},
		{"no model", func(r *Recipe) { r.Model = " " }, "model"},
		{"revision of a gguf", func(r *Recipe) { r.Model, r.Revision = "m.gguf", "main" }, "revision"},
		{"method", func(r *Recipe) { r.Method = "qlora" }, "method"},
		{"init_adapter with full", func(r *Recipe) { r.Method, r.InitAdapter = "full", "./a" }, "init_adapter"},
		{"optimizer", func(r *Recipe) { r.Optimizer.Name = "adam" }, "optimizer.name"},
		{"schedule", func(r *Recipe) { r.Schedule.Name = "cosine_with_restarts" }, "schedule.name"},
		{"lr 0", func(r *Recipe) { r.Optimizer.LR = 0 }, "optimizer.lr"},
		{"lr negative", func(r *Recipe) { r.Optimizer.LR = -1 }, "optimizer.lr"},
		{"lr NaN", func(r *Recipe) { r.Optimizer.LR = math.NaN() }, "optimizer.lr"},
		{"one beta", func(r *Recipe) { r.Optimizer.Betas = []float64{0.9} }, "optimizer.betas"},
		{"beta 1", func(r *Recipe) { r.Optimizer.Betas = []float64{0.9, 1} }, "optimizer.betas[1]"},
		{"nesterov without momentum", func(r *Recipe) { r.Optimizer.Name, r.Optimizer.Nesterov = "sgd", true }, "optimizer.nesterov"},
		{"micro batch", func(r *Recipe) { r.MicroBatchSize = 0 }, "micro_batch_size"},
		{"accumulation", func(r *Recipe) { r.GradientAccumulationSteps = 0 }, "gradient_accumulation_steps"},
		{"epochs", func(r *Recipe) { r.Epochs = 0 }, "epochs"},
		{"rank", func(r *Recipe) { r.LoRA.R = 0 }, "lora.r"},
		{"alpha", func(r *Recipe) { r.LoRA.Alpha = 0 }, "lora.alpha"},
		{"dropout", func(r *Recipe) { r.LoRA.Dropout = 1 }, "lora.dropout"},
		{"init", func(r *Recipe) { r.LoRA.Init = "pissa" }, "lora.init"},
		{"no targets", func(r *Recipe) { r.LoRA.TargetModules = nil }, "lora.target_modules"},
		{"all-linear and more", func(r *Recipe) { r.LoRA.TargetModules = []string{"all-linear", "lm_head"} }, "lora.target_modules"},
		{"bad regex", func(r *Recipe) { r.LoRA.TargetRegex = "(" }, "lora.target_regex"},
		{"negative layer", func(r *Recipe) { r.LoRA.TargetModules, r.LoRA.LayersToTransform = []string{"q_proj"}, []int{-1} }, "lora.layers_to_transform[0]"},
		{"layers of named modules", func(r *Recipe) { r.LoRA.TargetModules, r.LoRA.LayersToTransform = []string{"q_proj"}, []int{0, 1} }, ""},
		{"layers of all-linear", func(r *Recipe) { r.LoRA.LayersToTransform = []int{0} }, "lora.layers_to_transform"},
		{"layers of a regex", func(r *Recipe) { r.LoRA.TargetRegex, r.LoRA.LayersToTransform = "q_proj", []int{0} }, "lora.layers_to_transform"},
		{"no files", func(r *Recipe) { r.Data.Files = nil }, "data.files"},
		{"empty file", func(r *Recipe) { r.Data.Files = []string{"a", ""} }, "data.files[1]"},
		{"format", func(r *Recipe) { r.Data.Format = "chatml" }, "data.format"},
		{"field", func(r *Recipe) { r.Data.Fields = map[string]string{"question": "q"} }, "data.fields.question"},
		{"field renamed to nothing", func(r *Recipe) { r.Data.Fields = map[string]string{"input": ""} }, "data.fields.input"},
		{"train_on", func(r *Recipe) { r.Data.TrainOn = "inputs" }, "data.train_on"},
		{"truncation", func(r *Recipe) { r.Data.Truncation = "cut" }, "data.truncation"},
		{"prompt_style", func(r *Recipe) { r.Data.PromptStyle = "alpaca" }, "data.prompt_style"},
		{"eval_fraction", func(r *Recipe) { r.Data.EvalFraction = 1 }, "data.eval_fraction"},
		{"eval_fraction and files", func(r *Recipe) { r.Data.EvalFraction, r.Data.EvalFiles = 0.1, []string{"e.jsonl"} }, "data.eval_fraction"},
		{"sequence_len", func(r *Recipe) { r.Data.SequenceLen = 1 }, "data.sequence_len"},
		{"nan_policy", func(r *Recipe) { r.NaNPolicy = "ignore" }, "nan_policy"},
		{"save_total_limit", func(r *Recipe) { r.SaveTotalLimit = -1 }, "save_total_limit"},
		{"warmup_ratio", func(r *Recipe) { r.Schedule.WarmupRatio = 1 }, "schedule.warmup_ratio"},
		{"min_lr above lr", func(r *Recipe) { r.Schedule.MinLR = 1 }, "schedule.min_lr"},
		{"min_lr of linear", func(r *Recipe) { r.Schedule.Name, r.Schedule.MinLR = "linear", 1e-6 }, "schedule.min_lr"},
		{"eval without data", func(r *Recipe) { r.EvalSteps = 100 }, "eval_steps"},
		{"output_dir", func(r *Recipe) { r.OutputDir = "" }, "output_dir"},
		{"max_grad_norm", func(r *Recipe) { r.MaxGradNorm = math.Inf(1) }, "max_grad_norm"},
	} {
		r := validRecipe()
		c.change(r)
		err := r.Validate()
		if c.key == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if keys := problemKeys(t, err); !slices.Equal(keys, []string{c.key}) {
			t.Errorf("%s: problems with %v, want %s: %v", c.name, keys, c.key, err)
		}
	}
}

func TestValidateCollects(t *testing.T) {
	r := DefaultRecipe()
	r.Method = "qlora"
	r.Optimizer.Name = "adam"
	r.Optimizer.LR = 0
	r.LoRA.R = 0
	r.Data.Format = "chatml"
	r.Data.SequenceLen = 1
	r.MicroBatchSize = 0
	r.NaNPolicy = "ignore"
	err := r.Validate()
	want := []string{"model", "method", "data.files", "data.format", "data.sequence_len", "lora.r",
		"optimizer.name", "optimizer.lr", "micro_batch_size", "nan_policy"}
	if keys := problemKeys(t, err); !slices.Equal(keys, want) {
		t.Errorf("problems with\n %v, want\n %v", keys, want)
	}
	msg := err.Error()
	for _, s := range []string{
		"10 problems in the recipe:\n",
		"\n  - method: got \"qlora\"; want lora or full",
		"\n  - optimizer.name: got \"adam\"; want adamw, adamw8bit or sgd (did you mean \"adamw\"?)",
		"\n  - data.format: got \"chatml\"; want text, completion, alpaca, messages, sharegpt or tokens",
		"\n  - lora.r: got 0; want a rank of at least 1",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("message lacks %q:\n%s", s, msg)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", t.TempDir()) // an empty cache: repo ids are not found
	dir := t.TempDir()
	train := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(train, []byte(`{"text": "hi"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "adapter")
	notAdapter := filepath.Join(dir, "not-adapter")
	for _, d := range []string{adapter, notAdapter} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if err := os.WriteFile(filepath.Join(adapter, f), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(notAdapter, "adapter_config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}

	base := func() *Recipe {
		r := validRecipe()
		r.Model = goldenLlama
		r.Data.Files = []string{train}
		r.Data.SequenceLen = 256 // the model's max_position_embeddings
		r.OutputDir = filepath.Join(dir, "out")
		return r
	}
	for _, c := range []struct {
		name   string
		change func(r *Recipe)
		keys   []string
		want   []string // in the message
	}{
		{"valid", func(r *Recipe) {}, nil, nil},
		{"valid adapter and glob", func(r *Recipe) {
			r.InitAdapter = adapter
			r.Data.Files = []string{filepath.Join(dir, "*.jsonl"), dir}
		}, nil, nil},
		{"missing model directory", func(r *Recipe) { r.Model = filepath.Join(dir, "no-such-model") }, []string{"model"},
			[]string{"model: model directory " + filepath.Join(dir, "no-such-model") + " does not exist"}},
		{"repo id not cached", func(r *Recipe) { r.Model = "whet-test/no-such-model" }, []string{"model"},
			[]string{`model: "whet-test/no-such-model" not found locally`, "models--whet-test--no-such-model",
				"huggingface-cli download whet-test/no-such-model"}},
		{"model is an adapter", func(r *Recipe) { r.Model = adapter }, []string{"model"}, []string{"holds a PEFT adapter, not a model"}},
		{"missing gguf", func(r *Recipe) { r.Model = filepath.Join(dir, "model.gguf") }, []string{"model"},
			[]string{"model: no such file: " + filepath.Join(dir, "model.gguf")}},
		{"not a gguf", func(r *Recipe) { r.Model = train + ".gguf"; copyFile(t, train, r.Model) }, []string{"model"}, []string{"gguf"}},
		{"missing data file", func(r *Recipe) { r.Data.Files = []string{"no-such-file.jsonl"} }, []string{"data.files"},
			[]string{"data.files: no such file or directory: no-such-file.jsonl (relative paths are read from the working directory"}},
		{"glob that matches nothing", func(r *Recipe) { r.Data.Files = []string{train, filepath.Join(dir, "*.parquet")} },
			[]string{"data.files[1]"}, []string{"matches no file"}},
		{"missing eval file", func(r *Recipe) { r.Data.EvalFiles = []string{filepath.Join(dir, "eval.jsonl")} },
			[]string{"data.eval_files"}, []string{"no such file or directory"}},
		{"missing adapter", func(r *Recipe) { r.InitAdapter = filepath.Join(dir, "nope") }, []string{"init_adapter"},
			[]string{"no such directory"}},
		{"adapter without weights", func(r *Recipe) { r.InitAdapter = notAdapter }, []string{"init_adapter"},
			[]string{"is not a PEFT adapter directory: it has no adapter_model.safetensors"}},
		{"sequence_len above the model's", func(r *Recipe) { r.Data.SequenceLen = 257 }, []string{"data.sequence_len"},
			[]string{"data.sequence_len: 257 is more than the model's context length, 256 (max_position_embeddings in "}},
		{"output_dir is a file", func(r *Recipe) { r.OutputDir = train }, []string{"output_dir"}, []string{"is a file"}},
		{"several at once", func(r *Recipe) {
			r.Model = filepath.Join(dir, "no-such-model")
			r.Data.Files = []string{filepath.Join(dir, "none.jsonl")}
			r.InitAdapter = filepath.Join(dir, "nope")
		}, []string{"model", "data.files", "init_adapter"}, []string{"3 problems in the recipe:"}},
	} {
		r := base()
		c.change(r)
		err := r.CheckFiles()
		if c.keys == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if keys := problemKeys(t, err); !slices.Equal(keys, c.keys) {
			t.Errorf("%s: problems with %v, want %v: %v", c.name, keys, c.keys, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: message lacks %q:\n%v", c.name, w, err)
			}
		}
	}

	// The not-found error is hf's, for callers that want its details.
	r := base()
	r.Model = "whet-test/no-such-model"
	var nf *hf.NotFoundError
	if err := r.CheckFiles(); !errors.As(err, &nf) || nf.Model != "whet-test/no-such-model" {
		t.Errorf("CheckFiles: %v does not wrap an *hf.NotFoundError", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFilesGGUF(t *testing.T) {
	if _, err := os.Stat(storiesGGUF); err != nil {
		t.Skipf("skipping: %s is absent (the stories260K model lives in shared/models beside the repository, not in it)", storiesGGUF)
	}
	train := filepath.Join(t.TempDir(), "train.jsonl")
	if err := os.WriteFile(train, []byte(`{"text": "Once upon a time"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := validRecipe()
	r.Model = storiesGGUF
	r.Data.Files = []string{train}
	r.Data.SequenceLen = 2048 // llama.context_length
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckFiles(); err != nil {
		t.Errorf("sequence_len 2048: %v", err)
	}
	r.Data.SequenceLen = 4096
	err := r.CheckFiles()
	if keys := problemKeys(t, err); !slices.Equal(keys, []string{"data.sequence_len"}) ||
		!strings.Contains(err.Error(), "4096 is more than the model's context length, 2048 (llama.context_length in ") {
		t.Errorf("sequence_len 4096: %v", err)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	full := validRecipe()
	full.Revision = "0123456789abcdef0123456789abcdef01234567"
	full.Data.Files = []string{"a.jsonl", "data/*.parquet", "yes", "1e-4", "~", "", "a: b", "# not a comment", "[x]", "not UTF-8: \xff"}
	full.Data.Fields = map[string]string{"instruction": "question", "output": "null"}
	full.Data.EvalFraction = 0.015
	full.Data.ChatTemplate = "{% for m in messages %}\n{{ m.content }}\n{% endfor %}"
	full.LoRA.TargetModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	full.LoRA.LayersToTransform = []int{0, 1, 2}
	full.LoRA.TargetRegex = `.*\.(q|v)_proj$` // not valid with layers_to_transform, but it round-trips
	full.Optimizer.LR = 1.0 / 3
	full.Optimizer.Eps = 1e-300
	full.Seed = math.MaxUint64
	full.MemoryLimitGB = 12.5
	full.NaNPolicy = "skip"
	recipes := []*Recipe{validRecipe(), full}
	paths, _ := filepath.Glob(filepath.Join("..", "recipes", "*.yaml"))
	for _, p := range paths {
		r, err := LoadRecipe(p)
		if err != nil {
			t.Fatal(err)
		}
		recipes = append(recipes, r)
	}
	for i, r := range recipes {
		y, err := r.YAML()
		if err != nil {
			t.Fatalf("recipe %d: YAML: %v", i, err)
		}
		back, err := ParseRecipe("recipe.yaml", y)
		if err != nil {
			t.Fatalf("recipe %d: ParseRecipe(YAML()): %v\n%s", i, err, y)
		}
		if !reflect.DeepEqual(back, r) {
			t.Errorf("recipe %d does not round-trip:\n got %+v\nwant %+v\n%s", i, back, r, y)
		}
	}
	y, _ := validRecipe().YAML()
	for _, s := range []string{"model: meta-llama/Llama-3.2-1B-Instruct\n", "\nlora:\n  r: 16\n", "  target_modules: [all-linear]\n",
		"  betas: [0.9, 0.999]\n", "\nnan_policy: stop\n"} {
		if !strings.Contains(string(y), s) {
			t.Errorf("YAML() lacks %q:\n%s", s, y)
		}
	}
}

// TestDocsListEveryKey keeps docs/recipes.md in step with the schema.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "recipes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range recipeKeys() {
		if !strings.Contains(string(doc), "`"+k.path+"`") {
			t.Errorf("docs/recipes.md does not document `%s`", k.path)
		}
	}
}

func TestSuggestions(t *testing.T) {
	paths := map[string]bool{}
	for _, k := range recipeKeys() {
		paths[k.path] = true
	}
	for from, to := range keySynonyms {
		if !paths[to] {
			t.Errorf("synonym %s -> %s: no such key", from, to)
		}
		if paths[from] {
			t.Errorf("synonym %s is a key itself", from)
		}
	}
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"lora", "lora", 0}, {"rank", "r", 3}, {"ab", "ba", 1}, {"ca", "abc", 3},
		{"optimzer", "optimizer", 1}, {"packnig", "packing", 1}, {"kitten", "sitting", 3},
	} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

func FuzzParseRecipe(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "recipes", "*.yaml"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "lora: {r: 8}", "x: &a [*a]", "a: &a {<<: *a}", "lora:\n  <<: [*x]\n", "data:\n  files: a\n",
		"x-a: &a {r: 1}\nlora:\n  <<: [*a, *a]\n", "seed: 18446744073709551616", "epochs: 1e400",
		"data: {fields: {instruction: q, \"\": x}}", "? - a\n: b", "*a : 1", "--- !!map\n", "!!binary aGk=",
		"optimizer: {betas: [.inf, -.0]}", "lora: {r: 0x7fffffffffffffff}", "model: \"\\u0000\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		r, err := ParseRecipe("fuzz.yaml", src)
		if err != nil {
			_ = err.Error()
			return
		}
		if err := r.Validate(); err != nil {
			_ = err.Error()
		}
		y, err := r.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		back, err := ParseRecipe("back.yaml", y)
		if err != nil {
			t.Fatalf("ParseRecipe(YAML()): %v\n%s", err, y)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v\n%s", back, r, y)
		}
	})
}

func FuzzRecipeSet(f *testing.F) {
	for _, s := range []string{"lora.r=32", "data.files=[a,b]", "data.fields.input=x", "lora={r: 1}", "a.b.c=",
		"optimizer.betas=[1e9, 0]", "model=\"x", "data.fields={input: ~}", "seed=0x10", "data.files=\xef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := DefaultRecipe()
		if err := r.Set(s); err != nil {
			_ = err.Error()
			if !reflect.DeepEqual(r, DefaultRecipe()) {
				t.Fatalf("Set(%q) failed (%v) but changed the recipe", s, err)
			}
			return
		}
		y, err := r.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		back, err := ParseRecipe("back.yaml", y)
		if err != nil {
			t.Fatalf("Set(%q), then ParseRecipe(YAML()): %v\n%s", s, err, y)
		}
		if !reflect.DeepEqual(*back, r) {
			t.Fatalf("Set(%q): round trip:\n got %+v\nwant %+v", s, *back, r)
		}
	})
}
