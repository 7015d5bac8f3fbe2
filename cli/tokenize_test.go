package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	code := Main(&Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

const stories = "../../shared/models/stories260K.gguf"

func TestTokenizeGGUF(t *testing.T) {
	if _, err := os.Stat(stories); err != nil {
		t.Skipf("%s is absent (it lives in ../shared beside the checkout): %v", stories, err)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		// Ids checked against SentencePiece in package tokenizer's golden data.
		{"Once upon a time\n", nil, `{"ids":[1,403,407,261,378]}` + "\n"},
		{"Once upon a time\n", []string{"--no-special", "--tokens"}, `{"ids":[403,407,261,378],"tokens":["▁Once","▁upon","▁a","▁time"]}` + "\n"},
		{"[1, 403, 407]\n403 407\n", []string{"--decode", "--skip-special"}, `{"text":"Once upon"}` + "\n" + `{"text":"Once upon"}` + "\n"},
		{"Once upon a time\n\nthe end\n", []string{"--count"}, `{"max":5,"texts":3,"tokens":10}` + "\n"},
		{"a\nb", []string{"--whole", "--no-special", "--tokens"}, `{"ids":[261,13,430],"tokens":["▁a","<0x0A>","b"]}` + "\n"},
	} {
		args := append([]string{"tokenize", "--model", stories}, tc.args...)
		code, out, errs := runIn(t, tc.stdin, args...)
		if code != 0 || out != tc.want {
			t.Errorf("whet %v <<< %q: exit %d, stdout %q, stderr %q; want %q", tc.args, tc.stdin, code, out, errs, tc.want)
		}
	}
}

func TestTokenizeFileAndErrors(t *testing.T) {
	tokJSON := filepath.Join("..", "tokenizer", "testdata", "bytelevel-small.json")
	in := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(in, []byte("hello world\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runIn(t, "", "tokenize", "--model", tokJSON, "--no-special", in)
	if code != 0 || !strings.HasPrefix(out, `{"ids":[`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("tokenize a file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Encoding then decoding gives the line back.
	ids := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(out), `{"ids":`), "}")
	code, out, errs = runIn(t, ids+"\n", "tokenize", "--model", tokJSON, "--decode")
	if code != 0 || out != `{"text":"hello world"}`+"\n" {
		t.Errorf("decode %s: exit %d, stdout %q, stderr %q", ids, code, out, errs)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"tokenize"}, 2, "--model is required"},
		{"", []string{"tokenize", "--model", tokJSON, "a", "b"}, 2, "at most one input file"},
		{"", []string{"tokenize", "--model", filepath.Join(t.TempDir(), "missing.json")}, 1, "missing.json"},
		{"", []string{"tokenize", "--model", "no-such-org/no-such-model"}, 1, "huggingface-cli download no-such-org/no-such-model"},
		{"1 x 2\n", []string{"tokenize", "--model", tokJSON, "--decode"}, 1, `line 1: "x" is not a token id`},
		{"[1, \n", []string{"tokenize", "--model", tokJSON, "--decode"}, 1, "want a JSON array of token ids"},
		{"", []string{"tokenize", "--model", tokJSON, filepath.Join(t.TempDir(), "nope.txt")}, 1, "nope.txt"},
	} {
		code, _, errs := runIn(t, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("whet %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestTokenizeModelDir resolves a Hugging Face directory: tokenizer.json
// found beside config.json and checked against its vocab_size.
func TestTokenizeModelDir(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "tokenizer", "testdata", "bytelevel-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(vocab int) {
		cfg := `{"model_type":"llama","vocab_size":` + itoa(vocab) + `,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":128}`
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	config(1 << 20)
	if code, out, errs := runIn(t, "hello\n", "tokenize", "--model", dir, "--count"); code != 0 || !strings.Contains(out, `"texts":1`) {
		t.Errorf("model dir: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	config(10)
	if code, _, errs := runIn(t, "hello\n", "tokenize", "--model", dir); code != 1 || !strings.Contains(errs, "tokenizer.json") {
		t.Errorf("vocab_size 10: exit %d, stderr %q; want an error naming tokenizer.json", code, errs)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
