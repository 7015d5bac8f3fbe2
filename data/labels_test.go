package data

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/whet-ai/whet/internal/testref"
	"github.com/whet-ai/whet/tokenizer"
	"github.com/whet-ai/whet/tokenizer/chat"
)

// conversations for the masking tests: multi-turn, with and without a
// system turn, ending with a user turn.
var maskConversations = []struct {
	name string
	msgs []map[string]string
}{
	{"system and two turns", []map[string]string{
		{"role": "system", "content": "You are terse."},
		{"role": "user", "content": "Name a colour."},
		{"role": "assistant", "content": "Blue."},
		{"role": "user", "content": "Another?"},
		{"role": "assistant", "content": "Green, of course."},
	}},
	{"three turns", []map[string]string{
		{"role": "user", "content": "hello there"},
		{"role": "assistant", "content": "general kenobi"},
		{"role": "user", "content": "you are a bold one"},
		{"role": "assistant", "content": "kill him"},
		{"role": "user", "content": "back away, I will deal with this jedi slime myself"},
		{"role": "assistant", "content": "your move"},
	}},
	{"ends with a user turn", []map[string]string{
		{"role": "system", "content": "Answer in one word."},
		{"role": "user", "content": "Sky?"},
		{"role": "assistant", "content": "Blue"},
		{"role": "user", "content": "Grass?"},
	}},
}

// tokenText decodes each token of ids and returns the decoded text with
// the byte range of every token (the texts are ASCII, so tokens decode on
// their own).
func tokenText(tok *tokenizer.Tokenizer, ids []int32) (string, [][2]int) {
	var b strings.Builder
	ranges := make([][2]int, len(ids))
	for i, id := range ids {
		ranges[i][0] = b.Len()
		b.WriteString(tok.Decode([]int{int(id)}, false))
		ranges[i][1] = b.Len()
	}
	return b.String(), ranges
}

// llama3Turns finds, in a Llama 3 rendering, the byte ranges of each
// turn's header, content and <|eot_id|>, independently of package chat.
type llama3Turn struct {
	role                       string
	header, content, eot, stop int // header start, content start, eot start, eot end
}

func llama3Turns(t *testing.T, text string) []llama3Turn {
	t.Helper()
	var turns []llama3Turn
	for at := 0; ; {
		h := strings.Index(text[at:], "<|start_header_id|>")
		if h < 0 {
			return turns
		}
		h += at
		e := strings.Index(text[h:], "<|end_header_id|>\n\n")
		if e < 0 {
			t.Fatalf("unterminated header in %q", text[h:])
		}
		role := text[h+len("<|start_header_id|>") : h+e]
		c := h + e + len("<|end_header_id|>\n\n")
		k := strings.Index(text[c:], "<|eot_id|>")
		if k < 0 {
			t.Fatalf("turn without <|eot_id|> in %q", text[c:])
		}
		turns = append(turns, llama3Turn{role: role, header: h, content: c, eot: c + k, stop: c + k + len("<|eot_id|>")})
		at = c + k + len("<|eot_id|>")
	}
}

