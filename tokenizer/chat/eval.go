package chat

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits that keep a hostile template from exhausting the machine. Real chat
// templates are nowhere near them; Python has none of the first three (it
// would just run out of time or memory).
const (
	maxOutput     = 64 << 20   // bytes in any one string the engine builds
	maxSteps      = 10_000_000 // loop iterations and macro calls per render
	maxCallDepth  = 200        // nested macro calls (Python's RecursionError)
	maxCollection = 1 << 22    // items in a list built by * or +
	maxWork       = 1 << 30    // bytes and items built in one render
)

type scope struct {
	vars   map[string]value
	parent *scope
}

func newScope(parent *scope) *scope { return &scope{vars: map[string]value{}, parent: parent} }

func (s *scope) lookup(name string) (value, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

type renderer struct {
	top    strings.Builder
	w      *strings.Builder
	bounds []int // offsets in top where one write ended (write boundaries)
	now    time.Time
	steps  int
	depth  int

	// Attribution of output to messages, for RenderSpans: while a for loop
	// is on an item that is one of the conversation's message dicts, cur is
	// that message's index, and iterEnd[cur] records where the last write
	// to the output ended.
	msgIdx  map[*dict]int
	cur     int
	iterEnd []int

	folding   bool  // slices use the sandbox's getitem (constant folding)
	constEval bool  // names and calls are not constant (constant folding)
	stepLimit int   // maxSteps unless a test lowers it
	work      int64 // bytes and items of the strings and lists built so far
	workLimit int64 // maxWork unless a test lowers it
}

// charge counts the size of a value an expression just built against the
// render's work budget, so that a template cannot loop over huge strings or
// lists for ever.
func (r *renderer) charge(v value) error {
	var n int
	switch v := v.(type) {
	case string:
		n = len(v)
	case markup:
		n = len(v)
	case *list:
		n = len(v.items)
	case *iterVal:
		n = len(v.items)
	default:
		return nil
	}
	r.work += int64(n)
	limit := r.workLimit
	if limit == 0 {
		limit = maxWork
	}
	if r.work > limit {
		return &RenderError{Kind: "LimitError", Msg: fmt.Sprintf("the template built more than %d bytes and items", limit)}
	}
	return nil
}

var (
	errNotConst = errors.New("not constant")
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

func (r *renderer) write(s string) error {
	if s == "" {
		return nil
	}
	if r.w.Len()+len(s) > maxOutput {
		return &RenderError{Kind: "MemoryError", Msg: fmt.Sprintf("output over %d bytes", maxOutput)}
	}
	if err := r.charge(s); err != nil {
		return err
	}
	r.w.WriteString(s)
	if r.w == &r.top {
		r.bounds = append(r.bounds, r.top.Len())
		if r.cur >= 0 && r.iterEnd != nil {
			r.iterEnd[r.cur] = r.top.Len()
		}
	}
	return nil
}

// capture runs f with output going to a fresh buffer and returns it.
func (r *renderer) capture(f func() error) (string, error) {
	saved := r.w
	var b strings.Builder
	r.w = &b
	err := f()
	r.w = saved
	return b.String(), err
}

func (r *renderer) step() error {
	r.steps++
	limit := r.stepLimit
	if limit == 0 {
		limit = maxSteps
	}
	if r.steps > limit {
		return &RenderError{Kind: "LimitError", Msg: fmt.Sprintf("more than %d loop iterations and macro calls", limit)}
	}
	return nil
}

func withLine(err error, line int) error {
	var re *RenderError
	if errors.As(err, &re) && re.Line == 0 && line > 0 {
		re.Line = line
	}
	return err
}

func (r *renderer) execBody(body []node, s *scope) error {
	for _, n := range body {
		if err := r.exec(n, s); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) exec(n node, s *scope) error {
	switch n := n.(type) {
	case *textNode:
		return r.write(n.text)
	case *outputNode:
		if n.isConst {
			return r.write(n.constText)
		}
		v, err := r.eval(n.expr, s)
		if err != nil {
			return withLine(err, n.line)
		}
		str, err := toStr(v)
		if err != nil {
			return withLine(err, n.line)
		}
		return r.write(str)
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, s)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.execBody(n.bodies[i], s)
			}
		}
		return r.execBody(n.els, s)
	case *forNode:
		return withLine(r.execFor(n, s), n.line)
	case *setNode:
		v, err := r.eval(n.value, s)
		if err != nil {
			return withLine(err, n.line)
		}
		return withLine(r.assign(n.target, v, s), n.line)
	case *setBlockNode:
		out, err := r.capture(func() error { return r.execBody(n.body, newScope(s)) })
		if err != nil {
			return err
		}
		var v value = out
		for _, f := range n.filters {
			if v, err = r.applyFilter(f, v, s); err != nil {
				return withLine(err, n.line)
			}
		}
		return withLine(r.assign(n.target, v, s), n.line)
	case *filterBlockNode:
		out, err := r.capture(func() error { return r.execBody(n.body, newScope(s)) })
		if err != nil {
			return err
		}
		var v value = out
		for _, f := range n.filters {
			if v, err = r.applyFilter(f, v, s); err != nil {
				return withLine(err, f.line)
			}
		}
		str, err := toStr(v)
		if err != nil {
			return err
		}
		return r.write(str)
	case *macroNode:
		s.vars[n.name] = &macro{node: n, scope: s}
		return nil
	case *withNode:
		ws := newScope(s)
		for i, t := range n.targets {
			v, err := r.eval(n.values[i], s)
			if err != nil {
				return err
			}
			if err := r.assign(t, v, ws); err != nil {
				return err
			}
		}
		return r.execBody(n.body, ws)
	case *generationNode:
		return r.execBody(n.body, s)
	case *breakNode:
		return errBreak
	case *continueNode:
		return errContinue
	}
	return unsupported("internal: unknown node %T", n)
}

