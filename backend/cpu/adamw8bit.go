package cpu

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// adamW8bitBlock is the number of elements that share one absmax: the block
// size of bitsandbytes' blockwise 8-bit optimisers.
const adamW8bitBlock = 256

// AdamW8bit is one step of AdamW with 8-bit moments, as bitsandbytes'
// blockwise kernel (kOptimizerStatic8bit2StateBlockwise with ADAM) computes
// it; see backend.Optimizers. For each block of 256 elements (the last may
// be partial), in float32:
//
//	m = codeM[mq]*mAbsmax[b];  v = codeV[vq]*vAbsmax[b]   (dequantise)
//	g *= gradScale
//	v = v*b2 + (1-b2)*g*g;  m = m*b1 + (1-b1)*g
//	p += -lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + sqrt(1-b2^t)*eps)
//	p *= 1 - lr*wd
//	mAbsmax[b] = max|m|, vAbsmax[b] = max|v|;  mq, vq = nearest codes of
//	m/mAbsmax[b] and v/vAbsmax[b]
//
// Bias correction and the update are AdamW's, written as bitsandbytes
// writes them (the same quantity; eps is scaled by sqrt(1-b2^t) instead of
// dividing sqrt(v)). As in bitsandbytes, weight decay multiplies p after the
// Adam step rather than before (a difference of order lr²·wd from torch's
// order), and an element whose raw gradient is NaN or ±Inf leaves p alone
// and zeroes its two moments.
//
// The nearest code is bitsandbytes' quantize_2D: a binary search over the
// sorted code that ends between two neighbours and picks the nearer by
// comparing with their float32 midpoint (a value on the midpoint keeps the
// code where the search ended); a quantised m whose code has the wrong sign
// then moves one code towards its sign, so that no m flips sign. The block
// maximum maps to code 255 (1.0) when positive. A block whose moments are
// all zero has absmax 0; its codes are whatever quantize_2D makes of 0/0,
// as in bitsandbytes, and dequantise to 0.
//
// In a partial last block bitsandbytes' reduction also sees the padding
// lanes, which load m code 128, v code 0 and a zero gradient; their m
// (b1·codeM[128]·mAbsmax) enters the block's new absmax too. This kernel
// does the same, so a partial block whose real moments are all zero keeps
// a tiny absmax instead of 0 (the codes still dequantise to zero).
//
// Arithmetic is IEEE float32, one rounding per operation (no fused
// multiply-adds, exact division; CUDA uses __fdividef and __powf), and the
// step constants are computed in float64 and rounded once. Blocks are
// independent, so the result does not depend on the thread count.
func (b *Backend) AdamW8bit(p, g, m, v, mAbsmax, vAbsmax, codeM, codeV *tensor.Tensor, a *backend.AdamWArgs) error {
	const op = "cpu: AdamW8bit"
	ps, err := floats[float32](op+": p", p)
	if err != nil {
		return err
	}
	n := len(ps)
	gs, err := floats[float32](op+": g", g)
	if err != nil {
		return err
	}
	ms, err := adamW8bitU8s(op+": m", m)
	if err != nil {
		return err
	}
	vs, err := adamW8bitU8s(op+": v", v)
	if err != nil {
		return err
	}
	mAbs, err := floats[float32](op+": mAbsmax", mAbsmax)
	if err != nil {
		return err
	}
	vAbs, err := floats[float32](op+": vAbsmax", vAbsmax)
	if err != nil {
		return err
	}
	cm, err := floats[float32](op+": codeM", codeM)
	if err != nil {
		return err
	}
	cv, err := floats[float32](op+": codeV", codeV)
	if err != nil {
		return err
	}
	blocks := (n + adamW8bitBlock - 1) / adamW8bitBlock
	for _, c := range []struct {
		name      string
		got, want int
	}{{"g", len(gs), n}, {"m", len(ms), n}, {"v", len(vs), n},
		{"mAbsmax", len(mAbs), blocks}, {"vAbsmax", len(vAbs), blocks},
		{"codeM", len(cm), 256}, {"codeV", len(cv), 256}} {
		if c.got != c.want {
			return fmt.Errorf("%s: %s has %d elements, want %d", op, c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		code []float32
	}{{"codeM", cm}, {"codeV", cv}} {
		for i, x := range c.code {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s: %s[%d] is %v", op, c.name, i, x)
			}
			if i > 0 && c.code[i-1] > x {
				return fmt.Errorf("%s: %s is not sorted ascending at %d (%v, %v)", op, c.name, i, c.code[i-1], x)
			}
		}
	}
	if a.Step < 1 {
		return fmt.Errorf("%s: step %d, want 1 or more", op, a.Step)
	}
	k := newAdamW8bitConsts(a)
	keysM, keysV := newCodeKeys(cm), newCodeKeys(cv)
	b.parallelFor(blocks, 32, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			start := blk * adamW8bitBlock
			end := min(start+adamW8bitBlock, n)
			adamW8bitBlockStep(&k, keysM, keysV, ps[start:end], gs[start:end], ms[start:end], vs[start:end], &mAbs[blk], &vAbs[blk])
		}
	})
	return nil
}

