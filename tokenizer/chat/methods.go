package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// iterVal is a Python iterator or generator (what |map, |select, |reverse,
// |items and friends return): truthy, without len(), exhausted after one pass.
type iterVal struct {
	items []value
	kind  string // Python's type name, e.g. "generator"
}

func (it *iterVal) drain() []value {
	out := it.items
	it.items = nil
	return out
}

type boundMethod struct {
	recv value
	name string
}

func (m *boundMethod) call(r *renderer, args []value, kwargs []kwarg) (value, error) {
	return callMethod(r, m.recv, m.name, args, kwargs)
}

var strMethods = setOf("capitalize", "casefold", "center", "count", "endswith", "find", "format",
	"index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower", "isnumeric",
	"isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "partition", "removeprefix",
	"removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
	"splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill")

// Python attributes of str, int, float, list and dict that this engine does
// not implement: using one is an error rather than a silent Undefined.
var strUnsupported = setOf("encode", "expandtabs", "format_map", "isidentifier", "isprintable",
	"maketrans", "translate")
var numAttrs = setOf("real", "imag", "conjugate", "bit_length", "bit_count", "to_bytes", "from_bytes",
	"as_integer_ratio", "is_integer", "numerator", "denominator", "hex", "fromhex")

var dictMethods = setOf("items", "keys", "values", "get", "copy")
var dictUnsafe = setOf("clear", "pop", "popitem", "setdefault", "update")
var listMethods = setOf("index", "count", "copy")
var listUnsafe = setOf("append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort")