func (r *renderer) assign(target expr, v value, s *scope) error {
	switch t := target.(type) {
	case *nameExpr:
		s.vars[t.name] = v
		return nil
	case *nsRefExpr:
		obj, ok := s.lookup(t.name)
		ns, isNS := obj.(*namespace)
		if !ok || !isNS {
			return &RenderError{Kind: "TemplateRuntimeError", Msg: "cannot assign attribute on non-namespace object"}
		}
		ns.attrs.setStr(t.attr, v)
		return nil
	case *tupleExpr:
		items, err := iterate(v)
		if err != nil {
			if _, ok := v.(*undefined); !ok {
				return typeErr("cannot unpack non-iterable %s object", typeName(v))
			}
			return err
		}
		if len(items) < len(t.items) {
			return valueErr("not enough values to unpack (expected %d, got %d)", len(t.items), len(items))
		}
		if len(items) > len(t.items) {
			return valueErr("too many values to unpack (expected %d)", len(t.items))
		}
		for i, sub := range t.items {
			if err := r.assign(sub, items[i], s); err != nil {
				return err
			}
		}
		return nil
	}
	return unsupported("cannot assign to %T", target)
}

type loopCtx struct {
	items       []value
	idx         int
	lastChanged []value
	hasChanged  bool
}

func (r *renderer) execFor(n *forNode, s *scope) error {
	it, err := r.eval(n.iter, s)
	if err != nil {
		return err
	}
	items, err := iterate(it)
	if err != nil {
		return err
	}
	if n.filter != nil {
		var kept []value
		for _, item := range items {
			fs := newScope(s)
			if err := r.assign(n.target, item, fs); err != nil {
				return err
			}
			ok, err := r.eval(n.filter, fs)
			if err != nil {
				return err
			}
			if truthy(ok) {
				kept = append(kept, item)
			}
		}
		items = kept
	}
	ctx := &loopCtx{items: items}
	// Jinja clears its "no iteration" flag at the end of the loop body, so
	// the else block also runs when every iteration ended in break or
	// continue.
	completed := false
	for i, item := range items {
		if err := r.step(); err != nil {
			return err
		}
		ctx.idx = i
		is := newScope(s)
		is.vars["loop"] = ctx
		if err := r.assign(n.target, item, is); err != nil {
			return err
		}
		saved := r.cur
		if d, ok := item.(*dict); ok && r.msgIdx != nil {
			if k, ok := r.msgIdx[d]; ok {
				r.cur = k
			}
		}
		err := r.execBody(n.body, is)
		r.cur = saved
		if err == errBreak {
			break
		}
		if err != nil && err != errContinue {
			return err
		}
		if err == nil {
			completed = true
		}
	}
	if !completed {
		return r.execBody(n.els, s)
	}
	return nil
}

