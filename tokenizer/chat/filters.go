package chat

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

type filterFunc func(r *renderer, v value, args []value, kwargs []kwarg) (value, error)
type testFunc func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error)

var filters map[string]filterFunc
var tests map[string]testFunc

// Jinja2 filters this package does not implement; a template using one fails
// at Parse.
var unsupportedFilters = map[string]string{
	"filesizeformat": "not used by chat templates",
	"groupby":        "returns named tuples",
	"pprint":         "Python's pprint layout",
	"random":         "not deterministic",
	"striptags":      "HTML parsing",
	"urlencode":      "not used by chat templates",
	"urlize":         "not used by chat templates",
	"wordwrap":       "Python's textwrap",
	"xmlattr":        "not used by chat templates",
}

func init() {
	filters = map[string]filterFunc{
		"abs":         fAbs,
		"attr":        fAttr,
		"batch":       fBatch,
		"slice":       fSlice,
		"capitalize":  strFilter(pyCapitalize),
		"center":      fCenter,
		"count":       fLength,
		"d":           fDefault,
		"default":     fDefault,
		"dictsort":    fDictsort,
		"e":           fEscape,
		"escape":      fEscape,
		"first":       fFirst,
		"float":       fFloat,
		"forceescape": fEscape,
		"format":      fFormat,
		"indent":      fIndent,
		"int":         fInt,
		"items":       fItems,
		"join":        fJoin,
		"last":        fLast,
		"length":      fLength,
		"list":        fList,
		"lower":       strFilter(pyLower),
		"map":         fMap,
		"max":         fMinMax(true),
		"min":         fMinMax(false),
		"reject":      fSelect(false, false),
		"rejectattr":  fSelect(false, true),
		"replace":     fReplace,
		"reverse":     fReverse,
		"round":       fRound,
		"safe":        fSafe,
		"select":      fSelect(true, false),
		"selectattr":  fSelect(true, true),
		"sort":        fSort,
		"string":      fString,
		"sum":         fSum,
		"title":       strFilter(jinjaTitle),
		"tojson":      fToJSON,
		"trim":        fTrim,
		"truncate":    fTruncate,
		"unique":      fUnique,
		"upper":       strFilter(pyUpper),
		"wordcount":   fWordcount,
	}
	tests = map[string]testFunc{
		"boolean": tType(func(v value) bool { _, ok := v.(bool); return ok }),
		"callable": tType(func(v value) bool {
			switch v.(type) {
			case callable, *undefined: // Undefined defines __call__ (which raises)
				return true
			}
			return false
		}),
		"defined":     tType(func(v value) bool { _, ok := v.(*undefined); return !ok }),
		"undefined":   tType(func(v value) bool { _, ok := v.(*undefined); return ok }),
		"none":        tType(func(v value) bool { return v == nil }),
		"false":       tType(func(v value) bool { b, ok := v.(bool); return ok && !b }),
		"true":        tType(func(v value) bool { b, ok := v.(bool); return ok && b }),
		"integer":     tType(func(v value) bool { _, ok := v.(int64); return ok }),
		"float":       tType(func(v value) bool { _, ok := v.(float64); return ok }),
		"number":      tType(isNumber),
		"string":      tType(func(v value) bool { _, ok := strOf(v); return ok }),
		"mapping":     tType(func(v value) bool { _, ok := v.(*dict); return ok }),
		"escaped":     tType(func(v value) bool { _, ok := v.(markup); return ok }),
		"iterable":    tIterable,
		"sequence":    tSequence,
		"lower":       tCase("islower"),
		"upper":       tCase("isupper"),
		"odd":         tParity(1),
		"even":        tParity(0),
		"divisibleby": tDivisibleBy,
		"sameas":      tSameAs,
		"in":          tIn,
		"filter":      tNameIn(func(n string) bool { _, ok := filters[n]; return ok }),
		"test":        tNameIn(func(n string) bool { _, ok := tests[n]; return ok }),
		"eq":          tCompare("=="),
		"equalto":     tCompare("=="),
		"==":          tCompare("=="),
		"ne":          tCompare("!="),
		"!=":          tCompare("!="),
		"lt":          tCompare("<"),
		"lessthan":    tCompare("<"),
		"<":           tCompare("<"),
		"le":          tCompare("<="),
		"<=":          tCompare("<="),
		"gt":          tCompare(">"),
		"greaterthan": tCompare(">"),
		">":           tCompare(">"),
		"ge":          tCompare(">="),
		">=":          tCompare(">="),
	}
}

// softStr is jinja's soft_str: strings (and Markup) pass, the rest is str().
func softStr(v value) (string, error) {
	return toStr(v)
}

func noFilterArgs(name string, args []value, kwargs []kwarg) error {
	if len(args)+len(kwargs) > 0 {
		return typeErr("%s() takes 1 positional argument but %d were given", name, 1+len(args)+len(kwargs))
	}
	return nil
}

func strFilter(f func(string) string) filterFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
		if err := noFilterArgs("filter", args, kwargs); err != nil {
			return nil, err
		}
		s, err := softStr(v)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(markup); ok {
			return markup(f(s)), nil
		}
		return f(s), nil
	}
}

