package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/internal/testref"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/tensor"
	"github.com/whet-ai/whet/tokenizer"
)

func needStories(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(stories); err != nil {
		t.Skipf("%s is absent (it lives in ../shared beside the checkout): %v", stories, err)
	}
}

func openConvertGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// convertTo runs whet convert and fails the test unless it succeeds.
func convertTo(t *testing.T, model string, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	code, out, errs := runIn(t, "", append([]string{"convert", "--model", model, "--out", dir}, args...)...)
	if code != 0 {
		t.Fatalf("whet convert %s %v: exit %d, stdout %q, stderr %q", model, args, code, out, errs)
	}
	return dir
}

func readConvertJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

var convertSentences = []string{
	"Once upon a time, there was a little girl named Lily.",
	"She loved to play outside in the park.",
	"  Two  spaces, tabs\tand\nnewlines; 123 digits & symbols!",
	"<s>special tokens</s> in the text",
	"ünïcödé — 😀 falls back to bytes",
	"",
}

func TestConvertStories(t *testing.T) {
	needStories(t)
	dir := convertTo(t, stories)
	f := openConvertGGUF(t, stories)

	// config.json
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := hf.ParseConfig("config.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ModelType != "llama" || cfg.HiddenSize != 64 || cfg.NumHiddenLayers != 5 || cfg.NumAttentionHeads != 8 ||
		cfg.NumKeyValueHeads != 4 || cfg.VocabSize != 512 || cfg.IntermediateSize != 172 || cfg.RMSNormEps != 1e-5 ||
		cfg.RopeTheta != 10000 || cfg.DType != "float32" || cfg.TieWordEmbeddings {
		t.Errorf("config.json: %+v", cfg)
	}
	if want, _ := models.GGUFConfigJSON(f); !bytes.Equal(data, want) {
		t.Errorf("config.json is not GGUFConfigJSON:\n%s", data)
	}

	// generation_config.json
	gdata, err := os.ReadFile(filepath.Join(dir, "generation_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := hf.ParseGenerationConfig("generation_config.json", gdata)
	if err != nil || g.BOSTokenID == nil || *g.BOSTokenID != 1 || !slices.Equal(g.EOSTokenIDs, []int{2}) {
		t.Errorf("generation_config.json %s: %+v, %v", gdata, g, err)
	}

	// The weights: every tensor, with its Hugging Face name and shape and
	// the GGUF values (q and k permuted).
	ck, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Errorf("no single model.safetensors: %v", err)
	}
	ts := f.Tensors()
	if ck.Len() != len(ts) {
		t.Errorf("%d tensors written, GGUF has %d", ck.Len(), len(ts))
	}
	for _, gt := range ts {
		name, ok := models.GGUFTensorName(gt.Name)
		if !ok {
			t.Errorf("GGUF tensor %s has no HF name", gt.Name)
			continue
		}
		info, ok := ck.Info(name)
		if !ok {
			t.Errorf("%s (from %s) not written", name, gt.Name)
			continue
		}
		if info.DType != safetensors.F32 || !slices.Equal(info.Shape, gt.Shape) {
			t.Errorf("%s: %v %v, want F32 %v", name, info.DType, info.Shape, gt.Shape)
		}
		got, err := ck.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := f.Float32(gt.Name)
		switch {
		case strings.HasSuffix(name, "q_proj.weight"):
			want = models.PermuteQK(want, 64, 64, 8, true)
		case strings.HasSuffix(name, "k_proj.weight"):
			want = models.PermuteQK(want, 32, 64, 4, true)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s differs from %s", name, gt.Name)
		}
	}
	q, _ := ck.Float32("model.layers.0.self_attn.q_proj.weight")
	raw, _ := f.Float32("blk.0.attn_q.weight")
	if !slices.Equal(q, models.PermuteQK(raw, 64, 64, 8, true)) || slices.Equal(q, raw) {
		t.Error("layer 0's q_proj is not PermuteQK of blk.0.attn_q.weight")
	}

	// tokenizer.json encodes as the GGUF's vocabulary does.
	hfTok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	gTok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range convertSentences {
		for _, special := range []bool{false, true} {
			if a, b := hfTok.Encode(s, special), gTok.Encode(s, special); !slices.Equal(a, b) {
				t.Errorf("Encode(%q, %v): tokenizer.json %v, GGUF %v", s, special, a, b)
			}
		}
	}
	if ids := hfTok.Encode("Once upon a time", true); !slices.Equal(ids, []int{1, 403, 407, 261, 378}) {
		t.Errorf("Encode(Once upon a time) = %v", ids)
	}

	// tokenizer_config.json
	tc := readConvertJSON(t, filepath.Join(dir, "tokenizer_config.json"))
	for k, want := range map[string]any{
		"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
		"model_max_length": 2048.0, "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
	} {
		if tc[k] != want {
			t.Errorf("tokenizer_config.json %s = %v, want %v", k, tc[k], want)
		}
	}
	if _, ok := tc["chat_template"]; ok {
		t.Error("tokenizer_config.json has a chat_template, but the GGUF has none")
	}
	if dec, ok := tc["added_tokens_decoder"].(map[string]any); !ok || len(dec) != 3 {
		t.Errorf("added_tokens_decoder = %v, want <unk>, <s>, </s>", tc["added_tokens_decoder"])
	}

	t.Run("HFTokenizers", func(t *testing.T) { checkWithHFTokenizers(t, filepath.Join(dir, "tokenizer.json"), hfTok) })
}

// TestConvertStoriesGenerates runs the converted checkpoint through a
// plain Hugging Face Llama forward pass (half-split RoPE, GQA by repeated
// key-value heads) and checks the known greedy continuation of BOS (see
// ../shared/models/README.md): right only if the conversion permuted Q
// and K the right way.
func TestConvertStoriesGenerates(t *testing.T) {
	needStories(t)
	dir := convertTo(t, stories)
	cfg, err := (func() (*hf.Config, error) {
		data, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			return nil, err
		}
		return hf.ParseConfig("config.json", data)
	})()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := loadRefLlama(t, ck, cfg)
	ids := []int{1}
	for range 40 {
		logits := m.forward(ids)
		ids = append(ids, refArgmax(logits))
	}
	got := tok.Decode(ids[1:], true)
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"
	if got != want {
		t.Errorf("greedy decoding of the converted model:\n got %q\nwant %q", got, want)
	}
}

// refLlama is a naive Hugging Face Llama forward pass in float64.
type refLlama struct {
	cfg *hf.Config
	w   map[string][]float32
}

func loadRefLlama(t *testing.T, ck *safetensors.Sharded, cfg *hf.Config) *refLlama {
	t.Helper()
	m := &refLlama{cfg: cfg, w: map[string][]float32{}}
	for _, n := range ck.Names() {
		x, err := ck.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		m.w[n] = x
	}
	return m
}

func refMatVec(w []float32, x []float64) []float64 {
	cols := len(x)
	out := make([]float64, len(w)/cols)
	for r := range out {
		s := 0.0
		for c, v := range x {
			s += float64(w[r*cols+c]) * v
		}
		out[r] = s
	}
	return out
}

func refRMSNorm(x []float64, w []float32, eps float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * inv * float64(w[i])
	}
	return out
}

