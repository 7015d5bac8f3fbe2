package chat

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values inside the engine model Python's:
//
//	nil            None
//	bool           bool
//	int64          int (64-bit; overflow is an error, not a big int)
//	float64        float
//	string         str
//	markup         jinja2's Markup (from |safe, |e)
//	*list          list, or tuple when tuple is set
//	*dict          dict, insertion ordered
//	*undefined     jinja2.Undefined
//	*namespace     jinja2's namespace()
//	*rangeVal      range
//	*dictView      dict_items, dict_keys, dict_values
//	*loopCtx       the loop variable
//	callable       macros, globals, bound methods
type value = any

type markup string

type list struct {
	items []value
	tuple bool
}

func newList(items []value) *list   { return &list{items: items} }
func newTuple(items ...value) *list { return &list{items: items, tuple: true} }

type dict struct {
	keys  []value
	vals  []value
	index map[string]int
}

func newDict() *dict { return &dict{index: map[string]int{}} }

// hashKey gives Python's dict-key identity: 1, 1.0 and True are one key.
func hashKey(k value) (string, error) {
	switch k := k.(type) {
	case nil:
		return "n", nil
	case bool:
		if k {
			return "i1", nil
		}
		return "i0", nil
	case int64:
		return "i" + strconv.FormatInt(k, 10), nil
	case float64:
		if k == math.Trunc(k) && math.Abs(k) < 1<<63 {
			return "i" + strconv.FormatInt(int64(k), 10), nil
		}
		return "f" + strconv.FormatFloat(k, 'g', -1, 64), nil
	case string:
		return "s" + k, nil
	case markup:
		return "s" + string(k), nil
	case *list:
		if !k.tuple {
			return "", typeErr("unhashable type: 'list'")
		}
		var b strings.Builder
		b.WriteString("t(")
		for _, it := range k.items {
			h, err := hashKey(it)
			if err != nil {
				return "", err
			}
			b.WriteString(strconv.Itoa(len(h)))
			b.WriteByte(':')
			b.WriteString(h)
		}
		b.WriteByte(')')
		return b.String(), nil
	case *undefined:
		return "u", nil
	}
	return "", typeErr("unhashable type: '%s'", typeName(k))
}

func (d *dict) set(k, v value) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func (d *dict) setStr(k string, v value) { d.set(k, v) }

func (d *dict) get(k value) (value, bool, error) {
	h, err := hashKey(k)
	if err != nil {
		return nil, false, err
	}
	i, ok := d.index[h]
	if !ok {
		return nil, false, nil
	}
	return d.vals[i], true, nil
}

