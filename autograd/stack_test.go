package autograd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// stack is an N-layer model for step-level tests and benchmarks: embedding,
// layers of block, a final norm and a tied-free LM head, with all weights in
// one contiguous value buffer and one gradient buffer (llm.c's layout).
type stack struct {
	c       blockConfig
	vocab   int
	dt      tensor.DType
	emb     *Var
	layers  [][]*Var
	norm    *Var
	head    *Var
	grads   *tensor.Tensor // the one gradient buffer
	rope    *backend.Rope
	nparams int
}

func newStack(t testing.TB, b backend.Backend, dt tensor.DType, c blockConfig, layers, vocab int, trainable bool) *stack {
	t.Helper()
	s := &stack{c: c, vocab: vocab, dt: dt, rope: ropeFor(c.headDim())}
	shapes := [][]int{{vocab, c.hidden}}
	for range layers {
		shapes = append(shapes, c.paramShapes()...)
	}
	shapes = append(shapes, []int{c.hidden}, []int{vocab, c.hidden})
	total := 0
	for _, sh := range shapes {
		n, _ := tensor.NumElements(sh)
		total += n
	}
	s.nparams = total
	rng := rand.New(rand.NewPCG(42, 0))
	vals, err := FromHost(b, dt, hostRand(rng, total, 0.05), total)
	if err != nil {
		t.Fatal(err)
	}
	if s.grads, err = b.Alloc(dt, total); err != nil {
		t.Fatal(err)
	}
	off := 0
	var vars []*Var
	for i, sh := range shapes {
		n, _ := tensor.NumElements(sh)
		v, err := vals.View(off, sh...)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprint("w", i)
		if trainable {
			gr, _ := s.grads.View(off, sh...)
			vars = append(vars, Param(name, v, gr))
		} else {
			vars = append(vars, Const(name, v))
		}
		off += n
	}
	// Norm weights near 1.
	ones := func(v *Var) {
		n := v.Value.Len()
		h := make([]float64, n)
		for i := range h {
			h[i] = 1
		}
		w, _ := FromHost(b, dt, h, n)
		b.Copy(v.Value, w)
	}
	s.emb = vars[0]
	per := len(c.paramShapes())
	for l := range layers {
		ps := vars[1+l*per : 1+(l+1)*per]
		ones(ps[0])
		ones(ps[5])
		s.layers = append(s.layers, ps)
	}
	s.norm, s.head = vars[len(vars)-2], vars[len(vars)-1]
	ones(s.norm)
	return s
}

// step runs forward and backward on ids/targets ([B, T]) and returns the
// mean loss. With checkpoint, each layer is a checkpointed block.
func (s *stack) step(g *Graph, ids, targets, pos *tensor.Tensor, checkpoint bool) (float64, error) {
	x := g.Embedding(s.emb, ids)
	for _, p := range s.layers {
		if checkpoint {
			x = g.Checkpoint(func(g *Graph, in []*Var) []*Var {
				return []*Var{block(g, s.c, in[0], p, pos, nil, s.rope)}
			}, x)[0]
		} else {
			x = block(g, s.c, x, p, pos, nil, s.rope)
		}
	}
	logits := g.Linear(g.RMSNorm(x, s.norm, 1e-5), s.head, nil)
	loss, n := g.CrossEntropy(logits, targets)
	if err := g.Backward(loss, 1/float64(n)); err != nil {
		return 0, err
	}
	v, err := g.Value(loss)
	if err != nil {
		return 0, err
	}
	return v[0] / float64(n), nil
}

func stepInputs(t testing.TB, b backend.Backend, bsz, T, vocab int) (ids, targets, pos *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(3, 4))
	id := make([]int32, bsz*T)
	tg := make([]int32, bsz*T)
	ps := make([]int32, bsz*T)
	for i := range id {
		id[i] = int32(rng.IntN(vocab))
		tg[i] = int32(rng.IntN(vocab))
		ps[i] = int32(i % T)
	}
	tg[0] = backend.IgnoreIndex
	var err error
	if ids, err = Int32s(b, id, bsz, T); err != nil {
		t.Fatal(err)
	}
	targets, _ = Int32s(b, tg, bsz*T)
	pos, _ = Int32s(b, ps, bsz*T)
	return
}

