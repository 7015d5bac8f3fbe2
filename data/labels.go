package data

import (
	"fmt"
	"strings"

	"github.com/whet-ai/whet/tokenizer/chat"
)

// IgnoreIndex is the label of a token that is not trained, as in Hugging
// Face transformers (the ignore_index of PyTorch's cross-entropy).
const IgnoreIndex = -100

// Example is one tokenized document: its tokens and their labels.
type Example struct {
	// InputIDs are the tokens.
	InputIDs []int32
	// Labels are aligned with InputIDs, as in Hugging Face: Labels[t] is
	// InputIDs[t] where the token is trained and IgnoreIndex elsewhere;
	// the model scores its prediction at t-1 against Labels[t]. Labels[0]
	// is always IgnoreIndex: nothing in the document predicts its first
	// token.
	Labels []int32
	// Source is the record the example comes from.
	Source Pos
}

// Trained returns the number of trained tokens.
func (e *Example) Trained() int {
	n := 0
	for _, l := range e.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// outcome counts what became of one record's examples.
type outcome struct {
	truncated, tooLong, untrained, split int
}

// encoder tokenizes samples and labels their tokens.
type encoder struct {
	s       *settings
	m       *Model
	vocab   int
	closing map[int]bool // tokens that end a turn
	opts    chat.Options
}

func newEncoder(s *settings, m *Model) *encoder {
	e := &encoder{s: s, m: m, vocab: m.Tokenizer.VocabSize(), closing: map[int]bool{m.EOS: true}}
	for _, t := range m.Tokenizer.SpecialTokens() {
		e.closing[t.ID] = true
	}
	for _, id := range m.Stop {
		e.closing[id] = true
	}
	e.opts = m.Special.Apply(chat.Options{Extra: m.TemplateVars})
	return e
}

// encode tokenizes one sample into examples (several when a long text is
// split), applying the label, EOS and truncation policies (see the package
// documentation).
func (e *encoder) encode(smp *sample) ([]Example, outcome, error) {
	var ids, labels []int
	var err error
	switch {
	case smp.Format == FormatTokens:
		ids, labels, err = e.tokens(smp)
	case smp.Messages != nil:
		ids, labels, err = e.chat(smp)
	case smp.Format == FormatText:
		ids = e.m.Tokenizer.Encode(smp.Text, true)
		if len(ids) == 0 || ids[len(ids)-1] != e.m.EOS {
			ids = append(ids, e.m.EOS)
		}
		labels = append([]int(nil), ids...)
	default:
		ids, labels = e.completion(smp)
	}
	if err != nil {
		return nil, outcome{}, err
	}
	return e.cut(ids, labels, smp)
}

// cut applies truncation and the first-token rule, and drops pieces that
// train nothing.
func (e *encoder) cut(ids, labels []int, smp *sample) ([]Example, outcome, error) {
	var out outcome
	T := e.s.SequenceLen
	pieces := [][2]int{{0, len(ids)}}
	if len(ids) > T {
		switch e.s.truncation(smp.Format) {
		case TruncateDrop:
			out.tooLong++
			return nil, out, nil
		case TruncateRight:
			out.truncated++
			pieces[0][1] = T
		case TruncateSplit:
			out.split++
			pieces = pieces[:0]
			for a := 0; a < len(ids); a += T {
				pieces = append(pieces, [2]int{a, min(a+T, len(ids))})
			}
		}
	}
	var exs []Example
	for _, p := range pieces {
		ex := Example{InputIDs: make([]int32, p[1]-p[0]), Labels: make([]int32, p[1]-p[0]), Source: smp.Pos}
		trained := 0
		for i := range ex.InputIDs {
			ex.InputIDs[i] = int32(ids[p[0]+i])
			ex.Labels[i] = int32(labels[p[0]+i])
			if i == 0 {
				ex.Labels[i] = IgnoreIndex
			}
			if ex.Labels[i] != IgnoreIndex {
				trained++
			}
		}
		if trained == 0 {
			out.untrained++
			continue
		}
		exs = append(exs, ex)
	}
	return exs, out, nil
}

// tokens checks a pre-tokenized sample. Its labels are taken as they are
// (all tokens are trained when it has none); no EOS is added.
func (e *encoder) tokens(smp *sample) ([]int, []int, error) {
	fl := e.s.fields
	for i, id := range smp.InputIDs {
		if id < 0 || id >= e.vocab {
			return nil, nil, &RecordError{Pos: smp.Pos, Field: fmt.Sprintf("%s[%d]", fl["input_ids"], i),
				Err: fmt.Errorf("token id %d is outside the vocabulary (size %d)", id, e.vocab)}
		}
	}
	if smp.Labels == nil {
		return smp.InputIDs, append([]int(nil), smp.InputIDs...), nil
	}
	for i, l := range smp.Labels {
		if l != IgnoreIndex && (l < 0 || l >= e.vocab) {
			return nil, nil, &RecordError{Pos: smp.Pos, Field: fmt.Sprintf("%s[%d]", fl["labels"], i),
				Err: fmt.Errorf("label %d is neither -100 nor a token id of the vocabulary (size %d)", l, e.vocab)}
		}
	}
	return smp.InputIDs, smp.Labels, nil
}

// completion tokenizes prompt and completion as one text (so that the
// tokens at their boundary are those of the whole text) and trains the
// tokens that start in the completion, and what the post-processor adds
// after them; then it appends EOS unless the text already ends with it.
func (e *encoder) completion(smp *sample) ([]int, []int) {
	enc := e.m.Tokenizer.EncodeSegments([]string{smp.Prompt, smp.Completion}, true)
	ids := enc.IDs
	labels := make([]int, len(ids), len(ids)+1)
	all := e.s.trainOn == TrainOnAll
	inCompletion := false
	for i, id := range ids {
		if enc.Segment[i] == 1 {
			inCompletion = true
		}
		labels[i] = IgnoreIndex
		if all || enc.Segment[i] == 1 || enc.Segment[i] == -1 && inCompletion {
			labels[i] = id
		}
	}
	if len(ids) == 0 || ids[len(ids)-1] != e.m.EOS {
		ids = append(ids, e.m.EOS)
		labels = append(labels, e.m.EOS)
	}
	return ids, labels
}

// chat renders a conversation with the chat template and labels its
// tokens by the turn they belong to.
func (e *encoder) chat(smp *sample) ([]int, []int, error) {
	if e.m.Template == nil {
		return nil, nil, fmt.Errorf("data: format %s needs the model's chat template, and the model has none", smp.Format)
	}
	enc, err := e.m.Template.Encode(e.m.Tokenizer, smp.Messages, e.opts)
	if err != nil {
		field := e.s.fields["messages"]
		if smp.Format == FormatShareGPT {
			field = e.s.fields["conversations"]
		} else if smp.Format != FormatMessages {
			field = ""
		}
		return nil, nil, &RecordError{Pos: smp.Pos, Field: field, Err: err}
	}
	last := -1
	for i, m := range smp.Messages {
		if m.Role == "assistant" {
			last = i
		}
	}
	// Keep template text only up to the end of the last message: what a
	// template prints after the loop (a generation prompt for a turn that
	// is not in the data) is not part of the conversation.
	end := 0
	for i, msg := range enc.Message {
		if msg >= 0 {
			end = i + 1
		}
	}
	// A last turn that is not the assistant's ends with its end-of-turn
	// token, which its span leaves out (a user span is its content).
	if last != len(smp.Messages)-1 {
		for j := end; j < len(enc.IDs) && j < end+4; j++ {
			if e.closing[enc.IDs[j]] {
				end = j + 1
				break
			}
			if !e.blank(enc.IDs[j]) {
				break
			}
		}
	}
	ids := enc.IDs[:end]
	labels := make([]int, end, end+1)
	lastTrained := -1
	for i, id := range ids {
		train := false
		switch e.s.trainOn {
		case TrainOnAll:
			train = true
		case TrainOnAssistant:
			train = enc.Assistant[i]
		case TrainOnLast:
			train = enc.Assistant[i] && enc.Message[i] == last
		}
		labels[i] = IgnoreIndex
		if train {
			labels[i] = id
			lastTrained = i
		}
	}
	// Tokens after the last trained one cannot change the loss.
	if e.s.trainOn != TrainOnAll {
		ids, labels = ids[:lastTrained+1], labels[:lastTrained+1]
	}
	if len(ids) > 0 && !e.closed(ids) {
		ids = append(ids, e.m.EOS)
		labels = append(labels, e.m.EOS)
	}
	return ids, labels, nil
}

// closed reports whether a conversation's tokens end a turn: whether its
// last token other than white space is a special token, EOS or a stop
// token (Llama 3's <|eot_id|>, ChatML's <|im_end|> before its newline,
// </s>).
func (e *encoder) closed(ids []int) bool {
	for i, n := len(ids)-1, 0; i >= 0 && n < 8; i, n = i-1, n+1 {
		if e.closing[ids[i]] {
			return true
		}
		if !e.blank(ids[i]) {
			return false
		}
	}
	return false
}

// blank reports whether a token decodes to white space only.
func (e *encoder) blank(id int) bool {
	return strings.TrimSpace(e.m.Tokenizer.Decode([]int{id}, false)) == ""
}