// adamW8bitConsts are the per-step constants, in float32.
type adamW8bitConsts struct {
	b1, b2, omb1, omb2 float32 // betas and 1 - betas (float32 subtractions)
	scale              float32 // gradient scale
	stepSize           float32 // -lr * sqrt(1-b2^t) / (1-b1^t)
	epsTerm            float32 // sqrt(1-b2^t) * eps
	decay              float32 // 1 - lr*wd
}

func newAdamW8bitConsts(a *backend.AdamWArgs) adamW8bitConsts {
	k := adamW8bitConsts{b1: float32(a.Beta1), b2: float32(a.Beta2), scale: 1}
	k.omb1, k.omb2 = 1-k.b1, 1-k.b2
	if a.GradScale != 0 {
		k.scale = float32(a.GradScale)
	}
	c1 := 1 - float64(powInt(a.Beta1, a.Step))
	c2 := math.Sqrt(1 - float64(powInt(a.Beta2, a.Step)))
	k.stepSize = float32(-a.LR * c2 / c1)
	k.epsTerm = float32(c2 * a.Eps)
	k.decay = float32(1 - float64(a.LR*a.WeightDecay))
	return k
}

// powInt is x^n by binary exponentiation in float64: a fixed sequence of
// IEEE multiplications, so that other implementations (the golden script)
// can reproduce the bias corrections bit for bit.
func powInt(x float64, n int) float64 {
	r := 1.0
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			r = float64(r * x) // the conversions forbid fused multiply-adds
		}
		x = float64(x * x)
	}
	return r
}

// adamW8bitBlockStep updates one block (p, g, m, v of up to 256 elements)
// and its two absmax values.
func adamW8bitBlockStep(k *adamW8bitConsts, km, kv *codeKeys, ps, gs []float32, ms, vs []uint8, mAbs, vAbs *float32) {
	var s1s, s2s [adamW8bitBlock]float32
	cm, cv := &km.code, &kv.code
	am, av := *mAbs, *vAbs
	newM, newV := float32(-math.MaxFloat32), float32(-math.MaxFloat32)
	if len(ps) < adamW8bitBlock {
		// bitsandbytes' padding lanes: m code 128, v code 0, gradient 0.
		s1, s2 := k.moments(cm[128]*am, cv[0]*av, 0)
		newM, newV = fmaxf(newM, abs32(s1)), fmaxf(newV, abs32(s2))
	}
	for i, graw := range gs {
		var s1, s2 float32
		if !math.IsNaN(float64(graw)) && !math.IsInf(float64(graw), 0) {
			s1, s2 = k.moments(cm[ms[i]]*am, cv[vs[i]]*av, graw*k.scale)
		}
		s1s[i], s2s[i] = s1, s2
		newM, newV = fmaxf(newM, abs32(s1)), fmaxf(newV, abs32(s2))
	}
	*mAbs, *vAbs = newM, newV
	for i, graw := range gs {
		if math.IsNaN(float64(graw)) || math.IsInf(float64(graw), 0) {
			continue
		}
		s1, s2 := s1s[i], s2s[i]
		denom := float32(math.Sqrt(float64(s2))) + k.epsTerm
		p := ps[i] + float32(k.stepSize*(s1/denom))
		ps[i] = p * k.decay
	}
	n := len(gs)
	var xs [adamW8bitBlock]float32
	for i, s1 := range s1s[:n] {
		xs[i] = s1 / newM
	}
	quantizeBlock(km, xs[:n], ms)
	for i, s1 := range s1s[:n] {
		// No m changes sign by quantisation.
		if c1 := ms[i]; math.Signbit(float64(cm[c1])) != math.Signbit(float64(s1)) {
			if s1 > 0 {
				ms[i] = c1 + 1
			} else {
				ms[i] = c1 - 1
			}
		}
	}
	for i, s2 := range s2s[:n] {
		xs[i] = s2 / newV
	}
	quantizeBlock(kv, xs[:n], vs)
}

// moments returns the updated m and v from their dequantised values and the
// scaled gradient g, rounding after every operation as bitsandbytes'
// kernel writes it: v*b2 + ((1-b2)*g)*g and m*b1 + (1-b1)*g.
func (k *adamW8bitConsts) moments(m, v, g float32) (float32, float32) {
	v = float32(v*k.b2) + float32(float32(k.omb2*g)*g)
	m = float32(m*k.b1) + float32(k.omb1*g)
	return m, v
}

