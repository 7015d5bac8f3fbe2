package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// match is one piece of a string cut by a pattern: the pieces cover the
// string in order, and isMatch says whether a piece matched.
type match struct {
	start, end int
	isMatch    bool
}

// pattern finds the matches of a Split, Replace or similar pattern, with
// the semantics of the Rust library's Pattern::find_matches.
type pattern interface {
	findMatches(s string) []match
}

// spansToMatches turns the sorted, non-overlapping match spans found in s
// into a covering list of pieces, as find_matches does for regexes.
func spansToMatches(s string, spans [][2]int) []match {
	if s == "" {
		return []match{{0, 0, false}}
	}
	out := make([]match, 0, 2*len(spans)+1)
	prev := 0
	for _, sp := range spans {
		if prev != sp[0] {
			out = append(out, match{prev, sp[0], false})
		}
		out = append(out, match{sp[0], sp[1], true})
		prev = sp[1]
	}
	if prev != len(s) {
		out = append(out, match{prev, len(s), false})
	}
	return out
}

// regexPattern is a regex run by regexp2, iterated as the onig crate's
// find_iter iterates (an empty match right after the previous match is
// skipped and the search moves on one character).
type regexPattern struct {
	src string
	re  *regexp2.Regexp
}

func compileRegex(src string) (*regexPattern, error) {
	// Oniguruma's Ruby syntax: ^ and $ match at every line, and \w is
	// Unicode's word class (with all marks).
	re, err := regexp2.Compile(onigToRegexp2(src), regexp2.Multiline, regexp2.OptionMaxBacktrackingStackSize(-1))
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", src, err)
	}
	return &regexPattern{src: src, re: re}, nil
}

// findSpans returns the byte spans of the successive matches in s.
func (p *regexPattern) findSpans(s string) [][2]int {
	if s == "" {
		// find_matches never runs a regex on an empty string.
		return nil
	}
	runes := []rune(s)
	// byteAt[i] is the byte offset of rune i; byteAt[len] = len(s).
	byteAt := make([]int, len(runes)+1)
	b := 0
	for i, r := range runes {
		byteAt[i] = b
		if r == utf8.RuneError {
			// An invalid byte decodes to U+FFFD of width 1; we only ever
			// see valid UTF-8 here, so this is the real U+FFFD.
			_, w := utf8.DecodeRuneInString(s[b:])
			b += w
		} else {
			b += utf8.RuneLen(r)
		}
	}
	byteAt[len(runes)] = b
	var spans [][2]int
	lastEnd, lastMatch := 0, -1
	for lastEnd <= len(runes) {
		m, err := p.re.FindRunesMatchStartingAt(runes, lastEnd)
		if err != nil || m == nil {
			break
		}
		st, en := m.RuneIndex, m.RuneIndex+m.RuneLength
		if st == en {
			lastEnd = en + 1
			if en == lastMatch {
				continue
			}
		} else {
			lastEnd = en
		}
		lastMatch = en
		spans = append(spans, [2]int{byteAt[st], byteAt[en]})
	}
	return spans
}

func (p *regexPattern) findMatches(s string) []match {
	return spansToMatches(s, p.findSpans(s))
}

// literalPattern is a Split or Replace "String" pattern: the Rust library
// escapes it into a regex, which finds the leftmost non-overlapping
// occurrences; an empty literal matches the empty string everywhere.
type literalPattern struct{ lit string }

func (p literalPattern) findMatches(s string) []match {
	if s == "" {
		return []match{{0, 0, false}}
	}
	var spans [][2]int
	if p.lit == "" {
		for i := range s {
			spans = append(spans, [2]int{i, i})
		}
		spans = append(spans, [2]int{len(s), len(s)})
		return spansToMatches(s, spans)
	}
	for i := 0; i <= len(s); {
		j := strings.Index(s[i:], p.lit)
		if j < 0 {
			break
		}
		spans = append(spans, [2]int{i + j, i + j + len(p.lit)})
		i += j + len(p.lit)
	}
	return spansToMatches(s, spans)
}

// runePattern matches every character for which f holds, each character a
// match of its own, as the Rust library's Fn(char) -> bool pattern does.
type runePattern func(rune) bool

func (f runePattern) findMatches(s string) []match {
	if s == "" {
		return []match{{0, 0, false}}
	}
	var out []match
	last := 0
	for i, r := range s {
		if f(r) {
			if last < i {
				out = append(out, match{last, i, false})
			}
			w := utf8.RuneLen(r)
			if r == utf8.RuneError {
				_, w = utf8.DecodeRuneInString(s[i:])
			}
			out = append(out, match{i, i + w, true})
			last = i + w
		}
	}
	if last < len(s) {
		out = append(out, match{last, len(s), false})
	}
	return out
}

// spanFinder is a pattern that can report match spans directly (the
// hand-written GPT-style splitters and regexPattern).
type spanFinder interface {
	findSpans(s string) [][2]int
}

// spanPattern adapts a spanFinder to a pattern.
type spanPattern struct{ f spanFinder }

func (p spanPattern) findMatches(s string) []match {
	if s == "" {
		return []match{{0, 0, false}}
	}
	return spansToMatches(s, p.f.findSpans(s))
}

// newRegexPattern compiles a "Regex" pattern of tokenizer.json, using a
// hand-written splitter for the well-known GPT-2, Llama 3 and Qwen2
// patterns (checked against regexp2 in the tests).
func newRegexPattern(src string) (pattern, error) {
	if f := knownSplitter(src); f != nil {
		return spanPattern{f}, nil
	}
	re, err := compileRegex(src)
	if err != nil {
		return nil, err
	}
	return re, nil
}

// onigWord is Oniguruma's Unicode \w (Alphabetic, marks, decimal digits and
// connector punctuation), which regexp2's \w (.NET's: no Mc or Me) lacks.
const onigWord = `\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}`

// onigToRegexp2 rewrites \w and \W (outside character classes) and \w
// inside them to Oniguruma's meaning.
func onigToRegexp2(src string) string {
	if !strings.Contains(src, `\w`) && !strings.Contains(src, `\W`) {
		return src
	}
	var b strings.Builder
	inClass := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '\\' && i+1 < len(src) {
			n := src[i+1]
			switch {
			case n == 'w' && inClass > 0:
				b.WriteString(onigWord)
			case n == 'w':
				b.WriteString("[" + onigWord + "]")
			case n == 'W' && inClass == 0:
				b.WriteString("[^" + onigWord + "]")
			default:
				b.WriteByte(c)
				b.WriteByte(n)
			}
			i++
			continue
		}
		switch c {
		case '[':
			inClass++
		case ']':
			if inClass > 0 {
				inClass--
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
