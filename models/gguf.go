package models

// This file reads llama.cpp's GGUF files as Hugging Face Llama-family
// checkpoints: the config.json that GGUF metadata implies, the Hugging Face
// name of every tensor, and the row permutation of the query and key
// projections that llama.cpp's converter applies for architectures whose
// RoPE rotates adjacent pairs.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/hf"
)

// ggufArch is what the conversion knows of one GGUF architecture: the
// Hugging Face class it becomes and the optional parts that class has.
type ggufArch struct {
	modelType, class string
	// qkvBias: the class always has q, k and v biases (Qwen2).
	qkvBias bool
	// attnBias: the config's attention_bias gives q, k, v and o biases
	// (Llama, Qwen3).
	attnBias bool
	// mlpBias: the config's mlp_bias gives gate, up and down biases
	// (Llama).
	mlpBias bool
	// qkNorm: RMSNorm of each query and key head (Qwen3).
	qkNorm bool
}

// ggufArchs are the architectures (general.architecture) that GGUFConfig
// converts. llama.cpp writes Mistral's models (and most Llama fine-tunes)
// as "llama"; "mistral" is accepted for files that other writers label so.
var ggufArchs = map[string]ggufArch{
	"llama":   {modelType: "llama", class: "LlamaForCausalLM", attnBias: true, mlpBias: true},
	"mistral": {modelType: "mistral", class: "MistralForCausalLM"},
	"qwen2":   {modelType: "qwen2", class: "Qwen2ForCausalLM", qkvBias: true},
	"qwen3":   {modelType: "qwen3", class: "Qwen3ForCausalLM", attnBias: true, qkNorm: true},
}

// ggufNormRope lists the architectures whose RoPE llama.cpp applies to
// adjacent pairs of a head's values (LLAMA_ROPE_TYPE_NORM in
// llama_model_rope_type), as of llama.cpp's sources in 2025, plus
// "mistral", which llama.cpp names "llama".
var ggufNormRope = map[string]bool{
	"llama": true, "mistral": true, "mistral3": true, "llama4": true, "deci": true,
	"baichuan": true, "starcoder": true, "internlm2": true, "minicpm": true,
	"xverse": true, "command-r": true, "cohere2": true, "olmo": true, "arctic": true,
	"deepseek": true, "deepseek2": true, "chatglm": true, "granite": true,
	"granitemoe": true, "chameleon": true, "smollm3": true, "ernie4_5": true,
	"ernie4_5-moe": true,
}

// GGUFRopeInterleaved reports whether llama.cpp applies RoPE to the
// adjacent pairs (2i, 2i+1) of each head for the GGUF architecture arch
// ("normal" RoPE, LLAMA_ROPE_TYPE_NORM: llama, mistral3, granite,
// deepseek, ...), rather than to the pairs (i, i+d/2) of the half-split
// ("NeoX") RoPE that Hugging Face's Llama-family models use (qwen2, qwen3,
// phi3, gemma, ... and every architecture not listed, for which it
// reports false).
//
// For an interleaved architecture, llama.cpp's converter permutes the rows
// of each query and key head (LlamaModel.permute) so that its RoPE
// computes what Hugging Face's does, and converting back must undo that
// with PermuteQK. For a half-split architecture such as Qwen2 the GGUF
// rows are Hugging Face's, and nothing is permuted.
func GGUFRopeInterleaved(arch string) bool { return ggufNormRope[arch] }