// TestLlama3Masking checks, on real Llama 3 chat templates, that every
// token of every assistant turn is trained, <|eot_id|> included, and that
// no token of a system or user turn, nor any header, is.
func TestLlama3Masking(t *testing.T) {
	type model struct {
		name string
		m    func(t *testing.T) *Model
	}
	models := []model{
		{"tokenizer_config_llama3.json", func(t *testing.T) *Model { return llama3Model(t) }},
		{"lenml_llama3.jinja", func(t *testing.T) *Model { return templateModel(t, "lenml_llama3.jinja") }},
		{"Llama 3.2 (ardanlabs)", func(t *testing.T) *Model {
			m := templateModel(t, "ardanlabs_Llama_3_2_1B_Instruct_GGUF.jinja")
			m.TemplateVars = map[string]any{"date_string": "26 Jul 2024"}
			return m
		}},
		{"real Llama 3 tokenizer.json", func(t *testing.T) *Model {
			m := llama3Model(t)
			m.Tokenizer = realLlama3(t)
			m.EOS, _ = m.Tokenizer.TokenToID("<|end_of_text|>")
			m.Pad = m.EOS
			return m
		}},
	}
	for _, mod := range models {
		for _, conv := range maskConversations {
			for _, on := range []TrainOn{TrainOnAssistant, TrainOnLast, TrainOnAll} {
				t.Run(fmt.Sprintf("%s/%s/%s", mod.name, conv.name, on), func(t *testing.T) {
					m := mod.m(t)
					dir := t.TempDir()
					path := writeFile(t, dir, "chat.jsonl", jsonl(t, map[string]any{"messages": conv.msgs}))
					cfg := config(path)
					cfg.TrainOn = on
					exs, _ := examples(t, cfg, m)
					if len(exs) != 1 {
						t.Fatalf("%d examples, want 1", len(exs))
					}
					ex := exs[0]
					text, ranges := tokenText(m.Tokenizer, ex.InputIDs)
					if decode(m.Tokenizer, ex.InputIDs) != text {
						t.Fatalf("tokens do not decode one by one")
					}
					if !strings.HasPrefix(text, "<|begin_of_text|>") || ex.Labels[0] != IgnoreIndex {
						t.Errorf("the example should start with an untrained <|begin_of_text|>: %q, label %d", text[:min(len(text), 20)], ex.Labels[0])
					}
					turns := llama3Turns(t, text)
					lastAsst := -1
					for i, tr := range turns {
						if tr.role == "assistant" {
							lastAsst = i
						}
					}
					// The text ends with the last trained turn (or, for all,
					// the last turn): no trailing assistant header, no EOS.
					lastKept := len(turns) - 1
					if on != TrainOnAll {
						lastKept = lastAsst
					}
					if !strings.HasSuffix(text, "<|eot_id|>") || turns[lastKept].stop != len(text) {
						t.Errorf("the example should end with turn %d's <|eot_id|>: ...%q", lastKept, text[max(0, len(text)-60):])
					}
					// Classify each token by the turn and part its first byte
					// falls in.
					for i, r := range ranges {
						want := on == TrainOnAll && i > 0
						where := "outside every turn"
						for k, tr := range turns {
							if r[0] >= tr.header && r[0] < tr.stop {
								part := "header"
								if r[0] >= tr.content {
									part = "content"
								}
								if r[0] >= tr.eot {
									part = "<|eot_id|>"
								}
								where = fmt.Sprintf("turn %d (%s) %s", k, tr.role, part)
								if tr.role == "assistant" && part != "header" {
									switch on {
									case TrainOnAssistant:
										want = true
									case TrainOnLast:
										want = k == lastAsst
									}
								}
							}
						}
						got := ex.Labels[i] != IgnoreIndex
						if got != want {
							t.Errorf("token %d %q in %s: trained %v, want %v", i, text[r[0]:r[1]], where, got, want)
						}
						if got && ex.Labels[i] != ex.InputIDs[i] {
							t.Errorf("token %d: label %d, want its id %d", i, ex.Labels[i], ex.InputIDs[i])
						}
					}
					if on == TrainOnAssistant {
						runs := trainedText(m.Tokenizer, ex)
						var want []string
						for _, msg := range conv.msgs {
							if msg["role"] == "assistant" {
								want = append(want, msg["content"]+"<|eot_id|>")
							}
						}
						if !reflect.DeepEqual(runs, want) {
							t.Errorf("trained runs %q, want %q", runs, want)
						}
					}
				})
			}
		}
	}
}

// realLlama3 loads Llama 3's own tokenizer.json from the test cache that
// scripts/fetch-test-deps fills, or skips.
func realLlama3(t *testing.T) *tokenizer.Tokenizer {
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
	return loadTok(t, path)
}