// TestCheckpoint checks that checkpointed layers give bit-identical losses
// and gradients, and measures the peak memory of intermediates with and
// without it.
func TestCheckpoint(t *testing.T) {
	b := newCPU(t)
	c := blockConfig{hidden: 64, heads: 4, kvHeads: 2, mlp: 172}
	const layers, vocab, bsz, T = 6, 97, 2, 48
	ids, targets, pos := stepInputs(t, b, bsz, T, vocab)
	var peaks [2]int64
	var grads [2][]float64
	var losses [2]float64
	for i, ckpt := range []bool{false, true} {
		s := newStack(t, b, tensor.F32, c, layers, vocab, true)
		pool := NewPool(b)
		g := New(b, pool)
		loss, err := s.step(g, ids, targets, pos, ckpt)
		if err != nil {
			t.Fatal(err)
		}
		g.Release()
		peaks[i], losses[i] = pool.Peak(), loss
		if grads[i], err = ToHost(b, s.grads); err != nil {
			t.Fatal(err)
		}
		if pool.InUse() != 0 {
			t.Errorf("checkpoint=%v: %d bytes in use after Release", ckpt, pool.InUse())
		}
	}
	if losses[0] != losses[1] {
		t.Errorf("loss %v without checkpointing, %v with", losses[0], losses[1])
	}
	if !slices.Equal(grads[0], grads[1]) {
		t.Errorf("gradients differ with checkpointing: relative error %.3g", relErr(grads[0], grads[1]))
	}
	t.Logf("peak intermediate memory, %d layers (hidden %d, T %d, batch %d): %.2f MB plain, %.2f MB checkpointed (%.0f%%)",
		layers, c.hidden, T, bsz, float64(peaks[0])/1e6, float64(peaks[1])/1e6, 100*float64(peaks[1])/float64(peaks[0]))
	if peaks[1] >= peaks[0]*2/3 {
		t.Errorf("checkpointing peak %d bytes is not well below the plain peak %d", peaks[1], peaks[0])
	}
}

// TestStepMemorySteady runs several training steps and checks that the pool
// stops growing after the first: every step reuses the same memory.
func TestStepMemorySteady(t *testing.T) {
	b := newCPU(t)
	c := blockConfig{hidden: 32, heads: 4, kvHeads: 1, mlp: 64}
	s := newStack(t, b, tensor.F32, c, 2, 50, true)
	ids, targets, pos := stepInputs(t, b, 2, 16, 50)
	pool := NewPool(b)
	var held []int64
	for range 4 {
		for _, ckpt := range []bool{false, true} {
			g := New(b, pool)
			if _, err := s.step(g, ids, targets, pos, ckpt); err != nil {
				t.Fatal(err)
			}
			g.Release()
		}
		held = append(held, pool.Held())
	}
	if held[1] != held[0] || held[3] != held[0] {
		t.Errorf("pool grew across steps: %v bytes held after each", held)
	}
}

// TestFrozenSkipsWeightGradients counts GEMMs: a frozen weight's linear layer
// does one GEMM in the backward pass (the input's gradient), a trainable
// one two.
func TestFrozenSkipsWeightGradients(t *testing.T) {
	for _, trainable := range []bool{false, true} {
		cb := &countingBackend{Backend: newCPU(t)}
		pool := NewPool(cb)
		g := New(cb, pool)
		xv, _ := FromHost(cb, tensor.F32, make([]float64, 12), 3, 4)
		wv, _ := FromHost(cb, tensor.F32, make([]float64, 20), 5, 4)
		gx, _ := cb.Alloc(tensor.F32, 3, 4)
		x := Param("x", xv, gx)
		w := Const("w", wv)
		if trainable {
			gw, _ := cb.Alloc(tensor.F32, 5, 4)
			w = Param("w", wv, gw)
		}
		y := g.Linear(x, w, nil)
		dy, _ := FromHost(cb, tensor.F32, make([]float64, 15), 3, 5)
		before := cb.gemms
		if err := g.BackwardFrom([]*Var{y}, []*tensor.Tensor{dy}); err != nil {
			t.Fatal(err)
		}
		want := 1
		if trainable {
			want = 2
		}
		if got := cb.gemms - before; got != want {
			t.Errorf("trainable=%v: %d GEMMs in the backward pass, want %d", trainable, got, want)
		}
	}
}

