package tokenizer

import "unicode/utf8"

// PostProcessor is a tokenizer.json "post_processor": it adds the special
// tokens around an encoding (TemplateProcessing) or adjusts its offsets
// (ByteLevel).
type PostProcessor interface {
	process(e *encoding, addSpecial bool)
}

// encoding is an encoding in progress: ids, the token strings (needed by
// ByteLevel's offset trimming), offsets and the origin of each token.
type encoding struct {
	text    string // the input, to step over characters in offsets
	ids     []int
	tokens  []string // nil unless offsets are tracked
	offsets [][2]int // nil unless offsets are tracked
	special []bool   // whether the post-processor added the token
}

// TemplatePiece is one element of a TemplateProcessing template: either
// the sequence ("A"), or a special token, named by its key in the special
// tokens map.
type TemplatePiece struct {
	// Sequence is "A" or "B" for the input sequence, empty for a special
	// token.
	Sequence string
	// Special names an entry of the template's special tokens.
	Special string
}

// TemplateSpecial is the ids (and token strings) that a template's special
// token name stands for.
type TemplateSpecial struct {
	IDs    []int
	Tokens []string
}

// NewTemplateProcessing returns a TemplateProcessing post-processor for
// single sequences, e.g. Llama 2's "<s> $A" is
// []TemplatePiece{{Special: "<s>"}, {Sequence: "A"}} with
// specials{"<s>": {IDs: []int{1}, Tokens: []string{"<s>"}}}.
func NewTemplateProcessing(single []TemplatePiece, specials map[string]TemplateSpecial) PostProcessor {
	return &templateProcessor{single: single, specials: specials}
}

type templateProcessor struct {
	single   []TemplatePiece
	pair     []TemplatePiece
	specials map[string]TemplateSpecial
}

func (t *templateProcessor) process(e *encoding, addSpecial bool) {
	if !addSpecial {
		return
	}
	out := encoding{}
	track := e.offsets != nil
	for _, p := range t.single {
		if p.Sequence != "" {
			out.ids = append(out.ids, e.ids...)
			out.special = append(out.special, e.special...)
			if track {
				out.tokens = append(out.tokens, e.tokens...)
				out.offsets = append(out.offsets, e.offsets...)
			}
			continue
		}
		sp := t.specials[p.Special]
		for i, id := range sp.IDs {
			out.ids = append(out.ids, id)
			out.special = append(out.special, true)
			if track {
				out.tokens = append(out.tokens, sp.Tokens[i])
				out.offsets = append(out.offsets, [2]int{0, 0})
			}
		}
	}
	*e = out
}

// byteLevelProcessor is the ByteLevel post-processor: with trim_offsets it
// moves the offsets of tokens past their leading and trailing spaces.
type byteLevelProcessor struct {
	addPrefixSpace bool
	trimOffsets    bool
}

func (b byteLevelProcessor) process(e *encoding, addSpecial bool) {
	if !b.trimOffsets || e.offsets == nil {
		return
	}
	isSpace := func(r rune) bool { return r == byteToRune[' '] || isRustWhitespace(r) }
	for i, tok := range e.tokens {
		lead, trail := 0, 0
		for _, r := range tok {
			if !isSpace(r) {
				break
			}
			lead++
		}
		for s := tok; s != ""; {
			r, w := utf8.DecodeLastRuneInString(s)
			if !isSpace(r) {
				break
			}
			trail++
			s = s[:len(s)-w]
		}
		if lead == 0 && trail == 0 {
			continue
		}
		// The Rust library trims in characters (its offsets are
		// character offsets when the bindings call it).
		off := e.offsets[i]
		if lead > 0 {
			isFirst := i == 0 || off[0] == 0
			if isFirst && b.addPrefixSpace && lead == 1 {
				lead = 0
			}
			for k := 0; k < lead && off[0] < off[1]; k++ {
				_, w := utf8.DecodeRuneInString(e.text[off[0]:])
				off[0] = min(off[0]+w, off[1])
			}
		}
		if trail > 0 && utf8.RuneCountInString(e.text[:off[1]]) >= trail {
			for k := 0; k < trail && off[1] > off[0]; k++ {
				_, w := utf8.DecodeLastRuneInString(e.text[:off[1]])
				off[1] = max(off[1]-w, off[0])
			}
		}
		e.offsets[i] = off
	}
}

// seqProcessor runs post-processors in order.
type seqProcessor []PostProcessor

func (s seqProcessor) process(e *encoding, addSpecial bool) {
	for _, p := range s {
		p.process(e, addSpecial)
	}
}
