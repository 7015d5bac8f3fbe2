package optim

import (
	"fmt"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/quant"
	"github.com/whet-ai/whet/tensor"
)

// MinSize8bit is the number of elements from which a tensor gets 8-bit
// moments in AdamW8bit; smaller tensors keep float32 moments, as
// bitsandbytes' min_8bit_size (4096) decides per tensor.
const MinSize8bit = 4096

// Block8bit is the number of elements of an 8-bit moment that share one
// absmax (bitsandbytes' blockwise block).
const Block8bit = 256

// AdamW8bit is bitsandbytes' AdamW8bit (blockwise, the default): AdamW with
// both moments of every tensor of MinSize8bit elements or more stored as one
// byte per element, a code into bitsandbytes' dynamic maps (signed for the
// first moment, unsigned for the second) scaled by a float32 absmax per
// block of 256 elements of that tensor; see backend.Optimizers.AdamW8bit.
// The codes are quant.DynamicMap's. Smaller tensors (biases, norms, small
// adapters) keep float32 moments and step exactly as AdamW does. The state
// takes about a quarter of AdamW's: 2 bytes per parameter of the large
// tensors, plus 8 bytes per block of 256 and 2 KiB of codes.
//
// Groups, learning-rate scales and gradScale work as in AdamW. One
// difference from AdamW on the 8-bit tensors, inherited from bitsandbytes:
// weight decay multiplies the parameters after the Adam step rather than
// before it.
type AdamW8bit struct {
	Beta1, Beta2, Eps float64
	set               *ParamSet
	groups            map[string]Group
	runs              []run8
	// 8-bit moments of the large tensors, their block maxima and codes.
	m8, v8, absM, absV, codeM, codeV *tensor.Tensor
	// float32 moments of the small tensors.
	m32, v32 *tensor.Tensor
	step     int
}

// run8 is a stretch of the parameter buffer that one kernel call updates:
// tensors of one group and one kind of state, laid out back to back. 8-bit
// tensors join a run only when the run so far is a whole number of blocks,
// so that blocks start at each tensor's start, as bitsandbytes' per-tensor
// states do.
type run8 struct {
	names        string // the first tensor's name (and "..." if more)
	group        string
	eightBit     bool
	off, n       int // in Values and Grads
	state, block int // offset in the moment buffers; first block (8-bit)
}

// NewAdamW8bit returns AdamW8bit over set (F32) with zeroed moments, as
// NewAdamW: groups gives each parameter group's settings, and a group
// missing from it gets an LR scale of 1 and decay wd.
func NewAdamW8bit(set *ParamSet, beta1, beta2, eps, wd float64, groups map[string]Group) (*AdamW8bit, error) {
	if dt := set.Values.DType(); dt != tensor.F32 {
		return nil, fmt.Errorf("adamw8bit: parameters are %v, want %v", dt, tensor.F32)
	}
	o := &AdamW8bit{Beta1: beta1, Beta2: beta2, Eps: eps, set: set, groups: map[string]Group{}}
	for _, s := range set.ranges() {
		g, ok := groups[s.group]
		if !ok {
			g = Group{WeightDecay: wd}
		}
		o.groups[s.group] = g
	}
	n8, n32, blocks := 0, 0, 0
	for _, p := range set.Params {
		big := p.Len >= MinSize8bit
		if k := len(o.runs); k > 0 {
			r := &o.runs[k-1]
			if r.group == p.Group && r.eightBit == big && r.off+r.n == p.Offset && (!big || r.n%Block8bit == 0) {
				r.n += p.Len
				if big {
					n8 += p.Len
					blocks += numBlocks(p.Len)
				} else {
					n32 += p.Len
				}
				if !strings.HasSuffix(r.names, "...") {
					r.names += "..."
				}
				continue
			}
		}
		r := run8{names: p.Name, group: p.Group, eightBit: big, off: p.Offset, n: p.Len}
		if big {
			r.state, r.block = n8, blocks
			n8 += p.Len
			blocks += numBlocks(p.Len)
		} else {
			r.state = n32
			n32 += p.Len
		}
		o.runs = append(o.runs, r)
	}
	b := set.Backend()
	var err error
	alloc := func(dt tensor.DType, n int) *tensor.Tensor {
		if err != nil {
			return nil
		}
		var t *tensor.Tensor
		t, err = b.Alloc(dt, n)
		return t
	}
	o.m8, o.v8 = alloc(tensor.U8, n8), alloc(tensor.U8, n8)
	o.absM, o.absV = alloc(tensor.F32, blocks), alloc(tensor.F32, blocks)
	o.m32, o.v32 = alloc(tensor.F32, n32), alloc(tensor.F32, n32)
	if err != nil {
		return nil, err
	}
	if o.codeM, err = backend.FromFloat32(b, quant.DynamicMap(true), 256); err != nil {
		return nil, err
	}
	if o.codeV, err = backend.FromFloat32(b, quant.DynamicMap(false), 256); err != nil {
		return nil, err
	}
	return o, nil
}

