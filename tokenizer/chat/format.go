package chat

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ---- tojson: transformers' json.dumps(x, ensure_ascii=False, indent=...,
// separators=..., sort_keys=...) ----

type jsonOpts struct {
	ascii     bool
	indent    string
	hasIndent bool
	itemSep   string
	keySep    string
	sortKeys  bool
}

func writeJSONString(b *strings.Builder, s string, ascii bool) {
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
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r > 0x7e:
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

func jsonFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return pyFloat(f)
}

// jsonKey converts a dict key as json.dumps does.
func jsonKey(k value) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case markup:
		return string(k), nil
	case bool:
		if k {
			return "true", nil
		}
		return "false", nil
	case nil:
		return "null", nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case float64:
		return jsonFloat(k), nil
	}
	return "", typeErr("keys must be str, int, float, bool or None, not %s", typeName(k))
}

func writeJSON(b *strings.Builder, v value, o jsonOpts, level int) error {
	if b.Len() > maxOutput {
		return &RenderError{Kind: "MemoryError", Msg: "tojson output too long"}
	}
	newline := func(l int) {
		if o.hasIndent {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(o.indent, l))
		}
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(jsonFloat(x))
	case string:
		writeJSONString(b, x, o.ascii)
	case markup:
		writeJSONString(b, string(x), o.ascii)
	case *list:
		if len(x.items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, it := range x.items {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			newline(level + 1)
			if err := writeJSON(b, it, o, level+1); err != nil {
				return err
			}
		}
		newline(level)
		b.WriteByte(']')
	case *dict:
		if x.len() == 0 {
			b.WriteString("{}")
			return nil
		}
		order := make([]int, x.len())
		for i := range order {
			order[i] = i
		}
		if o.sortKeys {
			var err error
			sort.SliceStable(order, func(i, j int) bool {
				c, e := pyCmp(x.keys[order[i]], x.keys[order[j]], "<")
				if e != nil && err == nil {
					err = e
				}
				return c < 0
			})
			if err != nil {
				return err
			}
		}
		b.WriteByte('{')
		for n, i := range order {
			k, err := jsonKey(x.keys[i])
			if err != nil {
				return err
			}
			if n > 0 {
				b.WriteString(o.itemSep)
			}
			newline(level + 1)
			writeJSONString(b, k, o.ascii)
			b.WriteString(o.keySep)
			if err := writeJSON(b, x.vals[i], o, level+1); err != nil {
				return err
			}
		}
		newline(level)
		b.WriteByte('}')
	default:
		return typeErr("Object of type %s is not JSON serializable", typeName(v))
	}
	return nil
}

// ---- printf-style formatting: str % args ----

