package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whet-ai/whet/internal/testref"
	"github.com/whet-ai/whet/tokenizer"
)

// llama3Tokenizer loads Llama 3's tokenizer.json from the test cache that
// scripts/fetch-test-deps fills, or skips.
func llama3Tokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	cache := os.Getenv("WHET_TEST_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "whet-test")
	}
	path := filepath.Join(cache, "node_modules", "@lenml", "tokenizer-llama3", "models", "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		testref.Missing(t, "Llama 3's tokenizer.json is not in %s (run scripts/fetch-test-deps): %v", cache, err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEncodeAssistantMask(t *testing.T) {
	tok := llama3Tokenizer(t)
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "lenml_llama3.jinja"))
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	tmpl, err := Parse("llama3", string(src))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "system", Content: "You are terse."},
		{Role: "user", Content: "Name a colour."},
		{Role: "assistant", Content: "Blue."},
		{Role: "user", Content: "Another?"},
		{Role: "assistant", Content: "Green, of course."},
	}
	e, err := tmpl.Encode(tok, msgs, Options{BOSToken: "<|begin_of_text|>", EOSToken: "<|eot_id|>"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(e.IDs, false); got != e.Text {
		t.Fatalf("tokens do not decode to the rendered text:\n%q\n%q", got, e.Text)
	}
	// The trained text is exactly each assistant reply and its end of turn.
	var trained []string
	var cur []int
	for i, id := range e.IDs {
		if e.Assistant[i] {
			cur = append(cur, id)
			continue
		}
		if cur != nil {
			trained = append(trained, tok.Decode(cur, false))
			cur = nil
		}
	}
	if cur != nil {
		trained = append(trained, tok.Decode(cur, false))
	}
	want := []string{"Blue.<|eot_id|>", "Green, of course.<|eot_id|>"}
	if strings.Join(trained, "|") != strings.Join(want, "|") {
		t.Errorf("assistant tokens decode to %q, want %q", trained, want)
	}
	if e.IDs[0] != 128000 || e.Message[0] != -1 {
		t.Errorf("first token %d (message %d), want <|begin_of_text|> 128000 outside every message", e.IDs[0], e.Message[0])
	}
}

// TestEncodeChatML runs everywhere: a ChatML template and the small
// byte-level tokenizer committed with package tokenizer.
func TestEncodeChatML(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("..", "testdata", "bytelevel-small.json"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "ollama_00_chatml.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse("chatml", string(src))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "user", Content: "hello there"},
		{Role: "assistant", Content: "general kenobi"},
		{Role: "user", Content: "you are a bold one"},
	}
	e, err := tmpl.Encode(tok, msgs, Options{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(e.IDs, false); got != e.Text {
		t.Fatalf("tokens do not decode to the rendered text:\n%q\n%q", got, e.Text)
	}
	var assistant, user []int
	for i, id := range e.IDs {
		switch {
		case e.Assistant[i]:
			assistant = append(assistant, id)
		case e.Message[i] == 0 || e.Message[i] == 2:
			user = append(user, id)
		}
	}
	if got := tok.Decode(assistant, false); got != "general kenobi<|im_end|>\n" {
		t.Errorf("assistant tokens decode to %q", got)
	}
	if got := tok.Decode(user, false); got != "hello thereyou are a bold one" {
		t.Errorf("user tokens decode to %q", got)
	}
}
