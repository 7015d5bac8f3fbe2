package trainer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/hf"
)

// This file reads, overrides, checks and writes recipes: ParseRecipe and
// LoadRecipe (YAML into DefaultRecipe), Set (--set key.path=value),
// Validate (every check that needs no file), CheckFiles (the checks that
// touch the file system) and YAML (the resolved recipe). docs/recipes.md
// documents every key and what the errors look like.

// A KeyError is one problem with one key of a recipe: where it was found,
// the key's path and what is wrong with it.
type KeyError struct {
	// Source is the recipe file's name, "--set KEY=VALUE" for an
	// override, or "" for a problem Validate or CheckFiles found in the
	// resolved recipe.
	Source string
	// Line is the line in Source, or 0 when there is none (an override,
	// or a resolved recipe).
	Line int
	// Key is the key's path, such as "lora.r", "data.files[1]" or
	// "data.fields.instruction"; "" for the file as a whole.
	Key string
	// Unknown is set when Key is not a key of the recipe; Suggestion is
	// then the nearest valid key path, or "".
	Unknown    bool
	Suggestion string
	// Problem says what is wrong; when empty, Err says it.
	Problem string
	// Err is the underlying error, if any (such as an *hf.NotFoundError).
	Err error
}

// Error formats the problem as "SOURCE:LINE: KEY: PROBLEM", or, for an
// unknown key, `SOURCE:LINE: unknown key "KEY" (did you mean "KEY"?)`.
func (e *KeyError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Unknown {
		fmt.Fprintf(&b, "unknown key %q", e.Key)
		if e.Suggestion != "" {
			fmt.Fprintf(&b, " (did you mean %q?)", e.Suggestion)
		}
		return b.String()
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	switch {
	case e.Problem != "":
		b.WriteString(e.Problem)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *KeyError) Unwrap() error { return e.Err }

// A RecipeError lists every problem found in a recipe, so that the recipe
// can be fixed in one go. ParseRecipe, Set, Validate and CheckFiles return
// one; errors.As finds it, and each *KeyError in it.
type RecipeError struct {
	Problems []*KeyError
}

// maxListedProblems is the most problems a RecipeError prints.
const maxListedProblems = 50

// Error prints the problem, or, for several, a count and one problem a
// line.
func (e *RecipeError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems in the recipe:", len(e.Problems))
	for i, p := range e.Problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-maxListedProblems)
			break
		}
		b.WriteString("\n  - ")
		b.WriteString(strings.ReplaceAll(p.Error(), "\n", "\n    "))
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *RecipeError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problemList collects KeyErrors.
type problemList struct {
	list []*KeyError
	bad  map[string]bool // keys with a problem already
}

func (p *problemList) add(key, format string, args ...any) {
	p.push(&KeyError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

func (p *problemList) addErr(key string, err error) {
	p.push(&KeyError{Key: key, Err: err})
}

func (p *problemList) push(e *KeyError) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[e.Key] = true
	p.list = append(p.list, e)
}

// check adds a problem for key unless ok, or unless key has one already.
func (p *problemList) check(ok bool, key, format string, args ...any) {
	if !ok && !p.bad[key] {
		p.add(key, format, args...)
	}
}

// enum checks that key's value is one of choices.
func (p *problemList) enum(key, value string, choices ...string) {
	if slices.Contains(choices, value) || p.bad[key] {
		return
	}
	msg := fmt.Sprintf("got %q; want %s", value, orList(choices))
	if s, ok := nearestName(value, choices); ok {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	p.add(key, "%s", msg)
}

func (p *problemList) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &RecipeError{Problems: p.list}
}

// orList writes choices as "a, b or c".
func orList(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// ---- Reading YAML ----

// LoadRecipe reads the recipe file at path (see ParseRecipe).
func LoadRecipe(path string) (*Recipe, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	return ParseRecipe(path, src)
}

// ParseRecipe reads a recipe from YAML; name (usually the file's path) is
// used in errors. Keys the YAML leaves out, and keys set to null, keep
// their values in DefaultRecipe; an empty document is the default recipe.
// Anchors, aliases and merge keys (<<) may be used anywhere, and top-level
// keys that begin with "x-" are ignored (a place to define anchors).
//
// Every unknown key and every value of the wrong type is reported, each
// with the file, line and key path, in one *RecipeError; an unknown key
// comes with the nearest valid key. ParseRecipe checks the types only:
// Validate checks the values, CheckFiles the files.
func ParseRecipe(name string, src []byte) (*Recipe, error) {
	if name == "" {
		name = "recipe"
	}
	r := DefaultRecipe()
	root, err := parseRecipeDocument(name, src)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return &r, nil
	}
	d := &recipeDecoder{source: name, lines: true}
	d.decode(root, reflect.ValueOf(&r).Elem(), "")
	if err := d.err(); err != nil {
		return nil, err
	}
	return &r, nil
}

// yamlLineRE finds the line in the YAML parser's errors.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlSyntaxError turns a YAML parser error into a RecipeError.
func yamlSyntaxError(name string, err error) error {
	msg := err.Error()
	e := &KeyError{Source: name, Err: err}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Problem = "invalid YAML: " + m[2]
	} else {
		e.Problem = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	}
	return &RecipeError{Problems: []*KeyError{e}}
}

// parseRecipeDocument parses src, which must hold at most one YAML document, and
// returns the document's root, or nil for an empty one.
func parseRecipeDocument(name string, src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &RecipeError{Problems: []*KeyError{{Source: name, Line: extra.Line,
			Problem: "a second YAML document (after ---); a recipe is one document"}}}
	case !errors.Is(err, io.EOF):
		return nil, yamlSyntaxError(name, err)
	}
	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, nil
		}
		n = n.Content[0]
	}
	if r := followAlias(n); r != nil && yamlNull(r) {
		return nil, nil
	}
	return n, nil
}

// Limits that keep hostile YAML (aliases of aliases, merges of merges)
// from taking unbounded time or memory.
const (
	maxAliasChain = 64
	maxMergeDepth = 16
	maxYAMLWork   = 1 << 20
)

