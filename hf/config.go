package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/whet-ai/whet/tensor"
)

// ConfigFile is the name of a model's configuration file.
const ConfigFile = "config.json"

// maxDim bounds every size in a config, so that products of two of them
// cannot overflow an int64 and a hostile file cannot ask for absurd buffers.
const maxDim = math.MaxInt32

// Config is a Llama-family config.json (Llama, Mistral, Qwen2, Qwen3 and
// their fine-tunes), with transformers' defaults applied. Raw keeps every
// member of the file, including those not parsed here.
type Config struct {
	// ModelType is model_type ("llama", "mistral", "qwen2", "qwen3", ...).
	ModelType string
	// Architectures is architectures, e.g. ["LlamaForCausalLM"]; nil when
	// absent.
	Architectures []string

	// VocabSize is vocab_size.
	VocabSize int
	// HiddenSize is hidden_size, the width of the residual stream.
	HiddenSize int
	// IntermediateSize is intermediate_size, the width of the MLP.
	IntermediateSize int
	// NumHiddenLayers is num_hidden_layers.
	NumHiddenLayers int
	// NumAttentionHeads is num_attention_heads, the query heads.
	NumAttentionHeads int
	// NumKeyValueHeads is num_key_value_heads; it defaults to
	// NumAttentionHeads (multi-head attention) when absent or null.
	NumKeyValueHeads int
	// HeadDim is head_dim; it defaults to HiddenSize/NumAttentionHeads when
	// absent or null. Qwen3 and Mistral-Nemo set it to something else.
	HeadDim int
	// MaxPositionEmbeddings is max_position_embeddings.
	MaxPositionEmbeddings int

	// RMSNormEps is rms_norm_eps (default 1e-6, as in LlamaConfig).
	RMSNormEps float64
	// HiddenAct is hidden_act (default "silu").
	HiddenAct string

	// RopeTheta is the RoPE base: rope_parameters.rope_theta, else the
	// top-level rope_theta, else 10000.
	RopeTheta float64
	// RopeScaling is the RoPE scaling from rope_scaling (transformers 4.x)
	// or rope_parameters (transformers 5); nil for plain RoPE, including an
	// explicit rope_type "default".
	RopeScaling *RopeScaling
	// PartialRotaryFactor is the fraction of each head that RoPE rotates:
	// partial_rotary_factor from rope_parameters or the top level, default
	// 1 (every Llama-family model).
	PartialRotaryFactor float64

	// TieWordEmbeddings is tie_word_embeddings (default false, as for
	// Llama): whether the output projection reuses the token embedding.
	TieWordEmbeddings bool
	// AttentionBias is attention_bias (default false): biases on the q, k,
	// v and o projections. Qwen2 has q, k and v biases whatever this says;
	// that comes from its architecture, not from this key.
	AttentionBias bool
	// MLPBias is mlp_bias (default false).
	MLPBias bool

	// DType is the dtype the weights were saved in: "dtype" (transformers
	// 4.56 and later), else "torch_dtype". One of "float32", "float16",
	// "bfloat16", "float64", or "" when absent or null.
	DType string

	// BOSTokenID is bos_token_id; nil when absent or null.
	BOSTokenID *int
	// EOSTokenIDs is eos_token_id, which may be one id or a list; nil when
	// absent or null.
	EOSTokenIDs []int
	// PadTokenID is pad_token_id; nil when absent or null.
	PadTokenID *int

	// SlidingWindow is sliding_window (Mistral, Qwen2); 0 when absent or
	// null. See SlidingWindowSize for the window that actually applies.
	SlidingWindow int
	// UseSlidingWindow is use_sliding_window (Qwen2, Qwen3); nil when
	// absent.
	UseSlidingWindow *bool
	// MaxWindowLayers is max_window_layers (Qwen2, Qwen3); 0 when absent.
	MaxWindowLayers int

	// Raw holds every member of the file as written.
	Raw map[string]json.RawMessage
}

