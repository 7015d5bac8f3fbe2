package tokenizer

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf8"
)

// Options are the components of a tokenizer around its model; any may be
// nil, as in tokenizer.json.
type Options struct {
	Normalizer    Normalizer
	PreTokenizer  PreTokenizer
	PostProcessor PostProcessor
	Decoder       Decoder
	// AddedTokens are matched in the text before the model runs.
	AddedTokens []AddedToken
}

// Tokenizer encodes text to token ids and decodes ids to text exactly as
// the Hugging Face tokenizers library does with the same tokenizer.json.
// It is safe for concurrent use.
type Tokenizer struct {
	name  string
	model *BPE
	opts  Options
	added addedVocab
	// needAlign is set when a component needs original offsets to encode
	// (Metaspace with prepend_scheme "first").
	needAlign bool
	maxID     int
}

// Load reads and parses a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(data, path)
}

// Parse parses the contents of a tokenizer.json; name (usually the file
// name) is used in error messages. A malformed file, or one that uses a
// component or option this package does not implement, is an error that
// names the file and the component.
func Parse(data []byte, name string) (*Tokenizer, error) {
	model, opts, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	t, err := newTokenizer(model, opts, true)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	t.name = name
	return t, nil
}

// New assembles a tokenizer from a model and its components, as
// tokenizer.json would describe them. The ids of opts.AddedTokens must be
// the ids that the Rust library assigns: the model's id for a token in the
// vocabulary, otherwise the next id after the vocabulary and the earlier
// added tokens.
func New(model *BPE, opts Options) (*Tokenizer, error) {
	if model == nil {
		return nil, fmt.Errorf("tokenizer: nil model")
	}
	t, err := newTokenizer(model, opts, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

func newTokenizer(model *BPE, opts Options, fromFile bool) (*Tokenizer, error) {
	t := &Tokenizer{model: model, opts: opts}
	t.needAlign = needsAlign(opts.PreTokenizer)
	if err := t.buildAdded(fromFile); err != nil {
		return nil, err
	}
	t.maxID = -1
	for _, id := range model.vocab {
		t.maxID = max(t.maxID, int(id))
	}
	for id := range t.added.byID {
		t.maxID = max(t.maxID, id)
	}
	return t, nil
}

func needsAlign(p PreTokenizer) bool {
	switch p := p.(type) {
	case metaspacePreTokenizer:
		return p.scheme == prependFirst
	case seqPreTokenizer:
		for _, x := range p {
			if needsAlign(x) {
				return true
			}
		}
	}
	return false
}

// buildAdded registers the added tokens as AddedVocabulary::add_tokens
// does, and checks that the ids it assigns are the ids given.
func (t *Tokenizer) buildAdded(fromFile bool) error {
	v := &t.added
	v.byContent = map[string]int{}
	v.byID = map[int]*AddedToken{}
	v.special = map[string]bool{}
	v.idText = map[int]string{}
	var specials, others []*AddedToken
	for i := range t.opts.AddedTokens {
		tok := &t.opts.AddedTokens[i]
		if tok.Special && tok.Content != "" && !v.special[tok.Content] {
			specials = append(specials, tok)
			v.special[tok.Content] = true
		}
	}
	vocabSize := len(t.model.vocab)
	for i := range t.opts.AddedTokens {
		tok := &t.opts.AddedTokens[i]
		where := fmt.Sprintf("added_tokens[%d] %q", i, tok.Content)
		if tok.Content == "" {
			return fmt.Errorf("%s: empty content", where)
		}
		dup := false
		for _, x := range v.byID {
			if x.Content == tok.Content && x.Special == tok.Special && x.SingleWord == tok.SingleWord &&
				x.LStrip == tok.LStrip && x.RStrip == tok.RStrip && x.Normalized == tok.Normalized {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		id, ok := v.byContent[tok.Content]
		if !ok {
			var inVocab bool
			var mid int32
			mid, inVocab = t.model.vocab[tok.Content]
			id = int(mid)
			if !inVocab {
				if len(v.byContent) == 0 {
					id = vocabSize
				} else {
					mx := -1
					for _, x := range v.byContent {
						mx = max(mx, x)
					}
					if mx >= vocabSize || vocabSize == 0 {
						id = mx + 1
					} else {
						id = vocabSize
					}
				}
			}
		}
		if id != tok.ID {
			how := "gives it"
			if fromFile {
				how = "has"
			}
			return fmt.Errorf("%s %s id %d, but the Hugging Face library assigns it id %d (added tokens must take their vocabulary id, or the next free id after the vocabulary, in order)", where, how, tok.ID, id)
		}
		v.byContent[tok.Content] = id
		v.byID[id] = tok
		v.idText[id] = tok.Content
		if !v.special[tok.Content] {
			others = append(others, tok)
		}
	}
	for _, tok := range append(specials, others...) {
		id := v.byContent[tok.Content]
		if !tok.Normalized {
			v.raw.add(tok.Content, id)
			continue
		}
		n := newNString(tok.Content, 0, false)
		if t.opts.Normalizer != nil {
			t.opts.Normalizer.normalize(&n)
		}
		if n.s != "" {
			v.norm.add(n.s, id)
		}
		// The Rust library's id_to_token gives the normalised content of
		// a normalised added token.
		v.idText[id] = n.s
	}
	return nil
}

// Encoding is the result of EncodeWithOffsets.
type Encoding struct {
	// IDs are the token ids.
	IDs []int
	// Offsets are, for each token, the byte range [start, end) of the
	// input that it comes from, as the Rust library computes it (the
	// tokens of a character split over several tokens each cover the
	// whole character; tokens added by the post-processor have [0, 0)).
	Offsets [][2]int
	// Special marks the tokens added by the post-processor (BOS, EOS).
	Special []bool
}

// Encode returns the token ids of text; addSpecial runs the
// post-processor's template (adding BOS and the like). Invalid UTF-8 is
// read as U+FFFD for each invalid byte.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	return t.encode(text, addSpecial, false).ids
}

// EncodeWithOffsets is Encode with the byte offsets of every token in
// text.
func (t *Tokenizer) EncodeWithOffsets(text string, addSpecial bool) Encoding {
	e := t.encode(text, addSpecial, true)
	return Encoding{IDs: e.ids, Offsets: e.offsets, Special: e.special}
}

// SegmentEncoding is the result of EncodeSegments.
type SegmentEncoding struct {
	Encoding
	// Segment is, for each token, the index of the segment that holds the
	// token's first byte, or -1 for a token added by the post-processor.
	// A token can run on into the next segments when the tokenizer merges
	// across the boundary; its Offsets then end past its segment.
	Segment []int
}

// EncodeSegments encodes the concatenation of segments (as a chat template
// renders a conversation) and tells which segment each token comes from,
// so that tokens can be masked by role.
func (t *Tokenizer) EncodeSegments(segments []string, addSpecial bool) SegmentEncoding {
	starts := make([]int, len(segments))
	var b strings.Builder
	for i, s := range segments {
		starts[i] = b.Len()
		b.WriteString(s)
	}
	e := t.EncodeWithOffsets(b.String(), addSpecial)
	out := SegmentEncoding{Encoding: e, Segment: make([]int, len(e.IDs))}
	for i := range e.IDs {
		if e.Special[i] {
			out.Segment[i] = -1
			continue
		}
		off := e.Offsets[i][0]
		seg := sort.Search(len(starts), func(k int) bool { return starts[k] > off }) - 1
		// Skip empty segments that start at the same offset.
		for seg+1 < len(starts) && starts[seg+1] == off && len(segments[seg]) == 0 {
			seg++
		}
		for seg > 0 && len(segments[seg]) == 0 {
			seg--
		}
		out.Segment[i] = max(seg, 0)
	}
	return out
}

// sanitize replaces invalid UTF-8 with U+FFFD per byte, returning the map
// from each byte of the result to a byte of s (nil when s is valid).
func sanitize(s string) (string, []int) {
	if utf8.ValidString(s) {
		return s, nil
	}
	var b strings.Builder
	var back []int
	for i, r := range s {
		n := b.Len()
		b.WriteRune(r)
		for k := n; k < b.Len(); k++ {
			back = append(back, i)
		}
	}
	back = append(back, len(s))
	return b.String(), back
}

func (t *Tokenizer) encode(text string, addSpecial, wantOffsets bool) encoding {
	text, back := sanitize(text)
	track := wantOffsets || t.needAlign
	root := newNString(text, 0, track)
	pieces := t.added.splitAdded(root, &t.added.raw, nil)
	norm := make([]piece, 0, len(pieces))
	for _, p := range pieces {
		if p.token >= 0 {
			norm = append(norm, p)
			continue
		}
		n := p.n
		if t.opts.Normalizer != nil {
			t.opts.Normalizer.normalize(&n)
		}
		if n.s == "" {
			continue
		}
		norm = t.added.splitAdded(n, &t.added.norm, norm)
	}
	e := encoding{text: text, ids: make([]int, 0, len(text)/3+2), special: make([]bool, 0, len(text)/3+2)}
	if wantOffsets {
		e.offsets = [][2]int{}
		e.tokens = []string{}
	}
	var sub []nstring
	for _, p := range norm {
		if p.token >= 0 {
			e.ids = append(e.ids, p.token)
			e.special = append(e.special, false)
			if wantOffsets {
				e.tokens = append(e.tokens, p.n.s)
				e.offsets = append(e.offsets, [2]int{p.n.orig.start, p.n.orig.end})
			}
			continue
		}
		sub = sub[:0]
		if t.opts.PreTokenizer != nil {
			sub = t.opts.PreTokenizer.preTokenize(p.n, sub)
		} else {
			sub = append(sub, p.n)
		}
		for i := range sub {
			t.tokenizePiece(&sub[i], &e)
		}
	}
	if t.opts.PostProcessor != nil {
		t.opts.PostProcessor.process(&e, addSpecial)
	}
	if back != nil && e.offsets != nil {
		for i, o := range e.offsets {
			e.offsets[i] = [2]int{back[o[0]], back[o[1]]}
		}
	}
	return e
}

// tokenizePiece runs the model on one pre-tokenized piece.
func (t *Tokenizer) tokenizePiece(n *nstring, e *encoding) {
	if n.s == "" {
		return
	}
	w := t.model.tokenize(n.s)
	for _, id := range w.ids {
		e.ids = append(e.ids, int(id))
		e.special = append(e.special, false)
	}
	if e.offsets == nil {
		return
	}
	pos := 0
	for k, id := range w.ids {
		a, b := pos, pos+int(w.lens[k])
		pos = b
		var off [2]int
		if b <= len(n.align) && a < b {
			off = [2]int{n.align[a].start, n.align[b-1].end}
		} else {
			off = [2]int{a, b}
		}
		e.offsets = append(e.offsets, off)
		e.tokens = append(e.tokens, t.model.vocabR[id])
	}
}

// Decode turns ids back into text, as the Rust library's decode does: ids
// that are not in the vocabulary are skipped, and with skipSpecial so are
// the special tokens.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.IDToToken(id)
		if !ok {
			continue
		}
		if skipSpecial && t.added.special[tok] {
			continue
		}
		tokens = append(tokens, tok)
	}
	if t.opts.Decoder == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.opts.Decoder.decodeChain(tokens), "")
}

