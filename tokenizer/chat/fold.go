package chat

// Jinja's optimizer folds constant subexpressions at compile time: every
// expression that can be evaluated without the template's variables is
// evaluated (bottom-up), and replaced by its value if that value is one
// Python code can spell (None, bools, numbers, strings, ranges, and lists,
// tuples and dicts of those). The fold evaluates subscripts through the
// sandbox's getitem, which turns a slicing TypeError into Undefined, where
// the compiled code would raise; {{ 10[::-1] is true }} folds to False
// instead of failing. foldConstants does the same to the parsed template.

func foldConstants(body []node) {
	for _, n := range body {
		switch n := n.(type) {
		case *outputNode:
			n.expr = fold(n.expr)
			// Jinja prints a constant {{ }} expression at compile time,
			// even one whose value is Undefined.
			if v, ok := constValue(n.expr); ok {
				if str, err := toStr(v); err == nil {
					n.constText, n.isConst = str, true
				}
			}
		case *ifNode:
			for i := range n.conds {
				n.conds[i] = fold(n.conds[i])
				foldConstants(n.bodies[i])
			}
			foldConstants(n.els)
		case *forNode:
			n.iter = fold(n.iter)
			if n.filter != nil {
				n.filter = fold(n.filter)
			}
			foldConstants(n.body)
			foldConstants(n.els)
		case *setNode:
			n.value = fold(n.value)
		case *setBlockNode:
			foldFilters(n.filters)
			foldConstants(n.body)
		case *filterBlockNode:
			foldFilters(n.filters)
			foldConstants(n.body)
		case *withNode:
			for i := range n.values {
				n.values[i] = fold(n.values[i])
			}
			foldConstants(n.body)
		case *generationNode:
			foldConstants(n.body)
		case *macroNode:
			for i := range n.defaults {
				n.defaults[i] = fold(n.defaults[i])
			}
			foldConstants(n.body)
		}
	}
}

func foldFilters(fs []*filterExpr) {
	for _, f := range fs {
		foldExprs(f.args)
		for i := range f.kwargs {
			f.kwargs[i].val = fold(f.kwargs[i].val)
		}
	}
}

func foldExprs(es []expr) {
	for i := range es {
		es[i] = fold(es[i])
	}
}

// fold folds e's subexpressions, then e itself.
func fold(e expr) expr {
	switch e := e.(type) {
	case nil, *constExpr, *nameExpr, *nsRefExpr:
		return e
	case *listExpr:
		foldExprs(e.items)
	case *tupleExpr:
		foldExprs(e.items)
	case *dictExpr:
		foldExprs(e.keys)
		foldExprs(e.vals)
	case *getattrExpr:
		e.obj = fold(e.obj)
	case *getitemExpr:
		e.obj = fold(e.obj)
		if sl, ok := e.key.(*sliceExpr); ok {
			sl.start, sl.stop, sl.step = fold(sl.start), fold(sl.stop), fold(sl.step)
		} else {
			e.key = fold(e.key)
		}
	case *callExpr:
		e.fn = fold(e.fn)
		foldExprs(e.args)
		for i := range e.kwargs {
			e.kwargs[i].val = fold(e.kwargs[i].val)
		}
		return e
	case *filterExpr:
		e.arg = fold(e.arg)
		foldExprs(e.args)
		for i := range e.kwargs {
			e.kwargs[i].val = fold(e.kwargs[i].val)
		}
	case *testExpr:
		e.arg = fold(e.arg)
		foldExprs(e.args)
		for i := range e.kwargs {
			e.kwargs[i].val = fold(e.kwargs[i].val)
		}
	case *unaryExpr:
		e.x = fold(e.x)
	case *binExpr:
		e.l, e.r = fold(e.l), fold(e.r)
	case *concatExpr:
		foldExprs(e.parts)
	case *compareExpr:
		e.first = fold(e.first)
		foldExprs(e.rest)
	case *condExpr:
		e.test, e.yes, e.no = fold(e.test), fold(e.yes), fold(e.no)
	}
	if v, ok := constValue(e); ok && safeRepr(v) {
		return &constExpr{val: v}
	}
	return e
}

// constValue evaluates e as Jinja's as_const would: without the template's
// variables (a name or a call makes it not constant) and with the
// sandbox's getitem for slices. And, or and inline if are lazy, so only the
// operands they use must be constant.
func constValue(e expr) (value, bool) {
	if _, ok := e.(*constExpr); ok {
		return e.(*constExpr).val, true
	}
	r := &renderer{cur: -1, folding: true, constEval: true, stepLimit: 10000, workLimit: 1 << 24}
	r.w = &r.top
	v, err := r.eval(e, newScope(nil))
	if err != nil {
		return nil, false
	}
	return v, true
}

// safeRepr is jinja2.compiler.has_safe_repr.
func safeRepr(v value) bool {
	switch v := v.(type) {
	case nil, bool, int64, float64, string, markup, *rangeVal:
		return true
	case *list:
		for _, it := range v.items {
			if !safeRepr(it) {
				return false
			}
		}
		return true
	case *dict:
		for i, k := range v.keys {
			if !safeRepr(k) || !safeRepr(v.vals[i]) {
				return false
			}
		}
		return true
	}
	return false
}