// TestChatEOS checks the EOS policy of conversations: a template that
// closes turns with a special token gets no EOS; one whose turns end in
// plain text gets one, trained.
func TestChatEOS(t *testing.T) {
	tok := loadTok(t, llama3Tok)
	src, err := os.ReadFile("../tokenizer/chat/testdata/templates/ollama_00_chatml.jinja")
	if err != nil {
		t.Fatal(err)
	}
	// In this tokenizer <|im_end|> is plain text, so a ChatML turn is not
	// closed by a special token.
	chatml, err := chat.Parse("chatml", string(src))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(tok, chatml, chat.SpecialTokens{EOS: "<|end_of_text|>"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := writeFile(t, dir, "c.jsonl", jsonl(t, map[string]any{"messages": []map[string]string{
		{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
	}}))
	exs, _ := examples(t, config(path), m)
	if len(exs) != 1 {
		t.Fatalf("%d examples", len(exs))
	}
	runs := trainedText(tok, exs[0])
	if want := []string{"hello<|im_end|>\n<|end_of_text|>"}; !reflect.DeepEqual(runs, want) {
		t.Errorf("ChatML with a plain-text end of turn: trained %q, want %q", runs, want)
	}
	// Llama 3: <|eot_id|> is special, so no EOS is added.
	exs, _ = examples(t, config(path), llama3Model(t))
	if text := decode(tok, exs[0].InputIDs); strings.Contains(text, "<|end_of_text|>") || !strings.HasSuffix(text, "hello<|eot_id|>") {
		t.Errorf("Llama 3 conversation %q: want it to end with hello<|eot_id|> and no EOS", text)
	}
}

// TestPlainLabels checks text, completion and alpaca labels and EOS.
func TestPlainLabels(t *testing.T) {
	m := llama3Model(t) // BOS from the post-processor, EOS <|end_of_text|>
	tok := m.Tokenizer
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		format  Format
		on      TrainOn
		style   PromptStyle
		record  map[string]any
		text    string   // the whole example
		trained []string // its trained runs
	}{
		{"text", "", "", "", map[string]any{"text": "Once upon a time"},
			"<|begin_of_text|>Once upon a time<|end_of_text|>", []string{"Once upon a time<|end_of_text|>"}},
		{"text ending with EOS", "", "", "", map[string]any{"text": "The end.<|end_of_text|>"},
			"<|begin_of_text|>The end.<|end_of_text|>", []string{"The end.<|end_of_text|>"}},
		{"completion", "", "", "", map[string]any{"prompt": "2+2=", "completion": "4"},
			"<|begin_of_text|>2+2=4<|end_of_text|>", []string{"4<|end_of_text|>"}},
		{"completion train all", "", TrainOnAll, "", map[string]any{"prompt": "Q: why?", "completion": " A: because"},
			"<|begin_of_text|>Q: why? A: because<|end_of_text|>", []string{"Q: why? A: because<|end_of_text|>"}},
		{"alpaca", "", "", "", map[string]any{"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"},
			"<|begin_of_text|>" + AlpacaPrompt("", "Add the numbers.", "2 and 2") + "4<|end_of_text|>", []string{"4<|end_of_text|>"}},
		{"alpaca without input", "", TrainOnLast, "", map[string]any{"instruction": "Say hi.", "output": "hi"},
			"<|begin_of_text|>" + AlpacaPrompt("", "Say hi.", "") + "hi<|end_of_text|>", []string{"hi<|end_of_text|>"}},
		{"alpaca as chat", "", "", PromptChat, map[string]any{"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"},
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAdd the numbers.\n\n2 and 2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>",
			[]string{"4<|eot_id|>"}},
		{"completion as chat", "", "", PromptChat, map[string]any{"prompt": "hi", "completion": "hello"},
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>",
			[]string{"hello<|eot_id|>"}},
		{"sharegpt", "", "", "", map[string]any{"conversations": []map[string]string{
			{"from": "system", "value": "Be brief."}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}}},
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>",
			[]string{"hello<|eot_id|>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".jsonl", jsonl(t, tc.record))
			cfg := config(path)
			cfg.Format, cfg.TrainOn, cfg.PromptStyle = tc.format, tc.on, tc.style
			exs, _ := examples(t, cfg, m)
			if len(exs) != 1 {
				t.Fatalf("%d examples", len(exs))
			}
			if got := decode(tok, exs[0].InputIDs); got != tc.text {
				t.Errorf("text %q, want %q", got, tc.text)
			}
			if got := trainedText(tok, exs[0]); !reflect.DeepEqual(got, tc.trained) {
				t.Errorf("trained %q, want %q", got, tc.trained)
			}
			if exs[0].Labels[0] != IgnoreIndex {
				t.Errorf("first label %d, want -100", exs[0].Labels[0])
			}
		})
	}
}

// TestTruncation checks the three truncation policies and the dropping of
// untrained examples.
func TestTruncation(t *testing.T) {
	m := llama3Model(t)
	tok := m.Tokenizer
	dir := t.TempDir()
	long := strings.Repeat("word ", 40)
	recs := []map[string]string{
		{"prompt": "short", "completion": " one"},
		{"prompt": long, "completion": " two"},
		{"prompt": "p", "completion": long},
	}
	var lines []any
	n := make([]int, len(recs)) // each record's length with BOS and EOS
	for i, r := range recs {
		lines = append(lines, r)
		n[i] = len(tok.Encode(r["prompt"]+r["completion"], true)) + 1
	}
	const T = 16
	if n[0] > T || n[1] <= 2*T || n[2] <= 2*T {
		t.Fatalf("record lengths %v do not suit the test", n)
	}
	path := writeFile(t, dir, "t.jsonl", jsonl(t, lines...))
	// Splitting record 1 leaves only its last piece trained; record 2's
	// pieces are all trained.
	split := []int{n[0]}
	if n[1]%T != 0 {
		split = append(split, n[1]%T)
	} else {
		split = append(split, T)
	}
	for a := 0; a < n[2]; a += T {
		split = append(split, min(T, n[2]-a))
	}
	untrainedPieces := int64((n[1]+T-1)/T - 1)
	for _, tc := range []struct {
		policy Truncation
		lens   []int
		stats  Stats
	}{
		{"", []int{n[0]}, Stats{TooLong: 2}},
		{TruncateDrop, []int{n[0]}, Stats{TooLong: 2}},
		{TruncateRight, []int{n[0], T}, Stats{Truncated: 2, Untrained: 1}},
		{TruncateSplit, split, Stats{Split: 2, Untrained: untrainedPieces}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			cfg := config(path)
			cfg.SequenceLen, cfg.Truncation = T, tc.policy
			exs, it := examples(t, cfg, m)
			var lens []int
			for _, ex := range exs {
				lens = append(lens, len(ex.InputIDs))
				if ex.Trained() == 0 || ex.Labels[0] != IgnoreIndex {
					t.Errorf("example %v: %d trained, first label %d", ex.Source, ex.Trained(), ex.Labels[0])
				}
			}
			if !reflect.DeepEqual(lens, tc.lens) {
				t.Errorf("lengths %v, want %v", lens, tc.lens)
			}
			st := it.Stats()
			got := Stats{TooLong: st.TooLong, Truncated: st.Truncated, Split: st.Split, Untrained: st.Untrained}
			if got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
	// Text is split by default.
	tp := writeFile(t, dir, "long.txt", long+"\n")
	cfg := config(tp)
	cfg.SequenceLen = T
	exs, it := examples(t, cfg, m)
	want := (len(tok.Encode(long, true)) + 1 + T - 1) / T
	if len(exs) != want || it.Stats().Split != 1 {
		t.Errorf("a long text: %d examples, stats %+v; want %d pieces", len(exs), it.Stats(), want)
	}
}

// TestTokensFormat checks pre-tokenized records.
func TestTokensFormat(t *testing.T) {
	m := plainModel(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "tok.jsonl", jsonl(t,
		map[string]any{"input_ids": []int{5, 6, 7, 8}},
		map[string]any{"input_ids": []int{5, 6, 7, 8}, "labels": []int{-100, -100, 7, 8}},
		map[string]any{"input_ids": []int{5, 6}, "labels": []int{5, -100}},
	))
	exs, it := examples(t, config(path), m)
	want := []Example{
		{InputIDs: []int32{5, 6, 7, 8}, Labels: []int32{-100, 6, 7, 8}},
		{InputIDs: []int32{5, 6, 7, 8}, Labels: []int32{-100, -100, 7, 8}},
	}
	if len(exs) != len(want) {
		t.Fatalf("%d examples, want %d", len(exs), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(exs[i].InputIDs, want[i].InputIDs) || !reflect.DeepEqual(exs[i].Labels, want[i].Labels) {
			t.Errorf("example %d: %v %v, want %v %v", i, exs[i].InputIDs, exs[i].Labels, want[i].InputIDs, want[i].Labels)
		}
	}
	if it.Stats().Untrained != 1 {
		t.Errorf("stats %+v: want the third record dropped as untrained", it.Stats())
	}
}
