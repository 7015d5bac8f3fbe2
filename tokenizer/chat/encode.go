package chat

import (
	"github.com/whet-ai/whet/tokenizer"
)

// Encoded is a conversation rendered by a chat template and tokenized, with
// the message each token belongs to.
type Encoded struct {
	// Text is the rendered conversation.
	Text string
	// IDs are its tokens, encoded as transformers' apply_chat_template does:
	// without the tokenizer's own special tokens, since the template writes
	// them (a BOS token, turn markers) as text.
	IDs []int
	// Message is, for each token, the index of the message whose span holds
	// the token's first byte, or -1 for template text outside every span
	// (headers, the generation prompt, separators).
	Message []int
	// Assistant marks the tokens of assistant spans: the assistant's
	// content and the end-of-turn text the template writes after it, which
	// is what a model is trained to produce when the loss is restricted to
	// assistant turns.
	Assistant []bool
}

// Encode renders messages with t and tokenizes the result with tok, telling
// for every token which message it belongs to (see RenderSpans).
func (t *Template) Encode(tok *tokenizer.Tokenizer, messages []Message, opts Options) (*Encoded, error) {
	text, spans, err := t.RenderSpans(messages, opts)
	if err != nil {
		return nil, err
	}
	enc := tok.EncodeWithOffsets(text, false)
	out := &Encoded{Text: text, IDs: enc.IDs, Message: make([]int, len(enc.IDs)), Assistant: make([]bool, len(enc.IDs))}
	for i := range enc.IDs {
		out.Message[i] = -1
		start := enc.Offsets[i][0]
		for _, s := range spans {
			if start >= s.Start && start < s.End {
				out.Message[i] = s.Message
				out.Assistant[i] = s.Role == "assistant"
				break
			}
		}
	}
	return out, nil
}
