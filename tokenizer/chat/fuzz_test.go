package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary sources to Parse and, when they parse, renders
// them with a small conversation (under low step and work limits, so that
// every input finishes quickly). Neither may panic, and rendering is
// deterministic. The seeds are the real templates and the snippets.
//
// The seed corpus holds large templates; run with a short
// -fuzzminimizetime (e.g. 2s) or the minimizer takes most of the time.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/templates/*.jinja")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(string(b))
		}
	}
	if b, err := os.ReadFile("testdata/snippets.json"); err == nil {
		var snippets []struct{ T string }
		if json.Unmarshal(b, &snippets) == nil {
			for _, s := range snippets {
				f.Add(s.T)
			}
		}
	}
	msgs, err := convertMessages([]Message{
		{Role: "system", Content: "sys"},
		{Role: "user", Content: " hi\n"},
		{Role: "assistant", Content: "<think>x</think>yo", Extra: map[string]any{"tool_calls": []any{
			map[string]any{"function": map[string]any{"name": "f", "arguments": map[string]any{"a": 1}}}}}},
		{Role: "user", Content: "é"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Parse("fuzz", src)
		if err != nil {
			return
		}
		render := func() (string, error) {
			vars := map[string]value{"messages": newList(msgs), "add_generation_prompt": true,
				"bos_token": "<s>", "eos_token": "</s>", "tools": nil, "documents": nil}
			out, _, err := tmpl.run(&renderer{now: fixedNow, cur: -1, stepLimit: 20000, workLimit: 1 << 22}, vars)
			return out, err
		}
		a, errA := render()
		b, errB := render()
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("rendering is not deterministic: %q/%v vs %q/%v", a, errA, b, errB)
		}
	})
}
