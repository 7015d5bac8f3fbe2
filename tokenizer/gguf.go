package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/whet-ai/whet/formats/gguf"
)

// GGUF metadata keys of the tokenizer.
const (
	ggufKeyModel          = "tokenizer.ggml.model"
	ggufKeyPre            = "tokenizer.ggml.pre"
	ggufKeyTokens         = "tokenizer.ggml.tokens"
	ggufKeyScores         = "tokenizer.ggml.scores"
	ggufKeyTokenType      = "tokenizer.ggml.token_type"
	ggufKeyMerges         = "tokenizer.ggml.merges"
	ggufKeyBOS            = "tokenizer.ggml.bos_token_id"
	ggufKeyEOS            = "tokenizer.ggml.eos_token_id"
	ggufKeyUnk            = "tokenizer.ggml.unknown_token_id"
	ggufKeyAddBOS         = "tokenizer.ggml.add_bos_token"
	ggufKeyAddEOS         = "tokenizer.ggml.add_eos_token"
	ggufKeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	ggufTypeUndefined   = 0
	ggufTypeNormal      = 1
	ggufTypeUnknown     = 2
	ggufTypeControl     = 3
	ggufTypeUserDefined = 4
	ggufTypeUnused      = 5
	ggufTypeByte        = 6
)

// ggufPre is a supported pre-tokenizer of a "gpt2" vocabulary.
type ggufPre struct {
	// split is the Split regex run before ByteLevel, or "" for
	// ByteLevel's own (GPT-2) regex.
	split        string
	ignoreMerges bool
	nfc          bool
	addBOS       bool // llama.cpp's default for tokenizer.ggml.add_bos_token
	// The ByteLevel options (add_prefix_space, trim_offsets, use_regex)
	// of the pre-tokenizer, post-processor and decoder in the model
	// family's tokenizer.json (all but the pre-tokenizer's use_regex and
	// the post-processor's trim_offsets only matter for offsets, or not
	// at all).
	preBL, postBL, decBL byteLevelOpts
}

type byteLevelOpts struct{ prefixSpace, trimOffsets, useRegex bool }

var (
	ggufLlama3 = ggufPre{split: llama3Pattern, ignoreMerges: true, addBOS: true,
		preBL: byteLevelOpts{false, true, false}, postBL: byteLevelOpts{true, false, true}, decBL: byteLevelOpts{true, true, true}}
	ggufQwen2 = ggufPre{split: qwen2Pattern, nfc: true}
	ggufGPT2  = ggufPre{preBL: byteLevelOpts{false, true, true}, postBL: byteLevelOpts{true, false, true}, decBL: byteLevelOpts{true, true, true}}
	ggufPres  = map[string]ggufPre{
		"llama-bpe":        ggufLlama3,
		"llama3":           ggufLlama3,
		"llama-v3":         ggufLlama3,
		"qwen2":            ggufQwen2,
		"deepseek-r1-qwen": ggufQwen2,
		"gpt-2":            ggufGPT2,
		"gpt2":             ggufGPT2,
	}
)

// ggufVocab is the checked tokenizer metadata of a GGUF file.
type ggufVocab struct {
	file   string
	model  string // "llama" or "gpt2"
	pre    ggufPre
	tokens []string
	ids    map[string]int // token -> id
	scores []float32      // nil for gpt2 without scores
	types  []int32        // nil when absent: all normal
	merges [][2]string
	// bos, eos and unk are token ids, -1 for none.
	bos, eos, unk  int
	addBOS, addEOS bool
	addSpacePrefix bool
}