func (d *dict) getStr(k string) (value, bool) {
	i, ok := d.index["s"+k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

func (d *dict) len() int { return len(d.keys) }

type undefined struct {
	name   value // the variable, attribute or key that was missing
	obj    value // the object it was looked up on
	hasObj bool
	hint   string
	unsafe bool // a sandbox-blocked attribute: using it is a SecurityError
}

func (u *undefined) message() string {
	if u.hint != "" {
		return u.hint
	}
	if !u.hasObj {
		return fmt.Sprintf("%s is undefined", reprOrStr(u.name))
	}
	if _, ok := u.name.(string); !ok {
		return fmt.Sprintf("%s has no element %s", objectTypeRepr(u.obj), reprOrStr(u.name))
	}
	return fmt.Sprintf("%s has no attribute %s", pyRepr(objectTypeRepr(u.obj)), reprOrStr(u.name))
}

func (u *undefined) err() error {
	if u.unsafe {
		return &RenderError{Kind: "SecurityError", Msg: u.message()}
	}
	return &RenderError{Kind: "UndefinedError", Msg: u.message()}
}

func reprOrStr(v value) string {
	s, err := repr(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return s
}

func objectTypeRepr(v value) string {
	if v == nil {
		return "None"
	}
	return typeName(v) + " object"
}

type namespace struct{ attrs *dict }

type rangeVal struct{ start, stop, step int64 }

func (r *rangeVal) len() int64 {
	if r.step > 0 && r.start < r.stop {
		return (r.stop - r.start + r.step - 1) / r.step
	}
	if r.step < 0 && r.start > r.stop {
		return (r.start - r.stop - r.step - 1) / (-r.step)
	}
	return 0
}

type dictView struct {
	d    *dict
	kind string // "items", "keys", "values"
}

func (v *dictView) list() []value {
	out := make([]value, len(v.d.keys))
	for i := range v.d.keys {
		switch v.kind {
		case "items":
			out[i] = newTuple(v.d.keys[i], v.d.vals[i])
		case "keys":
			out[i] = v.d.keys[i]
		default:
			out[i] = v.d.vals[i]
		}
	}
	return out
}

// callable is anything a template may call.
type callable interface {
	call(r *renderer, args []value, kwargs []kwarg) (value, error)
}

type kwarg struct {
	name string
	val  value
}

type builtinFunc struct {
	name string
	fn   func(r *renderer, args []value, kwargs []kwarg) (value, error)
}

func (b *builtinFunc) call(r *renderer, args []value, kwargs []kwarg) (value, error) {
	return b.fn(r, args, kwargs)
}

// RenderError is a failure while rendering: Kind names the Python exception
// that Jinja2 would raise (TypeError, UndefinedError, ...).
type RenderError struct {
	Kind string
	Msg  string
	Line int
}

func (e *RenderError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Kind, e.Msg, e.Line)
	}
	return e.Kind + ": " + e.Msg
}

// TemplateException is the error raised by the template itself through
// raise_exception(message).
type TemplateException struct {
	Message string
}

func (e *TemplateException) Error() string { return "chat template raised: " + e.Message }

func typeErr(format string, args ...any) error {
	return &RenderError{Kind: "TypeError", Msg: fmt.Sprintf(format, args...)}
}

func valueErr(format string, args ...any) error {
	return &RenderError{Kind: "ValueError", Msg: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) error {
	return &RenderError{Kind: "Unsupported", Msg: fmt.Sprintf(format, args...)}
}

// typeName is Python's type(v).__name__.
func typeName(v value) string {
	switch v := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case markup:
		return "Markup"
	case *list:
		if v.tuple {
			return "tuple"
		}
		return "list"
	case *dict:
		return "dict"
	case *undefined:
		return "Undefined"
	case *namespace:
		return "Namespace"
	case *rangeVal:
		return "range"
	case *dictView:
		return "dict_" + v.kind
	case *loopCtx:
		return "LoopContext"
	case *macro:
		return "Macro"
	case *boundMethod:
		return "builtin_function_or_method"
	case *iterVal:
		return v.kind
	case callable:
		return "function"
	}
	return fmt.Sprintf("%T", v)
}

func truthy(v value) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case markup:
		return v != ""
	case *list:
		return len(v.items) > 0
	case *dict:
		return v.len() > 0
	case *undefined:
		return false
	case *rangeVal:
		return v.len() > 0
	case *dictView:
		return v.d.len() > 0
	}
	return true
}

// ---- str() and repr() ----

// toStr is Python's str(v) as Jinja prints it (Undefined prints as "").
func toStr(v value) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case markup:
		return string(v), nil
	case *undefined:
		return "", nil
	case nil, bool, int64, float64, *list, *dict, *namespace, *rangeVal, *dictView, *loopCtx, *macro:
		return repr(v)
	}
	return "", unsupported("printing a %s is not supported (Python prints its address)", typeName(v))
}

func repr(v value) (string, error) {
	var b strings.Builder
	err := writeRepr(&b, v)
	return b.String(), err
}

