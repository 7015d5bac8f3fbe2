package data

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/whet-ai/whet/tokenizer"
	"github.com/whet-ai/whet/tokenizer/chat"
)

// Tokenizers are loaded once per test binary; they are safe for
// concurrent use.
var (
	tokOnce   sync.Map // path -> *tokenizer.Tokenizer
	llama3Tok = filepath.Join("testdata", "llama3-small.json")
	smallTok  = filepath.Join("..", "tokenizer", "testdata", "bytelevel-small.json")
)

func loadTok(t testing.TB, path string) *tokenizer.Tokenizer {
	t.Helper()
	if v, ok := tokOnce.Load(path); ok {
		return v.(*tokenizer.Tokenizer)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tokOnce.Store(path, tok)
	return tok
}

// llama3Config is the first Llama 3 Instruct tokenizer_config.json (its
// chat template always ends with an assistant header).
const llama3Config = "../tokenizer/chat/testdata/tokenizer_config_llama3.json"

// llama3Model is the small Llama 3 tokenizer with a Llama 3 chat template.
func llama3Model(t testing.TB) *Model {
	t.Helper()
	data, err := os.ReadFile(llama3Config)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, special, err := chat.FromTokenizerConfig(data, llama3Config, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(loadTok(t, llama3Tok), tmpl, special)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// templateModel is the small Llama 3 tokenizer with a template from
// tokenizer/chat's testdata.
func templateModel(t testing.TB, name string) *Model {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "tokenizer", "chat", "testdata", "templates", name))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Parse(name, string(src))
	if err != nil {
		t.Fatal(err)
	}
	special := chat.SpecialTokens{BOS: "<|begin_of_text|>", EOS: "<|eot_id|>"}
	m, err := NewModel(loadTok(t, llama3Tok), tmpl, special)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// plainModel is the small GPT-2-like tokenizer without a chat template.
func plainModel(t testing.TB) *Model {
	t.Helper()
	m, err := NewModel(loadTok(t, smallTok), nil, chat.SpecialTokens{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonl writes records as JSON Lines.
func jsonl(t testing.TB, records ...any) string {
	t.Helper()
	var b strings.Builder
	for _, r := range records {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// config returns a small configuration for files.
func config(files ...string) Config {
	return Config{Files: files, SequenceLen: 256, Workers: 2}
}

// openDS opens a dataset or fails the test.
func openDS(t testing.TB, cfg Config, m *Model) *Dataset {
	t.Helper()
	d, err := Open(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// drain returns all the batches of an iterator.
func drain(t testing.TB, it *Iterator) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// examples returns every document of a dataset's training iterator, one
// per batch row (batch size 1, no packing), with their batches.
func examples(t testing.TB, cfg Config, m *Model) ([]Example, *Iterator) {
	t.Helper()
	cfg.BatchSize, cfg.Packing, cfg.LengthBucketing = 1, false, false
	it, err := openDS(t, cfg, m).Train(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []Example
	for _, b := range drain(t, it) {
		ids, labels, _, seg := b.Row(0)
		n := 0
		for n < len(seg) && seg[n] == 0 {
			n++
		}
		out = append(out, Example{InputIDs: ids[:n], Labels: labels[:n], Source: b.Sources[0]})
	}
	return out, it
}

// trainedText decodes the runs of trained tokens of an example.
func trainedText(tok *tokenizer.Tokenizer, ex Example) []string {
	var runs []string
	var cur []int
	flush := func() {
		if cur != nil {
			runs = append(runs, tok.Decode(cur, false))
			cur = nil
		}
	}
	for i, id := range ex.InputIDs {
		if ex.Labels[i] != IgnoreIndex {
			cur = append(cur, int(id))
		} else {
			flush()
		}
	}
	flush()
	return runs
}

// decode decodes an example's tokens.
func decode(tok *tokenizer.Tokenizer, ids []int32) string {
	x := make([]int, len(ids))
	for i, id := range ids {
		x[i] = int(id)
	}
	return tok.Decode(x, false)
}