// PermuteQK permutes the rows of w, a row-major [rows, cols] query or key
// projection weight (cols 1 for a bias) of heads heads, between Hugging
// Face's layout and GGUF's, and returns the result in a new slice.
//
// llama.cpp's converter reorders the rows of each head of size d so that
// the pair (i, i+d/2) that Hugging Face's half-split RoPE rotates lands on
// rows (2i, 2i+1), which GGUF's interleaved RoPE rotates: GGUF row 2i+j of
// a head is Hugging Face row j*d/2+i. toHF maps GGUF rows to Hugging
// Face's; !toHF does the converter's permutation. The two are inverses.
// Use the query head count for q_proj and the key-value head count for
// k_proj.
//
// PermuteQK panics when len(w) is not rows*cols or the heads do not split
// rows into heads of even size.
func PermuteQK(w []float32, rows, cols, heads int, toHF bool) []float32 {
	if rows <= 0 || cols <= 0 || heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 || len(w) != rows*cols {
		panic(fmt.Sprintf("models: PermuteQK: %d values for %d rows of %d in %d heads (want rows*cols values and an even head size)",
			len(w), rows, cols, heads))
	}
	d := rows / heads
	half := d / 2
	out := make([]float32, len(w))
	for h := range heads {
		base := h * d
		for i := range half {
			for j := range 2 {
				g := base + 2*i + j    // GGUF row
				r := base + j*half + i // Hugging Face row
				src, dst := r, g
				if toHF {
					src, dst = g, r
				}
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}

// ggufLayerTensors maps the per-layer GGUF tensor names (after
// "blk.N.") to Hugging Face's (after "model.layers.N."); withBias says
// whether a ".bias" exists beside the ".weight".
var ggufLayerTensors = map[string]struct {
	hf       string
	withBias bool
}{
	"attn_norm":   {"input_layernorm", false},
	"ffn_norm":    {"post_attention_layernorm", false},
	"attn_q":      {"self_attn.q_proj", true},
	"attn_k":      {"self_attn.k_proj", true},
	"attn_v":      {"self_attn.v_proj", true},
	"attn_output": {"self_attn.o_proj", true},
	"attn_q_norm": {"self_attn.q_norm", false},
	"attn_k_norm": {"self_attn.k_norm", false},
	"ffn_gate":    {"mlp.gate_proj", true},
	"ffn_up":      {"mlp.up_proj", true},
	"ffn_down":    {"mlp.down_proj", true},
}

// GGUFTensorName returns the Hugging Face name of a GGUF tensor of a
// Llama-family model (llama.cpp's gguf-py tensor_mapping, reversed):
// token_embd.weight is model.embed_tokens.weight, output_norm.weight
// model.norm.weight, output.weight lm_head.weight, and blk.N.X the tensor X
// of model.layers.N: attn_norm (input_layernorm), attn_q, attn_k, attn_v,
// attn_output (self_attn.q_proj, k_proj, v_proj, o_proj, weight and bias),
// attn_q_norm and attn_k_norm (self_attn.q_norm, k_norm), ffn_norm
// (post_attention_layernorm), ffn_gate, ffn_up, ffn_down (mlp.gate_proj,
// up_proj, down_proj, weight and bias). Any other name, such as
// rope_freqs.weight (Llama 3's RoPE scaling, which belongs in config.json)
// or a fused attn_qkv, gives ok false.
func GGUFTensorName(name string) (hfName string, ok bool) {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", true
	case "output_norm.weight":
		return "model.norm.weight", true
	case "output.weight":
		return "lm_head.weight", true
	}
	rest, found := strings.CutPrefix(name, "blk.")
	if !found {
		return "", false
	}
	layer, rest, found := strings.Cut(rest, ".")
	if !found || !ggufCanonicalIndex(layer) {
		return "", false
	}
	base, kind, found := strings.Cut(rest, ".")
	if !found || (kind != "weight" && kind != "bias") {
		return "", false
	}
	t, found := ggufLayerTensors[base]
	if !found || (kind == "bias" && !t.withBias) {
		return "", false
	}
	return "model.layers." + layer + "." + t.hf + "." + kind, true
}

// ggufCanonicalIndex reports whether s is a layer number as written: decimal
// digits without leading zeros.
func ggufCanonicalIndex(s string) bool {
	if s == "" || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ggufSkipped reports whether a GGUF tensor without a Hugging Face
// counterpart carries nothing that a conversion loses: rope_freqs.weight
// (Llama 3's RoPE scaling factors, which GGUFConfig turns back into
// rope_scaling) and blk.N.attn_rot_embd (RoPE's inverse frequencies, which
// transformers computes from the config).
func ggufSkipped(name string) bool {
	if name == "rope_freqs.weight" {
		return true
	}
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return false
	}
	layer, rest, ok := strings.Cut(rest, ".")
	return ok && ggufCanonicalIndex(layer) && (rest == "attn_rot_embd" || rest == "attn_rot_embd.weight")
}

// GGUF metadata keys outside an architecture's namespace.
const (
	ggufKeyArch     = "general.architecture"
	ggufKeyTokens   = "tokenizer.ggml.tokens"
	ggufKeyTokModel = "tokenizer.ggml.model"
	ggufKeyBOS      = "tokenizer.ggml.bos_token_id"
	ggufKeyEOS      = "tokenizer.ggml.eos_token_id"
)

// The torch dtype names that a converted config.json may carry.
const (
	DTypeFloat32  = "float32"
	DTypeFloat16  = "float16"
	DTypeBFloat16 = "bfloat16"
)

// ggufModel is the checked metadata of a GGUF file, as Hugging Face config
// values.
type ggufModel struct {
	file    string
	arch    string
	a       ggufArch
	hidden  int
	ffn     int
	layers  int
	heads   int
	kvHeads int
	headDim int
	ctx     int
	vocab   int
	eps     float64
	theta   float64
	// rope is the rope_scaling object, nil for none.
	rope          map[string]any
	tie           bool
	attnBias      bool
	mlpBias       bool
	slidingWindow int
	bos, eos      *int
}

func (m *ggufModel) errorf(format string, args ...any) error {
	return fmt.Errorf("models: gguf %s: %s", m.file, fmt.Sprintf(format, args...))
}

// key returns the architecture's metadata key for suffix.
func (m *ggufModel) key(suffix string) string { return m.arch + "." + suffix }

// intKey reads a non-negative integer. A per-layer array (as some writers
// store head counts) is accepted when every layer has the same value.
func (m *ggufModel) intKey(f *gguf.File, suffix string, required bool) (int, bool, error) {
	key := m.key(suffix)
	v, ok := f.Get(key)
	if !ok {
		if required {
			return 0, false, m.errorf("metadata key %q is missing", key)
		}
		return 0, false, nil
	}
	one := func(v gguf.Value) (int, bool) {
		u, ok := v.AsUint()
		if !ok || u > math.MaxInt32 {
			return 0, false
		}
		return int(u), true
	}
	if v.Type() == gguf.TypeArray {
		n := v.Len()
		if n == 0 {
			return 0, false, m.errorf("metadata key %q is an empty array", key)
		}
		first, ok := one(v.Index(0))
		if !ok {
			return 0, false, m.errorf("metadata key %q is %v, want non-negative integers", key, v)
		}
		for i := 1; i < n; i++ {
			x, ok := one(v.Index(i))
			if !ok {
				return 0, false, m.errorf("metadata key %q is %v, want non-negative integers", key, v)
			}
			if x != first {
				return 0, false, m.errorf("metadata key %q varies by layer (%d in layer 0, %d in layer %d); Hugging Face's %s has one value for every layer",
					key, first, x, i, m.a.class)
			}
		}
		return first, true, nil
	}
	x, ok := one(v)
	if !ok {
		return 0, false, m.errorf("metadata key %q is %v, want a non-negative integer", key, v)
	}
	return x, true, nil
}

// ggufFloat reads a float (or integer) value. FLOAT32 values are returned
// as the shortest decimal that reads back as the same float32, so that a
// stored 1e-5 is 1e-05 in config.json and not 9.999999747378752e-06.
func ggufFloat(f *gguf.File, key string) (float64, bool, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false, nil
	}
	if x, ok := v.AsFloat(); ok {
		if v.Type() == gguf.TypeFloat32 {
			x = ggufShortF32(float32(x))
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false, fmt.Errorf("models: gguf %s: metadata key %q is %v", f.Name(), key, x)
		}
		return x, true, nil
	}
	if i, ok := v.AsInt(); ok {
		return float64(i), true, nil
	}
	return 0, false, fmt.Errorf("models: gguf %s: metadata key %q is %v, want a number", f.Name(), key, v)
}

// ggufShortF32 returns the float64 of the shortest decimal that rounds to x
// as a float32.
func ggufShortF32(x float32) float64 {
	y, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return y
}

// ggufTokenID reads an optional token id; a negative id or one outside the
// vocabulary (writers use 0xFFFFFFFF for none) is no id.
func ggufTokenID(f *gguf.File, key string, ntokens int, def int) (*int, error) {
	v, ok := f.Get(key)
	if !ok {
		if def >= 0 && def < ntokens {
			return &def, nil
		}
		return nil, nil
	}
	if u, ok := v.AsUint(); ok {
		if u < uint64(ntokens) {
			id := int(u)
			return &id, nil
		}
		return nil, nil
	}
	if _, ok := v.AsInt(); ok { // negative
		return nil, nil
	}
	return nil, fmt.Errorf("models: gguf %s: metadata key %q is %v, want a token id", f.Name(), key, v)
}

// readGGUFModel reads and checks what config.json needs from f.
func readGGUFModel(f *gguf.File) (*ggufModel, error) {
	if f == nil {
		return nil, errors.New("models: GGUFConfig: nil file")
	}
	m := &ggufModel{file: f.Name()}
	arch, err := f.String(ggufKeyArch)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	m.arch = arch
	a, ok := ggufArchs[arch]
	if !ok {
		names := make([]string, 0, len(ggufArchs))
		for k := range ggufArchs {
			names = append(names, strconv.Quote(k))
		}
		slices.Sort(names)
		return nil, m.errorf("architecture %q (%s) is not supported; supported: %s", arch, ggufKeyArch, strings.Join(names, ", "))
	}
	m.a = a

	for _, k := range []struct {
		suffix string
		dst    *int
	}{
		{"embedding_length", &m.hidden},
		{"feed_forward_length", &m.ffn},
		{"block_count", &m.layers},
		{"attention.head_count", &m.heads},
		{"context_length", &m.ctx},
	} {
		if *k.dst, _, err = m.intKey(f, k.suffix, true); err != nil {
			return nil, err
		}
		if *k.dst == 0 {
			return nil, m.errorf("metadata key %q is 0", m.key(k.suffix))
		}
	}
	var has bool
	if m.kvHeads, has, err = m.intKey(f, "attention.head_count_kv", false); err != nil {
		return nil, err
	} else if !has {
		m.kvHeads = m.heads
	}
	if m.kvHeads == 0 || m.heads%m.kvHeads != 0 {
		return nil, m.errorf("%d key-value heads (%s) do not divide the %d query heads", m.kvHeads, m.key("attention.head_count_kv"), m.heads)
	}
	if m.headDim, has, err = m.intKey(f, "attention.key_length", false); err != nil {
		return nil, err
	} else if !has {
		if m.hidden%m.heads != 0 {
			return nil, m.errorf("%d heads do not divide embedding_length %d, and %s is missing", m.heads, m.hidden, m.key("attention.key_length"))
		}
		m.headDim = m.hidden / m.heads
	}
	if m.headDim == 0 || m.headDim%2 != 0 {
		return nil, m.errorf("head size %d is not a positive even number", m.headDim)
	}
	if vl, has, err := m.intKey(f, "attention.value_length", false); err != nil {
		return nil, err
	} else if has && vl != m.headDim {
		return nil, m.errorf("value head size %d (%s) differs from the key head size %d; Hugging Face's %s has one head_dim",
			vl, m.key("attention.value_length"), m.headDim, a.class)
	}
	if rd, has, err := m.intKey(f, "rope.dimension_count", false); err != nil {
		return nil, err
	} else if has && rd != m.headDim {
		return nil, m.errorf("RoPE rotates %d of the %d values of each head (%s); Hugging Face's %s rotates all of them",
			rd, m.headDim, m.key("rope.dimension_count"), a.class)
	}
	// llama.cpp attends to the whole context for llama, qwen2 and qwen3
	// whatever the original model's sliding window was; only a "mistral"
	// file may say otherwise.
	if arch == "mistral" {
		if m.slidingWindow, _, err = m.intKey(f, "attention.sliding_window", false); err != nil {
			return nil, err
		}
	}

	epsKey := m.key("attention.layer_norm_rms_epsilon")
	if m.eps, has, err = ggufFloat(f, epsKey); err != nil {
		return nil, err
	} else if !has {
		return nil, m.errorf("metadata key %q is missing", epsKey)
	} else if !(m.eps > 0) {
		return nil, m.errorf("metadata key %q is %v, want a positive number", epsKey, m.eps)
	}
	if m.theta, has, err = ggufFloat(f, m.key("rope.freq_base")); err != nil {
		return nil, err
	} else if !has {
		m.theta = 10000 // llama.cpp's default
	} else if !(m.theta > 0) {
		return nil, m.errorf("metadata key %q is %v, want a positive number", m.key("rope.freq_base"), m.theta)
	}

	// The vocabulary is the embedding's rows.
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, m.errorf("tensor \"token_embd.weight\" is missing")
	}
	if len(emb.Shape) != 2 || emb.Shape[1] != m.hidden || emb.Shape[0] == 0 {
		return nil, m.errorf("tensor \"token_embd.weight\" has shape %v, want [vocabulary, %d]", emb.Shape, m.hidden)
	}
	m.vocab = emb.Shape[0]
	ntokens := m.vocab
	if v, ok := f.Get(ggufKeyTokens); ok {
		ntokens = v.Len()
		if ntokens > m.vocab {
			return nil, m.errorf("%s has %d tokens but token_embd.weight only %d rows", ggufKeyTokens, ntokens, m.vocab)
		}
	}
	if out, ok := f.Tensor("output.weight"); ok {
		if !slices.Equal(out.Shape, emb.Shape) {
			return nil, m.errorf("tensor \"output.weight\" has shape %v, want %v as token_embd.weight", out.Shape, emb.Shape)
		}
	} else {
		m.tie = true
	}
	for _, t := range f.Tensors() {
		base, kind, ok := ggufLayerTensor(t.Name)
		if !ok || kind != "bias" {
			continue
		}
		switch base {
		case "attn_q", "attn_k", "attn_v", "attn_output":
			m.attnBias = m.attnBias || a.attnBias
		case "ffn_gate", "ffn_up", "ffn_down":
			m.mlpBias = m.mlpBias || a.mlpBias
		}
	}

	// Special tokens: a SentencePiece ("llama") vocabulary has llama.cpp's
	// defaults, <s> = 1 and </s> = 2, as package tokenizer does.
	defBOS, defEOS := -1, -1
	if s, err := f.String(ggufKeyTokModel); err == nil && s == "llama" {
		defBOS, defEOS = 1, 2
	}
	if m.bos, err = ggufTokenID(f, ggufKeyBOS, ntokens, defBOS); err != nil {
		return nil, err
	}
	if m.eos, err = ggufTokenID(f, ggufKeyEOS, ntokens, defEOS); err != nil {
		return nil, err
	}

	if err := m.readRope(f); err != nil {
		return nil, err
	}
	return m, nil
}