func writeRepr(b *strings.Builder, v value) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		b.WriteString(pyFloat(v))
	case string:
		b.WriteString(pyRepr(v))
	case markup:
		b.WriteString("Markup(" + pyRepr(string(v)) + ")")
	case *undefined:
		b.WriteString("Undefined")
	case *list:
		open, close := "[", "]"
		if v.tuple {
			open, close = "(", ")"
		}
		b.WriteString(open)
		for i, it := range v.items {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := writeRepr(b, it); err != nil {
				return err
			}
		}
		if v.tuple && len(v.items) == 1 {
			b.WriteByte(',')
		}
		b.WriteString(close)
	case *dict:
		b.WriteByte('{')
		for i := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := writeRepr(b, v.keys[i]); err != nil {
				return err
			}
			b.WriteString(": ")
			if err := writeRepr(b, v.vals[i]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case *namespace:
		b.WriteString("<Namespace ")
		if err := writeRepr(b, v.attrs); err != nil {
			return err
		}
		b.WriteByte('>')
	case *rangeVal:
		if v.step == 1 {
			fmt.Fprintf(b, "range(%d, %d)", v.start, v.stop)
		} else {
			fmt.Fprintf(b, "range(%d, %d, %d)", v.start, v.stop, v.step)
		}
	case *dictView:
		b.WriteString("dict_" + v.kind + "(")
		if err := writeRepr(b, newList(v.list())); err != nil {
			return err
		}
		b.WriteByte(')')
	case *loopCtx:
		fmt.Fprintf(b, "<LoopContext %d/%d>", v.idx+1, len(v.items))
	case *macro:
		b.WriteString("<Macro " + pyRepr(v.node.name) + ">")
	default:
		return unsupported("printing a %s is not supported (Python prints its address)", typeName(v))
	}
	return nil
}