// refRopeHalfSplit rotates the pairs (i, i+d/2) of one head, as Hugging
// Face's rotate_half does.
func refRopeHalfSplit(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		s, c := math.Sincos(float64(pos) * math.Pow(theta, -float64(2*i)/float64(d)))
		a, b := x[i], x[i+d/2]
		x[i], x[i+d/2] = a*c-b*s, a*s+b*c
	}
}

// forward returns the logits after the last of ids (recomputing
// everything: the model is tiny).
func (m *refLlama) forward(ids []int) []float64 {
	c := m.cfg
	hd, nh, nkv := c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads
	xs := make([][]float64, len(ids))
	emb := m.w["model.embed_tokens.weight"]
	for p, id := range ids {
		xs[p] = make([]float64, c.HiddenSize)
		for i := range xs[p] {
			xs[p][i] = float64(emb[id*c.HiddenSize+i])
		}
	}
	for l := range c.NumHiddenLayers {
		pre := fmt.Sprintf("model.layers.%d.", l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for p := range ids {
			h := refRMSNorm(xs[p], m.w[pre+"input_layernorm.weight"], c.RMSNormEps)
			qs[p], ks[p], vs[p] = refMatVec(m.w[pre+"self_attn.q_proj.weight"], h), refMatVec(m.w[pre+"self_attn.k_proj.weight"], h), refMatVec(m.w[pre+"self_attn.v_proj.weight"], h)
			for hh := range nh {
				refRopeHalfSplit(qs[p][hh*hd:(hh+1)*hd], p, c.RopeTheta)
			}
			for hh := range nkv {
				refRopeHalfSplit(ks[p][hh*hd:(hh+1)*hd], p, c.RopeTheta)
			}
		}
		for p := range ids {
			att := make([]float64, nh*hd)
			for hh := range nh {
				kh := hh / (nh / nkv)
				scores := make([]float64, p+1)
				mx := math.Inf(-1)
				for j := 0; j <= p; j++ {
					s := 0.0
					for i := range hd {
						s += qs[p][hh*hd+i] * ks[j][kh*hd+i]
					}
					scores[j] = s / math.Sqrt(float64(hd))
					mx = max(mx, scores[j])
				}
				sum := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					sum += scores[j]
				}
				for j := range scores {
					for i := range hd {
						att[hh*hd+i] += scores[j] / sum * vs[j][kh*hd+i]
					}
				}
			}
			o := refMatVec(m.w[pre+"self_attn.o_proj.weight"], att)
			for i := range o {
				xs[p][i] += o[i]
			}
			h := refRMSNorm(xs[p], m.w[pre+"post_attention_layernorm.weight"], c.RMSNormEps)
			gate, up := refMatVec(m.w[pre+"mlp.gate_proj.weight"], h), refMatVec(m.w[pre+"mlp.up_proj.weight"], h)
			for i := range gate {
				gate[i] = gate[i] / (1 + math.Exp(-gate[i])) * up[i]
			}
			d := refMatVec(m.w[pre+"mlp.down_proj.weight"], gate)
			for i := range d {
				xs[p][i] += d[i]
			}
		}
	}
	last := refRMSNorm(xs[len(ids)-1], m.w["model.norm.weight"], c.RMSNormEps)
	head := m.w["lm_head.weight"]
	if c.TieWordEmbeddings {
		head = m.w["model.embed_tokens.weight"]
	}
	return refMatVec(head, last)
}

func refArgmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// convertTestCache is where tokenizer/testdata/oracle/fetch.sh installs the
// Hugging Face tokenizers Node binding (as package tokenizer's tests find
// it): $WHET_TEST_CACHE, else ~/.cache/whet-test.
func convertTestCache() string {
	if d := os.Getenv("WHET_TEST_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "whet-test")
}

const hfTokenizersScript = `'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');
(async () => {
  const [tokPath, strsPath] = process.argv.slice(2);
  const tok = Tokenizer.fromString(fs.readFileSync(tokPath, 'utf8'));
  const out = [];
  for (const s of JSON.parse(fs.readFileSync(strsPath, 'utf8'))) {
    const plain = await tok.encode(s, null, { addSpecialTokens: false });
    const special = await tok.encode(s, null, { addSpecialTokens: true });
    out.push({ plain: plain.getIds(), special: special.getIds(), decode: await tok.decode(special.getIds(), true) });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`

// checkWithHFTokenizers loads the written tokenizer.json with the Hugging
// Face tokenizers library (its Node binding) and checks that it encodes
// and decodes as tok does, or skips saying why it cannot.
func checkWithHFTokenizers(t *testing.T, path string, tok *tokenizer.Tokenizer) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testref.Missing(t, "node is not installed: the check with the Hugging Face tokenizers library is skipped")
	}
	cache := convertTestCache()
	if _, err := os.Stat(filepath.Join(cache, "node_modules", "tokenizers", "package.json")); err != nil {
		testref.Missing(t, "the tokenizers Node binding is not installed in %s (tokenizer/testdata/oracle/fetch.sh installs it): the check with the Hugging Face tokenizers library is skipped", cache)
	}
	tmp := t.TempDir()
	script, strs := filepath.Join(tmp, "encode.js"), filepath.Join(tmp, "strings.json")
	sj, _ := json.Marshal(convertSentences)
	if err := os.WriteFile(script, []byte(hfTokenizersScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strs, sj, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, path, strs)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(cache, "node_modules"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Hugging Face tokenizers could not run on %s: %v\n%s", path, err, stderr.String())
	}
	var res []struct {
		Plain, Special []int
		Decode         string
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(convertSentences) {
		t.Fatalf("tokenizers output %q: %v", out, err)
	}
	for i, s := range convertSentences {
		if got := tok.Encode(s, false); !slices.Equal(got, res[i].Plain) {
			t.Errorf("Encode(%q): whet %v, Hugging Face tokenizers %v", s, got, res[i].Plain)
		}
		got := tok.Encode(s, true)
		if !slices.Equal(got, res[i].Special) {
			t.Errorf("Encode(%q) with special tokens: whet %v, Hugging Face tokenizers %v", s, got, res[i].Special)
		}
		if d := tok.Decode(got, true); d != res[i].Decode {
			t.Errorf("Decode(%v): whet %q, Hugging Face tokenizers %q", got, d, res[i].Decode)
		}
	}
	t.Logf("Hugging Face tokenizers (Node binding in %s) encodes %d sentences as whet does", cache, len(convertSentences))
}

func TestConvertShardedBF16(t *testing.T) {
	needStories(t)
	dir := convertTo(t, stories, "--dtype", "bf16", "--shard-size", "200KB")
	f := openConvertGGUF(t, stories)
	idx := readConvertJSON(t, filepath.Join(dir, "model.safetensors.index.json"))
	wm, _ := idx["weight_map"].(map[string]any)
	if len(wm) != 48 {
		t.Fatalf("index weight_map has %d tensors, want 48", len(wm))
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Error("both model.safetensors and shards were written")
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("shards %v, want several", shards)
	}
	for _, p := range shards {
		st, _ := os.Stat(p)
		if st.Size() > 200_000+4096 {
			t.Errorf("%s is %d bytes, over --shard-size", p, st.Size())
		}
	}
	ck, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	got, err := ck.Float32("model.layers.4.self_attn.k_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := f.Float32("blk.4.attn_k.weight")
	want := models.PermuteQK(raw, 32, 64, 4, true)
	for i := range want {
		want[i] = tensor.F32FromBF16(tensor.BF16FromF32(want[i]))
	}
	if info, _ := ck.Info("model.layers.4.self_attn.k_proj.weight"); info.DType != safetensors.BF16 || !slices.Equal(got, want) {
		t.Errorf("k_proj: %v, values differ from the GGUF tensor rounded to bf16", info.DType)
	}
	if c := readConvertJSON(t, filepath.Join(dir, "config.json")); c["torch_dtype"] != "bfloat16" {
		t.Errorf("torch_dtype %v, want bfloat16", c["torch_dtype"])
	}

	// --force converts again into the directory, as one file in f16, and
	// the shards of the first conversion go.
	code, out, errs := runIn(t, "", "convert", "--model", stories, "--out", dir, "--force", "--dtype", "f16")
	if code != 0 {
		t.Fatalf("convert --force: exit %d, %s %s", code, out, errs)
	}
	if shards, _ := filepath.Glob(filepath.Join(dir, "model-*")); len(shards) != 0 {
		t.Errorf("stale shards left: %v", shards)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		t.Error("stale index left")
	}
	st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if info, _ := st.Info("lm_head.weight"); info.DType != safetensors.F16 {
		t.Errorf("lm_head dtype %v, want F16", info.DType)
	}
}

// qwen2GGUF writes a small Qwen2-style GGUF: Q8_0 projections, F32 norms
// and q/k/v biases, tied embeddings, a byte-level BPE vocabulary and a
// chat template. It returns the path and the values the file holds.
func qwen2GGUF(t *testing.T) (string, map[string][]float32) {
	t.Helper()
	const hidden, ffn, layers, heads, kvHeads, vocab = 64, 96, 2, 4, 2, 8
	hd := hidden / heads
	rng := rand.New(rand.NewSource(5))
	held := map[string][]float32{}
	var tensors []gguf.TensorData
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		var data []byte
		vals := make([]float32, n)
		if len(shape) == 1 { // F32
			for i := range vals {
				vals[i] = float32(rng.NormFloat64())
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(vals[i]))
			}
			tensors = append(tensors, gguf.TensorData{Name: name, Type: gguf.TypeF32, Shape: shape, Data: data})
		} else { // Q8_0: per block of 32, an f16 scale and 32 int8
			for b := 0; b < n; b += 32 {
				dh := tensor.F16FromF32(float32(0.01 + 0.02*rng.Float64()))
				d := tensor.F32FromF16(dh)
				data = binary.LittleEndian.AppendUint16(data, dh)
				for i := range 32 {
					q := int8(rng.Intn(255) - 127)
					data = append(data, byte(q))
					vals[b+i] = float32(q) * d
				}
			}
			tensors = append(tensors, gguf.TensorData{Name: name, Type: gguf.TypeQ8_0, Shape: shape, Data: data})
		}
		held[name] = vals
	}
	add("token_embd.weight", vocab, hidden)
	for l := range layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", hidden)
		add(p+"attn_q.weight", heads*hd, hidden)
		add(p+"attn_q.bias", heads*hd)
		add(p+"attn_k.weight", kvHeads*hd, hidden)
		add(p+"attn_k.bias", kvHeads*hd)
		add(p+"attn_v.weight", kvHeads*hd, hidden)
		add(p+"attn_v.bias", kvHeads*hd)
		add(p+"attn_output.weight", hidden, heads*hd)
		add(p+"ffn_norm.weight", hidden)
		add(p+"ffn_gate.weight", ffn, hidden)
		add(p+"ffn_up.weight", ffn, hidden)
		add(p+"ffn_down.weight", hidden, ffn)
	}
	add("output_norm.weight", hidden)
	kv := func(k string, v any) gguf.KV { return gguf.KV{Key: k, Value: gguf.MustValueOf(v)} }
	kvs := []gguf.KV{
		kv("general.architecture", "qwen2"),
		kv("qwen2.embedding_length", uint32(hidden)),
		kv("qwen2.feed_forward_length", uint32(ffn)),
		kv("qwen2.block_count", uint32(layers)),
		kv("qwen2.attention.head_count", uint32(heads)),
		kv("qwen2.attention.head_count_kv", uint32(kvHeads)),
		kv("qwen2.context_length", uint32(32768)),
		kv("qwen2.attention.layer_norm_rms_epsilon", float32(1e-6)),
		kv("qwen2.rope.freq_base", float32(1e6)),
		kv("tokenizer.ggml.model", "gpt2"),
		kv("tokenizer.ggml.pre", "qwen2"),
		kv("tokenizer.ggml.tokens", []string{"a", "b", "ab", "Ġ", "Ġa", "<|endoftext|>", "<|im_start|>", "<|im_end|>"}),
		kv("tokenizer.ggml.token_type", []int32{1, 1, 1, 1, 1, 3, 3, 3}),
		kv("tokenizer.ggml.merges", []string{"a b", "Ġ a"}),
		kv("tokenizer.ggml.eos_token_id", uint32(7)),
		kv("tokenizer.ggml.padding_token_id", uint32(5)),
		kv("tokenizer.ggml.add_bos_token", false),
		kv("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"),
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, 3, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny-qwen2.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, held
}

