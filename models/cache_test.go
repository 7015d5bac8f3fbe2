package models

import (
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/tensor"
)

// TestCacheMatchesFullForward: logits from decoding one token at a time
// with the KV cache equal those of one forward pass over the whole
// sequence, for every variant (the Mistral one's window is shorter than the
// sequence).
func TestCacheMatchesFullForward(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"llama-gqa", "llama3-tied", "mistral-window", "qwen2-bias", "qwen3-qknorm"} {
		t.Run(v, func(t *testing.T) {
			md, err := hf.Resolve(filepath.Join("testdata", "golden", v), "")
			if err != nil {
				t.Fatal(err)
			}
			l, err := LoadDir(b, md)
			if err != nil {
				t.Fatal(err)
			}
			cfg := l.Model.Config()
			ids := []int32{1, 5, 9, 2, 7, 3, 8, 8, 4, 6, 11, 12}
			T := len(ids)
			pool := autograd.NewPool(b)
			g := autograd.New(b, pool)
			idT, _ := autograd.Int32s(b, ids, 1, T)
			pos := make([]int32, T)
			for i := range pos {
				pos[i] = int32(i)
			}
			posT, _ := autograd.Int32s(b, pos, T)
			var full []float64
			g.NoGrad(func() {
				full, err = g.Value(l.Model.Logits(g, l.Model.Forward(g, Inputs{IDs: idT, Positions: posT})))
			})
			if err != nil {
				t.Fatal(err)
			}
			g.Release()
			cache, err := NewCache(b, cfg.NumHiddenLayers, cfg.NumKeyValueHeads, cfg.HeadDim, T, tensor.F32)
			if err != nil {
				t.Fatal(err)
			}
			V := cfg.VocabSize
			// A prompt of 3 tokens, then one at a time.
			for start, n := 0, 3; start < T; start, n = start+n, 1 {
				lg := make([]int, n)
				for i := range lg {
					lg[i] = int(ids[start+i])
				}
				got, err := lastLogits(b, pool, l.Model, lg, cache)
				if err != nil {
					t.Fatal(err)
				}
				last := start + n - 1
				if e := relErr(got, full[last*V:(last+1)*V]); e > 1e-5 {
					t.Errorf("position %d: cached logits differ from the full pass: relative error %.3g", last, e)
				}
			}
			if cache.Len() != T {
				t.Errorf("cache holds %d positions, want %d", cache.Len(), T)
			}
		})
	}
}