func percentFormat(format string, arg value) (string, error) {
	var args []value
	var mapping *dict
	// Python treats a non-tuple argument with __getitem__ (a dict, a list,
	// Undefined) as a possible mapping: unused, it is no error.
	mappingLike := false
	switch a := arg.(type) {
	case *list:
		if a.tuple {
			args = a.items
		} else {
			args = []value{a}
			mappingLike = true
		}
	case *dict:
		mapping = a
		args = []value{a}
		mappingLike = true
	case *undefined, *rangeVal:
		args = []value{a}
		mappingLike = true
	default:
		args = []value{a}
	}
	var b strings.Builder
	ai := 0
	usedMapping := false
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", valueErr("incomplete format")
		}
		var cur value
		haveCur := false
		if format[i] == '(' {
			if mapping == nil {
				return "", typeErr("format requires a mapping")
			}
			depth, j := 1, i+1
			for j < len(format) && depth > 0 {
				if format[j] == '(' {
					depth++
				} else if format[j] == ')' {
					depth--
				}
				j++
			}
			if depth > 0 {
				return "", valueErr("incomplete format key")
			}
			key := format[i+1 : j-1]
			v, found, _ := mapping.get(key)
			if !found {
				return "", &RenderError{Kind: "KeyError", Msg: pyRepr(key)}
			}
			cur, haveCur, usedMapping = v, true, true
			i = j
		}
		flags := ""
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			flags += string(format[i])
			i++
		}
		next := func() (value, error) {
			if ai >= len(args) {
				return nil, typeErr("not enough arguments for format string")
			}
			ai++
			return args[ai-1], nil
		}
		width, prec := -1, -1
		if i < len(format) && format[i] == '*' {
			v, err := next()
			if err != nil {
				return "", err
			}
			w, ok := asInt(v)
			if !ok {
				return "", typeErr("* wants int")
			}
			width = int(w)
			i++
		} else {
			j := i
			for i < len(format) && format[i] >= '0' && format[i] <= '9' {
				i++
			}
			if i > j {
				width, _ = strconv.Atoi(format[j:i])
			}
		}
		if i < len(format) && format[i] == '.' {
			i++
			j := i
			for i < len(format) && format[i] >= '0' && format[i] <= '9' {
				i++
			}
			prec, _ = strconv.Atoi(format[j:i])
		}
		for i < len(format) && strings.IndexByte("hlL", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return "", valueErr("incomplete format")
		}
		conv := format[i]
		if conv == '%' {
			b.WriteByte('%')
			continue
		}
		if !haveCur {
			v, err := next()
			if err != nil {
				return "", err
			}
			cur = v
		}
		s, err := formatOne(conv, flags, prec, cur)
		if err != nil {
			return "", err
		}
		n := utf8.RuneCountInString(s)
		if width > n {
			pad := width - n
			switch {
			case strings.Contains(flags, "-"):
				s += strings.Repeat(" ", pad)
			case strings.Contains(flags, "0") && strings.IndexByte("diouxXeEfFgG", conv) >= 0:
				sign := ""
				if s != "" && (s[0] == '-' || s[0] == '+' || s[0] == ' ') {
					sign, s = s[:1], s[1:]
				}
				s = sign + strings.Repeat("0", pad) + s
			default:
				s = strings.Repeat(" ", pad) + s
			}
		}
		b.WriteString(s)
	}
	if ai < len(args) && !usedMapping && !mappingLike {
		return "", typeErr("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func formatOne(conv byte, flags string, prec int, v value) (string, error) {
	sign := func(neg bool, s string) string {
		switch {
		case neg:
			return "-" + s
		case strings.Contains(flags, "+"):
			return "+" + s
		case strings.Contains(flags, " "):
			return " " + s
		}
		return s
	}
	switch conv {
	case 's', 'r', 'a':
		var s string
		var err error
		if conv == 's' {
			s, err = toStr(v)
		} else {
			s, err = repr(v)
		}
		if err != nil {
			return "", err
		}
		if prec >= 0 {
			rs := []rune(s)
			if prec < len(rs) {
				s = string(rs[:prec])
			}
		}
		return s, nil
	case 'd', 'i', 'u':
		var i int64
		switch x := v.(type) {
		case bool, int64:
			i, _ = asInt(x)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return "", valueErr("cannot convert float to integer")
			}
			i = int64(math.Trunc(x))
		default:
			return "", typeErr("%%%c format: a real number is required, not %s", conv, typeName(v))
		}
		neg := i < 0
		s := strconv.FormatUint(uint64(abs64(i)), 10)
		if prec > len(s) {
			s = strings.Repeat("0", prec-len(s)) + s
		}
		return sign(neg, s), nil
	case 'x', 'X', 'o':
		i, ok := asInt(v)
		if !ok {
			return "", typeErr("%%%c format: an integer is required, not %s", conv, typeName(v))
		}
		base := 16
		if conv == 'o' {
			base = 8
		}
		s := strconv.FormatUint(uint64(abs64(i)), base)
		if conv == 'X' {
			s = strings.ToUpper(s)
		}
		if strings.Contains(flags, "#") {
			s = "0" + string(conv) + s
		}
		return sign(i < 0, s), nil
	case 'e', 'E', 'f', 'F', 'g', 'G':
		if !isNumber(v) {
			return "", typeErr("must be real number, not %s", typeName(v))
		}
		f := toFloat(v)
		if prec < 0 {
			prec = 6
		}
		var s string
		switch {
		case math.IsInf(f, 0):
			s = "inf"
		case math.IsNaN(f):
			s = "nan"
		case conv == 'g' || conv == 'G':
			s = pyGeneral(math.Abs(f), prec, strings.Contains(flags, "#"))
		default:
			s = strconv.FormatFloat(math.Abs(f), conv|0x20, prec, 64)
		}
		if conv >= 'A' && conv <= 'Z' {
			s = strings.ToUpper(s)
		}
		return sign(math.Signbit(f) && !math.IsNaN(f), s), nil
	case 'c':
		if s, ok := strOf(v); ok && utf8.RuneCountInString(s) == 1 {
			return s, nil
		}
		if i, ok := asInt(v); ok && i >= 0 && i <= 0x10ffff {
			return string(rune(i)), nil
		}
		return "", typeErr("%%c requires int or char")
	}
	return "", valueErr("unsupported format character '%c' (0x%x)", conv, conv)
}

