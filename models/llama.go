package models

import (
	"fmt"
	"strings"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

func init() {
	for _, t := range []string{"llama", "mistral", "qwen2", "qwen3"} {
		Register(t, newLlama)
	}
}

// Llama is the Llama family: Llama 2 and 3, Mistral, Qwen2 and Qwen3, which
// differ only in options of one architecture (GQA, RoPE scaling, tied
// embeddings, a sliding window, q/k/v biases, per-head q/k norms). Its
// fields are its layers, tagged with their Hugging Face tensor names.
type Llama struct {
	Embed  *autograd.Var `hf:"model.embed_tokens.weight"`
	Layers []*Block      `hf:"model.layers"`
	Norm   nn.RMSNorm    `hf:"model.norm"`
	// LMHead is nil when the config ties it to Embed.
	LMHead *nn.Linear `hf:"lm_head"`

	cfg        *hf.Config
	rope       *backend.Rope
	checkpoint bool
}

// Block is one decoder layer: attention and MLP, each after an RMSNorm and
// added back to the residual stream.
type Block struct {
	InputNorm nn.RMSNorm `hf:"input_layernorm"`
	Attn      Attention  `hf:"self_attn"`
	PostNorm  nn.RMSNorm `hf:"post_attention_layernorm"`
	MLP       MLP        `hf:"mlp"`
}

// Attention is grouped-query self-attention with RoPE.
type Attention struct {
	Q nn.Linear `hf:"q_proj"`
	K nn.Linear `hf:"k_proj"`
	V nn.Linear `hf:"v_proj"`
	O nn.Linear `hf:"o_proj"`
	// QNorm and KNorm (Qwen3) normalise each head of q and k before RoPE;
	// nil elsewhere.
	QNorm *autograd.Var `hf:"q_norm.weight"`
	KNorm *autograd.Var `hf:"k_norm.weight"`
}

// MLP is the SwiGLU feed-forward layer.
type MLP struct {
	Gate nn.Linear `hf:"gate_proj"`
	Up   nn.Linear `hf:"up_proj"`
	Down nn.Linear `hf:"down_proj"`
}

func newLlama(cfg *hf.Config) (Model, error) {
	if cfg.HiddenAct != "silu" {
		return nil, fmt.Errorf("model_type %s: hidden_act %q is not supported (want silu)", cfg.ModelType, cfg.HiddenAct)
	}
	if cfg.PartialRotaryFactor != 1 {
		return nil, fmt.Errorf("model_type %s: partial_rotary_factor %g is not supported", cfg.ModelType, cfg.PartialRotaryFactor)
	}
	inv, scale, err := RopeInvFreq(cfg)
	if err != nil {
		return nil, err
	}
	m := &Llama{cfg: cfg, rope: &backend.Rope{InvFreq: inv, Scale: scale}}
	m.Norm.Eps = cfg.RMSNormEps
	for range cfg.NumHiddenLayers {
		b := &Block{}
		b.InputNorm.Eps, b.PostNorm.Eps = cfg.RMSNormEps, cfg.RMSNormEps
		m.Layers = append(m.Layers, b)
	}
	if !cfg.TieWordEmbeddings {
		m.LMHead = &nn.Linear{}
	}
	return m, nil
}

// Config is the model's configuration.
func (m *Llama) Config() *hf.Config { return m.cfg }

// SetInterleavedRoPE selects the RoPE pairing of the weights' q and k rows:
// interleaved pairs (2i, 2i+1), as GGUF files store llama-type models, or
// Hugging Face's half-split pairs (the default).
func (m *Llama) SetInterleavedRoPE(on bool) { m.rope.Interleaved = on }

// SetCheckpointing turns gradient checkpointing on or off: with it, each
// decoder layer keeps only its input during the forward pass and runs again
// in the backward pass (autograd.Graph.Checkpoint).
func (m *Llama) SetCheckpointing(on bool) { m.checkpoint = on }

// Optional reports whether a weight may be missing from a checkpoint: the
// biases and norms that only some members of the family have.
func (m *Llama) Optional(name string) bool {
	return optionalSuffix(name, ".bias", ".q_norm.weight", ".k_norm.weight")
}

// Inputs are a batch for the forward pass: token ids [B, T], position ids
// [B*T] (restarting per document in packed rows) and, optionally, segment
// ids [B, T] (document numbers; -1 for padding), all I32 on the back end.
type Inputs struct {
	IDs, Positions, Segments *tensor.Tensor
	// Cache, when not nil, holds the keys and values of earlier positions
	// (decoding); the new ones are appended.
	Cache *Cache
}

// Forward returns the hidden states after the final norm, [B, T, hidden].
func (m *Llama) Forward(g *autograd.Graph, in Inputs) *autograd.Var {
	x := g.Embedding(m.Embed, in.IDs)
	for i, b := range m.Layers {
		if m.checkpoint && g.Grad() && in.Cache == nil {
			x = g.Checkpoint(func(g *autograd.Graph, xs []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{b.forward(g, m, i, xs[0], in)}
			}, x)[0]
			continue
		}
		x = b.forward(g, m, i, x, in)
	}
	return m.Norm.Forward(g, x)
}

// Logits returns the output projection of hidden states h.
func (m *Llama) Logits(g *autograd.Graph, h *autograd.Var) *autograd.Var {
	if m.LMHead == nil {
		return g.Linear(h, m.Embed, nil)
	}
	return m.LMHead.Forward(g, h)
}

func (b *Block) forward(g *autograd.Graph, m *Llama, layer int, x *autograd.Var, in Inputs) *autograd.Var {
	cfg := m.cfg
	bsz, T := x.Value.Dim(0), x.Value.Dim(1)
	hd := cfg.HeadDim
	h := b.InputNorm.Forward(g, x)
	q := g.Reshape(b.Attn.Q.Forward(g, h), bsz, T, cfg.NumAttentionHeads, hd)
	k := g.Reshape(b.Attn.K.Forward(g, h), bsz, T, cfg.NumKeyValueHeads, hd)
	v := g.Reshape(b.Attn.V.Forward(g, h), bsz, T, cfg.NumKeyValueHeads, hd)
	if b.Attn.QNorm != nil {
		q = g.RMSNorm(q, b.Attn.QNorm, cfg.RMSNormEps)
	}
	if b.Attn.KNorm != nil {
		k = g.RMSNorm(k, b.Attn.KNorm, cfg.RMSNormEps)
	}
	q, k = g.RoPE(q, in.Positions, m.rope), g.RoPE(k, in.Positions, m.rope)
	opt := autograd.AttentionOpts{Segments: in.Segments, Window: cfg.SlidingWindowSize()}
	if in.Cache != nil {
		k, v = in.Cache.append(g, layer, k, v)
	}
	a := g.Attention(q, k, v, opt)
	x = g.Add(x, b.Attn.O.Forward(g, g.Reshape(a, bsz, T, cfg.NumAttentionHeads*hd)))
	h = b.PostNorm.Forward(g, x)
	return g.Add(x, b.MLP.Down.Forward(g, g.SwiGLU(b.MLP.Gate.Forward(g, h), b.MLP.Up.Forward(g, h))))
}

// Loss returns the summed cross-entropy of the next-token predictions
// against labels ([B, T] on the host, Hugging Face's convention: aligned
// with the input ids, -100 for tokens not trained; position t is scored
// against label t+1), and the number of tokens scored.
func (m *Llama) Loss(g *autograd.Graph, in Inputs, labels []int32) (*autograd.Var, int) {
	h := m.Forward(g, in)
	if g.Err() != nil {
		return h, 0
	}
	bsz, T := in.IDs.Dim(0), in.IDs.Dim(1)
	if len(labels) != bsz*T {
		return g.Fail(fmt.Errorf("loss: %d labels for a batch of %d x %d tokens", len(labels), bsz, T)), 0
	}
	targets := make([]int32, bsz*T)
	for r := range bsz {
		for t := range T {
			targets[r*T+t] = backend.IgnoreIndex
			if t+1 < T {
				targets[r*T+t] = labels[r*T+t+1]
			}
		}
	}
	tt, err := autograd.Int32s(g.Backend(), targets, bsz*T)
	if err != nil {
		return g.Fail(err), 0
	}
	return g.CrossEntropy(m.Logits(g, h), tt)
}

// WeightShape returns the shape the config gives the named weight.
func (m *Llama) WeightShape(name string) ([]int, bool) {
	c := m.cfg
	q, kv := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	switch name {
	case "model.embed_tokens.weight", "lm_head.weight":
		return []int{c.VocabSize, c.HiddenSize}, true
	case "model.norm.weight":
		return []int{c.HiddenSize}, true
	}
	i := strings.LastIndex(name, "model.layers.")
	if i < 0 {
		return nil, false
	}
	rest := name[len("model.layers."):]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		rest = rest[j+1:]
	}
	shapes := map[string][]int{
		"input_layernorm.weight":          {c.HiddenSize},
		"post_attention_layernorm.weight": {c.HiddenSize},
		"self_attn.q_proj.weight":         {q, c.HiddenSize},
		"self_attn.k_proj.weight":         {kv, c.HiddenSize},
		"self_attn.v_proj.weight":         {kv, c.HiddenSize},
		"self_attn.o_proj.weight":         {c.HiddenSize, q},
		"self_attn.q_proj.bias":           {q},
		"self_attn.k_proj.bias":           {kv},
		"self_attn.v_proj.bias":           {kv},
		"self_attn.o_proj.bias":           {c.HiddenSize},
		"self_attn.q_norm.weight":         {c.HeadDim},
		"self_attn.k_norm.weight":         {c.HeadDim},
		"mlp.gate_proj.weight":            {c.IntermediateSize, c.HiddenSize},
		"mlp.up_proj.weight":              {c.IntermediateSize, c.HiddenSize},
		"mlp.down_proj.weight":            {c.HiddenSize, c.IntermediateSize},
	}
	s, ok := shapes[rest]
	return s, ok
}
