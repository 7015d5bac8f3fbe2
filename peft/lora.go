// Package peft holds adapters on frozen models in the format of Hugging
// Face's PEFT library: trainable LoRA, rsLoRA and DoRA layers that attach to
// a model's linear layers through nn.Linear's Adapter hook, their adapter
// directories (adapter_config.json and adapter_model.safetensors, as PEFT's
// save_pretrained writes them), merging adapters into the base weights, and
// full fine-tuning of every weight.
//
// Trainable adapter tensors live in one optim.ParamSet (one contiguous
// value buffer and one gradient buffer), in the groups "lora_A", "lora_B"
// and "lora_magnitude", so that an optimiser can give each group its own
// learning rate (LoRA+). All arithmetic on them goes through the back end.
package peft

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/optim"
	"github.com/whet-ai/whet/tensor"
)

// KeyPrefix is what PEFT puts before a base model's module names in
// adapter_model.safetensors.
const KeyPrefix = "base_model.model."

// Parameter groups of an adapter's ParamSet.
const (
	GroupA         = "lora_A"
	GroupB         = "lora_B"
	GroupMagnitude = "lora_magnitude"
)

// Key suffixes of adapter_model.safetensors. PEFT's get_peft_model_state_dict
// strips the adapter name and, for DoRA, the ".weight" of the magnitude
// layer, so the magnitude is saved as "<module>.lora_magnitude_vector".
const (
	SuffixA         = ".lora_A.weight"
	SuffixB         = ".lora_B.weight"
	SuffixMagnitude = ".lora_magnitude_vector"
)

// Adapter is a LoRA adapter attached to a model's linear layers.
//
// Dropout runs only in training mode (SetTraining), with a mask drawn from
// the adapter's seed, the step set by SetStep and the layer's index, so
// that a forward pass recomputed under autograd.Checkpoint (whose first run
// is under NoGrad) draws the same masks. Evaluation turns it off with
// SetTraining(false): NoGrad alone does not, for that reason.
type Adapter struct {
	// Config is the adapter's configuration.
	Config *LoraConfig
	// Params holds every trainable tensor (nil for a frozen adapter), named
	// by its key in adapter_model.safetensors.
	Params *optim.ParamSet
	// Layers are the adapted layers, in model order.
	Layers []*Layer

	b        backend.Backend
	model    any
	dtype    tensor.DType
	seed     uint64
	step     uint64
	training bool
	merged   bool
}

// Layer is the adapter of one linear layer. It implements nn.Adapter.
type Layer struct {
	// Name is the module's name in the base model, e.g.
	// "model.layers.0.self_attn.q_proj".
	Name string
	// Linear is the adapted layer.
	Linear *nn.Linear
	// A is lora_A [r, in], B is lora_B [out, r]; Magnitude is DoRA's m
	// [out], nil for plain LoRA.
	A, B, Magnitude *autograd.Var
	// Scale multiplies the adapter's term (lora_alpha/r or
	// lora_alpha/sqrt(r)).
	Scale float64
	// Dropout is the dropout probability on the adapter's input.
	Dropout float64

	index int
	ad    *Adapter
	// orig is the base weight while merged.
	orig *autograd.Var
	// fixedNorm, when set, replaces DoRA's weight norm 1/||W + s B A||
	// (tests use it to take finite differences with the norm held, as its
	// gradient is detached).
	fixedNorm *tensor.Tensor
}

// Option adjusts Attach and Load.
type Option func(*options)

type options struct {
	dtype tensor.DType
}

// WithDType makes the adapter's tensors dtype (F32 by default; F64 for
// gradient checks on a model converted to F64).
func WithDType(dt tensor.DType) Option { return func(o *options) { o.dtype = dt } }

func getOptions(opts []Option) (options, error) {
	o := options{dtype: tensor.F32}
	for _, f := range opts {
		f(&o)
	}
	if o.dtype != tensor.F32 && o.dtype != tensor.F64 {
		return o, fmt.Errorf("adapter dtype %v, want f32 or f64", o.dtype)
	}
	return o, nil
}

