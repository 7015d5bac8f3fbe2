package optim

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/tensor"
)

func newCPU(t testing.TB) backend.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSet makes a set of three tensors in two groups with random values
// and sets gradients from grads (host, flat in buffer order).
func testSet(t *testing.T, b backend.Backend, dt tensor.DType) *ParamSet {
	t.Helper()
	s, err := NewParamSet(b, dt, []Spec{
		{Name: "w1", Shape: []int{3, 4}, Group: "decay"},
		{Name: "norm", Shape: []int{5}, Group: "no_decay"},
		{Name: "w2", Shape: []int{2, 3}, Group: "decay"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, s.Len())
	for i := range vals {
		vals[i] = rng.NormFloat64()
	}
	v, _ := autograd.FromHost(b, dt, vals, s.Len())
	if err := b.Copy(s.Values, v); err != nil {
		t.Fatal(err)
	}
	return s
}

func setGrads(t *testing.T, b backend.Backend, s *ParamSet, g []float64) {
	t.Helper()
	gt, _ := autograd.FromHost(b, s.Grads.DType(), g, len(g))
	if err := b.Copy(s.Grads, gt); err != nil {
		t.Fatal(err)
	}
}

func TestParamSetLayout(t *testing.T) {
	b := newCPU(t)
	s := testSet(t, b, tensor.F32)
	// Groups are laid out together, in order of first appearance.
	var names []string
	for _, p := range s.Params {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"w1", "w2", "norm"}) {
		t.Errorf("layout %v", names)
	}
	if p := s.Get("norm"); p.Offset != 18 || p.Len != 5 || !slices.Equal(p.Var.Shape(), []int{5}) {
		t.Errorf("norm at %d+%d shape %v", p.Offset, p.Len, p.Var.Shape())
	}
	if r := s.ranges(); len(r) != 2 || r[0] != (span{"decay", 0, 18}) || r[1] != (span{"no_decay", 18, 23}) {
		t.Errorf("ranges %v", r)
	}
	if _, err := NewParamSet(b, tensor.F32, []Spec{{Name: "a", Shape: []int{1}}, {Name: "a", Shape: []int{2}}}); err == nil {
		t.Error("duplicate names accepted")
	}
}

// refAdamW is torch.optim.AdamW's update, written out in float64.
func refAdamW(p, g, m, v []float64, lr, b1, b2, eps, wd float64, step int) {
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range p {
		p[i] *= 1 - lr*wd
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + eps)
	}
}

// TestAdamW runs several steps with per-group weight decay and an LR scale,
// in F64 and F32, against the float64 reference.
func TestAdamW(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
		b := newCPU(t)
		s := testSet(t, b, dt)
		o, err := NewAdamW(s, 0.9, 0.999, 1e-8, 0.1, map[string]Group{"no_decay": {LRScale: 4}})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := autograd.ToHost(b, s.Values)
		m := make([]float64, len(p))
		v := make([]float64, len(p))
		rng := rand.New(rand.NewPCG(2, 2))
		for step := 1; step <= 5; step++ {
			g := make([]float64, len(p))
			for i := range g {
				g[i] = rng.NormFloat64()
			}
			setGrads(t, b, s, g)
			lr := 0.01 * float64(step)
			if err := o.Step(lr, 0.5); err != nil {
				t.Fatal(err)
			}
			for i := range g {
				g[i] *= 0.5
			}
			refAdamW(p[:18], g[:18], m[:18], v[:18], lr, 0.9, 0.999, 1e-8, 0.1, step)
			refAdamW(p[18:], g[18:], m[18:], v[18:], 4*lr, 0.9, 0.999, 1e-8, 0, step)
		}
		got, _ := autograd.ToHost(b, s.Values)
		tol := 1e-12
		if dt == tensor.F32 {
			tol = 1e-5
		}
		for i := range got {
			if math.Abs(got[i]-p[i]) > tol*max(1, math.Abs(p[i])) {
				t.Fatalf("%v: param %d = %.9g, reference %.9g", dt, i, got[i], p[i])
			}
		}
	}
}