func abs64(i int64) uint64 {
	if i < 0 {
		return uint64(-(i + 1)) + 1
	}
	return uint64(i)
}

// pyGeneral is C's %g (as Python's % operator does it).
func pyGeneral(f float64, prec int, alt bool) string {
	if prec == 0 {
		prec = 1
	}
	if f == 0 {
		if alt {
			return "0." + strings.Repeat("0", prec-1)
		}
		return "0"
	}
	e := strconv.FormatFloat(f, 'e', prec-1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	var s string
	if exp < -4 || exp >= prec {
		s = e
		if !alt {
			mant, ex := s[:strings.IndexByte(s, 'e')], s[strings.IndexByte(s, 'e'):]
			if strings.Contains(mant, ".") {
				mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
			}
			s = mant + ex
		}
	} else {
		s = strconv.FormatFloat(f, 'f', max(prec-1-exp, 0), 64)
		if !alt && strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
	}
	return s
}

// ---- str.format (the sandbox's formatter) ----

func pyStrFormat(s string, args []value, kwargs []kwarg) (value, error) {
	var b strings.Builder
	auto, manual := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '}' {
			if i+1 < len(s) && s[i+1] == '}' {
				b.WriteByte('}')
				i++
				continue
			}
			return nil, valueErr("Single '}' encountered in format string")
		}
		if c != '{' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			b.WriteByte('{')
			i++
			continue
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, valueErr("expected '}' before end of string")
		}
		field := s[i+1 : i+j]
		i += j
		if strings.ContainsRune(field, '{') {
			return nil, unsupported("nested replacement fields in str.format")
		}
		spec := ""
		if k := strings.IndexByte(field, ':'); k >= 0 {
			field, spec = field[:k], field[k+1:]
		}
		conv := byte(0)
		if k := strings.IndexByte(field, '!'); k >= 0 {
			if k+2 != len(field) {
				return nil, valueErr("expected ':' after conversion specifier")
			}
			conv = field[k+1]
			field = field[:k]
		}
		// The first name, then .attr and [key] parts.
		k := strings.IndexAny(field, ".[")
		head, rest := field, ""
		if k >= 0 {
			head, rest = field[:k], field[k:]
		}
		var v value
		switch {
		case head == "":
			if manual {
				return nil, valueErr("cannot switch from manual field specification to automatic field numbering")
			}
			if auto >= len(args) {
				return nil, &RenderError{Kind: "IndexError", Msg: fmt.Sprintf("Replacement index %d out of range for positional args tuple", auto)}
			}
			v = args[auto]
			auto++
		case head[0] >= '0' && head[0] <= '9':
			if auto > 0 {
				return nil, valueErr("cannot switch from automatic field numbering to manual field specification")
			}
			manual = true
			n, err := strconv.Atoi(head)
			if err != nil || n >= len(args) {
				return nil, &RenderError{Kind: "IndexError", Msg: fmt.Sprintf("Replacement index %s out of range for positional args tuple", head)}
			}
			v = args[n]
		default:
			found := false
			for _, kw := range kwargs {
				if kw.name == head {
					v, found = kw.val, true
				}
			}
			if !found {
				return nil, &RenderError{Kind: "KeyError", Msg: pyRepr(head)}
			}
		}
		for rest != "" {
			var err error
			if rest[0] == '.' {
				e := strings.IndexAny(rest[1:], ".[")
				name := rest[1:]
				if e >= 0 {
					name, rest = rest[1:1+e], rest[1+e:]
				} else {
					rest = ""
				}
				v, err = getattr(v, name)
			} else {
				e := strings.IndexByte(rest, ']')
				if e < 0 {
					return nil, valueErr("Missing ']' in format string")
				}
				key := rest[1:e]
				rest = rest[e+1:]
				var kv value = key
				if n, err := strconv.Atoi(key); err == nil {
					kv = int64(n)
				}
				v, err = getitem(v, kv)
			}
			if err != nil {
				return nil, err
			}
		}
		var err error
		switch conv {
		case 0:
		case 's':
			var str string
			str, err = toStr(v)
			v = str
		case 'r', 'a':
			var str string
			str, err = repr(v)
			v = str
		default:
			return nil, valueErr("Unknown conversion specifier %c", conv)
		}
		if err != nil {
			return nil, err
		}
		out, err := formatSpec(v, spec)
		if err != nil {
			return nil, err
		}
		b.WriteString(out)
	}
	return b.String(), nil
}