// FromGGUF builds the tokenizer described by the tokenizer.ggml.* metadata
// of a GGUF file (llama.cpp's model format): the tokenizer that Hugging
// Face's tokenizers library runs for the tokenizer.json the model came
// from, which TokenizerJSONFromGGUF writes. Malformed or unsupported
// metadata is an error naming the file and the key.
//
// tokenizer.ggml.model "llama" is a SentencePiece BPE vocabulary (Llama 1
// and 2, Mistral, TinyLlama, Gemma...): pieces, scores and token types. It
// becomes what transformers' LlamaTokenizerFast makes of the same
// SentencePiece model: a BPE model whose merges are SentencePieceMerges of
// the pieces and scores, with byte_fallback and "<unk>" (fuse_unk), the
// Llama normalizer (Prepend "▁" unless tokenizer.ggml.add_space_prefix is
// false, then Replace " " by "▁"), the Llama decoder, the control and
// unknown tokens as special added tokens, the user-defined tokens as
// (non-special) added tokens, and TemplateProcessing adding BOS (and EOS)
// as tokenizer.ggml.add_bos_token and add_eos_token say (defaults: BOS yes,
// EOS no, as in llama.cpp).
//
// This encodes as llama.cpp's SPM tokenizer (llm_tokenizer_spm) does when
// it parses special tokens, and as SentencePiece does, with these
// exceptions, where whet follows Hugging Face:
//
//   - The text of a control or unknown token ("<s>", "</s>", "<unk>") in
//     the input is that token, as in Hugging Face and llama.cpp with
//     parse_special; SentencePiece, and llama.cpp without parse_special,
//     encode it as ordinary text. A "▁" is prepended to the text after
//     such a token, as both Hugging Face and llama.cpp do.
//   - SentencePiece and llama.cpp merge the pair whose merged piece has
//     the highest score, the leftmost on ties; the BPE model ranks merges,
//     so where two different pieces have the same score (or one piece can
//     be made from two different pairs at overlapping places) the piece
//     with the lower id (the pair with the lower left id) wins, wherever
//     it is. Trained SentencePiece models give every learned piece its own
//     score; a file whose converter wrote equal scores is tokenized
//     differently by llama.cpp.
//   - SentencePiece never produces unused (type 5) pieces and treats
//     user-defined pieces as atomic in the normalised text; llama.cpp and
//     Hugging Face merge into unused pieces like any other, and match
//     user-defined tokens in the raw text (and prepend "▁" to the text
//     after one).
//   - Where special tokens overlap in the text, llama.cpp cuts out the
//     longest token first everywhere, Hugging Face the leftmost (longest)
//     match.
//   - Decode is Hugging Face's: it skips ids outside the vocabulary, and
//     decodes a user-defined token through the decoder ("▁" to a space),
//     where llama.cpp prints its text as it is.
//
// tokenizer.ggml.model "gpt2" is a byte-level BPE vocabulary with
// tokenizer.ggml.merges; tokenizer.ggml.pre names the pre-tokenizer:
// "llama-bpe" (also "llama3", "llama-v3": Llama 3's split pattern,
// ignore_merges, BOS by default), "qwen2" (also "deepseek-r1-qwen": Qwen2's
// pattern, with Qwen's NFC normalizer, which llama.cpp does not apply) and
// "gpt-2" (also "gpt2": GPT-2's ByteLevel regex). Other pre-tokenizers, a
// missing one included (llama.cpp's "default" splits differently from
// GPT-2), and other tokenizer models are refused with an error naming the
// file and the value.
//
// Duplicate tokens are refused (llama.cpp asserts they do not occur), as
// is a token that is not valid UTF-8 (tokenizer.json cannot hold it); an
// empty token is renamed "[EMPTY_<id>]" as llama.cpp does.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := readGGUFVocab(f, false)
	if err != nil {
		return nil, err
	}
	cfg := BPEConfig{Vocab: v.ids, Merges: v.merges}
	var opts Options
	switch v.model {
	case "llama":
		if v.unk >= 0 {
			cfg.UnkToken = v.tokens[v.unk]
		}
		cfg.FuseUnk = true
		cfg.ByteFallback = true
		if v.addSpacePrefix {
			opts.Normalizer = NewLlamaNormalizer()
			opts.Decoder = NewLlamaDecoder()
		} else {
			opts.Normalizer = NewReplaceNormalizer(" ", "▁")
			opts.Decoder = NewSequenceDecoder(NewReplaceDecoder("▁", " "), NewByteFallbackDecoder(), NewFuseDecoder())
		}
		opts.PostProcessor = v.template()
	case "gpt2":
		cfg.IgnoreMerges = v.pre.ignoreMerges
		if v.pre.nfc {
			opts.Normalizer = unicodeNormalizer{norm.NFC}
		}
		bl := byteLevelPreTokenizer{addPrefixSpace: v.pre.preBL.prefixSpace, useRegex: v.pre.preBL.useRegex}
		if v.pre.split == "" {
			opts.PreTokenizer = bl
		} else {
			p, err := newRegexPattern(v.pre.split)
			if err != nil {
				return nil, fmt.Errorf("tokenizer: gguf %s: %w", v.file, err)
			}
			opts.PreTokenizer = seqPreTokenizer{splitPreTokenizer{p: p, behavior: behaviorIsolated}, bl}
		}
		var post PostProcessor = byteLevelProcessor{addPrefixSpace: v.pre.postBL.prefixSpace, trimOffsets: v.pre.postBL.trimOffsets}
		if v.addBOS || v.addEOS {
			post = seqProcessor{post, v.template()}
		}
		opts.PostProcessor = post
		opts.Decoder = byteLevelDecoder{}
	}
	opts.AddedTokens = v.addedTokens()
	model, err := NewBPE(cfg)
	if err != nil {
		// The merges are the one thing that NewBPE checks and
		// readGGUFVocab does not.
		return nil, fmt.Errorf("tokenizer: gguf %s: %s: %w", v.file, ggufKeyMerges, err)
	}
	t, err := newTokenizer(model, opts, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: gguf %s: %w", v.file, err)
	}
	t.name = v.file
	return t, nil
}

