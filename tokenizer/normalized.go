package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// span is a byte range [start, end) of the original input.
type span struct{ start, end int }

// nstring is a port of the Rust library's NormalizedString: a piece of the
// input after normalisation, with, when offsets are tracked, the original
// byte range of every byte of the normalised text. Unlike the Rust type the
// alignments hold absolute offsets into the whole input, which removes the
// need for an original_shift.
//
// When track is false, align is nil and orig is meaningless; every operation
// then only computes the text, which is what Encode needs.
type nstring struct {
	s     string
	track bool
	align []span
	orig  span
}

// newNString wraps the input text s, which starts at byte base of the
// whole input.
func newNString(s string, base int, track bool) nstring {
	n := nstring{s: s, track: track}
	if !track {
		return n
	}
	n.orig = span{base, base + len(s)}
	n.align = make([]span, len(s))
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		for k := 0; k < w; k++ {
			n.align[i+k] = span{base + i, base + i + w}
		}
		i += w
	}
	return n
}

// slice returns the part of n between normalised byte offsets a and b, as
// NormalizedString::slice(Range::Normalized(a..b)) does.
func (n *nstring) slice(a, b int) nstring {
	out := nstring{s: n.s[a:b], track: n.track}
	if !n.track {
		return out
	}
	out.align = n.align[a:b:b]
	if a < b {
		out.orig = span{n.align[a].start, n.align[b-1].end}
	} else {
		// The Rust library returns the range unchanged for an empty target;
		// empty pieces are always dropped, so this never reaches an offset.
		out.orig = span{n.orig.start, n.orig.start}
	}
	return out
}

// change is one character of a transformation with its change in size, as
// in NormalizedString::transform_range: 0 replaces one character, +1 is
// inserted, -N replaces one character and removes the N after it.
type change struct {
	r rune
	c int
}

// transformRange replaces the normalised bytes [start, end) with the
// characters of dest, after removing initialOffset characters at the start
// of the range, updating the alignments exactly as the Rust library does.
func (n *nstring) transformRange(start, end int, dest []change, initialOffset int) {
	if !n.track {
		var b strings.Builder
		b.Grow(len(n.s) - (end - start) + len(dest))
		b.WriteString(n.s[:start])
		for _, d := range dest {
			b.WriteRune(d.r)
		}
		b.WriteString(n.s[end:])
		n.s = b.String()
		return
	}
	replaced := n.s[start:end]
	pos := 0 // byte position in replaced of the next replaced character
	next := func() int {
		if pos >= len(replaced) {
			return 0
		}
		_, w := utf8.DecodeRuneInString(replaced[pos:])
		pos += w
		return w
	}
	initialRemoved := 0
	for i := 0; i < initialOffset; i++ {
		initialRemoved += next()
	}
	offset := initialRemoved + start
	var b strings.Builder
	b.Grow(len(n.s) - (end - start) + len(dest))
	b.WriteString(n.s[:start])
	aligns := make([]span, 0, len(n.align)-(end-start)+len(dest))
	aligns = append(aligns, n.align[:start]...)
	for _, d := range dest {
		var al span
		if d.c > 0 {
			switch {
			case offset < 1:
				al = span{n.orig.start, n.orig.start}
			case offset-1 < len(n.align):
				al = n.align[offset-1]
			default:
				al = span{n.orig.end, n.orig.end}
			}
		} else {
			if offset < len(n.align) {
				al = n.align[offset]
			} else {
				al = span{n.orig.end, n.orig.end}
			}
			offset += next()
		}
		if d.c < 0 {
			for k := 0; k < -d.c; k++ {
				offset += next()
			}
		}
		w := utf8.RuneLen(d.r)
		if w < 0 {
			w = 3 // written as U+FFFD
		}
		b.WriteRune(d.r)
		for k := 0; k < w; k++ {
			aligns = append(aligns, al)
		}
	}
	b.WriteString(n.s[end:])
	aligns = append(aligns, n.align[end:]...)
	n.s = b.String()
	n.align = aligns
}

// transform replaces the whole normalised text.
func (n *nstring) transform(dest []change, initialOffset int) {
	n.transformRange(0, len(n.s), dest, initialOffset)
}

// prepend inserts s before the text, aligned with its first character; an
// empty text is left alone.
func (n *nstring) prepend(s string) {
	if n.s == "" || s == "" {
		return
	}
	if !n.track {
		n.s = s + n.s
		return
	}
	first, w := utf8.DecodeRuneInString(n.s)
	dest := make([]change, 0, utf8.RuneCountInString(s)+1)
	for i, r := range []rune(s) {
		c := 1
		if i == 0 {
			c = 0
		}
		dest = append(dest, change{r, c})
	}
	dest = append(dest, change{first, 1})
	n.transformRange(0, w, dest, 0)
}

// appendStr adds s after the text, aligned with its last character.
func (n *nstring) appendStr(s string) {
	if n.s == "" || s == "" {
		return
	}
	if !n.track {
		n.s += s
		return
	}
	last, w := utf8.DecodeLastRuneInString(n.s)
	dest := []change{{last, 0}}
	for _, r := range s {
		dest = append(dest, change{r, 1})
	}
	n.transformRange(len(n.s)-w, len(n.s), dest, 0)
}

