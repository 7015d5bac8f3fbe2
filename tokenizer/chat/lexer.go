package chat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The lexer follows jinja2/lexer.py (3.1) rule for rule, with the settings
// transformers uses: trim_blocks and lstrip_blocks on, keep_trailing_newline
// off, newline_sequence "\n", the default delimiters, no line statements.

type tokKind int

const (
	tokEOF tokKind = iota
	tokData
	tokVarBegin
	tokVarEnd
	tokBlockBegin
	tokBlockEnd
	tokName
	tokString
	tokInt
	tokFloat
	tokOp
)

func (k tokKind) String() string {
	switch k {
	case tokEOF:
		return "end of template"
	case tokData:
		return "template data"
	case tokVarBegin:
		return "begin of print statement"
	case tokVarEnd:
		return "end of print statement"
	case tokBlockBegin:
		return "begin of statement block"
	case tokBlockEnd:
		return "end of statement block"
	case tokName:
		return "name"
	case tokString:
		return "string"
	case tokInt:
		return "integer"
	case tokFloat:
		return "float"
	case tokOp:
		return "operator"
	}
	return "token"
}

type token struct {
	kind tokKind
	val  string // data, name, operator, decoded string literal
	ival int64
	fval float64
	line int
}

func (t token) String() string {
	switch t.kind {
	case tokName, tokOp:
		return strconv.Quote(t.val)
	case tokString:
		return "string " + strconv.Quote(t.val)
	case tokInt, tokFloat:
		return t.kind.String()
	}
	return t.kind.String()
}

// SyntaxError is a template that does not parse (or uses a construct this
// package does not support), with the line it was found on.
type SyntaxError struct {
	Name string // the template's name, as given to Parse
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("chat template %s: line %d: %s", e.Name, e.Line, e.Msg)
}

type lexer struct {
	name   string
	src    string
	pos    int
	line   int
	toks   []token
	lineSt bool // jinja's line_starting: the previous match ended in "\n"
}