// jinjaTitle is the title filter (not str.title): split on runs of
// "-", whitespace and opening brackets; upper-case each piece's first
// character and lower-case the rest.
func jinjaTitle(s string) string {
	var b strings.Builder
	last := 0
	piece := func(p string) {
		if p == "" {
			return
		}
		r, n := utf8.DecodeRuneInString(p)
		b.WriteString(pyUpper(string(r)))
		b.WriteString(pyLower(p[n:]))
	}
	for _, m := range pyWhitespaceRuns(s) {
		piece(s[last:m[0]])
		piece(s[m[0]:m[1]])
		last = m[1]
	}
	piece(s[last:])
	return b.String()
}

// pyWhitespaceRuns finds the separators of jinja's _word_beginning_split_re
// with Python's (Unicode) \s.
func pyWhitespaceRuns(s string) [][2]int {
	var out [][2]int
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isSep := isPySpace(r) || strings.ContainsRune("-({[<", r); !isSep {
			i += n
			continue
		}
		j := i
		for j < len(s) {
			r2, n2 := utf8.DecodeRuneInString(s[j:])
			if !(isPySpace(r2) || strings.ContainsRune("-({[<", r2)) {
				break
			}
			j += n2
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func fAbs(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("abs", args, kwargs); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case int64:
		if x == math.MinInt64 {
			return nil, overflow()
		}
		if x < 0 {
			return -x, nil
		}
		return x, nil
	case float64:
		return math.Abs(x), nil
	case *undefined:
		return nil, x.err()
	}
	return nil, typeErr("bad operand type for abs(): '%s'", typeName(v))
}

func fAttr(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, _, err := bindArgs("attr", args, kwargs, []string{"name"}, 1)
	if err != nil {
		return nil, err
	}
	name, ok := strOf(a[0])
	if !ok {
		return nil, typeErr("attribute name must be string, not '%s'", typeName(a[0]))
	}
	if u, isU := v.(*undefined); isU {
		return nil, u.err()
	}
	got, found, err := pyAttr(v, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return &undefined{name: name, obj: v, hasObj: true}, nil
	}
	return got, nil
}

func fCenter(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("center", args, kwargs, []string{"width"}, 0)
	if err != nil {
		return nil, err
	}
	s, err := softStr(v)
	if err != nil {
		return nil, err
	}
	w := int64(80)
	if p[0] {
		var ok bool
		if w, ok = asInt(a[0]); !ok {
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[0]))
		}
	}
	return pyPad(s, "center", w, " "), nil
}

func fDefault(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("default", args, kwargs, []string{"default_value", "boolean"}, 0)
	if err != nil {
		return nil, err
	}
	def := value("")
	if p[0] {
		def = a[0]
	}
	_, isU := v.(*undefined)
	if isU || (p[1] && truthy(a[1]) && !truthy(v)) {
		return def, nil
	}
	return v, nil
}

func fDictsort(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("dictsort", args, kwargs, []string{"case_sensitive", "by", "reverse"}, 0)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*dict)
	if !ok {
		if u, isU := v.(*undefined); isU {
			return nil, u.err()
		}
		return nil, &RenderError{Kind: "AttributeError", Msg: fmt.Sprintf("'%s' object has no attribute 'items'", typeName(v))}
	}
	pos := 0
	if p[1] {
		switch a[1] {
		case "key":
		case "value":
			pos = 1
		default:
			return nil, &RenderError{Kind: "FilterArgumentError", Msg: `You can only sort by either "key" or "value"`}
		}
	}
	cs := p[0] && truthy(a[0])
	items := (&dictView{d: d, kind: "items"}).list()
	err = sortValues(items, func(it value) (value, error) {
		k := it.(*list).items[pos]
		if !cs {
			k = ignoreCase(k)
		}
		return k, nil
	}, p[2] && truthy(a[2]))
	return newList(items), err
}

func ignoreCase(v value) value {
	if s, ok := v.(string); ok {
		return pyLower(s)
	}
	return v
}

func fEscape(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("escape", args, kwargs); err != nil {
		return nil, err
	}
	if m, ok := v.(markup); ok {
		return m, nil
	}
	s, err := toStr(v)
	if err != nil {
		return nil, err
	}
	return markup(escapeHTML(s)), nil
}

func fSafe(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("safe", args, kwargs); err != nil {
		return nil, err
	}
	if m, ok := v.(markup); ok {
		return m, nil
	}
	s, err := toStr(v)
	if err != nil {
		return nil, err
	}
	return markup(s), nil
}

func fFirst(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("first", args, kwargs); err != nil {
		return nil, err
	}
	if it, ok := v.(*iterVal); ok {
		if len(it.items) == 0 {
			return &undefined{hint: "No first item, sequence was empty."}, nil
		}
		first := it.items[0]
		it.items = it.items[1:]
		return first, nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &undefined{hint: "No first item, sequence was empty."}, nil
	}
	return items[0], nil
}

func fLast(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("last", args, kwargs); err != nil {
		return nil, err
	}
	switch v.(type) {
	case *iterVal:
		return nil, typeErr("'%s' object is not reversible", typeName(v))
	case *undefined:
		return &undefined{hint: "No last item, sequence was empty."}, nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, typeErr("'%s' object is not reversible", typeName(v))
	}
	if len(items) == 0 {
		return &undefined{hint: "No last item, sequence was empty."}, nil
	}
	return items[len(items)-1], nil
}

