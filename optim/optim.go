package optim

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Group holds the settings of one parameter group: a multiplier of the
// learning rate (LoRA+ trains lora_B with a higher one) and a weight decay.
type Group struct {
	LRScale     float64 // 0 means 1
	WeightDecay float64
}

// Optimizer updates a ParamSet from its gradients.
type Optimizer interface {
	// Step applies one update at learning rate lr. gradScale multiplies
	// every gradient as it is read (see ClipGradNorm); 0 means 1.
	Step(lr, gradScale float64) error
	// Steps is the number of steps taken.
	Steps() int
	// State returns the optimiser's state buffers by name, and its step
	// count, for checkpoints.
	State() (map[string]*tensor.Tensor, int)
	// SetSteps restores the step count after the buffers were copied back.
	SetSteps(n int)
	// Params is the parameter set the optimiser updates.
	Params() *ParamSet
}

// AdamW is torch.optim.AdamW: Adam with decoupled weight decay.
type AdamW struct {
	Beta1, Beta2, Eps float64
	set               *ParamSet
	groups            map[string]Group
	m, v              *tensor.Tensor
	step              int
}

// NewAdamW returns AdamW over set with zeroed moments; groups gives each
// parameter group's settings (a group missing from it gets defaults, which
// is an LR scale of 1 and decay wd).
func NewAdamW(set *ParamSet, beta1, beta2, eps, wd float64, groups map[string]Group) (*AdamW, error) {
	b := set.Backend()
	m, err := b.Alloc(set.Values.DType(), set.Len())
	if err != nil {
		return nil, err
	}
	v, err := b.Alloc(set.Values.DType(), set.Len())
	if err != nil {
		return nil, err
	}
	gs := map[string]Group{}
	for _, s := range set.ranges() {
		g, ok := groups[s.group]
		if !ok {
			g = Group{WeightDecay: wd}
		}
		gs[s.group] = g
	}
	return &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, set: set, groups: gs, m: m, v: v}, nil
}

// Step applies one AdamW update, group by group, each one fused pass.
func (o *AdamW) Step(lr, gradScale float64) error {
	o.step++
	for _, s := range o.set.ranges() {
		g := o.groups[s.group]
		views, err := viewsOf(s, o.set.Values, o.set.Grads, o.m, o.v)
		if err != nil {
			return err
		}
		a := &backend.AdamWArgs{LR: lr * lrScale(g), Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
			WeightDecay: g.WeightDecay, Step: o.step, GradScale: gradScale}
		if err := o.set.Backend().AdamW(views[0], views[1], views[2], views[3], a); err != nil {
			return fmt.Errorf("adamw: group %q: %w", s.group, err)
		}
	}
	return nil
}

// Steps is the number of steps taken.
func (o *AdamW) Steps() int { return o.step }

// Params is the parameter set AdamW updates.
func (o *AdamW) Params() *ParamSet { return o.set }

// State returns the moment buffers ("exp_avg", "exp_avg_sq") and the step.
func (o *AdamW) State() (map[string]*tensor.Tensor, int) {
	return map[string]*tensor.Tensor{"exp_avg": o.m, "exp_avg_sq": o.v}, o.step
}

// SetSteps sets the step count (after restoring the buffers).
func (o *AdamW) SetSteps(n int) { o.step = n }

// SGD is torch.optim.SGD with momentum, dampening and Nesterov momentum.
type SGD struct {
	Momentum, Dampening float64
	Nesterov            bool
	set                 *ParamSet
	groups              map[string]Group
	buf                 *tensor.Tensor
	step                int
}

// NewSGD returns SGD over set; groups as for NewAdamW.
func NewSGD(set *ParamSet, momentum, dampening float64, nesterov bool, wd float64, groups map[string]Group) (*SGD, error) {
	if nesterov && (momentum <= 0 || dampening != 0) {
		return nil, fmt.Errorf("sgd: Nesterov momentum needs momentum > 0 and dampening 0")
	}
	o := &SGD{Momentum: momentum, Dampening: dampening, Nesterov: nesterov, set: set, groups: map[string]Group{}}
	for _, s := range set.ranges() {
		g, ok := groups[s.group]
		if !ok {
			g = Group{WeightDecay: wd}
		}
		o.groups[s.group] = g
	}
	var err error
	if o.buf, err = set.Backend().Alloc(set.Values.DType(), set.Len()); err != nil {
		return nil, err
	}
	return o, nil
}

// Step applies one SGD update.
func (o *SGD) Step(lr, gradScale float64) error {
	o.step++
	for _, s := range o.set.ranges() {
		g := o.groups[s.group]
		views, err := viewsOf(s, o.set.Values, o.set.Grads, o.buf)
		if err != nil {
			return err
		}
		a := &backend.SGDArgs{LR: lr * lrScale(g), Momentum: o.Momentum, Dampening: o.Dampening,
			WeightDecay: g.WeightDecay, Nesterov: o.Nesterov, First: o.step == 1, GradScale: gradScale}
		if err := o.set.Backend().SGD(views[0], views[1], views[2], a); err != nil {
			return fmt.Errorf("sgd: group %q: %w", s.group, err)
		}
	}
	return nil
}

// Steps is the number of steps taken.
func (o *SGD) Steps() int { return o.step }

// Params is the parameter set SGD updates.
func (o *SGD) Params() *ParamSet { return o.set }

// State returns the momentum buffer and the step.
func (o *SGD) State() (map[string]*tensor.Tensor, int) {
	return map[string]*tensor.Tensor{"momentum_buffer": o.buf}, o.step
}

// SetSteps sets the step count (after restoring the buffer).
func (o *SGD) SetSteps(n int) { o.step = n }

func lrScale(g Group) float64 {
	if g.LRScale == 0 {
		return 1
	}
	return g.LRScale
}

// viewsOf cuts the span s out of each buffer.
func viewsOf(s span, bufs ...*tensor.Tensor) ([]*tensor.Tensor, error) {
	out := make([]*tensor.Tensor, len(bufs))
	for i, b := range bufs {
		v, err := b.View(s.start, s.end-s.start)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// GradNorm returns the global L2 norm of the gradient buffer.
func GradNorm(set *ParamSet) (float64, error) {
	b := set.Backend()
	dst, err := b.Alloc(set.Grads.DType(), 1)
	if err != nil {
		return 0, err
	}
	if err := b.SumSquares(dst, set.Grads); err != nil {
		return 0, err
	}
	s, err := autograd.ToHost(b, dst)
	if err != nil {
		return 0, err
	}
	return math.Sqrt(s[0]), nil
}

// ClipGradNorm returns the global gradient norm and the factor that clips
// it to maxNorm, as torch.nn.utils.clip_grad_norm_ computes it:
// min(1, maxNorm/(norm+1e-6)). Pass the factor to Step as gradScale (it
// scales the gradients as they are read, saving a pass). maxNorm <= 0
// disables clipping (factor 1).
func ClipGradNorm(set *ParamSet, maxNorm float64) (norm, scale float64, err error) {
	norm, err = GradNorm(set)
	if err != nil || maxNorm <= 0 {
		return norm, 1, err
	}
	return norm, min(1, maxNorm/(norm+1e-6)), nil
}