func numBlocks(n int) int { return (n + Block8bit - 1) / Block8bit }

// Step applies one update: one fused kernel call per run of tensors.
func (o *AdamW8bit) Step(lr, gradScale float64) error {
	o.step++
	b := o.set.Backend()
	for _, r := range o.runs {
		g := o.groups[r.group]
		a := &backend.AdamWArgs{LR: lr * lrScale(g), Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
			WeightDecay: g.WeightDecay, Step: o.step, GradScale: gradScale}
		p, err := o.set.Values.View(r.off, r.n)
		if err != nil {
			return err
		}
		gr, err := o.set.Grads.View(r.off, r.n)
		if err != nil {
			return err
		}
		if r.eightBit {
			views, err := viewsOf(span{start: r.state, end: r.state + r.n}, o.m8, o.v8)
			if err != nil {
				return err
			}
			abs, err := viewsOf(span{start: r.block, end: r.block + numBlocks(r.n)}, o.absM, o.absV)
			if err != nil {
				return err
			}
			err = b.AdamW8bit(p, gr, views[0], views[1], abs[0], abs[1], o.codeM, o.codeV, a)
		} else {
			views, err := viewsOf(span{start: r.state, end: r.state + r.n}, o.m32, o.v32)
			if err != nil {
				return err
			}
			err = b.AdamW(p, gr, views[0], views[1], a)
		}
		if err != nil {
			return fmt.Errorf("adamw8bit: %s (group %q): %w", r.names, r.group, err)
		}
	}
	return nil
}

// Steps is the number of steps taken.
func (o *AdamW8bit) Steps() int { return o.step }

// Params is the parameter set AdamW8bit updates.
func (o *AdamW8bit) Params() *ParamSet { return o.set }

// State returns the state buffers and the step, under bitsandbytes' names
// for the 8-bit ones: "state1" and "state2" (U8 codes of the first and
// second moments of the large tensors, back to back in buffer order),
// "absmax1" and "absmax2" (F32, one per block of 256 of each tensor),
// "qmap1" and "qmap2" (the F32 [256] signed and unsigned codes, saved so that
// a resumed run decodes with exactly the codes it encoded with), and AdamW's
// "exp_avg" and "exp_avg_sq" (F32 moments of the small tensors). A buffer
// may have no elements (no large or no small tensors).
func (o *AdamW8bit) State() (map[string]*tensor.Tensor, int) {
	return map[string]*tensor.Tensor{
		"state1": o.m8, "state2": o.v8, "absmax1": o.absM, "absmax2": o.absV,
		"qmap1": o.codeM, "qmap2": o.codeV, "exp_avg": o.m32, "exp_avg_sq": o.v32,
	}, o.step
}

// SetSteps sets the step count (after restoring the buffers).
func (o *AdamW8bit) SetSteps(n int) { o.step = n }