func fFloat(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("float", args, kwargs, []string{"default"}, 0)
	if err != nil {
		return nil, err
	}
	def := value(0.0)
	if p[0] {
		def = a[0]
	}
	if u, ok := v.(*undefined); ok {
		return nil, u.err()
	}
	switch x := v.(type) {
	case bool, int64, float64:
		return toFloat(x), nil
	case string, markup:
		s, _ := strOf(x)
		if f, ok := pyParseFloat(s); ok {
			return f, nil
		}
	}
	return def, nil
}

// pyParseFloat is Python's float(str).
func pyParseFloat(s string) (float64, bool) {
	s = strings.TrimFunc(s, isPySpace)
	low := strings.ToLower(s)
	t := strings.TrimLeft(low, "+-")
	switch t {
	case "inf", "infinity", "nan":
		neg := strings.HasPrefix(low, "-")
		if t == "nan" {
			return math.NaN(), true
		}
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	if strings.Contains(s, "__") || strings.HasPrefix(t, "_") || strings.HasSuffix(s, "_") ||
		strings.Contains(s, "_.") || strings.Contains(s, "._") || strings.ContainsAny(low, "xpn") {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil && !isRangeErr(err) {
		return 0, false
	}
	return f, true
}

func fFormat(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if len(args) > 0 && len(kwargs) > 0 {
		return nil, &RenderError{Kind: "FilterArgumentError", Msg: "can't handle positional and keyword arguments at the same time"}
	}
	s, err := softStr(v)
	if err != nil {
		return nil, err
	}
	var arg value = newTuple(args...)
	if len(kwargs) > 0 {
		d := newDict()
		for _, kw := range kwargs {
			d.setStr(kw.name, kw.val)
		}
		arg = d
	}
	return percentFormat(s, arg)
}

func fIndent(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("indent", args, kwargs, []string{"width", "first", "blank"}, 0)
	if err != nil {
		return nil, err
	}
	s, isStr := strOf(v)
	if !isStr {
		if u, ok := v.(*undefined); ok {
			return nil, u.err()
		}
		return nil, typeErr("unsupported operand type(s) for +=: '%s' and 'str'", typeName(v))
	}
	ind := "    "
	if p[0] {
		if ws, ok := strOf(a[0]); ok {
			ind = ws
		} else if n, ok := asInt(a[0]); ok {
			ind = strings.Repeat(" ", int(max(n, 0)))
		} else {
			return nil, typeErr("can't multiply sequence by non-int of type '%s'", typeName(a[0]))
		}
	}
	s += "\n"
	lines := pySplitlines(s, false)
	var out string
	if p[2] && truthy(a[2]) {
		out = strings.Join(lines, "\n"+ind)
	} else {
		out = lines[0]
		if len(lines) > 1 {
			rest := make([]string, len(lines)-1)
			for i, l := range lines[1:] {
				if l != "" {
					l = ind + l
				}
				rest[i] = l
			}
			out += "\n" + strings.Join(rest, "\n")
		}
	}
	if p[1] && truthy(a[1]) {
		out = ind + out
	}
	return out, nil
}

func fInt(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("int", args, kwargs, []string{"default", "base"}, 0)
	if err != nil {
		return nil, err
	}
	def := value(int64(0))
	if p[0] {
		def = a[0]
	}
	base := int64(10)
	if p[1] {
		b, ok := asInt(a[1])
		if !ok {
			return def, nil
		}
		base = b
	}
	if u, ok := v.(*undefined); ok {
		return nil, u.err()
	}
	switch x := v.(type) {
	case bool, int64:
		i, _ := asInt(x)
		return i, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return def, nil
		}
		t := math.Trunc(x)
		if math.Abs(t) >= 1<<63 {
			return nil, overflow()
		}
		return int64(t), nil
	case string, markup:
		s, _ := strOf(x)
		if i, ok := pyParseInt(s, base); ok {
			return i, nil
		}
		if f, ok := pyParseFloat(s); ok && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1<<63 {
			return int64(math.Trunc(f)), nil
		}
	}
	return def, nil
}

// pyParseInt is Python's int(str, base) for base 10 (and 0, 2, 8, 16).
func pyParseInt(s string, base int64) (int64, bool) {
	s = strings.TrimFunc(s, isPySpace)
	if s == "" || strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return 0, false
	}
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	low := strings.ToLower(s)
	if base == 0 || base == 16 || base == 8 || base == 2 {
		for pfx, b := range map[string]int64{"0x": 16, "0o": 8, "0b": 2} {
			if strings.HasPrefix(low, pfx) && (base == 0 || base == b) {
				s = strings.TrimPrefix(s[2:], "_")
				base = b
			}
		}
		if base == 0 {
			base = 10
		}
	}
	if base < 2 || base > 36 {
		return 0, false
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), int(base), 64)
	if err != nil || strings.ContainsAny(s, "+-") {
		return 0, false
	}
	if neg {
		i = -i
	}
	return i, true
}