// RopeScaling is a RoPE scaling scheme, as transformers'
// modeling_rope_utils reads it.
type RopeScaling struct {
	// Type is rope_type (or the older "type"): "linear", "dynamic", "yarn",
	// "longrope" or "llama3".
	Type string
	// Factor is factor: the context extension factor (>= 1). Required for
	// every type but longrope, where it is optional (0 when absent).
	Factor float64
	// LowFreqFactor and HighFreqFactor are llama3's low_freq_factor and
	// high_freq_factor (Llama 3.1: 1 and 4).
	LowFreqFactor, HighFreqFactor float64
	// OriginalMaxPositionEmbeddings is the pre-training context length for
	// llama3, yarn and longrope: original_max_position_embeddings from the
	// scaling object (for longrope, the top-level key wins, as for Phi-3),
	// else the config's max_position_embeddings, as transformers 5 fills
	// it in. 0 for linear and dynamic.
	OriginalMaxPositionEmbeddings int
	// AttentionFactor is attention_factor (yarn, longrope); nil when absent,
	// meaning the type's default.
	AttentionFactor *float64
	// BetaFast and BetaSlow are yarn's beta_fast and beta_slow, defaulting
	// to 32 and 1.
	BetaFast, BetaSlow float64
	// ShortFactor and LongFactor are longrope's per-frequency factors.
	ShortFactor, LongFactor []float64
	// Raw holds every member of the scaling object as written.
	Raw map[string]json.RawMessage
}

// knownDTypes are the torch dtype names a config may carry.
var knownDTypes = []string{"float32", "float16", "bfloat16", "float64"}

// ropeTypes are the rope types transformers implements for decoder-only
// text models.
var ropeTypes = []string{"default", "linear", "dynamic", "yarn", "longrope", "llama3"}

// Config reads and validates the directory's config.json.
func (m *ModelDir) Config() (*Config, error) {
	path := filepath.Join(m.path, ConfigFile)
	if err := checkRegular(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) && m.IsAdapter() {
			return nil, fmt.Errorf("read %s: %w (the directory holds a PEFT adapter; its base model's config.json is elsewhere)", path, err)
		}
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ParseConfig(path, data)
}

// TensorDType returns DType as a tensor.DType; tensor.Invalid when the
// config names no dtype or one whet's tensors do not hold (float64).
func (c *Config) TensorDType() tensor.DType {
	d, err := tensor.ParseDType(c.DType)
	if err != nil {
		return tensor.Invalid
	}
	return d
}

// SlidingWindowSize returns the attention window that applies, or 0 for
// full attention. It is sliding_window, unless use_sliding_window is false:
// Qwen2 and Qwen3 configs carry a sliding_window that transformers drops
// when use_sliding_window is false.
func (c *Config) SlidingWindowSize() int {
	if c.UseSlidingWindow != nil && !*c.UseSlidingWindow {
		return 0
	}
	return c.SlidingWindow
}

