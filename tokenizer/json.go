package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The tokenizer.json schema, as the Rust library (de)serialises it. Each
// component is decoded in two steps: its "type", then its fields.

type fileJSON struct {
	Version       *string          `json:"version"`
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         json.RawMessage  `json:"model"`
}

type addedTokenJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || bytes.Equal(r, []byte("null"))
}

// typeOf returns the "type" field of a component object.
func typeOf(r json.RawMessage) (string, error) {
	var t struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(r, &t); err != nil {
		return "", err
	}
	if t.Type == nil {
		return "", fmt.Errorf("no \"type\" field")
	}
	return *t.Type, nil
}

// strict decodes r into v, rejecting unknown fields so that a component
// option we do not implement is an error rather than ignored.
func strict(r json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(r))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// parseSequence parses a Sequence component, {"type": "Sequence", field:
// [...]}, reading each element with parse.
func parseSequence[T any](r json.RawMessage, field string, parse func(json.RawMessage) (T, error)) ([]T, error) {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, fmt.Errorf("Sequence: %w", err)
	}
	for k := range v {
		if k != "type" && k != field {
			return nil, fmt.Errorf("Sequence: json: unknown field %q", k)
		}
	}
	var elems []json.RawMessage
	if raw, ok := v[field]; ok {
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, fmt.Errorf("Sequence: %w", err)
		}
	}
	if elems == nil {
		return nil, fmt.Errorf("Sequence: missing %q", field)
	}
	seq := make([]T, 0, len(elems))
	for i, x := range elems {
		e, err := parse(x)
		if err != nil {
			return nil, fmt.Errorf("Sequence.%s[%d]: %w", field, i, err)
		}
		seq = append(seq, e)
	}
	return seq, nil
}

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p *patternJSON) compile() (pattern, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("missing pattern")
	case p.String != nil && p.Regex == nil:
		return literalPattern{*p.String}, nil
	case p.Regex != nil && p.String == nil:
		return newRegexPattern(*p.Regex)
	}
	return nil, fmt.Errorf("pattern must have exactly one of \"String\" and \"Regex\"")
}

// unsupportedError names a component type that this package does not
// implement.
type unsupportedError struct{ what, typ string }

func (e unsupportedError) Error() string {
	return fmt.Sprintf("%s type %q is not supported", e.what, e.typ)
}

func parseNormalizer(r json.RawMessage) (Normalizer, error) {
	typ, err := typeOf(r)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		ns, err := parseSequence(r, "normalizers", parseNormalizer)
		if err != nil {
			return nil, err
		}
		return seqNormalizer(ns), nil
	case "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents":
		var v struct {
			Type string `json:"type"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		switch typ {
		case "NFC":
			return unicodeNormalizer{norm.NFC}, nil
		case "NFD":
			return unicodeNormalizer{norm.NFD}, nil
		case "NFKC":
			return unicodeNormalizer{norm.NFKC}, nil
		case "NFKD":
			return unicodeNormalizer{norm.NFKD}, nil
		case "Lowercase":
			return lowercaseNormalizer{}, nil
		default:
			return stripAccentsNormalizer{}, nil
		}
	case "Strip":
		var v struct {
			Type  string `json:"type"`
			Left  *bool  `json:"strip_left"`
			Right *bool  `json:"strip_right"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Strip: %w", err)
		}
		if v.Left == nil || v.Right == nil {
			return nil, fmt.Errorf("Strip: missing \"strip_left\" or \"strip_right\"")
		}
		return stripNormalizer{*v.Left, *v.Right}, nil
	case "Prepend", "Append":
		var v struct {
			Type    string  `json:"type"`
			Prepend *string `json:"prepend"`
			Append  *string `json:"append"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		if typ == "Prepend" {
			if v.Prepend == nil || v.Append != nil {
				return nil, fmt.Errorf("Prepend: needs \"prepend\" (only)")
			}
			return prependNormalizer(*v.Prepend), nil
		}
		if v.Append == nil || v.Prepend != nil {
			return nil, fmt.Errorf("Append: needs \"append\" (only)")
		}
		return appendNormalizer(*v.Append), nil
	case "Replace":
		var v struct {
			Type    string       `json:"type"`
			Pattern *patternJSON `json:"pattern"`
			Content *string      `json:"content"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		if v.Content == nil {
			return nil, fmt.Errorf("Replace: missing \"content\"")
		}
		p, err := v.Pattern.compile()
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return replaceNormalizer{p, *v.Content}, nil
	}
	return nil, unsupportedError{"normalizer", typ}
}

