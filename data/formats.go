package data

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/tokenizer/chat"
)

// sample is one record read in its format, before tokenization. Which
// fields are set depends on Format.
type sample struct {
	// Format is the record's format.
	Format Format
	// Text is a text record's text.
	Text string
	// Prompt and Completion are a completion record's, or an alpaca
	// record written with the Alpaca prompt.
	Prompt, Completion string
	// Messages is a conversation (messages and sharegpt records, and
	// completion and alpaca records with PromptStyle chat).
	Messages []chat.Message
	// InputIDs and Labels are a tokens record's; Labels is nil when the
	// record has none.
	InputIDs, Labels []int
	// Pos is where the record comes from.
	Pos Pos
}

// fieldNames lists a record's field names, sorted and quoted, for
// messages; long lists are cut.
func fieldNames(m map[string]any) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, strconv.Quote(k))
	}
	sort.Strings(names)
	if len(names) > 12 {
		names = append(names[:12], "...")
	}
	if len(names) == 1 {
		return "field " + names[0]
	}
	return "fields " + strings.Join(names, ", ")
}

// read reads a record in format f.
func (s *settings) read(r *record, f Format) (sample, error) {
	out := sample{Format: f, Pos: r.pos}
	fl := s.fields
	var err error
	switch f {
	case FormatText:
		out.Text, err = r.str(fl["text"], true)
	case FormatCompletion:
		if out.Prompt, err = r.str(fl["prompt"], true); err != nil {
			return out, err
		}
		if out.Completion, err = r.str(fl["completion"], true); err != nil {
			return out, err
		}
		if s.style == PromptChat {
			out.Messages = []chat.Message{{Role: "user", Content: out.Prompt}, {Role: "assistant", Content: out.Completion}}
		}
	case FormatAlpaca:
		var instr, input, output, system string
		if instr, err = r.str(fl["instruction"], true); err != nil {
			return out, err
		}
		if input, err = r.str(fl["input"], false); err != nil {
			return out, err
		}
		if output, err = r.str(fl["output"], true); err != nil {
			return out, err
		}
		if system, err = r.str(fl["system"], false); err != nil {
			return out, err
		}
		if s.style == PromptChat {
			user := instr
			if strings.TrimSpace(input) != "" {
				user += "\n\n" + input
			}
			if system != "" {
				out.Messages = append(out.Messages, chat.Message{Role: "system", Content: system})
			}
			out.Messages = append(out.Messages, chat.Message{Role: "user", Content: user}, chat.Message{Role: "assistant", Content: output})
		} else {
			out.Prompt, out.Completion = AlpacaPrompt(system, instr, input), output
		}
	case FormatMessages:
		out.Messages, err = s.messages(r, fl["messages"], fl["role"], fl["content"], true)
	case FormatShareGPT:
		out.Messages, err = s.messages(r, fl["conversations"], fl["from"], fl["value"], false)
	case FormatTokens:
		if out.InputIDs, err = s.tokenList(r, fl["input_ids"], true); err != nil {
			return out, err
		}
		if len(out.InputIDs) == 0 {
			return out, r.fail(fl["input_ids"], "empty")
		}
		if out.Labels, err = s.tokenList(r, fl["labels"], false); err != nil {
			return out, err
		}
		if out.Labels != nil && len(out.Labels) != len(out.InputIDs) {
			return out, r.fail(fl["labels"], "has %d labels for %d input_ids", len(out.Labels), len(out.InputIDs))
		}
	default:
		return out, fmt.Errorf("data: unknown format %q", f)
	}
	return out, err
}

// tokenList reads a list of integers.
func (s *settings) tokenList(r *record, name string, required bool) ([]int, error) {
	l, err := r.list(name, required)
	if err != nil || l == nil {
		return nil, err
	}
	out := make([]int, len(l))
	for i, v := range l {
		n, ok := asInt(v)
		if !ok || n < -1<<31 || n >= 1<<31 {
			return nil, r.fail(fmt.Sprintf("%s[%d]", name, i), "want a token id, got %s", describe(v))
		}
		out[i] = int(n)
	}
	return out, nil
}