func fItems(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("items", args, kwargs); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case *undefined:
		return &iterVal{kind: "generator"}, nil
	case *dict:
		return &iterVal{items: (&dictView{d: x, kind: "items"}).list(), kind: "generator"}, nil
	}
	return nil, typeErr("Can only get item pairs from a mapping.")
}

// attrGetter is jinja's make_attrgetter: dotted parts, digits as ints.
func attrGetter(attr value, dflt value, hasDefault bool) func(value) (value, error) {
	var parts []value
	if s, ok := strOf(attr); ok {
		for _, p := range strings.Split(s, ".") {
			if p != "" && strings.Trim(p, "0123456789") == "" {
				n, err := strconv.ParseInt(p, 10, 64)
				if err == nil {
					parts = append(parts, n)
					continue
				}
			}
			parts = append(parts, p)
		}
	} else if attr != nil {
		parts = []value{attr}
	}
	return func(item value) (value, error) {
		for _, p := range parts {
			var err error
			if item, err = getitem(item, p); err != nil {
				return nil, err
			}
			if _, isU := item.(*undefined); isU && hasDefault && dflt != nil {
				item = dflt
			}
		}
		return item, nil
	}
}

func fJoin(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("join", args, kwargs, []string{"d", "attribute"}, 0)
	if err != nil {
		return nil, err
	}
	sep := ""
	if p[0] {
		if sep, err = toStr(a[0]); err != nil {
			return nil, err
		}
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if p[1] && a[1] != nil {
		get := attrGetter(a[1], nil, false)
		for i, it := range items {
			if items[i], err = get(it); err != nil {
				return nil, err
			}
		}
	}
	parts := make([]string, len(items))
	for i, it := range items {
		if parts[i], err = toStr(it); err != nil {
			return nil, err
		}
	}
	return strings.Join(parts, sep), nil
}

func fLength(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("length", args, kwargs); err != nil {
		return nil, err
	}
	return pyLen(v)
}

func fList(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("list", args, kwargs); err != nil {
		return nil, err
	}
	if it, ok := v.(*iterVal); ok {
		return newList(it.drain()), nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	return newList(append([]value{}, items...)), nil
}

func fMap(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	var fn func(value) (value, error)
	if len(args) == 0 && hasKw(kwargs, "attribute") {
		var attr, dflt value
		hasDefault := false
		for _, kw := range kwargs {
			switch kw.name {
			case "attribute":
				attr = kw.val
			case "default":
				dflt, hasDefault = kw.val, true
			default:
				return nil, &RenderError{Kind: "FilterArgumentError", Msg: fmt.Sprintf("Unexpected keyword argument %s", pyRepr(kw.name))}
			}
		}
		fn = attrGetter(attr, dflt, hasDefault)
	} else {
		if len(args) == 0 {
			return nil, &RenderError{Kind: "FilterArgumentError", Msg: "map requires a filter argument"}
		}
		name, ok := args[0].(string)
		f := filters[name]
		if !ok || f == nil {
			return nil, &RenderError{Kind: "TemplateRuntimeError", Msg: fmt.Sprintf("No filter named %s.", reprOrStr(args[0]))}
		}
		rest := args[1:]
		fn = func(item value) (value, error) { return f(r, item, rest, kwargs) }
	}
	if !truthy(v) {
		return &iterVal{kind: "generator"}, nil
	}
	items, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	out := make([]value, len(items))
	for i, it := range items {
		if out[i], err = fn(it); err != nil {
			return nil, err
		}
	}
	return &iterVal{items: out, kind: "generator"}, nil
}

func hasKw(kwargs []kwarg, name string) bool {
	for _, k := range kwargs {
		if k.name == name {
			return true
		}
	}
	return false
}

// iterateOnce iterates v, draining it if it is an iterator.
func iterateOnce(v value) ([]value, error) {
	if it, ok := v.(*iterVal); ok {
		return it.drain(), nil
	}
	return iterate(v)
}

func fMinMax(isMax bool) filterFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
		a, p, err := bindArgs("min", args, kwargs, []string{"case_sensitive", "attribute"}, 0)
		if err != nil {
			return nil, err
		}
		items, err := iterateOnce(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return &undefined{hint: "No aggregated item, sequence was empty."}, nil
		}
		var attr value
		if p[1] {
			attr = a[1]
		}
		get := attrGetter(attr, nil, false)
		cs := p[0] && truthy(a[0])
		key := func(it value) (value, error) {
			k, err := get(it)
			if err != nil || cs {
				return k, err
			}
			return ignoreCase(k), nil
		}
		best := items[0]
		bk, err := key(best)
		if err != nil {
			return nil, err
		}
		for _, it := range items[1:] {
			k, err := key(it)
			if err != nil {
				return nil, err
			}
			op := "<"
			if isMax {
				op = ">"
			}
			better, err := pyCompare(op, k, bk)
			if err != nil {
				return nil, err
			}
			if better {
				best, bk = it, k
			}
		}
		return best, nil
	}
}