// recipeDecoder decodes YAML nodes into a Recipe (or a part of one),
// collecting every problem.
type recipeDecoder struct {
	source string
	lines  bool // report line numbers (not for --set, whose value is one line)
	set    bool // decoding a --set value: null is not a value
	errs   []*KeyError
	work   int
}

func (d *recipeDecoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return &RecipeError{Problems: d.errs}
}

func (d *recipeDecoder) line(n *yaml.Node) int {
	if !d.lines || n == nil {
		return 0
	}
	return n.Line
}

// fail reports a problem with key, found at node n.
func (d *recipeDecoder) fail(n *yaml.Node, key, format string, args ...any) {
	if len(d.errs) > 4*maxListedProblems {
		return
	}
	d.errs = append(d.errs, &KeyError{Source: d.source, Line: d.line(n), Key: key, Problem: fmt.Sprintf(format, args...)})
}

// mistyped reports a value of the wrong type.
func (d *recipeDecoder) mistyped(at, n *yaml.Node, key string, want string) {
	msg := fmt.Sprintf("expected %s, got %s", want, describeNode(n))
	numeric := strings.Contains(want, "number") || strings.Contains(want, "integer")
	if numeric && n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if _, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); err == nil {
			msg += " (write the number without quotes)"
		}
	}
	d.fail(at, key, "%s", msg)
}

// unknown reports a key that is not in the schema.
func (d *recipeDecoder) unknown(n *yaml.Node, key, suggestion string) {
	if len(d.errs) > 4*maxListedProblems {
		return
	}
	d.errs = append(d.errs, &KeyError{Source: d.source, Line: d.line(n), Key: key, Unknown: true, Suggestion: suggestion})
}

// followAlias follows aliases to the node they name; nil for a chain too long.
func followAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasChain {
			return nil
		}
		n = n.Alias
	}
	return n
}

func yamlNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode says what a node holds, for "got ..." in errors.
func describeNode(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
	default:
		return "nothing"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!bool":
		return v
	case "!!int", "!!float":
		return v
	}
	return fmt.Sprintf("%s %q", n.ShortTag(), v)
}