// SetStep sets the step whose dropout masks the next forward passes draw.
// A trainer calls it before each forward pass with a number unique to that
// pass (with gradient accumulation, count micro-batches), and keeps it for
// the backward pass.
func (a *Adapter) SetStep(step uint64) { a.step = step }

// SetSeed sets the base seed of the dropout masks (Attach's seed; 0 after
// Load), for resuming training with a loaded adapter.
func (a *Adapter) SetSeed(seed uint64) { a.seed = seed }

// Step is the step set by SetStep.
func (a *Adapter) Step() uint64 { return a.step }

// SetTraining turns dropout on (training) or off (evaluation). Attach
// starts in training mode; Load starts in evaluation mode.
func (a *Adapter) SetTraining(on bool) { a.training = on }

// Training reports whether dropout is on.
func (a *Adapter) Training() bool { return a.training }

// Merged reports whether the adapter is folded into the base weights.
func (a *Adapter) Merged() bool { return a.merged }

// Backend is the back end the adapter's tensors live on.
func (a *Adapter) Backend() backend.Backend { return a.b }

// Attach selects cfg's target layers of model, creates their adapter
// tensors in one ParamSet (F32 unless WithDType says otherwise), initialises
// them as cfg.InitLoraWeights says from seed, and sets each layer's Adapter.
// With DoRA the magnitude starts as the row norms of W + scale*B A, as in
// PEFT. A layer that already has an adapter is an error.
func Attach(b backend.Backend, model any, cfg *LoraConfig, seed uint64, opts ...Option) (*Adapter, error) {
	o, err := getOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("peft: Attach: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	if err := cfg.validateInit(); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	targets, err := SelectTargets(model, cfg)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	shapes := make([][2]int, len(targets))
	for i, nl := range targets {
		if shapes[i], err = linearShape(nl); err != nil {
			return nil, err
		}
		if cfg.UseDoRA && nl.Layer.Weight.Quant != nil {
			return nil, fmt.Errorf("peft: layer %s: DoRA on a quantised base is not supported; use LoRA, or an unquantised base", nl.Name)
		}
	}
	ad := &Adapter{Config: cfg.clone(), b: b, model: model, dtype: o.dtype, seed: seed, training: true}
	if ad.Params, err = newParamSet(b, o.dtype, targets, shapes, cfg.R, cfg.UseDoRA); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	for i, nl := range targets {
		l := ad.newLayer(i, nl)
		if err := ad.initLayer(l, shapes[i], seed); err != nil {
			return nil, err
		}
	}
	if cfg.UseDoRA {
		if err := ad.initMagnitudes(); err != nil {
			return nil, err
		}
	}
	for _, l := range ad.Layers {
		l.Linear.Adapter = l
	}
	return ad, nil
}

// linearShape returns a layer's [out, in], checking it can take an adapter.
func linearShape(nl nn.NamedLinear) ([2]int, error) {
	w := nl.Layer.Weight
	switch {
	case w == nil || (w.Value == nil && w.Quant == nil):
		return [2]int{}, fmt.Errorf("peft: layer %s has no weight", nl.Name)
	case len(w.Shape()) != 2:
		return [2]int{}, fmt.Errorf("peft: layer %s has a weight of shape %v, want [out, in]", nl.Name, w.Shape())
	case nl.Layer.Adapter != nil:
		return [2]int{}, fmt.Errorf("peft: layer %s already has an adapter", nl.Name)
	}
	s := w.Shape()
	return [2]int{s[0], s[1]}, nil
}

// newParamSet lays out A, B (and m) of every target in one ParamSet.
func newParamSet(b backend.Backend, dt tensor.DType, targets []nn.NamedLinear, shapes [][2]int, r int, dora bool) (*optim.ParamSet, error) {
	var specs []optim.Spec
	for i, nl := range targets {
		out, in := shapes[i][0], shapes[i][1]
		specs = append(specs,
			optim.Spec{Name: KeyPrefix + nl.Name + SuffixA, Shape: []int{r, in}, Group: GroupA},
			optim.Spec{Name: KeyPrefix + nl.Name + SuffixB, Shape: []int{out, r}, Group: GroupB})
		if dora {
			specs = append(specs, optim.Spec{Name: KeyPrefix + nl.Name + SuffixMagnitude, Shape: []int{out}, Group: GroupMagnitude})
		}
	}
	return optim.NewParamSet(b, dt, specs)
}

// newLayer makes the i-th layer's adapter from the ParamSet's tensors (the
// caller sets A, B and Magnitude for a frozen adapter).
func (a *Adapter) newLayer(i int, nl nn.NamedLinear) *Layer {
	l := &Layer{Name: nl.Name, Linear: nl.Layer, Scale: a.Config.Scale(), Dropout: a.Config.LoraDropout, index: i, ad: a}
	if a.Params != nil {
		l.A = a.Params.Get(KeyPrefix + nl.Name + SuffixA).Var
		l.B = a.Params.Get(KeyPrefix + nl.Name + SuffixB).Var
		if p := a.Params.Get(KeyPrefix + nl.Name + SuffixMagnitude); p != nil {
			l.Magnitude = p.Var
		}
	}
	a.Layers = append(a.Layers, l)
	return l
}

// initLayer writes the initial A and B of a layer. The values are drawn on
// the host from a generator seeded by (seed, layer) and copied in: loading
// data, not arithmetic on parameters.
func (a *Adapter) initLayer(l *Layer, shape [2]int, seed uint64) error {
	out, in := shape[0], shape[1]
	r := a.Config.R
	rng := rand.New(rand.NewPCG(seed, uint64(l.index)))
	uniform := func(n int, bound float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = (2*rng.Float64() - 1) * bound
		}
		return v
	}
	var av, bv []float64
	switch a.Config.InitLoraWeights {
	case "", InitDefault:
		av, bv = uniform(r*in, 1/math.Sqrt(float64(in))), make([]float64, out*r)
	case InitGaussian:
		av = make([]float64, r*in)
		for i := range av {
			av[i] = rng.NormFloat64() / float64(r)
		}
		bv = make([]float64, out*r)
	case InitRandom:
		av, bv = uniform(r*in, 1/math.Sqrt(float64(in))), uniform(out*r, 1/math.Sqrt(float64(r)))
	}
	if err := copyIn(a.b, l.A.Value, av); err != nil {
		return fmt.Errorf("peft: init %s: %w", l.A.Name(), err)
	}
	if err := copyIn(a.b, l.B.Value, bv); err != nil {
		return fmt.Errorf("peft: init %s: %w", l.B.Name(), err)
	}
	return nil
}