func TestConvertQwen2Q8(t *testing.T) {
	path, held := qwen2GGUF(t)
	dir := convertTo(t, path)
	c := readConvertJSON(t, filepath.Join(dir, "config.json"))
	for k, want := range map[string]any{
		"model_type": "qwen2", "tie_word_embeddings": true, "torch_dtype": "float32", "vocab_size": 8.0,
		"num_key_value_heads": 2.0, "rope_theta": 1e6, "eos_token_id": 7.0, "bos_token_id": nil,
	} {
		if c[k] != want {
			t.Errorf("config.json %s = %v, want %v", k, c[k], want)
		}
	}
	ck, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Len() != 1+2*12+1 {
		t.Errorf("%d tensors, want 26: %v", ck.Len(), ck.Names())
	}
	if _, ok := ck.Info("lm_head.weight"); ok {
		t.Error("lm_head.weight written for tied embeddings")
	}
	// Qwen2's RoPE is half-split: q and k are the dequantised GGUF values
	// as they are, and so are the biases.
	for hfName, src := range map[string]string{
		"model.layers.1.self_attn.q_proj.weight": "blk.1.attn_q.weight",
		"model.layers.1.self_attn.k_proj.weight": "blk.1.attn_k.weight",
		"model.layers.0.self_attn.q_proj.bias":   "blk.0.attn_q.bias",
		"model.layers.0.mlp.down_proj.weight":    "blk.0.ffn_down.weight",
		"model.embed_tokens.weight":              "token_embd.weight",
	} {
		got, err := ck.Float32(hfName)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, held[src]) {
			t.Errorf("%s differs from the dequantised %s", hfName, src)
		}
	}
	tc := readConvertJSON(t, filepath.Join(dir, "tokenizer_config.json"))
	if tc["add_bos_token"] != false || tc["eos_token"] != "<|im_end|>" || tc["pad_token"] != "<|endoftext|>" || tc["bos_token"] != nil ||
		!strings.Contains(fmt.Sprint(tc["chat_template"]), "<|im_start|>") || tc["model_max_length"] != 32768.0 {
		t.Errorf("tokenizer_config.json: %v", tc)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ids := tok.Encode("ab a<|im_end|>", true); !slices.Equal(ids, []int{2, 4, 7}) {
		t.Errorf("Encode = %v, want [2 4 7]", ids)
	}
	t.Run("HFTokenizers", func(t *testing.T) { checkWithHFTokenizers(t, filepath.Join(dir, "tokenizer.json"), tok) })
}

