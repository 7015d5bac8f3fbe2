package backend

import "github.com/whet-ai/whet/tensor"

// Kernels are the element-wise, reduction and fused operations that
// autograd's ops are built from, each with the kernels of its backward pass.
//
// Conventions shared by every method:
//   - Float operands of one call share one compute dtype, F32 or F64 (F64
//     serves gradient checks), except where a method says it converts (a
//     frozen BF16 or F16 weight read by Convert or Gather).
//   - Tensors are dense and row-major; a method reads shapes from its
//     operands and returns an error (never panics) when they disagree,
//     naming the operand.
//   - Outputs are overwritten, except for parameter gradients (the dw, db
//     and dtable operands), which are accumulated into: a parameter's
//     gradient buffer sums over micro-batches. Outputs must not overlap
//     inputs unless a method says they may.
//   - Integer operands (ids, positions, segments, targets) are I32.
//   - Like every Backend call, a kernel may run asynchronously.
type Kernels interface {
	Elementwise
	Norms
	Rotary
	Attention
	Losses
	Optimizers
	Quantizers
}

// Act names a point-wise activation.
type Act uint8

// Activations.
const (
	SiLU     Act = iota + 1 // x * sigmoid(x)
	GELUTanh                // GELU, tanh approximation (gelu_pytorch_tanh)
	GELUErf                 // GELU, exact erf form
)

// Elementwise kernels: fills, conversions, arithmetic with row broadcast,
// activations and reductions over rows.
type Elementwise interface {
	// Fill sets every element of dst (any float dtype) to v.
	Fill(dst *tensor.Tensor, v float64) error
	// Convert copies src into dst, converting between float dtypes (F32,
	// F64, BF16, F16; rounding to nearest even) with equal element counts.
	Convert(dst, src *tensor.Tensor) error
	// Add sets dst = x + y. y has as many elements as x, or it is broadcast:
	// x.Len() is a multiple of y.Len() and y repeats over x's leading rows
	// (a bias added to every row). dst may be x.
	Add(dst, x, y *tensor.Tensor) error
	// Mul sets dst = x * y, element-wise, with Add's broadcast rule. dst may be x.
	Mul(dst, x, y *tensor.Tensor) error
	// Scale sets dst = s * x. dst may be x.
	Scale(dst, x *tensor.Tensor, s float64) error
	// AddScaled sets dst += s * x (BLAS axpy); it is how gradients from
	// several consumers of a tensor are summed.
	AddScaled(dst, x *tensor.Tensor, s float64) error
	// SumRows views x as rows of dst.Len() elements and adds the sum of
	// those rows to dst (a bias gradient; a loss total when dst has one
	// element and the rows have one element each).
	SumRows(dst, x *tensor.Tensor) error
	// Activation sets dst = f(x).
	Activation(f Act, dst, x *tensor.Tensor) error
	// ActivationBackward sets dx = dy * f'(x).
	ActivationBackward(f Act, dx, x, dy *tensor.Tensor) error
	// SwiGLU sets dst = silu(gate) * up, the Llama MLP's gate.
	SwiGLU(dst, gate, up *tensor.Tensor) error
	// SwiGLUBackward sets dgate and dup from dy; either may be nil.
	SwiGLUBackward(dgate, dup, gate, up, dy *tensor.Tensor) error
	// Softmax sets dst to the softmax of x over its last dimension.
	Softmax(dst, x *tensor.Tensor) error
	// SoftmaxBackward sets dx = y * (dy - sum(dy*y)) row by row, where y is
	// Softmax's output.
	SoftmaxBackward(dx, y, dy *tensor.Tensor) error
	// Dropout sets dst = x * m / (1-p), where m_i is 0 with probability p
	// and 1 otherwise, drawn by a counter-based generator from (seed, i): the
	// same seed gives the same mask on every back end and thread count, so
	// the backward pass is Dropout again on dy with the same seed and p.
	// dst may be x.
	Dropout(dst, x *tensor.Tensor, p float64, seed uint64) error
	// Gather sets dst[i,:] = table[ids[i],:] (an embedding lookup); dst is
	// [len(ids), D], table [V, D] of any float dtype, converted to dst's.
	// An id outside [0, V) is an error naming its position and value.
	Gather(dst, table, ids *tensor.Tensor) error
	// ScatterAdd adds dy[i,:] to dtable[ids[i],:] (Gather's backward);
	// repeated ids sum.
	ScatterAdd(dtable, ids, dy *tensor.Tensor) error
	// RowNorms sets dst[i] to the Euclidean norm of row i of x ([N, D]),
	// or its reciprocal with inverse (DoRA's weight norm).
	RowNorms(dst, x *tensor.Tensor, inverse bool) error
	// ScaleRows sets dst[i,:] = x[i,:] * s[i] for x [N, D] and s [N]. dst
	// may be x.
	ScaleRows(dst, x, s *tensor.Tensor) error
}