func setOf(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// pyAttr is Python's getattr(obj, name) as the immutable sandbox filters it.
// ok is false where Python raises AttributeError.
func pyAttr(obj value, name string) (value, bool, error) {
	if strings.HasPrefix(name, "__") && strings.HasSuffix(name, "__") && len(name) > 4 {
		// dunder attributes exist on every Python object; the sandbox blocks them.
		return &undefined{name: name, obj: obj, hasObj: true, unsafe: true,
			hint: "access to attribute " + pyRepr(name) + " of " + pyRepr(typeName(obj)) + " object is unsafe."}, true, nil
	}
	switch o := obj.(type) {
	case string, markup:
		if strMethods[name] {
			return &boundMethod{recv: o, name: name}, true, nil
		}
		if strUnsupported[name] {
			return nil, false, unsupported("the str method %s", name)
		}
	case *dict:
		if dictMethods[name] {
			return &boundMethod{recv: o, name: name}, true, nil
		}
		if dictUnsafe[name] {
			return unsafeAttr(o, name), true, nil
		}
		if name == "fromkeys" {
			return nil, false, unsupported("the dict method fromkeys")
		}
	case *list:
		if listMethods[name] || (o.tuple && (name == "index" || name == "count")) {
			if o.tuple && name == "copy" {
				break
			}
			return &boundMethod{recv: o, name: name}, true, nil
		}
		if !o.tuple && listUnsafe[name] {
			return unsafeAttr(o, name), true, nil
		}
	case bool, int64, float64:
		switch name {
		case "real":
			if f, ok := o.(float64); ok {
				return f, true, nil
			}
			i, _ := asInt(o)
			return i, true, nil
		case "imag":
			if _, ok := o.(float64); ok {
				return 0.0, true, nil
			}
			return int64(0), true, nil
		case "numerator", "denominator":
			if i, ok := asInt(o); ok {
				if name == "denominator" {
					return int64(1), true, nil
				}
				return i, true, nil
			}
		}
		if numAttrs[name] {
			return nil, false, unsupported("the attribute %s of numbers", name)
		}
	case *namespace:
		v, ok := o.attrs.getStr(name)
		return v, ok, nil
	case *loopCtx:
		v, ok := o.attr(name)
		return v, ok, nil
	case *rangeVal:
		switch name {
		case "start":
			return o.start, true, nil
		case "stop":
			return o.stop, true, nil
		case "step":
			return o.step, true, nil
		case "index", "count":
			return nil, false, unsupported("the range method %s", name)
		}
	case *macro:
		switch name {
		case "name":
			return o.node.name, true, nil
		case "arguments", "defaults", "catch_kwargs", "catch_varargs", "caller":
			return nil, false, unsupported("the macro attribute %s", name)
		}
	case *dictView:
		if name == "isdisjoint" || name == "mapping" {
			return nil, false, unsupported("the %s attribute %s", typeName(o), name)
		}
	}
	return nil, false, nil
}

func unsafeAttr(obj value, name string) *undefined {
	return &undefined{name: name, obj: obj, hasObj: true, unsafe: true,
		hint: "access to attribute " + pyRepr(name) + " of " + pyRepr(typeName(obj)) + " object is unsafe."}
}

// argSpec binds positional and keyword arguments the way Python does for a
// builtin with the given parameter names; required is how many come first
// without a default. Missing optional ones are left nil in present.
func bindArgs(fname string, args []value, kwargs []kwarg, names []string, required int) ([]value, []bool, error) {
	out := make([]value, len(names))
	present := make([]bool, len(names))
	if len(args) > len(names) {
		return nil, nil, typeErr("%s() takes at most %d arguments (%d given)", fname, len(names), len(args))
	}
	for i, a := range args {
		out[i] = a
		present[i] = true
	}
	for _, kw := range kwargs {
		found := false
		for i, n := range names {
			if n == kw.name {
				if present[i] {
					return nil, nil, typeErr("%s() got multiple values for argument '%s'", fname, n)
				}
				out[i] = kw.val
				present[i] = true
				found = true
			}
		}
		if !found {
			return nil, nil, typeErr("%s() got an unexpected keyword argument '%s'", fname, kw.name)
		}
	}
	for i := 0; i < required; i++ {
		if !present[i] {
			return nil, nil, typeErr("%s() missing required argument '%s' (pos %d)", fname, names[i], i+1)
		}
	}
	return out, present, nil
}

func needStr(fname string, v value) (string, error) {
	if s, ok := strOf(v); ok {
		return s, nil
	}
	if u, ok := v.(*undefined); ok {
		return "", u.err()
	}
	return "", typeErr("%s arg must be None or str", fname)
}

// optStr returns the string argument, or ok=false for a missing or None one.
func optStr(fname string, v value, present bool) (string, bool, error) {
	if !present || v == nil {
		return "", false, nil
	}
	s, err := needStr(fname, v)
	return s, err == nil, err
}

func callMethod(r *renderer, recv value, name string, args []value, kwargs []kwarg) (value, error) {
	switch o := recv.(type) {
	case string:
		return strMethod(o, name, args, kwargs)
	case markup:
		v, err := strMethod(string(o), name, args, kwargs)
		if s, ok := v.(string); ok && err == nil {
			switch name {
			case "capitalize", "casefold", "center", "format", "join", "ljust", "lower", "lstrip",
				"removeprefix", "removesuffix", "replace", "rjust", "rstrip", "strip", "swapcase", "title",
				"upper", "zfill":
				return markup(s), nil
			}
		}
		return v, err
	case *dict:
		switch name {
		case "items", "keys", "values":
			if len(args)+len(kwargs) > 0 {
				return nil, typeErr("dict.%s() takes no arguments (%d given)", name, len(args)+len(kwargs))
			}
			return &dictView{d: o, kind: name}, nil
		case "get":
			if len(kwargs) > 0 {
				return nil, typeErr("dict.get() takes no keyword arguments")
			}
			if len(args) < 1 || len(args) > 2 {
				return nil, typeErr("get expected at most 2 arguments, got %d", len(args))
			}
			v, found, err := o.get(args[0])
			if err != nil {
				return nil, err
			}
			if found {
				return v, nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return nil, nil
		case "copy":
			d := newDict()
			for i, k := range o.keys {
				d.set(k, o.vals[i])
			}
			return d, nil
		}
	case *list:
		switch name {
		case "copy":
			return newList(append([]value{}, o.items...)), nil
		case "count":
			if len(args) != 1 || len(kwargs) > 0 {
				return nil, typeErr("%s.count() takes exactly one argument", typeName(o))
			}
			n := int64(0)
			for _, it := range o.items {
				if pyEqual(it, args[0]) {
					n++
				}
			}
			return n, nil
		case "index":
			if len(args) != 1 || len(kwargs) > 0 {
				return nil, unsupported("%s.index() with start/stop arguments", typeName(o))
			}
			for i, it := range o.items {
				if pyEqual(it, args[0]) {
					return int64(i), nil
				}
			}
			s, _ := repr(args[0])
			if o.tuple {
				return nil, valueErr("tuple.index(x): x not in tuple")
			}
			return nil, valueErr("%s is not in list", s)
		}
	}
	return nil, unsupported("method %s of %s", name, typeName(recv))
}

func strMethod(s, name string, args []value, kwargs []kwarg) (value, error) {
	noArgs := func() error {
		if len(args)+len(kwargs) > 0 {
			return typeErr("str.%s() takes no arguments (%d given)", name, len(args)+len(kwargs))
		}
		return nil
	}
	switch name {
	case "strip", "lstrip", "rstrip":
		a, p, err := bindArgs(name, args, nil, []string{"chars"}, 0)
		if err != nil {
			return nil, err
		}
		if len(kwargs) > 0 {
			return nil, typeErr("str.%s() takes no keyword arguments", name)
		}
		chars, has, err := optStr(name, a[0], p[0])
		if err != nil {
			return nil, err
		}
		return pyStrip(s, chars, has, name != "rstrip", name != "lstrip"), nil
	case "upper":
		return pyUpper(s), noArgs()
	case "lower":
		return pyLower(s), noArgs()
	case "casefold":
		return pyCasefold(s), noArgs()
	case "title":
		return pyTitle(s), noArgs()
	case "capitalize":
		return pyCapitalize(s), noArgs()
	case "swapcase":
		return pySwapcase(s), noArgs()
	case "startswith", "endswith":
		if len(kwargs) > 0 {
			return nil, typeErr("%s() takes no keyword arguments", name)
		}
		if len(args) != 1 {
			return nil, unsupported("str.%s() with start/end arguments", name)
		}
		var prefixes []string
		switch p := args[0].(type) {
		case string:
			prefixes = []string{p}
		case markup:
			prefixes = []string{string(p)}
		case *list:
			if !p.tuple {
				return nil, typeErr("%s first arg must be str or a tuple of str, not list", name)
			}
			for _, it := range p.items {
				ps, ok := strOf(it)
				if !ok {
					return nil, typeErr("tuple for %s must only contain str, not %s", name, typeName(it))
				}
				prefixes = append(prefixes, ps)
			}
		default:
			if u, ok := p.(*undefined); ok {
				return nil, u.err()
			}
			return nil, typeErr("%s first arg must be str or a tuple of str, not %s", name, typeName(p))
		}
		for _, p := range prefixes {
			if name == "startswith" && strings.HasPrefix(s, p) || name == "endswith" && strings.HasSuffix(s, p) {
				return true, nil
			}
		}
		return false, nil
	case "split", "rsplit":
		a, p, err := bindArgs(name, args, kwargs, []string{"sep", "maxsplit"}, 0)
		if err != nil {
			return nil, err
		}
		sep, hasSep, err := optStr(name, a[0], p[0])
		if err != nil {
			return nil, err
		}
		max := int64(-1)
		if p[1] {
			m, ok := asInt(a[1])
			if !ok {
				return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[1]))
			}
			max = m
		}
		if hasSep && sep == "" {
			return nil, valueErr("empty separator")
		}
		var parts []string
		if name == "split" {
			parts = pySplit(s, sep, hasSep, max)
		} else {
			parts = pyRSplit(s, sep, hasSep, max)
		}
		items := make([]value, len(parts))
		for i, x := range parts {
			items[i] = x
		}
		return newList(items), nil
	case "splitlines":
		a, p, err := bindArgs(name, args, kwargs, []string{"keepends"}, 0)
		if err != nil {
			return nil, err
		}
		keep := p[0] && truthy(a[0])
		var items []value
		for _, l := range pySplitlines(s, keep) {
			items = append(items, l)
		}
		return newList(items), nil
	case "replace":
		if len(kwargs) > 0 {
			return nil, typeErr("replace() takes no keyword arguments")
		}
		if len(args) < 2 || len(args) > 3 {
			return nil, typeErr("replace expected at least 2 arguments, got %d", len(args))
		}
		old, err := needStr("replace", args[0])
		if err != nil {
			return nil, typeErr("replace() argument 1 must be str, not %s", typeName(args[0]))
		}
		nw, err := needStr("replace", args[1])
		if err != nil {
			return nil, typeErr("replace() argument 2 must be str, not %s", typeName(args[1]))
		}
		n := int64(-1)
		if len(args) == 3 {
			c, ok := asInt(args[2])
			if !ok {
				return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(args[2]))
			}
			n = c
		}
		return pyReplace(s, old, nw, n), nil
	case "find", "rfind", "index", "rindex", "count":
		if len(kwargs) > 0 || len(args) != 1 {
			if len(args) > 1 {
				return nil, unsupported("str.%s() with start/end arguments", name)
			}
			return nil, typeErr("%s() takes exactly one argument", name)
		}
		sub, ok := strOf(args[0])
		if !ok {
			return nil, typeErr("must be str, not %s", typeName(args[0]))
		}
		if name == "count" {
			if sub == "" {
				return int64(utf8.RuneCountInString(s) + 1), nil
			}
			return int64(strings.Count(s, sub)), nil
		}
		var i int
		if name == "find" || name == "index" {
			i = strings.Index(s, sub)
		} else {
			i = strings.LastIndex(s, sub)
		}
		if i < 0 {
			if name == "index" || name == "rindex" {
				return nil, valueErr("substring not found")
			}
			return int64(-1), nil
		}
		return int64(utf8.RuneCountInString(s[:i])), nil
	case "join":
		if len(kwargs) > 0 || len(args) != 1 {
			return nil, typeErr("str.join() takes exactly one argument (%d given)", len(args))
		}
		items, err := iterate(args[0])
		if err != nil {
			return nil, typeErr("can only join an iterable")
		}
		parts := make([]string, len(items))
		for i, it := range items {
			ps, ok := strOf(it)
			if !ok {
				return nil, typeErr("sequence item %d: expected str instance, %s found", i, typeName(it))
			}
			parts[i] = ps
		}
		return strings.Join(parts, s), nil
	case "partition", "rpartition":
		if len(kwargs) > 0 || len(args) != 1 {
			return nil, typeErr("%s() takes exactly one argument", name)
		}
		sep, ok := strOf(args[0])
		if !ok {
			return nil, typeErr("must be str, not %s", typeName(args[0]))
		}
		if sep == "" {
			return nil, valueErr("empty separator")
		}
		var i int
		if name == "partition" {
			i = strings.Index(s, sep)
			if i < 0 {
				return newTuple(s, "", ""), nil
			}
		} else {
			i = strings.LastIndex(s, sep)
			if i < 0 {
				return newTuple("", "", s), nil
			}
		}
		return newTuple(s[:i], sep, s[i+len(sep):]), nil
	case "removeprefix", "removesuffix":
		if len(kwargs) > 0 || len(args) != 1 {
			return nil, typeErr("%s() takes exactly one argument", name)
		}
		a, ok := strOf(args[0])
		if !ok {
			return nil, typeErr("%s() argument must be str, not %s", name, typeName(args[0]))
		}
		if name == "removeprefix" {
			return strings.TrimPrefix(s, a), nil
		}
		return strings.TrimSuffix(s, a), nil
	case "center", "ljust", "rjust":
		if len(kwargs) > 0 || len(args) < 1 || len(args) > 2 {
			return nil, typeErr("%s expected 1 or 2 arguments", name)
		}
		w, ok := asInt(args[0])
		if !ok {
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(args[0]))
		}
		fill := " "
		if len(args) == 2 {
			f, ok := strOf(args[1])
			if !ok || utf8.RuneCountInString(f) != 1 {
				return nil, typeErr("The fill character must be exactly one character long")
			}
			fill = f
		}
		return pyPad(s, name, w, fill), nil
	case "zfill":
		if len(kwargs) > 0 || len(args) != 1 {
			return nil, typeErr("zfill() takes exactly one argument")
		}
		w, ok := asInt(args[0])
		if !ok {
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(args[0]))
		}
		n := int64(utf8.RuneCountInString(s))
		if w <= n {
			return s, nil
		}
		pad := strings.Repeat("0", int(w-n))
		if s != "" && (s[0] == '+' || s[0] == '-') {
			return s[:1] + pad + s[1:], nil
		}
		return pad + s, nil
	case "format":
		return pyStrFormat(s, args, kwargs)
	case "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isnumeric", "isspace":
		if err := noArgs(); err != nil {
			return nil, err
		}
		if s == "" {
			return name == "isascii", nil
		}
		for _, r := range s {
			var ok bool
			switch name {
			case "isalnum":
				ok = pyIsAlpha(r) || pyIsNumeric(r)
			case "isalpha":
				ok = pyIsAlpha(r)
			case "isascii":
				ok = r < 0x80
			case "isdecimal":
				ok = unicode.Is(unicode.Nd, r)
			case "isdigit":
				ok = pyIsDigit(r)
			case "isnumeric":
				ok = pyIsNumeric(r)
			case "isspace":
				ok = isPySpace(r)
			}
			if !ok {
				return false, nil
			}
		}
		return true, nil
	case "islower", "isupper":
		if err := noArgs(); err != nil {
			return nil, err
		}
		cased := false
		for _, r := range s {
			if name == "islower" && (isUpperCase(r) || unicode.IsTitle(r)) ||
				name == "isupper" && (isLowerCase(r) || unicode.IsTitle(r)) {
				return false, nil
			}
			if isCased(r) {
				cased = true
			}
		}
		return cased, nil
	case "istitle":
		if err := noArgs(); err != nil {
			return nil, err
		}
		cased, prev := false, false
		for _, r := range s {
			if isUpperCase(r) || unicode.IsTitle(r) {
				if prev {
					return false, nil
				}
				prev, cased = true, true
			} else if isLowerCase(r) {
				if !prev {
					return false, nil
				}
				prev, cased = true, true
			} else {
				prev = false
			}
		}
		return cased, nil
	}
	return nil, unsupported("the str method %s", name)
}