func fSelect(keep, byAttr bool) filterFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
		if !truthy(v) {
			return &iterVal{kind: "generator"}, nil
		}
		trans := func(x value) (value, error) { return x, nil }
		off := 0
		if byAttr {
			if len(args) == 0 {
				return nil, &RenderError{Kind: "FilterArgumentError", Msg: "Missing parameter for attribute name"}
			}
			trans = attrGetter(args[0], nil, false)
			off = 1
		}
		var test func(value) (bool, error)
		if len(args) > off {
			name, _ := args[off].(string)
			t := tests[name]
			if t == nil {
				return nil, &RenderError{Kind: "TemplateRuntimeError", Msg: fmt.Sprintf("No test named %s.", reprOrStr(args[off]))}
			}
			rest := args[off+1:]
			test = func(x value) (bool, error) { return t(r, x, rest, kwargs) }
		} else {
			test = func(x value) (bool, error) { return truthy(x), nil }
		}
		items, err := iterateOnce(v)
		if err != nil {
			return nil, err
		}
		var out []value
		for _, it := range items {
			x, err := trans(it)
			if err != nil {
				return nil, err
			}
			ok, err := test(x)
			if err != nil {
				return nil, err
			}
			if ok == keep {
				out = append(out, it)
			}
		}
		return &iterVal{items: out, kind: "generator"}, nil
	}
}

func fReplace(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("replace", args, kwargs, []string{"old", "new", "count"}, 2)
	if err != nil {
		return nil, err
	}
	s, err := toStr(v)
	if err != nil {
		return nil, err
	}
	old, err := toStr(a[0])
	if err != nil {
		return nil, err
	}
	nw, err := toStr(a[1])
	if err != nil {
		return nil, err
	}
	n := int64(-1)
	if p[2] && a[2] != nil {
		c, ok := asInt(a[2])
		if !ok {
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[2]))
		}
		n = c
	}
	return pyReplace(s, old, nw, n), nil
}

func fReverse(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("reverse", args, kwargs); err != nil {
		return nil, err
	}
	if s, ok := v.(string); ok {
		return sliceValue(s, nil, nil, ptr(-1))
	}
	var items []value
	kind := ""
	switch x := v.(type) {
	case *list:
		items, kind = x.items, "list_reverseiterator"
		if x.tuple {
			kind = "reversed"
		}
	case *dict:
		items, kind = x.keys, "dict_reversekeyiterator"
	case *dictView:
		items, kind = x.list(), "dict_reverse"+strings.TrimSuffix(x.kind, "s")+"iterator"
	case *rangeVal:
		var err error
		if items, err = iterate(x); err != nil {
			return nil, err
		}
		kind = "range_iterator"
	case markup:
		items, _ = iterate(x)
		kind = "reversed"
	default:
		// reversed() failed: jinja falls back to list(value) reversed.
		its, err := iterateOnce(v)
		if err != nil {
			return nil, &RenderError{Kind: "FilterArgumentError", Msg: "argument must be iterable"}
		}
		out := make([]value, len(its))
		for i, it := range its {
			out[len(its)-1-i] = it
		}
		return newList(out), nil
	}
	out := make([]value, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it
	}
	return &iterVal{items: out, kind: kind}, nil
}

func ptr(i int64) *int64 { return &i }

func fRound(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("round", args, kwargs, []string{"precision", "method"}, 0)
	if err != nil {
		return nil, err
	}
	prec := int64(0)
	if p[0] {
		var ok bool
		if prec, ok = asInt(a[0]); !ok {
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[0]))
		}
	}
	method := "common"
	if p[1] {
		method, _ = a[1].(string)
	}
	if method != "common" && method != "ceil" && method != "floor" {
		return nil, &RenderError{Kind: "FilterArgumentError", Msg: "method must be common, ceil or floor"}
	}
	if u, ok := v.(*undefined); ok {
		return nil, u.err()
	}
	if !isNumber(v) {
		return nil, typeErr("type %s doesn't define __round__ method", typeName(v))
	}
	if i, isInt := asInt(v); isInt && method == "common" {
		if prec >= 0 {
			return i, nil
		}
		return nil, unsupported("round() of an int to negative precision")
	}
	f := toFloat(v)
	switch method {
	case "common":
		if math.IsInf(f, 0) || math.IsNaN(f) || prec > 300 {
			return f, nil
		}
		if prec < 0 {
			return nil, unsupported("round() to negative precision")
		}
		g, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', int(prec), 64), 64)
		return g, nil
	case "ceil":
		m := math.Pow(10, float64(prec))
		return math.Ceil(f*m) / m, nil
	}
	m := math.Pow(10, float64(prec))
	return math.Floor(f*m) / m, nil
}