// ParseConfig parses and validates the contents of a config.json; name is
// used in errors and is usually the file's path.
func ParseConfig(name string, data []byte) (*Config, error) {
	o, err := parseObject(name, data)
	if err != nil {
		return nil, err
	}
	c := &Config{Raw: o.m}

	var ok bool
	if c.ModelType, ok, err = o.getString("model_type"); err != nil {
		return nil, err
	} else if !ok || c.ModelType == "" {
		return nil, o.fieldError("model_type", "missing; want the model family, e.g. \"llama\"")
	}
	if c.Architectures, err = o.getStrings("architectures"); err != nil {
		return nil, err
	}

	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"vocab_size", &c.VocabSize},
		{"hidden_size", &c.HiddenSize},
		{"intermediate_size", &c.IntermediateSize},
		{"num_hidden_layers", &c.NumHiddenLayers},
		{"num_attention_heads", &c.NumAttentionHeads},
		{"max_position_embeddings", &c.MaxPositionEmbeddings},
	} {
		v, ok, err := o.getInt(f.name, 1, maxDim)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, o.fieldError(f.name, "missing; want a positive integer")
		}
		*f.dst = v
	}

	if c.NumKeyValueHeads, ok, err = o.getInt("num_key_value_heads", 1, maxDim); err != nil {
		return nil, err
	} else if !ok {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, o.fieldError("num_key_value_heads", "%d does not divide num_attention_heads (%d)",
			c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	if c.HeadDim, ok, err = o.getInt("head_dim", 1, maxDim); err != nil {
		return nil, err
	} else if !ok {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return nil, o.fieldError("num_attention_heads",
				"%d does not divide hidden_size (%d), and there is no head_dim to say the head size",
				c.NumAttentionHeads, c.HiddenSize)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}

	if c.RMSNormEps, ok, err = o.getPositiveFloat("rms_norm_eps"); err != nil {
		return nil, err
	} else if !ok {
		c.RMSNormEps = 1e-6
	}
	if c.HiddenAct, ok, err = o.getString("hidden_act"); err != nil {
		return nil, err
	} else if !ok {
		c.HiddenAct = "silu"
	} else if c.HiddenAct == "" {
		return nil, o.fieldError("hidden_act", "empty; want an activation name such as \"silu\"")
	}

	for _, f := range []struct {
		name string
		dst  *bool
	}{
		{"tie_word_embeddings", &c.TieWordEmbeddings},
		{"attention_bias", &c.AttentionBias},
		{"mlp_bias", &c.MLPBias},
	} {
		if *f.dst, _, err = o.getBool(f.name); err != nil {
			return nil, err
		}
	}

	if err := c.parseDType(o); err != nil {
		return nil, err
	}
	if c.BOSTokenID, err = o.getTokenID("bos_token_id"); err != nil {
		return nil, err
	}
	if c.EOSTokenIDs, err = o.getTokenIDs("eos_token_id"); err != nil {
		return nil, err
	}
	if c.PadTokenID, err = o.getTokenID("pad_token_id"); err != nil {
		return nil, err
	}

	if c.SlidingWindow, _, err = o.getInt("sliding_window", 0, maxDim); err != nil {
		return nil, err
	}
	if b, ok, err := o.getBool("use_sliding_window"); err != nil {
		return nil, err
	} else if ok {
		c.UseSlidingWindow = &b
	}
	if c.MaxWindowLayers, _, err = o.getInt("max_window_layers", 0, maxDim); err != nil {
		return nil, err
	}

	if err := c.parseRope(o); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDType reads "dtype", which transformers 4.56 introduced in place of
// "torch_dtype", falling back to "torch_dtype".
func (c *Config) parseDType(o object) error {
	for _, key := range []string{"dtype", "torch_dtype"} {
		s, ok, err := o.getString(key)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !slices.Contains(knownDTypes, s) {
			return o.fieldError(key, "unknown dtype %q; want one of %q", s, knownDTypes)
		}
		c.DType = s
		return nil
	}
	return nil
}

// parseRope reads the RoPE base and scaling the way transformers'
// RotaryEmbeddingConfigMixin standardises them: a non-empty rope_scaling
// object wins over rope_parameters; rope_theta inside that object wins over
// the top-level rope_theta, which wins over the default 10000.
func (c *Config) parseRope(o object) error {
	scaling, hasScaling, err := o.getObject("rope_scaling")
	if err != nil {
		return err
	}
	params, hasParams, err := o.getObject("rope_parameters")
	if err != nil {
		return err
	}
	var rope object
	switch {
	case hasScaling && len(scaling.m) > 0:
		rope = scaling
	case hasParams:
		rope = params
	}
	if rope.m != nil {
		for k, v := range rope.m {
			if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
				return rope.fieldError(k, "per-layer-type RoPE parameters are not supported; want one set of parameters for every layer")
			}
		}
	}

	theta, ok, err := rope.getPositiveFloat("rope_theta")
	if err != nil {
		return err
	}
	if !ok {
		if theta, ok, err = o.getPositiveFloat("rope_theta"); err != nil {
			return err
		}
	}
	if !ok {
		theta = 10000
	}
	c.RopeTheta = theta

	prf, ok, err := rope.getFloat("partial_rotary_factor")
	if err != nil {
		return err
	}
	field := rope
	if !ok {
		prf, ok, err = o.getFloat("partial_rotary_factor")
		field = o
		if err != nil {
			return err
		}
	}
	if !ok {
		prf = 1
	}
	if !(prf > 0 && prf <= 1) {
		return field.fieldError("partial_rotary_factor", "%v is out of range; want a fraction in (0, 1]", prf)
	}
	c.PartialRotaryFactor = prf

	if rope.m == nil {
		return nil
	}
	typ, ok, err := rope.getString("rope_type")
	if err != nil {
		return err
	}
	typeKey := "rope_type"
	if !ok {
		if typ, ok, err = rope.getString("type"); err != nil {
			return err
		}
		typeKey = "type"
	}
	if !ok {
		typ = "default"
	}
	if !slices.Contains(ropeTypes, typ) {
		return rope.fieldError(typeKey, "unknown RoPE type %q; want one of %q", typ, ropeTypes)
	}
	if typ == "default" {
		return nil
	}
	rs := &RopeScaling{Type: typ, Raw: rope.m, BetaFast: 32, BetaSlow: 1}

	factorRequired := typ != "longrope"
	if rs.Factor, ok, err = rope.getFloat("factor"); err != nil {
		return err
	}
	if !ok && factorRequired {
		return rope.fieldError("factor", "missing; RoPE type %q needs a scaling factor", typ)
	}
	if ok && !(rs.Factor >= 1) {
		return rope.fieldError("factor", "%v is out of range; want a factor >= 1", rs.Factor)
	}

	if typ == "llama3" || typ == "yarn" || typ == "longrope" {
		omax, ok, err := rope.getInt("original_max_position_embeddings", 1, maxDim)
		if err != nil {
			return err
		}
		if typ == "longrope" {
			// Phi-3 keeps the pre-training length at the top level, and
			// transformers lets it win.
			if top, tok, err := o.getInt("original_max_position_embeddings", 1, maxDim); err != nil {
				return err
			} else if tok {
				omax, ok = top, true
			}
		}
		if !ok {
			omax = c.MaxPositionEmbeddings
		}
		rs.OriginalMaxPositionEmbeddings = omax
	}

	switch typ {
	case "llama3":
		for _, f := range []struct {
			name string
			dst  *float64
		}{
			{"low_freq_factor", &rs.LowFreqFactor},
			{"high_freq_factor", &rs.HighFreqFactor},
		} {
			v, ok, err := rope.getPositiveFloat(f.name)
			if err != nil {
				return err
			}
			if !ok {
				return rope.fieldError(f.name, "missing; RoPE type \"llama3\" needs it")
			}
			*f.dst = v
		}
		if rs.HighFreqFactor <= rs.LowFreqFactor {
			return rope.fieldError("high_freq_factor", "%v must be greater than low_freq_factor (%v)",
				rs.HighFreqFactor, rs.LowFreqFactor)
		}
	case "yarn":
		if v, ok, err := rope.getFloat("beta_fast"); err != nil {
			return err
		} else if ok && v != 0 {
			rs.BetaFast = v
		}
		if v, ok, err := rope.getFloat("beta_slow"); err != nil {
			return err
		} else if ok && v != 0 {
			rs.BetaSlow = v
		}
		if rs.BetaFast < rs.BetaSlow {
			return rope.fieldError("beta_fast", "%v is less than beta_slow (%v)", rs.BetaFast, rs.BetaSlow)
		}
	case "longrope":
		half := int(float64(c.HeadDim)*c.PartialRotaryFactor) / 2
		for _, f := range []struct {
			name string
			dst  *[]float64
		}{
			{"short_factor", &rs.ShortFactor},
			{"long_factor", &rs.LongFactor},
		} {
			v, ok, err := rope.getFloats(f.name)
			if err != nil {
				return err
			}
			if !ok {
				return rope.fieldError(f.name, "missing; RoPE type \"longrope\" needs it")
			}
			if len(v) != half {
				return rope.fieldError(f.name, "has %d factors; want %d (half the rotated head size)", len(v), half)
			}
			*f.dst = v
		}
	}
	if typ == "yarn" || typ == "longrope" {
		if v, ok, err := rope.getFloat("attention_factor"); err != nil {
			return err
		} else if ok {
			if v < 0 {
				return rope.fieldError("attention_factor", "%v is negative", v)
			}
			rs.AttentionFactor = &v
		}
	}
	c.RopeScaling = rs
	return nil
}
