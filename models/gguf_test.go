package models

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/tensor"
)

// ggufStoriesPath is the real test model, beside the checkout (see
// ../shared/models/README.md).
const ggufStoriesPath = "../../shared/models/stories260K.gguf"

func openGGUFStories(t *testing.T) *gguf.File {
	t.Helper()
	if _, err := os.Stat(ggufStoriesPath); err != nil {
		t.Skipf("%s is absent (it lives in ../shared beside the checkout): %v", ggufStoriesPath, err)
	}
	f, err := gguf.Open(ggufStoriesPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestGGUFTensorName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"token_embd.weight", "model.embed_tokens.weight"},
		{"output_norm.weight", "model.norm.weight"},
		{"output.weight", "lm_head.weight"},
		{"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
		{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
		{"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"},
		{"blk.2.attn_v.weight", "model.layers.2.self_attn.v_proj.weight"},
		{"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
		{"blk.10.attn_q.bias", "model.layers.10.self_attn.q_proj.bias"},
		{"blk.10.attn_k.bias", "model.layers.10.self_attn.k_proj.bias"},
		{"blk.10.attn_v.bias", "model.layers.10.self_attn.v_proj.bias"},
		{"blk.10.attn_output.bias", "model.layers.10.self_attn.o_proj.bias"},
		{"blk.4.attn_q_norm.weight", "model.layers.4.self_attn.q_norm.weight"},
		{"blk.4.attn_k_norm.weight", "model.layers.4.self_attn.k_norm.weight"},
		{"blk.5.ffn_norm.weight", "model.layers.5.post_attention_layernorm.weight"},
		{"blk.6.ffn_gate.weight", "model.layers.6.mlp.gate_proj.weight"},
		{"blk.7.ffn_up.weight", "model.layers.7.mlp.up_proj.weight"},
		{"blk.79.ffn_down.weight", "model.layers.79.mlp.down_proj.weight"},
		{"blk.0.ffn_down.bias", "model.layers.0.mlp.down_proj.bias"},
	} {
		got, ok := GGUFTensorName(c.in)
		if !ok || got != c.want {
			t.Errorf("GGUFTensorName(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	for _, in := range []string{
		"rope_freqs.weight", "blk.0.attn_rot_embd", "blk.0.attn_qkv.weight", "blk.0.attn_norm.bias",
		"blk.0.attn_q_norm.bias", "output_norm.bias", "token_embd.bias", "blk.00.attn_q.weight",
		"blk.-1.attn_q.weight", "blk.x.attn_q.weight", "blk.0.attn_q", "blk.0.attn_q.scale", "blk..attn_q.weight",
		"blk.0.ffn_gate_exps.weight", "blk.0.post_attention_norm.weight", "", "model.embed_tokens.weight",
	} {
		if got, ok := GGUFTensorName(in); ok {
			t.Errorf("GGUFTensorName(%q) = %q, true; want false", in, got)
		}
	}
}

func TestGGUFRopeInterleaved(t *testing.T) {
	for arch, want := range map[string]bool{
		"llama": true, "mistral": true, "mistral3": true, "granite": true, "deepseek2": true,
		"qwen2": false, "qwen3": false, "qwen2moe": false, "phi3": false, "gemma2": false, "gpt2": false, "": false,
	} {
		if got := GGUFRopeInterleaved(arch); got != want {
			t.Errorf("GGUFRopeInterleaved(%q) = %v, want %v", arch, got, want)
		}
	}
}

func TestPermuteQKByHand(t *testing.T) {
	for _, c := range []struct {
		rows, cols, heads int
		hf, gguf          []float32
	}{
		// One head of 4: HF pairs (0,2) and (1,3) become GGUF rows (0,1) and (2,3).
		{4, 1, 1, []float32{0, 1, 2, 3}, []float32{0, 2, 1, 3}},
		// Two heads of 4, each permuted on its own.
		{8, 1, 2, []float32{0, 1, 2, 3, 4, 5, 6, 7}, []float32{0, 2, 1, 3, 4, 6, 5, 7}},
		// One head of 6: HF pairs (0,3), (1,4), (2,5).
		{6, 1, 1, []float32{0, 1, 2, 3, 4, 5}, []float32{0, 3, 1, 4, 2, 5}},
		// Rows of two columns move whole.
		{4, 2, 1, []float32{0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5}, []float32{0, 0.5, 2, 2.5, 1, 1.5, 3, 3.5}},
	} {
		if got := PermuteQK(c.hf, c.rows, c.cols, c.heads, false); !slices.Equal(got, c.gguf) {
			t.Errorf("PermuteQK(%v, %d, %d, %d, toHF=false) = %v, want %v", c.hf, c.rows, c.cols, c.heads, got, c.gguf)
		}
		if got := PermuteQK(c.gguf, c.rows, c.cols, c.heads, true); !slices.Equal(got, c.hf) {
			t.Errorf("PermuteQK(%v, %d, %d, %d, toHF=true) = %v, want %v", c.gguf, c.rows, c.cols, c.heads, got, c.hf)
		}
	}
}

func TestPermuteQKInverse(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, c := range []struct{ rows, cols, heads int }{
		{2, 1, 1}, {8, 3, 1}, {64, 64, 8}, {32, 64, 4}, {96, 5, 3}, {128, 1, 2}, {256, 7, 2},
	} {
		w := make([]float32, c.rows*c.cols)
		for i := range w {
			w[i] = rng.Float32()
		}
		g := PermuteQK(w, c.rows, c.cols, c.heads, false)
		if slices.Equal(g, w) && c.rows/c.heads > 2 {
			t.Errorf("%+v: the permutation changed nothing", c)
		}
		if back := PermuteQK(g, c.rows, c.cols, c.heads, true); !slices.Equal(back, w) {
			t.Errorf("%+v: toHF after toGGUF is not the identity", c)
		}
		if back := PermuteQK(PermuteQK(w, c.rows, c.cols, c.heads, true), c.rows, c.cols, c.heads, false); !slices.Equal(back, w) {
			t.Errorf("%+v: toGGUF after toHF is not the identity", c)
		}
	}
}

func TestPermuteQKPanics(t *testing.T) {
	for _, c := range []struct{ n, rows, cols, heads int }{
		{6, 6, 1, 4}, {6, 6, 1, 2}, {8, 4, 1, 1}, {0, 0, 1, 1}, {4, 4, 1, 0},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PermuteQK(%d values, %d, %d, %d) did not panic", c.n, c.rows, c.cols, c.heads)
				}
			}()
			PermuteQK(make([]float32, c.n), c.rows, c.cols, c.heads, true)
		}()
	}
}

// ggufRopeHalf applies Hugging Face's RoPE (rotate_half: pairs i, i+d/2) to
// one head in place; ggufRopeInterleavedRef applies GGUF's (pairs 2i, 2i+1).
func ggufRopeHalf(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		a := float64(pos) * math.Pow(theta, -float64(2*i)/float64(d))
		s, c := math.Sincos(a)
		x0, x1 := x[i], x[i+d/2]
		x[i], x[i+d/2] = x0*c-x1*s, x0*s+x1*c
	}
}

