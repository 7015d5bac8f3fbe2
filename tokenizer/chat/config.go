package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoTemplate is returned (wrapped) by FromTokenizerConfig and FromDir
// when a model has tokenizer files but no chat template; the special tokens
// they return are still valid.
var ErrNoTemplate = errors.New("no chat_template")

// SpecialTokens are a tokenizer's special tokens as tokenizer_config.json
// names them. transformers passes all of them to the template (bos_token,
// eos_token, unk_token, pad_token, ...).
type SpecialTokens struct {
	BOS, EOS string // "" when the config has none
	// All maps each key ending in "_token" whose value is a string or an
	// AddedToken object to the token's text.
	All map[string]string
}

// Apply returns opts with the tokens set as transformers sets them:
// BOSToken and EOSToken, and the other special tokens in Extra (an entry
// already in opts.Extra wins).
func (s SpecialTokens) Apply(opts Options) Options {
	opts.BOSToken, opts.EOSToken = s.BOS, s.EOS
	extra := map[string]any{}
	for k, v := range s.All {
		if k != "bos_token" && k != "eos_token" {
			extra[k] = v
		}
	}
	for k, v := range opts.Extra {
		extra[k] = v
	}
	if len(extra) > 0 {
		opts.Extra = extra
	}
	return opts
}

// FromTokenizerConfig reads a tokenizer_config.json: its chat_template (a
// string, or a list of {"name": ..., "template": ...} named templates) and
// its special tokens (strings or {"content": ...} AddedToken objects).
// templateName picks a named template; "" means "default", as in
// transformers. name labels the template in error messages (a file path,
// say).
func FromTokenizerConfig(data []byte, name, templateName string) (*Template, SpecialTokens, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %s: %w", name, err)
	}
	tokens, err := specialTokens(cfg)
	if err != nil {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %s: %w", name, err)
	}
	raw, ok := cfg["chat_template"]
	if !ok || string(raw) == "null" {
		return nil, tokens, fmt.Errorf("chat: %s: %w", name, ErrNoTemplate)
	}
	named, err := parseChatTemplateField(raw)
	if err != nil {
		return nil, tokens, fmt.Errorf("chat: %s: chat_template: %w", name, err)
	}
	src, label, err := pickTemplate(named, templateName)
	if err != nil {
		return nil, tokens, fmt.Errorf("chat: %s: %w", name, err)
	}
	t, err := Parse(name+label, src)
	return t, tokens, err
}

// FromDir loads a model directory's chat template as transformers does:
// chat_template.jinja (the default template) and
// additional_chat_templates/NAME.jinja (named ones) when present, else the
// chat_template of tokenizer_config.json, else that of a processor's
// chat_template.json. Special tokens come from tokenizer_config.json, which
// must exist.
func FromDir(dir, templateName string) (*Template, SpecialTokens, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %w", err)
	}
	named := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		named["default"] = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %w", err)
	}
	extra, _ := filepath.Glob(filepath.Join(dir, "additional_chat_templates", "*.jinja"))
	for _, p := range extra {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, SpecialTokens{}, fmt.Errorf("chat: %w", err)
		}
		named[strings.TrimSuffix(filepath.Base(p), ".jinja")] = string(b)
	}
	if len(named) == 0 {
		t, tok, err := FromTokenizerConfig(data, cfgPath, templateName)
		if err == nil || !errors.Is(err, ErrNoTemplate) {
			return t, tok, err
		}
		// Processors (multimodal models) keep theirs in chat_template.json.
		b, jerr := os.ReadFile(filepath.Join(dir, "chat_template.json"))
		if jerr != nil {
			return nil, tok, err
		}
		var ct map[string]json.RawMessage
		if jerr := json.Unmarshal(b, &ct); jerr != nil || ct["chat_template"] == nil {
			return nil, tok, fmt.Errorf("chat: %s: %w", filepath.Join(dir, "chat_template.json"), ErrNoTemplate)
		}
		if named, err = parseChatTemplateField(ct["chat_template"]); err != nil {
			return nil, tok, fmt.Errorf("chat: %s: %w", filepath.Join(dir, "chat_template.json"), err)
		}
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %s: %w", cfgPath, err)
	}
	tokens, err := specialTokens(cfg)
	if err != nil {
		return nil, SpecialTokens{}, fmt.Errorf("chat: %s: %w", cfgPath, err)
	}
	src, label, err := pickTemplate(named, templateName)
	if err != nil {
		return nil, tokens, fmt.Errorf("chat: %s: %w", dir, err)
	}
	t, err := Parse(filepath.Join(dir, "chat_template.jinja")+label, src)
	return t, tokens, err
}

func parseChatTemplateField(raw json.RawMessage) (map[string]string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return map[string]string{"default": s}, nil
	}
	var list []struct {
		Name     *string `json:"name"`
		Template *string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New(`want a string or a list of {"name", "template"} objects`)
	}
	named := map[string]string{}
	for i, e := range list {
		if e.Name == nil || e.Template == nil {
			return nil, fmt.Errorf(`entry %d lacks "name" or "template"`, i)
		}
		named[*e.Name] = *e.Template
	}
	return named, nil
}

// pickTemplate follows transformers: a given name must exist; otherwise
// "default"; a lone template needs no name.
func pickTemplate(named map[string]string, templateName string) (string, string, error) {
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	if templateName != "" {
		src, ok := named[templateName]
		if !ok {
			return "", "", fmt.Errorf("no chat template named %q (have %s)", templateName, strings.Join(names, ", "))
		}
		return src, labelFor(named, templateName), nil
	}
	if src, ok := named["default"]; ok {
		return src, labelFor(named, "default"), nil
	}
	return "", "", fmt.Errorf("several chat templates (%s) and none named \"default\": name one", strings.Join(names, ", "))
}

func labelFor(named map[string]string, n string) string {
	if len(named) == 1 {
		return ""
	}
	return "#" + n
}

// specialTokenKeys are transformers' SPECIAL_TOKENS_ATTRIBUTES that hold one
// token.
var specialTokenKeys = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

func specialTokens(cfg map[string]json.RawMessage) (SpecialTokens, error) {
	st := SpecialTokens{All: map[string]string{}}
	for _, k := range specialTokenKeys {
		raw, present := cfg[k]
		if !present {
			continue
		}
		tok, ok, err := tokenText(raw)
		if err != nil {
			return st, fmt.Errorf("%s: %w", k, err)
		}
		if ok {
			st.All[k] = tok
		}
	}
	st.BOS, st.EOS = st.All["bos_token"], st.All["eos_token"]
	return st, nil
}

// tokenText reads a special token: a string, null, or an AddedToken object.
func tokenText(raw json.RawMessage) (string, bool, error) {
	if string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, errors.New(`want a string, null or an object with "content"`)
	}
	return *obj.Content, true, nil
}
