package chat

import (
	"fmt"
	"strings"
)

// ---- AST ----

type node interface{}

type (
	textNode   struct{ text string }
	outputNode struct {
		expr      expr
		line      int
		isConst   bool // folded at parse time to constText
		constText string
	}
	ifNode struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		target expr // nameExpr or tupleExpr of names
		iter   expr
		filter expr // may be nil
		body   []node
		els    []node
		line   int
	}
	setNode struct {
		target expr // nameExpr, tupleExpr or nsRefExpr
		value  expr
		line   int
	}
	setBlockNode struct {
		target  expr
		filters []*filterExpr // applied in order to the body's output
		body    []node
		line    int
	}
	macroNode struct {
		name       string
		params     []string
		defaults   []expr // aligned to the last len(defaults) params
		body       []node
		varargs    bool // body refers to varargs
		kwargs     bool // body refers to kwargs
		line       int
		usesCaller bool
	}
	filterBlockNode struct {
		filters []*filterExpr
		body    []node
	}
	withNode struct {
		targets []expr
		values  []expr
		body    []node
	}
	generationNode struct{ body []node }
	breakNode      struct{ line int }
	continueNode   struct{ line int }
)

type expr interface{}

type (
	constExpr struct{ val value }
	nameExpr  struct {
		name string
		line int
	}
	nsRefExpr struct {
		name, attr string
		line       int
	}
	listExpr    struct{ items []expr }
	tupleExpr   struct{ items []expr }
	dictExpr    struct{ keys, vals []expr }
	getattrExpr struct {
		obj  expr
		attr string
		line int
	}
	getitemExpr struct {
		obj, key expr
		line     int
	}
	sliceExpr struct{ start, stop, step expr } // nil parts are omitted
	callExpr  struct {
		fn     expr
		args   []expr
		kwargs []kwExpr
		line   int
	}
	kwExpr struct {
		name string
		val  expr
	}
	filterExpr struct {
		arg    expr // nil inside filter blocks and set blocks
		name   string
		args   []expr
		kwargs []kwExpr
		line   int
	}
	testExpr struct {
		arg    expr
		name   string
		args   []expr
		kwargs []kwExpr
		line   int
	}
	unaryExpr struct {
		op   string // "-", "+", "not"
		x    expr
		line int
	}
	binExpr struct {
		op   string // + - * / // % ** and or
		l, r expr
		line int
	}
	concatExpr  struct{ parts []expr }
	compareExpr struct {
		first expr
		ops   []string // == != < <= > >= in notin
		rest  []expr
		line  int
	}
	condExpr struct {
		test, yes, no expr // no may be nil
	}
)

// ---- parser ----

type parser struct {
	name      string
	toks      []token
	pos       int
	endStack  [][]string
	tagStack  []string
	loopDepth int
}

func parse(name, source string) ([]node, error) {
	toks, err := lex(name, source)
	if err != nil {
		return nil, err
	}
	p := &parser{name: name, toks: toks}
	body, err := p.subparse(nil)
	if err != nil {
		return nil, err
	}
	if err := checkNames(name, body); err != nil {
		return nil, err
	}
	foldConstants(body)
	return body, nil
}