// initMagnitudes sets every DoRA magnitude to the row norms of
// W + scale*B A, as PEFT does when it creates the layer.
func (a *Adapter) initMagnitudes() error {
	var scratch *tensor.Tensor
	for _, l := range a.Layers {
		out, in := l.Linear.Weight.Value.Dim(0), l.Linear.Weight.Value.Dim(1)
		if scratch == nil || scratch.Len() < out*in {
			var err error
			if scratch, err = a.b.Alloc(a.dtype, a.maxWeightLen()); err != nil {
				return fmt.Errorf("peft: %w", err)
			}
		}
		w, err := scratch.View(0, out, in)
		if err != nil {
			return err
		}
		if err := l.combined(w); err != nil {
			return fmt.Errorf("peft: magnitude of %s: %w", l.Name, err)
		}
		if err := a.b.RowNorms(l.Magnitude.Value, w, false); err != nil {
			return fmt.Errorf("peft: magnitude of %s: %w", l.Name, err)
		}
	}
	return nil
}

// maxWeightLen is the largest out*in of the adapted layers.
func (a *Adapter) maxWeightLen() int {
	n := 0
	for _, l := range a.Layers {
		n = max(n, l.Linear.Weight.Value.Len())
	}
	return n
}

// combined writes W + scale * B A into dst ([out, in], in the adapter's
// dtype, or the compute dtype of a frozen adapter's A): W converted, then
// one GEMM with beta 1.
func (l *Layer) combined(dst *tensor.Tensor) error {
	b := l.ad.b
	w := l.Linear.Weight.Value
	if l.orig != nil {
		w = l.orig.Value
	}
	if w.DType() == dst.DType() {
		if err := b.Copy(dst, w); err != nil {
			return err
		}
	} else if err := b.Convert(dst, w); err != nil {
		return err
	}
	out, in := w.Dim(0), w.Dim(1)
	r := l.A.Value.Dim(0)
	return b.Gemm(&backend.Gemm{
		M: out, N: in, K: r, Alpha: l.Scale, Beta: 1,
		A: backend.Matrix{T: l.B.Value, LD: r},
		B: backend.Matrix{T: l.A.Value, LD: in},
		C: backend.Matrix{T: dst, LD: in},
	})
}