func fSort(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("sort", args, kwargs, []string{"reverse", "case_sensitive", "attribute"}, 0)
	if err != nil {
		return nil, err
	}
	items, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	items = append([]value{}, items...)
	cs := p[1] && truthy(a[1])
	var getters []func(value) (value, error)
	if p[2] && a[2] != nil {
		if s, ok := a[2].(string); ok {
			for _, part := range strings.Split(s, ",") {
				getters = append(getters, attrGetter(part, nil, false))
			}
		} else {
			getters = append(getters, attrGetter(a[2], nil, false))
		}
	}
	err = sortValues(items, func(it value) (value, error) {
		// make_multi_attrgetter always yields a list of keys.
		var keys []value
		if len(getters) == 0 {
			keys = []value{it}
		}
		for _, g := range getters {
			k, err := g(it)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		for i, k := range keys {
			if !cs {
				keys[i] = ignoreCase(k)
			}
		}
		return newList(keys), nil
	}, p[0] && truthy(a[0]))
	return newList(items), err
}

func fString(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("string", args, kwargs); err != nil {
		return nil, err
	}
	if m, ok := v.(markup); ok {
		return m, nil
	}
	return toStr(v)
}

func fSum(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("sum", args, kwargs, []string{"attribute", "start"}, 0)
	if err != nil {
		return nil, err
	}
	items, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	var total value = int64(0)
	if p[1] {
		total = a[1]
	}
	if _, isStr := strOf(total); isStr {
		return nil, typeErr("sum() can't sum strings [use ''.join(seq) instead]")
	}
	get := func(x value) (value, error) { return x, nil }
	if p[0] && a[0] != nil {
		get = attrGetter(a[0], nil, false)
	}
	for _, it := range items {
		x, err := get(it)
		if err != nil {
			return nil, err
		}
		if total, err = binaryOp("+", total, x); err != nil {
			return nil, err
		}
	}
	return total, nil
}

func fTrim(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("trim", args, kwargs, []string{"chars"}, 0)
	if err != nil {
		return nil, err
	}
	s, err := softStr(v)
	if err != nil {
		return nil, err
	}
	chars, has, err := optStr("strip", a[0], p[0])
	if err != nil {
		return nil, err
	}
	out := pyStrip(s, chars, has, true, true)
	if _, ok := v.(markup); ok {
		return markup(out), nil
	}
	return out, nil
}

func fTruncate(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("truncate", args, kwargs, []string{"length", "killwords", "end", "leeway"}, 0)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(*undefined); ok {
		return v, nil
	}
	length, leeway, end := int64(255), int64(5), "..."
	if p[0] {
		length, _ = asInt(a[0])
	}
	if p[2] {
		end, _ = strOf(a[2])
	}
	if p[3] && a[3] != nil {
		leeway, _ = asInt(a[3])
	}
	if length < int64(utf8.RuneCountInString(end)) || leeway < 0 {
		return nil, &RenderError{Kind: "AssertionError", Msg: "bad truncate arguments"}
	}
	s, isStr := strOf(v)
	if !isStr {
		// Python only needs len() until it has to cut.
		n, err := pyLen(v)
		if err != nil {
			return nil, err
		}
		if n <= length+leeway {
			return v, nil
		}
		return nil, typeErr("truncating a %s is not supported", typeName(v))
	}
	rs := []rune(s)
	if int64(len(rs)) <= length+leeway {
		return v, nil
	}
	cut := string(rs[:length-int64(utf8.RuneCountInString(end))])
	if p[1] && truthy(a[1]) {
		return cut + end, nil
	}
	if i := strings.LastIndex(cut, " "); i >= 0 {
		cut = cut[:i]
	}
	return cut + end, nil
}

func fUnique(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("unique", args, kwargs, []string{"case_sensitive", "attribute"}, 0)
	if err != nil {
		return nil, err
	}
	items, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	var attr value
	if p[1] {
		attr = a[1]
	}
	get := attrGetter(attr, nil, false)
	cs := p[0] && truthy(a[0])
	seen := map[string]bool{}
	var out []value
	for _, it := range items {
		k, err := get(it)
		if err != nil {
			return nil, err
		}
		if !cs {
			k = ignoreCase(k)
		}
		h, err := hashKey(k)
		if err != nil {
			return nil, err
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, it)
		}
	}
	return &iterVal{items: out, kind: "generator"}, nil
}

func fWordcount(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	if err := noFilterArgs("wordcount", args, kwargs); err != nil {
		return nil, err
	}
	s, err := softStr(v)
	if err != nil {
		return nil, err
	}
	n := int64(0)
	in := false
	for _, c := range s {
		w := c == '_' || pyIsAlpha(c) || pyIsNumeric(c)
		if w && !in {
			n++
		}
		in = w
	}
	return n, nil
}

func fToJSON(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("tojson", args, kwargs, []string{"ensure_ascii", "indent", "separators", "sort_keys"}, 0)
	if err != nil {
		return nil, err
	}
	opts := jsonOpts{itemSep: ", ", keySep: ": "}
	if p[0] {
		opts.ascii = truthy(a[0])
	}
	if p[1] && a[1] != nil {
		switch ind := a[1].(type) {
		case string:
			opts.indent, opts.hasIndent = ind, true
		default:
			n, ok := asInt(ind)
			if !ok {
				return nil, typeErr("can't multiply sequence by non-int of type '%s'", typeName(ind))
			}
			opts.indent, opts.hasIndent = strings.Repeat(" ", int(max(n, 0))), true
		}
		opts.itemSep = ","
	}
	if p[2] && a[2] != nil {
		seps, err := iterate(a[2])
		if err != nil || len(seps) != 2 {
			return nil, valueErr("separators must be a pair of strings")
		}
		is, ok1 := strOf(seps[0])
		ks, ok2 := strOf(seps[1])
		if !ok1 || !ok2 {
			return nil, typeErr("separators must be strings")
		}
		opts.itemSep, opts.keySep = is, ks
	}
	opts.sortKeys = p[3] && truthy(a[3])
	var b strings.Builder
	if err := writeJSON(&b, v, opts, 0); err != nil {
		return nil, err
	}
	return b.String(), nil
}

