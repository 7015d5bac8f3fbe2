package data

import (
	"reflect"
	"strings"
	"testing"

	"github.com/whet-ai/whet/tokenizer/chat"
)

func TestDetect(t *testing.T) {
	m := llama3Model(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		fields  map[string]string
		format  Format
		why     string // in the detection message
		err     string
	}{
		{"text.jsonl", `{"text": "hello", "id": 3}`, nil, FormatText, `from DIR/text.jsonl:1: it has field "text"`, ""},
		{"completion.jsonl", `{"prompt": "a", "completion": "b"}`, nil, FormatCompletion, `it has fields "prompt" and "completion"`, ""},
		{"alpaca.json", `[{"instruction": "a", "input": "", "output": "b"}]`, nil, FormatAlpaca, `alpaca.json:1: it has fields "instruction" and "output"`, ""},
		{"messages.jsonl", `{"messages": [{"role": "user", "content": "hi"}]}`, nil, FormatMessages, `field "messages" is a list of role/content objects`, ""},
		{"sharegpt.jsonl", `{"conversations": [{"from": "human", "value": "hi"}]}`, nil, FormatShareGPT, `field "conversations" is a list of from/value objects`, ""},
		{"sharegpt-in-messages.jsonl", `{"messages": [{"from": "human", "value": "hi"}]}`, nil, FormatShareGPT, `field "messages" is a list of from/value objects`, ""},
		{"tokens.jsonl", `{"input_ids": [1, 2], "text": "x"}`, nil, FormatTokens, `it has field "input_ids"`, ""},
		{"renamed.jsonl", `{"question": "a", "answer": "b"}`, map[string]string{"instruction": "question", "output": "answer"}, FormatAlpaca, `it has fields "question" and "answer"`, ""},
		{"renamed-chat.jsonl", `{"dialog": [{"speaker": "user", "text": "hi"}]}`, map[string]string{"messages": "dialog", "role": "speaker", "content": "text"}, FormatMessages, `field "dialog" is a list of speaker/text objects`, ""},
		{"unknown.jsonl", `{"question": "a", "answer": "b"}`, nil, "", "", `cannot detect the format: read DIR/unknown.jsonl:1: cannot detect the format from fields "answer", "question"`},
		{"lines.txt", "a line\n", nil, FormatText, `the files are .txt files`, ""},
		{"empty.jsonl", "\n\n", nil, "", "", "empty.jsonl has no record"},
		{"bad.jsonl", "{oops}\n", nil, "", "", "bad.jsonl:1: malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content+"\n")
			cfg := config(path)
			cfg.Fields = tc.fields
			d, err := Open(cfg, m)
			if tc.err != "" {
				if want := strings.ReplaceAll(tc.err, "DIR", dir); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.why, "DIR", dir); d.Format() != tc.format || !strings.Contains(d.Detection(), want) {
				t.Errorf("format %q, detection %q; want %q and %q", d.Format(), d.Detection(), tc.format, want)
			}
		})
	}
}