func (l *loopCtx) attr(name string) (value, bool) {
	n := len(l.items)
	switch name {
	case "index":
		return int64(l.idx + 1), true
	case "index0":
		return int64(l.idx), true
	case "revindex":
		return int64(n - l.idx), true
	case "revindex0":
		return int64(n - l.idx - 1), true
	case "first":
		return l.idx == 0, true
	case "last":
		return l.idx == n-1, true
	case "length":
		return int64(n), true
	case "depth":
		return int64(1), true
	case "depth0":
		return int64(0), true
	case "previtem":
		if l.idx == 0 {
			return &undefined{hint: "there is no previous item", name: "previtem"}, true
		}
		return l.items[l.idx-1], true
	case "nextitem":
		if l.idx >= n-1 {
			return &undefined{hint: "there is no next item", name: "nextitem"}, true
		}
		return l.items[l.idx+1], true
	case "cycle":
		return &builtinFunc{name: "cycle", fn: func(r *renderer, args []value, kw []kwarg) (value, error) {
			if len(kw) > 0 {
				return nil, typeErr("cycle() got an unexpected keyword argument '%s'", kw[0].name)
			}
			if len(args) == 0 {
				return nil, typeErr("no items for cycling given")
			}
			return args[l.idx%len(args)], nil
		}}, true
	case "changed":
		return &builtinFunc{name: "changed", fn: func(r *renderer, args []value, kw []kwarg) (value, error) {
			if len(kw) > 0 {
				return nil, typeErr("changed() got an unexpected keyword argument '%s'", kw[0].name)
			}
			if l.hasChanged && pyEqual(newList(args), newList(l.lastChanged)) {
				return false, nil
			}
			l.hasChanged = true
			l.lastChanged = args
			return true, nil
		}}, true
	}
	return nil, false
}

// ---- macros ----

type macro struct {
	node  *macroNode
	scope *scope
}