// ---- tests ----

func tType(f func(value) bool) testFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
		if len(args)+len(kwargs) > 0 {
			return false, typeErr("test takes 1 positional argument but %d were given", 1+len(args)+len(kwargs))
		}
		return f(v), nil
	}
}

func testArity(name string, args []value, kwargs []kwarg) error {
	if len(args)+len(kwargs) > 0 {
		return typeErr("test_%s() takes 1 positional argument but %d were given", name, 1+len(args)+len(kwargs))
	}
	return nil
}

func tIterable(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
	if err := testArity("iterable", args, kwargs); err != nil {
		return false, err
	}
	switch v.(type) {
	case string, markup, *list, *dict, *undefined, *rangeVal, *dictView, *iterVal:
		return true, nil
	}
	return false, nil
}

func tSequence(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
	if err := testArity("sequence", args, kwargs); err != nil {
		return false, err
	}
	switch v.(type) {
	case string, markup, *list, *dict, *rangeVal, *undefined: // Undefined has __len__ and __getitem__
		return true, nil
	}
	return false, nil
}

func tCase(method string) testFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
		if err := testArity(strings.TrimPrefix(method, "is"), args, kwargs); err != nil {
			return false, err
		}
		s, err := toStr(v)
		if err != nil {
			return false, err
		}
		b, err := strMethod(s, method, nil, nil)
		return b == true, err
	}
}

func tParity(want int64) testFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
		if err := testArity("odd/even", args, kwargs); err != nil {
			return false, err
		}
		m, err := binaryOp("%", v, int64(2))
		if err != nil {
			return false, err
		}
		return pyEqual(m, want), nil
	}
}

func tDivisibleBy(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
	a, _, err := bindArgs("divisibleby", args, kwargs, []string{"num"}, 1)
	if err != nil {
		return false, err
	}
	m, err := binaryOp("%", v, a[0])
	if err != nil {
		return false, err
	}
	return pyEqual(m, int64(0)), nil
}

func tSameAs(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
	a, _, err := bindArgs("sameas", args, kwargs, []string{"other"}, 1)
	if err != nil {
		return false, err
	}
	o := a[0]
	switch x := v.(type) {
	case nil:
		return o == nil, nil
	case bool:
		y, ok := o.(bool)
		return ok && x == y, nil
	case int64:
		// CPython caches small ints; others are distinct objects.
		y, ok := o.(int64)
		return ok && x == y && x >= -5 && x <= 256, nil
	case *list, *dict, *namespace, *iterVal:
		return v == o, nil
	case *undefined:
		return v == o, nil
	}
	return false, unsupported("'sameas' on %s values (depends on Python object identity)", typeName(v))
}

func tIn(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
	a, _, err := bindArgs("in", args, kwargs, []string{"seq"}, 1)
	if err != nil {
		return false, err
	}
	return pyIn(v, a[0])
}

func tNameIn(f func(string) bool) testFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
		if err := testArity("filter/test", args, kwargs); err != nil {
			return false, err
		}
		s, ok := v.(string)
		return ok && f(s), nil
	}
}

func tCompare(op string) testFunc {
	return func(r *renderer, v value, args []value, kwargs []kwarg) (bool, error) {
		a, _, err := bindArgs(op, args, kwargs, []string{"other"}, 1)
		if err != nil {
			return false, err
		}
		return compareOp(op, v, a[0])
	}
}

// ---- globals ----

func globals() map[string]value {
	return map[string]value{
		"range":           &builtinFunc{name: "range", fn: gRange},
		"dict":            &builtinFunc{name: "dict", fn: gDict},
		"namespace":       &builtinFunc{name: "namespace", fn: gNamespace},
		"raise_exception": &builtinFunc{name: "raise_exception", fn: gRaise},
		"strftime_now":    &builtinFunc{name: "strftime_now", fn: gStrftimeNow},
		"joiner":          &builtinFunc{name: "joiner", fn: gJoiner},
		"cycler":          &builtinFunc{name: "cycler", fn: gUnsupported("cycler")},
		"lipsum":          &builtinFunc{name: "lipsum", fn: gUnsupported("lipsum")},
	}
}

func gUnsupported(name string) func(*renderer, []value, []kwarg) (value, error) {
	return func(*renderer, []value, []kwarg) (value, error) {
		return nil, unsupported("the global %s()", name)
	}
}