// normalizeSource applies jinja's newline handling: \r\n and \r become \n,
// and one trailing newline is dropped (keep_trailing_newline=False).
func normalizeSource(s string) string {
	if strings.ContainsRune(s, '\r') {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return strings.TrimSuffix(s, "\n")
}

func lex(name, source string) ([]token, error) {
	lx := &lexer{name: name, src: normalizeSource(source), line: 1, lineSt: true}
	if err := lx.run(); err != nil {
		return nil, err
	}
	lx.toks = append(lx.toks, token{kind: tokEOF, line: lx.line})
	return lx.toks, nil
}

func (lx *lexer) errf(line int, format string, args ...any) error {
	return &SyntaxError{Name: lx.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (lx *lexer) emit(t token) {
	t.line = lx.line
	lx.toks = append(lx.toks, t)
}

// isPySpace reports whether Python's str.isspace (and re's \s for str
// patterns) is true for r.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0, 0x1680,
		0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

func pyRStrip(s string) string {
	return strings.TrimRightFunc(s, isPySpace)
}

// skipSpace returns the index after the run of Python whitespace at i.
func skipSpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isPySpace(r) {
			break
		}
		i += n
	}
	return i
}

func (lx *lexer) run() error {
	src := lx.src
	for lx.pos < len(src) {
		// Root state: find the earliest "{{", "{%" or "{#".
		start := lx.pos
		i := start
		found := -1
		for {
			j := strings.IndexByte(src[i:], '{')
			if j < 0 || i+j+1 >= len(src) {
				break
			}
			i += j
			if c := src[i+1]; c == '{' || c == '%' || c == '#' {
				found = i
				break
			}
			i++
		}
		if found < 0 {
			lx.data(src[start:])
			lx.pos = len(src)
			lx.lineSt = strings.HasSuffix(src, "\n")
			return nil
		}
		text := src[start:found]
		kind := src[found+1]
		p := found + 2
		sign := byte(0)
		if p < len(src) && (src[p] == '-' || src[p] == '+') {
			sign = src[p]
			p++
		}
		// {% raw %} is tried first by jinja's root regex.
		isRaw := false
		rawEnd := 0
		if kind == '%' {
			q := skipSpace(src, p)
			if strings.HasPrefix(src[q:], "raw") {
				q2 := skipSpace(src, q+3)
				if strings.HasPrefix(src[q2:], "-%}") {
					isRaw, rawEnd = true, skipSpace(src, q2+3)
				} else if strings.HasPrefix(src[q2:], "%}") {
					isRaw, rawEnd = true, q2+2
				}
			}
		}
		// Whitespace control on the text before the tag.
		if sign == '-' {
			text = pyRStrip(text)
		} else if sign != '+' && kind != '{' {
			lpos := strings.LastIndexByte(text, '\n') + 1
			if lpos > 0 || lx.lineSt {
				rest := text[lpos:]
				if rest != "" && skipSpace(rest, 0) == len(rest) {
					text = text[:lpos]
				}
			}
		}
		lx.data(text)
		lx.line += strings.Count(src[start:found], "\n")
		if isRaw {
			lx.lineSt = src[rawEnd-1] == '\n'
			lx.line += strings.Count(src[found:rawEnd], "\n")
			lx.pos = rawEnd
			if err := lx.raw(); err != nil {
				return err
			}
			continue
		}
		lx.pos = p
		lx.lineSt = false
		switch kind {
		case '#':
			if err := lx.comment(); err != nil {
				return err
			}
		case '%':
			lx.emit(token{kind: tokBlockBegin})
			if err := lx.tag(true); err != nil {
				return err
			}
		case '{':
			lx.emit(token{kind: tokVarBegin})
			if err := lx.tag(false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (lx *lexer) data(s string) {
	if s != "" {
		lx.emit(token{kind: tokData, val: s})
	}
}

// blockEnd matches jinja's block end rule at i: "+%}", "-%}\s*" or "%}\n?"
// (trim_blocks). It returns the end of the match, or -1.
func blockEnd(src string, i int) int {
	switch {
	case strings.HasPrefix(src[i:], "+%}"):
		return i + 3
	case strings.HasPrefix(src[i:], "-%}"):
		return skipSpace(src, i+3)
	case strings.HasPrefix(src[i:], "%}"):
		if i+2 < len(src) && src[i+2] == '\n' {
			return i + 3
		}
		return i + 2
	}
	return -1
}

func (lx *lexer) comment() error {
	src := lx.src
	startLine := lx.line
	for i := lx.pos; i < len(src); i++ {
		end := -1
		switch {
		case strings.HasPrefix(src[i:], "+#}"):
			end = i + 3
		case strings.HasPrefix(src[i:], "-#}"):
			end = skipSpace(src, i+3)
		case strings.HasPrefix(src[i:], "#}"):
			end = i + 2
			if end < len(src) && src[end] == '\n' {
				end++
			}
		}
		if end >= 0 {
			lx.line += strings.Count(src[lx.pos:end], "\n")
			lx.lineSt = src[end-1] == '\n'
			lx.pos = end
			return nil
		}
	}
	return lx.errf(startLine, "Missing end of comment tag")
}

func (lx *lexer) raw() error {
	src := lx.src
	startLine := lx.line
	for i := lx.pos; i < len(src); i++ {
		if !strings.HasPrefix(src[i:], "{%") {
			continue
		}
		p := i + 2
		sign := byte(0)
		if p < len(src) && (src[p] == '-' || src[p] == '+') {
			sign = src[p]
			p++
		}
		q := skipSpace(src, p)
		if !strings.HasPrefix(src[q:], "endraw") {
			continue
		}
		end := blockEnd(src, skipSpace(src, q+6))
		if end < 0 {
			continue
		}
		text := src[lx.pos:i]
		if sign == '-' {
			text = pyRStrip(text)
		} else if sign != '+' {
			lpos := strings.LastIndexByte(text, '\n') + 1
			if lpos > 0 || lx.lineSt {
				rest := text[lpos:]
				if rest != "" && skipSpace(rest, 0) == len(rest) {
					text = text[:lpos]
				}
			}
		}
		lx.data(text)
		lx.line += strings.Count(src[lx.pos:end], "\n")
		lx.lineSt = src[end-1] == '\n'
		lx.pos = end
		return nil
	}
	return lx.errf(startLine, "Missing end of raw directive")
}

var operators = []string{"//", "**", "==", "!=", ">=", "<=",
	"+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"}

// tag lexes the inside of a {% %} (block) or {{ }} (variable) tag.
func (lx *lexer) tag(block bool) error {
	src := lx.src
	var balance []byte
	for {
		if lx.pos >= len(src) {
			if block {
				return lx.errf(lx.line, "unexpected end of template, expected end of statement block")
			}
			return lx.errf(lx.line, "unexpected end of template, expected end of print statement")
		}
		i := lx.pos
		// End of tag, only when brackets are balanced.
		if len(balance) == 0 {
			end := -1
			if block {
				end = blockEnd(src, i)
			} else if strings.HasPrefix(src[i:], "-}}") {
				end = skipSpace(src, i+3)
			} else if strings.HasPrefix(src[i:], "}}") {
				end = i + 2
			}
			if end >= 0 {
				if block {
					lx.emit(token{kind: tokBlockEnd})
				} else {
					lx.emit(token{kind: tokVarEnd})
				}
				lx.line += strings.Count(src[i:end], "\n")
				lx.lineSt = src[end-1] == '\n'
				lx.pos = end
				return nil
			}
		}
		r, n := utf8.DecodeRuneInString(src[i:])
		switch {
		case isPySpace(r):
			j := skipSpace(src, i)
			lx.line += strings.Count(src[i:j], "\n")
			lx.pos = j
		case r >= '0' && r <= '9':
			if err := lx.number(); err != nil {
				return err
			}
		case r == '_' || unicode.IsLetter(r):
			j := i + n
			for j < len(src) {
				r2, n2 := utf8.DecodeRuneInString(src[j:])
				if r2 == '_' || unicode.IsLetter(r2) || unicode.IsDigit(r2) || unicode.Is(unicode.Mn, r2) || unicode.Is(unicode.Mc, r2) {
					j += n2
					continue
				}
				break
			}
			lx.emit(token{kind: tokName, val: src[i:j]})
			lx.pos = j
		case r == '\'' || r == '"':
			if err := lx.str(byte(r)); err != nil {
				return err
			}
		default:
			op := ""
			for _, o := range operators {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return lx.errf(lx.line, "unexpected char %s at %d", pyRepr(string(r)), utf8.RuneCountInString(src[:i]))
			}
			switch op {
			case "{":
				balance = append(balance, '}')
			case "(":
				balance = append(balance, ')')
			case "[":
				balance = append(balance, ']')
			case "}", ")", "]":
				if len(balance) == 0 {
					return lx.errf(lx.line, "unexpected '%s'", op)
				}
				want := balance[len(balance)-1]
				balance = balance[:len(balance)-1]
				if want != op[0] {
					return lx.errf(lx.line, "unexpected '%s', expected '%c'", op, want)
				}
			}
			lx.emit(token{kind: tokOp, val: op})
			lx.pos = i + len(op)
		}
	}
}

// digits scans (\d+_)*\d+ at i and returns its end, or i if none.
func digitsUnderscore(s string, i int) int {
	j := i
	last := i
	for j < len(s) {
		if s[j] >= '0' && s[j] <= '9' {
			j++
			last = j
			continue
		}
		if s[j] == '_' && j > i && j+1 < len(s) && s[j+1] >= '0' && s[j+1] <= '9' && s[j-1] != '_' {
			j++
			continue
		}
		break
	}
	return last
}

func (lx *lexer) number() error {
	src := lx.src
	i := lx.pos
	// float_re first (it may not start right after a ".").
	if i == 0 || src[i-1] != '.' {
		j := digitsUnderscore(src, i)
		k := j
		frac := false
		if k < len(src) && src[k] == '.' {
			if f := digitsUnderscore(src, k+1); f > k+1 {
				k = f
				frac = true
			}
		}
		exp := false
		if k < len(src) && (src[k] == 'e' || src[k] == 'E') {
			m := k + 1
			if m < len(src) && (src[m] == '+' || src[m] == '-') {
				m++
			}
			if e := digitsUnderscore(src, m); e > m {
				k = e
				exp = true
			}
		}
		if frac || exp {
			text := strings.ReplaceAll(src[i:k], "_", "")
			f, err := strconv.ParseFloat(text, 64)
			if err != nil && !isRangeErr(err) {
				return lx.errf(lx.line, "invalid float literal %s", src[i:k])
			}
			lx.emit(token{kind: tokFloat, fval: f})
			lx.pos = k
			return nil
		}
	}
	// integer_re
	j := i
	base := 10
	if src[i] == '0' && i+1 < len(src) {
		switch src[i+1] | 0x20 {
		case 'b':
			base = 2
		case 'o':
			base = 8
		case 'x':
			base = 16
		}
	}
	isDigit := func(c byte) bool {
		switch base {
		case 2:
			return c == '0' || c == '1'
		case 8:
			return c >= '0' && c <= '7'
		case 16:
			return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
		}
		return c >= '0' && c <= '9'
	}
	var text string
	if base != 10 {
		j = i + 2
		for {
			k := j
			if k < len(src) && src[k] == '_' {
				k++
			}
			if k < len(src) && isDigit(src[k]) {
				j = k + 1
				continue
			}
			break
		}
		if j == i+2 { // "0x" with no digits: just the integer 0
			base, j = 10, i+1
			text = "0"
		} else {
			text = strings.ReplaceAll(src[i+2:j], "_", "")
		}
	} else if src[i] == '0' {
		j = i + 1
		for {
			k := j
			if k < len(src) && src[k] == '_' {
				k++
			}
			if k < len(src) && src[k] == '0' {
				j = k + 1
				continue
			}
			break
		}
		text = "0"
	} else {
		j = digitsUnderscore(src, i)
		text = strings.ReplaceAll(src[i:j], "_", "")
	}
	v, err := strconv.ParseInt(text, base, 64)
	if err != nil {
		return lx.errf(lx.line, "integer literal %s does not fit in 64 bits (unsupported)", src[i:j])
	}
	lx.emit(token{kind: tokInt, ival: v})
	lx.pos = j
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (lx *lexer) str(q byte) error {
	src := lx.src
	i := lx.pos + 1
	for i < len(src) {
		c := src[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == q {
			break
		}
		i++
	}
	if i >= len(src) {
		return lx.errf(lx.line, "unexpected char %s at %d", pyRepr(string(q)), utf8.RuneCountInString(src[:lx.pos]))
	}
	body := src[lx.pos+1 : i]
	val, err := unicodeEscape(body)
	if err != nil {
		return lx.errf(lx.line, "%v", err)
	}
	lx.emit(token{kind: tokString, val: val})
	lx.line += strings.Count(body, "\n")
	lx.pos = i + 1
	return nil
}

// unicodeEscape does what jinja does to a string literal's body:
// s.encode("ascii", "backslashreplace").decode("unicode-escape").
func unicodeEscape(s string) (string, error) {
	// backslashreplace: every non-ASCII code point becomes \xhh, \uhhhh or
	// \Uhhhhhhhh, which the decoder then turns back, except right after a
	// backslash, where Python's quirk applies and we must do the same.
	var a strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80:
			a.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&a, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&a, `\u%04x`, r)
		default:
			fmt.Fprintf(&a, `\U%08x`, r)
		}
	}
	in := a.String()
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(in) {
			return "", fmt.Errorf("\\ at end of string")
		}
		c = in[i]
		switch c {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(c)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := 0
			j := i
			for j < len(in) && j < i+3 && in[j] >= '0' && in[j] <= '7' {
				v = v*8 + int(in[j]-'0')
				j++
			}
			i = j - 1
			writeCodePoint(&b, rune(v))
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			hex := in[i+1 : min(i+1+n, len(in))]
			v, err := strconv.ParseUint(hex, 16, 32)
			if err != nil || len(hex) != n || strings.ContainsAny(hex, "+-_") {
				switch c {
				case 'x':
					return "", fmt.Errorf("truncated \\xXX escape")
				case 'u':
					return "", fmt.Errorf("truncated \\uXXXX escape")
				}
				return "", fmt.Errorf("truncated \\UXXXXXXXX escape")
			}
			if v > unicode.MaxRune {
				return "", fmt.Errorf("illegal Unicode character")
			}
			writeCodePoint(&b, rune(v))
			i += n
		case 'N':
			return "", fmt.Errorf(`\N{...} escapes in string literals are not supported`)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// writeCodePoint writes r as UTF-8; a lone surrogate (which a Go string can't
// hold as such) becomes U+FFFD.
func writeCodePoint(b *strings.Builder, r rune) {
	if r >= 0xd800 && r <= 0xdfff {
		r = utf8.RuneError
	}
	b.WriteRune(r)
}