// pyFloat is Python's repr(float).
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyRepr is Python's repr(str).
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case !isPrintable(r):
			switch {
			case r < 0x100:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r < 0x10000:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// isPrintable is Python's str.isprintable for one code point: not in the
// categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (except the space).
func isPrintable(r rune) bool {
	if r == ' ' {
		return true
	}
	if r == utf8.RuneError {
		return true
	}
	return unicode.IsPrint(r)
}

// ---- equality and ordering ----

func isNumber(v value) bool {
	switch v.(type) {
	case bool, int64, float64:
		return true
	}
	return false
}

func toFloat(v value) float64 {
	switch v := v.(type) {
	case bool:
		if v {
			return 1
		}
		return 0
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

// asInt returns v as an int if it is a bool or an int.
func asInt(v value) (int64, bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case int64:
		return v, true
	}
	return 0, false
}

func strOf(v value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case markup:
		return string(v), true
	}
	return "", false
}

func pyEqual(a, b value) bool {
	if ua, ok := a.(*undefined); ok {
		_, ok2 := b.(*undefined)
		_ = ua
		return ok2
	}
	if _, ok := b.(*undefined); ok {
		return false
	}
	if isNumber(a) && isNumber(b) {
		ia, oka := asInt(a)
		ib, okb := asInt(b)
		if oka && okb {
			return ia == ib
		}
		return toFloat(a) == toFloat(b)
	}
	if sa, ok := strOf(a); ok {
		sb, ok := strOf(b)
		return ok && sa == sb
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case *list:
		bl, ok := b.(*list)
		if !ok || bl.tuple != a.tuple || len(bl.items) != len(a.items) {
			return false
		}
		for i := range a.items {
			if !pyEqual(a.items[i], bl.items[i]) {
				return false
			}
		}
		return true
	case *dict:
		bd, ok := b.(*dict)
		if !ok || bd.len() != a.len() {
			return false
		}
		for i, k := range a.keys {
			v, found, err := bd.get(k)
			if err != nil || !found || !pyEqual(a.vals[i], v) {
				return false
			}
		}
		return true
	case *rangeVal:
		br, ok := b.(*rangeVal)
		if !ok {
			return false
		}
		la, lb := a.len(), br.len()
		if la != lb {
			return false
		}
		return la == 0 || a.start == br.start && (la == 1 || a.step == br.step)
	}
	return a == b
}

// pyLess compares with Python's < (TypeError across unrelated types).
func pyCompare(op string, a, b value) (bool, error) {
	if u, ok := a.(*undefined); ok {
		return false, u.err()
	}
	if u, ok := b.(*undefined); ok {
		return false, u.err()
	}
	c, err := pyCmp(a, b, op)
	if err != nil {
		return false, err
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// pyCmp orders a and b (-1, 0, 1) the way Python's rich comparisons do for
// numbers, strings, lists and tuples. NaN compares as unordered (all false),
// which callers only see through pyCompare.
func pyCmp(a, b value, op string) (int, error) {
	if isNumber(a) && isNumber(b) {
		ia, oka := asInt(a)
		ib, okb := asInt(b)
		if oka && okb {
			return cmp3(ia < ib, ia > ib), nil
		}
		fa, fb := toFloat(a), toFloat(b)
		if math.IsNaN(fa) || math.IsNaN(fb) {
			if op == "<" || op == ">" {
				return 0, nil // caller's < / > on 0 is false
			}
			return -2, nil // <= false, >= false
		}
		return cmp3(fa < fb, fa > fb), nil
	}
	if sa, ok := strOf(a); ok {
		if sb, ok := strOf(b); ok {
			return strings.Compare(sa, sb), nil
		}
	}
	if la, ok := a.(*list); ok {
		if lb, ok := b.(*list); ok && la.tuple == lb.tuple {
			for i := 0; i < len(la.items) && i < len(lb.items); i++ {
				if pyEqual(la.items[i], lb.items[i]) {
					continue
				}
				return pyCmp(la.items[i], lb.items[i], op)
			}
			return cmp3(len(la.items) < len(lb.items), len(la.items) > len(lb.items)), nil
		}
	}
	return 0, typeErr("'%s' not supported between instances of '%s' and '%s'", op, typeName(a), typeName(b))
}

func cmp3(less, more bool) int {
	if less {
		return -1
	}
	if more {
		return 1
	}
	return 0
}

// ---- iteration ----

// iterate lists the items a for loop (or list()) would see.
func iterate(v value) ([]value, error) {
	switch v := v.(type) {
	case *list:
		return v.items, nil
	case *dict:
		return append([]value(nil), v.keys...), nil
	case string:
		return strChars(v), nil
	case markup:
		return strChars(string(v)), nil // iterating a Markup gives plain strs
	case *undefined:
		if v.unsafe {
			return nil, v.err()
		}
		return nil, nil
	case *rangeVal:
		n := v.len()
		if n > maxRange {
			return nil, &RenderError{Kind: "OverflowError", Msg: fmt.Sprintf("Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", maxRange)}
		}
		out := make([]value, n)
		for i := int64(0); i < n; i++ {
			out[i] = v.start + i*v.step
		}
		return out, nil
	case *dictView:
		return v.list(), nil
	case *iterVal:
		return v.drain(), nil
	case *namespace:
		return nil, typeErr("'Namespace' object is not iterable")
	}
	return nil, typeErr("'%s' object is not iterable", typeName(v))
}

const maxRange = 100000 // jinja2.sandbox.MAX_RANGE

func strChars(s string) []value {
	out := make([]value, 0, len(s))
	for _, r := range s {
		out = append(out, string(r))
	}
	return out
}

// pyLen is Python's len().
func pyLen(v value) (int64, error) {
	switch v := v.(type) {
	case string:
		return int64(utf8.RuneCountInString(v)), nil
	case markup:
		return int64(utf8.RuneCountInString(string(v))), nil
	case *list:
		return int64(len(v.items)), nil
	case *dict:
		return int64(v.len()), nil
	case *undefined:
		return 0, nil
	case *rangeVal:
		return v.len(), nil
	case *dictView:
		return int64(v.d.len()), nil
	case *loopCtx:
		return int64(len(v.items)), nil
	}
	return 0, typeErr("object of type '%s' has no len()", typeName(v))
}

// sortValues sorts in place with Python's sorted() semantics (stable; a
// TypeError for unorderable items).
func sortValues(items []value, key func(value) (value, error), reverse bool) error {
	keys := make([]value, len(items))
	for i, it := range items {
		k, err := key(it)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var err error
	sort.SliceStable(idx, func(i, j int) bool {
		a, b := keys[idx[i]], keys[idx[j]]
		if reverse {
			a, b = b, a
		}
		c, e := pyCmp(a, b, "<")
		if e != nil && err == nil {
			err = e
		}
		return c < 0
	})
	if err != nil {
		return err
	}
	out := make([]value, len(items))
	for i, j := range idx {
		out[i] = items[j]
	}
	copy(items, out)
	return nil
}
