package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// GenerateOptions control decoding.
type GenerateOptions struct {
	// MaxNewTokens is the most tokens to generate.
	MaxNewTokens int
	// Temperature 0 decodes greedily (the default); otherwise logits are
	// divided by it before sampling.
	Temperature float64
	// TopP keeps the smallest set of tokens whose probabilities sum to at
	// least TopP (nucleus sampling); 0 or 1 keeps all.
	TopP float64
	// Seed seeds the sampler.
	Seed uint64
	// Stop ends generation after any of these tokens (EOS).
	Stop []int
}

// Generate decodes from prompt (token ids; at least one) with a KV cache,
// calling emit with each new token as it is chosen, and returns the new
// tokens. Generation ends after MaxNewTokens, a Stop token, or an error from
// emit.
func Generate(b backend.Backend, m Model, prompt []int, opt GenerateOptions, emit func(id int) error) ([]int, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt (start with BOS)")
	}
	cfg := m.Config()
	for _, id := range prompt {
		if id < 0 || id >= cfg.VocabSize {
			return nil, fmt.Errorf("generate: prompt token %d outside the vocabulary of %d", id, cfg.VocabSize)
		}
	}
	capacity := len(prompt) + opt.MaxNewTokens
	cache, err := NewCache(b, cfg.NumHiddenLayers, cfg.NumKeyValueHeads, cfg.HeadDim, capacity, tensor.F32)
	if err != nil {
		return nil, err
	}
	pool := autograd.NewPool(b)
	rng := rand.New(rand.NewPCG(opt.Seed, 0x5eed))
	var out []int
	next := prompt
	for len(out) < opt.MaxNewTokens {
		logits, err := lastLogits(b, pool, m, next, cache)
		if err != nil {
			return out, err
		}
		id := sample(logits, opt, rng)
		out = append(out, id)
		if emit != nil {
			if err := emit(id); err != nil {
				return out, err
			}
		}
		if slices.Contains(opt.Stop, id) {
			break
		}
		next = []int{id}
	}
	return out, nil
}

// lastLogits runs ids (the next positions after those in cache) through m
// and returns the logits of the last one.
func lastLogits(b backend.Backend, pool *autograd.Pool, m Model, ids []int, cache *Cache) ([]float64, error) {
	g := autograd.New(b, pool)
	defer g.Release()
	start := cache.Len()
	id32 := make([]int32, len(ids))
	pos := make([]int32, len(ids))
	for i, id := range ids {
		id32[i], pos[i] = int32(id), int32(start+i)
	}
	idT, err := autograd.Int32s(b, id32, 1, len(ids))
	if err != nil {
		return nil, err
	}
	posT, err := autograd.Int32s(b, pos, len(ids))
	if err != nil {
		return nil, err
	}
	var logits *autograd.Var
	g.NoGrad(func() {
		h := m.Forward(g, Inputs{IDs: idT, Positions: posT, Cache: cache})
		if g.Err() != nil {
			return
		}
		d := h.Value.Dim(-1)
		last, err := h.Value.View((len(ids)-1)*d, 1, d)
		if err != nil {
			g.Fail(err)
			return
		}
		logits = m.Logits(g, autograd.Const("last", last))
	})
	if g.Err() != nil {
		return nil, g.Err()
	}
	return g.Value(logits)
}

// sample picks the next token from logits: the argmax when greedy (the
// lowest id on ties), else a draw from the temperature-scaled softmax,
// restricted to the top-p nucleus.
func sample(logits []float64, opt GenerateOptions, rng *rand.Rand) int {
	if opt.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = max(mx, v)
	}
	type cand struct {
		id int
		p  float64
	}
	cands := make([]cand, len(logits))
	sum := 0.0
	for i, v := range logits {
		p := math.Exp((v - mx) / opt.Temperature)
		cands[i] = cand{i, p}
		sum += p
	}
	if opt.TopP > 0 && opt.TopP < 1 {
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].p > cands[j].p })
		acc, keep := 0.0, 0
		for keep < len(cands) {
			acc += cands[keep].p / sum
			keep++
			if acc >= opt.TopP {
				break
			}
		}
		cands = cands[:keep]
		sum = 0
		for _, c := range cands {
			sum += c.p
		}
	}
	r := rng.Float64() * sum
	for _, c := range cands {
		r -= c.p
		if r < 0 {
			return c.id
		}
	}
	return cands[len(cands)-1].id
}