// quantize2D is bitsandbytes' quantize_2D: the index of the code nearest
// to x, found by binary search over the sorted code. The search visits the
// odd pivots 127, 127±64, ... and ends at an even index p whose in-order
// neighbours p-1 and p+1 it has visited; it then returns the nearer of p and
// the neighbour on x's side by comparing x with their float32 midpoint (on
// the midpoint it keeps p). Below code 0 the neighbour is the value lower
// (-1 for a signed code, 0 for an unsigned one) at index 0, above code 254
// it is 1 at index 255. (bitsandbytes also compares with the midpoint of
// code 0 and -1 or 0 below it, but either way returns 0.) A NaN x ends at 0
// (every comparison is false).
//
// bitsandbytes carries the neighbours down the search in variables;
// computing them from p gives the same result, and comparing order keys
// (see orderKey) of x, the codes and the midpoints instead of floats lets
// the whole search run without branches. The tests check this against the
// search as bitsandbytes writes it.
func quantize2D(c *codeKeys, x float32) uint8 {
	var q [1]uint8
	quantizeBlock(c, []float32{x}, q[:])
	return q[0]
}

// quantizeBlock sets out[i] = quantize2D(c, xs[i]), four values in lockstep
// (in registers) so that their searches overlap.
func quantizeBlock(c *codeKeys, xs []float32, out []uint8) {
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		k0, k1, k2, k3 := int64(orderKey(xs[i])), int64(orderKey(xs[i+1])), int64(orderKey(xs[i+2])), int64(orderKey(xs[i+3]))
		p0, p1, p2, p3 := int64(127), int64(127), int64(127), int64(127)
		for d := int64(-64); d < 0; d /= 2 {
			// gt is -1 when x > code[p], else 0; p moves by -d or d.
			g0 := (int64(c.key[uint8(p0)]) - k0) >> 63
			g1 := (int64(c.key[uint8(p1)]) - k1) >> 63
			g2 := (int64(c.key[uint8(p2)]) - k2) >> 63
			g3 := (int64(c.key[uint8(p3)]) - k3) >> 63
			p0 += (d ^ g0) - g0
			p1 += (d ^ g1) - g1
			p2 += (d ^ g2) - g2
			p3 += (d ^ g3) - g3
		}
		out[i] = c.finish(xs[i], k0, p0)
		out[i+1] = c.finish(xs[i+1], k1, p1)
		out[i+2] = c.finish(xs[i+2], k2, p2)
		out[i+3] = c.finish(xs[i+3], k3, p3)
	}
	for ; i < len(xs); i++ {
		k, p := int64(orderKey(xs[i])), int64(127)
		for d := int64(-64); d < 0; d /= 2 {
			g := (int64(c.key[uint8(p)]) - k) >> 63
			p += (d ^ g) - g
		}
		out[i] = c.finish(xs[i], k, p)
	}
}

// finish is quantize2D's last comparison, at the index p the descent for
// x (with order key k) ended at: p, or its neighbour on x's side when x is
// past their midpoint.
func (c *codeKeys) finish(x float32, k, p int64) uint8 {
	i := uint8(p)
	gt := (int64(c.key[i]) - k) >> 63          // -1: x > code[p]
	up := -((int64(c.midUp[i]) - k) >> 63)     // 1: x > the midpoint above
	down := -((k - int64(c.midDown[i])) >> 63) // 1: x < the midpoint below
	q := uint8(p - gt*up - (1+gt)*down)
	if x != x {
		q = 0
	}
	return q
}

// codeKeys is a code with the order keys of its values and of the
// midpoints quantize2D compares with at each even index p: midUp[p] of
// code[p] and code[p+1] (1 above code 254) and midDown[p] of code[p-1] and
// code[p]. Below code 0 the neighbour is index 0 itself, so whatever the
// midpoint with lower, x there gets code 0: midDown[0] is the least key.
type codeKeys struct {
	code                [256]float32
	key, midUp, midDown [256]int32
}

func newCodeKeys(code []float32) *codeKeys {
	c := &codeKeys{}
	copy(c.code[:], code)
	for p, v := range c.code {
		c.key[p] = orderKey(v)
		upper := float32(1)
		if p < 254 {
			upper = c.code[p+1]
		}
		c.midUp[p] = orderKey((upper + v) * 0.5)
		if p > 0 {
			c.midDown[p] = orderKey((c.code[p-1] + v) * 0.5)
		}
	}
	c.midDown[0] = math.MinInt32
	return c
}

// orderKey maps a float32 that is not NaN to an int32 with the same order:
// orderKey(x) > orderKey(y) exactly when x > y (-0 and +0 both map to 0).
func orderKey(x float32) int32 {
	k := int32(math.Float32bits(x + 0)) // x + 0 turns -0 into +0
	return k ^ (k >> 31 & 0x7fffffff)
}

// fmaxf is C's fmaxf: a NaN operand is ignored.
func fmaxf(a, b float32) float32 {
	switch {
	case a != a:
		return b
	case b != b:
		return a
	case a > b:
		return a
	}
	return b
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// adamW8bitU8s returns the elements of a CPU U8 tensor, aliasing its memory; name is
// used in the error.
func adamW8bitU8s(name string, t *tensor.Tensor) ([]uint8, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: missing tensor", name)
	}
	if t.DType() != tensor.U8 {
		return nil, fmt.Errorf("%s: tensor %v, want %v", name, t, tensor.U8)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return raw, nil
}