func (m *macro) call(r *renderer, args []value, kwargs []kwarg) (value, error) {
	n := m.node
	if err := r.step(); err != nil {
		return nil, err
	}
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxCallDepth {
		return nil, &RenderError{Kind: "RecursionError", Msg: "maximum recursion depth exceeded"}
	}
	s := newScope(m.scope)
	used := map[string]bool{}
	nd := len(n.params) - len(n.defaults)
	var pendingDefaults []int
	for i, p := range n.params {
		switch {
		case i < len(args):
			s.vars[p] = args[i]
		default:
			found := false
			for _, kw := range kwargs {
				if kw.name == p {
					s.vars[p] = kw.val
					used[p] = true
					found = true
				}
			}
			if !found {
				if i >= nd {
					pendingDefaults = append(pendingDefaults, i)
				} else {
					s.vars[p] = &undefined{name: p, hint: fmt.Sprintf("parameter %s was not provided", pyRepr(p))}
				}
			}
		}
	}
	for _, i := range pendingDefaults {
		v, err := r.eval(n.defaults[i-nd], s)
		if err != nil {
			return nil, err
		}
		s.vars[n.params[i]] = v
	}
	if len(args) > len(n.params) {
		if !n.varargs {
			return nil, typeErr("macro %s takes not more than %d argument(s)", pyRepr(n.name), len(n.params))
		}
	}
	if n.varargs {
		var extra []value
		if len(args) > len(n.params) {
			extra = args[len(n.params):]
		}
		s.vars["varargs"] = newTuple(extra...)
	}
	extraKw := newDict()
	for _, kw := range kwargs {
		isParam := false
		for i, p := range n.params {
			if p == kw.name {
				isParam = true
				if i < len(args) {
					return nil, typeErr("macro %s got multiple values for argument %s", pyRepr(n.name), pyRepr(p))
				}
			}
		}
		if isParam {
			continue
		}
		if !n.kwargs {
			return nil, typeErr("macro %s takes no keyword argument %s", pyRepr(n.name), pyRepr(kw.name))
		}
		extraKw.setStr(kw.name, kw.val)
	}
	if n.kwargs {
		s.vars["kwargs"] = extraKw
	}
	out, err := r.capture(func() error { return r.execBody(n.body, s) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ---- expressions ----

func (r *renderer) eval(e expr, s *scope) (value, error) {
	switch e := e.(type) {
	case *constExpr:
		return e.val, nil
	case *nameExpr:
		if r.constEval {
			return nil, errNotConst
		}
		if v, ok := s.lookup(e.name); ok {
			return v, nil
		}
		return &undefined{name: e.name}, nil
	case *listExpr:
		items := make([]value, len(e.items))
		for i, x := range e.items {
			v, err := r.eval(x, s)
			if err != nil {
				return nil, err
			}
			items[i] = v
		}
		return newList(items), nil
	case *tupleExpr:
		items := make([]value, len(e.items))
		for i, x := range e.items {
			v, err := r.eval(x, s)
			if err != nil {
				return nil, err
			}
			items[i] = v
		}
		return newTuple(items...), nil
	case *dictExpr:
		d := newDict()
		for i := range e.keys {
			k, err := r.eval(e.keys[i], s)
			if err != nil {
				return nil, err
			}
			v, err := r.eval(e.vals[i], s)
			if err != nil {
				return nil, err
			}
			if err := d.set(k, v); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *getattrExpr:
		obj, err := r.eval(e.obj, s)
		if err != nil {
			return nil, err
		}
		v, err := getattr(obj, e.attr)
		return v, withLine(err, e.line)
	case *getitemExpr:
		obj, err := r.eval(e.obj, s)
		if err != nil {
			return nil, err
		}
		if sl, ok := e.key.(*sliceExpr); ok {
			v, err := r.evalSlice(obj, sl, s)
			if err != nil && r.folding {
				// Jinja folds a constant {{ }} expression at compile time
				// through the sandbox's getitem, which turns a slicing
				// TypeError into Undefined.
				var re *RenderError
				if errors.As(err, &re) && re.Kind == "TypeError" {
					return &undefined{name: "slice", obj: obj, hasObj: true}, nil
				}
			}
			return v, withLine(err, e.line)
		}
		key, err := r.eval(e.key, s)
		if err != nil {
			return nil, err
		}
		v, err := getitem(obj, key)
		return v, withLine(err, e.line)
	case *callExpr:
		if r.constEval {
			return nil, errNotConst
		}
		v, err := r.evalCall(e, s)
		if err == nil {
			err = r.charge(v)
		}
		return v, err
	case *filterExpr:
		if r.constEval {
			switch e.name {
			case "map", "select", "reject", "selectattr", "rejectattr": // need the context
				return nil, errNotConst
			}
		}
		v, err := r.eval(e.arg, s)
		if err != nil {
			return nil, err
		}
		v, err = r.applyFilter(e, v, s)
		if err == nil {
			err = r.charge(v)
		}
		return v, withLine(err, e.line)
	case *testExpr:
		v, err := r.eval(e.arg, s)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(e.args, e.kwargs, s)
		if err != nil {
			return nil, err
		}
		tf := tests[e.name]
		if tf == nil {
			return nil, withLine(&RenderError{Kind: "TemplateRuntimeError", Msg: fmt.Sprintf("No test named %s found.", pyRepr(e.name))}, e.line)
		}
		ok, err := tf(r, v, args, kwargs)
		return ok, withLine(err, e.line)
	case *unaryExpr:
		v, err := r.eval(e.x, s)
		if err != nil {
			return nil, err
		}
		if e.op == "not" {
			return !truthy(v), nil
		}
		v, err = unaryOp(e.op, v)
		return v, withLine(err, e.line)
	case *binExpr:
		l, err := r.eval(e.l, s)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return r.eval(e.r, s)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return r.eval(e.r, s)
		}
		rv, err := r.eval(e.r, s)
		if err != nil {
			return nil, err
		}
		v, err := binaryOp(e.op, l, rv)
		if err == nil {
			err = r.charge(v)
		}
		return v, withLine(err, e.line)
	case *concatExpr:
		var b strings.Builder
		for _, p := range e.parts {
			v, err := r.eval(p, s)
			if err != nil {
				return nil, err
			}
			str, err := toStr(v)
			if err != nil {
				return nil, err
			}
			b.WriteString(str)
			if b.Len() > maxOutput {
				return nil, &RenderError{Kind: "MemoryError", Msg: "string too long"}
			}
		}
		return b.String(), r.charge(b.String())
	case *compareExpr:
		l, err := r.eval(e.first, s)
		if err != nil {
			return nil, err
		}
		for i, op := range e.ops {
			rv, err := r.eval(e.rest[i], s)
			if err != nil {
				return nil, err
			}
			ok, err := compareOp(op, l, rv)
			if err != nil {
				return nil, withLine(err, e.line)
			}
			if !ok {
				return false, nil
			}
			l = rv
		}
		return true, nil
	case *condExpr:
		t, err := r.eval(e.test, s)
		if err != nil {
			return nil, err
		}
		if truthy(t) {
			return r.eval(e.yes, s)
		}
		if e.no == nil {
			if r.constEval {
				return nil, errNotConst // Jinja leaves this to run time
			}
			return &undefined{hint: "the inline if-expression evaluated to false and no else section was defined."}, nil
		}
		return r.eval(e.no, s)
	case *nsRefExpr:
		return nil, unsupported("namespace reference outside an assignment")
	}
	return nil, unsupported("internal: unknown expression %T", e)
}

func (r *renderer) evalArgs(args []expr, kws []kwExpr, s *scope) ([]value, []kwarg, error) {
	var av []value
	for _, a := range args {
		v, err := r.eval(a, s)
		if err != nil {
			return nil, nil, err
		}
		av = append(av, v)
	}
	var kv []kwarg
	for _, k := range kws {
		v, err := r.eval(k.val, s)
		if err != nil {
			return nil, nil, err
		}
		kv = append(kv, kwarg{name: k.name, val: v})
	}
	return av, kv, nil
}

func (r *renderer) evalCall(e *callExpr, s *scope) (value, error) {
	fn, err := r.eval(e.fn, s)
	if err != nil {
		return nil, err
	}
	args, kwargs, err := r.evalArgs(e.args, e.kwargs, s)
	if err != nil {
		return nil, err
	}
	switch f := fn.(type) {
	case *undefined:
		return nil, withLine(f.err(), e.line)
	case callable:
		v, err := f.call(r, args, kwargs)
		return v, withLine(err, e.line)
	}
	return nil, withLine(typeErr("'%s' object is not callable", typeName(fn)), e.line)
}

func (r *renderer) applyFilter(f *filterExpr, v value, s *scope) (value, error) {
	args, kwargs, err := r.evalArgs(f.args, f.kwargs, s)
	if err != nil {
		return nil, err
	}
	ff := filters[f.name]
	if ff == nil {
		if what, ok := unsupportedFilters[f.name]; ok {
			return nil, unsupported("the %s filter (%s)", f.name, what)
		}
		return nil, &RenderError{Kind: "TemplateRuntimeError", Msg: fmt.Sprintf("No filter named %s found.", pyRepr(f.name))}
	}
	return ff(r, v, args, kwargs)
}

func (r *renderer) evalSlice(obj value, sl *sliceExpr, s *scope) (value, error) {
	var parts [3]value
	for i, x := range []expr{sl.start, sl.stop, sl.step} {
		if x == nil {
			continue
		}
		v, err := r.eval(x, s)
		if err != nil {
			return nil, err
		}
		parts[i] = v
	}
	// Jinja compiles slices to a plain Python subscript (no sandbox
	// getitem), so errors propagate.
	if u, ok := obj.(*undefined); ok {
		return nil, u.err()
	}
	switch obj.(type) {
	case string, markup, *list, *rangeVal:
	case *dict:
		return nil, typeErr("unhashable type: 'slice'")
	default:
		return nil, typeErr("'%s' object is not subscriptable", typeName(obj))
	}
	var idx [3]*int64
	for i, p := range parts {
		if p == nil {
			continue
		}
		n, ok := asInt(p)
		if !ok {
			return nil, typeErr("slice indices must be integers or None or have an __index__ method")
		}
		idx[i] = &n
	}
	return sliceValue(obj, idx[0], idx[1], idx[2])
}

// sliceIndices is Python's slice.indices.
func sliceIndices(start, stop, step *int64, n int64) (int64, int64, int64, error) {
	st := int64(1)
	if step != nil {
		st = *step
		if st == 0 {
			return 0, 0, 0, valueErr("slice step cannot be zero")
		}
	}
	var lo, hi int64
	if st > 0 {
		lo, hi = 0, n
	} else {
		lo, hi = -1, n-1
	}
	adj := func(p *int64, def int64) int64 {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
			if v < lo {
				v = lo
			}
		} else if v > hi {
			v = hi
		}
		return v
	}
	var a, b int64
	if st > 0 {
		a, b = adj(start, lo), adj(stop, hi)
	} else {
		a, b = adj(start, hi), adj(stop, lo)
	}
	return a, b, st, nil
}

func sliceRange(a, b, st int64) []int64 {
	var out []int64
	if st > 0 {
		for i := a; i < b; i += st {
			out = append(out, i)
		}
	} else {
		for i := a; i > b; i += st {
			out = append(out, i)
		}
	}
	return out
}

func sliceValue(obj value, start, stop, step *int64) (value, error) {
	switch o := obj.(type) {
	case string, markup:
		str, _ := strOf(o)
		rs := []rune(str)
		a, b, st, err := sliceIndices(start, stop, step, int64(len(rs)))
		if err != nil {
			return nil, err
		}
		var sb strings.Builder
		for _, i := range sliceRange(a, b, st) {
			sb.WriteRune(rs[i])
		}
		if _, ok := o.(markup); ok {
			return markup(sb.String()), nil
		}
		return sb.String(), nil
	case *list:
		a, b, st, err := sliceIndices(start, stop, step, int64(len(o.items)))
		if err != nil {
			return nil, err
		}
		var items []value
		for _, i := range sliceRange(a, b, st) {
			items = append(items, o.items[i])
		}
		return &list{items: items, tuple: o.tuple}, nil
	case *rangeVal:
		a, b, st, err := sliceIndices(start, stop, step, o.len())
		if err != nil {
			return nil, err
		}
		return &rangeVal{start: o.start + a*o.step, stop: o.start + b*o.step, step: o.step * st}, nil
	}
	return &undefined{name: "slice", obj: obj, hasObj: true}, nil
}

// getattr is the sandbox's getattr(obj, name): a Python attribute first,
// then obj[name], then Undefined.
func getattr(obj value, name string) (value, error) {
	if u, ok := obj.(*undefined); ok {
		return nil, u.err()
	}
	v, ok, err := pyAttr(obj, name)
	if err != nil || ok {
		return v, err
	}
	v, ok, err = getitemRaw(obj, name)
	if err != nil || ok {
		return v, err
	}
	return &undefined{name: name, obj: obj, hasObj: true}, nil
}

// getitem is the sandbox's getitem(obj, key): obj[key] first, then (for a
// string key) a Python attribute, then Undefined.
func getitem(obj value, key value) (value, error) {
	if u, ok := obj.(*undefined); ok {
		return nil, u.err()
	}
	v, ok, err := getitemRaw(obj, key)
	if err != nil || ok {
		return v, err
	}
	if name, isStr := strOf(key); isStr {
		v, ok, err := pyAttr(obj, name)
		if err != nil || ok {
			return v, err
		}
	}
	return &undefined{name: key, obj: obj, hasObj: true}, nil
}

// getitemRaw is Python's obj[key]; ok is false where Python raises a
// TypeError or LookupError (which the sandbox catches).
func getitemRaw(obj value, key value) (value, bool, error) {
	switch o := obj.(type) {
	case *list:
		i, ok := asInt(key)
		if !ok {
			return nil, false, nil
		}
		n := int64(len(o.items))
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, false, nil
		}
		return o.items[i], true, nil
	case string, markup:
		i, ok := asInt(key)
		if !ok {
			return nil, false, nil
		}
		str, _ := strOf(o)
		rs := []rune(str)
		n := int64(len(rs))
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, false, nil
		}
		if _, isM := o.(markup); isM {
			return markup(string(rs[i])), true, nil
		}
		return string(rs[i]), true, nil
	case *dict:
		v, found, err := o.get(key)
		if err != nil || !found {
			return nil, false, nil
		}
		return v, true, nil
	case *rangeVal:
		i, ok := asInt(key)
		if !ok {
			return nil, false, nil
		}
		n := o.len()
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, false, nil
		}
		return o.start + i*o.step, true, nil
	}
	return nil, false, nil
}