type countingBackend struct {
	backend.Backend
	gemms int
}

func (c *countingBackend) Gemm(g *backend.Gemm) error {
	c.gemms++
	return c.Backend.Gemm(g)
}

// TestNoGradRecordsNothing: in NoGrad mode outputs need no gradient and
// Backward refuses.
func TestNoGradRecordsNothing(t *testing.T) {
	b := newCPU(t)
	g := New(b, NewPool(b))
	defer g.Release()
	xv, _ := FromHost(b, tensor.F32, []float64{1, 2, 3, 4}, 2, 2)
	gx, _ := b.Alloc(tensor.F32, 2, 2)
	x := Param("x", xv, gx)
	var y *Var
	g.NoGrad(func() { y = g.Scale(g.Mul(x, x), 2) })
	if y.RequiresGrad() || len(g.tape) != 0 {
		t.Fatalf("NoGrad recorded %d ops", len(g.tape))
	}
	if v, _ := g.Value(y); !slices.Equal(v, []float64{2, 8, 18, 32}) {
		t.Errorf("NoGrad values %v", v)
	}
	if err := g.Backward(g.Reshape(y, 4), 1); err == nil {
		t.Error("Backward of a no-grad value succeeded")
	}
}

// TestErrorsAreSticky: a bad op's error is kept, later ops do nothing, and
// Backward reports it.
func TestErrorsAreSticky(t *testing.T) {
	b := newCPU(t)
	g := New(b, NewPool(b))
	defer g.Release()
	xv, _ := FromHost(b, tensor.F32, make([]float64, 6), 2, 3)
	wv, _ := FromHost(b, tensor.F32, make([]float64, 8), 2, 4)
	x, w := Const("x", xv), Const("w", wv)
	y := g.Linear(x, w, nil) // 3 inputs against a weight of 4
	z := g.Scale(y, 2)
	if g.Err() == nil || z == nil {
		t.Fatal("a mismatched linear layer gave no error")
	}
	if err := g.Backward(z, 1); err == nil || err != g.Err() {
		t.Errorf("Backward returned %v, want the first error %v", err, g.Err())
	}
}