// Norms are the normalisation layers, over the last dimension.
type Norms interface {
	// RMSNorm sets y = x / rms(x) * w, where rms(x) = sqrt(mean(x²) + eps)
	// over each row of x ([N, D]); w ([D]) may be nil for no weight. It
	// stores 1/rms of each row in rstd ([N]) for the backward pass.
	RMSNorm(y, rstd, x, w *tensor.Tensor, eps float64) error
	// RMSNormBackward sets dx (when not nil) and adds the weight gradient to
	// dw (when not nil), from x, w, rstd and dy.
	RMSNormBackward(dx, dw, x, w, rstd, dy *tensor.Tensor) error
	// LayerNorm sets y = (x - mean) * rstd * w + b over each row of x
	// ([N, D]); w and b ([D]) may be nil. It stores each row's mean and rstd
	// ([N]) for the backward pass.
	LayerNorm(y, mean, rstd, x, w, b *tensor.Tensor, eps float64) error
	// LayerNormBackward sets dx and adds to dw and db; any may be nil.
	LayerNormBackward(dx, dw, db, x, w, mean, rstd, dy *tensor.Tensor) error
}

// Rope describes a rotary position embedding.
type Rope struct {
	// InvFreq holds the inverse frequency of each rotated pair, with any
	// scaling (linear, llama3, ...) already applied: pair i of a token at
	// position p turns by the angle p*InvFreq[i]. 2*len(InvFreq) channels at
	// the start of each head rotate; the rest of the head passes through.
	InvFreq []float64
	// Interleaved pairs channels (2i, 2i+1), as GGUF files and Meta's
	// original code do; otherwise pairs are (i, i+R/2) for R rotated
	// channels, as in Hugging Face's rotate_half.
	Interleaved bool
	// Scale multiplies cos and sin (Hugging Face's attention_scaling, used by
	// yarn and longrope); 0 means 1.
	Scale float64
}

// Rotary applies rotary position embeddings.
type Rotary interface {
	// RoPE rotates x ([N, H, D]: N tokens of H heads) by positions pos ([N])
	// into dst. With inverse it turns the other way, which is its backward
	// pass (the rotation's transpose; with Scale s, the backward of a forward
	// with s is the inverse with s). dst may be x.
	RoPE(dst, x, pos *tensor.Tensor, r *Rope, inverse bool) error
}

// AttentionArgs are the operands of causal scaled-dot-product attention with
// grouped-query heads, for a batch of B sequences.
//
// Queries are Q [B, Tq, Hq, D], keys and values K, V [B, Tk, Hkv, D]; Hq is a
// multiple of Hkv, and query head h reads key-value head h/(Hq/Hkv). This is
// the layout a linear projection produces, so no transposes are needed. Tk >=
// Tq: the queries are the last Tq of the Tk positions (Tk > Tq when keys come
// from a cache during generation).
//
// Query i (at key position i + Tk - Tq) attends to key j when all hold:
//   - causal: j <= i + Tk - Tq;
//   - Window > 0: i + Tk - Tq - j < Window (a sliding window);
//   - Segments != nil: Segments[b, j] == Segments[b, i+Tk-Tq] and
//     Segments[b, j] >= 0. Segments ([B, Tk], I32) numbers the documents
//     of a packed row; -1 marks padding. A query whose every key is masked
//     (a padding token) outputs zeros and passes no gradient.
type AttentionArgs struct {
	Q, K, V  *tensor.Tensor
	Segments *tensor.Tensor // optional, [B, Tk] I32
	Window   int            // 0: unlimited
	Scale    float64        // score scale; 0 means 1/sqrt(D)
	// Out is the output [B, Tq, Hq, D].
	Out *tensor.Tensor
	// LSE ([B, Hq, Tq]) holds the log-sum-exp of each query's scaled
	// scores, written by the forward pass and read by the backward pass;
	// -Inf for a query with no key. It may be nil in a forward pass whose
	// backward pass will not run.
	LSE *tensor.Tensor
	// DOut is the gradient of Out, read by the backward pass; DQ, DK, DV are
	// written by it (overwritten, not accumulated). Any of DQ, DK, DV may be
	// nil when its gradient is not needed.
	DOut, DQ, DK, DV *tensor.Tensor
}