func ggufRopeInterleavedRef(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		a := float64(pos) * math.Pow(theta, -float64(2*i)/float64(d))
		s, c := math.Sincos(a)
		x0, x1 := x[2*i], x[2*i+1]
		x[2*i], x[2*i+1] = x0*c-x1*s, x0*s+x1*c
	}
}

// TestPermuteQKMatchesRoPE checks the direction of the permutation: the
// attention scores of Hugging Face weights under half-split RoPE equal
// those of the GGUF weights (PermuteQK(toHF=false)) under llama.cpp's
// interleaved RoPE, for every query head and its (grouped) key head.
func TestPermuteQKMatchesRoPE(t *testing.T) {
	const heads, kvHeads, hd, cols, theta = 4, 2, 8, 5, 10000.0
	rng := rand.New(rand.NewSource(2))
	randn := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		return w
	}
	wq, wk := randn(heads*hd*cols), randn(kvHeads*hd*cols)
	x1, x2 := randn(cols), randn(cols)
	project := func(w []float32, x []float32, rows int) []float64 {
		out := make([]float64, rows)
		for r := range rows {
			for c := range cols {
				out[r] += float64(w[r*cols+c]) * float64(x[c])
			}
		}
		return out
	}
	scores := func(wq, wk []float32, rope func([]float64, int, float64)) []float64 {
		q, k := project(wq, x1, heads*hd), project(wk, x2, kvHeads*hd)
		for h := range heads {
			rope(q[h*hd:(h+1)*hd], 7, theta)
		}
		for h := range kvHeads {
			rope(k[h*hd:(h+1)*hd], 3, theta)
		}
		var out []float64
		for h := range heads {
			kh := h / (heads / kvHeads)
			s := 0.0
			for i := range hd {
				s += q[h*hd+i] * k[kh*hd+i]
			}
			out = append(out, s)
		}
		return out
	}
	want := scores(wq, wk, ggufRopeHalf)
	gq := PermuteQK(wq, heads*hd, cols, heads, false)
	gk := PermuteQK(wk, kvHeads*hd, cols, kvHeads, false)
	got := scores(gq, gk, ggufRopeInterleavedRef)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
			t.Errorf("head %d: GGUF layout with interleaved RoPE scores %v, Hugging Face layout with half-split RoPE %v", i, got[i], want[i])
		}
	}
	// Without the permutation the two RoPEs disagree: the check has teeth.
	bad := scores(wq, wk, ggufRopeInterleavedRef)
	same := true
	for i := range want {
		same = same && math.Abs(bad[i]-want[i]) < 1e-6
	}
	if same {
		t.Error("unpermuted weights give the same scores under both RoPEs; the test cannot tell the layouts apart")
	}
}