// TestSGD checks momentum, dampening, Nesterov and weight decay against
// torch's update rule in float64.
func TestSGD(t *testing.T) {
	for _, c := range []struct {
		mom, damp, wd float64
		nesterov      bool
	}{{0, 0, 0, false}, {0.9, 0, 0.01, false}, {0.9, 0.1, 0, false}, {0.8, 0, 0.05, true}} {
		b := newCPU(t)
		s := testSet(t, b, tensor.F64)
		o, err := NewSGD(s, c.mom, c.damp, c.nesterov, c.wd, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := autograd.ToHost(b, s.Values)
		buf := make([]float64, len(p))
		rng := rand.New(rand.NewPCG(3, 3))
		for step := 1; step <= 4; step++ {
			g := make([]float64, len(p))
			for i := range g {
				g[i] = rng.NormFloat64()
			}
			setGrads(t, b, s, g)
			if err := o.Step(0.1, 0); err != nil {
				t.Fatal(err)
			}
			for i := range p {
				d := g[i] + c.wd*p[i]
				if c.mom != 0 {
					if step == 1 {
						buf[i] = d
					} else {
						buf[i] = c.mom*buf[i] + (1-c.damp)*d
					}
					if c.nesterov {
						d += c.mom * buf[i]
					} else {
						d = buf[i]
					}
				}
				p[i] -= 0.1 * d
			}
		}
		got, _ := autograd.ToHost(b, s.Values)
		for i := range got {
			if math.Abs(got[i]-p[i]) > 1e-12 {
				t.Fatalf("%+v: param %d = %v, reference %v", c, i, got[i], p[i])
			}
		}
	}
	if _, err := NewSGD(testSet(t, newCPU(t), tensor.F32), 0, 0, true, 0, nil); err == nil {
		t.Error("Nesterov without momentum accepted")
	}
}

func TestClipGradNorm(t *testing.T) {
	b := newCPU(t)
	s := testSet(t, b, tensor.F32)
	g := make([]float64, s.Len())
	want := 0.0
	for i := range g {
		g[i] = float64(i%7) - 3
		want += g[i] * g[i]
	}
	want = math.Sqrt(want)
	setGrads(t, b, s, g)
	norm, scale, err := ClipGradNorm(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(norm-want) > 1e-5*want || math.Abs(scale-1/(want+1e-6)) > 1e-9 {
		t.Errorf("norm %v scale %v, want %v and %v", norm, scale, want, 1/(want+1e-6))
	}
	if _, scale, _ := ClipGradNorm(s, 1e6); scale != 1 {
		t.Errorf("a norm under the limit was scaled by %v", scale)
	}
}

// TestSchedules checks values against transformers' formulas at chosen
// steps.
func TestSchedules(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		step int
		want float64
	}{
		{Schedule{Kind: "constant", LR: 1, Warmup: 4}, 0, 0},
		{Schedule{Kind: "constant", LR: 1, Warmup: 4}, 2, 0.5},
		{Schedule{Kind: "constant", LR: 1, Warmup: 4}, 100, 1},
		{Schedule{Kind: "linear", LR: 2, Warmup: 10, Total: 110}, 5, 1},
		{Schedule{Kind: "linear", LR: 2, Warmup: 10, Total: 110}, 60, 1},
		{Schedule{Kind: "linear", LR: 2, Warmup: 10, Total: 110}, 110, 0},
		{Schedule{Kind: "linear", LR: 2, Warmup: 10, Total: 110}, 200, 0},
		{Schedule{Kind: "cosine", LR: 1, Warmup: 0, Total: 100}, 50, 0.5},
		{Schedule{Kind: "cosine", LR: 1, Warmup: 0, Total: 100}, 100, 0},
		{Schedule{Kind: "cosine", LR: 1, Total: 100, MinLR: 0.1}, 50, 0.55},
		{Schedule{Kind: "cosine", LR: 1, Total: 100, MinLR: 0.1}, 100, 0.1},
		{Schedule{Kind: "cosine", LR: 1, Warmup: 20, Total: 120}, 45, 0.5 * (1 + math.Cos(math.Pi*0.25))},
	} {
		if err := c.s.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.s.At(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v at %d: %v, want %v", c.s, c.step, got, c.want)
		}
	}
	for _, bad := range []Schedule{{Kind: "cyclic", LR: 1}, {Kind: "linear", LR: 1}, {Kind: "constant", LR: -1}, {Kind: "cosine", LR: 1, Total: 5, MinLR: 2}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestStateResume: saving after k steps and restoring into a fresh
// optimiser gives bit-identical parameters after n steps.
func TestStateResume(t *testing.T) {
	b := newCPU(t)
	path := checkResume(t, b, func() Optimizer {
		o, _ := NewAdamW(testSet(t, b, tensor.F32), 0.9, 0.95, 1e-8, 0.01, nil)
		return o
	})
	sgd, _ := NewSGD(testSet(t, b, tensor.F32), 0.9, 0, false, 0, nil)
	if err := LoadState(path, sgd); err == nil {
		t.Error("AdamW state loaded into SGD")
	}
}

// checkResume runs six steps of the optimiser newOpt makes, saving its
// state (and, as a checkpoint does separately, the parameters) after three;
// then restores both into a fresh optimiser, runs the last three steps, and
// checks that the parameters are bit-identical to the uninterrupted run's.
// It returns the path of the saved state.
func checkResume(t *testing.T, b backend.Backend, newOpt func() Optimizer) string {
	t.Helper()
	var savedParams []float64
	path := filepath.Join(t.TempDir(), "optimizer.safetensors")
	run := func(stopAt int, resume bool) []float64 {
		o := newOpt()
		s := o.Params()
		start := 0
		if resume {
			if err := LoadState(path, o); err != nil {
				t.Fatal(err)
			}
			start = o.Steps()
			pv, _ := autograd.FromHost(b, s.Values.DType(), savedParams, s.Len())
			b.Copy(s.Values, pv)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		for step := 0; step < 6; step++ {
			g := make([]float64, s.Len())
			for i := range g {
				g[i] = rng.NormFloat64()
			}
			if step < start {
				continue
			}
			setGrads(t, b, s, g)
			if err := o.Step(0.01, 0); err != nil {
				t.Fatal(err)
			}
			if step+1 == stopAt {
				if err := SaveState(path, o); err != nil {
					t.Fatal(err)
				}
				savedParams, _ = autograd.ToHost(b, s.Values)
			}
		}
		out, _ := autograd.ToHost(b, s.Values)
		return out
	}
	full := run(3, false)
	if resumed := run(-1, true); !slices.Equal(full, resumed) {
		t.Errorf("resumed run differs from the uninterrupted one")
	}
	return path
}