// formatSpec is Python's format(v, spec) for str, int, bool, float and None.
func formatSpec(v value, spec string) (string, error) {
	if spec == "" {
		return toStr(v)
	}
	// [[fill]align][sign][z][#][0][width][grouping][.precision][type]
	fill, align := " ", byte(0)
	rs := []rune(spec)
	i := 0
	if len(rs) >= 2 && strings.ContainsRune("<>=^", rs[1]) {
		fill, align, i = string(rs[0]), byte(rs[1]), 2
	} else if len(rs) >= 1 && strings.ContainsRune("<>=^", rs[0]) {
		align, i = byte(rs[0]), 1
	}
	rest := string(rs[i:])
	j := 0
	sign := byte('-')
	if j < len(rest) && strings.IndexByte("+- ", rest[j]) >= 0 {
		sign = rest[j]
		j++
	}
	alt := false
	if j < len(rest) && rest[j] == '#' {
		alt = true
		j++
	}
	if j < len(rest) && rest[j] == '0' {
		if align == 0 {
			fill, align = "0", '='
		}
		j++
	}
	w0 := j
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	width := 0
	if j > w0 {
		width, _ = strconv.Atoi(rest[w0:j])
	}
	group := byte(0)
	if j < len(rest) && (rest[j] == ',' || rest[j] == '_') {
		group = rest[j]
		j++
	}
	prec := -1
	if j < len(rest) && rest[j] == '.' {
		j++
		p0 := j
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == p0 {
			return "", valueErr("Format specifier missing precision")
		}
		prec, _ = strconv.Atoi(rest[p0:j])
	}
	typ := byte(0)
	if j < len(rest) {
		typ = rest[j]
		j++
	}
	if j != len(rest) {
		return "", valueErr("Invalid format specifier '%s' for object of type '%s'", spec, typeName(v))
	}
	var body, signStr string
	switch x := v.(type) {
	case string, markup:
		str, _ := strOf(x)
		if typ != 0 && typ != 's' {
			return "", valueErr("Unknown format code '%c' for object of type 'str'", typ)
		}
		if sign != '-' || alt || group != 0 || align == '=' {
			return "", valueErr("Sign not allowed in string format specifier")
		}
		if prec >= 0 && prec < utf8.RuneCountInString(str) {
			str = string([]rune(str)[:prec])
		}
		body = str
		if align == 0 {
			align = '<'
		}
	case bool, int64, float64:
		isFloat := false
		if _, ok := x.(float64); ok {
			isFloat = true
		}
		switch typ {
		case 'e', 'E', 'f', 'F', 'g', 'G', '%':
			isFloat = true
		case 0, 'd', 'n':
			if isFloat && typ != 0 {
				return "", valueErr("Unknown format code '%c' for object of type 'float'", typ)
			}
		case 'b', 'o', 'x', 'X', 'c':
			if isFloat {
				return "", valueErr("Unknown format code '%c' for object of type 'float'", typ)
			}
		default:
			return "", valueErr("Unknown format code '%c' for object of type '%s'", typ, typeName(v))
		}
		if isFloat {
			f := toFloat(x)
			if math.Signbit(f) && !math.IsNaN(f) {
				signStr = "-"
				f = -f
			}
			switch {
			case math.IsInf(f, 0):
				body = "inf"
			case math.IsNaN(f):
				body = "nan"
			case typ == 0 && prec < 0:
				body = pyFloat(f)
			case typ == 0:
				body = pyGeneral(f, max(prec, 1), alt)
				if !strings.ContainsAny(body, ".e") && !strings.Contains(body, "inf") {
					// the empty type keeps a float looking like one only when
					// no precision cut it; format(1.0, '.3') == '1.0'
					body += ".0"
				}
			case typ == '%':
				if prec < 0 {
					prec = 6
				}
				body = strconv.FormatFloat(f*100, 'f', prec, 64) + "%"
			case typ == 'g' || typ == 'G':
				if prec < 0 {
					prec = 6
				}
				body = pyGeneral(f, prec, alt)
			default:
				if prec < 0 {
					prec = 6
				}
				body = strconv.FormatFloat(f, typ|0x20, prec, 64)
			}
			if typ >= 'A' && typ <= 'Z' {
				body = strings.ToUpper(body)
			}
			if group != 0 {
				intPart, frac := body, ""
				if k := strings.IndexAny(body, ".e%"); k >= 0 {
					intPart, frac = body[:k], body[k:]
				}
				body = groupDigits(intPart, group, 3) + frac
			}
		} else {
			i, _ := asInt(x)
			if prec >= 0 {
				return "", valueErr("Precision not allowed in integer format specifier")
			}
			if i < 0 {
				signStr = "-"
			}
			u := abs64(i)
			prefix := ""
			switch typ {
			case 'b':
				body, prefix = strconv.FormatUint(u, 2), "0b"
			case 'o':
				body, prefix = strconv.FormatUint(u, 8), "0o"
			case 'x':
				body, prefix = strconv.FormatUint(u, 16), "0x"
			case 'X':
				body, prefix = strings.ToUpper(strconv.FormatUint(u, 16)), "0X"
			case 'c':
				body = string(rune(i))
			default:
				body = strconv.FormatUint(u, 10)
			}
			if group != 0 {
				n := 3
				if typ == 'b' || typ == 'o' || typ == 'x' || typ == 'X' {
					n = 4
				}
				body = groupDigits(body, group, n)
			}
			if alt {
				body = prefix + body
			}
		}
		if signStr == "" {
			switch sign {
			case '+':
				signStr = "+"
			case ' ':
				signStr = " "
			}
		}
		if align == 0 {
			align = '>'
		}
	default:
		return "", typeErr("unsupported format string passed to %s.__format__", typeName(v))
	}
	n := utf8.RuneCountInString(signStr + body)
	if n >= width {
		return signStr + body, nil
	}
	pad := width - n
	switch align {
	case '<':
		return signStr + body + strings.Repeat(fill, pad), nil
	case '>':
		return strings.Repeat(fill, pad) + signStr + body, nil
	case '^':
		return strings.Repeat(fill, pad/2) + signStr + body + strings.Repeat(fill, pad-pad/2), nil
	}
	return signStr + strings.Repeat(fill, pad) + body, nil
}