// TokenizerJSONFromGGUF returns the Hugging Face tokenizer.json of the
// tokenizer that FromGGUF builds from f: Parse of the result encodes and
// decodes exactly as FromGGUF(f) does. The merges are written as pairs
// (the form of tokenizers 0.20 and later); the JSON is compact.
func TokenizerJSONFromGGUF(f *gguf.File) ([]byte, error) {
	v, err := readGGUFVocab(f, true)
	if err != nil {
		return nil, err
	}
	type obj = jsonObject
	doc := obj{
		{"version", "1.0"},
		{"truncation", nil},
		{"padding", nil},
	}
	added := v.addedTokens()
	addedJSON := make([]obj, len(added))
	for i, a := range added {
		addedJSON[i] = obj{
			{"id", a.ID},
			{"content", a.Content},
			{"single_word", a.SingleWord},
			{"lstrip", a.LStrip},
			{"rstrip", a.RStrip},
			{"normalized", a.Normalized},
			{"special", a.Special},
		}
	}
	doc = append(doc, jsonKV{"added_tokens", addedJSON})
	replace := func(from, to string) obj {
		return obj{{"type", "Replace"}, {"pattern", obj{{"String", from}}}, {"content", to}}
	}
	byteLevel := func(o byteLevelOpts) obj {
		return obj{{"type", "ByteLevel"}, {"add_prefix_space", o.prefixSpace}, {"trim_offsets", o.trimOffsets}, {"use_regex", o.useRegex}}
	}
	var normalizer, pre, post, decoder any
	model := obj{{"type", "BPE"}, {"dropout", nil}}
	switch v.model {
	case "llama":
		var unk any
		if v.unk >= 0 {
			unk = v.tokens[v.unk]
		}
		model = append(model,
			jsonKV{"unk_token", unk},
			jsonKV{"continuing_subword_prefix", nil},
			jsonKV{"end_of_word_suffix", nil},
			jsonKV{"fuse_unk", true},
			jsonKV{"byte_fallback", true},
			jsonKV{"ignore_merges", false})
		decoders := []obj{replace("▁", " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}}
		if v.addSpacePrefix {
			normalizer = obj{{"type", "Sequence"}, {"normalizers", []obj{
				{{"type", "Prepend"}, {"prepend", "▁"}},
				replace(" ", "▁"),
			}}}
			decoders = append(decoders, obj{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}})
		} else {
			normalizer = replace(" ", "▁")
		}
		decoder = obj{{"type", "Sequence"}, {"decoders", decoders}}
		post = v.templateJSON()
	case "gpt2":
		model = append(model,
			jsonKV{"unk_token", nil},
			jsonKV{"continuing_subword_prefix", nil},
			jsonKV{"end_of_word_suffix", nil},
			jsonKV{"fuse_unk", false},
			jsonKV{"byte_fallback", false},
			jsonKV{"ignore_merges", v.pre.ignoreMerges})
		if v.pre.nfc {
			normalizer = obj{{"type", "NFC"}}
		}
		if v.pre.split == "" {
			pre = byteLevel(v.pre.preBL)
		} else {
			pre = obj{{"type", "Sequence"}, {"pretokenizers", []obj{
				{{"type", "Split"}, {"pattern", obj{{"Regex", v.pre.split}}}, {"behavior", "Isolated"}, {"invert", false}},
				byteLevel(v.pre.preBL),
			}}}
		}
		bl := byteLevel(v.pre.postBL)
		if v.addBOS || v.addEOS {
			post = obj{{"type", "Sequence"}, {"processors", []any{bl, v.templateJSON()}}}
		} else {
			post = bl
		}
		decoder = byteLevel(v.pre.decBL)
	}
	vocab := make(jsonObject, len(v.tokens))
	for i, tok := range v.tokens {
		vocab[i] = jsonKV{tok, i}
	}
	merges := v.merges
	if merges == nil {
		merges = [][2]string{}
	}
	model = append(model, jsonKV{"vocab", vocab}, jsonKV{"merges", merges})
	doc = append(doc,
		jsonKV{"normalizer", normalizer},
		jsonKV{"pre_tokenizer", pre},
		jsonKV{"post_processor", post},
		jsonKV{"decoder", decoder},
		jsonKV{"model", model})
	return appendJSON(nil, doc), nil
}

// readGGUFVocab reads and checks the tokenizer metadata of f; checkMerges
// checks that the tokens of every merge and their concatenation are
// tokens (FromGGUF leaves that to NewBPE).
func readGGUFVocab(f *gguf.File, checkMerges bool) (*ggufVocab, error) {
	if f == nil {
		return nil, fmt.Errorf("tokenizer: FromGGUF: nil file")
	}
	name := f.Name()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: gguf %s: %s", name, fmt.Sprintf(format, args...))
	}
	wrap := func(err error) error { return fmt.Errorf("tokenizer: %w", err) }
	v := &ggufVocab{file: name, bos: -1, eos: -1, unk: -1}
	var err error
	if v.model, err = f.String(ggufKeyModel); err != nil {
		if errors.Is(err, gguf.ErrNotFound) {
			return nil, fail("no tokenizer: metadata key %q is missing", ggufKeyModel)
		}
		return nil, wrap(err)
	}
	switch v.model {
	case "llama", "gpt2":
	default:
		return nil, fail("unsupported GGUF tokenizer model %q (%s; supported: \"llama\", SentencePiece BPE, and \"gpt2\", byte-level BPE)", v.model, ggufKeyModel)
	}
	if v.tokens, err = f.Strings(ggufKeyTokens); err != nil {
		return nil, wrap(err)
	}
	n := len(v.tokens)
	if n == 0 {
		return nil, fail("%s is empty", ggufKeyTokens)
	}
	if n > 1<<31-2 {
		return nil, fail("%s has %d tokens, too many", ggufKeyTokens, n)
	}
	v.ids = make(map[string]int, n)
	seen := v.ids
	for i, tok := range v.tokens {
		if tok == "" {
			tok = fmt.Sprintf("[EMPTY_%d]", i) // as llama.cpp does
			v.tokens[i] = tok
		}
		if !utf8.ValidString(tok) {
			return nil, fail("%s[%d] %q is not valid UTF-8", ggufKeyTokens, i, tok)
		}
		if j, dup := seen[tok]; dup {
			return nil, fail("%s: token %q appears twice, at ids %d and %d", ggufKeyTokens, tok, j, i)
		}
		seen[tok] = i
	}
	if _, ok := f.Get(ggufKeyScores); ok {
		if v.scores, err = f.Float32s(ggufKeyScores); err != nil {
			return nil, wrap(err)
		}
		if len(v.scores) != n {
			return nil, fail("%s has %d scores for %d tokens", ggufKeyScores, len(v.scores), n)
		}
		for i, s := range v.scores {
			if math.IsNaN(float64(s)) {
				return nil, fail("%s[%d] (token %q) is NaN", ggufKeyScores, i, v.tokens[i])
			}
		}
	} else if v.model == "llama" {
		return nil, fail("metadata key %q is missing: a SentencePiece vocabulary needs its scores to order the merges", ggufKeyScores)
	}
	if _, ok := f.Get(ggufKeyTokenType); ok {
		if v.types, err = f.Int32s(ggufKeyTokenType); err != nil {
			return nil, wrap(err)
		}
		if len(v.types) != n {
			return nil, fail("%s has %d types for %d tokens", ggufKeyTokenType, len(v.types), n)
		}
		for i, t := range v.types {
			if t < ggufTypeUndefined || t > ggufTypeByte {
				return nil, fail("%s[%d] (token %q) is %d, not a token type (0 to 6)", ggufKeyTokenType, i, v.tokens[i], t)
			}
		}
	}
	optBool := func(key string, def bool) (bool, error) {
		if _, ok := f.Get(key); !ok {
			return def, nil
		}
		b, err := f.Bool(key)
		if err != nil {
			return false, wrap(err)
		}
		return b, nil
	}
	// optID reads a token id; absent, negative or out of range, it is def
	// (llama.cpp keeps its default for an id out of range, and writers use
	// 0xFFFFFFFF for none).
	optID := func(key string, def int) (int, error) {
		if def >= n {
			def = -1
		}
		if _, ok := f.Get(key); !ok {
			return def, nil
		}
		id, err := f.Int(key)
		if err != nil {
			return 0, wrap(err)
		}
		if id < 0 || id >= int64(n) {
			return def, nil
		}
		return int(id), nil
	}
	defBOS, defEOS, defUnk := -1, -1, -1
	defAddBOS := false
	switch v.model {
	case "llama":
		defBOS, defEOS, defUnk = 1, 2, 0
		defAddBOS = true
		v.merges, err = SentencePieceMerges(v.tokens, v.scores)
		if err != nil {
			return nil, fail("%v", err)
		}
		if v.addSpacePrefix, err = optBool(ggufKeyAddSpacePrefix, true); err != nil {
			return nil, err
		}
	case "gpt2":
		preName := ""
		if _, ok := f.Get(ggufKeyPre); ok {
			if preName, err = f.String(ggufKeyPre); err != nil {
				return nil, wrap(err)
			}
		}
		pre, ok := ggufPres[preName]
		if !ok {
			what := fmt.Sprintf("%q", preName)
			if preName == "" {
				what = "none (llama.cpp's \"default\")"
			}
			names := make([]string, 0, len(ggufPres))
			for k := range ggufPres {
				names = append(names, fmt.Sprintf("%q", k))
			}
			sort.Strings(names)
			return nil, fail("unsupported GGUF tokenizer pre-tokenizer %s for tokenizer model \"gpt2\" (%s; supported: %s)", what, ggufKeyPre, strings.Join(names, ", "))
		}
		v.pre = pre
		defAddBOS = pre.addBOS
		if _, ok := f.Get(ggufKeyMerges); !ok {
			return nil, fail("metadata key %q is missing: a \"gpt2\" vocabulary needs its merges", ggufKeyMerges)
		}
		lines, err := f.Strings(ggufKeyMerges)
		if err != nil {
			return nil, wrap(err)
		}
		v.merges = make([][2]string, len(lines))
		for i, line := range lines {
			// As llama.cpp: split at the first space after the first byte.
			k := -1
			if len(line) > 1 {
				k = strings.IndexByte(line[1:], ' ')
			}
			if k < 0 {
				return nil, fail("%s[%d] %q is not two tokens separated by a space", ggufKeyMerges, i, line)
			}
			k++
			a, b := line[:k], line[k+1:]
			if checkMerges {
				for _, x := range [3]string{a, b, a + b} {
					if _, ok := seen[x]; !ok {
						return nil, fail("%s[%d] %q: %q is not a token", ggufKeyMerges, i, line, x)
					}
				}
			}
			v.merges[i] = [2]string{a, b}
		}
	}
	if v.bos, err = optID(ggufKeyBOS, defBOS); err != nil {
		return nil, err
	}
	if v.eos, err = optID(ggufKeyEOS, defEOS); err != nil {
		return nil, err
	}
	if v.unk, err = optID(ggufKeyUnk, defUnk); err != nil {
		return nil, err
	}
	if v.addBOS, err = optBool(ggufKeyAddBOS, defAddBOS); err != nil {
		return nil, err
	}
	if v.addEOS, err = optBool(ggufKeyAddEOS, false); err != nil {
		return nil, err
	}
	if v.addBOS && v.bos < 0 {
		return nil, fail("%s is true but the file names no BOS token (%s)", ggufKeyAddBOS, ggufKeyBOS)
	}
	if v.addEOS && v.eos < 0 {
		return nil, fail("%s is true but the file names no EOS token (%s)", ggufKeyAddEOS, ggufKeyEOS)
	}
	return v, nil
}