// messages reads a conversation: a list of objects with a role and a
// content. The other keys of a messages-format object go to the template
// as the message's extra keys (tool_calls, name, ...).
func (s *settings) messages(r *record, field, roleKey, contentKey string, extra bool) ([]chat.Message, error) {
	l, err := r.list(field, true)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, r.fail(field, "empty conversation")
	}
	msgs := make([]chat.Message, 0, len(l))
	for i, v := range l {
		at := fmt.Sprintf("%s[%d]", field, i)
		m, ok := asObject(v)
		if !ok {
			return nil, r.fail(at, "want an object with %q and %q, got %s", roleKey, contentKey, describe(v))
		}
		rv, ok := m[roleKey]
		if !ok || rv == nil {
			return nil, r.fail(at+"."+roleKey, "missing (the message has %s)", fieldNames(m))
		}
		name, ok := asString(rv)
		if !ok {
			return nil, r.fail(at+"."+roleKey, "want a string, got %s", describe(rv))
		}
		role, ok := s.role(name)
		if !ok {
			return nil, r.fail(at+"."+roleKey, "unknown role %q; want system, user, assistant or tool (set roles to map it)", name)
		}
		if _, ok := m[contentKey]; !ok {
			return nil, r.fail(at+"."+contentKey, "missing (the message has %s)", fieldNames(m))
		}
		content, err := messageContent(m[contentKey])
		if err != nil {
			return nil, r.fail(at+"."+contentKey, "%v", err)
		}
		msg := chat.Message{Role: role, Content: content}
		if extra {
			for k, x := range m {
				if k == roleKey || k == contentKey || k == "role" || k == "content" {
					continue
				}
				if msg.Extra == nil {
					msg.Extra = map[string]any{}
				}
				msg.Extra[k] = plain(x)
			}
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// messageContent reads a message's content: a string, null (an empty
// content, as for an assistant turn that only calls a tool), or a list of
// parts of which the text parts are joined.
func messageContent(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	if s, ok := asString(v); ok {
		return s, nil
	}
	parts, ok := v.([]any)
	if !ok {
		return "", fmt.Errorf("want a string, got %s", describe(v))
	}
	var b strings.Builder
	for i, p := range parts {
		m, ok := p.(map[string]any)
		if !ok {
			return "", fmt.Errorf("part %d: want an object, got %s", i, describe(p))
		}
		typ, _ := asString(m["type"])
		if typ != "text" {
			return "", fmt.Errorf("part %d: type %q; only text parts are supported", i, typ)
		}
		t, ok := asString(m["text"])
		if !ok {
			return "", fmt.Errorf("part %d: text: want a string, got %s", i, describe(m["text"]))
		}
		b.WriteString(t)
	}
	return b.String(), nil
}

// role maps a role name to system, user, assistant or tool.
func (s *settings) role(name string) (string, bool) {
	if r, ok := s.roles[name]; ok {
		return r, true
	}
	switch strings.ToLower(name) {
	case "system":
		return "system", true
	case "user", "human":
		return "user", true
	case "assistant", "gpt", "chatgpt", "model", "bard", "bing":
		return "assistant", true
	case "tool", "function", "observation", "ipython":
		return "tool", true
	}
	return "", false
}

// detect tells the format of a record from its fields, and why.
func (s *settings) detect(r *record) (Format, string, error) {
	fl := s.fields
	has := func(k string) bool { return r.has(fl[k]) }
	quote := strconv.Quote
	switch {
	case has("input_ids"):
		return FormatTokens, fmt.Sprintf("it has field %s", quote(fl["input_ids"])), nil
	case has("messages") || has("conversations"):
		field := fl["messages"]
		if !has("messages") {
			field = fl["conversations"]
		}
		l, err := r.list(field, true)
		if err != nil {
			return "", "", err
		}
		for _, v := range l {
			m, ok := asObject(v)
			if !ok {
				break
			}
			switch {
			case m[fl["from"]] != nil && m[fl["value"]] != nil:
				return FormatShareGPT, fmt.Sprintf("field %s is a list of %s/%s objects", quote(field), fl["from"], fl["value"]), nil
			case m[fl["role"]] != nil:
				return FormatMessages, fmt.Sprintf("field %s is a list of %s/%s objects", quote(field), fl["role"], fl["content"]), nil
			}
		}
		return "", "", r.fail(field, "cannot tell messages (%s/%s) from sharegpt (%s/%s): its first message has neither; set format",
			fl["role"], fl["content"], fl["from"], fl["value"])
	case has("instruction") && has("output"):
		return FormatAlpaca, fmt.Sprintf("it has fields %s and %s", quote(fl["instruction"]), quote(fl["output"])), nil
	case has("prompt") && has("completion"):
		return FormatCompletion, fmt.Sprintf("it has fields %s and %s", quote(fl["prompt"]), quote(fl["completion"])), nil
	case has("text"):
		return FormatText, fmt.Sprintf("it has field %s", quote(fl["text"])), nil
	}
	return "", "", &RecordError{Pos: r.pos, Err: fmt.Errorf(
		"cannot detect the format from %s; want input_ids (tokens), messages or conversations (messages, sharegpt), instruction and output (alpaca), prompt and completion (completion) or text (text); set format, and fields to rename fields",
		fieldNames(r.fields))}
}
