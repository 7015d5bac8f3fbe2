package chat

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Span is the part of a rendered conversation that belongs to one message:
// bytes [Start, End) of the text RenderSpans returns.
//
// For a user, system or tool message it is the message's content as the
// template printed it. For an assistant message it is what the model must
// learn to produce for that turn: from the end of the generation prompt
// (or the content's start) through the content, any text the template adds
// after it for this turn (tool calls, the end-of-turn marker such as
// "<|eot_id|>", "<|im_end|>\n" or "</s>"), and no further.
type Span struct {
	Message    int
	Role       string
	Start, End int
}

// dummyUser is the turn appended to probe where an assistant turn ends.
const dummyUser = "whet dummy user turn"

// RenderSpans renders the conversation like Render and reports, for each
// message whose content appears in the text, the bytes that belong to it.
// It needs no knowledge of any particular template. It combines two
// template-agnostic signals:
//
//  1. Where a message's content is: the conversation is rendered again with
//     message i's content replaced by a unique sentinel. The two renders
//     agree before and after the content, so their longest common prefix
//     and suffix bound it. The bounded text must be non-empty (unless the
//     content is) and a substring of the content: templates trim contents
//     or, as reasoning templates do, print only part of them, but may not
//     otherwise rewrite them. Otherwise the content counts as not shown: a
//     user, system or tool message then gets no span.
//
//  2. Which output a message's turn wrote: chat templates loop over the
//     messages, so the engine records, for each message, where the output
//     written while a {% for %} loop was on that message dict ended. That
//     is where the template's text for the turn (content, tool calls,
//     "<|eot_id|>", "<|im_end|>\n", "</s>", ...) ends and the next turn's
//     begins; text written after the loop (a generation prompt, a final
//     eos_token, the trailing assistant header some Llama 3 templates
//     print) belongs to no turn.
//
// An assistant span starts where the generation prompt ends: messages[:i]
// are rendered with and without add_generation_prompt, and if the two
// differ and the first is a prefix of the text, ending at or before the
// content, the span starts at its end (so text between the prompt and the
// content, such as an empty "<think>\n\n</think>\n\n", is the model's
// to produce). Otherwise it starts at the content. It ends where the
// turn's output ends (signal 2); when the last message is an assistant
// turn and AddGenerationPrompt is set, a generation prompt the template
// prints inside the loop is left out. An assistant turn whose content the
// template does not print (a tool call rendered instead of an empty
// content, say) still gets a span when the generation prompt anchors its
// start.
//
// A template that folds the tool results into the assistant turn that
// called the tool (Gemma 4) leaves that turn's tool call outside every span:
// only its (empty) content is found.
//
// If the template writes no output inside a loop over the messages, the end
// of an assistant span falls back to comparing renders: the text after the
// content in the full conversation, in the conversation ending at this turn
// and in that conversation followed by a placeholder user turn; their
// longest common prefix, cut back to a point where each render had finished
// writing one piece of output (one {{ }} expression or one run of template
// text), is the end-of-turn text.
func (t *Template) RenderSpans(messages []Message, opts Options) (string, []Span, error) {
	msgs, err := convertMessages(messages)
	if err != nil {
		return "", nil, err
	}
	e, err := newEnv(opts)
	if err != nil {
		return "", nil, err
	}
	agp := opts.AddGenerationPrompt
	full, fullB, iterEnd, err := t.renderAttr(e, msgs, agp, true)
	if err != nil {
		return "", nil, err
	}
	last := len(msgs) - 1
	if agp && last >= 0 && iterEnd[last] >= 0 {
		// Keep a generation prompt printed inside the loop out of the last turn.
		if plain, _, ends, err := t.renderAttr(e, msgs, false, true); err == nil &&
			ends[last] >= 0 && ends[last] <= iterEnd[last] && strings.HasPrefix(full, plain[:ends[last]]) {
			iterEnd[last] = ends[last]
		}
	}
	var spans []Span
	prevEnd := 0
	for i, m := range messages {
		cs, ce, located := t.locate(e, msgs, agp, i, full)
		if m.Role != "assistant" {
			if located {
				spans = append(spans, Span{Message: i, Role: m.Role, Start: cs, End: ce})
				prevEnd = ce
			}
			continue
		}
		start, anchored := -1, false
		if p1, _, err := t.render(e, msgs[:i], true); err == nil {
			if p0, _, err := t.render(e, msgs[:i], false); err == nil && p0 != p1 &&
				strings.HasPrefix(full, p1) && len(p1) >= prevEnd && (!located || len(p1) <= cs) {
				start, anchored = len(p1), true
			}
		}
		if !anchored {
			if !located {
				return "", nil, fmt.Errorf("chat template %s: cannot find assistant message %d in the rendered text", t.name, i)
			}
			start = cs
		}
		end := iterEnd[i]
		if end < start || located && end < ce {
			if !located {
				return "", nil, fmt.Errorf("chat template %s: cannot find the end of assistant message %d in the rendered text", t.name, i)
			}
			end = ce + t.turnEnd(e, msgs, i, full[ce:], shiftBounds(fullB, ce))
		}
		spans = append(spans, Span{Message: i, Role: m.Role, Start: start, End: end})
		prevEnd = end
	}
	return full, spans, nil
}