func TestConvertErrors(t *testing.T) {
	tmp := t.TempDir()
	notGGUF := filepath.Join(tmp, "model.gguf")
	if err := os.WriteFile(notGGUF, []byte("this is not a GGUF file at all, just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(tmp, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	qwen, _ := qwen2GGUF(t)
	out := filepath.Join(tmp, "out")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"convert", "--out", out}, 2, "--model is required"},
		{[]string{"convert", "--model", qwen}, 2, "--out is required"},
		{[]string{"convert", "--model", qwen, "--out", out, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"convert", "--model", qwen, "--out", out, "--dtype", "int4"}, 2, `unknown dtype "int4"`},
		{[]string{"convert", "--model", qwen, "--out", out, "--shard-size", "5 parsecs"}, 2, "--shard-size"},
		{[]string{"convert", "--model", filepath.Join(tmp, "missing.gguf"), "--out", out}, 1, "missing.gguf"},
		{[]string{"convert", "--model", notGGUF, "--out", out}, 1, notGGUF},
		{[]string{"convert", "--model", qwen, "--out", full}, 1, "is not empty"},
		{[]string{"convert", "--model", qwen, "--out", notGGUF}, 1, "not a directory"},
	} {
		code, stdout, errs := runIn(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("whet %v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, stdout, errs, c.code, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was created by failed conversions", out)
	}
	// --force writes into the non-empty directory and keeps other files.
	if code, _, errs := runIn(t, "", "convert", "--model", qwen, "--out", full, "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
	for _, n := range []string{"keep.txt", "config.json", "model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(full, n)); err != nil {
			t.Errorf("after --force: %v", err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for s, want := range map[string]int64{
		"5GB": 5e9, "5gb": 5e9, "4GiB": 4 << 30, "500MB": 5e8, "100KiB": 100 << 10, "1234": 1234, "0.5GB": 5e8, "1TB": 1e12,
	} {
		if got, err := parseByteSize(s); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GB", "5XB", "-1GB", "0", "1e3"} {
		if got, err := parseByteSize(s); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", s, got)
		}
	}
}

func TestEncodeFloatsF16Overflow(t *testing.T) {
	if _, err := encodeFloats([]float32{1, 70000}, safetensors.F16); err == nil || !strings.Contains(err.Error(), "70000") {
		t.Errorf("70000 as f16: %v", err)
	}
	b, err := encodeFloats([]float32{float32(math.Inf(1)), 1}, safetensors.F16)
	if err != nil || len(b) != 4 {
		t.Errorf("+Inf as f16: %v", err)
	}
}