func parsePreTokenizer(r json.RawMessage) (PreTokenizer, error) {
	typ, err := typeOf(r)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		ps, err := parseSequence(r, "pretokenizers", parsePreTokenizer)
		if err != nil {
			return nil, err
		}
		return seqPreTokenizer(ps), nil
	case "ByteLevel":
		v, err := parseByteLevel(r)
		if err != nil {
			return nil, err
		}
		return byteLevelPreTokenizer{addPrefixSpace: v.AddPrefixSpace, useRegex: v.UseRegex}, nil
	case "Split":
		var v struct {
			Type     string       `json:"type"`
			Pattern  *patternJSON `json:"pattern"`
			Behavior *string      `json:"behavior"`
			Invert   *bool        `json:"invert"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		if v.Behavior == nil || v.Invert == nil {
			return nil, fmt.Errorf("Split: missing \"behavior\" or \"invert\"")
		}
		b, ok := behaviorNames[*v.Behavior]
		if !ok {
			return nil, fmt.Errorf("Split: unknown behavior %q", *v.Behavior)
		}
		p, err := v.Pattern.compile()
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		return splitPreTokenizer{p, b, *v.Invert}, nil
	case "Metaspace":
		m, err := parseMetaspace(r)
		if err != nil {
			return nil, err
		}
		return m, nil
	case "Digits":
		var v struct {
			Type       string `json:"type"`
			Individual bool   `json:"individual_digits"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Digits: %w", err)
		}
		return digitsPreTokenizer{v.Individual}, nil
	}
	return nil, unsupportedError{"pre_tokenizer", typ}
}

type byteLevelJSON struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	TrimOffsets    bool   `json:"trim_offsets"`
	UseRegex       bool   `json:"use_regex"`
}

func parseByteLevel(r json.RawMessage) (byteLevelJSON, error) {
	v := byteLevelJSON{AddPrefixSpace: true, TrimOffsets: true, UseRegex: true}
	if err := strict(r, &v); err != nil {
		return v, fmt.Errorf("ByteLevel: %w", err)
	}
	return v, nil
}