// tokenType returns the GGUF type of token id.
func (v *ggufVocab) tokenType(id int) int32 {
	if v.types == nil {
		return ggufTypeNormal
	}
	return v.types[id]
}

// addedTokens returns the tokens that are matched in the text before the
// model runs, in id order: the control and unknown tokens as special
// tokens, the user-defined ones as plain added tokens (llama.cpp's special
// token cache; transformers' SpmConverter does the same), all matched on
// the raw text.
func (v *ggufVocab) addedTokens() []AddedToken {
	var out []AddedToken
	for i, tok := range v.tokens {
		switch v.tokenType(i) {
		case ggufTypeUnknown, ggufTypeControl:
			out = append(out, AddedToken{ID: i, Content: tok, Special: true})
		case ggufTypeUserDefined:
			out = append(out, AddedToken{ID: i, Content: tok})
		}
	}
	return out
}

// template returns the TemplateProcessing that adds BOS and EOS as the
// file says.
func (v *ggufVocab) template() PostProcessor {
	var single []TemplatePiece
	specials := map[string]TemplateSpecial{}
	add := func(id int) {
		tok := v.tokens[id]
		single = append(single, TemplatePiece{Special: tok})
		specials[tok] = TemplateSpecial{IDs: []int{id}, Tokens: []string{tok}}
	}
	if v.addBOS {
		add(v.bos)
	}
	single = append(single, TemplatePiece{Sequence: "A"})
	if v.addEOS {
		add(v.eos)
	}
	return NewTemplateProcessing(single, specials)
}