// sentinel is a stand-in content that no template trims, splits or matches.
func sentinel(i int) string { return fmt.Sprintf("\ue000whet%d\ue001", i) }

// locate finds message i's content in text (the render of msgs with agp) by
// rendering it again with a sentinel content. A string content must show
// up as a non-empty substring of itself (or as nothing, if it is only
// whitespace); a None content as nothing (or "None"); for a list of
// content parts, the last part with a "text" is located.
func (t *Template) locate(e *env, msgs []value, agp bool, i int, text string) (int, int, bool) {
	d := msgs[i].(*dict)
	cv, _ := d.getStr("content")
	var want string // what the region must be a substring of
	var isNone bool
	var repl value // the sentinel content
	switch c := cv.(type) {
	case string:
		want, repl = c, sentinel(i)
	case nil:
		isNone, repl = true, sentinel(i)
	case *list:
		k := len(c.items) - 1
		for ; k >= 0; k-- {
			if pd, ok := c.items[k].(*dict); ok {
				if tv, ok := pd.getStr("text"); ok {
					if ts, ok := tv.(string); ok {
						want = ts
						np := copyDict(pd)
						np.setStr("text", sentinel(i))
						items := append([]value{}, c.items...)
						items[k] = np
						repl = &list{items: items}
						break
					}
				}
			}
		}
		if k < 0 {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	alt := make([]value, len(msgs))
	copy(alt, msgs)
	nd := copyDict(d)
	nd.setStr("content", repl)
	alt[i] = nd
	other, _, err := t.render(e, alt, agp)
	if err != nil || other == text {
		return 0, 0, false
	}
	s := 0
	for s < len(text) && s < len(other) && text[s] == other[s] {
		s++
	}
	for s > 0 && s < len(text) && !utf8.RuneStart(text[s]) {
		s--
	}
	n := 0
	for n < len(text)-s && n < len(other)-s && text[len(text)-1-n] == other[len(other)-1-n] {
		n++
	}
	end := len(text) - n
	for end < len(text) && !utf8.RuneStart(text[end]) {
		end++
	}
	if end < s {
		return 0, 0, false
	}
	region := text[s:end]
	switch {
	case isNone:
		// Nothing, or str(None) from a template that prints it.
		return s, end, region == "" || region == "None"
	case region == "":
		return s, end, strings.TrimFunc(want, isPySpace) == ""
	}
	return s, end, strings.Contains(want, region)
}

func copyDict(d *dict) *dict {
	nd := newDict()
	for j, k := range d.keys {
		nd.set(k, d.vals[j])
	}
	return nd
}

func shiftBounds(b []int, off int) map[int]bool {
	m := map[int]bool{0: true}
	for _, x := range b {
		if x >= off {
			m[x-off] = true
		}
	}
	return m
}

// turnEnd returns how many bytes after assistant message i's content belong
// to its turn; tail is the full text after the content and tailB its write
// boundaries.
func (t *Template) turnEnd(e *env, msgs []value, i int, tail string, tailB map[int]bool) int {
	type probe struct {
		tail   string
		bounds map[int]bool
	}
	var probes []probe
	ending := msgs[: i+1 : i+1]
	cont := append(append([]value{}, ending...), mustDict("user", dummyUser))
	for _, variant := range [][]value{ending, cont} {
		text, b, err := t.render(e, variant, false)
		if err != nil {
			continue
		}
		_, ce, ok := t.locate(e, variant, false, i, text)
		if !ok {
			continue
		}
		probes = append(probes, probe{tail: text[ce:], bounds: shiftBounds(b, ce)})
	}
	if len(probes) == 0 {
		return 0
	}
	n := len(tail)
	for _, p := range probes {
		k := 0
		for k < n && k < len(p.tail) && tail[k] == p.tail[k] {
			k++
		}
		n = k
	}
	for ; n > 0; n-- {
		if !tailB[n] {
			continue
		}
		all := true
		for _, p := range probes {
			if !p.bounds[n] {
				all = false
				break
			}
		}
		if all {
			break
		}
	}
	return n
}

func mustDict(role, content string) *dict {
	d := newDict()
	d.setStr("role", role)
	d.setStr("content", content)
	return d
}
