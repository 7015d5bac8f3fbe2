package tracking

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MLflow's limits on what one entity may hold (mlflow/utils/validation.py).
const (
	// MaxKeyLength is the longest metric, param or tag key.
	MaxKeyLength = 250
	// MaxParamValueLength is the longest param value, in characters.
	MaxParamValueLength = 6000
	// MaxTagValueLength is the longest run tag value that every MLflow
	// version accepts, in characters (newer servers take 8000).
	MaxTagValueLength = 5000
)

// SanitizeKey makes k a valid MLflow metric, param or tag key. MLflow
// accepts letters, digits, '_', '-', '.', ' ' and '/', and refuses a key
// that would name another file ("a//b", "./a", "a/", ".."), or one longer
// than 250 characters. Other characters become '_', slashes that would
// make the key ambiguous become '_' too, and a long key is cut, with a
// hash of the whole key appended so that two long keys stay apart. A valid
// key is returned as it is.
func SanitizeKey(k string) string {
	if validKey(k) {
		return k
	}
	var b strings.Builder
	for _, r := range k {
		if keyRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if pathNotUnique(s) {
		s = strings.ReplaceAll(s, "/", "_")
	}
	if pathNotUnique(s) { // "", "." or ".."
		s = strings.ReplaceAll(s, ".", "_")
		if s == "" {
			s = "_"
		}
	}
	if utf8.RuneCountInString(s) > MaxKeyLength {
		sum := sha256.Sum256([]byte(k))
		suffix := "~" + hex.EncodeToString(sum[:4])
		s = truncateRunes(s, MaxKeyLength-len(suffix))
		s = strings.TrimRight(s, "/") + suffix
	}
	return s
}

func validKey(k string) bool {
	if k == "" || utf8.RuneCountInString(k) > MaxKeyLength || pathNotUnique(k) {
		return false
	}
	for _, r := range k {
		if !keyRune(r) {
			return false
		}
	}
	return true
}

// keyRune matches Python's [/\w.\- ] on str patterns (\w: what
// str.isalnum accepts, letters and numbers, and '_').
func keyRune(r rune) bool {
	return r == '/' || r == '.' || r == '-' || r == ' ' || r == '_' ||
		unicode.IsLetter(r) || unicode.IsNumber(r)
}

// pathNotUnique is MLflow's check that a key read as a path names itself.
func pathNotUnique(name string) bool {
	norm := path.Clean(name)
	if name == "" {
		return true
	}
	return norm != name || norm == "." || strings.HasPrefix(norm, "..") || strings.HasPrefix(norm, "/")
}

// TruncateValue cuts s to at most n characters (Unicode code points, as
// Python counts them).
func TruncateValue(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return truncateRunes(s, n)
}

func truncateRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
