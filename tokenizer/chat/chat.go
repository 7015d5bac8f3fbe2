package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	name string
	body []node
}

// Parse parses a chat template's source. name is used in error messages.
func Parse(name, source string) (*Template, error) {
	body, err := parse(name, source)
	if err != nil {
		return nil, err
	}
	return &Template{name: name, body: body}, nil
}

// Name is the name the template was parsed with.
func (t *Template) Name() string { return t.name }

// Message is one chat message. The template sees it as a Python dict whose
// keys are, in order, "role", "content", then Extra's keys in sorted order.
// An Extra entry named "role" or "content" replaces that field's value (use
// Extra["content"] = nil for a None content, or a []any of parts for
// multimodal content).
type Message struct {
	Role    string
	Content string
	// Extra holds the message's other keys, such as "tool_calls", "name",
	// "tool_call_id" or "reasoning_content". Values are JSON-like: nil,
	// bool, integers, floats, string, []any (or any slice), map[string]any
	// (or any map with string keys; its keys are sorted), or
	// json.RawMessage, which keeps the key order of its objects.
	Extra map[string]any
}

// Options are the template's other inputs.
type Options struct {
	// AddGenerationPrompt asks the template to end with the header of an
	// assistant turn.
	AddGenerationPrompt bool
	// BOSToken and EOSToken become bos_token and eos_token; an empty one is
	// left undefined, as transformers does for a tokenizer without it.
	BOSToken, EOSToken string
	// Tools and Documents become tools and documents; nil gives None.
	Tools, Documents []any
	// Extra holds further template variables (enable_thinking,
	// other special tokens such as pad_token, ...). It may not name
	// messages or add_generation_prompt; it overrides bos_token,
	// eos_token, tools and documents.
	Extra map[string]any
	// Now is the time strftime_now formats; the zero value means time.Now().
	Now time.Time
}

// Render renders the template for a conversation.
func (t *Template) Render(messages []Message, opts Options) (string, error) {
	msgs, err := convertMessages(messages)
	if err != nil {
		return "", err
	}
	env, err := newEnv(opts)
	if err != nil {
		return "", err
	}
	out, _, err := t.render(env, msgs, opts.AddGenerationPrompt)
	return out, err
}

// env is the converted, message-independent part of a render's context.
type env struct {
	vars map[string]value
	now  time.Time
}

func newEnv(opts Options) (*env, error) {
	e := &env{vars: map[string]value{"tools": nil, "documents": nil}, now: opts.Now}
	if e.now.IsZero() {
		e.now = time.Now()
	}
	if opts.BOSToken != "" {
		e.vars["bos_token"] = opts.BOSToken
	}
	if opts.EOSToken != "" {
		e.vars["eos_token"] = opts.EOSToken
	}
	if opts.Tools != nil {
		v, err := toValue(opts.Tools)
		if err != nil {
			return nil, fmt.Errorf("chat: tools: %w", err)
		}
		e.vars["tools"] = v
	}
	if opts.Documents != nil {
		v, err := toValue(opts.Documents)
		if err != nil {
			return nil, fmt.Errorf("chat: documents: %w", err)
		}
		e.vars["documents"] = v
	}
	for k, x := range opts.Extra {
		if k == "messages" || k == "add_generation_prompt" {
			return nil, fmt.Errorf("chat: Options.Extra may not set %q", k)
		}
		v, err := toValue(x)
		if err != nil {
			return nil, fmt.Errorf("chat: Options.Extra[%q]: %w", k, err)
		}
		e.vars[k] = v
	}
	return e, nil
}

// render runs the template on a conversation and returns the text and its
// write boundaries.
func (t *Template) render(e *env, msgs []value, agp bool) (string, []int, error) {
	out, bounds, _, err := t.renderAttr(e, msgs, agp, false)
	return out, bounds, err
}