// BenchmarkLlamaBlock measures forward plus backward of one Llama-style block
// (hidden 1024, 16 heads, 4 KV heads, MLP 2816, T=512, batch 1) in float32,
// with frozen weights (LoRA-style: input gradients only) and with full
// weight gradients, and reports GFLOP/s next to a plain GEMM's in the same
// run.
func BenchmarkLlamaBlock(b *testing.B) {
	be := newCPU(b)
	c := blockConfig{hidden: 1024, heads: 16, kvHeads: 4, mlp: 2816}
	const T = 512
	hd := c.headDim()
	linear := 2.0 * T * float64(c.hidden*(2*c.heads*hd+2*c.kvHeads*hd)+3*c.hidden*c.mlp)
	attn := 4.0 * float64(c.heads*hd) * T * (T + 1) / 2 // causal QK^T and PV
	yard := newYardstick(b, be)
	for _, trainable := range []bool{false, true} {
		name := "frozen"
		flops := 2*linear + 3.5*attn
		if trainable {
			name, flops = "full", 3*linear+3.5*attn
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			ps := make([]*Var, 0)
			var gradBufs []*tensor.Tensor
			for i, sh := range c.paramShapes() {
				n, _ := tensor.NumElements(sh)
				v, _ := FromHost(be, tensor.F32, hostRand(rng, n, 0.02), sh...)
				if trainable {
					gr, _ := be.Alloc(tensor.F32, sh...)
					gradBufs = append(gradBufs, gr)
					ps = append(ps, Param(fmt.Sprint("w", i), v, gr))
				} else {
					ps = append(ps, Const(fmt.Sprint("w", i), v))
				}
			}
			xv, _ := FromHost(be, tensor.F32, hostRand(rng, T*c.hidden, 1), 1, T, c.hidden)
			gx, _ := be.Alloc(tensor.F32, 1, T, c.hidden)
			x := Param("x", xv, gx)
			posH := make([]int32, T)
			for i := range posH {
				posH[i] = int32(i)
			}
			pos, _ := Int32s(be, posH, T)
			dy, _ := FromHost(be, tensor.F32, hostRand(rng, T*c.hidden, 1), 1, T, c.hidden)
			pool := NewPool(be)
			rope := ropeFor(hd)
			b.ReportAllocs()
			var ms, gemmRates, ratios []float64
			for i := 0; b.Loop() || i == 0; i++ {
				if i == 0 {
					b.StopTimer() // a warm-up step fills the pool
				}
				start := time.Now()
				g := New(be, pool)
				out := block(g, c, x, ps, pos, nil, rope)
				d, _ := pool.Get(tensor.F32, 1, T, c.hidden)
				if err := be.Copy(d, dy); err != nil {
					b.Fatal(err)
				}
				if err := g.BackwardFrom([]*Var{out}, []*tensor.Tensor{d}); err != nil {
					b.Fatal(err)
				}
				pool.Put(d)
				if err := be.Synchronize(); err != nil {
					b.Fatal(err)
				}
				g.Release()
				if i == 0 {
					b.StartTimer()
					continue
				}
				step := time.Since(start).Seconds()
				ms = append(ms, step*1e3)
				// The yardstick right after the step, outside the timer, so
				// that both see the same machine (it is shared and noisy).
				b.StopTimer()
				gr := yard.rate(b)
				b.StartTimer()
				gemmRates = append(gemmRates, gr)
				ratios = append(ratios, flops/step/1e9/gr)
			}
			b.ReportMetric(median(ms), "ms/step")
			b.ReportMetric(flops/median(ms)/1e6, "GFLOP/s")
			b.ReportMetric(median(gemmRates), "gemm-GFLOP/s")
			b.ReportMetric(median(ratios), "of-gemm")
			b.ReportMetric(float64(pool.Held())/1e6, "pool-MB")
		})
	}
}

// yardstick is the GEMM that BenchmarkLlamaBlock compares itself with: the
// MLP's up projection at T=1024 (1024 x 2816 x 1024), on the same back end.
type yardstick struct {
	be backend.Backend
	g  *backend.Gemm
}

func newYardstick(b *testing.B, be backend.Backend) *yardstick {
	const m, n, k = 1024, 2816, 1024
	x, _ := be.Alloc(tensor.F32, m, k)
	w, _ := be.Alloc(tensor.F32, n, k)
	y, _ := be.Alloc(tensor.F32, m, n)
	y0 := &yardstick{be: be, g: &backend.Gemm{TransB: true, M: m, N: n, K: k, Alpha: 1,
		A: backend.Matrix{T: x, LD: k}, B: backend.Matrix{T: w, LD: k}, C: backend.Matrix{T: y, LD: n}}}
	y0.rate(b) // fault the pages in, start the threads
	return y0
}

// rate is the best GFLOP/s of three runs of the product.
func (y *yardstick) rate(b *testing.B) float64 {
	best := 0.0
	for range 3 {
		start := time.Now()
		if err := y.be.Gemm(y.g); err != nil {
			b.Fatal(err)
		}
		if err := y.be.Synchronize(); err != nil {
			b.Fatal(err)
		}
		best = max(best, 2*float64(y.g.M*y.g.N*y.g.K)/time.Since(start).Seconds()/1e9)
	}
	return best
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
