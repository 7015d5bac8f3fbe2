package tokenizer

import (
	"strings"
	"unicode"
)

// PreTokenizer is one step of a tokenizer.json "pre_tokenizer": it cuts
// pieces of normalised text into smaller pieces, and may rewrite them
// (ByteLevel, Metaspace).
type PreTokenizer interface {
	// preTokenize appends the pieces that n becomes to out.
	preTokenize(n nstring, out []nstring) []nstring
}

// NewSequencePreTokenizer runs the pre-tokenizers in order, each on every
// piece the previous one produced.
func NewSequencePreTokenizer(ps ...PreTokenizer) PreTokenizer { return seqPreTokenizer(ps) }

type seqPreTokenizer []PreTokenizer

func (s seqPreTokenizer) preTokenize(n nstring, out []nstring) []nstring {
	cur := []nstring{n}
	var next []nstring
	for _, p := range s {
		next = next[:0]
		for _, x := range cur {
			next = p.preTokenize(x, next)
		}
		cur, next = next, cur
	}
	return append(out, cur...)
}

// byteLevelPreTokenizer is ByteLevel: optionally add a leading space, split
// with GPT-2's regex, and map every byte to its visible character.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevelPreTokenizer) preTokenize(n nstring, out []nstring) []nstring {
	if b.addPrefixSpace && !strings.HasPrefix(n.s, " ") {
		n.prepend(" ")
	}
	start := len(out)
	if b.useRegex {
		out = n.split(spanPattern{gpt2Splitter{}}, behaviorIsolated, false, out)
	} else if n.s != "" {
		out = append(out, n)
	}
	for i := start; i < len(out); i++ {
		byteLevelMap(&out[i])
	}
	return out
}

// splitPreTokenizer is Split: cut at a pattern's matches.
type splitPreTokenizer struct {
	p        pattern
	behavior splitBehavior
	invert   bool
}

func (s splitPreTokenizer) preTokenize(n nstring, out []nstring) []nstring {
	return n.split(s.p, s.behavior, s.invert, out)
}

// prependScheme is Metaspace's prepend_scheme.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePreTokenizer is Metaspace: replace spaces by the replacement
// character, prepend one as the scheme says, and optionally split before
// each replacement character.
type metaspacePreTokenizer struct {
	replacement rune
	scheme      prependScheme
	split       bool
}

func (m metaspacePreTokenizer) preTokenize(n nstring, out []nstring) []nstring {
	rep := string(m.replacement)
	n.replace(runePattern(func(r rune) bool { return r == ' ' }), rep)
	switch m.scheme {
	case prependAlways:
		if !strings.HasPrefix(n.s, rep) {
			n.prepend(rep)
		}
	case prependFirst:
		if !strings.HasPrefix(n.s, rep) && n.orig.start == 0 {
			n.prepend(rep)
		}
	}
	if m.split {
		r := m.replacement
		return n.split(runePattern(func(c rune) bool { return c == r }), behaviorMergedWithNext, false, out)
	}
	if n.s == "" {
		return out
	}
	return append(out, n)
}

// digitsPreTokenizer is Digits: split numeric characters (Rust's
// char::is_numeric: Nd, Nl, No) off, one by one or in runs.
type digitsPreTokenizer struct{ individual bool }

func (d digitsPreTokenizer) preTokenize(n nstring, out []nstring) []nstring {
	b := behaviorContiguous
	if d.individual {
		b = behaviorIsolated
	}
	return n.split(runePattern(unicode.IsNumber), b, false, out)
}