// ---- operators ----

func unaryOp(op string, v value) (value, error) {
	if u, ok := v.(*undefined); ok {
		return nil, u.err()
	}
	if i, ok := asInt(v); ok {
		if op == "-" {
			if i == math.MinInt64 {
				return nil, overflow()
			}
			return -i, nil
		}
		return i, nil
	}
	if f, ok := v.(float64); ok {
		if op == "-" {
			return -f, nil
		}
		return f, nil
	}
	return nil, typeErr("bad operand type for unary %s: '%s'", op, typeName(v))
}

func overflow() error {
	return &RenderError{Kind: "OverflowError", Msg: "integer result does not fit in 64 bits (unsupported)"}
}

func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&#39;", `"`, "&#34;").Replace(s)
}

func binaryOp(op string, a, b value) (value, error) {
	if u, ok := a.(*undefined); ok {
		return nil, u.err()
	}
	if u, ok := b.(*undefined); ok {
		// str.__mod__ accepts any right operand; every other operator
		// falls back to Undefined's reflected method, which raises.
		if _, isStr := strOf(a); !isStr || op != "%" {
			return nil, u.err()
		}
	}
	if isNumber(a) && isNumber(b) {
		return numOp(op, a, b)
	}
	switch op {
	case "+":
		if ma, ok := a.(markup); ok {
			if sb, ok := strOf(b); ok {
				if mb, isM := b.(markup); isM {
					return ma + mb, nil
				}
				return ma + markup(escapeHTML(sb)), nil
			}
		}
		if mb, ok := b.(markup); ok {
			if sa, ok := a.(string); ok {
				return markup(escapeHTML(sa)) + mb, nil
			}
		}
		if sa, ok := a.(string); ok {
			sb, ok := b.(string)
			if !ok {
				return nil, typeErr("can only concatenate str (not \"%s\") to str", typeName(b))
			}
			if len(sa)+len(sb) > maxOutput {
				return nil, &RenderError{Kind: "MemoryError", Msg: "string too long"}
			}
			return sa + sb, nil
		}
		if la, ok := a.(*list); ok {
			lb, ok := b.(*list)
			if !ok || lb.tuple != la.tuple {
				return nil, typeErr("can only concatenate %s (not \"%s\") to %s", typeName(a), typeName(b), typeName(a))
			}
			if len(la.items)+len(lb.items) > maxCollection {
				return nil, &RenderError{Kind: "MemoryError", Msg: "list too long"}
			}
			items := append(append([]value{}, la.items...), lb.items...)
			return &list{items: items, tuple: la.tuple}, nil
		}
	case "*":
		if n, ok := asInt(b); ok {
			return repeat(a, n)
		}
		if n, ok := asInt(a); ok {
			return repeat(b, n)
		}
		if _, ok := strOf(a); ok && isNumber(b) {
			return nil, typeErr("can't multiply sequence by non-int of type '%s'", typeName(b))
		}
		if _, ok := a.(*list); ok && isNumber(b) {
			return nil, typeErr("can't multiply sequence by non-int of type '%s'", typeName(b))
		}
	case "%":
		if sa, ok := strOf(a); ok {
			out, err := percentFormat(sa, b)
			if err != nil {
				return nil, err
			}
			if _, isM := a.(markup); isM {
				return markup(out), nil
			}
			return out, nil
		}
	}
	sym := op
	if op == "**" {
		sym = "** or pow()"
	}
	return nil, typeErr("unsupported operand type(s) for %s: '%s' and '%s'", sym, typeName(a), typeName(b))
}