// ggufLayerTensor splits a per-layer GGUF tensor name "blk.N.base.kind".
func ggufLayerTensor(name string) (base, kind string, ok bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return "", "", false
	}
	layer, rest, ok := strings.Cut(rest, ".")
	if !ok || !ggufCanonicalIndex(layer) {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// readRope reads the RoPE scaling: <arch>.rope.scaling.* (and the older
// rope.scale_linear) or, for Llama 3.1 and later, the rope_freqs.weight
// tensor of per-frequency factors that llama.cpp's converter computes from
// rope_scaling {"rope_type": "llama3", ...}.
func (m *ggufModel) readRope(f *gguf.File) error {
	typ := ""
	typeKey := m.key("rope.scaling.type")
	if _, ok := f.Get(typeKey); ok {
		s, err := f.String(typeKey)
		if err != nil {
			return fmt.Errorf("models: %w", err)
		}
		typ = s
	}
	factor, hasFactor, err := ggufFloat(f, m.key("rope.scaling.factor"))
	if err != nil {
		return err
	}
	if !hasFactor {
		if factor, hasFactor, err = ggufFloat(f, m.key("rope.scale_linear")); err != nil {
			return err
		}
	}
	if typ == "" && hasFactor && factor != 0 && factor != 1 {
		typ = "linear" // llama.cpp's default type
	}
	if attn, ok, err := ggufFloat(f, m.key("rope.scaling.attn_factor")); err != nil {
		return err
	} else if ok && attn != 1 && typ != "" && typ != "none" {
		return m.errorf("RoPE attention factor %v (%s) has no Hugging Face equivalent", attn, m.key("rope.scaling.attn_factor"))
	}
	_, hasFreqs := f.Tensor("rope_freqs.weight")
	if hasFreqs && typ != "" && typ != "none" {
		return m.errorf("has both rope_freqs.weight and RoPE scaling %q (%s); Hugging Face's config holds one", typ, typeKey)
	}
	switch typ {
	case "", "none":
		if hasFreqs {
			return m.readLlama3Rope(f)
		}
		return nil
	case "linear", "yarn":
	default:
		return m.errorf("RoPE scaling %q (%s) is not supported (supported: linear, yarn, and Llama 3's rope_freqs.weight)", typ, typeKey)
	}
	if !hasFactor || !(factor >= 1) {
		return m.errorf("RoPE scaling %q needs a factor >= 1 (%s), got %v", typ, m.key("rope.scaling.factor"), factor)
	}
	m.rope = map[string]any{"rope_type": typ, "factor": pyFloat(factor)}
	if typ == "yarn" {
		orig, has, err := m.intKey(f, "rope.scaling.original_context_length", false)
		if err != nil {
			return err
		}
		if !has || orig == 0 {
			return m.errorf("YaRN RoPE scaling needs %s", m.key("rope.scaling.original_context_length"))
		}
		m.rope["original_max_position_embeddings"] = orig
		for _, k := range []struct{ gguf, hf string }{
			{"rope.scaling.yarn_beta_fast", "beta_fast"},
			{"rope.scaling.yarn_beta_slow", "beta_slow"},
		} {
			if x, ok, err := ggufFloat(f, m.key(k.gguf)); err != nil {
				return err
			} else if ok {
				m.rope[k.hf] = pyFloat(x)
			}
		}
	}
	return nil
}

// readLlama3Rope recovers rope_scaling {"rope_type": "llama3", ...} from
// rope_freqs.weight. llama.cpp's converter stores, for each frequency
// freq_i = theta^(-2i/d), the factor 1 (wavelength 2π/freq_i below
// original/high_freq_factor), factor (above original/low_freq_factor), or
// 1/((1-s)/factor + s) in between, with s = (original/wavelength -
// low)/(high - low). The largest stored value is factor; with
// low_freq_factor 1 (every Llama 3 release) two values in between give
// high_freq_factor and the original context length; without them the
// Llama 3.1 values (1, 4, 8192) are tried. The parameters are accepted
// only if they reproduce every stored factor.
func (m *ggufModel) readLlama3Rope(f *gguf.File) error {
	rf, err := f.Float32("rope_freqs.weight")
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	half := m.headDim / 2
	if len(rf) != half {
		return m.errorf("rope_freqs.weight has %d factors, want %d (half the head size)", len(rf), half)
	}
	factor := 0.0
	for _, x := range rf {
		if !(x > 0) || math.IsInf(float64(x), 0) {
			return m.errorf("rope_freqs.weight holds %v, not a RoPE scaling factor", x)
		}
		factor = max(factor, float64(x))
	}
	if factor <= 1 {
		allOne := true
		for _, x := range rf {
			allOne = allOne && x == 1
		}
		if allOne {
			return nil // no scaling at all
		}
		return m.errorf("rope_freqs.weight holds factors below 1, not Llama 3's RoPE scaling")
	}
	factor = ggufShortF32(float32(factor))
	invWave := make([]float64, half) // 1/wavelength = freq/2π
	for i := range invWave {
		invWave[i] = math.Pow(m.theta, -float64(2*i)/float64(m.headDim)) / (2 * math.Pi)
	}
	type params struct{ low, high, orig float64 }
	try := []params{}
	// Fit s = A/wavelength - B over the smoothly interpolated factors.
	var xs, ss []float64
	for i, x := range rf {
		v := float64(x)
		if v > 1*(1+1e-5) && v < factor*(1-1e-5) {
			xs = append(xs, invWave[i])
			ss = append(ss, (1/v-1/factor)/(1-1/factor))
		}
	}
	if len(xs) >= 2 {
		n := len(xs) - 1
		if xs[0] != xs[n] {
			A := (ss[0] - ss[n]) / (xs[0] - xs[n])
			B := A*xs[0] - ss[0]
			if B > 0 && A > 0 {
				high := 1 + 1/B
				orig := math.Round(A / B)
				try = append(try, params{1, math.Round(high*1e4) / 1e4, orig})
			}
		}
	}
	try = append(try, params{1, 4, 8192})
	for _, p := range try {
		if ggufLlama3Matches(rf, invWave, factor, p.low, p.high, p.orig) {
			m.rope = map[string]any{
				"rope_type":                        "llama3",
				"factor":                           pyFloat(factor),
				"low_freq_factor":                  pyFloat(p.low),
				"high_freq_factor":                 pyFloat(p.high),
				"original_max_position_embeddings": int(p.orig),
			}
			return nil
		}
	}
	return m.errorf("rope_freqs.weight does not hold Llama 3's RoPE scaling factors for any parameters tried (factor %v); it has no Hugging Face equivalent", factor)
}

// ggufLlama3Matches reports whether the llama3 RoPE parameters give the
// factors rf (to float32 precision).
func ggufLlama3Matches(rf []float32, invWave []float64, factor, low, high, orig float64) bool {
	if !(high > low) || !(orig > 0) {
		return false
	}
	lowWave, highWave := orig/low, orig/high
	for i, x := range rf {
		wave := 1 / invWave[i]
		var want float64
		switch {
		case wave < highWave:
			want = 1
		case wave > lowWave:
			want = factor
		default:
			s := (orig/wave - low) / (high - low)
			want = 1 / ((1-s)/factor + s)
		}
		if math.Abs(float64(x)-want) > 1e-4*want {
			return false
		}
	}
	return true
}

// GGUFDType returns the dtype in which a conversion of f writes its
// weights by default: that of the GGUF's predominant float type, by number
// of elements of the tensors that have a Hugging Face counterpart. F16
// gives "float16", BF16 "bfloat16", and F32, F64 and every quantised type
// "float32" (dequantised values are generally not exact in 16 bits); ties
// go to "float32".
func GGUFDType(f *gguf.File) string {
	counts := map[string]int{}
	for _, t := range f.Tensors() {
		if _, ok := GGUFTensorName(t.Name); !ok {
			continue
		}
		counts[ggufTargetDType(t.Type)] += t.Elements
	}
	best := DTypeFloat32
	for _, d := range []string{DTypeBFloat16, DTypeFloat16} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

func ggufTargetDType(t gguf.GGMLType) string {
	switch t {
	case gguf.TypeF16:
		return DTypeFloat16
	case gguf.TypeBF16:
		return DTypeBFloat16
	}
	return DTypeFloat32
}

// pyFloat is a float that encodes to JSON as Python's json module writes
// it (repr): 10000.0, 1e-05, 0.02.
type pyFloat float64

func (x pyFloat) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("models: %v cannot be written to JSON", f)
	}
	if f == 0 {
		if math.Signbit(f) {
			return []byte("-0.0"), nil
		}
		return []byte("0.0"), nil
	}
	// Python's repr uses the exponent form below 1e-4 and from 1e16 on.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.LastIndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return []byte(e), nil // Go's 'e' form matches Python's: 1e-05, 1.5e+16
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return []byte(s), nil
}

