package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// GenerationConfigFile is the name of a model's default decoding settings.
const GenerationConfigFile = "generation_config.json"

// GenerationConfig is a generation_config.json: the decoding defaults a
// model ships with. A nil pointer means the file does not set the value.
type GenerationConfig struct {
	// BOSTokenID is bos_token_id.
	BOSTokenID *int
	// EOSTokenIDs is eos_token_id, one id or a list (Llama 3 Instruct and
	// Qwen stop on several); nil when absent or null.
	EOSTokenIDs []int
	// PadTokenID is pad_token_id.
	PadTokenID *int
	// DoSample is do_sample: sample (true) or decode greedily (false).
	DoSample *bool
	// Temperature is temperature (>= 0).
	Temperature *float64
	// TopP is top_p, in [0, 1].
	TopP *float64
	// TopK is top_k (>= 0; 0 disables it).
	TopK *int
	// MaxNewTokens is max_new_tokens (> 0).
	MaxNewTokens *int
	// MaxLength is max_length, prompt included (> 0).
	MaxLength *int
	// RepetitionPenalty is repetition_penalty (> 0; 1 is none).
	RepetitionPenalty *float64
	// Raw holds every member of the file as written.
	Raw map[string]json.RawMessage
}

// GenerationConfig reads the directory's generation_config.json. The bool
// is false, with no error, when the directory has none.
func (m *ModelDir) GenerationConfig() (*GenerationConfig, bool, error) {
	path := filepath.Join(m.path, GenerationConfigFile)
	if err := checkRegular(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	g, err := ParseGenerationConfig(path, data)
	if err != nil {
		return nil, false, err
	}
	return g, true, nil
}

// ParseGenerationConfig parses and validates the contents of a
// generation_config.json; name is used in errors.
func ParseGenerationConfig(name string, data []byte) (*GenerationConfig, error) {
	o, err := parseObject(name, data)
	if err != nil {
		return nil, err
	}
	g := &GenerationConfig{Raw: o.m}
	if g.BOSTokenID, err = o.getTokenID("bos_token_id"); err != nil {
		return nil, err
	}
	if g.EOSTokenIDs, err = o.getTokenIDs("eos_token_id"); err != nil {
		return nil, err
	}
	if g.PadTokenID, err = o.getTokenID("pad_token_id"); err != nil {
		return nil, err
	}
	if b, ok, err := o.getBool("do_sample"); err != nil {
		return nil, err
	} else if ok {
		g.DoSample = &b
	}

	floats := []struct {
		name   string
		dst    **float64
		lo, hi float64
		loOpen bool
	}{
		{"temperature", &g.Temperature, 0, math.Inf(1), false},
		{"top_p", &g.TopP, 0, 1, false},
		{"repetition_penalty", &g.RepetitionPenalty, 0, math.Inf(1), true},
	}
	for _, f := range floats {
		v, ok, err := o.getFloat(f.name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if v < f.lo || v > f.hi || (f.loOpen && v == f.lo) {
			want := fmt.Sprintf("from %v to %v", f.lo, f.hi)
			switch {
			case f.loOpen:
				want = fmt.Sprintf("greater than %v", f.lo)
			case math.IsInf(f.hi, 1):
				want = fmt.Sprintf("at least %v", f.lo)
			}
			return nil, o.fieldError(f.name, "%v is out of range; want a number %s", v, want)
		}
		val := v
		*f.dst = &val
	}

	ints := []struct {
		name string
		dst  **int
		lo   int64
	}{
		{"top_k", &g.TopK, 0},
		{"max_new_tokens", &g.MaxNewTokens, 1},
		{"max_length", &g.MaxLength, 1},
	}
	for _, f := range ints {
		v, ok, err := o.getInt(f.name, f.lo, maxDim)
		if err != nil {
			return nil, err
		}
		if ok {
			*f.dst = &v
		}
	}
	return g, nil
}