func TestSamples(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		format Format
		rec    string
		want   sample
	}{
		{"alpaca", Config{}, FormatAlpaca, `{"instruction": "Do.", "input": "this", "output": "done"}`,
			sample{Prompt: AlpacaPrompt("", "Do.", "this"), Completion: "done"}},
		{"alpaca with system", Config{}, FormatAlpaca, `{"instruction": "Do.", "output": "done", "system": "Be brief."}`,
			sample{Prompt: "Be brief.\n\n### Instruction:\nDo.\n\n### Response:\n", Completion: "done"}},
		{"alpaca chat", Config{PromptStyle: PromptChat}, FormatAlpaca, `{"instruction": "Do.", "input": "this", "output": "done", "system": "S"}`,
			sample{Messages: []chat.Message{{Role: "system", Content: "S"}, {Role: "user", Content: "Do.\n\nthis"}, {Role: "assistant", Content: "done"}}}},
		{"sharegpt roles", Config{}, FormatShareGPT, `{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "h"}, {"from": "gpt", "value": "g"}, {"from": "function", "value": "f"}]}`,
			sample{Messages: []chat.Message{{Role: "system", Content: "s"}, {Role: "user", Content: "h"}, {Role: "assistant", Content: "g"}, {Role: "tool", Content: "f"}}}},
		{"custom roles", Config{Roles: map[string]string{"bot": "assistant"}}, FormatMessages, `{"messages": [{"role": "user", "content": "u"}, {"role": "bot", "content": "b"}]}`,
			sample{Messages: []chat.Message{{Role: "user", Content: "u"}, {Role: "assistant", Content: "b"}}}},
		{"content parts and extras", Config{}, FormatMessages, `{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": null, "tool_calls": [{"id": 1}]}]}`,
			sample{Messages: []chat.Message{{Role: "user", Content: "ab"}, {Role: "assistant", Content: "", Extra: map[string]any{"tool_calls": []any{map[string]any{"id": int64(1)}}}}}}},
		{"tokens", Config{}, FormatTokens, `{"input_ids": [1, 2.0, 3], "labels": [-100, 2, 3]}`,
			sample{InputIDs: []int{1, 2, 3}, Labels: []int{-100, 2, 3}}},
		{"tokens as a string (CSV)", Config{}, FormatTokens, `{"input_ids": "[4, 5]"}`,
			sample{InputIDs: []int{4, 5}}},
		{"messages as a string (CSV)", Config{}, FormatMessages, `{"messages": "[{\"role\": \"user\", \"content\": \"x\"}]"}`,
			sample{Messages: []chat.Message{{Role: "user", Content: "x"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Files, tc.cfg.SequenceLen = []string{"x"}, 8
			s, err := tc.cfg.check()
			if err != nil {
				t.Fatal(err)
			}
			m, err := decodeJSONObject([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.read(&record{fields: m}, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Format = tc.format
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{Config{Files: []string{"x"}}, "sequence_len is 0"},
		{Config{Files: []string{"x"}, SequenceLen: 8, Format: "chatml"}, `unknown format "chatml"`},
		{Config{Files: []string{"x"}, SequenceLen: 8, TrainOn: "user"}, `unknown train_on "user"`},
		{Config{Files: []string{"x"}, SequenceLen: 8, TrainOn: TrainOnLast, TrainOnInputs: true}, "contradicts"},
		{Config{Files: []string{"x"}, SequenceLen: 8, Truncation: "left"}, `unknown truncation "left"`},
		{Config{Files: []string{"x"}, SequenceLen: 8, Fields: map[string]string{"question": "q"}}, `unknown field "question"`},
		{Config{Files: []string{"x"}, SequenceLen: 8, Roles: map[string]string{"bot": "robot"}}, `"bot" is mapped to "robot"`},
		{Config{Files: []string{"x"}, SequenceLen: 8, EvalFraction: 1.5}, "eval_fraction is 1.5"},
		{Config{Files: []string{"x"}, SequenceLen: 8, EvalFraction: 0.1, EvalFiles: []string{"y"}}, "not both"},
		{Config{Files: []string{"x"}, SequenceLen: 8, Packing: true, LengthBucketing: true}, "length_bucketing applies without packing"},
		{Config{SequenceLen: 8}, "no files"},
	} {
		if _, err := tc.cfg.check(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.err)
		}
	}
	// A chat format without a chat template.
	dir := t.TempDir()
	path := writeFile(t, dir, "c.jsonl", `{"messages": [{"role": "user", "content": "hi"}]}`+"\n")
	if _, err := Open(config(path), plainModel(t)); err == nil || !strings.Contains(err.Error(), "format messages needs the model's chat template") {
		t.Errorf("messages without a template: %v", err)
	}
	// Text files with another format.
	txt := writeFile(t, dir, "a.txt", "x\n")
	cfg := config(txt)
	cfg.Format = FormatAlpaca
	if _, err := Open(cfg, plainModel(t)); err == nil || !strings.Contains(err.Error(), ".txt files hold text") {
		t.Errorf("txt as alpaca: %v", err)
	}
}