// GGUFConfig returns the Hugging Face config of the Llama-family model in
// f (general.architecture llama, mistral, qwen2 or qwen3): the config.json
// of GGUFConfigJSON, parsed and checked by hf.ParseConfig.
func GGUFConfig(f *gguf.File) (*hf.Config, error) {
	data, err := GGUFConfigJSON(f)
	if err != nil {
		return nil, err
	}
	return hf.ParseConfig(f.Name()+" (config.json)", data)
}

// GGUFConfigJSON returns the config.json of the model in f, with torch_dtype
// GGUFDType(f). See GGUFConfigJSONAs.
func GGUFConfigJSON(f *gguf.File) ([]byte, error) {
	if f == nil {
		return nil, errors.New("models: GGUFConfigJSON: nil file")
	}
	return GGUFConfigJSONAs(f, GGUFDType(f))
}

// GGUFConfigJSONAs returns the config.json of the model in f, as
// transformers writes it (keys sorted, indented by two spaces, floats as
// Python writes them, a final newline), with torch_dtype dtype ("float32",
// "float16" or "bfloat16"). It has model_type and architectures
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or
// Qwen3ForCausalLM) and every field of the transformers config class,
// from these metadata keys:
//
//   - hidden_size, intermediate_size, num_hidden_layers,
//     num_attention_heads, num_key_value_heads, max_position_embeddings,
//     rms_norm_eps, rope_theta: <arch>.embedding_length,
//     .feed_forward_length, .block_count, .attention.head_count,
//     .attention.head_count_kv, .context_length,
//     .attention.layer_norm_rms_epsilon and .rope.freq_base (default
//     10000);
//   - head_dim: .attention.key_length, else embedding_length / head_count;
//   - rope_scaling: .rope.scaling.type (linear or yarn), .factor,
//     .original_context_length, .yarn_beta_fast/.yarn_beta_slow, or the
//     llama3 parameters recovered from the rope_freqs.weight tensor;
//   - vocab_size: the rows of token_embd.weight;
//   - tie_word_embeddings: true when there is no output.weight;
//   - attention_bias, mlp_bias: whether the file has such biases;
//   - bos_token_id, eos_token_id: tokenizer.ggml.bos_token_id and
//     eos_token_id (1 and 2 for a SentencePiece vocabulary without them).
//
// Metadata that Hugging Face's class cannot express (per-layer head counts
// that differ, partial RoPE, separate value head sizes, unknown RoPE
// scaling) is an error naming the file and the key.
func GGUFConfigJSONAs(f *gguf.File, dtype string) ([]byte, error) {
	if f == nil {
		return nil, errors.New("models: GGUFConfigJSONAs: nil file")
	}
	switch dtype {
	case DTypeFloat32, DTypeFloat16, DTypeBFloat16:
	default:
		return nil, fmt.Errorf("models: GGUFConfigJSONAs: dtype %q, want %q, %q or %q", dtype, DTypeFloat32, DTypeFloat16, DTypeBFloat16)
	}
	m, err := readGGUFModel(f)
	if err != nil {
		return nil, err
	}
	c := map[string]any{
		"architectures":           []string{m.a.class},
		"model_type":              m.a.modelType,
		"attention_dropout":       pyFloat(0),
		"bos_token_id":            m.bos,
		"eos_token_id":            m.eos,
		"head_dim":                m.headDim,
		"hidden_act":              "silu",
		"hidden_size":             m.hidden,
		"initializer_range":       pyFloat(0.02),
		"intermediate_size":       m.ffn,
		"max_position_embeddings": m.ctx,
		"num_attention_heads":     m.heads,
		"num_hidden_layers":       m.layers,
		"num_key_value_heads":     m.kvHeads,
		"rms_norm_eps":            pyFloat(m.eps),
		"rope_theta":              pyFloat(m.theta),
		"tie_word_embeddings":     m.tie,
		"torch_dtype":             dtype,
		"use_cache":               true,
		"vocab_size":              m.vocab,
	}
	if m.rope != nil {
		c["rope_scaling"] = m.rope
	} else {
		c["rope_scaling"] = nil
	}
	switch m.arch {
	case "llama":
		c["attention_bias"] = m.attnBias
		c["mlp_bias"] = m.mlpBias
		c["pretraining_tp"] = 1
	case "mistral":
		if m.slidingWindow > 0 {
			c["sliding_window"] = m.slidingWindow
		} else {
			c["sliding_window"] = nil
		}
	case "qwen2", "qwen3":
		if m.arch == "qwen3" {
			c["attention_bias"] = m.attnBias
		}
		c["max_window_layers"] = m.layers
		c["sliding_window"] = nil
		c["use_sliding_window"] = false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("models: gguf %s: config.json: %w", f.Name(), err)
	}
	return b.Bytes(), nil
}