func pyStrip(s, chars string, has, left, right bool) string {
	in := isPySpace
	if has {
		in = func(r rune) bool { return strings.ContainsRune(chars, r) }
	}
	if left {
		s = strings.TrimLeftFunc(s, in)
	}
	if right {
		s = strings.TrimRightFunc(s, in)
	}
	return s
}

func pySplit(s, sep string, hasSep bool, max int64) []string {
	if hasSep {
		if max < 0 {
			return strings.Split(s, sep)
		}
		return strings.SplitN(s, sep, int(min(max, int64(len(s)+1)))+1)
	}
	var out []string
	i := 0
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return out
		}
		if max >= 0 && int64(len(out)) == max {
			out = append(out, s[i:])
			return out
		}
		j := i
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if isPySpace(r) {
				break
			}
			j += n
		}
		out = append(out, s[i:j])
		i = j
	}
}

func pyRSplit(s, sep string, hasSep bool, max int64) []string {
	if max < 0 {
		return pySplit(s, sep, hasSep, -1)
	}
	var out []string
	if hasSep {
		for int64(len(out)) < max {
			i := strings.LastIndex(s, sep)
			if i < 0 {
				break
			}
			out = append(out, s[i+len(sep):])
			s = s[:i]
		}
		out = append(out, s)
	} else {
		for {
			s = strings.TrimRightFunc(s, isPySpace)
			if s == "" {
				break
			}
			if int64(len(out)) == max {
				out = append(out, s)
				break
			}
			i := strings.LastIndexFunc(s, isPySpace)
			if i < 0 {
				out = append(out, s)
				break
			}
			_, n := utf8.DecodeRuneInString(s[i:])
			out = append(out, s[i+n:])
			s = s[:i]
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func isLineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

func pySplitlines(s string, keep bool) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isLineBreak(r) {
			i += n
			continue
		}
		end := i + n
		if r == '\r' && end < len(s) && s[end] == '\n' {
			end++
		}
		if keep {
			out = append(out, s[start:end])
		} else {
			out = append(out, s[start:i])
		}
		start = end
		i = end
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func pyReplace(s, old, nw string, n int64) string {
	if n < 0 {
		n = -1
	}
	if old == "" {
		// Python inserts new between every character (and at both ends).
		var b strings.Builder
		count := int64(0)
		if n != 0 {
			b.WriteString(nw)
			count++
		}
		for _, r := range s {
			b.WriteRune(r)
			if n < 0 || count < n {
				b.WriteString(nw)
				count++
			}
		}
		return b.String()
	}
	if n > int64(len(s)) {
		n = -1
	}
	return strings.Replace(s, old, nw, int(n))
}

func pyPad(s, how string, w int64, fill string) string {
	n := int64(utf8.RuneCountInString(s))
	if w <= n {
		return s
	}
	total := w - n
	switch how {
	case "ljust":
		return s + strings.Repeat(fill, int(total))
	case "rjust":
		return strings.Repeat(fill, int(total)) + s
	}
	left := total / 2
	if total%2 == 1 && w%2 == 1 {
		left++
	}
	return strings.Repeat(fill, int(left)) + s + strings.Repeat(fill, int(total-left))
}

// ---- case mapping with Python's full (SpecialCasing) mappings ----

func isUpperCase(r rune) bool {
	return unicode.IsUpper(r) || unicode.Is(unicode.Other_Uppercase, r)
}

func isLowerCase(r rune) bool {
	return unicode.IsLower(r) || unicode.Is(unicode.Other_Lowercase, r)
}

func isCased(r rune) bool {
	return isUpperCase(r) || isLowerCase(r) || unicode.IsTitle(r)
}

func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0xad, 0xb7, 0x2018, 0x2019, 0x2024, 0x2027:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

func mapRune(r rune, table map[rune]string, simple func(rune) rune) string {
	if s, ok := table[r]; ok {
		return s
	}
	return string(simple(r))
}

func pyUpper(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(mapRune(r, specialUpper, unicode.ToUpper))
	}
	return b.String()
}

func pyLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if r == 0x3a3 {
			b.WriteString(sigma(rs, i))
			continue
		}
		b.WriteString(mapRune(r, specialLower, unicode.ToLower))
	}
	return b.String()
}

