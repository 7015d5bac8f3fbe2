package data

import (
	"fmt"

	"github.com/whet-ai/whet/tokenizer"
	"github.com/whet-ai/whet/tokenizer/chat"
)

// Model is what the pipeline needs of a model: its tokenizer, its chat
// template and the ids of its special tokens. NewModel fills it in; a
// caller that knows better (from config.json or generation_config.json)
// may change EOS, Pad and Stop before opening a dataset.
type Model struct {
	// Tokenizer encodes text. Required.
	Tokenizer *tokenizer.Tokenizer
	// Template is the chat template, nil when the model has none; the
	// messages and sharegpt formats, and PromptStyle chat, need one.
	Template *chat.Template
	// Special are the tokenizer_config.json special tokens the template
	// sees (bos_token, eos_token, ...).
	Special chat.SpecialTokens
	// TemplateVars are further template variables (enable_thinking, say).
	TemplateVars map[string]any
	// EOS is the token appended to examples that do not end with one.
	EOS int
	// Pad is the token that pads rows (its label is -100 and its segment
	// -1, so its value never matters to the loss).
	Pad int
	// Stop are further tokens that end an assistant turn besides EOS and
	// the tokenizer's special tokens (generation_config.json's
	// eos_token_id lists them).
	Stop []int
}

// NewModel returns the Model of a tokenizer and, optionally, a chat
// template and its special tokens. EOS is the eos_token of
// tokenizer_config.json (special.EOS) when the tokenizer knows it, else the
// tokenizer's own EOS; Pad is the pad_token of tokenizer_config.json, else
// EOS. A tokenizer without any EOS is an error: examples must end with one.
func NewModel(tok *tokenizer.Tokenizer, tmpl *chat.Template, special chat.SpecialTokens) (*Model, error) {
	if tok == nil {
		return nil, fmt.Errorf("data: no tokenizer")
	}
	m := &Model{Tokenizer: tok, Template: tmpl, Special: special}
	eos, ok := -1, false
	if special.EOS != "" {
		eos, ok = tok.TokenToID(special.EOS)
	}
	if !ok {
		eos, ok = tok.EOS()
	}
	if !ok {
		return nil, fmt.Errorf("data: the tokenizer has no end-of-sequence token (tokenizer_config.json's eos_token, or a special token such as </s> or <|end_of_text|>)")
	}
	m.EOS, m.Pad = eos, eos
	if p := special.All["pad_token"]; p != "" {
		if id, ok := tok.TokenToID(p); ok {
			m.Pad = id
		}
	}
	return m, nil
}

// check reports a Model that cannot be used.
func (m *Model) check() error {
	if m == nil || m.Tokenizer == nil {
		return fmt.Errorf("data: no tokenizer")
	}
	n := m.Tokenizer.VocabSize()
	for _, x := range []struct {
		name string
		id   int
	}{{"eos", m.EOS}, {"pad", m.Pad}} {
		if x.id < 0 || x.id >= n {
			return fmt.Errorf("data: %s token id %d is outside the vocabulary (size %d)", x.name, x.id, n)
		}
	}
	return nil
}
