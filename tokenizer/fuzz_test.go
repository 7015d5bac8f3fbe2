package tokenizer

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"unicode/utf8"
)

// splitterCases are strings that exercise the GPT-style splitters.
func splitterCases(t testing.TB) []string {
	data, err := os.ReadFile("testdata/oracle/strings.json")
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	if err := json.Unmarshal(data, &strs); err != nil {
		t.Fatal(err)
	}
	return append(strs, randomStrings(7, 500)...)
}

// TestKnownSplittersMatchRegexp2 checks the hand-written splitters against
// regexp2 running the original patterns.
func TestKnownSplittersMatchRegexp2(t *testing.T) {
	for _, src := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		re, err := compileRegex(src)
		if err != nil {
			t.Fatal(err)
		}
		fast := knownSplitter(src)
		for _, s := range splitterCases(t) {
			want := re.findSpans(s)
			if got := fast.findSpans(s); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
				t.Errorf("pattern %.20q on %q: hand-written %v, regexp2 %v", src, s, got, want)
			}
		}
	}
}

func FuzzKnownSplitters(f *testing.F) {
	for _, s := range []string{"Hello world", "it's  'S 123456\n\n x", "a\u00a0\u3000b\r\n\t", "😀'ſ'LL", " \n \n  y"} {
		f.Add(s)
	}
	res := map[string]*regexPattern{}
	for _, src := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		re, err := compileRegex(src)
		if err != nil {
			f.Fatal(err)
		}
		res[src] = re
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for src, re := range res {
			want := re.findSpans(s)
			if got := knownSplitter(src).findSpans(s); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
				t.Errorf("pattern %.20q on %q: hand-written %v, regexp2 %v", src, s, got, want)
			}
		}
	})
}

// FuzzParse feeds arbitrary bytes to the tokenizer.json parser: it must
// return an error or a tokenizer that encodes and decodes without
// panicking.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"bytelevel-small.json", "spm-small.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, g := range goldenTokenizers(f) {
		if g.Base != "" {
			data, err := buildVariant(g)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		for _, s := range []string{"", "Hello world", " <|endoftext|> 123 ", "日本語 😀\n\t"} {
			ids := tok.Encode(s, true)
			tok.Decode(ids, false)
			tok.Decode(ids, true)
			e := tok.EncodeWithOffsets(s, false)
			for _, o := range e.Offsets {
				if o[0] < 0 || o[0] > o[1] {
					t.Fatalf("Encode(%q): bad offset %v", s, o)
				}
			}
		}
		tok.Decode([]int{-1, 0, 1, 2, 1 << 40}, true)
	})
}

// FuzzEncodeDecode checks the round trip decode(encode(s)) == s on the
// small ByteLevel tokenizer, for valid UTF-8, and that the offsets stay in
// the input.
func FuzzEncodeDecode(f *testing.F) {
	tok := loadSmall(f)
	for _, s := range []string{"", "Hello, world!", "  spaces  \n\n", "<|endoftext|>x<|endoftext|>", "日本語😀", "e\u0301", "\x00\x7f", "'s'S'ſ 12345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true)
		got := tok.Decode(ids, false)
		if utf8.ValidString(s) && got != s {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
		}
		e := tok.EncodeWithOffsets(s, false)
		if len(e.IDs) != len(tok.Encode(s, false)) {
			t.Fatalf("EncodeWithOffsets(%q) has %d ids, Encode %d", s, len(e.IDs), len(ids))
		}
		for _, o := range e.Offsets {
			if o[0] < 0 || o[1] > len(s) || o[0] > o[1] {
				t.Fatalf("EncodeWithOffsets(%q): offset %v outside the input", s, o)
			}
		}
	})
}
