package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer regexes of GPT-2, Llama 3 (cl100k) and Qwen2 written
// out by hand: regexp2 is a backtracking engine and costs most of the
// encoding time otherwise. Each splitter reproduces the leftmost-first
// alternation semantics of the regex (as Oniguruma runs it in the Rust
// library); TestKnownSplittersMatchRegexp2 and FuzzKnownSplitters check them
// against regexp2 running the original pattern.

// Patterns recognised by knownSplitter.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// knownSplitter returns the hand-written splitter for src, or nil.
func knownSplitter(src string) spanFinder {
	switch src {
	case gpt2Pattern:
		return gpt2Splitter{}
	case llama3Pattern:
		return cl100kSplitter{maxDigits: 3}
	case qwen2Pattern:
		return cl100kSplitter{maxDigits: 1}
	}
	return nil
}

// Character classes of the patterns. \s is Unicode White_Space in
// Oniguruma as in regexp2; \p{L} and \p{N} are the general categories.
func isL(r rune) bool {
	if r < 0x80 {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

func isN(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

func isS(r rune) bool {
	if r < 0x80 {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return isRustWhitespace(r)
}

// other is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

// at decodes the rune at byte i of s; it returns (0, 0) at the end.
func at(s string, i int) (rune, int) {
	if i >= len(s) {
		return 0, 0
	}
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// runWhile returns the end of the run of characters from i satisfying f.
func runWhile(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, w := at(s, i)
		if !f(r) {
			break
		}
		i += w
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i, case-insensitively
// (with Unicode simple case folding: ſ folds to s) when fold is set.
func contraction(s string, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(j int) (rune, int) {
		r, w := at(s, j)
		if fold {
			switch r {
			case 'S', 'T', 'R', 'E', 'V', 'M', 'L', 'D':
				r += 'a' - 'A'
			case 'ſ':
				r = 's'
			}
		}
		return r, w
	}
	r1, w1 := lower(i + 1)
	switch r1 {
	case 's', 't', 'm', 'd':
		return 1 + w1
	case 'r', 'v':
		if r2, w2 := lower(i + 1 + w1); r2 == 'e' {
			return 1 + w1 + w2
		}
	case 'l':
		if r2, w2 := lower(i + 1 + w1); r2 == 'l' {
			return 1 + w1 + w2
		}
	}
	return 0
}

// whitespaceTail handles \s+(?!\S)|\s+ for the run starting at i.
func whitespaceTail(s string, i int) int {
	j := runWhile(s, i, isS)
	if j == len(s) {
		return j
	}
	// Give back the last whitespace character so that it can go with the
	// following word, if that leaves at least one.
	_, w := utf8.DecodeLastRuneInString(s[:j])
	if j-w > i {
		return j - w
	}
	return j
}

// gpt2Splitter is GPT-2's ByteLevel regex.
type gpt2Splitter struct{}

func (gpt2Splitter) findSpans(s string) [][2]int {
	spans := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		e := gpt2Match(s, i)
		spans = append(spans, [2]int{i, e})
		i = e
	}
	return spans
}

func gpt2Match(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	r, w := at(s, i)
	j := i
	if r == ' ' {
		r2, w2 := at(s, i+w)
		switch {
		case w2 > 0 && isL(r2):
			return runWhile(s, i+w, isL)
		case w2 > 0 && isN(r2):
			return runWhile(s, i+w, isN)
		case w2 > 0 && isOther(r2):
			return runWhile(s, i+w, isOther)
		}
	}
	switch {
	case isL(r):
		return runWhile(s, j, isL)
	case isN(r):
		return runWhile(s, j, isN)
	case isOther(r):
		return runWhile(s, j, isOther)
	}
	return whitespaceTail(s, i)
}

// cl100kSplitter is the Llama 3 (maxDigits 3) and Qwen2 (maxDigits 1)
// Split regex.
type cl100kSplitter struct{ maxDigits int }

func (c cl100kSplitter) findSpans(s string) [][2]int {
	spans := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		e := c.match(s, i)
		spans = append(spans, [2]int{i, e})
		i = e
	}
	return spans
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

func (c cl100kSplitter) match(s string, i int) int {
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	r, w := at(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return runWhile(s, i, isL)
	}
	if !isCRLF(r) && !isN(r) {
		if r2, w2 := at(s, i+w); w2 > 0 && isL(r2) {
			return runWhile(s, i+w, isL)
		}
	}
	// \p{N}{1,maxDigits}
	if isN(r) {
		j := i
		for k := 0; k < c.maxDigits && j < len(s); k++ {
			rr, ww := at(s, j)
			if !isN(rr) {
				break
			}
			j += ww
		}
		return j
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	start := -1
	if r == ' ' {
		if r2, w2 := at(s, i+w); w2 > 0 && isOther(r2) {
			start = i + w
		}
	} else if isOther(r) {
		start = i
	}
	if start >= 0 {
		j := runWhile(s, start, isOther)
		return runWhile(s, j, isCRLF)
	}
	// \s*[\r\n]+
	j := runWhile(s, i, isS)
	last := -1
	for k := i; k < j; {
		rr, ww := at(s, k)
		if isCRLF(rr) {
			last = k + ww
		}
		k += ww
	}
	if last > 0 {
		return last
	}
	// \s+(?!\S)|\s+
	return whitespaceTail(s, i)
}