// TokenToID returns the id of a token: an added token, or a token of the
// model's vocabulary.
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if id, ok := t.added.byContent[tok]; ok {
		return id, true
	}
	return t.model.TokenToID(tok)
}

// IDToToken returns the token of an id: an added token's content (as the
// normalizer makes it, for a normalized added token, as in the Rust
// library), or the model's vocabulary token.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if s, ok := t.added.idText[id]; ok {
		return s, true
	}
	return t.model.IDToToken(id)
}

// VocabSize returns one more than the largest token id (of the model's
// vocabulary and the added tokens): the number of embedding rows the
// tokenizer needs.
func (t *Tokenizer) VocabSize() int { return t.maxID + 1 }

// CheckVocabSize checks that every token id is below n, a model's
// vocab_size (the model may have more rows than the tokenizer uses).
func (t *Tokenizer) CheckVocabSize(n int) error {
	if n <= 0 {
		return fmt.Errorf("tokenizer %s: model vocab_size %d is not positive", t.name, n)
	}
	if t.maxID < n {
		return nil
	}
	tok, _ := t.IDToToken(t.maxID)
	return fmt.Errorf("tokenizer %s: token %q has id %d, but the model's vocab_size is %d (ids must be below it)", t.name, tok, t.maxID, n)
}

// Model returns the BPE model.
func (t *Tokenizer) Model() *BPE { return t.model }