// Attention is fused attention: the forward pass never holds a Tq x Tk
// matrix of scores per head, and the backward pass recomputes them from LSE.
type Attention interface {
	// Attention computes a.Out (and a.LSE when not nil) from Q, K, V.
	Attention(a *AttentionArgs) error
	// AttentionBackward computes a.DQ, a.DK and a.DV from Q, K, V, Out,
	// LSE and DOut.
	AttentionBackward(a *AttentionArgs) error
}

// IgnoreIndex is the target that cross-entropy skips, as in PyTorch and
// Hugging Face (-100).
const IgnoreIndex = -100

// Losses are fused loss kernels.
type Losses interface {
	// CrossEntropy computes, for each row of logits ([N, V]) with target t
	// (targets [N]), loss = logsumexp(row) - row[t], into losses ([N]), and
	// stores logsumexp(row) in lse ([N]). A row whose target is IgnoreIndex
	// gets loss 0. A target outside [0, V) is an error naming the row.
	CrossEntropy(losses, lse, logits, targets *tensor.Tensor) error
	// CrossEntropyBackward sets dlogits = g * (softmax(row) - onehot(t)) for
	// each row, where g is the one-element tensor dloss (the gradient of the
	// summed loss), and zero for ignored rows. dlogits may be logits itself,
	// so that the gradient takes the logits' memory instead of a second
	// buffer of N x V.
	CrossEntropyBackward(dlogits, logits, lse, targets, dloss *tensor.Tensor) error
}

// AdamWArgs are the hyperparameters of one AdamW step (Loshchilov and
// Hutter's decoupled weight decay, as torch.optim.AdamW computes it).
type AdamWArgs struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Step is the number of this step, from 1, for the bias corrections.
	Step int
	// GradScale multiplies every gradient as it is read (gradient
	// clipping); 0 means 1.
	GradScale float64
}

// SGDArgs are the hyperparameters of one step of SGD with momentum, as
// torch.optim.SGD computes it (weight decay added to the gradient).
type SGDArgs struct {
	LR, Momentum, Dampening, WeightDecay float64
	Nesterov                             bool
	// First says the momentum buffer is empty (the first step): it is set
	// to the gradient instead of updated.
	First bool
	// GradScale multiplies every gradient as it is read; 0 means 1.
	GradScale float64
}

// Optimizers are the fused update kernels of the optimisers: one pass over
// a parameter buffer, its gradient and its state.
type Optimizers interface {
	// AdamW updates p in place from gradient g and the moment buffers m
	// and v (all of one shape and dtype), which it updates too:
	//   p *= 1 - lr*wd
	//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
	//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
	AdamW(p, g, m, v *tensor.Tensor, a *AdamWArgs) error
	// SGD updates p in place from g and the momentum buffer buf:
	//   g' = g + wd*p;  buf = momentum*buf + (1-dampening)*g' (buf = g' on
	//   the first step);  p -= lr * (nesterov ? g' + momentum*buf : buf)
	// With Momentum 0, buf is not used and may be nil.
	SGD(p, g, buf *tensor.Tensor, a *SGDArgs) error
	// SumSquares sets the one element of dst to the sum of the squares of
	// x's elements, accumulated in float64 (a gradient norm).
	SumSquares(dst, x *tensor.Tensor) error
	// AdamW8bit is AdamW with 8-bit moments, as bitsandbytes' blockwise
	// 8-bit Adam: m and v (U8 codes) are dequantised per block of 256
	// with their absmax (mAbsmax, vAbsmax: F32 per block) and the dynamic
	// maps codeM (signed) and codeV (unsigned) (F32 [256]), updated in
	// float32 as AdamW does, and quantised back to the nearest code with
	// new absmax values.
	AdamW8bit(p, g, m, v, mAbsmax, vAbsmax, codeM, codeV *tensor.Tensor, a *AdamWArgs) error
}
