package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table: printable bytes map to
// themselves and the others to U+0100 upwards, so that every byte is a
// visible character.
var byteToRune [256]rune

// byteToString holds byteToRune as UTF-8 strings.
var byteToString [256]string

// runeToByte inverts byteToRune for runes below 0x144; -1 elsewhere.
var runeToByte [0x144]int16

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
	}
	for b := 0; b < 256; b++ {
		byteToString[b] = string(byteToRune[b])
		runeToByte[byteToRune[b]] = int16(b)
	}
}

// byteLevelMap maps every byte of n to its ByteLevel character, each
// multi-byte character's extra bytes counting as inserted characters.
func byteLevelMap(n *nstring) {
	if !n.track {
		var b strings.Builder
		b.Grow(len(n.s) * 2)
		for i := 0; i < len(n.s); i++ {
			b.WriteString(byteToString[n.s[i]])
		}
		n.s = b.String()
		return
	}
	dest := make([]change, 0, len(n.s))
	for i := 0; i < len(n.s); {
		_, w := utf8.DecodeRuneInString(n.s[i:])
		for k := 0; k < w; k++ {
			c := 0
			if k > 0 {
				c = 1
			}
			dest = append(dest, change{byteToRune[n.s[i+k]], c})
		}
		i += w
	}
	n.transform(dest, 0)
}

// byteLevelDecodeToken appends the bytes that token stands for: the
// ByteLevel byte of each character, or the token's own text if any of its
// characters is not in the table.
func byteLevelDecodeToken(dst []byte, token string) []byte {
	mark := len(dst)
	for _, r := range token {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
			return append(dst[:mark], token...)
		}
		dst = append(dst, byte(runeToByte[r]))
	}
	return dst
}

// lossyUTF8 converts b to a string as Rust's String::from_utf8_lossy does:
// each maximal invalid subsequence becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			sb.WriteByte(b[i])
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			sb.Write(b[i : i+w])
			i += w
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += invalidLen(b[i:])
	}
	return sb.String()
}

// invalidLen returns the length of the maximal prefix of a UTF-8 sequence
// at the start of b that is invalid (Rust's Utf8Error::error_len, or all of
// b when it ends inside a sequence).
func invalidLen(b []byte) int {
	c := b[0]
	cont := func(i int, lo, hi byte) bool { return i < len(b) && b[i] >= lo && b[i] <= hi }
	var width int
	switch {
	case c >= 0xC2 && c <= 0xDF:
		width = 2
	case c >= 0xE0 && c <= 0xEF:
		width = 3
	case c >= 0xF0 && c <= 0xF4:
		width = 4
	default:
		return 1
	}
	lo, hi := byte(0x80), byte(0xBF)
	switch c {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if !cont(1, lo, hi) {
		if len(b) < 2 {
			return len(b)
		}
		return 1
	}
	for k := 2; k < width; k++ {
		if !cont(k, 0x80, 0xBF) {
			if k >= len(b) {
				return len(b)
			}
			return k
		}
	}
	return width
}