func TestPyFloat(t *testing.T) {
	for x, want := range map[float64]string{
		0: "0.0", 1: "1.0", 10000: "10000.0", 1e-5: "1e-05", 1e-6: "1e-06", 0.02: "0.02", 0.0001: "0.0001",
		1000000: "1000000.0", 1e16: "1e+16", 1.5e16: "1.5e+16", 500000: "500000.0", -2.5: "-2.5", 1e-4 * 0.5: "5e-05",
		123456789012345.0: "123456789012345.0",
	} {
		b, err := pyFloat(x).MarshalJSON()
		if err != nil || string(b) != want {
			t.Errorf("pyFloat(%v) = %s, %v; want %s", x, b, err, want)
		}
	}
	if _, err := pyFloat(math.NaN()).MarshalJSON(); err == nil {
		t.Error("pyFloat(NaN) did not fail")
	}
}

func TestGGUFConfigStories(t *testing.T) {
	f := openGGUFStories(t)
	c, err := GGUFConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "llama" || !slices.Equal(c.Architectures, []string{"LlamaForCausalLM"}) ||
		c.HiddenSize != 64 || c.NumHiddenLayers != 5 || c.NumAttentionHeads != 8 || c.NumKeyValueHeads != 4 ||
		c.HeadDim != 8 || c.IntermediateSize != 172 || c.VocabSize != 512 || c.RMSNormEps != 1e-5 ||
		c.RopeTheta != 10000 || c.RopeScaling != nil || c.MaxPositionEmbeddings != 2048 || c.TieWordEmbeddings ||
		c.AttentionBias || c.MLPBias || c.DType != "float32" || c.HiddenAct != "silu" ||
		c.BOSTokenID == nil || *c.BOSTokenID != 1 || !slices.Equal(c.EOSTokenIDs, []int{2}) {
		t.Errorf("GGUFConfig(stories260K) = %+v", c)
	}
	data, err := GGUFConfigJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "head_dim": 8,
  "hidden_act": "silu",
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": 172,
  "max_position_embeddings": 2048,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 8,
  "num_hidden_layers": 5,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "float32",
  "use_cache": true,
  "vocab_size": 512
}
`
	if string(data) != want {
		t.Errorf("GGUFConfigJSON(stories260K) =\n%s\nwant\n%s", data, want)
	}
	if d, err := GGUFConfigJSONAs(f, "bfloat16"); err != nil || !bytes.Contains(d, []byte(`"torch_dtype": "bfloat16"`)) {
		t.Errorf("GGUFConfigJSONAs(bfloat16): %v\n%s", err, d)
	}
	if _, err := GGUFConfigJSONAs(f, "int8"); err == nil {
		t.Error("GGUFConfigJSONAs(int8) did not fail")
	}

	ws, skipped, err := GGUFWeights(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2+5*9+1 || len(skipped) != 0 {
		t.Fatalf("GGUFWeights: %d weights, skipped %v; want 48 and none", len(ws), skipped)
	}
	for _, w := range ws {
		heads := 0
		switch {
		case strings.HasSuffix(w.Name, "q_proj.weight"):
			heads = 8
		case strings.HasSuffix(w.Name, "k_proj.weight"):
			heads = 4
		}
		if w.Heads != heads || w.Type != gguf.TypeF32 || w.Source == "" {
			t.Errorf("weight %+v: want %d heads from an F32 tensor", w, heads)
		}
	}
	q := ws[2]
	if q.Name != "model.layers.0.self_attn.q_proj.weight" || q.Source != "blk.0.attn_q.weight" || !slices.Equal(q.Shape, []int{64, 64}) {
		t.Fatalf("third weight %+v, want layer 0's q_proj", q)
	}
	got, err := q.Float32(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := f.Float32("blk.0.attn_q.weight")
	if want := PermuteQK(raw, 64, 64, 8, true); !slices.Equal(got, want) {
		t.Error("q_proj is not the permuted GGUF tensor")
	}
}

// --- synthetic GGUF files ---

type ggufSynth struct {
	arch                                     string
	hidden, ffn, layers, heads, kvHeads, voc int
	typ                                      gguf.GGMLType
	tie, qkvBias, oBias, qkNorm, noTokenizer bool
	kvs                                      []gguf.KV
	extra                                    []gguf.TensorData
	drop                                     map[string]bool
	tensorData                               map[string][]float32 // filled: what was stored, dequantised
}

func ggufKV(key string, v any) gguf.KV { return gguf.KV{Key: key, Value: gguf.MustValueOf(v)} }

// ggufEncode encodes values as a ggml tensor of type typ (F32, F16, BF16
// or Q8_0) and returns the bytes and the values the file then holds.
func ggufEncode(typ gguf.GGMLType, x []float32) ([]byte, []float32) {
	held := slices.Clone(x)
	var b []byte
	switch typ {
	case gguf.TypeF32:
		for _, v := range x {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case gguf.TypeF16:
		for i, v := range x {
			h := tensor.F16FromF32(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			held[i] = tensor.F32FromF16(h)
		}
	case gguf.TypeBF16:
		for i, v := range x {
			h := tensor.BF16FromF32(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			held[i] = tensor.F32FromBF16(h)
		}
	case gguf.TypeQ8_0:
		for blk := 0; blk < len(x); blk += 32 {
			amax := float32(0)
			for _, v := range x[blk : blk+32] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			dh := tensor.F16FromF32(amax / 127)
			d := tensor.F32FromF16(dh)
			b = binary.LittleEndian.AppendUint16(b, dh)
			for i, v := range x[blk : blk+32] {
				q := int8(0)
				if d != 0 {
					q = int8(max(-127, min(127, math.Round(float64(v/d)))))
				}
				b = append(b, byte(q))
				held[blk+i] = float32(q) * d
			}
		}
	default:
		panic(fmt.Sprint("ggufEncode: ", typ))
	}
	return b, held
}

// build writes the model as GGUF (in GGUF's layout: whatever the values,
// they are stored as given) and parses it.
func (s *ggufSynth) build(t *testing.T) *gguf.File {
	t.Helper()
	rng := rand.New(rand.NewSource(3))
	hd := s.hidden / s.heads
	a := s.arch
	kvs := []gguf.KV{
		ggufKV("general.architecture", a),
		ggufKV(a+".embedding_length", uint32(s.hidden)),
		ggufKV(a+".feed_forward_length", uint32(s.ffn)),
		ggufKV(a+".block_count", uint32(s.layers)),
		ggufKV(a+".attention.head_count", uint32(s.heads)),
		ggufKV(a+".attention.head_count_kv", uint32(s.kvHeads)),
		ggufKV(a+".context_length", uint32(4096)),
		ggufKV(a+".attention.layer_norm_rms_epsilon", float32(1e-6)),
		ggufKV(a+".rope.freq_base", float32(1e6)),
	}
	if !s.noTokenizer {
		kvs = append(kvs,
			ggufKV("tokenizer.ggml.model", "gpt2"),
			ggufKV("tokenizer.ggml.pre", "qwen2"),
			ggufKV("tokenizer.ggml.tokens", []string{"a", "b", "ab", "Ġ", "<|endoftext|>"}),
			ggufKV("tokenizer.ggml.token_type", []int32{1, 1, 1, 1, 3}),
			ggufKV("tokenizer.ggml.merges", []string{"a b"}),
			ggufKV("tokenizer.ggml.eos_token_id", uint32(4)),
		)
	}
	for _, e := range s.kvs {
		if i := slices.IndexFunc(kvs, func(k gguf.KV) bool { return k.Key == e.Key }); i >= 0 {
			kvs[i] = e
		} else {
			kvs = append(kvs, e)
		}
	}
	s.tensorData = map[string][]float32{}
	var tensors []gguf.TensorData
	add := func(name string, typ gguf.GGMLType, shape ...int) {
		if s.drop[name] {
			return
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(shape) == 1 || shape[len(shape)-1]%32 != 0 {
			typ = gguf.TypeF32 // as llama.cpp keeps norms and biases
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		data, held := ggufEncode(typ, x)
		s.tensorData[name] = held
		tensors = append(tensors, gguf.TensorData{Name: name, Type: typ, Shape: shape, Data: data})
	}
	add("token_embd.weight", s.typ, s.voc, s.hidden)
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", gguf.TypeF32, s.hidden)
		add(p+"attn_q.weight", s.typ, s.heads*hd, s.hidden)
		add(p+"attn_k.weight", s.typ, s.kvHeads*hd, s.hidden)
		add(p+"attn_v.weight", s.typ, s.kvHeads*hd, s.hidden)
		add(p+"attn_output.weight", s.typ, s.hidden, s.heads*hd)
		if s.qkvBias {
			add(p+"attn_q.bias", gguf.TypeF32, s.heads*hd)
			add(p+"attn_k.bias", gguf.TypeF32, s.kvHeads*hd)
			add(p+"attn_v.bias", gguf.TypeF32, s.kvHeads*hd)
		}
		if s.oBias {
			add(p+"attn_output.bias", gguf.TypeF32, s.hidden)
		}
		if s.qkNorm {
			add(p+"attn_q_norm.weight", gguf.TypeF32, hd)
			add(p+"attn_k_norm.weight", gguf.TypeF32, hd)
		}
		add(p+"ffn_norm.weight", gguf.TypeF32, s.hidden)
		add(p+"ffn_gate.weight", s.typ, s.ffn, s.hidden)
		add(p+"ffn_up.weight", s.typ, s.ffn, s.hidden)
		add(p+"ffn_down.weight", s.typ, s.hidden, s.ffn)
	}
	add("output_norm.weight", gguf.TypeF32, s.hidden)
	if !s.tie {
		add("output.weight", s.typ, s.voc, s.hidden)
	}
	tensors = append(tensors, s.extra...)
	var buf bytes.Buffer
	if err := gguf.Write(&buf, 3, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(s.arch+".gguf", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ggufQwen2Synth() *ggufSynth {
	return &ggufSynth{arch: "qwen2", hidden: 64, ffn: 96, layers: 2, heads: 4, kvHeads: 2, voc: 16,
		typ: gguf.TypeQ8_0, tie: true, qkvBias: true}
}

func TestGGUFQwen2(t *testing.T) {
	s := ggufQwen2Synth()
	f := s.build(t)
	c, err := GGUFConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "qwen2" || !slices.Equal(c.Architectures, []string{"Qwen2ForCausalLM"}) || !c.TieWordEmbeddings ||
		c.VocabSize != 16 || c.HeadDim != 16 || c.NumKeyValueHeads != 2 || c.RMSNormEps != 1e-6 || c.RopeTheta != 1e6 ||
		c.BOSTokenID != nil || !slices.Equal(c.EOSTokenIDs, []int{4}) || c.DType != "float32" || c.SlidingWindowSize() != 0 {
		t.Errorf("GGUFConfig = %+v", c)
	}
	ws, _, err := GGUFWeights(f)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]GGUFWeight{}
	for _, w := range ws {
		names[w.Name] = w
		if w.Heads != 0 {
			t.Errorf("%s: Qwen2's RoPE is half-split, yet it is permuted with %d heads", w.Name, w.Heads)
		}
	}
	if _, ok := names["lm_head.weight"]; ok || len(ws) != 1+2*12+1 {
		t.Errorf("%d weights (want 26, no lm_head): %v", len(ws), ws)
	}
	for _, n := range []string{"model.layers.1.self_attn.q_proj.bias", "model.layers.1.self_attn.k_proj.bias", "model.layers.1.self_attn.v_proj.bias"} {
		w, ok := names[n]
		if !ok {
			t.Fatalf("no %s", n)
		}
		got, err := w.Float32(f)
		if err != nil || !slices.Equal(got, s.tensorData[w.Source]) {
			t.Errorf("%s: %v, values differ from %s", n, err, w.Source)
		}
	}
	w := names["model.layers.0.mlp.down_proj.weight"]
	if w.Type != gguf.TypeQ8_0 || !slices.Equal(w.Shape, []int{64, 96}) {
		t.Errorf("down_proj: %+v", w)
	}
	if got, err := w.Float32(f); err != nil || !slices.Equal(got, s.tensorData["blk.0.ffn_down.weight"]) {
		t.Errorf("down_proj: %v, values differ from the Q8_0 tensor", err)
	}

	// A Qwen2 file without its q, k, v biases is refused.
	s.drop = map[string]bool{"blk.1.attn_k.bias": true}
	if _, _, err := GGUFWeights(s.build(t)); err == nil || !strings.Contains(err.Error(), "model.layers.1.self_attn.k_proj.bias") {
		t.Errorf("missing bias: %v", err)
	}
}

func TestGGUFLlamaBiasAndDType(t *testing.T) {
	s := &ggufSynth{arch: "llama", hidden: 32, ffn: 64, layers: 1, heads: 2, kvHeads: 1, voc: 8, typ: gguf.TypeF16, qkvBias: true}
	f := s.build(t)
	if d := GGUFDType(f); d != "float16" {
		t.Errorf("GGUFDType = %q, want float16", d)
	}
	c, err := GGUFConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AttentionBias || c.MLPBias || c.DType != "float16" || c.TieWordEmbeddings {
		t.Errorf("config %+v: want attention_bias, float16, untied", c)
	}
	ws, _, err := GGUFWeights(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		switch w.Name {
		case "model.layers.0.self_attn.o_proj.bias":
			got, err := w.Float32(f)
			if w.Source != "" || err != nil || len(got) != 32 || slices.ContainsFunc(got, func(x float32) bool { return x != 0 }) {
				t.Errorf("o_proj.bias %+v: %v %v, want 32 zeros", w, got, err)
			}
		case "model.layers.0.self_attn.q_proj.bias":
			got, _ := w.Float32(f)
			if w.Heads != 2 || !slices.Equal(got, PermuteQK(s.tensorData["blk.0.attn_q.bias"], 32, 1, 2, true)) {
				t.Errorf("q_proj.bias %+v is not the permuted GGUF bias", w)
			}
		case "model.layers.0.self_attn.k_proj.weight":
			got, _ := w.Float32(f)
			if w.Heads != 1 || !slices.Equal(got, PermuteQK(s.tensorData["blk.0.attn_k.weight"], 16, 32, 1, true)) {
				t.Errorf("k_proj %+v is not the permuted GGUF tensor", w)
			}
		}
	}
}

// ggufLlama3Factors computes rope_freqs.weight as llama.cpp's converter does.
func ggufLlama3Factors(theta float64, dim int, factor, low, high, orig float64) []float32 {
	var out []float32
	for i := 0; i < dim; i += 2 {
		freq := 1 / math.Pow(theta, float64(i)/float64(dim))
		wave := 2 * math.Pi / freq
		switch {
		case wave < orig/high:
			out = append(out, 1)
		case wave > orig/low:
			out = append(out, float32(factor))
		default:
			s := (orig/wave - low) / (high - low)
			out = append(out, float32(1/((1-s)/factor+s)))
		}
	}
	return out
}

func TestGGUFLlama3RopeFreqs(t *testing.T) {
	for _, c := range []struct {
		factor, high float64
		orig         int
	}{
		{8, 4, 8192},  // Llama 3.1
		{32, 4, 8192}, // Llama 3.2
		{4, 8, 4096},  // made up: found by the fit, not the defaults
	} {
		rf := ggufLlama3Factors(500000, 64, c.factor, 1, c.high, float64(c.orig))
		data, _ := ggufEncode(gguf.TypeF32, rf)
		s := &ggufSynth{arch: "llama", hidden: 128, ffn: 64, layers: 1, heads: 2, kvHeads: 2, voc: 8, typ: gguf.TypeF32,
			kvs:   []gguf.KV{ggufKV("llama.rope.freq_base", float32(500000)), ggufKV("llama.context_length", uint32(131072))},
			extra: []gguf.TensorData{{Name: "rope_freqs.weight", Type: gguf.TypeF32, Shape: []int{32}, Data: data}}}
		f := s.build(t)
		cfg, err := GGUFConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		rs := cfg.RopeScaling
		if rs == nil || rs.Type != "llama3" || rs.Factor != c.factor || rs.LowFreqFactor != 1 || rs.HighFreqFactor != c.high ||
			rs.OriginalMaxPositionEmbeddings != c.orig || cfg.RopeTheta != 500000 {
			t.Errorf("%+v: rope scaling %+v, theta %v", c, rs, cfg.RopeTheta)
		}
		_, skipped, err := GGUFWeights(f)
		if err != nil || !slices.Equal(skipped, []string{"rope_freqs.weight"}) {
			t.Errorf("GGUFWeights: skipped %v, %v", skipped, err)
		}
	}
	// Factors that no llama3 parameters give are refused.
	data, _ := ggufEncode(gguf.TypeF32, []float32{1, 3, 1, 2})
	s := &ggufSynth{arch: "llama", hidden: 16, ffn: 32, layers: 1, heads: 2, kvHeads: 2, voc: 8, typ: gguf.TypeF32,
		extra: []gguf.TensorData{{Name: "rope_freqs.weight", Type: gguf.TypeF32, Shape: []int{4}, Data: data}}}
	if _, err := GGUFConfig(s.build(t)); err == nil || !strings.Contains(err.Error(), "rope_freqs.weight") {
		t.Errorf("bad rope_freqs: %v", err)
	}
}

func TestGGUFRopeScalingMetadata(t *testing.T) {
	s := ggufQwen2Synth()
	s.kvs = []gguf.KV{
		ggufKV("qwen2.rope.scaling.type", "yarn"), ggufKV("qwen2.rope.scaling.factor", float32(4)),
		ggufKV("qwen2.rope.scaling.original_context_length", uint32(32768)),
	}
	c, err := GGUFConfig(s.build(t))
	if err != nil {
		t.Fatal(err)
	}
	if rs := c.RopeScaling; rs == nil || rs.Type != "yarn" || rs.Factor != 4 || rs.OriginalMaxPositionEmbeddings != 32768 {
		t.Errorf("yarn: %+v", c.RopeScaling)
	}
	s.kvs = []gguf.KV{ggufKV("qwen2.rope.scale_linear", float32(2))}
	if c, err := GGUFConfig(s.build(t)); err != nil || c.RopeScaling == nil || c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 2 {
		t.Errorf("linear: %+v, %v", c, err)
	}
	s.kvs = []gguf.KV{ggufKV("qwen2.rope.scaling.type", "none"), ggufKV("qwen2.rope.scaling.factor", float32(1))}
	if c, err := GGUFConfig(s.build(t)); err != nil || c.RopeScaling != nil {
		t.Errorf("none: %+v, %v", c, err)
	}
}

func TestGGUFQwen3(t *testing.T) {
	s := &ggufSynth{arch: "qwen3", hidden: 32, ffn: 64, layers: 2, heads: 4, kvHeads: 2, voc: 8, typ: gguf.TypeBF16, tie: true, qkNorm: true,
		kvs: []gguf.KV{ggufKV("qwen3.attention.key_length", uint32(16)), ggufKV("qwen3.attention.value_length", uint32(16))}}
	// Qwen3's head_dim (16) times heads (4) is not hidden_size (32).
	f := ggufBuildQwen3(t, s)
	c, err := GGUFConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "qwen3" || c.HeadDim != 16 || c.AttentionBias || c.DType != "bfloat16" {
		t.Errorf("config %+v", c)
	}
	ws, _, err := GGUFWeights(f)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, w := range ws {
		if strings.HasSuffix(w.Name, "_norm.weight") && strings.Contains(w.Name, "self_attn") {
			found++
			if !slices.Equal(w.Shape, []int{16}) {
				t.Errorf("%s shape %v", w.Name, w.Shape)
			}
		}
		if w.Heads != 0 {
			t.Errorf("%s permuted for qwen3", w.Name)
		}
	}
	if found != 4 {
		t.Errorf("%d q/k norms, want 4", found)
	}
}

// ggufBuildQwen3 builds a model whose head size is not hidden/heads.
func ggufBuildQwen3(t *testing.T, s *ggufSynth) *gguf.File {
	t.Helper()
	hd := 16
	var tensors []gguf.TensorData
	rng := rand.New(rand.NewSource(4))
	add := func(name string, typ gguf.GGMLType, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(shape) == 1 {
			typ = gguf.TypeF32
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		data, _ := ggufEncode(typ, x)
		tensors = append(tensors, gguf.TensorData{Name: name, Type: typ, Shape: shape, Data: data})
	}
	add("token_embd.weight", s.typ, s.voc, s.hidden)
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", 0, s.hidden)
		add(p+"attn_q.weight", s.typ, s.heads*hd, s.hidden)
		add(p+"attn_k.weight", s.typ, s.kvHeads*hd, s.hidden)
		add(p+"attn_v.weight", s.typ, s.kvHeads*hd, s.hidden)
		add(p+"attn_output.weight", s.typ, s.hidden, s.heads*hd)
		add(p+"attn_q_norm.weight", 0, hd)
		add(p+"attn_k_norm.weight", 0, hd)
		add(p+"ffn_norm.weight", 0, s.hidden)
		add(p+"ffn_gate.weight", s.typ, s.ffn, s.hidden)
		add(p+"ffn_up.weight", s.typ, s.ffn, s.hidden)
		add(p+"ffn_down.weight", s.typ, s.hidden, s.ffn)
	}
	add("output_norm.weight", 0, s.hidden)
	kvs := []gguf.KV{
		ggufKV("general.architecture", "qwen3"),
		ggufKV("qwen3.embedding_length", uint32(s.hidden)),
		ggufKV("qwen3.feed_forward_length", uint32(s.ffn)),
		ggufKV("qwen3.block_count", uint32(s.layers)),
		ggufKV("qwen3.attention.head_count", uint32(s.heads)),
		ggufKV("qwen3.attention.head_count_kv", uint32(s.kvHeads)),
		ggufKV("qwen3.context_length", uint32(40960)),
		ggufKV("qwen3.attention.layer_norm_rms_epsilon", float32(1e-6)),
		ggufKV("qwen3.rope.freq_base", float32(1e6)),
	}
	kvs = append(kvs, s.kvs...)
	var buf bytes.Buffer
	if err := gguf.Write(&buf, 3, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse("qwen3.gguf", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGGUFConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(s *ggufSynth)
		want string
	}{
		{"unsupported architecture", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("general.architecture", "gemma2")}
		}, `architecture "gemma2"`},
		{"missing key", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("qwen2.attention.head_count", "x")}
		}, "qwen2.attention.head_count"},
		{"ggufKV heads vary by layer", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("qwen2.attention.head_count_kv", []uint32{2, 4})}
		}, "varies by layer"},
		{"partial rope", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("qwen2.rope.dimension_count", uint32(8))}
		}, "qwen2.rope.dimension_count"},
		{"unknown rope scaling", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("qwen2.rope.scaling.type", "longrope"), ggufKV("qwen2.rope.scaling.factor", float32(2))}
		}, `"longrope"`},
		{"no embedding", func(s *ggufSynth) { s.drop = map[string]bool{"token_embd.weight": true} }, "token_embd.weight"},
		{"no epsilon", func(s *ggufSynth) {
			s.kvs = []gguf.KV{ggufKV("qwen2.attention.layer_norm_rms_epsilon", float32(-1))}
		}, "layer_norm_rms_epsilon"},
	} {
		s := ggufQwen2Synth()
		c.edit(s)
		_, err := GGUFConfig(s.build(t))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "qwen2.gguf") {
			t.Errorf("%s: error %v, want one naming the file and %s", c.name, err, c.want)
		}
	}
}

func TestGGUFWeightsErrors(t *testing.T) {
	q8 := make([]byte, 34)
	for _, c := range []struct {
		name string
		edit func(s *ggufSynth)
		want string
	}{
		{"unknown tensor", func(s *ggufSynth) {
			s.extra = []gguf.TensorData{{Name: "blk.0.attn_qkv.weight", Type: gguf.TypeQ8_0, Shape: []int{1, 32}, Data: q8}}
		}, `"blk.0.attn_qkv.weight"`},
		{"layer out of range", func(s *ggufSynth) {
			s.extra = []gguf.TensorData{{Name: "blk.7.ffn_up.weight", Type: gguf.TypeQ8_0, Shape: []int{1, 32}, Data: q8}}
		}, `"blk.7.ffn_up.weight"`},
		{"wrong shape", func(s *ggufSynth) {
			s.drop = map[string]bool{"blk.1.ffn_up.weight": true}
			s.extra = []gguf.TensorData{{Name: "blk.1.ffn_up.weight", Type: gguf.TypeQ8_0, Shape: []int{1, 32}, Data: q8}}
		}, `"blk.1.ffn_up.weight" has shape [1 32]`},
		{"missing tensor", func(s *ggufSynth) { s.drop = map[string]bool{"blk.0.ffn_gate.weight": true} }, "model.layers.0.mlp.gate_proj.weight"},
		{"o bias in qwen2", func(s *ggufSynth) { s.oBias = true }, `"blk.0.attn_output.bias"`},
	} {
		s := ggufQwen2Synth()
		c.edit(s)
		_, _, err := GGUFWeights(s.build(t))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.want)
		}
	}
}

func TestGGUFConfigJSONIsTransformersShaped(t *testing.T) {
	f := ggufQwen2Synth().build(t)
	data, err := GGUFConfigJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"model_type", "architectures", "torch_dtype", "max_window_layers", "use_sliding_window", "sliding_window", "rope_scaling"} {
		if _, ok := m[k]; !ok {
			t.Errorf("config.json lacks %q:\n%s", k, data)
		}
	}
	if string(m["rope_theta"]) != "1000000.0" || string(m["rms_norm_eps"]) != "1e-06" {
		t.Errorf("floats not as Python writes them: rope_theta %s, rms_norm_eps %s", m["rope_theta"], m["rms_norm_eps"])
	}
	if _, err := hf.ParseConfig("config.json", data); err != nil {
		t.Error(err)
	}
}