// GGUFWeight is one tensor of a Hugging Face checkpoint converted from a
// GGUF file: where its values come from and how they are laid out.
type GGUFWeight struct {
	// Name is the Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight".
	Name string
	// Source is the GGUF tensor, e.g. "blk.0.attn_q.weight"; "" for a
	// bias that the file lacks and the Hugging Face class has (Llama with
	// attention_bias, say, has an o_proj bias beside q, k and v biases),
	// which is zero.
	Source string
	// Shape is the row-major shape, the same in both formats: [out, in]
	// for a projection, [vocab, hidden] for the embedding.
	Shape []int
	// Type is the GGUF element type of Source (F32 for a zero bias).
	Type gguf.GGMLType
	// Heads, when positive, is the number of heads whose rows Float32
	// permutes from GGUF's interleaved RoPE layout to Hugging Face's
	// (PermuteQK): the query heads for q_proj, the key-value heads for
	// k_proj, of an architecture for which GGUFRopeInterleaved is true.
	Heads int
}

// Elements is the number of values of w.
func (w GGUFWeight) Elements() int {
	n := 1
	for _, d := range w.Shape {
		n *= d
	}
	return n
}

// Float32 returns w's values from f in Hugging Face's layout: the GGUF
// tensor dequantised to float32 and, for the query and key projections
// of an interleaved-RoPE architecture, permuted by PermuteQK.
func (w GGUFWeight) Float32(f *gguf.File) ([]float32, error) {
	n := w.Elements()
	if w.Source == "" {
		return make([]float32, n), nil
	}
	data, err := f.Float32(w.Source)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("models: gguf %s: tensor %q has %d values, want %d for shape %v", f.Name(), w.Source, len(data), n, w.Shape)
	}
	if w.Heads > 0 {
		data = PermuteQK(data, w.Shape[0], n/w.Shape[0], w.Heads, true)
	}
	return data, nil
}