// templateJSON is template as tokenizer.json writes it, with the pair
// template of transformers' LlamaTokenizerFast.
func (v *ggufVocab) templateJSON() jsonObject {
	type obj = jsonObject
	specials := obj{}
	piece := func(id, typeID int) obj {
		tok := v.tokens[id]
		found := false
		for _, kv := range specials {
			found = found || kv.k == tok
		}
		if !found {
			specials = append(specials, jsonKV{tok, obj{{"id", tok}, {"ids", []int{id}}, {"tokens", []string{tok}}}})
		}
		return obj{{"SpecialToken", obj{{"id", tok}, {"type_id", typeID}}}}
	}
	seq := func(name string, typeID int) obj {
		return obj{{"Sequence", obj{{"id", name}, {"type_id", typeID}}}}
	}
	var single, pair []obj
	for typeID, name := range []string{"A", "B"} {
		var part []obj
		if v.addBOS {
			part = append(part, piece(v.bos, typeID))
		}
		part = append(part, seq(name, typeID))
		if v.addEOS {
			part = append(part, piece(v.eos, typeID))
		}
		if typeID == 0 {
			single = part
		}
		pair = append(pair, part...)
	}
	return obj{{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}}
}

// jsonObject is a JSON object that keeps its keys in order.
type jsonObject []jsonKV