// renderAttr is render that, with attr, also reports for each message where
// the output written while a for loop was on that message ended (-1 where
// none was).
func (t *Template) renderAttr(e *env, msgs []value, agp, attr bool) (string, []int, []int, error) {
	vars := make(map[string]value, len(e.vars)+2)
	for k, v := range e.vars {
		vars[k] = v
	}
	vars["messages"] = newList(msgs)
	vars["add_generation_prompt"] = agp
	r := &renderer{now: e.now, cur: -1}
	if attr {
		r.msgIdx = map[*dict]int{}
		r.iterEnd = make([]int, len(msgs))
		for i, m := range msgs {
			r.msgIdx[m.(*dict)] = i
			r.iterEnd[i] = -1
		}
	}
	out, bounds, err := t.run(r, vars)
	return out, bounds, r.iterEnd, err
}

// exec runs the template with the given context variables.
func (t *Template) exec(vars map[string]value, now time.Time) (string, []int, error) {
	return t.run(&renderer{now: now, cur: -1}, vars)
}

func (t *Template) run(r *renderer, vars map[string]value) (string, []int, error) {
	ctx := newScope(&scope{vars: globals()})
	for k, v := range vars {
		ctx.vars[k] = v
	}
	r.w = &r.top
	err := r.execBody(t.body, newScope(ctx))
	if err == errBreak || err == errContinue {
		err = unsupported("break or continue outside a loop")
	}
	if err != nil {
		var te *TemplateException
		if errors.As(err, &te) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("render chat template %s: %w", t.name, err)
	}
	return r.top.String(), r.bounds, nil
}

func convertMessages(messages []Message) ([]value, error) {
	out := make([]value, len(messages))
	for i, m := range messages {
		d, err := messageDict(m)
		if err != nil {
			return nil, fmt.Errorf("chat: message %d: %w", i, err)
		}
		out[i] = d
	}
	return out, nil
}

func messageDict(m Message) (*dict, error) {
	d := newDict()
	d.setStr("role", m.Role)
	d.setStr("content", m.Content)
	keys := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := toValue(m.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		d.setStr(k, v)
	}
	return d, nil
}

// toValue converts a JSON-like Go value to the engine's Python-like values.
func toValue(x any) (value, error) {
	switch v := x.(type) {
	case nil:
		return nil, nil
	case bool:
		return v, nil
	case string:
		return v, nil
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	case json.Number:
		return jsonNumber(string(v))
	case json.RawMessage:
		return decodeJSON(v)
	case Message:
		return messageDict(v)
	case []any:
		items := make([]value, len(v))
		for i, it := range v {
			c, err := toValue(it)
			if err != nil {
				return nil, err
			}
			items[i] = c
		}
		return newList(items), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := newDict()
		for _, k := range keys {
			c, err := toValue(v[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			d.setStr(k, c)
		}
		return d, nil
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d does not fit in 64 bits", u)
		}
		return int64(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Slice, reflect.Array:
		items := make([]value, rv.Len())
		for i := range items {
			c, err := toValue(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			items[i] = c
		}
		return newList(items), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("unsupported map key type %s", rv.Type().Key())
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		d := newDict()
		for _, k := range keys {
			c, err := toValue(rv.MapIndex(k).Interface())
			if err != nil {
				return nil, err
			}
			d.setStr(k.String(), c)
		}
		return d, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return toValue(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("unsupported value of type %T", x)
}

func jsonNumber(s string) (value, error) {
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %s does not fit in 64 bits", s)
		}
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) {
		return nil, fmt.Errorf("bad number %s", s)
	}
	return f, nil
}

// decodeJSON decodes JSON into engine values, keeping object key order as
// Python's json.loads does.
func decodeJSON(data []byte) (value, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	v, err := decodeJSONValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder) (value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			var items []value
			for dec.More() {
				v, err := decodeJSONValue(dec)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return newList(items), nil
		case '{':
			d := newDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeJSONValue(dec)
				if err != nil {
					return nil, err
				}
				d.setStr(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return d, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return jsonNumber(string(t))
	case string:
		return t, nil
	case bool:
		return t, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}