func parseMetaspace(r json.RawMessage) (metaspacePreTokenizer, error) {
	var v struct {
		Type           string  `json:"type"`
		Replacement    *string `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
		StrRep         *string `json:"str_rep"`
	}
	var m metaspacePreTokenizer
	if err := strict(r, &v); err != nil {
		return m, fmt.Errorf("Metaspace: %w", err)
	}
	if v.Replacement == nil || utf8.RuneCountInString(*v.Replacement) != 1 {
		return m, fmt.Errorf("Metaspace: \"replacement\" must be one character")
	}
	m.replacement, _ = utf8.DecodeRuneInString(*v.Replacement)
	m.scheme = prependAlways
	if v.PrependScheme != nil {
		switch *v.PrependScheme {
		case "always":
			m.scheme = prependAlways
		case "first":
			m.scheme = prependFirst
		case "never":
			m.scheme = prependNever
		default:
			return m, fmt.Errorf("Metaspace: unknown prepend_scheme %q", *v.PrependScheme)
		}
	}
	if v.AddPrefixSpace != nil && !*v.AddPrefixSpace {
		if v.PrependScheme != nil && m.scheme == prependAlways {
			return m, fmt.Errorf("Metaspace: add_prefix_space false contradicts prepend_scheme \"always\"")
		}
		m.scheme = prependNever
	}
	m.split = true
	if v.Split != nil {
		m.split = *v.Split
	}
	return m, nil
}

func parsePostProcessor(r json.RawMessage) (PostProcessor, error) {
	typ, err := typeOf(r)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		ps, err := parseSequence(r, "processors", parsePostProcessor)
		if err != nil {
			return nil, err
		}
		return seqProcessor(ps), nil
	case "ByteLevel":
		v, err := parseByteLevel(r)
		if err != nil {
			return nil, err
		}
		return byteLevelProcessor{addPrefixSpace: v.AddPrefixSpace, trimOffsets: v.TrimOffsets}, nil
	case "TemplateProcessing":
		return parseTemplate(r)
	}
	return nil, unsupportedError{"post_processor", typ}
}

func parseTemplate(r json.RawMessage) (PostProcessor, error) {
	type pieceJSON struct {
		Sequence *struct {
			ID     string `json:"id"`
			TypeID int    `json:"type_id"`
		} `json:"Sequence"`
		SpecialToken *struct {
			ID     string `json:"id"`
			TypeID int    `json:"type_id"`
		} `json:"SpecialToken"`
	}
	var v struct {
		Type          string      `json:"type"`
		Single        []pieceJSON `json:"single"`
		Pair          []pieceJSON `json:"pair"`
		SpecialTokens map[string]struct {
			ID     string   `json:"id"`
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		} `json:"special_tokens"`
	}
	if err := strict(r, &v); err != nil {
		return nil, fmt.Errorf("TemplateProcessing: %w", err)
	}
	t := &templateProcessor{specials: map[string]TemplateSpecial{}}
	for name, sp := range v.SpecialTokens {
		if len(sp.IDs) != len(sp.Tokens) {
			return nil, fmt.Errorf("TemplateProcessing: special token %q has %d ids but %d tokens", name, len(sp.IDs), len(sp.Tokens))
		}
		if sp.ID != name {
			return nil, fmt.Errorf("TemplateProcessing: special token key %q has id %q", name, sp.ID)
		}
		t.specials[name] = TemplateSpecial{IDs: sp.IDs, Tokens: sp.Tokens}
	}
	conv := func(which string, ps []pieceJSON, allowB bool) ([]TemplatePiece, error) {
		var out []TemplatePiece
		for i, p := range ps {
			switch {
			case p.Sequence != nil && p.SpecialToken == nil:
				if p.Sequence.ID != "A" && (p.Sequence.ID != "B" || !allowB) {
					return nil, fmt.Errorf("TemplateProcessing: %s[%d]: sequence %q is not allowed", which, i, p.Sequence.ID)
				}
				out = append(out, TemplatePiece{Sequence: p.Sequence.ID})
			case p.SpecialToken != nil && p.Sequence == nil:
				if _, ok := t.specials[p.SpecialToken.ID]; !ok {
					return nil, fmt.Errorf("TemplateProcessing: %s[%d]: special token %q is not in special_tokens", which, i, p.SpecialToken.ID)
				}
				out = append(out, TemplatePiece{Special: p.SpecialToken.ID})
			default:
				return nil, fmt.Errorf("TemplateProcessing: %s[%d]: need exactly one of \"Sequence\" and \"SpecialToken\"", which, i)
			}
		}
		return out, nil
	}
	var err error
	if t.single, err = conv("single", v.Single, false); err != nil {
		return nil, err
	}
	if t.pair, err = conv("pair", v.Pair, true); err != nil {
		return nil, err
	}
	return t, nil
}

func parseDecoder(r json.RawMessage) (Decoder, error) {
	typ, err := typeOf(r)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		ds, err := parseSequence(r, "decoders", parseDecoder)
		if err != nil {
			return nil, err
		}
		return seqDecoder(ds), nil
	case "ByteLevel":
		if _, err := parseByteLevel(r); err != nil {
			return nil, err
		}
		return byteLevelDecoder{}, nil
	case "Metaspace":
		m, err := parseMetaspace(r)
		if err != nil {
			return nil, err
		}
		return metaspaceDecoder{m.replacement, m.scheme}, nil
	case "ByteFallback", "Fuse":
		var v struct {
			Type string `json:"type"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", typ, err)
		}
		if typ == "Fuse" {
			return fuseDecoder{}, nil
		}
		return byteFallbackDecoder{}, nil
	case "Strip":
		var v struct {
			Type    string  `json:"type"`
			Content *string `json:"content"`
			Start   *int    `json:"start"`
			Stop    *int    `json:"stop"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Strip: %w", err)
		}
		if v.Content == nil || utf8.RuneCountInString(*v.Content) != 1 || v.Start == nil || v.Stop == nil || *v.Start < 0 || *v.Stop < 0 {
			return nil, fmt.Errorf("Strip: needs a one-character \"content\" and non-negative \"start\" and \"stop\"")
		}
		c, _ := utf8.DecodeRuneInString(*v.Content)
		return stripDecoder{c, *v.Start, *v.Stop}, nil
	case "Replace":
		var v struct {
			Type    string       `json:"type"`
			Pattern *patternJSON `json:"pattern"`
			Content *string      `json:"content"`
		}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		if v.Content == nil {
			return nil, fmt.Errorf("Replace: missing \"content\"")
		}
		p, err := v.Pattern.compile()
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return replaceDecoder{p, *v.Content}, nil
	case "BPEDecoder":
		v := struct {
			Type   string `json:"type"`
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := strict(r, &v); err != nil {
			return nil, fmt.Errorf("BPEDecoder: %w", err)
		}
		return bpeDecoder{v.Suffix}, nil
	}
	return nil, unsupportedError{"decoder", typ}
}

// rawMerges decodes "merges": either ["a b", ...] or [["a", "b"], ...].
func parseMerges(r json.RawMessage) ([][2]string, error) {
	if isNull(r) {
		return nil, fmt.Errorf("missing \"merges\"")
	}
	var legacy []string
	if err := json.Unmarshal(r, &legacy); err == nil {
		out := make([][2]string, 0, len(legacy))
		for _, line := range legacy {
			if strings.HasPrefix(line, "#version") {
				continue
			}
			parts := strings.Split(line, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merges[%d]: %q is not two tokens separated by one space", len(out), line)
			}
			out = append(out, [2]string{parts[0], parts[1]})
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(r, &pairs); err != nil {
		return nil, fmt.Errorf("\"merges\" is neither a list of strings nor a list of pairs: %v", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merges[%d]: a pair must have 2 tokens, not %d", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func parseModel(r json.RawMessage) (*BPE, error) {
	var t struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(r, &t); err != nil {
		return nil, err
	}
	if t.Type != nil && *t.Type != "BPE" {
		return nil, unsupportedError{"model", *t.Type}
	}
	var v struct {
		Type                    *string         `json:"type"`
		Dropout                 *float64        `json:"dropout"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
	}
	if err := strict(r, &v); err != nil {
		if t.Type == nil {
			return nil, fmt.Errorf("no \"type\", and not a BPE model: %w", err)
		}
		return nil, fmt.Errorf("BPE: %w", err)
	}
	if v.Dropout != nil && *v.Dropout != 0 {
		return nil, fmt.Errorf("BPE: dropout %v is not supported (only null or 0: encoding must be deterministic)", *v.Dropout)
	}
	if v.Vocab == nil {
		return nil, fmt.Errorf("BPE: missing \"vocab\"")
	}
	merges, err := parseMerges(v.Merges)
	if err != nil {
		return nil, fmt.Errorf("BPE: %w", err)
	}
	cfg := BPEConfig{
		Vocab:        v.Vocab,
		Merges:       merges,
		FuseUnk:      v.FuseUnk,
		ByteFallback: v.ByteFallback,
		IgnoreMerges: v.IgnoreMerges,
	}
	if v.UnkToken != nil {
		cfg.UnkToken = *v.UnkToken
	}
	if v.ContinuingSubwordPrefix != nil {
		cfg.ContinuingSubwordPrefix = *v.ContinuingSubwordPrefix
	}
	if v.EndOfWordSuffix != nil {
		cfg.EndOfWordSuffix = *v.EndOfWordSuffix
	}
	m, err := NewBPE(cfg)
	if err != nil {
		return nil, fmt.Errorf("BPE: %w", err)
	}
	return m, nil
}