// AddedTokens returns the added tokens, in id order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := make([]AddedToken, 0, len(t.added.byID))
	for _, a := range t.added.byID {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SpecialTokens returns the special added tokens, in id order.
func (t *Tokenizer) SpecialTokens() []AddedToken {
	var out []AddedToken
	for _, a := range t.AddedTokens() {
		if a.Special {
			out = append(out, a)
		}
	}
	return out
}

// Well-known BOS and EOS token names, tried in order when the
// post-processor does not say.
var (
	bosNames = []string{"<s>", "<|begin_of_text|>", "<bos>", "<｜begin▁of▁sentence｜>"}
	eosNames = []string{"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<｜end▁of▁sentence｜>"}
)

func findTemplate(p PostProcessor) *templateProcessor {
	switch p := p.(type) {
	case *templateProcessor:
		return p
	case seqProcessor:
		for _, x := range p {
			if t := findTemplate(x); t != nil {
				return t
			}
		}
	}
	return nil
}

// BOS returns the beginning-of-sequence token id: the special token that
// the post-processor's template puts before the text, or else the first
// special token named like a BOS token (<s>, <|begin_of_text|>, <bos>,
// <｜begin▁of▁sentence｜>). The model's own configuration, when it names
// one, takes precedence over this guess.
func (t *Tokenizer) BOS() (int, bool) {
	if tp := findTemplate(t.opts.PostProcessor); tp != nil && len(tp.single) > 0 && tp.single[0].Special != "" {
		if ids := tp.specials[tp.single[0].Special].IDs; len(ids) > 0 {
			return ids[0], true
		}
	}
	return t.findSpecial(bosNames)
}

// EOS returns the end-of-sequence token id: the special token that the
// template puts after the text, or else the first special token named
// like an EOS token (</s>, <|end_of_text|>, <|endoftext|>, <eos>,
// <｜end▁of▁sentence｜>). Chat models often stop on another token (Llama 3's
// <|eot_id|>, Qwen's <|im_end|>); generation_config.json says which.
func (t *Tokenizer) EOS() (int, bool) {
	if tp := findTemplate(t.opts.PostProcessor); tp != nil && len(tp.single) > 0 {
		if last := tp.single[len(tp.single)-1]; last.Special != "" {
			if ids := tp.specials[last.Special].IDs; len(ids) > 0 {
				return ids[len(ids)-1], true
			}
		}
	}
	return t.findSpecial(eosNames)
}

func (t *Tokenizer) findSpecial(names []string) (int, bool) {
	for _, n := range names {
		if t.added.special[n] {
			return t.added.byContent[n], true
		}
	}
	return 0, false
}