// GGUFWeights returns the tensors of the Hugging Face checkpoint of the
// model in f (whose config is GGUFConfig(f)), in the order transformers
// saves them, and the GGUF tensors left out because the config carries
// them (rope_freqs.weight, blk.N.attn_rot_embd). Every other GGUF tensor
// must map to a weight of the Hugging Face class with its shape, and every
// weight of the class must be in the file (but for zero biases, see
// GGUFWeight.Source); otherwise the error names the tensor.
func GGUFWeights(f *gguf.File) (weights []GGUFWeight, skipped []string, err error) {
	if f == nil {
		return nil, nil, errors.New("models: GGUFWeights: nil file")
	}
	m, err := readGGUFModel(f)
	if err != nil {
		return nil, nil, err
	}
	interleaved := GGUFRopeInterleaved(m.arch)
	type slot struct {
		w        GGUFWeight
		zeroOK   bool // a bias that may be absent
		supplied bool
	}
	var order []string
	want := map[string]*slot{}
	add := func(name string, shape []int, heads int, zeroOK bool) {
		order = append(order, name)
		if !interleaved {
			heads = 0
		}
		want[name] = &slot{w: GGUFWeight{Name: name, Shape: shape, Type: gguf.TypeF32, Heads: heads}, zeroOK: zeroOK}
	}
	h, hd, q, kv, ffn := m.hidden, m.headDim, m.heads*m.headDim, m.kvHeads*m.headDim, m.ffn
	add("model.embed_tokens.weight", []int{m.vocab, h}, 0, false)
	for l := range m.layers {
		p := "model.layers." + strconv.Itoa(l) + "."
		add(p+"input_layernorm.weight", []int{h}, 0, false)
		add(p+"self_attn.q_proj.weight", []int{q, h}, m.heads, false)
		add(p+"self_attn.k_proj.weight", []int{kv, h}, m.kvHeads, false)
		add(p+"self_attn.v_proj.weight", []int{kv, h}, 0, false)
		add(p+"self_attn.o_proj.weight", []int{h, q}, 0, false)
		if m.a.qkvBias || m.attnBias {
			add(p+"self_attn.q_proj.bias", []int{q}, m.heads, m.attnBias)
			add(p+"self_attn.k_proj.bias", []int{kv}, m.kvHeads, m.attnBias)
			add(p+"self_attn.v_proj.bias", []int{kv}, 0, m.attnBias)
		}
		if m.attnBias {
			add(p+"self_attn.o_proj.bias", []int{h}, 0, true)
		}
		if m.a.qkNorm {
			add(p+"self_attn.q_norm.weight", []int{hd}, 0, false)
			add(p+"self_attn.k_norm.weight", []int{hd}, 0, false)
		}
		add(p+"post_attention_layernorm.weight", []int{h}, 0, false)
		add(p+"mlp.gate_proj.weight", []int{ffn, h}, 0, false)
		add(p+"mlp.up_proj.weight", []int{ffn, h}, 0, false)
		add(p+"mlp.down_proj.weight", []int{h, ffn}, 0, false)
		if m.mlpBias {
			add(p+"mlp.gate_proj.bias", []int{ffn}, 0, true)
			add(p+"mlp.up_proj.bias", []int{ffn}, 0, true)
			add(p+"mlp.down_proj.bias", []int{h}, 0, true)
		}
	}
	add("model.norm.weight", []int{h}, 0, false)
	if !m.tie {
		add("lm_head.weight", []int{m.vocab, h}, 0, false)
	}

	for _, t := range f.Tensors() {
		hfName, ok := GGUFTensorName(t.Name)
		if !ok {
			if ggufSkipped(t.Name) {
				skipped = append(skipped, t.Name)
				continue
			}
			return nil, nil, m.errorf("tensor %q has no counterpart in Hugging Face's %s", t.Name, m.a.class)
		}
		s, ok := want[hfName]
		if !ok {
			return nil, nil, m.errorf("tensor %q (%s) has no counterpart in Hugging Face's %s with this config", t.Name, hfName, m.a.class)
		}
		if !slices.Equal(t.Shape, s.w.Shape) {
			return nil, nil, m.errorf("tensor %q has shape %v, want %v for %s", t.Name, t.Shape, s.w.Shape, hfName)
		}
		if !t.Type.CanDequantize() {
			return nil, nil, m.errorf("tensor %q has type %v, which cannot be converted to float", t.Name, t.Type)
		}
		s.w.Source, s.w.Type, s.supplied = t.Name, t.Type, true
	}
	for _, name := range order {
		s := want[name]
		if !s.supplied && !s.zeroOK {
			return nil, nil, m.errorf("has no tensor for Hugging Face's %s (shape %v)", name, s.w.Shape)
		}
		weights = append(weights, s.w)
	}
	return weights, skipped, nil
}
