package autograd

import (
	"fmt"
	"sync"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Pool recycles back-end memory for the intermediate tensors of training
// steps: activations, saved values and gradients. Memory handed back with
// Put goes on a free list for its size and is handed out again by the next
// Get of that size, so that after the first step a training loop with fixed
// shapes asks the back end for nothing and leaves the garbage collector
// nothing to do with tensor memory.
//
// A Pool counts the bytes it has handed out and not had back (InUse), the
// most that ever were (Peak), and what it holds in all (Held). It is safe for
// concurrent use.
type Pool struct {
	b backend.Backend

	mu    sync.Mutex
	free  map[int][]tensor.Storage // by size in bytes
	inUse int64
	peak  int64
	held  int64
}

// NewPool returns an empty pool that allocates on b.
func NewPool(b backend.Backend) *Pool {
	return &Pool{b: b, free: map[int][]tensor.Storage{}}
}

// Get returns a tensor of the given dtype and shape. Its elements are
// whatever they were when the memory was last used: callers overwrite them
// or Fill them.
func (p *Pool) Get(dtype tensor.DType, shape ...int) (*tensor.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	size := n * dtype.Size()
	if size == 0 {
		// An empty tensor still needs storage to view; take a fresh one.
		return p.b.Alloc(dtype, shape...)
	}
	p.mu.Lock()
	list := p.free[size]
	var s tensor.Storage
	if k := len(list); k > 0 {
		s = list[k-1]
		list[k-1] = nil
		p.free[size] = list[:k-1]
	}
	p.inUse += int64(size)
	p.peak = max(p.peak, p.inUse)
	p.mu.Unlock()
	if s != nil {
		return tensor.New(s, dtype, 0, shape...)
	}
	t, err := p.b.Alloc(dtype, shape...)
	if err != nil {
		p.mu.Lock()
		p.inUse -= int64(size)
		p.mu.Unlock()
		return nil, fmt.Errorf("pool: %w", err)
	}
	p.mu.Lock()
	p.held += int64(size)
	p.mu.Unlock()
	return t, nil
}

// Put hands t's memory back. t must have come from Get (any reshape or
// view of it names the same memory) and must not be used afterwards.
func (p *Pool) Put(t *tensor.Tensor) {
	if t == nil {
		return
	}
	s := t.Storage()
	size := s.Len()
	if size == 0 {
		return
	}
	p.mu.Lock()
	p.free[size] = append(p.free[size], s)
	p.inUse -= int64(size)
	p.mu.Unlock()
}

// InUse is the number of bytes handed out by Get and not yet Put back.
func (p *Pool) InUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// Peak is the most bytes that were ever in use at once.
func (p *Pool) Peak() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// ResetPeak sets Peak to the bytes in use now, to measure a new stretch.
func (p *Pool) ResetPeak() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peak = p.inUse
}

// Held is the number of bytes the pool has allocated from the back end,
// in use or free.
func (p *Pool) Held() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Drain forgets the free memory, leaving it to the back end (for the CPU,
// the garbage collector), e.g. between a training run and generation.
func (p *Pool) Drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for size, list := range p.free {
		p.held -= int64(size * len(list))
	}
	clear(p.free)
}