func repeat(seq value, n int64) (value, error) {
	if n < 0 {
		n = 0
	}
	switch s := seq.(type) {
	case string, markup:
		str, _ := strOf(s)
		if int64(len(str))*n > maxOutput {
			return nil, &RenderError{Kind: "MemoryError", Msg: "string too long"}
		}
		out := strings.Repeat(str, int(n))
		if _, ok := s.(markup); ok {
			return markup(out), nil
		}
		return out, nil
	case *list:
		if int64(len(s.items))*n > maxCollection {
			return nil, &RenderError{Kind: "MemoryError", Msg: "list too long"}
		}
		var items []value
		for i := int64(0); i < n; i++ {
			items = append(items, s.items...)
		}
		return &list{items: items, tuple: s.tuple}, nil
	}
	return nil, typeErr("can't multiply sequence by non-int of type '%s'", "int")
}

func numOp(op string, a, b value) (value, error) {
	ia, aInt := asInt(a)
	ib, bInt := asInt(b)
	if aInt && bInt {
		switch op {
		case "+":
			s := ia + ib
			if (s > ia) != (ib > 0) {
				return nil, overflow()
			}
			return s, nil
		case "-":
			s := ia - ib
			if (s < ia) != (ib > 0) {
				return nil, overflow()
			}
			return s, nil
		case "*":
			if ia != 0 && ib != 0 {
				p := ia * ib
				if p/ib != ia || (ia == -1 && ib == math.MinInt64) || (ib == -1 && ia == math.MinInt64) {
					return nil, overflow()
				}
				return p, nil
			}
			return int64(0), nil
		case "/":
			if ib == 0 {
				return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "division by zero"}
			}
			return float64(ia) / float64(ib), nil
		case "//":
			if ib == 0 {
				return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "integer division or modulo by zero"}
			}
			q := ia / ib
			if (ia%ib != 0) && ((ia < 0) != (ib < 0)) {
				q--
			}
			return q, nil
		case "%":
			if ib == 0 {
				return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "integer division or modulo by zero"}
			}
			m := ia % ib
			if m != 0 && (m < 0) != (ib < 0) {
				m += ib
			}
			return m, nil
		case "**":
			if ib < 0 {
				if ia == 0 {
					return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "0.0 cannot be raised to a negative power"}
				}
				return math.Pow(float64(ia), float64(ib)), nil
			}
			res := int64(1)
			base := ia
			e := ib
			for e > 0 {
				if e&1 == 1 {
					p := res * base
					if base != 0 && p/base != res {
						return nil, overflow()
					}
					res = p
				}
				e >>= 1
				if e > 0 {
					sq := base * base
					if base != 0 && sq/base != base {
						return nil, overflow()
					}
					base = sq
				}
			}
			return res, nil
		}
	}
	fa, fb := toFloat(a), toFloat(b)
	switch op {
	case "+":
		return fa + fb, nil
	case "-":
		return fa - fb, nil
	case "*":
		return fa * fb, nil
	case "/":
		if fb == 0 {
			return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "float division by zero"}
		}
		return fa / fb, nil
	case "//":
		if fb == 0 {
			return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "float floor division by zero"}
		}
		return math.Floor(fa / fb), nil
	case "%":
		if fb == 0 {
			return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "float modulo"}
		}
		m := math.Mod(fa, fb)
		if m != 0 && (m < 0) != (fb < 0) {
			m += fb
		}
		return m, nil
	case "**":
		if fa == 0 && fb < 0 {
			return nil, &RenderError{Kind: "ZeroDivisionError", Msg: "0.0 cannot be raised to a negative power"}
		}
		if fa < 0 && fb != math.Trunc(fb) {
			return nil, unsupported("complex result of ** (Python returns a complex number)")
		}
		return math.Pow(fa, fb), nil
	}
	return nil, unsupported("operator %s", op)
}

