package optim

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/quant"
	"github.com/whet-ai/whet/tensor"
)

// TestAdamW8bitCodes: the codes (quant.DynamicMap) are bit for bit those of
// the golden script, which checks them against bitsandbytes'
// create_dynamic_map run by torch.
func TestAdamW8bitCodes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "adamw8bit_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gold struct {
		Signed   string `json:"qmap_signed"`
		Unsigned string `json:"qmap_unsigned"`
	}
	if err := json.Unmarshal(raw, &gold); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		signed bool
		want   string
	}{{true, gold.Signed}, {false, gold.Unsigned}} {
		code := quant.DynamicMap(c.signed)
		w, err := hex.DecodeString(c.want)
		if err != nil || len(w) != 4*256 || len(code) != 256 {
			t.Fatalf("signed %v: %d codes, golden %d bytes (%v)", c.signed, len(code), len(w), err)
		}
		for i, v := range code {
			bits := uint32(w[4*i]) | uint32(w[4*i+1])<<8 | uint32(w[4*i+2])<<16 | uint32(w[4*i+3])<<24
			if math.Float32bits(v) != bits {
				t.Fatalf("signed %v: code %d = %v, golden %v", c.signed, i, v, math.Float32frombits(bits))
			}
		}
		if !slices.IsSorted(code) || code[255] != 1 {
			t.Errorf("signed %v: not ascending to 1", c.signed)
		}
	}
	if s := quant.DynamicMap(true); s[127] != 0 || s[0] != -s[254] || s[128] != -s[126] {
		t.Errorf("signed map: code 127 = %v, code 0 = %v, code 254 = %v", s[127], s[0], s[254])
	}
	if u := quant.DynamicMap(false); u[0] != 0 || u[1] <= 0 {
		t.Errorf("unsigned map starts %v", u[:2])
	}
}

