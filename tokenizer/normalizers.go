package tokenizer

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalizer is one normalisation step of a tokenizer.json "normalizer"
// (NFC, NFKC, Prepend, Replace, Sequence, ...). Build one with the
// New*Normalizer functions, or get it from Load.
type Normalizer interface {
	normalize(n *nstring)
}

// NewSequenceNormalizer runs the normalizers in order.
func NewSequenceNormalizer(ns ...Normalizer) Normalizer { return seqNormalizer(ns) }

type seqNormalizer []Normalizer

func (s seqNormalizer) normalize(n *nstring) {
	for _, x := range s {
		x.normalize(n)
	}
}

// NewPrependNormalizer prepends prefix to every non-empty piece of text
// (Llama 2's "▁").
func NewPrependNormalizer(prefix string) Normalizer { return prependNormalizer(prefix) }

type prependNormalizer string

func (p prependNormalizer) normalize(n *nstring) { n.prepend(string(p)) }

type appendNormalizer string

func (p appendNormalizer) normalize(n *nstring) { n.appendStr(string(p)) }

// NewReplaceNormalizer replaces every occurrence of the literal old with
// new (Llama 2's " " -> "▁").
func NewReplaceNormalizer(old, new string) Normalizer {
	return replaceNormalizer{literalPattern{old}, new}
}

type replaceNormalizer struct {
	p       pattern
	content string
}

func (r replaceNormalizer) normalize(n *nstring) { n.replace(r.p, r.content) }

// NewLlamaNormalizer is the normalizer of the Llama 2 (SentencePiece BPE)
// tokenizer.json: prepend "▁", then replace every space by "▁".
func NewLlamaNormalizer() Normalizer {
	return NewSequenceNormalizer(NewPrependNormalizer("▁"), NewReplaceNormalizer(" ", "▁"))
}

// unicodeNormalizer applies one of the four Unicode normalisation forms.
type unicodeNormalizer struct{ form norm.Form }

func (u unicodeNormalizer) normalize(n *nstring) {
	if u.form.IsNormalString(n.s) {
		return
	}
	if !n.track {
		n.s = u.form.String(n.s)
		return
	}
	n.transform(alignedNormalize(u.form, n.s), 0)
}

// lowercaseNormalizer maps every character to its lower case as Rust's
// char::to_lowercase does.
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(n *nstring) {
	n.mapRunes(func(r rune, out []change) []change {
		if r == 'İ' {
			return append(out, change{'i', 0}, change{'\u0307', 1})
		}
		return append(out, change{unicode.ToLower(r), 0})
	})
}

// stripNormalizer removes leading and/or trailing whitespace.
type stripNormalizer struct{ left, right bool }

func (s stripNormalizer) normalize(n *nstring) { n.strip(s.left, s.right) }

// stripAccentsNormalizer removes combining marks (general category M), as
// the Rust library's StripAccents (is_combining_mark) does.
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(n *nstring) {
	keep := func(r rune) bool { return !unicode.IsMark(r) }
	removedAny := false
	for _, r := range n.s {
		if !keep(r) {
			removedAny = true
			break
		}
	}
	if !removedAny {
		return
	}
	// NormalizedString::filter: walk backwards, each kept character
	// carrying the count of removed characters after it.
	runes := []rune(n.s)
	rev := make([]change, 0, len(runes))
	removed := 0
	for i := len(runes) - 1; i >= 0; i-- {
		if keep(runes[i]) {
			rev = append(rev, change{runes[i], -removed})
			removed = 0
		} else {
			removed++
		}
	}
	dest := make([]change, len(rev))
	for i := range rev {
		dest[i] = rev[len(rev)-1-i]
	}
	n.transform(dest, removed)
}
