package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// previewModelDir writes a small Llama 3 model directory: the small Llama
// 3 tokenizer of package data's testdata, the first Llama 3 Instruct
// tokenizer_config.json (with its chat template), a config.json and a
// generation_config.json.
func previewModelDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join("..", "data", "testdata", "llama3-small.json"), "tokenizer.json")
	copyFile(filepath.Join("..", "tokenizer", "chat", "testdata", "tokenizer_config_llama3.json"), "tokenizer_config.json")
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.json", `{"model_type": "llama", "vocab_size": 2267, "hidden_size": 64, "intermediate_size": 128,
		"num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 2048}`)
	write("generation_config.json", `{"eos_token_id": [2257, 2265]}`)
	return dir
}

const previewChat = `{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Green."}]}
{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
{"messages": [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]}
`

func writeData(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPreviewChat(t *testing.T) {
	model := previewModelDir(t)
	path := writeData(t, "chat.jsonl", previewChat)
	code, out, errs := runIn(t, "", "preview", "--model", model, "--data", path, "-n", "2")
	want := "── row 0: 54 tokens, 9 trained (" + path + ":1)\n" +
		"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\n[[Blue.<|eot_id|>]]" +
		"<|start_header_id|>user<|end_header_id|>\n\nAnother?<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\n[[Green.<|eot_id|>]]\n" +
		"── row 1: 19 tokens, 4 trained (" + path + ":2)\n" +
		"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>" +
		"<|start_header_id|>assistant<|end_header_id|>\n\n[[hello<|eot_id|>]]\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	for _, s := range []string{`format "messages" detected from ` + path + `:1: field "messages" is a list of role/content objects`, "[[like this]]", "2 records, 2 examples"} {
		if !strings.Contains(errs, s) {
			t.Errorf("stderr %q lacks %q", errs, s)
		}
	}
	// Colour, and training on the last turn only.
	code, out, errs = runIn(t, "", "preview", "--model", model, "--data", path, "-n", "1", "--color", "always", "--train-on", "last")
	if code != 0 || !strings.Contains(out, "\x1b[1;32mGreen.<|eot_id|>\x1b[0m") || strings.Contains(out, "\x1b[1;32mBlue") || strings.Contains(out, "[[") {
		t.Errorf("--color always --train-on last: exit %d, stderr %q, stdout %q", code, errs, out)
	}
}

func TestPreviewJSONPacked(t *testing.T) {
	model := previewModelDir(t)
	path := writeData(t, "chat.jsonl", previewChat)
	code, out, errs := runIn(t, "", "preview", "--model", model, "--data", path, "--packing", "--sequence-len", "64", "--json", "-n", "5")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d rows, want 2 (54 tokens, then 19 + 19 packed):\n%s", len(lines), out)
	}
	type rowJSON struct {
		InputIDs    []int32  `json:"input_ids"`
		Labels      []int32  `json:"labels"`
		PositionIDs []int32  `json:"position_ids"`
		Segments    []int32  `json:"segments"`
		Sources     []string `json:"sources"`
	}
	var rows []rowJSON
	for _, l := range lines {
		var row rowJSON
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	second := rows[1]
	if len(second.InputIDs) != 64 || len(second.Labels) != 64 || len(second.PositionIDs) != 64 || len(second.Segments) != 64 || len(second.Sources) != 2 {
		t.Fatalf("row 1: lengths %d %d %d %d, %d sources", len(second.InputIDs), len(second.Labels), len(second.PositionIDs), len(second.Segments), len(second.Sources))
	}
	for i := range 64 {
		seg, pos := second.Segments[i], second.PositionIDs[i]
		var wantSeg, wantPos int32
		switch {
		case i < 19:
			wantSeg, wantPos = 0, int32(i)
		case i < 38:
			wantSeg, wantPos = 1, int32(i-19)
		default:
			wantSeg, wantPos = -1, 0
		}
		if seg != wantSeg || pos != wantPos {
			t.Fatalf("token %d: segment %d position %d, want %d and %d", i, seg, pos, wantSeg, wantPos)
		}
		if seg == -1 && second.Labels[i] != -100 {
			t.Fatalf("padding token %d has label %d", i, second.Labels[i])
		}
	}
	if second.Labels[19] != -100 || second.InputIDs[19] != 2256 {
		t.Errorf("the second document starts with %d (label %d), want an untrained <|begin_of_text|>", second.InputIDs[19], second.Labels[19])
	}
}

