package models

import (
	"fmt"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Cache holds the keys and values of the positions decoded so far, per
// layer, for one sequence: decoding a token then costs one position of
// work instead of the whole prefix.
type Cache struct {
	b      backend.Backend
	k, v   []*tensor.Tensor // per layer: [capacity, kvHeads, headDim]
	n      []int            // positions held, per layer
	cap    int
	kvHead int
	hd     int
}

// NewCache allocates a cache for up to capacity positions of a model with
// the given layers, key-value heads and head size, in dtype (F32).
func NewCache(b backend.Backend, layers, kvHeads, headDim, capacity int, dtype tensor.DType) (*Cache, error) {
	c := &Cache{b: b, n: make([]int, layers), cap: capacity, kvHead: kvHeads, hd: headDim}
	for range layers {
		k, err := b.Alloc(dtype, capacity, kvHeads, headDim)
		if err != nil {
			return nil, err
		}
		v, err := b.Alloc(dtype, capacity, kvHeads, headDim)
		if err != nil {
			return nil, err
		}
		c.k, c.v = append(c.k, k), append(c.v, v)
	}
	return c, nil
}

// Len is the number of positions the cache holds.
func (c *Cache) Len() int { return c.n[0] }

// Cap is the most positions the cache can hold.
func (c *Cache) Cap() int { return c.cap }

// append stores a layer's new keys and values ([1, T, kvHeads, headDim])
// and returns all the layer's keys and values so far.
func (c *Cache) append(g *autograd.Graph, layer int, k, v *autograd.Var) (*autograd.Var, *autograd.Var) {
	if g.Err() != nil {
		return k, v
	}
	if g.Grad() {
		return g.Fail(fmt.Errorf("kv cache: decoding with a cache runs under NoGrad")), v
	}
	s := k.Value.Shape()
	if len(s) != 4 || s[0] != 1 || s[2] != c.kvHead || s[3] != c.hd {
		return g.Fail(fmt.Errorf("kv cache: keys %v, want [1, T, %d, %d]", s, c.kvHead, c.hd)), v
	}
	n, t := c.n[layer], s[1]
	if n+t > c.cap {
		return g.Fail(fmt.Errorf("kv cache: %d positions held, %d more do not fit in %d", n, t, c.cap)), v
	}
	row := c.kvHead * c.hd
	for _, p := range []struct {
		dst *tensor.Tensor
		src *autograd.Var
	}{{c.k[layer], k}, {c.v[layer], v}} {
		dst, err := p.dst.View(n*row, t*row)
		if err == nil {
			src, _ := p.src.Value.Reshape(t * row)
			err = c.b.Copy(dst, src)
		}
		if err != nil {
			return g.Fail(fmt.Errorf("kv cache: %w", err)), v
		}
	}
	c.n[layer] = n + t
	kAll, _ := c.k[layer].View(0, 1, n+t, c.kvHead, c.hd)
	vAll, _ := c.v[layer].View(0, 1, n+t, c.kvHead, c.hd)
	return autograd.Const("cache.k", kAll), autograd.Const("cache.v", vAll)
}
