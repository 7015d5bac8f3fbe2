package models

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// bench100M is a Llama configuration of about 100M parameters: hidden 768,
// 12 layers, 12 heads, 4 KV heads, MLP 2048, vocabulary 16000, untied.
const bench100M = `{"model_type": "llama", "vocab_size": 16000, "hidden_size": 768,
 "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
 "num_key_value_heads": 4, "rms_norm_eps": 1e-5, "max_position_embeddings": 2048}`

// randomModel builds the benchmark model with random F32 weights, trainable
// (with gradient buffers) or frozen.
func randomModel(b *testing.B, be backend.Backend, trainable bool) (Model, int) {
	cfg, err := hf.ParseConfig("bench100M", []byte(bench100M))
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, p := range nn.Params(m) {
		shape, ok := m.(*Llama).WeightShape(p.Name)
		if !ok || m.Optional(p.Name) {
			continue
		}
		size, _ := tensor.NumElements(shape)
		vals := make([]float32, size)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * 0.02)
		}
		if len(shape) == 1 {
			for i := range vals {
				vals[i] = 1
			}
		}
		t, err := backend.FromFloat32(be, vals, shape...)
		if err != nil {
			b.Fatal(err)
		}
		if trainable {
			gr, _ := be.Alloc(tensor.F32, shape...)
			*p.Var = autograd.Param(p.Name, t, gr)
		} else {
			*p.Var = autograd.Const(p.Name, t)
		}
		n += size
	}
	return m, n
}

// BenchmarkTrain100M measures training throughput (forward, loss and
// backward) of the ~100M-parameter Llama in float32, batch 1 x 256 tokens,
// with every weight trainable and with a frozen base (the gradient still
// flows to the input of every layer, as with LoRA).
func BenchmarkTrain100M(b *testing.B) {
	be, err := backend.Default()
	if err != nil {
		b.Fatal(err)
	}
	const T = 256
	for _, trainable := range []bool{true, false} {
		name := map[bool]string{true: "full", false: "frozen"}[trainable]
		b.Run(name, func(b *testing.B) {
			m, n := randomModel(b, be, trainable)
			if !trainable {
				// The frozen base trains rank-16 adapters on q_proj and
				// v_proj, as LoRA does.
				addAdapters(b, be, m, 16)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			ids := make([]int32, T)
			pos := make([]int32, T)
			for i := range ids {
				ids[i], pos[i] = int32(rng.IntN(16000)), int32(i)
			}
			idT, _ := autograd.Int32s(be, ids, 1, T)
			posT, _ := autograd.Int32s(be, pos, T)
			pool := autograd.NewPool(be)
			var secs []float64
			for i := 0; b.Loop() || i == 0; i++ {
				start := time.Now()
				g := autograd.New(be, pool)
				loss, cnt := m.Loss(g, Inputs{IDs: idT, Positions: posT}, ids)
				if err := g.Backward(loss, 1/float64(max(cnt, 1))); err != nil {
					b.Fatal(err)
				}
				g.Release()
				secs = append(secs, time.Since(start).Seconds())
			}
			b.ReportMetric(float64(T)/median(secs), "tokens/s")
			b.ReportMetric(float64(n)/1e6, "Mparams")
		})
	}
}

// BenchmarkDecode100M measures greedy decoding with the KV cache: tokens/s
// after a 16-token prompt.
func BenchmarkDecode100M(b *testing.B) {
	be, err := backend.Default()
	if err != nil {
		b.Fatal(err)
	}
	m, n := randomModel(b, be, false)
	prompt := make([]int, 16)
	for i := range prompt {
		prompt[i] = i + 1
	}
	const newTokens = 32
	var rates []float64
	for b.Loop() {
		var first time.Time
		count := 0
		_, err := Generate(be, m, prompt, GenerateOptions{MaxNewTokens: newTokens + 1}, func(int) error {
			if count == 0 {
				first = time.Now() // after the prompt's forward pass
			}
			count++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rates = append(rates, newTokens/time.Since(first).Seconds())
	}
	b.ReportMetric(median(rates), "tokens/s")
	b.ReportMetric(float64(n)/1e6, "Mparams")
}

// benchLoRA is a LoRA-style adapter for the benchmark: y + (x A^T) B^T.
type benchLoRA struct{ a, b *autograd.Var }

func (l *benchLoRA) Forward(g *autograd.Graph, x, y *autograd.Var) *autograd.Var {
	return g.Add(y, g.Linear(g.Linear(x, l.a, nil), l.b, nil))
}

func addAdapters(b *testing.B, be backend.Backend, m Model, r int) {
	for _, nl := range nn.Linears(m) {
		if !strings.HasSuffix(nl.Name, "q_proj") && !strings.HasSuffix(nl.Name, "v_proj") {
			continue
		}
		w := nl.Layer.Weight.Value
		av := make([]float32, r*w.Dim(1))
		for i := range av {
			av[i] = 0.01
		}
		a, _ := backend.FromFloat32(be, av, r, w.Dim(1))
		ga, _ := be.Alloc(tensor.F32, r, w.Dim(1))
		bt, _ := be.Alloc(tensor.F32, w.Dim(0), r)
		gb, _ := be.Alloc(tensor.F32, w.Dim(0), r)
		nl.Layer.Adapter = &benchLoRA{autograd.Param("A", a, ga), autograd.Param("B", bt, gb)}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
