package mlflowfile

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PyFloat writes v as Python's repr(float) does, which is how MLflow's
// FileStore writes a metric value: the shortest digits that read back to
// v, in positional notation with at least one decimal ("1.0", "0.0001")
// when the decimal exponent is in [-4, 16), else in scientific notation
// with a signed, two-digit-minimum exponent ("1e-05", "1.5e+16"); "nan",
// "inf" and "-inf" for the special values.
func PyFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	// Shortest round-trip digits, in Go's form d.ddde±XX.
	e := strconv.FormatFloat(v, 'e', -1, 64)
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es = "-"
			exp = -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	point := exp + 1 // digits before the decimal point
	var s string
	switch {
	case point <= 0:
		s = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		s = digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		s = digits[:point] + "." + digits[point:]
	}
	return sign + s
}

// yamlEntry is one key of a meta.yaml mapping. Value is a string, an
// int64, nil (null) or an empty []string (written "[]").
type yamlEntry struct {
	Key   string
	Value any
}

// yamlDump writes a flat mapping as MLflow's write_yaml does: PyYAML's
// safe_dump in block style, keys in sorted order (the caller's), strings
// plain where PyYAML leaves them plain and single-quoted where a plain
// scalar would read back as another type, and double-quoted when they hold
// characters PyYAML escapes.
func yamlDump(entries []yamlEntry) []byte {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Key)
		b.WriteString(": ")
		switch v := e.Value.(type) {
		case nil:
			b.WriteString("null")
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case int:
			b.WriteString(strconv.Itoa(v))
		case []string:
			if len(v) == 0 {
				b.WriteString("[]")
			} else {
				for _, s := range v {
					b.WriteString("\n- ")
					b.WriteString(yamlString(s))
				}
			}
		case string:
			b.WriteString(yamlString(v))
		default:
			b.WriteString(yamlString(fmt.Sprint(v)))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// The implicit resolvers of PyYAML's SafeLoader (YAML 1.1): a plain
// scalar matching one of these would not read back as a string.
var yamlImplicit = []*regexp.Regexp{
	regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`),
	regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`),
	regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`),
	regexp.MustCompile(`^(?:~|null|Null|NULL|)$`),
	regexp.MustCompile(`^[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?`),
	regexp.MustCompile(`^(?:<<|=)$`),
}

func yamlString(s string) string {
	if yamlNeedsDouble(s) {
		return yamlDoubleQuoted(s)
	}
	if yamlPlainOK(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// yamlPlainOK reports whether PyYAML would write s as a plain scalar in
// block context and read it back as the same string.
func yamlPlainOK(s string) bool {
	if s == "" || s != strings.TrimSpace(s) {
		return false
	}
	for _, re := range yamlImplicit {
		if re.MatchString(s) {
			return false
		}
	}
	if strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@`") {
		return false
	}
	if strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") || strings.ContainsAny(s, "\t") {
		return false
	}
	return true
}

// yamlNeedsDouble reports whether s holds characters PyYAML writes only in
// a double-quoted scalar: line breaks and what it does not print.
func yamlNeedsDouble(s string) bool {
	for _, r := range s {
		if !yamlPrintable(r) || r == '\n' || r == '\r' || r == '\u0085' || r == '\u2028' || r == '\u2029' {
			return true
		}
	}
	return !utf8.ValidString(s)
}

func yamlPrintable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
		(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd && r != 0xfeff) || (r >= 0x10000 && r <= 0x10ffff)
}

func yamlDoubleQuoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		case utf8.RuneError:
			b.WriteString(`\uFFFD`)
		default:
			switch {
			case r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xfeff || !yamlPrintable(r):
				if r <= 0xff {
					fmt.Fprintf(&b, `\x%02X`, r)
				} else if r <= 0xffff {
					fmt.Fprintf(&b, `\u%04X`, r)
				} else {
					fmt.Fprintf(&b, `\U%08X`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