type jsonKV struct {
	k string
	v any
}

// appendJSON appends the JSON of v: a jsonObject, string, int, bool,
// nil, or a slice of those ([]jsonObject, []any, []int, []string,
// [][2]string). Strings are written as they are (tokens such as "<s>"
// stay readable), escaping only what JSON requires.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case string:
		return appendJSONString(b, v)
	case jsonObject:
		b = append(b, '{')
		for i, kv := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, kv.k)
			b = append(b, ':')
			b = appendJSON(b, kv.v)
		}
		return append(b, '}')
	case []jsonObject:
		return appendJSONList(b, len(v), func(b []byte, i int) []byte { return appendJSON(b, v[i]) })
	case []any:
		return appendJSONList(b, len(v), func(b []byte, i int) []byte { return appendJSON(b, v[i]) })
	case []int:
		return appendJSONList(b, len(v), func(b []byte, i int) []byte { return strconv.AppendInt(b, int64(v[i]), 10) })
	case []string:
		return appendJSONList(b, len(v), func(b []byte, i int) []byte { return appendJSONString(b, v[i]) })
	case [][2]string:
		return appendJSONList(b, len(v), func(b []byte, i int) []byte {
			b = append(b, '[')
			b = appendJSONString(b, v[i][0])
			b = append(b, ',')
			b = appendJSONString(b, v[i][1])
			return append(b, ']')
		})
	}
	panic(fmt.Sprintf("appendJSON: %T", v))
}

func appendJSONList(b []byte, n int, elem func([]byte, int) []byte) []byte {
	b = append(b, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, i)
	}
	return append(b, ']')
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
