package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Decoder is a tokenizer.json "decoder": it turns the token strings of a
// sequence of ids back into text. Each step maps a list of token strings
// to a new list, and Decode joins the last list.
type Decoder interface {
	decodeChain(tokens []string) []string
}

// NewSequenceDecoder chains decoders.
func NewSequenceDecoder(ds ...Decoder) Decoder { return seqDecoder(ds) }

type seqDecoder []Decoder

func (s seqDecoder) decodeChain(tokens []string) []string {
	for _, d := range s {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// NewLlamaDecoder is the decoder of the Llama 2 (SentencePiece BPE)
// tokenizer.json: "▁" back to spaces, byte tokens back to bytes, fuse, and
// strip the one leading space.
func NewLlamaDecoder() Decoder {
	return NewSequenceDecoder(
		NewReplaceDecoder("▁", " "),
		NewByteFallbackDecoder(),
		NewFuseDecoder(),
		NewStripDecoder(' ', 1, 0),
	)
}

// byteLevelDecoder is the ByteLevel decoder: every token's characters back
// to bytes, then the bytes to text as String::from_utf8_lossy does.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) []string {
	var buf []byte
	for _, t := range tokens {
		buf = byteLevelDecodeToken(buf, t)
	}
	return []string{lossyUTF8(buf)}
}

// NewByteFallbackDecoder turns runs of "<0xXX>" tokens back into the text
// their bytes spell, or one U+FFFD per byte if they are not valid UTF-8.
func NewByteFallbackDecoder() Decoder { return byteFallbackDecoder{} }

type byteFallbackDecoder struct{}

// parseByteToken parses "<0xXX>" as u8::from_str_radix does (which also
// accepts a '+' before a single hex digit).
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	h := t[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	v := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return 0, false
		}
		v = v*16 + d
	}
	return byte(v), true
}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// NewFuseDecoder joins all tokens into one.
func NewFuseDecoder() Decoder { return fuseDecoder{} }

type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// NewStripDecoder removes up to start occurrences of content from the
// start of every token and up to stop from its end.
func NewStripDecoder(content rune, start, stop int) Decoder {
	return stripDecoder{content, start, stop}
}

type stripDecoder struct {
	content     rune
	start, stop int
}

func (s stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for k, t := range tokens {
		chars := []rune(t)
		startCut := 0
		for i := 0; i < s.start && i < len(chars); i++ {
			if chars[i] != s.content {
				break
			}
			startCut = i + 1
		}
		stopCut := len(chars)
		for i := 0; i < s.stop; i++ {
			idx := len(chars) - i - 1
			if idx < 0 || chars[idx] != s.content {
				break
			}
			stopCut = idx
		}
		if startCut >= stopCut {
			out[k] = ""
			continue
		}
		out[k] = string(chars[startCut:stopCut])
	}
	return out
}

// NewReplaceDecoder replaces every occurrence of the literal old by new in
// every token.
func NewReplaceDecoder(old, new string) Decoder {
	return replaceDecoder{literalPattern{old}, new}
}

type replaceDecoder struct {
	p       pattern
	content string
}

func (r replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var b strings.Builder
		for _, m := range r.p.findMatches(t) {
			if m.isMatch {
				b.WriteString(r.content)
			} else {
				b.WriteString(t[m.start:m.end])
			}
		}
		out[i] = b.String()
	}
	return out
}

// metaspaceDecoder turns the replacement character back into spaces,
// dropping it at the start of the first token unless the prepend scheme is
// "never".
type metaspaceDecoder struct {
	replacement rune
	scheme      prependScheme
}

func (m metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var b strings.Builder
		for _, c := range t {
			if c == m.replacement {
				if i == 0 && m.scheme != prependNever {
					continue
				}
				b.WriteByte(' ')
			} else {
				b.WriteRune(c)
			}
		}
		out[i] = b.String()
	}
	return out
}

// bpeDecoder is BPEDecoder: the end-of-word suffix becomes a space (none
// after the last token).
type bpeDecoder struct{ suffix string }

func (d bpeDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, rep)
	}
	return out
}
