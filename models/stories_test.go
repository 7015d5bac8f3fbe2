package models

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/backend"
	_ "github.com/whet-ai/whet/backend/cpu"
)

// storiesPath is the shared real model, relative to the package directory.
var storiesPath = filepath.Join("..", "..", "shared", "models", "stories260K.gguf")

// storiesWant is the greedy continuation of BOS alone, 40 tokens, from the
// model's README (checked with an independent implementation).
const storiesWant = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"

func needStories(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(storiesPath); err != nil {
		t.Skipf("skipping: the shared model %s is absent (%v)", storiesPath, err)
	}
	return storiesPath
}

func greedyText(t *testing.T, l *Loaded, n int) string {
	t.Helper()
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	bos, ok := l.Tokenizer.BOS()
	if !ok {
		t.Fatal("no BOS token")
	}
	ids, err := Generate(b, l.Model, []int{bos}, GenerateOptions{MaxNewTokens: n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l.Tokenizer.Decode(ids, true)
}

// TestStoriesGreedy: the real pretrained model, read from GGUF (interleaved
// RoPE), decodes greedily to the known text.
func TestStoriesGreedy(t *testing.T) {
	path := needStories(t)
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	l, err := LoadGGUF(b, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := greedyText(t, l, 40); got != storiesWant {
		t.Errorf("greedy from BOS:\n got %q\nwant %q", got, storiesWant)
	}
}