func TestPreviewAlpacaFields(t *testing.T) {
	model := previewModelDir(t)
	path := writeData(t, "qa.json", `[{"question": "Add 2 and 2.", "answer": "4"}]`)
	code, out, errs := runIn(t, "", "preview", "--model", filepath.Join(model, "tokenizer.json"), "--data", path,
		"--format", "alpaca", "--field", "instruction=question", "--field", "output=answer")
	want := "── row 0: "
	if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "### Instruction:\nAdd 2 and 2.\n\n### Response:\n[[4<|end_of_text|>]]\n") {
		t.Errorf("exit %d, stderr %q, stdout %q", code, errs, out)
	}
	// The same as a chat, through the template beside tokenizer.json.
	code, out, errs = runIn(t, "", "preview", "--model", filepath.Join(model, "tokenizer.json"), "--data", path,
		"--field", "instruction=question", "--field", "output=answer", "--prompt-style", "chat", "--train-on", "all")
	if code != 0 || !strings.Contains(out, "<|begin_of_text|>[[<|start_header_id|>user") || !strings.Contains(out, "4<|eot_id|>]]\n") {
		t.Errorf("prompt style chat: exit %d, stderr %q, stdout %q", code, errs, out)
	}
}

func TestPreviewErrors(t *testing.T) {
	model := previewModelDir(t)
	chatData := writeData(t, "chat.jsonl", previewChat)
	bad := writeData(t, "bad.jsonl", `{"text": "fine"}`+"\n"+`{"text": 12}`+"\n"+`{"text": "also fine"}`+"\n")
	bareTok := filepath.Join(t.TempDir(), "tokenizer.json")
	b, err := os.ReadFile(filepath.Join("..", "data", "testdata", "llama3-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bareTok, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"preview", "--data", chatData}, 2, "--model is required"},
		{[]string{"preview", "--model", model}, 2, "--data is required"},
		{[]string{"preview", "--model", model, "--data", chatData, "-n", "0"}, 2, "-n 0"},
		{[]string{"preview", "--model", model, "--data", chatData, "--color", "blue"}, 2, `--color "blue"`},
		{[]string{"preview", "--model", model, "--data", chatData, "--field", "question"}, 2, `--field "question"`},
		{[]string{"preview", "--model", model, "--data", chatData, "--format", "chatml"}, 1, `unknown format "chatml"`},
		{[]string{"preview", "--model", model, "--data", chatData, "--train-on", "user"}, 1, `unknown train_on "user"`},
		{[]string{"preview", "--model", model, "--data", bad, "-n", "5"}, 1, bad + `:2: field "text": want a string, got a number`},
		{[]string{"preview", "--model", bareTok, "--data", chatData}, 1, "needs the model's chat template, and the model has none (no tokenizer_config.json beside"},
		{[]string{"preview", "--model", model, "--data", filepath.Join(t.TempDir(), "*.jsonl")}, 1, "matches no file"},
	} {
		code, _, errs := runIn(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("whet %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	// skip_invalid goes on and counts.
	code, out, errs := runIn(t, "", "preview", "--model", model, "--data", bad, "--skip-invalid")
	if code != 0 || strings.Count(out, "── row") != 2 || !strings.Contains(errs, "1 invalid records skipped") {
		t.Errorf("--skip-invalid: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestPreviewGGUF(t *testing.T) {
	if _, err := os.Stat(stories); err != nil {
		t.Skipf("%s is absent (it lives in ../shared beside the checkout): %v", stories, err)
	}
	path := writeData(t, "stories.txt", "Once upon a time\n\nthe end\n")
	code, out, errs := runIn(t, "", "preview", "--model", stories, "--data", path)
	want := "── row 0: 6 tokens, 5 trained (" + path + ":1)\n<s>[[Once upon a time</s>]]\n"
	if code != 0 || !strings.HasPrefix(out, want) || strings.Count(out, "── row") != 2 {
		t.Errorf("exit %d, stderr %q, stdout %q; want it to start with %q", code, errs, out, want)
	}
}