// checkNames does what Jinja's compiler does with filter and test names: an
// unknown one is an error, except inside an if statement or an inline if
// expression (a "soft frame"), where Jinja defers the error to the moment
// the filter or test is called. Filters this package leaves out are treated
// the same way, with an "unsupported" message.
func checkNames(name string, body []node) error {
	var err error
	fail := func(line int, format string, args ...any) {
		if err == nil {
			err = &SyntaxError{Name: name, Line: line, Msg: fmt.Sprintf(format, args...)}
		}
	}
	var we func(e expr, soft bool)
	var wn func(ns []node, soft bool)
	we = func(e expr, soft bool) {
		switch e := e.(type) {
		case *listExpr:
			for _, x := range e.items {
				we(x, soft)
			}
		case *tupleExpr:
			for _, x := range e.items {
				we(x, soft)
			}
		case *dictExpr:
			for i := range e.keys {
				we(e.keys[i], soft)
				we(e.vals[i], soft)
			}
		case *getattrExpr:
			we(e.obj, soft)
		case *getitemExpr:
			we(e.obj, soft)
			we(e.key, soft)
		case *sliceExpr:
			for _, x := range []expr{e.start, e.stop, e.step} {
				if x != nil {
					we(x, soft)
				}
			}
		case *callExpr:
			we(e.fn, soft)
			for _, x := range e.args {
				we(x, soft)
			}
			for _, k := range e.kwargs {
				we(k.val, soft)
			}
		case *filterExpr:
			if e.arg != nil {
				we(e.arg, soft)
			}
			for _, x := range e.args {
				we(x, soft)
			}
			for _, k := range e.kwargs {
				we(k.val, soft)
			}
			if _, ok := filters[e.name]; !ok && !soft {
				if what, ok := unsupportedFilters[e.name]; ok {
					fail(e.line, "unsupported construct: the %s filter (%s)", e.name, what)
				} else {
					fail(e.line, "No filter named '%s'.", e.name)
				}
			}
		case *testExpr:
			we(e.arg, soft)
			for _, x := range e.args {
				we(x, soft)
			}
			for _, k := range e.kwargs {
				we(k.val, soft)
			}
			if _, ok := tests[e.name]; !ok && !soft {
				fail(e.line, "No test named '%s'.", e.name)
			}
		case *unaryExpr:
			we(e.x, soft)
		case *binExpr:
			we(e.l, soft)
			we(e.r, soft)
		case *concatExpr:
			for _, x := range e.parts {
				we(x, soft)
			}
		case *compareExpr:
			we(e.first, soft)
			for _, x := range e.rest {
				we(x, soft)
			}
		case *condExpr:
			we(e.test, true)
			we(e.yes, true)
			if e.no != nil {
				we(e.no, true)
			}
		}
	}
	wn = func(ns []node, soft bool) {
		for _, n := range ns {
			switch n := n.(type) {
			case *outputNode:
				we(n.expr, soft)
			case *ifNode:
				for i := range n.conds {
					we(n.conds[i], true)
					wn(n.bodies[i], true)
				}
				wn(n.els, true)
			case *forNode:
				we(n.iter, soft)
				if n.filter != nil {
					we(n.filter, false)
				}
				wn(n.body, false)
				wn(n.els, false)
			case *setNode:
				we(n.value, soft)
			case *setBlockNode:
				for _, f := range n.filters {
					we(f, soft)
				}
				wn(n.body, false)
			case *filterBlockNode:
				for _, f := range n.filters {
					we(f, soft)
				}
				wn(n.body, false)
			case *withNode:
				for _, v := range n.values {
					we(v, soft)
				}
				wn(n.body, false)
			case *generationNode:
				wn(n.body, soft)
			case *macroNode:
				for _, d := range n.defaults {
					we(d, false)
				}
				wn(n.body, false)
			}
		}
	}
	wn(body, false)
	return err
}

