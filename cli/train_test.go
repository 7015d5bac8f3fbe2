package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/whet-ai/whet/quickstart"
)

// TestQuickstart runs the built-in example end to end: it must train,
// save an adapter in PEFT's format, merge it, and have the merged model
// answer most questions it could not answer before.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the quickstart run in -short mode")
	}
	dir := t.TempDir()
	code, out, errOut := run(t, "quickstart", "--dir", dir, "--force")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	m := regexp.MustCompile(`answers (\d+) of (\d+) questions right \(before: (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no score in the output:\n%s", out)
	}
	right, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	before, _ := strconv.Atoi(m[3])
	if right < total*3/4 || right <= before {
		t.Errorf("merged model answers %d of %d (before: %d)", right, total, before)
	}
	for _, f := range []string{"lora-out/adapter_config.json", "lora-out/adapter_model.safetensors", "lora-out/metrics.jsonl", "lora-out/merged/config.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if !strings.Contains(out, "Next:") {
		t.Error("the quickstart does not say what to run next")
	}
}

// TestTrainBadRecipes: each broken recipe gives one clear error, before
// any work (no output directory is made).
func TestTrainBadRecipes(t *testing.T) {
	dir := t.TempDir()
	rc, err := quickstart.Build(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	base, data := rc.Model, rc.Data.Files[0]
	out := filepath.Join(dir, "out")
	for _, c := range []struct{ name, recipe, want string }{
		{"unknown key", "model: " + base + "\ndata:\n  files: [" + data + "]\nlora:\n  rank: 8\noutput_dir: " + out, `unknown key "lora.rank" (did you mean "lora.r"?)`},
		{"wrong type", "model: " + base + "\ndata:\n  files: [" + data + "]\nmicro_batch_size: two\noutput_dir: " + out, "micro_batch_size"},
		{"missing model", "model: " + filepath.Join(dir, "no-such-model") + "\ndata:\n  files: [" + data + "]\noutput_dir: " + out, "no-such-model"},
		{"missing dataset", "model: " + base + "\ndata:\n  files: [" + filepath.Join(dir, "nope.jsonl") + "]\noutput_dir: " + out, "nope.jsonl"},
		{"sequence too long", "model: " + base + "\ndata:\n  files: [" + data + "]\n  sequence_len: 100000\noutput_dir: " + out, "sequence_len"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "recipe.yaml")
			if err := os.WriteFile(path, []byte(c.recipe+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := run(t, "train", "--recipe", path)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want a failure mentioning %q", code, errOut, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("the output directory was made before the error")
			}
		})
	}
}

// TestTrainMergeStories fine-tunes the real stories260K model through the
// commands (train, merge, generate): the merged model tells the new story.
func TestTrainMergeStories(t *testing.T) {
	needStories(t)
	dir := t.TempDir()
	var lines []string
	for range 40 {
		lines = append(lines, `{"text": "Once upon a time, there was a dragon named Zorb. Zorb loved to eat blue cheese."}`)
	}
	data := filepath.Join(dir, "zorb.jsonl")
	os.WriteFile(data, []byte(strings.Join(lines, "\n")), 0o644)
	out := filepath.Join(dir, "out")
	recipe := filepath.Join(dir, "r.yaml")
	os.WriteFile(recipe, []byte(`model: `+stories+`
data:
  files: [`+data+`]
  format: text
  sequence_len: 64
lora:
  r: 8
  alpha: 16
  dropout: 0
optimizer:
  lr: 0.01
epochs: 3
micro_batch_size: 4
output_dir: `+out+"\n"), 0o644)
	if code, o, e := run(t, "train", "--recipe", recipe); code != 0 {
		t.Fatalf("train: exit %d: %s\n%s", code, e, o)
	}
	if code, o, e := run(t, "merge", "--adapter", out); code != 0 {
		t.Fatalf("merge: exit %d: %s\n%s", code, e, o)
	}
	code, text, e := run(t, "generate", "--model", filepath.Join(out, "merged"), "--prompt", "Once upon a time, there was a dragon named", "--max-new-tokens", "6")
	if code != 0 {
		t.Fatalf("generate: exit %d: %s", code, e)
	}
	if !strings.Contains(text, "Zorb") {
		t.Errorf("the merged model continues with %q, not the new character", text)
	}
}