// joinKey appends a key to a path.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode decodes n into v, the value at key path.
func (d *recipeDecoder) decode(at *yaml.Node, v reflect.Value, path string) {
	n := followAlias(at)
	if n == nil {
		d.fail(at, path, "aliases nested too deeply")
		return
	}
	if yamlNull(n) {
		switch {
		case !d.set:
			// null leaves the default in place.
		case v.Kind() == reflect.Slice || v.Kind() == reflect.Map:
			v.Set(reflect.Zero(v.Type()))
		default:
			d.mistyped(at, n, path, describeKeyType(path, v.Type()))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.section(at, n, v, path)
	case reflect.Map:
		d.mapping(at, n, v, path)
	case reflect.Slice:
		d.list(at, n, v, path)
	default:
		if n.Kind != yaml.ScalarNode {
			d.mistyped(at, n, path, describeKeyType(path, v.Type()))
			return
		}
		d.scalar(at, n, v, path)
	}
}

// yamlPair is one key and value of a mapping.
type yamlPair struct {
	key     string
	keyNode *yaml.Node
	value   *yaml.Node
}

// pairs lists the keys and values of mapping n, merge keys (<<) flattened:
// a mapping's own keys win over merged ones, and of the merged mappings,
// the first that has a key wins. A key given twice is an error.
func (d *recipeDecoder) pairs(n *yaml.Node, path string, depth int) []yamlPair {
	var own, merged []yamlPair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		d.work++
		if d.work > maxYAMLWork {
			d.fail(n, path, "too many keys (after merging)")
			return nil
		}
		kn, vn := n.Content[i], n.Content[i+1]
		k := followAlias(kn)
		if k == nil || k.Kind != yaml.ScalarNode {
			d.fail(kn, path, "expected a key name, got %s", describeNode(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(kn, vn, path, depth)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			where := ""
			if d.lines {
				where = fmt.Sprintf(" (first on line %d)", first.Line)
			}
			d.fail(kn, joinKey(path, k.Value), "given twice%s", where)
			continue
		}
		seen[k.Value] = kn
		own = append(own, yamlPair{k.Value, kn, vn})
	}
	if len(merged) == 0 {
		return own
	}
	var out []yamlPair
	for _, p := range merged {
		if _, taken := seen[p.key]; !taken {
			seen[p.key] = p.keyNode
			out = append(out, p)
		}
	}
	return append(out, own...)
}

// mergeSources returns the pairs a merge key (<<) brings in: those of a
// mapping, or of a list of mappings.
func (d *recipeDecoder) mergeSources(kn, vn *yaml.Node, path string, depth int) []yamlPair {
	if depth >= maxMergeDepth {
		d.fail(kn, path, "merge keys (<<) nested too deeply")
		return nil
	}
	v := followAlias(vn)
	if v != nil && v.Kind == yaml.MappingNode {
		return d.pairs(v, path, depth+1)
	}
	if v != nil && v.Kind == yaml.SequenceNode {
		var out []yamlPair
		for _, e := range v.Content {
			m := followAlias(e)
			if m == nil || m.Kind != yaml.MappingNode {
				d.fail(e, path, "a merge key (<<) takes a mapping or a list of mappings, got %s in the list", describeNode(m))
				continue
			}
			out = append(out, d.pairs(m, path, depth+1)...)
		}
		return out
	}
	d.fail(kn, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", describeNode(v))
	return nil
}

// section decodes a mapping into a struct: a recipe, or one of its
// sections.
func (d *recipeDecoder) section(at, n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.mistyped(at, n, path, describeKeyType(path, v.Type()))
		return
	}
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(n, path, 0) {
		i, ok := fields.index[p.key]
		if !ok {
			if path == "" && strings.HasPrefix(p.key, "x-") {
				continue
			}
			d.unknown(p.keyNode, joinKey(path, p.key), suggestKey(path, p.key))
			continue
		}
		d.decode(p.value, v.Field(i), joinKey(path, p.key))
	}
}

// mapping decodes a mapping into a map[string]T, over the entries it has.
// A null value removes an entry.
func (d *recipeDecoder) mapping(at, n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.mistyped(at, n, path, describeKeyType(path, v.Type()))
		return
	}
	m := reflect.MakeMap(v.Type())
	if !v.IsNil() {
		iter := v.MapRange()
		for iter.Next() {
			m.SetMapIndex(iter.Key(), iter.Value())
		}
	}
	allowed := mapKeyNames[path]
	for _, p := range d.pairs(n, path, 0) {
		key := joinKey(path, p.key)
		if allowed != nil && !slices.Contains(allowed, p.key) {
			s := ""
			if best, ok := nearestName(p.key, allowed); ok {
				s = joinKey(path, best)
			}
			d.unknown(p.keyNode, key, s)
			continue
		}
		kv := reflect.ValueOf(p.key)
		if r := followAlias(p.value); r != nil && yamlNull(r) {
			if d.set {
				d.mistyped(p.value, r, key, describeKeyType(key, v.Type().Elem()))
			} else {
				m.SetMapIndex(kv, reflect.Value{})
			}
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		before := len(d.errs)
		d.decode(p.value, e, key)
		if len(d.errs) == before {
			m.SetMapIndex(kv, e)
		}
	}
	if m.Len() == 0 {
		v.Set(reflect.Zero(v.Type()))
	} else {
		v.Set(m)
	}
}

// list decodes a sequence, or a single scalar (a list of one), into a
// slice. An empty list is nil.
func (d *recipeDecoder) list(at, n *yaml.Node, v reflect.Value, path string) {
	var items []*yaml.Node
	single := false
	switch n.Kind {
	case yaml.SequenceNode:
		items = n.Content
	case yaml.ScalarNode:
		items, single = []*yaml.Node{at}, true
	default:
		d.mistyped(at, n, path, describeKeyType(path, v.Type()))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(items))
	ok := true
	for i, it := range items {
		d.work++
		if d.work > maxYAMLWork {
			d.fail(n, path, "too many list items")
			return
		}
		key := path
		if !single {
			key = fmt.Sprintf("%s[%d]", path, i)
		}
		e := reflect.New(v.Type().Elem()).Elem()
		r := followAlias(it)
		if r == nil || r.Kind != yaml.ScalarNode || yamlNull(r) {
			d.mistyped(it, r, key, describeKeyType(path+"[]", e.Type()))
			ok = false
			continue
		}
		before := len(d.errs)
		d.scalar(it, r, e, key)
		if len(d.errs) > before {
			ok = false
			continue
		}
		s = reflect.Append(s, e)
	}
	if !ok {
		return
	}
	if s.Len() == 0 {
		v.Set(reflect.Zero(v.Type()))
	} else {
		v.Set(s)
	}
}

// yamlYesNo are the YAML 1.1 spellings of booleans that YAML 1.2 reads as
// strings; they are accepted, as Go's YAML and PyYAML accept them.
var yamlYesNo = map[string]bool{"yes": true, "y": true, "on": true, "no": false, "n": false, "off": false}

// scalar decodes scalar node n into v, a string, bool or number.
func (d *recipeDecoder) scalar(at, n *yaml.Node, v reflect.Value, path string) {
	want := describeKeyType(path, v.Type())
	switch v.Kind() {
	case reflect.String:
		if n.ShortTag() == "!!binary" {
			// YAML writes a string that is not UTF-8 this way.
			var s string
			if err := n.Decode(&s); err != nil {
				d.fail(at, path, "invalid !!binary value: %v", err)
				return
			}
			v.SetString(s)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		switch n.ShortTag() {
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				d.mistyped(at, n, path, want)
				return
			}
			v.SetBool(b)
		case "!!str":
			b, ok := yamlYesNo[strings.ToLower(n.Value)]
			if !ok {
				d.mistyped(at, n, path, want)
				return
			}
			v.SetBool(b)
		default:
			d.mistyped(at, n, path, want)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		x, ok := yamlNumber(n)
		if !ok {
			d.mistyped(at, n, path, want)
			return
		}
		i, isInt := wholeNumber(x)
		switch {
		case !isInt:
			d.mistyped(at, n, path, want)
		case i < 0:
			d.mistyped(at, n, path, want)
		case v.OverflowInt(i):
			d.fail(at, path, "%s is too large", n.Value)
		default:
			v.SetInt(i)
		}
	case reflect.Uint64, reflect.Uint:
		x, ok := yamlNumber(n)
		if !ok {
			d.mistyped(at, n, path, want)
			return
		}
		var u uint64
		switch x := x.(type) {
		case uint64:
			u = x
		default:
			i, isInt := wholeNumber(x)
			if !isInt || i < 0 {
				d.mistyped(at, n, path, want)
				return
			}
			u = uint64(i)
		}
		if v.OverflowUint(u) {
			d.fail(at, path, "%s is too large", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		x, ok := yamlNumber(n)
		if !ok {
			d.mistyped(at, n, path, want)
			return
		}
		var f float64
		switch x := x.(type) {
		case int:
			f = float64(x)
		case int64:
			f = float64(x)
		case uint64:
			f = float64(x)
		case float64:
			f = x
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			d.mistyped(at, n, path, want)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(at, path, "cannot be set (type %s)", v.Type())
	}
}

// yamlNumber returns the value of an !!int or !!float scalar: an int, int64,
// uint64 or float64.
func yamlNumber(n *yaml.Node) (any, bool) {
	switch n.ShortTag() {
	case "!!int", "!!float":
	default:
		return nil, false
	}
	var x any
	if err := n.Decode(&x); err != nil {
		return nil, false
	}
	switch x.(type) {
	case int, int64, uint64, float64:
		return x, true
	}
	return nil, false
}

// wholeNumber returns x as an int64 when it is a whole number that fits.
func wholeNumber(x any) (int64, bool) {
	switch x := x.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// ---- The schema ----

// keySchema is the yaml keys of a struct type, in field order.
type keySchema struct {
	keys  []string
	index map[string]int
}

// yamlFields reads the yaml keys of struct type t.
func yamlFields(t reflect.Type) keySchema {
	s := keySchema{index: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		s.keys = append(s.keys, key)
		s.index[key] = i
	}
	return s
}

// recipeKey is one key of the schema.
type recipeKey struct {
	path string
}

// recipeKeys lists every key path of the recipe, sections included, in
// the order of the struct fields.
func recipeKeys() []recipeKey {
	var out []recipeKey
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		s := yamlFields(t)
		for _, k := range s.keys {
			ft := t.Field(s.index[k]).Type
			p := joinKey(prefix, k)
			out = append(out, recipeKey{p})
			if ft.Kind() == reflect.Struct {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Recipe](), "")
	return out
}

// dataFieldNames are the names data.fields may rename: data's own names for
// the fields its formats read (data.Config.Fields).
var dataFieldNames = []string{
	"text", "prompt", "completion", "instruction", "input", "output", "system",
	"messages", "role", "content", "conversations", "from", "value", "input_ids", "labels",
}

// mapKeyNames lists the keys a map-valued key allows.
var mapKeyNames = map[string][]string{"data.fields": dataFieldNames}

// positiveKeys are the numeric keys whose values must be above zero (the
// others must be at least zero); parsing rejects negatives, Validate
// zero.
var positiveKeys = map[string]bool{
	"micro_batch_size": true, "gradient_accumulation_steps": true,
	"lora.r": true, "lora.alpha": true, "optimizer.lr": true,
}

// describeKeyType names what a key takes, for "expected ..." in errors.
func describeKeyType(path string, t reflect.Type) string {
	positive := positiveKeys[strings.TrimSuffix(path, "[]")]
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		if positive {
			return "a positive integer"
		}
		return "a non-negative integer"
	case reflect.Uint64, reflect.Uint:
		return "a non-negative integer"
	case reflect.Float64:
		if positive {
			return "a positive number"
		}
		return "a non-negative number"
	case reflect.Slice:
		elem := describeKeyType(path+"[]", t.Elem())
		elem = strings.TrimPrefix(strings.TrimPrefix(elem, "a "), "an ")
		if !strings.HasSuffix(elem, "s") {
			elem += "s"
		}
		return "a list of " + elem
	case reflect.Map:
		if path == "data.fields" {
			return "a mapping of field names to the names in the data"
		}
		return "a mapping of names to values"
	case reflect.Struct:
		if path == "" {
			return "a mapping of recipe keys"
		}
		return fmt.Sprintf("a mapping of keys (the %s section)", path)
	}
	return t.String()
}

// ---- Suggestions ----

// keySynonyms maps the names other tools (axolotl, torchtune, Hugging Face's
// TrainingArguments) give to a key, normalised, to whet's key path.
var keySynonyms = map[string]string{
	"base_model": "model", "model_name_or_path": "model", "model_name": "model", "model_path": "model",
	"pretrained_model": "model", "checkpoint_dir": "model",
	"datasets": "data.files", "dataset": "data.files", "data_files": "data.files", "train_files": "data.files",
	"val_set_size": "data.eval_fraction", "sample_packing": "data.packing", "packing": "data.packing",
	"sequence_len": "data.sequence_len", "max_seq_len": "data.sequence_len", "max_seq_length": "data.sequence_len",
	"seq_len": "data.sequence_len", "max_length": "data.sequence_len", "train_on_inputs": "data.train_on",
	"adapter": "method", "finetune_type": "method", "peft": "method",
	"lora_r": "lora.r", "lora_rank": "lora.r", "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout",
	"lora_target_modules": "lora.target_modules", "target_modules": "lora.target_modules",
	"lora_attn_modules": "lora.target_modules", "use_rslora": "lora.rslora", "use_dora": "lora.dora",
	"lora_model_dir": "init_adapter", "adapter_path": "init_adapter", "resume_from_adapter": "init_adapter",
	"learning_rate": "optimizer.lr", "lr": "optimizer.lr", "optim": "optimizer.name",
	"adam_beta1": "optimizer.betas", "adam_beta2": "optimizer.betas", "adam_epsilon": "optimizer.eps",
	"lr_scheduler": "schedule.name", "lr_scheduler_type": "schedule.name", "scheduler": "schedule.name",
	"num_epochs": "epochs", "num_train_epochs": "epochs",
	"batch_size": "micro_batch_size", "per_device_train_batch_size": "micro_batch_size",
	"train_batch_size": "micro_batch_size", "gradient_accumulation": "gradient_accumulation_steps",
	"grad_clip": "max_grad_norm", "clip_grad_norm": "max_grad_norm", "save_limit": "save_total_limit",
	"out_dir": "output_dir", "output": "output_dir", "eval_interval": "eval_steps", "save_interval": "save_steps",
	"log_every_n_steps": "logging_steps",

	"lora.rank": "lora.r", "lora.lora_r": "lora.r", "lora.lora_rank": "lora.r", "lora.lora_alpha": "lora.alpha",
	"lora.lora_dropout": "lora.dropout", "lora.target": "lora.target_modules", "lora.targets": "lora.target_modules",
	"lora.modules": "lora.target_modules", "lora.use_rslora": "lora.rslora", "lora.use_dora": "lora.dora",
	"lora.init_lora_weights": "lora.init", "lora.layers": "lora.layers_to_transform",
	"optimizer.learning_rate": "optimizer.lr", "optimizer.type": "optimizer.name", "optimizer.epsilon": "optimizer.eps",
	"schedule.type": "schedule.name", "schedule.scheduler": "schedule.name", "schedule.warmup": "schedule.warmup_steps",
	"schedule.min_learning_rate": "schedule.min_lr", "schedule.lr": "optimizer.lr",
	"data.path": "data.files", "data.paths": "data.files", "data.file": "data.files", "data.data_files": "data.files",
	"data.train_files": "data.files", "data.type": "data.format", "data.max_seq_len": "data.sequence_len",
	"data.max_seq_length": "data.sequence_len", "data.sample_packing": "data.packing",
	"data.train_on_inputs": "data.train_on", "data.val_set_size": "data.eval_fraction", "data.template": "data.chat_template",
}

// normKey folds case and dashes for comparing key names.
func normKey(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
}

// closeEnough is the largest edit distance a suggestion may have from a
// name of n characters.
func closeEnough(n int) int {
	switch {
	case n <= 1:
		return 0
	case n <= 3:
		return 1
	case n <= 6:
		return 2
	}
	return 3
}

// nearestName returns the option closest to s (ignoring case and dashes), if
// it is close enough to be a likely typo.
func nearestName(s string, options []string) (string, bool) {
	ns := normKey(s)
	best, bestD := "", math.MaxInt
	for _, o := range options {
		no := normKey(o)
		if no == ns {
			return o, true
		}
		if dd := editDistance(ns, no); dd < bestD {
			best, bestD = o, dd
		}
	}
	if best != "" && bestD <= closeEnough(len([]rune(ns))) {
		return best, true
	}
	return "", false
}

// suggestKey returns the key path an unknown key under parent most likely
// meant, or "".
func suggestKey(parent, key string) string {
	full := normKey(joinKey(parent, key))
	if s, ok := keySynonyms[full]; ok {
		return s
	}
	if parent != "" {
		// A section may have been left out: lora_r under lora.
		if s, ok := keySynonyms[normKey(key)]; ok && strings.HasPrefix(s, parent+".") {
			return s
		}
	}
	// The names at this level, and the other tools' names for them, with
	// the key path each stands for.
	all := recipeKeys()
	var names, targets []string
	for _, k := range all {
		if dir, base := splitKey(k.path); dir == parent {
			names, targets = append(names, base), append(targets, k.path)
		}
	}
	syns := make([]string, 0, len(keySynonyms))
	for syn := range keySynonyms {
		syns = append(syns, syn)
	}
	slices.Sort(syns)
	for _, syn := range syns {
		if dir, base := splitKey(syn); dir == parent {
			names, targets = append(names, base), append(targets, keySynonyms[syn])
		}
	}
	if s, ok := nearestName(key, names); ok {
		return targets[slices.Index(names, s)]
	}
	// A name cut short or run on: micro_batch for micro_batch_size.
	nk := normKey(key)
	var prefixed []string
	for i, n := range names {
		nn := normKey(n)
		if len(nk) >= 3 && len(nn) >= 3 && (strings.HasPrefix(nn, nk) || strings.HasPrefix(nk, nn)) &&
			!slices.Contains(prefixed, targets[i]) {
			prefixed = append(prefixed, targets[i])
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	// The key may belong in another section: packing at the top level.
	var exact, close []string
	for _, k := range all {
		_, base := splitKey(k.path)
		if normKey(base) == nk {
			exact = append(exact, k.path)
		} else if editDistance(nk, normKey(base)) <= closeEnough(len([]rune(nk))) {
			close = append(close, k.path)
		}
	}
	if len(exact) == 1 {
		return exact[0]
	}
	if len(exact) == 0 && len(close) == 1 {
		return close[0]
	}
	return ""
}

// splitKey splits "a.b.c" into "a.b" and "c".
func splitKey(p string) (dir, base string) {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// editDistance is the optimal string alignment distance between a and b: the
// Levenshtein distance with transpositions of adjacent characters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Names that long are not typos of a recipe key.
		return max(len(ra), len(rb))
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// ---- Overrides ----

// Set applies a command-line override, "key.path=value" (whet train
// --set), such as lora.r=32, optimizer.lr=1e-4, data.packing=false,
// data.files=[a.jsonl,b.jsonl] or data.fields.instruction=question.
//
// The value is read as YAML (a scalar, or a flow sequence or mapping),
// except where the key takes a string, or a list of strings given as one
// value without brackets: that is taken as it is written (so globs and
// chat templates need no quoting), unless it is in quotes. A list or a
// mapping replaces the whole value; a section given as a mapping
// (lora={r: 8, alpha: 16}) changes only the keys it names. An empty value
// empties a list or mapping. Errors are those of ParseRecipe, naming the
// override; on an error the recipe is left unchanged.
func (r *Recipe) Set(assignment string) error {
	src := "--set " + assignment
	key, value, ok := strings.Cut(assignment, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !ok || key == "" {
		return &RecipeError{Problems: []*KeyError{{Source: "--set",
			Problem: fmt.Sprintf("%q: want KEY=VALUE, such as lora.r=32", assignment)}}}
	}
	d := &recipeDecoder{source: src, set: true}
	v := reflect.ValueOf(r).Elem()
	path := ""
	segs := strings.Split(key, ".")
	for i, seg := range segs {
		switch v.Kind() {
		case reflect.Struct:
			s := yamlFields(v.Type())
			idx, found := s.index[seg]
			if !found {
				d.unknown(nil, joinKey(path, seg), suggestKey(path, seg))
				return d.err()
			}
			v, path = v.Field(idx), joinKey(path, seg)
			continue
		case reflect.Map:
			name := strings.Join(segs[i:], ".")
			full := path + "." + name
			if allowed := mapKeyNames[path]; allowed != nil && !slices.Contains(allowed, name) {
				s := ""
				if best, ok := nearestName(name, allowed); ok {
					s = joinKey(path, best)
				}
				d.unknown(nil, full, s)
				return d.err()
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.assign(e, value, full, true)
			if err := d.err(); err != nil {
				return err
			}
			m := reflect.MakeMap(v.Type())
			if !v.IsNil() {
				iter := v.MapRange()
				for iter.Next() {
					m.SetMapIndex(iter.Key(), iter.Value())
				}
			}
			m.SetMapIndex(reflect.ValueOf(name), e)
			v.Set(m)
			return nil
		default:
			d.fail(nil, path, "takes %s, so it has no key %q", describeKeyType(path, v.Type()), strings.Join(segs[i:], "."))
			return d.err()
		}
	}
	tmp := reflect.New(v.Type()).Elem()
	if v.Kind() == reflect.Struct {
		tmp.Set(v) // a section given as a mapping changes only the keys it names
	}
	d.assign(tmp, value, path, false)
	if err := d.err(); err != nil {
		return err
	}
	v.Set(tmp)
	return nil
}

// assign decodes an override's value into v (a fresh value), for key path.
func (d *recipeDecoder) assign(v reflect.Value, value, path string, mapEntry bool) {
	quoted := len(value) >= 2 && (value[0] == '"' && value[len(value)-1] == '"' || value[0] == '\'' && value[len(value)-1] == '\'')
	literal := !quoted && (v.Kind() == reflect.String ||
		v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String && value != "" && !strings.ContainsAny(value[:1], "[{"))
	if literal {
		if v.Kind() == reflect.String {
			v.SetString(value)
		} else {
			v.Set(reflect.ValueOf([]string{value}).Convert(v.Type()))
		}
		return
	}
	if value == "" && !mapEntry && (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	want := describeKeyType(path, v.Type())
	if value == "" {
		d.fail(nil, path, "expected %s, got nothing", want)
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		d.fail(nil, path, "expected %s; %q is not a YAML value: %s", want, value, strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	n := &doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.DocumentNode || n.Kind == 0 {
		d.fail(nil, path, "expected %s, got nothing", want)
		return
	}
	d.decode(n, v, path)
}

// ---- Validation ----

// The values of the enumerated keys.
var (
	validMethods     = []string{"lora", "full"}
	validOptimizers  = []string{"adamw", "adamw8bit", "sgd"}
	validQuantTypes  = []string{"none", "nf4", "fp4", "int8"}
	validSchedules   = []string{"constant", "linear", "cosine"}
	validLoRAInits   = []string{"default", "gaussian"}
	validNaNPolicies = []string{"stop", "skip"}
	validFormats     = []string{string(data.FormatText), string(data.FormatCompletion), string(data.FormatAlpaca),
		string(data.FormatMessages), string(data.FormatShareGPT), string(data.FormatTokens)}
	validTrainOns     = []string{string(data.TrainOnAssistant), string(data.TrainOnAll), string(data.TrainOnLast)}
	validTruncations  = []string{string(data.TruncateDrop), string(data.TruncateRight), string(data.TruncateSplit)}
	validPromptStyles = []string{string(data.PromptPlain), string(data.PromptChat)}
)

// Validate checks every value of the recipe that can be checked without
// reading a file, and returns one *RecipeError that lists every problem
// found, each with its key path; nil when there is none.
func (r *Recipe) Validate() error {
	var p problemList
	r.checkNumbers(&p)

	// Model and method.
	p.check(strings.TrimSpace(r.Model) != "", "model",
		"not set; want a model directory, a Hugging Face repo id (such as meta-llama/Llama-3.2-1B-Instruct) or a .gguf file")
	p.check(r.Revision == "" || !isGGUFPath(r.Model), "revision",
		"%q applies to a repo id in the Hugging Face cache, not to the .gguf file %s", r.Revision, r.Model)
	p.enum("method", r.Method, validMethods...)
	p.check(r.InitAdapter == "" || r.Method != "full", "init_adapter",
		"continues training a LoRA adapter, so it needs method: lora (method is full)")
	q := &r.Quantization
	p.enum("quantization.type", q.Type, validQuantTypes...)
	p.check(q.Type == "none" || r.Method == "lora", "quantization.type",
		"a quantised base stays frozen, so it needs method: lora (method is %s)", r.Method)
	p.check(q.BlockSize == 64 || q.BlockSize == 128 || q.BlockSize == 256 || q.BlockSize == 512 || q.BlockSize == 1024 || q.BlockSize == 2048 || q.BlockSize == 4096,
		"quantization.block_size", "got %d; want a power of two from 64 to 4096", q.BlockSize)
	p.check(!q.DoubleQuant || q.Type == "nf4" || q.Type == "fp4", "quantization.double_quant", "applies to nf4 and fp4")
	p.check(q.OutlierThreshold == 0 || q.Type == "int8", "quantization.outlier_threshold", "applies to int8")
	p.check(!(q.Type != "none" && r.LoRA.DoRA), "lora.dora", "DoRA on a quantised base is not supported")

	// Data.
	d := &r.Data
	p.check(len(d.Files) > 0, "data.files", "no training files; want one or more paths, globs or directories")
	for i, f := range d.Files {
		p.check(strings.TrimSpace(f) != "", fmt.Sprintf("data.files[%d]", i), "empty file name")
	}
	for i, f := range d.EvalFiles {
		p.check(strings.TrimSpace(f) != "", fmt.Sprintf("data.eval_files[%d]", i), "empty file name")
	}
	if d.Format != "" {
		p.enum("data.format", d.Format, validFormats...)
	}
	for _, k := range sortedFieldKeys(d.Fields) {
		key := "data.fields." + k
		if !slices.Contains(dataFieldNames, k) {
			s := ""
			if best, ok := nearestName(k, dataFieldNames); ok {
				s = "data.fields." + best
			}
			p.push(&KeyError{Key: key, Unknown: true, Suggestion: s})
			continue
		}
		p.check(d.Fields[k] != "", key, "renamed to an empty name")
	}
	p.check(d.EvalFraction < 1, "data.eval_fraction", "got %g; want a fraction in [0, 1)", d.EvalFraction)
	p.check(d.EvalFraction == 0 || len(d.EvalFiles) == 0, "data.eval_fraction",
		"set data.eval_fraction or data.eval_files, not both")
	p.check(d.SequenceLen >= 2, "data.sequence_len", "got %d; want at least 2", d.SequenceLen)
	if d.TrainOn != "" {
		p.enum("data.train_on", d.TrainOn, validTrainOns...)
	}
	if d.Truncation != "" {
		p.enum("data.truncation", d.Truncation, validTruncations...)
	}
	if d.PromptStyle != "" {
		p.enum("data.prompt_style", d.PromptStyle, validPromptStyles...)
	}

	// LoRA.
	l := &r.LoRA
	p.check(l.R >= 1, "lora.r", "got %d; want a rank of at least 1", l.R)
	p.check(l.Alpha > 0, "lora.alpha", "got %g; want a positive number", l.Alpha)
	p.check(l.Dropout < 1, "lora.dropout", "got %g; want a probability in [0, 1)", l.Dropout)
	p.enum("lora.init", l.Init, validLoRAInits...)
	p.check(len(l.TargetModules) > 0 || l.TargetRegex != "", "lora.target_modules",
		"empty, and no lora.target_regex; want module names such as [q_proj, v_proj], or [all-linear]")
	for i, m := range l.TargetModules {
		p.check(strings.TrimSpace(m) != "", fmt.Sprintf("lora.target_modules[%d]", i), "empty module name")
	}
	p.check(!slices.Contains(l.TargetModules, "all-linear") || len(l.TargetModules) == 1, "lora.target_modules",
		"all-linear already names every linear layer but the output; give it alone")
	if l.TargetRegex != "" {
		if _, err := regexp.Compile(l.TargetRegex); err != nil {
			p.add("lora.target_regex", "not a valid regular expression: %v", err)
		}
	}
	pattern := l.TargetRegex != "" || slices.Equal(l.TargetModules, []string{"all-linear"})
	p.check(len(l.LayersToTransform) == 0 || !pattern, "lora.layers_to_transform",
		"applies to a list of module names, not to all-linear or lora.target_regex (as in PEFT)")

	// Optimiser and schedule.
	o := &r.Optimizer
	p.enum("optimizer.name", o.Name, validOptimizers...)
	p.check(o.LR > 0, "optimizer.lr", "got %g; want a positive learning rate", o.LR)
	p.check(len(o.Betas) == 2, "optimizer.betas", "got %d values; want two, such as [0.9, 0.999]", len(o.Betas))
	for i, b := range o.Betas {
		p.check(b < 1, fmt.Sprintf("optimizer.betas[%d]", i), "got %g; want a number in [0, 1)", b)
	}
	p.check(!o.Nesterov || o.Name != "sgd" || o.Momentum > 0, "optimizer.nesterov",
		"needs optimizer.momentum above 0")
	p.check(!o.Nesterov || o.Name != "adamw", "optimizer.nesterov", "applies to sgd, not adamw")
	s := &r.Schedule
	p.enum("schedule.name", s.Name, validSchedules...)
	p.check(s.WarmupRatio < 1, "schedule.warmup_ratio", "got %g; want a fraction in [0, 1)", s.WarmupRatio)
	p.check(s.MinLR <= o.LR || p.bad["optimizer.lr"], "schedule.min_lr",
		"got %g; want at most optimizer.lr (%g)", s.MinLR, o.LR)
	p.check(s.MinLR == 0 || s.Name != "constant" && s.Name != "linear", "schedule.min_lr",
		"applies to the cosine schedule only (schedule.name is %s)", s.Name)

	// The run.
	p.check(r.Epochs >= 1 || r.MaxSteps > 0, "epochs", "got %d; want at least 1 (or set max_steps)", r.Epochs)
	p.check(r.MicroBatchSize >= 1, "micro_batch_size", "got %d; want at least 1", r.MicroBatchSize)
	p.check(r.GradientAccumulationSteps >= 1, "gradient_accumulation_steps", "got %d; want at least 1",
		r.GradientAccumulationSteps)
	p.check(r.EvalSteps == 0 || d.EvalFraction > 0 || len(d.EvalFiles) > 0, "eval_steps",
		"evaluates every %d steps, but there is no evaluation data; set data.eval_fraction or data.eval_files", r.EvalSteps)
	p.check(strings.TrimSpace(r.OutputDir) != "", "output_dir", "not set; want the directory for checkpoints and the result")
	p.enum("nan_policy", r.NaNPolicy, validNaNPolicies...)
	return p.err()
}

// checkNumbers checks that every number of the recipe is finite and not
// negative, as parsing does; it catches recipes built in Go.
func (r *Recipe) checkNumbers(p *problemList) {
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Struct:
			s := yamlFields(v.Type())
			for _, k := range s.keys {
				walk(v.Field(s.index[k]), joinKey(path, k))
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Int, reflect.Int64, reflect.Int32:
			if v.Int() < 0 {
				p.add(path, "got %d; want %s", v.Int(), describeKeyType(path, v.Type()))
			}
		case reflect.Float64:
			if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				p.add(path, "got %g; want %s", f, describeKeyType(path, v.Type()))
			}
		}
	}
	walk(reflect.ValueOf(r).Elem(), "")
}

func sortedFieldKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// isGGUFPath reports whether a model names a .gguf file.
func isGGUFPath(model string) bool {
	return strings.HasSuffix(strings.ToLower(strings.TrimSpace(model)), ".gguf")
}

// ---- Files ----

// CheckFiles checks, before any work starts, what the recipe names on
// disk: that the model exists (a directory with config.json and weights,
// a .gguf file, or a repo id in the local Hugging Face cache), that every
// entry of data.files and data.eval_files matches a dataset file, that
// init_adapter is a PEFT adapter directory, and that data.sequence_len
// fits the model's context (max_position_embeddings of config.json, or
// ARCH.context_length of a GGUF). Relative paths are read from the working
// directory. It returns one *RecipeError listing every problem; nil when
// there is none. Call Validate first: CheckFiles skips what is not set.
func (r *Recipe) CheckFiles() error {
	var p problemList
	ctx, ctxFrom := r.checkModel(&p)
	checkData := func(key string, entries []string) {
		for i, f := range entries {
			k := key
			if len(entries) > 1 {
				k = fmt.Sprintf("%s[%d]", key, i)
			}
			if strings.TrimSpace(f) == "" {
				continue // Validate reports it
			}
			if _, err := data.ListFiles([]string{f}); err != nil {
				p.add(k, "%s", dataFileProblem(f, err))
			}
		}
	}
	checkData("data.files", r.Data.Files)
	checkData("data.eval_files", r.Data.EvalFiles)
	if r.InitAdapter != "" {
		if msg := adapterProblem(r.InitAdapter); msg != "" {
			p.add("init_adapter", "%s", msg)
		}
	}
	if ctx > 0 && r.Data.SequenceLen > ctx {
		p.add("data.sequence_len", "%d is more than the model's context length, %d (%s)", r.Data.SequenceLen, ctx, ctxFrom)
	}
	if st, err := os.Stat(r.OutputDir); err == nil && !st.IsDir() {
		p.add("output_dir", "%s is a file; want a directory", r.OutputDir)
	}
	return p.err()
}

// checkModel checks the model and returns its context length and where
// that was read (0 and "" when unknown).
func (r *Recipe) checkModel(p *problemList) (int, string) {
	model := strings.TrimSpace(r.Model)
	if model == "" {
		return 0, "" // Validate reports it
	}
	if isGGUFPath(model) {
		path := expandTilde(model)
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			p.add("model", "no such file: %s%s", path, cwdNote(path))
			return 0, ""
		case err != nil:
			p.addErr("model", err)
			return 0, ""
		case !st.IsDir():
			return ggufContext(p, path)
		}
		// A directory named *.gguf: treat it as a model directory.
	}
	md, err := hf.Resolve(model, r.Revision)
	if err != nil {
		var nf *hf.NotFoundError
		if errors.As(err, &nf) {
			p.push(&KeyError{Key: "model", Problem: notFoundProblem(nf), Err: err})
		} else {
			p.addErr("model", err)
		}
		return 0, ""
	}
	cfgPath := filepath.Join(md.Path(), hf.ConfigFile)
	if _, err := os.Stat(cfgPath); err != nil && md.IsAdapter() {
		p.add("model", "%s holds a PEFT adapter, not a model; name its base model as model and the adapter as init_adapter", md.Path())
		return 0, ""
	}
	cfg, err := md.Config()
	if err != nil {
		p.addErr("model", err)
		return 0, ""
	}
	if _, err := md.Weights(); err != nil {
		p.addErr("model", err)
	}
	return cfg.MaxPositionEmbeddings, "max_position_embeddings in " + cfgPath
}

// notFoundProblem says that a model was not found locally, where it was
// looked for and how to fetch it.
func notFoundProblem(e *hf.NotFoundError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", e.Model)
	if e.Revision != "" {
		fmt.Fprintf(&b, " at revision %q", e.Revision)
	}
	b.WriteString(" not found locally (whet never downloads); looked for:")
	for _, t := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %s", t.Path, t.Result)
	}
	if e.Hint != "" {
		b.WriteString("\n")
		b.WriteString(e.Hint)
	}
	fmt.Fprintf(&b, "\nfetch it into the Hugging Face cache with: %s", e.Command())
	return b.String()
}

// ggufContext reads ARCH.context_length of the GGUF file at path.
func ggufContext(p *problemList, path string) (int, string) {
	f, err := gguf.Open(path)
	if err != nil {
		p.addErr("model", err)
		return 0, ""
	}
	defer f.Close()
	arch, err := f.String("general.architecture")
	if err != nil {
		p.addErr("model", err)
		return 0, ""
	}
	key := arch + ".context_length"
	n, err := f.Uint(key)
	if errors.Is(err, gguf.ErrNotFound) {
		return 0, ""
	}
	if err != nil {
		p.addErr("model", err)
		return 0, ""
	}
	if n > math.MaxInt32 {
		return 0, ""
	}
	return int(n), key + " in " + path
}

// dataFileProblem explains why a data.files entry matches nothing.
func dataFileProblem(entry string, err error) string {
	if !strings.ContainsAny(entry, "*?[") {
		if _, serr := os.Stat(entry); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Sprintf("no such file or directory: %s%s", entry, cwdNote(entry))
		}
	}
	return strings.TrimPrefix(err.Error(), "data: ")
}

// adapterProblem checks a PEFT adapter directory; "" when it is one.
func adapterProblem(dir string) string {
	path := expandTilde(dir)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("no such directory: %s%s", path, cwdNote(path))
	case err != nil:
		return err.Error()
	case !st.IsDir():
		return fmt.Sprintf("%s is a file; want a PEFT adapter directory (adapter_config.json and adapter_model.safetensors)", path)
	}
	var missing []string
	for _, name := range []string{hf.AdapterConfigFile, hf.AdapterSafetensorsFile} {
		if st, err := os.Stat(filepath.Join(path, name)); err != nil || !st.Mode().IsRegular() {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s is not a PEFT adapter directory: it has no %s", path, strings.Join(missing, " and no "))
	}
	return ""
}

// cwdNote says where a relative path was looked for.
func cwdNote(path string) string {
	if filepath.IsAbs(path) {
		return ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" (relative paths are read from the working directory, %s)", wd)
}

// expandTilde expands a leading ~/ to the home directory.
func expandTilde(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// ---- Writing ----

// YAML returns the resolved recipe, every key with its value, as YAML
// that ParseRecipe reads back to the same recipe. A run saves it as
// recipe.yaml in its output directory.
func (r *Recipe) YAML() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(r); err != nil {
		return nil, fmt.Errorf("recipe to YAML: %w", err)
	}
	flowLists(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("recipe to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("recipe to YAML: %w", err)
	}
	return b.Bytes(), nil
}

// flowLists writes the lists of scalars of n in flow style, [a, b], when
// they are short.
func flowLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		width := 0
		flow := true
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || strings.ContainsAny(c.Value, "\n") {
				flow = false
				break
			}
			width += len(c.Value) + 2
		}
		if flow && width <= 80 {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowLists(c)
	}
}