func (p *parser) cur() token  { return p.toks[p.pos] }
func (p *parser) look() token { return p.toks[min(p.pos+1, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if p.pos < len(p.toks)-1 {
		p.pos++
	}
	return t
}

func (p *parser) fail(line int, format string, args ...any) error {
	return &SyntaxError{Name: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isName(v string) bool {
	t := p.cur()
	return t.kind == tokName && t.val == v
}

func (p *parser) isOp(v string) bool {
	t := p.cur()
	return t.kind == tokOp && t.val == v
}

func (p *parser) skipOp(v string) bool {
	if p.isOp(v) {
		p.next()
		return true
	}
	return false
}

func (p *parser) skipName(v string) bool {
	if p.isName(v) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectOp(v string) error {
	if !p.skipOp(v) {
		return p.fail(p.cur().line, "expected token '%s', got %s", v, p.cur())
	}
	return nil
}

func (p *parser) expectName(v string) error {
	if !p.skipName(v) {
		return p.fail(p.cur().line, "expected token '%s', got %s", v, p.cur())
	}
	return nil
}

func (p *parser) expectKind(k tokKind) (token, error) {
	t := p.cur()
	if t.kind != k {
		return t, p.fail(t.line, "expected token '%s', got %s", k, t)
	}
	p.next()
	return t, nil
}

func (p *parser) atEnd(ends []string) bool {
	t := p.cur()
	if t.kind != tokName {
		return false
	}
	for _, e := range ends {
		if t.val == e {
			return true
		}
	}
	return false
}

// subparse parses template data and statements until one of ends (the name
// after "{%") or the end of the template. On return at an end tag, the
// current token is that name.
func (p *parser) subparse(ends []string) ([]node, error) {
	var body []node
	if ends != nil {
		p.endStack = append(p.endStack, ends)
		defer func() { p.endStack = p.endStack[:len(p.endStack)-1] }()
	}
	for {
		t := p.cur()
		switch t.kind {
		case tokEOF:
			return body, nil
		case tokData:
			body = append(body, &textNode{text: t.val})
			p.next()
		case tokVarBegin:
			p.next()
			e, err := p.parseTuple(false, nil, false)
			if err != nil {
				return nil, err
			}
			body = append(body, &outputNode{expr: e, line: t.line})
			if _, err := p.expectKind(tokVarEnd); err != nil {
				return nil, err
			}
		case tokBlockBegin:
			p.next()
			if ends != nil && p.atEnd(ends) {
				return body, nil
			}
			n, err := p.parseStatement()
			if err != nil {
				return nil, err
			}
			if n != nil {
				body = append(body, n)
			}
			if _, err := p.expectKind(tokBlockEnd); err != nil {
				return nil, err
			}
		default:
			return nil, p.fail(t.line, "unexpected %s", t)
		}
	}
}

// parseStatements is jinja's parse_statements: optional ":", block end,
// body until one of ends. With drop, the end name is consumed.
func (p *parser) parseStatements(ends []string, drop bool) ([]node, error) {
	p.skipOp(":")
	if _, err := p.expectKind(tokBlockEnd); err != nil {
		return nil, err
	}
	body, err := p.subparse(ends)
	if err != nil {
		return nil, err
	}
	if p.cur().kind == tokEOF {
		return nil, p.failEOF(ends)
	}
	if drop {
		p.next()
	}
	return body, nil
}

func (p *parser) failEOF(ends []string) error {
	msg := "Unexpected end of template."
	if len(ends) > 0 {
		q := make([]string, len(ends))
		for i, e := range ends {
			q[i] = "'" + e + "'"
		}
		msg += " Jinja was looking for the following tags: " + strings.Join(q, " or ") + "."
	}
	if len(p.tagStack) > 0 {
		msg += fmt.Sprintf(" The innermost block that needs to be closed is '%s'.", p.tagStack[len(p.tagStack)-1])
	}
	return p.fail(p.cur().line, "%s", msg)
}

var unsupportedTags = map[string]string{
	"block":      "template inheritance ({% block %})",
	"extends":    "template inheritance ({% extends %})",
	"include":    "{% include %} (a chat template has no loader)",
	"import":     "{% import %} (a chat template has no loader)",
	"from":       "{% from ... import %} (a chat template has no loader)",
	"autoescape": "{% autoescape %}",
	"call":       "{% call %} blocks",
}

func (p *parser) parseStatement() (node, error) {
	t := p.cur()
	if t.kind != tokName {
		return nil, p.fail(t.line, "tag name expected")
	}
	if what, ok := unsupportedTags[t.val]; ok {
		return nil, p.fail(t.line, "unsupported construct: %s", what)
	}
	p.tagStack = append(p.tagStack, t.val)
	defer func() { p.tagStack = p.tagStack[:len(p.tagStack)-1] }()
	switch t.val {
	case "for":
		return p.parseFor()
	case "if":
		return p.parseIf()
	case "set":
		return p.parseSet()
	case "macro":
		return p.parseMacro()
	case "filter":
		return p.parseFilterBlock()
	case "with":
		return p.parseWith()
	case "print":
		return p.parsePrint()
	case "generation":
		p.next()
		body, err := p.parseStatements([]string{"endgeneration"}, true)
		if err != nil {
			return nil, err
		}
		return &generationNode{body: body}, nil
	case "break", "continue":
		p.next()
		if p.loopDepth == 0 {
			return nil, p.fail(t.line, "'%s' outside of a loop", t.val)
		}
		if t.val == "break" {
			return &breakNode{line: t.line}, nil
		}
		return &continueNode{line: t.line}, nil
	}
	// Unknown tag: jinja's message.
	p.tagStack = p.tagStack[:len(p.tagStack)-1]
	defer func() { p.tagStack = append(p.tagStack, "") }()
	msg := fmt.Sprintf("Encountered unknown tag '%s'.", t.val)
	if n := len(p.endStack); n > 0 {
		q := make([]string, len(p.endStack[n-1]))
		for i, e := range p.endStack[n-1] {
			q[i] = "'" + e + "'"
		}
		msg += " Jinja was looking for the following tags: " + strings.Join(q, " or ") + "."
	}
	return nil, p.fail(t.line, "%s", msg)
}

func (p *parser) parseFor() (node, error) {
	line := p.next().line
	target, err := p.parseAssignTarget([]string{"in"}, false)
	if err != nil {
		return nil, err
	}
	if err := p.expectName("in"); err != nil {
		return nil, err
	}
	iter, err := p.parseTuple(true, []string{"recursive"}, false)
	if err != nil {
		return nil, err
	}
	var filter expr
	if p.skipName("if") {
		if filter, err = p.parseExpression(true); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.fail(p.cur().line, "unsupported construct: recursive for loops")
	}
	p.loopDepth++
	body, err := p.parseStatements([]string{"endfor", "else"}, false)
	p.loopDepth--
	if err != nil {
		return nil, err
	}
	n := &forNode{target: target, iter: iter, filter: filter, body: body, line: line}
	if p.next().val == "else" {
		// break and continue in the else block belong to an outer loop.
		if n.els, err = p.parseStatements([]string{"endfor"}, true); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (p *parser) parseIf() (node, error) {
	p.next()
	n := &ifNode{}
	for {
		cond, err := p.parseTuple(true, nil, false)
		if err != nil {
			return nil, err
		}
		body, err := p.parseStatements([]string{"elif", "else", "endif"}, false)
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodies = append(n.bodies, body)
		tok := p.next()
		if tok.val == "elif" {
			continue
		}
		if tok.val == "else" {
			if n.els, err = p.parseStatements([]string{"endif"}, true); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
}

func (p *parser) parseSet() (node, error) {
	line := p.next().line
	target, err := p.parseAssignTarget(nil, true)
	if err != nil {
		return nil, err
	}
	if p.skipOp("=") {
		val, err := p.parseTuple(false, nil, false)
		if err != nil {
			return nil, err
		}
		return &setNode{target: target, value: val, line: line}, nil
	}
	filters, err := p.parseFilterChain(false)
	if err != nil {
		return nil, err
	}
	body, err := p.parseStatements([]string{"endset"}, true)
	if err != nil {
		return nil, err
	}
	if _, ok := target.(*nameExpr); !ok {
		if _, ok := target.(*nsRefExpr); !ok {
			return nil, p.fail(line, "unsupported construct: block set to a tuple")
		}
	}
	return &setBlockNode{target: target, filters: filters, body: body, line: line}, nil
}

func (p *parser) parseMacro() (node, error) {
	line := p.next().line
	t, err := p.expectKind(tokName)
	if err != nil {
		return nil, err
	}
	n := &macroNode{name: t.val, line: line}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for !p.isOp(")") {
		if len(n.params) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		a, err := p.expectKind(tokName)
		if err != nil {
			return nil, err
		}
		if p.skipOp("=") {
			d, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			n.defaults = append(n.defaults, d)
		} else if len(n.defaults) > 0 {
			return nil, p.fail(a.line, "non-default argument follows default argument")
		}
		n.params = append(n.params, a.val)
	}
	p.next()
	saved := p.loopDepth
	p.loopDepth = 0
	n.body, err = p.parseStatements([]string{"endmacro"}, true)
	p.loopDepth = saved
	if err != nil {
		return nil, err
	}
	walkNames(n.body, func(name string) {
		switch name {
		case "varargs":
			n.varargs = true
		case "kwargs":
			n.kwargs = true
		case "caller":
			n.usesCaller = true
		}
	})
	if n.usesCaller {
		return nil, p.fail(line, "unsupported construct: macros that use caller()")
	}
	return n, nil
}

func (p *parser) parseFilterBlock() (node, error) {
	p.next()
	filters, err := p.parseFilterChain(true)
	if err != nil {
		return nil, err
	}
	body, err := p.parseStatements([]string{"endfilter"}, true)
	if err != nil {
		return nil, err
	}
	return &filterBlockNode{filters: filters, body: body}, nil
}

func (p *parser) parseWith() (node, error) {
	p.next()
	n := &withNode{}
	for p.cur().kind != tokBlockEnd {
		if len(n.targets) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		t, err := p.parseAssignTarget(nil, false)
		if err != nil {
			return nil, err
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		v, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		n.targets = append(n.targets, t)
		n.values = append(n.values, v)
	}
	body, err := p.parseStatements([]string{"endwith"}, true)
	if err != nil {
		return nil, err
	}
	n.body = body
	return n, nil
}

// parsePrint turns {% print a, b %} into output nodes.
func (p *parser) parsePrint() (node, error) {
	line := p.next().line
	var items []node
	for p.cur().kind != tokBlockEnd {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		e, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		items = append(items, &outputNode{expr: e, line: line})
	}
	return &withNode{body: items}, nil
}

// parseAssignTarget parses a name, a tuple of names, or (withNS) ns.attr.
func (p *parser) parseAssignTarget(extraEnd []string, withNS bool) (expr, error) {
	var items []expr
	isTuple := false
	for {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		if p.isTupleEnd(extraEnd) {
			break
		}
		t := p.cur()
		if t.kind != tokName {
			if t.kind == tokOp && t.val == "(" {
				return nil, p.fail(t.line, "unsupported construct: parenthesised assignment targets")
			}
			return nil, p.fail(t.line, "can't assign to %s", describeTarget(t))
		}
		p.next()
		switch t.val {
		case "true", "false", "True", "False", "none", "None":
			return nil, p.fail(t.line, "can't assign to 'const'")
		}
		if withNS && p.isOp(".") {
			p.next()
			a, err := p.expectKind(tokName)
			if err != nil {
				return nil, err
			}
			items = append(items, &nsRefExpr{name: t.val, attr: a.val, line: t.line})
		} else {
			items = append(items, &nameExpr{name: t.val, line: t.line})
		}
		if p.isOp(",") {
			isTuple = true
		} else {
			break
		}
	}
	if !isTuple {
		if len(items) == 0 {
			return nil, p.fail(p.cur().line, "Expected an expression, got %s", p.cur())
		}
		return items[0], nil
	}
	return &tupleExpr{items: items}, nil
}

func describeTarget(t token) string {
	switch t.kind {
	case tokString, tokInt, tokFloat:
		return "'const'"
	}
	return t.String()
}

func (p *parser) isTupleEnd(extra []string) bool {
	switch p.cur().kind {
	case tokVarEnd, tokBlockEnd, tokEOF:
		return true
	}
	if p.isOp(")") {
		return true
	}
	return p.atEnd(extra)
}

// parseTuple is jinja's parse_tuple (not simplified).
func (p *parser) parseTuple(noCond bool, extraEnd []string, explicitParens bool) (expr, error) {
	var items []expr
	isTuple := false
	for {
		if len(items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		if p.isTupleEnd(extraEnd) {
			break
		}
		e, err := p.parseExpression(!noCond)
		if err != nil {
			return nil, err
		}
		items = append(items, e)
		if p.isOp(",") {
			isTuple = true
		} else {
			break
		}
	}
	if !isTuple {
		if len(items) > 0 {
			return items[0], nil
		}
		if !explicitParens {
			return nil, p.fail(p.cur().line, "Expected an expression, got %s", p.cur())
		}
	}
	return &tupleExpr{items: items}, nil
}

func (p *parser) parseExpression(withCond bool) (expr, error) {
	if withCond {
		return p.parseCondExpr()
	}
	return p.parseOr()
}

func (p *parser) parseCondExpr() (expr, error) {
	e1, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.skipName("if") {
		e2, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var e3 expr
		if p.skipName("else") {
			if e3, err = p.parseCondExpr(); err != nil {
				return nil, err
			}
		}
		e1 = &condExpr{test: e2, yes: e1, no: e3}
	}
	return e1, nil
}

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.isName("or") {
		line := p.next().line
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: "or", l: l, r: r, line: line}
	}
	return l, nil
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.isName("and") {
		line := p.next().line
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: "and", l: l, r: r, line: line}
	}
	return l, nil
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		line := p.next().line
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{op: "not", x: x, line: line}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	line := p.cur().line
	first, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{first: first, line: line}
	for {
		t := p.cur()
		var op string
		switch {
		case t.kind == tokOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == "<=" || t.val == ">" || t.val == ">="):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.look().kind == tokName && p.look().val == "in":
			op = "notin"
			p.next()
			p.next()
		}
		if op == "" {
			break
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, r)
	}
	if len(c.ops) == 0 {
		return first, nil
	}
	return c, nil
}

func (p *parser) parseMath1() (expr, error) {
	l, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		t := p.next()
		r, err := p.parseConcat()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: t.val, l: l, r: r, line: t.line}
	}
	return l, nil
}

func (p *parser) parseConcat() (expr, error) {
	first, err := p.parseMath2()
	if err != nil {
		return nil, err
	}
	parts := []expr{first}
	for p.skipOp("~") {
		e, err := p.parseMath2()
		if err != nil {
			return nil, err
		}
		parts = append(parts, e)
	}
	if len(parts) == 1 {
		return first, nil
	}
	return &concatExpr{parts: parts}, nil
}

func (p *parser) parseMath2() (expr, error) {
	l, err := p.parsePow()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%") {
		t := p.next()
		r, err := p.parsePow()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: t.val, l: l, r: r, line: t.line}
	}
	return l, nil
}

func (p *parser) parsePow() (expr, error) {
	l, err := p.parseUnary(true)
	if err != nil {
		return nil, err
	}
	for p.isOp("**") {
		t := p.next()
		r, err := p.parseUnary(true)
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: "**", l: l, r: r, line: t.line}
	}
	return l, nil
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	var n expr
	var err error
	t := p.cur()
	if p.isOp("-") || p.isOp("+") {
		p.next()
		x, err := p.parseUnary(false)
		if err != nil {
			return nil, err
		}
		n = &unaryExpr{op: t.val, x: x, line: t.line}
	} else if n, err = p.parsePrimary(); err != nil {
		return nil, err
	}
	if n, err = p.parsePostfix(n); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilterExpr(n)
	}
	return n, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.cur()
	switch t.kind {
	case tokName:
		p.next()
		switch t.val {
		case "true", "True":
			return &constExpr{val: true}, nil
		case "false", "False":
			return &constExpr{val: false}, nil
		case "none", "None":
			return &constExpr{val: nil}, nil
		}
		return &nameExpr{name: t.val, line: t.line}, nil
	case tokString:
		var b strings.Builder
		for p.cur().kind == tokString {
			b.WriteString(p.next().val)
		}
		return &constExpr{val: b.String()}, nil
	case tokInt:
		p.next()
		return &constExpr{val: t.ival}, nil
	case tokFloat:
		p.next()
		return &constExpr{val: t.fval}, nil
	case tokOp:
		switch t.val {
		case "(":
			p.next()
			e, err := p.parseTuple(false, nil, true)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			return p.parseList()
		case "{":
			return p.parseDict()
		}
	}
	return nil, p.fail(t.line, "unexpected %s", t)
}

func (p *parser) parseList() (expr, error) {
	p.next()
	l := &listExpr{}
	for !p.isOp("]") {
		if len(l.items) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		if p.isOp("]") {
			break
		}
		e, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, e)
	}
	p.next()
	return l, nil
}

