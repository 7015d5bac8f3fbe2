package tokenizer

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// patched returns testdata/NAME with the top-level (or "model.x") keys of
// set replaced.
func patched(t testing.TB, name string, set map[string]string) []byte {
	t.Helper()
	g := goldenTokenizer{Base: name, Set: map[string]json.RawMessage{}}
	for k, v := range set {
		g.Set[k] = json.RawMessage(v)
	}
	data, err := buildVariant(g)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseErrors checks that malformed and unsupported files are refused
// with an error naming the file and the component.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		raw  string // used instead of set when not empty
		want []string
	}{
		{name: "wordpiece", set: map[string]string{"model": `{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[UNK]":0}}`}, want: []string{"model", `"WordPiece"`, "not supported"}},
		{name: "unigram", set: map[string]string{"model": `{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0]]}`}, want: []string{"model", `"Unigram"`}},
		{name: "wordlevel", set: map[string]string{"model": `{"type":"WordLevel","vocab":{},"unk_token":"x"}`}, want: []string{"model", `"WordLevel"`}},
		{name: "bert pre-tokenizer", set: map[string]string{"pre_tokenizer": `{"type":"BertPreTokenizer"}`}, want: []string{"pre_tokenizer", `"BertPreTokenizer"`}},
		{name: "whitespace", set: map[string]string{"pre_tokenizer": `{"type":"Sequence","pretokenizers":[{"type":"Whitespace"}]}`}, want: []string{"pre_tokenizer", "pretokenizers[0]", `"Whitespace"`}},
		{name: "bert normalizer", set: map[string]string{"normalizer": `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}`}, want: []string{"normalizer", `"BertNormalizer"`}},
		{name: "precompiled", set: map[string]string{"normalizer": `{"type":"Precompiled","precompiled_charsmap":""}`}, want: []string{"normalizer", `"Precompiled"`}},
		{name: "roberta", set: map[string]string{"post_processor": `{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":true}`}, want: []string{"post_processor", `"RobertaProcessing"`}},
		{name: "wordpiece decoder", set: map[string]string{"decoder": `{"type":"WordPiece","prefix":"##","cleanup":true}`}, want: []string{"decoder", `"WordPiece"`}},
		{name: "dropout", set: map[string]string{"model.dropout": `0.1`}, want: []string{"model", "dropout"}},
		{name: "truncation", set: map[string]string{"truncation": `{"max_length":512}`}, want: []string{"truncation"}},
		{name: "padding", set: map[string]string{"padding": `{"strategy":"BatchLongest"}`}, want: []string{"padding"}},
		{name: "unknown option", set: map[string]string{"pre_tokenizer": `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true,"frobnicate":1}`}, want: []string{"pre_tokenizer", "ByteLevel", "frobnicate"}},
		{name: "split behavior", set: map[string]string{"pre_tokenizer": `{"type":"Split","pattern":{"String":" "},"behavior":"Sideways","invert":false}`}, want: []string{"Split", "Sideways"}},
		{name: "bad regex", set: map[string]string{"pre_tokenizer": `{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false}`}, want: []string{"pre_tokenizer", "Split", "regex"}},
		{name: "two patterns", set: map[string]string{"normalizer": `{"type":"Replace","pattern":{"String":"a","Regex":"b"},"content":""}`}, want: []string{"normalizer", "Replace", "exactly one"}},
		{name: "metaspace", set: map[string]string{"pre_tokenizer": `{"type":"Metaspace","replacement":"ab","prepend_scheme":"always","split":true}`}, want: []string{"Metaspace", "replacement"}},
		{name: "prepend scheme", set: map[string]string{"pre_tokenizer": `{"type":"Metaspace","replacement":"_","prepend_scheme":"sometimes","split":true}`}, want: []string{"Metaspace", "sometimes"}},
		{name: "template", set: map[string]string{"post_processor": `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{}}`}, want: []string{"post_processor", "TemplateProcessing", `"<x>"`}},
		{name: "bad merge", set: map[string]string{"model.merges": `["a b c"]`}, want: []string{"model", "merges[0]"}},
		{name: "merge not in vocab", set: map[string]string{"model.merges": `[["Ġ","zzz"]]`}, want: []string{"model", "merges[0]", `"zzz"`}},
		{name: "merged not in vocab", set: map[string]string{"model.merges": `["Ġ t", "! !"]`}, want: []string{"merges[1]", `"!!"`}},
		{name: "unk not in vocab", set: map[string]string{"model.unk_token": `"<nope>"`}, want: []string{"unk_token", `"<nope>"`}},
		{name: "duplicate id", set: map[string]string{"model.vocab": `{"a":0,"b":0}`, "model.merges": `[]`}, want: []string{"vocab", "id 0"}},
		{name: "added id", set: map[string]string{"added_tokens": `[{"id":7,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}]`}, want: []string{"added_tokens[0]", "id 7", "2256"}},
		{name: "version", set: map[string]string{"version": `"2.0"`}, want: []string{"version", "2.0"}},
		{name: "no model", set: map[string]string{"model": `null`}, want: []string{"model", "missing"}},
		{name: "not json", raw: `{"version": "1.0", `, want: []string{"not a tokenizer.json"}},
		{name: "no type", set: map[string]string{"decoder": `{"kind":"ByteLevel"}`}, want: []string{"decoder", "type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = patched(t, "bytelevel-small.json", tc.set)
			}
			_, err := Parse(data, "some/tokenizer.json")
			if err == nil {
				t.Fatal("Parse: no error")
			}
			msg := err.Error()
			for _, w := range append([]string{"some/tokenizer.json"}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if _, err := Load("testdata/no-such-file.json"); err == nil || !strings.Contains(err.Error(), "no-such-file.json") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func loadSmall(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := Load("testdata/bytelevel-small.json")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVocabAndSpecials(t *testing.T) {
	tok := loadSmall(t)
	if got := tok.VocabSize(); got != 2257 {
		t.Errorf("VocabSize() = %d, want 2257", got)
	}
	for _, tc := range []struct {
		n  int
		ok bool
	}{{2257, true}, {4096, true}, {2256, false}, {0, false}} {
		err := tok.CheckVocabSize(tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("CheckVocabSize(%d) = %v, want ok=%v", tc.n, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "bytelevel-small.json") {
			t.Errorf("CheckVocabSize(%d) error %q does not name the file", tc.n, err)
		}
	}
	if id, ok := tok.TokenToID("<|endoftext|>"); !ok || id != 2256 {
		t.Errorf("TokenToID(<|endoftext|>) = %d, %v", id, ok)
	}
	if s, ok := tok.IDToToken(256); !ok || s != "Ġt" {
		t.Errorf("IDToToken(256) = %q, %v", s, ok)
	}
	if _, ok := tok.IDToToken(99999); ok {
		t.Error("IDToToken(99999) found a token")
	}
	sp := tok.SpecialTokens()
	if len(sp) != 1 || sp[0].Content != "<|endoftext|>" || sp[0].ID != 2256 {
		t.Errorf("SpecialTokens() = %+v", sp)
	}
	if _, ok := tok.BOS(); ok {
		t.Error("BOS() found a token in GPT-2")
	}
	if id, ok := tok.EOS(); !ok || id != 2256 {
		t.Errorf("EOS() = %d, %v", id, ok)
	}
	// Unknown ids are skipped by Decode, as in the Rust library.
	if got := tok.Decode([]int{-1, 40, 99999, 716}, false); got != "Iam" && got == "" {
		t.Errorf("Decode with unknown ids = %q", got)
	}
}

func TestBOSFromTemplate(t *testing.T) {
	for _, tc := range []struct {
		variant  string
		bos, eos int
	}{{"bl-nfkc-template", 2256, 2256}, {"spm-nfkc-lower", 1, 2}} {
		var g goldenTokenizer
		for _, x := range goldenTokenizers(t) {
			if x.Name == tc.variant {
				g = x
			}
		}
		tok, _ := g.load(t)
		if id, ok := tok.BOS(); !ok || id != tc.bos {
			t.Errorf("%s: BOS() = %d, %v; want %d", tc.variant, id, ok, tc.bos)
		}
		if id, ok := tok.EOS(); !ok || id != tc.eos {
			t.Errorf("%s: EOS() = %d, %v; want %d", tc.variant, id, ok, tc.eos)
		}
	}
}

func TestEncodeSegments(t *testing.T) {
	tok := loadSmall(t)
	segs := []string{"<|endoftext|>", "Hello", "", " world", "!\n"}
	e := tok.EncodeSegments(segs, false)
	whole := tok.Encode(strings.Join(segs, ""), false)
	if !reflect.DeepEqual(e.IDs, whole) {
		t.Fatalf("EncodeSegments ids %v, Encode %v", e.IDs, whole)
	}
	// <|endoftext|> | H ell o | Ġworld | ! | Ċ
	want := []int{0, 1, 1, 1, 3, 4, 4}
	if !reflect.DeepEqual(e.Segment, want) {
		t.Errorf("Segment = %v, want %v (offsets %v)", e.Segment, want, e.Offsets)
	}
	// With a template, the added tokens are in no segment.
	var g goldenTokenizer
	for _, x := range goldenTokenizers(t) {
		if x.Name == "bl-nfkc-template" {
			g = x
		}
	}
	tt, _ := g.load(t)
	e = tt.EncodeSegments([]string{"a", "b"}, true)
	if e.Segment[0] != -1 || e.Segment[len(e.Segment)-1] != -1 || !e.Special[0] {
		t.Errorf("template tokens: Segment = %v, Special = %v", e.Segment, e.Special)
	}
}

func TestInvalidUTF8(t *testing.T) {
	tok := loadSmall(t)
	s := "a\xffb\xe2\x82"
	ids := tok.Encode(s, false)
	if got, want := tok.Decode(ids, false), "a\uFFFDb\uFFFD\uFFFD"; got != want {
		t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, want)
	}
	e := tok.EncodeWithOffsets(s, false)
	for _, o := range e.Offsets {
		if o[0] < 0 || o[1] > len(s) || o[0] > o[1] {
			t.Errorf("offset %v outside %q", o, s)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	// Rust's String::from_utf8_lossy: one U+FFFD per maximal invalid
	// subsequence.
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xff", "\uFFFD"},
		{"\xe2\x82", "\uFFFD"},
		{"\xe2\x82A", "\uFFFDA"},
		{"\xe0\x80A", "\uFFFD\uFFFDA"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xf0\x9f\x98\x80", "😀"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"a\xf4\x90\x80\x80b", "a\uFFFD\uFFFD\uFFFD\uFFFDb"},
	}
	for _, tc := range tests {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecoders(t *testing.T) {
	tests := []struct {
		name string
		d    Decoder
		in   []string
		want []string
	}{
		{"bytefallback", NewByteFallbackDecoder(), []string{"<0x61>", "b", "<0xE2>", "<0x82>", "<0xAC>", "c", "<0xFF>", "<0x+F>", "d", "<0x+F>", "<0xZZ>"}, []string{"a", "b", "€", "c", "\uFFFD", "\uFFFD", "d", "\x0f", "<0xZZ>"}},
		{"strip", NewStripDecoder(' ', 2, 1), []string{"  a ", " ", "", "   b  "}, []string{"a", "", "", " b "}},
		{"replace", NewReplaceDecoder("▁", " "), []string{"▁a▁", "b"}, []string{" a ", "b"}},
		{"fuse", NewFuseDecoder(), []string{"a", "b"}, []string{"ab"}},
		{"metaspace", metaspaceDecoder{'▁', prependAlways}, []string{"▁▁a", "▁b"}, []string{"a", " b"}},
		{"metaspace never", metaspaceDecoder{'▁', prependNever}, []string{"▁a"}, []string{" a"}},
		{"bpe", bpeDecoder{"</w>"}, []string{"a</w>", "b</w>"}, []string{"a ", "b"}},
	}
	for _, tc := range tests {
		if got := tc.d.decodeChain(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: decodeChain(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestBPEOptions checks unk handling, fuse_unk, byte_fallback and the
// subword prefix and suffix on a tiny model (the cases of the Rust
// library's own tests).
func TestBPEOptions(t *testing.T) {
	vocab := map[string]int{"<unk>": 0, "a": 1, "b": 2, "<0x63>": 3}
	tests := []struct {
		name string
		cfg  BPEConfig
		in   string
		want []int32
	}{
		{"unk", BPEConfig{Vocab: vocab, UnkToken: "<unk>"}, "accb", []int32{1, 0, 0, 2}},
		{"fuse", BPEConfig{Vocab: vocab, UnkToken: "<unk>", FuseUnk: true}, "axyb", []int32{1, 0, 2}},
		{"fallback", BPEConfig{Vocab: vocab, UnkToken: "<unk>", ByteFallback: true}, "acdb", []int32{1, 3, 0, 2}},
		{"no unk", BPEConfig{Vocab: vocab}, "axb", []int32{1, 2}},
		{"prefix", BPEConfig{Vocab: map[string]int{"a": 0, "##b": 1, "##c": 2, "ab": 3, "abc": 4},
			Merges: [][2]string{{"a", "##b"}, {"ab", "##c"}}, ContinuingSubwordPrefix: "##"}, "abc", []int32{4}},
		{"suffix", BPEConfig{Vocab: map[string]int{"a": 0, "b</w>": 1, "ab</w>": 2},
			Merges: [][2]string{{"a", "b</w>"}}, EndOfWordSuffix: "</w>"}, "ab", []int32{2}},
		{"ignore merges", BPEConfig{Vocab: map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, IgnoreMerges: true}, "abc", []int32{4}},
		{"merges", BPEConfig{Vocab: map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}}, "abc", []int32{0, 1, 2}},
	}
	for _, tc := range tests {
		m, err := NewBPE(tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := m.tokenize(tc.in).ids; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: tokenize(%q) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestNoDropoutZero(t *testing.T) {
	if _, err := Parse(patched(t, "bytelevel-small.json", map[string]string{"model.dropout": "0.0"}), "x"); err != nil {
		t.Errorf("dropout 0.0 (no dropout) refused: %v", err)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := loadSmall(t)
	data, _ := os.ReadFile("testdata/oracle/strings.json")
	var strs []string
	if err := json.Unmarshal(data, &strs); err != nil {
		t.Fatal(err)
	}
	want := make([][]int, len(strs))
	for i, s := range strs {
		want[i] = tok.Encode(s, true)
	}
	done := make(chan bool)
	for w := 0; w < 4; w++ {
		go func() {
			for i, s := range strs {
				if got := tok.Encode(s, true); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("concurrent Encode(%q) = %v, want %v", s, got, want[i])
				}
			}
			done <- true
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
}