// replace replaces every match of p with content.
func (n *nstring) replace(p pattern, content string) {
	ms := p.findMatches(n.s)
	hasMatch := false
	for _, m := range ms {
		if m.isMatch {
			hasMatch = true
			break
		}
	}
	if !hasMatch {
		return
	}
	if !n.track {
		var b strings.Builder
		b.Grow(len(n.s))
		for _, m := range ms {
			if m.isMatch {
				b.WriteString(content)
			} else {
				b.WriteString(n.s[m.start:m.end])
			}
		}
		n.s = b.String()
		return
	}
	var dest []change
	for _, r := range content {
		dest = append(dest, change{r, 1})
	}
	offset := 0
	for _, m := range ms {
		if !m.isMatch {
			continue
		}
		start, end := m.start+offset, m.end+offset
		if start < 0 {
			start = 0
		}
		if end < 0 {
			end = 0
		}
		removed := utf8.RuneCountInString(n.s[start:end])
		n.transformRange(start, end, dest, removed)
		offset += len(content) - (m.end - m.start)
	}
}

// splitBehavior is the Rust SplitDelimiterBehavior.
type splitBehavior int

const (
	behaviorRemoved splitBehavior = iota
	behaviorIsolated
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

var behaviorNames = map[string]splitBehavior{
	"Removed":            behaviorRemoved,
	"Isolated":           behaviorIsolated,
	"MergedWithPrevious": behaviorMergedWithPrevious,
	"MergedWithNext":     behaviorMergedWithNext,
	"Contiguous":         behaviorContiguous,
}

// split cuts n at the matches of p, handling the delimiters as behavior
// says, and appends the non-empty pieces to out.
func (n *nstring) split(p pattern, behavior splitBehavior, invert bool, out []nstring) []nstring {
	ms := p.findMatches(n.s)
	if invert {
		for i := range ms {
			ms[i].isMatch = !ms[i].isMatch
		}
	}
	type cut struct {
		start, end int
		remove     bool
	}
	var cuts []cut
	switch behavior {
	case behaviorIsolated:
		cuts = make([]cut, len(ms))
		for i, m := range ms {
			cuts[i] = cut{m.start, m.end, false}
		}
	case behaviorRemoved:
		cuts = make([]cut, len(ms))
		for i, m := range ms {
			cuts[i] = cut{m.start, m.end, m.isMatch}
		}
	case behaviorContiguous:
		prev := false
		for _, m := range ms {
			if m.isMatch == prev && len(cuts) > 0 {
				cuts[len(cuts)-1].end = m.end
			} else {
				cuts = append(cuts, cut{m.start, m.end, false})
			}
			prev = m.isMatch
		}
	case behaviorMergedWithPrevious:
		prev := false
		for _, m := range ms {
			if m.isMatch && !prev && len(cuts) > 0 {
				cuts[len(cuts)-1].end = m.end
			} else {
				cuts = append(cuts, cut{m.start, m.end, false})
			}
			prev = m.isMatch
		}
	case behaviorMergedWithNext:
		prev := false
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if m.isMatch && !prev && len(cuts) > 0 {
				cuts[len(cuts)-1].start = m.start
			} else {
				cuts = append(cuts, cut{m.start, m.end, false})
			}
			prev = m.isMatch
		}
		for i, j := 0, len(cuts)-1; i < j; i, j = i+1, j-1 {
			cuts[i], cuts[j] = cuts[j], cuts[i]
		}
	}
	for _, c := range cuts {
		if c.remove || c.start == c.end {
			continue
		}
		out = append(out, n.slice(c.start, c.end))
	}
	return out
}

// isRustWhitespace reports char::is_whitespace (Unicode White_Space).
func isRustWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// strip removes leading and/or trailing whitespace, as lrstrip does.
func (n *nstring) strip(left, right bool) {
	runes := []rune(n.s)
	lead, trail := 0, 0
	if left {
		for lead < len(runes) && isRustWhitespace(runes[lead]) {
			lead++
		}
	}
	if right {
		for trail < len(runes) && isRustWhitespace(runes[len(runes)-1-trail]) {
			trail++
		}
	}
	if lead == 0 && trail == 0 {
		return
	}
	if !n.track {
		if lead+trail >= len(runes) {
			n.s = ""
		} else {
			n.s = string(runes[lead : len(runes)-trail])
		}
		return
	}
	var dest []change
	for i, r := range runes {
		switch {
		case i < lead || i >= len(runes)-trail:
		case i == len(runes)-trail-1:
			dest = append(dest, change{r, -trail})
		default:
			dest = append(dest, change{r, 0})
		}
	}
	n.transform(dest, lead)
}

// mapRunes applies a one-to-many character mapping; the first character
// of each mapped output replaces the input character and the rest are
// inserted.
func (n *nstring) mapRunes(f func(r rune, out []change) []change) {
	dest := make([]change, 0, len(n.s))
	for _, r := range n.s {
		dest = f(r, dest)
	}
	n.transform(dest, 0)
}