func (p *parser) parseDict() (expr, error) {
	p.next()
	d := &dictExpr{}
	for !p.isOp("}") {
		if len(d.keys) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		if p.isOp("}") {
			break
		}
		k, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(":"); err != nil {
			return nil, err
		}
		v, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
	}
	p.next()
	return d, nil
}

func (p *parser) parsePostfix(n expr) (expr, error) {
	for {
		var err error
		switch {
		case p.isOp(".") || p.isOp("["):
			n, err = p.parseSubscript(n)
		case p.isOp("("):
			n, err = p.parseCall(n)
		default:
			return n, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseFilterExpr(n expr) (expr, error) {
	for {
		var err error
		switch {
		case p.isOp("|"):
			var fs []*filterExpr
			fs, err = p.parseFilterChain(false)
			if err == nil {
				for _, f := range fs {
					f.arg = n
					n = f
				}
			}
		case p.isName("is"):
			n, err = p.parseTest(n)
		case p.isOp("("):
			n, err = p.parseCall(n)
		default:
			return n, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseSubscript(n expr) (expr, error) {
	t := p.next()
	if t.val == "." {
		a := p.next()
		switch a.kind {
		case tokName:
			return &getattrExpr{obj: n, attr: a.val, line: t.line}, nil
		case tokInt:
			return &getitemExpr{obj: n, key: &constExpr{val: a.ival}, line: t.line}, nil
		}
		return nil, p.fail(a.line, "expected name or number")
	}
	var args []expr
	for !p.isOp("]") {
		if len(args) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
		}
		a, err := p.parseSubscribed()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next()
	if len(args) == 1 {
		return &getitemExpr{obj: n, key: args[0], line: t.line}, nil
	}
	return &getitemExpr{obj: n, key: &tupleExpr{items: args}, line: t.line}, nil
}

func (p *parser) parseSubscribed() (expr, error) {
	var parts [3]expr
	if p.isOp(":") {
		p.next()
	} else {
		e, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		if !p.isOp(":") {
			return e, nil
		}
		p.next()
		parts[0] = e
	}
	if !p.isOp(":") && !p.isOp("]") && !p.isOp(",") {
		e, err := p.parseExpression(true)
		if err != nil {
			return nil, err
		}
		parts[1] = e
	}
	if p.isOp(":") {
		p.next()
		if !p.isOp("]") && !p.isOp(",") {
			e, err := p.parseExpression(true)
			if err != nil {
				return nil, err
			}
			parts[2] = e
		}
	}
	return &sliceExpr{start: parts[0], stop: parts[1], step: parts[2]}, nil
}

func (p *parser) parseCallArgs() ([]expr, []kwExpr, error) {
	t := p.next() // "("
	var args []expr
	var kws []kwExpr
	needComma := false
	for !p.isOp(")") {
		if needComma {
			if err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.isOp(")") {
				break
			}
		}
		if p.isOp("*") || p.isOp("**") {
			return nil, nil, p.fail(p.cur().line, "unsupported construct: *args / **kwargs in calls")
		}
		if p.cur().kind == tokName && p.look().kind == tokOp && p.look().val == "=" {
			name := p.next().val
			p.next()
			v, err := p.parseExpression(true)
			if err != nil {
				return nil, nil, err
			}
			kws = append(kws, kwExpr{name: name, val: v})
		} else {
			if len(kws) > 0 {
				return nil, nil, p.fail(t.line, "invalid syntax for function call expression")
			}
			v, err := p.parseExpression(true)
			if err != nil {
				return nil, nil, err
			}
			args = append(args, v)
		}
		needComma = true
	}
	p.next()
	return args, kws, nil
}

func (p *parser) parseCall(n expr) (expr, error) {
	line := p.cur().line
	args, kws, err := p.parseCallArgs()
	if err != nil {
		return nil, err
	}
	return &callExpr{fn: n, args: args, kwargs: kws, line: line}, nil
}

// parseFilterChain parses "|f(args)|g" (or "f(args)|g" when inline, as in
// {% filter %}) and checks that each filter exists.
func (p *parser) parseFilterChain(inline bool) ([]*filterExpr, error) {
	var fs []*filterExpr
	for p.isOp("|") || inline {
		if !inline {
			p.next()
		}
		inline = false
		t, err := p.expectKind(tokName)
		if err != nil {
			return nil, err
		}
		name := t.val
		for p.isOp(".") {
			p.next()
			a, err := p.expectKind(tokName)
			if err != nil {
				return nil, err
			}
			name += "." + a.val
		}
		f := &filterExpr{name: name, line: t.line}
		if p.isOp("(") {
			if f.args, f.kwargs, err = p.parseCallArgs(); err != nil {
				return nil, err
			}
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func (p *parser) parseTest(n expr) (expr, error) {
	t := p.next() // "is"
	negated := p.skipName("not")
	nt, err := p.expectKind(tokName)
	if err != nil {
		return nil, err
	}
	name := nt.val
	for p.isOp(".") {
		p.next()
		a, err := p.expectKind(tokName)
		if err != nil {
			return nil, err
		}
		name += "." + a.val
	}
	te := &testExpr{arg: n, name: name, line: t.line}
	c := p.cur()
	if p.isOp("(") {
		if te.args, te.kwargs, err = p.parseCallArgs(); err != nil {
			return nil, err
		}
	} else if (c.kind == tokName || c.kind == tokString || c.kind == tokInt || c.kind == tokFloat ||
		(c.kind == tokOp && (c.val == "(" || c.val == "[" || c.val == "{"))) &&
		!p.isName("else") && !p.isName("or") && !p.isName("and") {
		if p.isName("is") {
			return nil, p.fail(c.line, "You cannot chain multiple tests with is")
		}
		a, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		if a, err = p.parsePostfix(a); err != nil {
			return nil, err
		}
		te.args = []expr{a}
	}
	if negated {
		return &unaryExpr{op: "not", x: te, line: t.line}, nil
	}
	return te, nil
}

// walkNames calls f with every variable name read in body (not descending
// into nested macros).
func walkNames(body []node, f func(string)) {
	var we func(e expr)
	we = func(e expr) {
		switch e := e.(type) {
		case *nameExpr:
			f(e.name)
		case *listExpr:
			for _, x := range e.items {
				we(x)
			}
		case *tupleExpr:
			for _, x := range e.items {
				we(x)
			}
		case *dictExpr:
			for i := range e.keys {
				we(e.keys[i])
				we(e.vals[i])
			}
		case *getattrExpr:
			we(e.obj)
		case *getitemExpr:
			we(e.obj)
			we(e.key)
		case *sliceExpr:
			for _, x := range []expr{e.start, e.stop, e.step} {
				if x != nil {
					we(x)
				}
			}
		case *callExpr:
			we(e.fn)
			for _, x := range e.args {
				we(x)
			}
			for _, k := range e.kwargs {
				we(k.val)
			}
		case *filterExpr:
			if e.arg != nil {
				we(e.arg)
			}
			for _, x := range e.args {
				we(x)
			}
			for _, k := range e.kwargs {
				we(k.val)
			}
		case *testExpr:
			we(e.arg)
			for _, x := range e.args {
				we(x)
			}
			for _, k := range e.kwargs {
				we(k.val)
			}
		case *unaryExpr:
			we(e.x)
		case *binExpr:
			we(e.l)
			we(e.r)
		case *concatExpr:
			for _, x := range e.parts {
				we(x)
			}
		case *compareExpr:
			we(e.first)
			for _, x := range e.rest {
				we(x)
			}
		case *condExpr:
			we(e.test)
			we(e.yes)
			if e.no != nil {
				we(e.no)
			}
		}
	}
	var wn func(ns []node)
	wn = func(ns []node) {
		for _, n := range ns {
			switch n := n.(type) {
			case *outputNode:
				we(n.expr)
			case *ifNode:
				for i := range n.conds {
					we(n.conds[i])
					wn(n.bodies[i])
				}
				wn(n.els)
			case *forNode:
				we(n.iter)
				if n.filter != nil {
					we(n.filter)
				}
				wn(n.body)
				wn(n.els)
			case *setNode:
				we(n.value)
			case *setBlockNode:
				for _, f := range n.filters {
					we(f)
				}
				wn(n.body)
			case *filterBlockNode:
				for _, f := range n.filters {
					we(f)
				}
				wn(n.body)
			case *withNode:
				for _, v := range n.values {
					we(v)
				}
				wn(n.body)
			case *generationNode:
				wn(n.body)
			case *macroNode:
				for _, d := range n.defaults {
					we(d)
				}
			}
		}
	}
	wn(body)
}