func groupDigits(s string, sep byte, n int) string {
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%n == 0 {
			out = append(out, sep)
		}
		out = append(out, s[i])
	}
	return string(out)
}

// ---- strftime (glibc's, in the C locale) ----

var (
	shortDays   = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays    = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	shortMonths = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	longMonths  = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

func strftime(t time.Time, f string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			b.WriteByte(f[i])
			continue
		}
		i++
		if i >= len(f) {
			b.WriteByte('%')
			break
		}
		flag := byte(0)
		if strings.IndexByte("-_0^#", f[i]) >= 0 {
			flag = f[i]
			i++
			if i >= len(f) {
				return "", unsupported("strftime format ending in a flag")
			}
		}
		num := func(n, width int, pad byte) string {
			s := strconv.Itoa(n)
			switch flag {
			case '-':
				return s
			case '_':
				pad = ' '
			case '0':
				pad = '0'
			}
			for len(s) < width {
				s = string(pad) + s
			}
			return s
		}
		text := func(s string) string {
			if flag == '^' {
				return strings.ToUpper(s)
			}
			return s
		}
		hour12 := t.Hour() % 12
		if hour12 == 0 {
			hour12 = 12
		}
		switch f[i] {
		case 'a':
			b.WriteString(text(shortDays[t.Weekday()]))
		case 'A':
			b.WriteString(text(longDays[t.Weekday()]))
		case 'b', 'h':
			b.WriteString(text(shortMonths[t.Month()-1]))
		case 'B':
			b.WriteString(text(longMonths[t.Month()-1]))
		case 'd':
			b.WriteString(num(t.Day(), 2, '0'))
		case 'e':
			b.WriteString(num(t.Day(), 2, ' '))
		case 'm':
			b.WriteString(num(int(t.Month()), 2, '0'))
		case 'y':
			b.WriteString(num(t.Year()%100, 2, '0'))
		case 'Y':
			b.WriteString(num(t.Year(), 1, '0'))
		case 'C':
			b.WriteString(num(t.Year()/100, 2, '0'))
		case 'H':
			b.WriteString(num(t.Hour(), 2, '0'))
		case 'k':
			b.WriteString(num(t.Hour(), 2, ' '))
		case 'I':
			b.WriteString(num(hour12, 2, '0'))
		case 'l':
			b.WriteString(num(hour12, 2, ' '))
		case 'M':
			b.WriteString(num(t.Minute(), 2, '0'))
		case 'S':
			b.WriteString(num(t.Second(), 2, '0'))
		case 'f':
			b.WriteString(fmt.Sprintf("%06d", t.Nanosecond()/1000))
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'P':
			if t.Hour() < 12 {
				b.WriteString("am")
			} else {
				b.WriteString("pm")
			}
		case 'j':
			b.WriteString(num(t.YearDay(), 3, '0'))
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b.WriteString(strconv.Itoa(wd))
		case 'U':
			b.WriteString(num((t.YearDay()+6-int(t.Weekday()))/7, 2, '0'))
		case 'W':
			b.WriteString(num((t.YearDay()+6-(int(t.Weekday())+6)%7)/7, 2, '0'))
		case 'G':
			y, _ := t.ISOWeek()
			b.WriteString(num(y, 1, '0'))
		case 'V':
			_, w := t.ISOWeek()
			b.WriteString(num(w, 2, '0'))
		case 'D':
			s, _ := strftime(t, "%m/%d/%y")
			b.WriteString(s)
		case 'F':
			s, _ := strftime(t, "%Y-%m-%d")
			b.WriteString(s)
		case 'T':
			s, _ := strftime(t, "%H:%M:%S")
			b.WriteString(s)
		case 'R':
			s, _ := strftime(t, "%H:%M")
			b.WriteString(s)
		case 'c':
			s, _ := strftime(t, "%a %b %e %H:%M:%S %Y")
			b.WriteString(s)
		case 'x':
			s, _ := strftime(t, "%m/%d/%y")
			b.WriteString(s)
		case 'X':
			s, _ := strftime(t, "%H:%M:%S")
			b.WriteString(s)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		case 'z', 'Z':
			// datetime.now() is naive: Python prints nothing for these.
		default:
			return "", unsupported("strftime directive %%%c", f[i])
		}
	}
	return b.String(), nil
}