// sigma applies Unicode's Final_Sigma condition, as CPython's lower() does.
func sigma(rs []rune, i int) string {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	before := j >= 0 && isCased(rs[j])
	k := i + 1
	for k < len(rs) && isCaseIgnorable(rs[k]) {
		k++
	}
	after := k < len(rs) && isCased(rs[k])
	if before && !after {
		return "ς"
	}
	return "σ"
}

func pyCasefold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if f, ok := specialFold[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteString(mapRune(r, specialLower, unicode.ToLower))
	}
	return b.String()
}

func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		if prevCased {
			b.WriteString(mapRune(r, specialLower, unicode.ToLower))
		} else {
			b.WriteString(mapRune(r, specialTitle, unicode.ToTitle))
		}
		prevCased = isCased(r)
	}
	return b.String()
}

func pyCapitalize(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if i == 0 {
			b.WriteString(mapRune(r, specialTitle, unicode.ToTitle))
		} else if r == 0x3a3 {
			b.WriteString(sigma(rs, i))
		} else {
			b.WriteString(mapRune(r, specialLower, unicode.ToLower))
		}
	}
	return b.String()
}

func pySwapcase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case isUpperCase(r):
			if r == 0x3a3 {
				b.WriteString(sigma(rs, i))
			} else {
				b.WriteString(mapRune(r, specialLower, unicode.ToLower))
			}
		case isLowerCase(r):
			b.WriteString(mapRune(r, specialUpper, unicode.ToUpper))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func pyIsAlpha(r rune) bool {
	if v, ok := alphaDiff.lookup(r); ok {
		return v
	}
	return unicode.IsLetter(r)
}

func pyIsDigit(r rune) bool {
	if v, ok := digitDiff.lookup(r); ok {
		return v
	}
	return unicode.Is(unicode.Nd, r)
}

func pyIsNumeric(r rune) bool {
	if v, ok := numericDiff.lookup(r); ok {
		return v
	}
	return unicode.In(r, unicode.Nd, unicode.Nl, unicode.No)
}

// runeClassTable lists runs of code points where Python's answer differs
// from Go's unicode package, sorted by lo.
type runeClassTable []struct {
	lo, hi rune
	v      bool
}

func (t runeClassTable) lookup(r rune) (bool, bool) {
	i, j := 0, len(t)
	for i < j {
		h := (i + j) / 2
		switch {
		case r < t[h].lo:
			j = h
		case r > t[h].hi:
			i = h + 1
		default:
			return t[h].v, true
		}
	}
	return false, false
}
