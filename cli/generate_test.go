package cli

import (
	"strings"
	"testing"
)

const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"

// TestGenerateStories: whet generate gives the known greedy text of the
// real model, read from GGUF (interleaved RoPE) and from the Hugging Face
// directory whet convert makes of it (half-split RoPE, permuted weights).
func TestGenerateStories(t *testing.T) {
	needStories(t)
	for _, model := range []string{stories, convertTo(t, stories)} {
		code, out, errOut := run(t, "generate", "--model", model, "--max-new-tokens", "40")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", model, code, errOut)
		}
		if got := strings.TrimSuffix(out, "\n"); got != storiesGreedy {
			t.Errorf("%s:\n got %q\nwant %q", model, got, storiesGreedy)
		}
	}
	// A prompt, given as text and as ids, continues the same way.
	code, text, errOut := run(t, "generate", "--model", stories, "--prompt", "Once upon a time", "--max-new-tokens", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, byIDs, errOut := run(t, "generate", "--model", stories, "--prompt-ids", "[1, 403, 407, 261, 378]", "--max-new-tokens", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(storiesGreedy, "Once upon a time"+strings.TrimSuffix(text, "\n")) {
		t.Errorf("continuation of the text prompt %q does not follow the greedy text", text)
	}
	if byIDs != text {
		t.Errorf("--prompt-ids gave %q, --prompt %q", byIDs, text)
	}
	// Sampling with a seed is reproducible.
	args := []string{"generate", "--model", stories, "--max-new-tokens", "20", "--temperature", "0.9", "--top-p", "0.9", "--seed", "7"}
	_, s1, _ := run(t, args...)
	_, s2, _ := run(t, args...)
	if s1 != s2 || s1 == "" {
		t.Errorf("seeded sampling differs between runs: %q, %q", s1, s2)
	}
}

func TestGenerateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"generate"},
		{"generate", "--model", "x", "--top-p", "0"},
		{"generate", "--model", "x", "--prompt", "a", "--prompt-ids", "1"},
		{"generate", "--model", "x", "--temperature", "-1"},
	} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	code, _, errOut := run(t, "generate", "--model", "/nonexistent/model-dir")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/model-dir") {
		t.Errorf("missing model: exit %d, %q", code, errOut)
	}
}