func gRange(r *renderer, args []value, kwargs []kwarg) (value, error) {
	if len(kwargs) > 0 {
		return nil, typeErr("range() takes no keyword arguments")
	}
	var n [3]int64
	for i, a := range args {
		if i >= 3 {
			return nil, typeErr("range expected at most 3 arguments, got %d", len(args))
		}
		v, ok := asInt(a)
		if !ok {
			if u, isU := a.(*undefined); isU {
				return nil, u.err()
			}
			return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a))
		}
		n[i] = v
	}
	var rv *rangeVal
	switch len(args) {
	case 0:
		return nil, typeErr("range expected at least 1 argument, got 0")
	case 1:
		rv = &rangeVal{start: 0, stop: n[0], step: 1}
	case 2:
		rv = &rangeVal{start: n[0], stop: n[1], step: 1}
	default:
		if n[2] == 0 {
			return nil, valueErr("range() arg 3 must not be zero")
		}
		rv = &rangeVal{start: n[0], stop: n[1], step: n[2]}
	}
	if rv.len() > maxRange {
		return nil, &RenderError{Kind: "OverflowError", Msg: fmt.Sprintf("Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", maxRange)}
	}
	return rv, nil
}

func dictFromArgs(fname string, args []value, kwargs []kwarg) (*dict, error) {
	d := newDict()
	if len(args) > 1 {
		return nil, typeErr("%s expected at most 1 argument, got %d", fname, len(args))
	}
	if len(args) == 1 {
		switch src := args[0].(type) {
		case *dict:
			for i, k := range src.keys {
				d.set(k, src.vals[i])
			}
		default:
			items, err := iterateOnce(src)
			if err != nil {
				return nil, err
			}
			for i, it := range items {
				pair, err := iterate(it)
				if err != nil || len(pair) != 2 {
					return nil, valueErr("dictionary update sequence element #%d has length %d; 2 is required", i, len(pair))
				}
				if err := d.set(pair[0], pair[1]); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, kw := range kwargs {
		d.setStr(kw.name, kw.val)
	}
	return d, nil
}

func gDict(r *renderer, args []value, kwargs []kwarg) (value, error) {
	return dictFromArgs("dict", args, kwargs)
}

func gNamespace(r *renderer, args []value, kwargs []kwarg) (value, error) {
	d, err := dictFromArgs("namespace", args, kwargs)
	if err != nil {
		return nil, err
	}
	for _, k := range d.keys {
		if _, ok := k.(string); !ok {
			return nil, typeErr("keywords must be strings")
		}
	}
	return &namespace{attrs: d}, nil
}

func gRaise(r *renderer, args []value, kwargs []kwarg) (value, error) {
	if len(args) != 1 || len(kwargs) > 0 {
		return nil, typeErr("raise_exception() takes 1 positional argument but %d were given", len(args)+len(kwargs))
	}
	msg, err := toStr(args[0])
	if err != nil {
		return nil, err
	}
	return nil, &TemplateException{Message: msg}
}

func gStrftimeNow(r *renderer, args []value, kwargs []kwarg) (value, error) {
	if len(args) != 1 || len(kwargs) > 0 {
		return nil, typeErr("strftime_now() takes 1 positional argument but %d were given", len(args)+len(kwargs))
	}
	f, ok := strOf(args[0])
	if !ok {
		return nil, typeErr("strftime() argument 1 must be str, not %s", typeName(args[0]))
	}
	return strftime(r.now, f)
}

func gJoiner(r *renderer, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("joiner", args, kwargs, []string{"sep"}, 0)
	if err != nil {
		return nil, err
	}
	sep := value(", ")
	if p[0] {
		sep = a[0]
	}
	used := false
	return &builtinFunc{name: "joiner", fn: func(*renderer, []value, []kwarg) (value, error) {
		if !used {
			used = true
			return "", nil
		}
		return sep, nil
	}}, nil
}

func fBatch(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("batch", args, kwargs, []string{"linecount", "fill_with"}, 1)
	if err != nil {
		return nil, err
	}
	n, ok := asInt(a[0])
	if !ok {
		return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[0]))
	}
	items, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	var out []value
	var cur []value
	for _, it := range items {
		if int64(len(cur)) == n {
			out = append(out, newList(cur))
			cur = nil
		}
		cur = append(cur, it)
	}
	if len(cur) > 0 {
		if p[1] && a[1] != nil {
			for int64(len(cur)) < n {
				cur = append(cur, a[1])
			}
		}
		out = append(out, newList(cur))
	}
	return &iterVal{items: out, kind: "generator"}, nil
}

func fSlice(r *renderer, v value, args []value, kwargs []kwarg) (value, error) {
	a, p, err := bindArgs("slice", args, kwargs, []string{"slices", "fill_with"}, 1)
	if err != nil {
		return nil, err
	}
	slices, ok := asInt(a[0])
	if !ok {
		return nil, typeErr("'%s' object cannot be interpreted as an integer", typeName(a[0]))
	}
	seq, err := iterateOnce(v)
	if err != nil {
		return nil, err
	}
	if slices > maxRange {
		return nil, unsupported("slice into more than %d parts", maxRange)
	}
	length := int64(len(seq))
	var per, extra int64
	if slices > 0 {
		per, extra = length/slices, length%slices
	}
	offset := int64(0)
	var out []value
	for k := int64(0); k < slices; k++ {
		start := offset + k*per
		if k < extra {
			offset++
		}
		end := offset + (k+1)*per
		tmp := append([]value{}, seq[min(start, length):min(end, length)]...)
		if p[1] && a[1] != nil && k >= extra {
			tmp = append(tmp, a[1])
		}
		out = append(out, newList(tmp))
	}
	return &iterVal{items: out, kind: "generator"}, nil
}