// parseFile decodes a whole tokenizer.json into Options and the model.
func parseFile(data []byte) (*BPE, Options, error) {
	var opts Options
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, opts, fmt.Errorf("not a tokenizer.json: %v", err)
	}
	if f.Version != nil && *f.Version != "1.0" {
		return nil, opts, fmt.Errorf("unknown tokenizer.json version %q", *f.Version)
	}
	if !isNull(f.Truncation) {
		return nil, opts, fmt.Errorf("truncation: not supported (it must be null)")
	}
	if !isNull(f.Padding) {
		return nil, opts, fmt.Errorf("padding: not supported (it must be null)")
	}
	if isNull(f.Model) {
		return nil, opts, fmt.Errorf("model: missing")
	}
	model, err := parseModel(f.Model)
	if err != nil {
		return nil, opts, fmt.Errorf("model: %w", err)
	}
	if !isNull(f.Normalizer) {
		if opts.Normalizer, err = parseNormalizer(f.Normalizer); err != nil {
			return nil, opts, fmt.Errorf("normalizer: %w", err)
		}
	}
	if !isNull(f.PreTokenizer) {
		if opts.PreTokenizer, err = parsePreTokenizer(f.PreTokenizer); err != nil {
			return nil, opts, fmt.Errorf("pre_tokenizer: %w", err)
		}
	}
	if !isNull(f.PostProcessor) {
		if opts.PostProcessor, err = parsePostProcessor(f.PostProcessor); err != nil {
			return nil, opts, fmt.Errorf("post_processor: %w", err)
		}
	}
	if !isNull(f.Decoder) {
		if opts.Decoder, err = parseDecoder(f.Decoder); err != nil {
			return nil, opts, fmt.Errorf("decoder: %w", err)
		}
	}
	for i, a := range f.AddedTokens {
		if a.ID == nil || a.Content == nil {
			return nil, opts, fmt.Errorf("added_tokens[%d]: missing \"id\" or \"content\"", i)
		}
		tok := AddedToken{
			ID:         *a.ID,
			Content:    *a.Content,
			Special:    a.Special,
			SingleWord: a.SingleWord,
			LStrip:     a.LStrip,
			RStrip:     a.RStrip,
			Normalized: !a.Special,
		}
		if a.Normalized != nil {
			tok.Normalized = *a.Normalized
		}
		opts.AddedTokens = append(opts.AddedTokens, tok)
	}
	return model, opts, nil
}

// sortedKeys returns the keys of m in order (for deterministic messages).
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