// Forward adds the adapter's term to the frozen layer's output y, as PEFT's
// lora.Linear does:
//
//	LoRA: y + scale * B(A(dropout(x)))
//	DoRA: y + (mag-1) * base + mag * scale * B(A(dropout(x)))
//
// where, for DoRA, mag = m / ||W + scale*B A|| per output row (the norm
// computed each pass without gradient, as in PEFT), and base is y minus the
// layer's bias when dropout is off, or W dropout(x) when it is on.
func (l *Layer) Forward(g *autograd.Graph, x, y *autograd.Var) *autograd.Var {
	h := x
	dropout := l.ad.training && l.Dropout > 0
	if dropout {
		h = g.Dropout(x, l.Dropout, autograd.Seed(l.ad.seed, l.ad.step, uint64(l.index)))
	}
	lora := g.Linear(g.Linear(h, l.A, nil), l.B, nil)
	if l.Magnitude == nil {
		return g.Add(y, g.Scale(lora, l.Scale))
	}
	mag := l.magnitudeScale(g)
	var base, rest *autograd.Var
	switch {
	case dropout:
		base = g.Linear(h, l.Linear.Weight, nil)
		rest = g.Add(y, g.Scale(base, -1)) // the undropped W x + bias, less W h
	case l.Linear.Bias != nil:
		base = g.Add(y, g.Scale(l.Linear.Bias, -1))
		rest = l.Linear.Bias
	default:
		base = y
	}
	out := g.Mul(g.Add(base, g.Scale(lora, l.Scale)), mag)
	if rest != nil {
		out = g.Add(out, rest)
	}
	return out
}

// magnitudeScale returns m / ||W + scale*B A|| ([out]), with the norm held
// constant: it is computed by back-end kernels outside the tape (W
// converted into a pool temporary, one GEMM, RowNorms), into a tensor that
// the graph owns until Release.
func (l *Layer) magnitudeScale(g *autograd.Graph) *autograd.Var {
	if g.Err() != nil {
		return g.Scale(l.Magnitude, 1) // passes the graph's error on
	}
	var inv *autograd.Var
	g.NoGrad(func() { inv = g.Scale(l.Magnitude, 0) }) // a graph-owned [out] tensor
	if g.Err() != nil {
		return inv
	}
	fail := func(err error) *autograd.Var {
		return g.Fail(fmt.Errorf("DoRA weight norm of %s: %w", l.Name, err))
	}
	b := g.Backend()
	if l.fixedNorm != nil {
		if err := b.Copy(inv.Value, l.fixedNorm); err != nil {
			return fail(err)
		}
	} else {
		w := l.Linear.Weight.Value
		tmp, err := g.Pool().Get(l.Magnitude.Value.DType(), w.Dim(0), w.Dim(1))
		if err != nil {
			return fail(err)
		}
		err = l.combined(tmp)
		if err == nil {
			err = b.RowNorms(inv.Value, tmp, true)
		}
		g.Pool().Put(tmp)
		if err != nil {
			return fail(err)
		}
	}
	return g.Mul(l.Magnitude, inv)
}

// copyIn writes host values into t (F32 or F64).
func copyIn(b backend.Backend, t *tensor.Tensor, v []float64) error {
	if t.Len() != len(v) {
		return fmt.Errorf("%d values for %v", len(v), t)
	}
	switch t.DType() {
	case tensor.F32:
		s := make([]float32, len(v))
		for i, x := range v {
			s[i] = float32(x)
		}
		return b.CopyFromHost(t, backend.Float32Bytes(s))
	case tensor.F64:
		return b.CopyFromHost(t, float64Bytes(v))
	}
	return fmt.Errorf("cannot write host values into %v", t)
}