func compareOp(op string, a, b value) (bool, error) {
	switch op {
	case "==":
		return pyEqual(a, b), nil
	case "!=":
		return !pyEqual(a, b), nil
	case "in":
		return pyIn(a, b)
	case "notin":
		ok, err := pyIn(a, b)
		return !ok, err
	}
	return pyCompare(op, a, b)
}

func pyIn(needle, hay value) (bool, error) {
	switch h := hay.(type) {
	case string, markup:
		hs, _ := strOf(h)
		ns, ok := strOf(needle)
		if !ok {
			if u, isU := needle.(*undefined); isU {
				return false, u.err()
			}
			return false, typeErr("'in <string>' requires string as left operand, not %s", typeName(needle))
		}
		return strings.Contains(hs, ns), nil
	case *list:
		for _, it := range h.items {
			if pyEqual(it, needle) {
				return true, nil
			}
		}
		return false, nil
	case *dict:
		_, found, err := h.get(needle)
		return found, err
	case *dictView:
		if h.kind == "keys" {
			_, found, err := h.d.get(needle)
			return found, err
		}
		for _, it := range h.list() {
			if pyEqual(it, needle) {
				return true, nil
			}
		}
		return false, nil
	case *rangeVal:
		items, err := iterate(h)
		if err != nil {
			return false, err
		}
		for _, it := range items {
			if pyEqual(it, needle) {
				return true, nil
			}
		}
		return false, nil
	case *iterVal:
		for _, it := range h.drain() {
			if pyEqual(it, needle) {
				return true, nil
			}
		}
		return false, nil
	case *undefined:
		if h.unsafe {
			return false, h.err()
		}
		return false, nil
	}
	return false, typeErr("argument of type '%s' is not iterable", typeName(hay))
}