// TestAdamW8bitSmallTensors: tensors under MinSize8bit keep float32 moments
// and step exactly as AdamW, groups and LR scales included.
func TestAdamW8bitSmallTensors(t *testing.T) {
	b := newCPU(t)
	groups := map[string]Group{"no_decay": {LRScale: 4}}
	s32, s8 := testSet(t, b, tensor.F32), testSet(t, b, tensor.F32)
	o32, err := NewAdamW(s32, 0.9, 0.999, 1e-8, 0.1, groups)
	if err != nil {
		t.Fatal(err)
	}
	o8, err := NewAdamW8bit(s8, 0.9, 0.999, 1e-8, 0.1, groups)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for step := 1; step <= 5; step++ {
		g := make([]float64, s32.Len())
		for i := range g {
			g[i] = rng.NormFloat64()
		}
		setGrads(t, b, s32, g)
		setGrads(t, b, s8, g)
		if err := o32.Step(0.01*float64(step), 0.5); err != nil {
			t.Fatal(err)
		}
		if err := o8.Step(0.01*float64(step), 0.5); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := autograd.ToHost(b, s32.Values)
	got, _ := autograd.ToHost(b, s8.Values)
	if !slices.Equal(got, want) {
		t.Errorf("AdamW8bit on small tensors differs from AdamW:\n%v\n%v", got, want)
	}
	st, _ := o8.State()
	if st["state1"].Len() != 0 || st["exp_avg"].Len() != s8.Len() {
		t.Errorf("state1 %v, exp_avg %v", st["state1"], st["exp_avg"])
	}
	// Empty 8-bit buffers save and load too.
	path := filepath.Join(t.TempDir(), "optimizer.safetensors")
	if err := SaveState(path, o8); err != nil {
		t.Fatal(err)
	}
	fresh, _ := NewAdamW8bit(testSet(t, b, tensor.F32), 0.9, 0.999, 1e-8, 0.1, groups)
	if err := LoadState(path, fresh); err != nil || fresh.Steps() != 5 {
		t.Fatalf("load: %v, step %d", err, fresh.Steps())
	}
	got2, _ := fresh.State()
	for name, buf := range st {
		if buf.DType() == tensor.U8 {
			continue // empty
		}
		a, _ := autograd.ToHost(b, buf)
		c, _ := autograd.ToHost(b, got2[name])
		if !slices.Equal(a, c) {
			t.Errorf("%s differs after a save and load", name)
		}
	}
}

// mixedSpecs has large and small tensors in three groups. Runs: a+b (a is
// a whole number of blocks), c, bias+ln (small), d, lora_B.
func mixedSpecs() []Spec {
	return []Spec{
		{Name: "a", Shape: []int{16, 256}, Group: "decay"},
		{Name: "bias", Shape: []int{10}, Group: "no_decay"},
		{Name: "b", Shape: []int{4100}, Group: "decay"},
		{Name: "ln", Shape: []int{4095}, Group: "no_decay"},
		{Name: "c", Shape: []int{50, 100}, Group: "decay"},
		{Name: "d", Shape: []int{4096}, Group: "no_decay"},
		{Name: "lora_B", Shape: []int{64, 80}, Group: "lora_b"},
	}
}

var mixedGroups = map[string]Group{"no_decay": {}, "lora_b": {LRScale: 16, WeightDecay: 0.05}}

func randomSet(t *testing.T, b backend.Backend, specs []Spec, seed uint64) *ParamSet {
	t.Helper()
	s, err := NewParamSet(b, tensor.F32, specs)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	vals := make([]float64, s.Len())
	for i := range vals {
		vals[i] = rng.NormFloat64() * 0.1
	}
	v, _ := autograd.FromHost(b, tensor.F32, vals, s.Len())
	if err := b.Copy(s.Values, v); err != nil {
		t.Fatal(err)
	}
	return s
}

func randomGrads(rng *rand.Rand, n int) []float64 {
	g := make([]float64, n)
	for i := range g {
		g[i] = rng.NormFloat64() * math.Exp(0.5*rng.NormFloat64()) * 1e-2
	}
	return g
}

// TestAdamW8bitLayout: each tensor is stepped as if alone (8-bit state with
// blocks from its start if it has 4096 elements or more, AdamW's otherwise)
// with its group's LR scale and decay, whatever runs the optimiser merges.
func TestAdamW8bitLayout(t *testing.T) {
	b := newCPU(t)
	set := randomSet(t, b, mixedSpecs(), 3)
	o, err := NewAdamW8bit(set, 0.9, 0.999, 1e-8, 0.1, mixedGroups)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range o.runs {
		kinds = append(kinds, r.names)
	}
	if want := []string{"a...", "c", "bias...", "d", "lora_B"}; !slices.Equal(kinds, want) {
		t.Errorf("runs %v, want %v", kinds, want)
	}
	st, _ := o.State()
	for name, want := range map[string]int{"state1": 4096 + 4100 + 5000 + 4096 + 5120, "state2": 22412,
		"absmax1": 16 + 17 + 20 + 16 + 20, "absmax2": 89, "qmap1": 256, "qmap2": 256, "exp_avg": 4105, "exp_avg_sq": 4105} {
		if st[name] == nil || st[name].Len() != want {
			t.Errorf("%s: %v, want %d elements", name, st[name], want)
		}
	}
	if st["state1"].DType() != tensor.U8 || st["absmax1"].DType() != tensor.F32 {
		t.Errorf("dtypes %v %v", st["state1"].DType(), st["absmax1"].DType())
	}

	// The reference: every tensor on its own buffers, one kernel call each.
	type ref struct {
		p, g, m, v, am, av *tensor.Tensor
		a                  backend.AdamWArgs
		big                bool
	}
	codeM, _ := backend.FromFloat32(b, quant.DynamicMap(true), 256)
	codeV, _ := backend.FromFloat32(b, quant.DynamicMap(false), 256)
	var refs []*ref
	for _, p := range set.Params {
		r := &ref{big: p.Len >= MinSize8bit}
		g := mixedGroups[p.Group]
		if p.Group == "decay" {
			g = Group{WeightDecay: 0.1}
		}
		r.a = backend.AdamWArgs{LR: lrScale(g), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: g.WeightDecay}
		r.p, _ = b.Alloc(tensor.F32, p.Len)
		b.Copy(r.p, p.Var.Value)
		r.g, _ = b.Alloc(tensor.F32, p.Len)
		dt := tensor.F32
		if r.big {
			dt = tensor.U8
			r.am, _ = b.Alloc(tensor.F32, numBlocks(p.Len))
			r.av, _ = b.Alloc(tensor.F32, numBlocks(p.Len))
		}
		r.m, _ = b.Alloc(dt, p.Len)
		r.v, _ = b.Alloc(dt, p.Len)
		refs = append(refs, r)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for step := 1; step <= 4; step++ {
		g := randomGrads(rng, set.Len())
		setGrads(t, b, set, g)
		lr, scale := 1e-3*float64(step), []float64{0, 0.5, 1, 2}[step-1]
		if err := o.Step(lr, scale); err != nil {
			t.Fatal(err)
		}
		for i, p := range set.Params {
			r := refs[i]
			gv, _ := autograd.FromHost(b, tensor.F32, g[p.Offset:p.Offset+p.Len], p.Len)
			b.Copy(r.g, gv)
			a := r.a
			a.LR *= lr
			a.Step, a.GradScale = step, scale
			if r.big {
				err = b.AdamW8bit(r.p, r.g, r.m, r.v, r.am, r.av, codeM, codeV, &a)
			} else {
				err = b.AdamW(r.p, r.g, r.m, r.v, &a)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, p := range set.Params {
		got, _ := autograd.ToHost(b, p.Var.Value)
		want, _ := autograd.ToHost(b, refs[i].p)
		if !slices.Equal(got, want) {
			t.Errorf("%s differs from its own kernel calls", p.Name)
		}
	}
}

// TestAdamW8bitResume: saving after 3 steps and restoring into a fresh
// optimiser gives bit-identical parameters after 6, as for AdamW.
func TestAdamW8bitResume(t *testing.T) {
	b := newCPU(t)
	path := checkResume(t, b, func() Optimizer {
		o, err := NewAdamW8bit(randomSet(t, b, mixedSpecs(), 7), 0.9, 0.95, 1e-8, 0.01, mixedGroups)
		if err != nil {
			t.Fatal(err)
		}
		return o
	})
	adamw, _ := NewAdamW(randomSet(t, b, mixedSpecs(), 7), 0.9, 0.95, 1e-8, 0.01, nil)
	if err := LoadState(path, adamw); err == nil || !strings.Contains(err.Error(), "AdamW8bit") {
		t.Errorf("AdamW8bit state loaded into AdamW: %v", err)
	}
	other, _ := NewAdamW8bit(randomSet(t, b, mixedSpecs()[:3], 7), 0.9, 0.95, 1e-8, 0.01, nil)
	if err := LoadState(path, other); err == nil {
		t.Error("state loaded into an optimiser over other parameters")
	}
}

// TestAdamW8bitConvergence fits a linear layer (W [32, 160]: 8-bit moments;
// bias [32]: float32) by least squares and wants 8-bit AdamW's loss within
// 1% of AdamW's along the way (from step 25, when the loss has fallen
// more than tenfold) and at the end.
func TestAdamW8bitConvergence(t *testing.T) {
	const nOut, nIn, nSamples, steps = 32, 160, 256, 200
	rng := rand.New(rand.NewPCG(11, 11))
	x := make([]float64, nSamples*nIn)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	wTrue := make([]float64, nOut*nIn)
	for i := range wTrue {
		wTrue[i] = rng.NormFloat64() / math.Sqrt(nIn)
	}
	y := make([]float64, nSamples*nOut)
	for s := range nSamples {
		for o := range nOut {
			acc := 0.5 + 0.1*rng.NormFloat64() // bias and noise
			for i := range nIn {
				acc += wTrue[o*nIn+i] * x[s*nIn+i]
			}
			y[s*nOut+o] = acc
		}
	}
	// lossGrad returns 1/(2N) sum ||W x + b - y||² and its gradient.
	lossGrad := func(params []float64) (float64, []float64) {
		w, bias := params[:nOut*nIn], params[nOut*nIn:]
		grad := make([]float64, len(params))
		gw, gb := grad[:nOut*nIn], grad[nOut*nIn:]
		loss := 0.0
		for s := range nSamples {
			xs := x[s*nIn : (s+1)*nIn]
			for o := range nOut {
				r := bias[o] - y[s*nOut+o]
				for i, xi := range xs {
					r += w[o*nIn+i] * xi
				}
				loss += r * r
				gb[o] += r / nSamples
				for i, xi := range xs {
					gw[o*nIn+i] += r * xi / nSamples
				}
			}
		}
		return loss / (2 * nSamples), grad
	}
	b := newCPU(t)
	specs := []Spec{{Name: "w", Shape: []int{nOut, nIn}}, {Name: "b", Shape: []int{nOut}, Group: "no_decay"}}
	sched := Schedule{Kind: "cosine", LR: 2e-2, Warmup: 10, Total: steps}
	if err := sched.Validate(); err != nil {
		t.Fatal(err)
	}
	train := func(eightBit bool) []float64 {
		s, err := NewParamSet(b, tensor.F32, specs)
		if err != nil {
			t.Fatal(err)
		}
		var o Optimizer
		groups := map[string]Group{"no_decay": {}}
		if eightBit {
			o, err = NewAdamW8bit(s, 0.9, 0.999, 1e-8, 0.01, groups)
		} else {
			o, err = NewAdamW(s, 0.9, 0.999, 1e-8, 0.01, groups)
		}
		if err != nil {
			t.Fatal(err)
		}
		var losses []float64
		for step := range steps {
			p, _ := autograd.ToHost(b, s.Values)
			loss, g := lossGrad(p)
			losses = append(losses, loss)
			setGrads(t, b, s, g)
			if err := o.Step(sched.At(step+1), 0); err != nil {
				t.Fatal(err)
			}
		}
		p, _ := autograd.ToHost(b, s.Values)
		loss, _ := lossGrad(p)
		return append(losses, loss)
	}
	l32, l8 := train(false), train(true)
	for _, k := range []int{0, 25, 50, 100, steps} {
		t.Logf("step %3d: AdamW loss %.6f, AdamW8bit %.6f (%+.3f%%)", k, l32[k], l8[k], 100*(l8[k]/l32[k]-1))
	}
	for _, k := range []int{25, 50, 100, steps} {
		if math.Abs(l8[k]/l32[k]-1) > 0.01 {
			t.Errorf("step %d: AdamW8bit loss %v, AdamW %v: more than 1%% apart", k, l8[k], l32[k])
		}
	}
	if l32[steps] > 0.1*l32[0] {
		t.Errorf("AdamW did not converge: %v -> %v", l32[0], l32[steps])
	}
}

// TestAdamW8bitMemory: for a 1M-parameter set the state is about a quarter
// of AdamW's.
func TestAdamW8bitMemory(t *testing.T) {
	b := newCPU(t)
	var specs []Spec
	for i := range 4 {
		specs = append(specs, Spec{Name: string(rune('a' + i)), Shape: []int{512, 512}})
	}
	stateBytes := func(o Optimizer) int {
		n := 0
		bufs, _ := o.State()
		for _, t := range bufs {
			n += t.Bytes()
		}
		return n
	}
	s, _ := NewParamSet(b, tensor.F32, specs)
	o32, _ := NewAdamW(s, 0.9, 0.999, 1e-8, 0, nil)
	o8, err := NewAdamW8bit(s, 0.9, 0.999, 1e-8, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	n32, n8 := stateBytes(o32), stateBytes(o8)
	// 2 bytes a parameter, 8 per block of 256, 2 KiB of codes.
	if want := 2*s.Len() + 8*s.Len()/256 + 2*4*256; n8 != want {
		t.Errorf("AdamW8bit state %d bytes, want %d", n8, want)
	}
	t.Logf("%d parameters: AdamW state %d bytes, AdamW8bit %d bytes (%.2fx smaller)", s.Len(), n32, n8, float64(n32)/float64(n8))
	if float64(n32)/float64(n8) < 3.9 {
		t.Errorf("AdamW8bit state is only %.2fx smaller", float64(n32)/float64(n8))
	}
}

func TestAdamW8bitRefusesF64(t *testing.T) {
	if _, err := NewAdamW8bit(testSet(t, newCPU(t), tensor.F64), 0.9, 0.999, 1e-8, 0, nil); err == nil {
		t.Error("an F64 parameter set accepted")
	}
}
