package cpu

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

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// adamW8bitGolden is optim/testdata/adamw8bit_golden.json, written by
// scripts/golden/adamw8bit_golden.py.
type adamW8bitGolden struct {
	Block        int    `json:"block"`
	QmapSigned   string `json:"qmap_signed"`
	QmapUnsigned string `json:"qmap_unsigned"`
	Cases        []struct {
		Name              string
		N                 int
		Beta1, Beta2, Eps float64
		WeightDecay       float64 `json:"weight_decay"`
		LR                []float64
		GradScale         []float64 `json:"grad_scale"`
		P0                string
		Grads             []string
		Steps             []struct {
			Step    int
			P, M, V string
			AbsmaxM string `json:"absmax_m"`
			AbsmaxV string `json:"absmax_v"`
		}
	}
}

func readAdamW8bitGolden(t *testing.T) *adamW8bitGolden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "optim", "testdata", "adamw8bit_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g adamW8bitGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if g.Block != adamW8bitBlock || len(g.Cases) == 0 {
		t.Fatalf("golden: block %d, %d cases", g.Block, len(g.Cases))
	}
	return &g
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexF32(t *testing.T, s string) []float32 {
	t.Helper()
	b := hexBytes(t, s)
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

// adamW8bitState is one tensor's 8-bit AdamW state on a CPU back end.
type adamW8bitState struct {
	p, g, m, v, am, av, cm, cv *tensor.Tensor
}

func newAdamW8bitState(t *testing.T, b *Backend, p0 []float32, codeM, codeV []float32) *adamW8bitState {
	t.Helper()
	n := len(p0)
	nb := (n + adamW8bitBlock - 1) / adamW8bitBlock
	s := &adamW8bitState{}
	var err error
	must := func(x *tensor.Tensor, e error) *tensor.Tensor {
		if e != nil {
			err = e
		}
		return x
	}
	s.p = must(backend.FromFloat32(b, p0, n))
	s.g = must(b.Alloc(tensor.F32, n))
	s.m = must(b.Alloc(tensor.U8, n))
	s.v = must(b.Alloc(tensor.U8, n))
	s.am = must(b.Alloc(tensor.F32, nb))
	s.av = must(b.Alloc(tensor.F32, nb))
	s.cm = must(backend.FromFloat32(b, codeM, 256))
	s.cv = must(backend.FromFloat32(b, codeV, 256))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *adamW8bitState) step(b *Backend, g []float32, a *backend.AdamWArgs) error {
	gs, _ := Float32s(s.g)
	copy(gs, g)
	return b.AdamW8bit(s.p, s.g, s.m, s.v, s.am, s.av, s.cm, s.cv, a)
}

// TestAdamW8bitGolden runs the golden cases (bitsandbytes' blockwise update
// re-stated in numpy) and wants identical codes and absmax after every step
// and parameters within 1e-6 (in fact equal: both round every float32
// operation once).
func TestAdamW8bitGolden(t *testing.T) {
	gold := readAdamW8bitGolden(t)
	codeM, codeV := hexF32(t, gold.QmapSigned), hexF32(t, gold.QmapUnsigned)
	for _, threads := range []int{1, 3} {
		b, err := New(Options{Threads: threads, BLAS: BLASGo})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range gold.Cases {
			s := newAdamW8bitState(t, b, hexF32(t, c.P0), codeM, codeV)
			maxDiff := 0.0
			for k, want := range c.Steps {
				a := &backend.AdamWArgs{LR: c.LR[k], Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps,
					WeightDecay: c.WeightDecay, Step: want.Step, GradScale: c.GradScale[k]}
				if err := s.step(b, hexF32(t, c.Grads[k]), a); err != nil {
					t.Fatal(err)
				}
				ms, _ := Bytes(s.m)
				vs, _ := Bytes(s.v)
				for _, x := range []struct {
					name      string
					got, want []byte
				}{{"m codes", ms, hexBytes(t, want.M)}, {"v codes", vs, hexBytes(t, want.V)}} {
					if i := firstDiff(x.got, x.want); i >= 0 {
						t.Fatalf("%s step %d: %s differ first at %d: %d, want %d", c.Name, want.Step, x.name, i, x.got[i], x.want[i])
					}
				}
				for _, x := range []struct {
					name      string
					got       *tensor.Tensor
					want      string
					tolerance float64
				}{{"absmax m", s.am, want.AbsmaxM, 0}, {"absmax v", s.av, want.AbsmaxV, 0}, {"p", s.p, want.P, 1e-6}} {
					got, _ := Float32s(x.got)
					w := hexF32(t, x.want)
					if len(got) != len(w) {
						t.Fatalf("%s: %s has %d elements, golden %d", c.Name, x.name, len(got), len(w))
					}
					for i := range got {
						d := math.Abs(float64(got[i]) - float64(w[i]))
						if x.name == "p" {
							maxDiff = max(maxDiff, d)
						}
						if d > x.tolerance || math.IsNaN(d) {
							t.Fatalf("%s step %d: %s[%d] = %v, golden %v", c.Name, want.Step, x.name, i, got[i], w[i])
						}
					}
				}
			}
			if threads == 1 {
				t.Logf("%s: %d elements, %d steps: codes and absmax identical, max |p - golden| = %g", c.Name, c.N, len(c.Steps), maxDiff)
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestAdamW8bitThreads: the result does not depend on the thread count.
func TestAdamW8bitThreads(t *testing.T) {
	gold := readAdamW8bitGolden(t)
	codeM, codeV := hexF32(t, gold.QmapSigned), hexF32(t, gold.QmapUnsigned)
	const n = 100_000
	rng := rand.New(rand.NewPCG(5, 5))
	p0 := make([]float32, n)
	grads := make([][]float32, 4)
	for i := range p0 {
		p0[i] = float32(rng.NormFloat64())
	}
	for k := range grads {
		grads[k] = make([]float32, n)
		for i := range grads[k] {
			grads[k][i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
		}
	}
	var results [][]byte
	for _, threads := range []int{1, 2, 7} {
		b, err := New(Options{Threads: threads, BLAS: BLASGo})
		if err != nil {
			t.Fatal(err)
		}
		s := newAdamW8bitState(t, b, p0, codeM, codeV)
		for k, g := range grads {
			a := &backend.AdamWArgs{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: k + 1, GradScale: 0.7}
			if err := s.step(b, g, a); err != nil {
				t.Fatal(err)
			}
		}
		var all []byte
		for _, x := range []*tensor.Tensor{s.p, s.m, s.v, s.am, s.av} {
			raw, _ := Bytes(x)
			all = append(all, raw...)
		}
		results = append(results, all)
	}
	for i := 1; i < len(results); i++ {
		if !slices.Equal(results[0], results[i]) {
			t.Fatalf("thread counts disagree")
		}
	}
}

// TestQuantize2DNearest: bitsandbytes' binary search returns a nearest code
// for any x in the codes' range, on both maps (up to the float32 rounding of
// the midpoint it compares with).
func TestQuantize2DNearest(t *testing.T) {
	gold := readAdamW8bitGolden(t)
	rng := rand.New(rand.NewPCG(6, 6))
	for _, c := range []struct {
		code  []float32
		lower float32
	}{{hexF32(t, gold.QmapSigned), -1}, {hexF32(t, gold.QmapUnsigned), 0}} {
		code := (*[256]float32)(c.code)
		keys := newCodeKeys(c.code)
		for k := range 200_000 {
			var x float32
			switch k % 3 {
			case 0: // uniform over the range
				x = c.lower + float32(rng.Float64())*(1-c.lower)
			case 1: // log-uniform near zero
				x = float32(math.Exp(-15 * rng.Float64()))
				if c.lower < 0 && rng.IntN(2) == 0 {
					x = -x
				}
			default: // a code or a midpoint exactly
				i := rng.IntN(255)
				x = code[i]
				if rng.IntN(2) == 0 {
					x = (code[i] + code[i+1]) * 0.5
				}
			}
			q := quantize2D(keys, x)
			if l := quantize2DLiteral(code, x, c.lower); q != l {
				t.Fatalf("x = %v: code %d, bitsandbytes' literal search %d", x, q, l)
			}
			best := math.Inf(1)
			for _, v := range code {
				best = min(best, math.Abs(float64(v)-float64(x)))
			}
			// The midpoint is compared in float32, so an x within an ulp of
			// the exact midpoint may take the farther code by that ulp.
			ulp := float64(math.Nextafter32(abs32(x), 2) - abs32(x))
			if d := math.Abs(float64(code[q]) - float64(x)); d > best+ulp {
				t.Fatalf("x = %v: code %d (%v) at %g, nearest at %g", x, q, code[q], d, best)
			}
		}
		negZero := float32(math.Copysign(0, -1))
		for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 2, -2, c.lower, 1, 0, negZero,
			code[0], code[255], math.Nextafter32(code[0], -2), math.Nextafter32(code[254], 2)} {
			if q, l := quantize2D(keys, x), quantize2DLiteral(code, x, c.lower); q != l {
				t.Errorf("x = %v: code %d, literal search %d", x, q, l)
			}
		}
		if q := quantize2D(keys, 1); q != 255 {
			t.Errorf("1 -> code %d", q)
		}
		if q := quantize2D(keys, 0); code[q] != 0 {
			t.Errorf("0 -> code %d (%v)", q, code[q])
		}
	}
}

// TestAdamW8bitEdges: a block of zero gradients keeps absmax 0 and
// dequantises to zero; NaN and Inf gradients leave p alone and zero the
// moments; weight decay applies after the step.
func TestAdamW8bitEdges(t *testing.T) {
	gold := readAdamW8bitGolden(t)
	b, _ := New(Options{Threads: 2, BLAS: BLASGo})
	p0 := []float32{1, 2, 3, 4}
	s := newAdamW8bitState(t, b, p0, hexF32(t, gold.QmapSigned), hexF32(t, gold.QmapUnsigned))
	a := &backend.AdamWArgs{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5, Step: 1}
	if err := s.step(b, []float32{0, 0, 0, 0}, a); err != nil {
		t.Fatal(err)
	}
	p, _ := Float32s(s.p)
	am, _ := Float32s(s.am)
	av, _ := Float32s(s.av)
	// Zero gradients: the Adam step is 0, decay 1 - 0.05 applies.
	for i := range p {
		if want := p0[i] * float32(1-0.05); p[i] != want {
			t.Errorf("p[%d] = %v, want %v", i, p[i], want)
		}
	}
	if am[0] != 0 || av[0] != 0 {
		t.Errorf("absmax %v %v after zero gradients", am[0], av[0])
	}
	copy(p, p0)
	a.Step, a.WeightDecay = 2, 0
	nan := float32(math.NaN())
	if err := s.step(b, []float32{nan, float32(math.Inf(1)), 1, -2}, a); err != nil {
		t.Fatal(err)
	}
	ms, _ := Bytes(s.m)
	vs, _ := Bytes(s.v)
	cm, _ := Float32s(s.cm)
	cv, _ := Float32s(s.cv)
	if p[0] != 1 || p[1] != 2 {
		t.Errorf("NaN/Inf gradients moved p: %v", p[:2])
	}
	if p[2] >= 3 || p[3] <= 4 {
		t.Errorf("finite gradients did not move p the right way: %v", p[2:])
	}
	for i := range 2 {
		if m, v := cm[ms[i]]*am[0], cv[vs[i]]*av[0]; m != 0 || v != 0 {
			t.Errorf("element %d: m %v, v %v after a NaN/Inf gradient", i, m, v)
		}
	}
	// m of the -2 gradient is the block maximum in magnitude, v too.
	if m := cm[ms[3]] * am[0]; math.Abs(float64(m)+0.2*0.993) > 1e-3 {
		t.Errorf("m[3] = %v", m)
	}
	if v := cv[vs[3]] * av[0]; v != av[0] {
		t.Errorf("v[3] = %v, absmax %v", v, av[0])
	}
}

func TestAdamW8bitErrors(t *testing.T) {
	gold := readAdamW8bitGolden(t)
	b, _ := New(Options{BLAS: BLASGo})
	const n = 300
	ok := func() *adamW8bitState {
		return newAdamW8bitState(t, b, make([]float32, n), hexF32(t, gold.QmapSigned), hexF32(t, gold.QmapUnsigned))
	}
	a := &backend.AdamWArgs{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}
	f32n, _ := b.Alloc(tensor.F32, n)
	u8n, _ := b.Alloc(tensor.U8, n)
	u8short, _ := b.Alloc(tensor.U8, n-1)
	abs1, _ := b.Alloc(tensor.F32, 1)
	code255, _ := b.Alloc(tensor.F32, 255)
	unsorted, _ := backend.FromFloat32(b, append([]float32{1}, make([]float32, 255)...), 256)
	f64n, _ := b.Alloc(tensor.F64, n)
	nanCode, _ := backend.FromFloat32(b, append([]float32{float32(math.NaN())}, make([]float32, 255)...), 256)
	for _, c := range []struct {
		want string
		edit func(s *adamW8bitState)
	}{
		{"p: ", func(s *adamW8bitState) { s.p = f64n }},
		{"g: ", func(s *adamW8bitState) { s.g = u8n }},
		{"m: ", func(s *adamW8bitState) { s.m = f32n }},
		{"v has 299", func(s *adamW8bitState) { s.v = u8short }},
		{"mAbsmax has 1", func(s *adamW8bitState) { s.am = abs1 }},
		{"vAbsmax: missing", func(s *adamW8bitState) { s.av = nil }},
		{"codeV has 255", func(s *adamW8bitState) { s.cv = code255 }},
		{"codeM is not sorted", func(s *adamW8bitState) { s.cm = unsorted }},
		{"codeV[0] is NaN", func(s *adamW8bitState) { s.cv = nanCode }},
		{"step 0", func(*adamW8bitState) { a.Step = 0 }},
	} {
		s := ok()
		c.edit(s)
		err := b.AdamW8bit(s.p, s.g, s.m, s.v, s.am, s.av, s.cm, s.cv, a)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "AdamW8bit") {
			t.Errorf("want an error with %q, got %v", c.want, err)
		}
	}
}

// quantize2DLiteral is bitsandbytes' quantize_2D as written (the bounds
// carried down the search), to check quantize2D against.
func quantize2DLiteral(code *[256]float32, x, lower float32) uint8 {
	pivot, lowerPivot, upperPivot := 127, 0, 255
	upper := float32(1)
	val := code[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lowerPivot, lower = pivot, val
			pivot += i
		} else {
			upperPivot, upper = pivot, val
			pivot -= i
		}
		val = code[pivot]
	}
	if x > val {
		if x > (upper+val)*0.5 {
			return uint8(upperPivot)
		}
		return uint8(pivot)
	}
	if x < (lower+val)*0.5 {
		return uint8(lowerPivot)
	}
	return uint8(pivot)
}

// BenchmarkAdamW8bit times a step over 1M elements with random gradients,
// against the float32 AdamW kernel on the same.
func BenchmarkAdamW8bit(bm *testing.B) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "optim", "testdata", "adamw8bit_golden.json"))
	if err != nil {
		bm.Fatal(err)
	}
	var gold adamW8bitGolden
	if err := json.Unmarshal(raw, &gold); err != nil {
		bm.Fatal(err)
	}
	dec := func(s string) []float32 {
		b, _ := hex.DecodeString(s)
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
		}
		return out
	}
	b, _ := New(Options{BLAS: BLASGo})
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	gs := make([]float32, n)
	for i := range gs {
		gs[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	p, _ := b.Alloc(tensor.F32, n)
	g, _ := backend.FromFloat32(b, gs, n)
	a := &backend.AdamWArgs{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}
	bm.Run("8bit", func(bm *testing.B) {
		m, _ := b.Alloc(tensor.U8, n)
		v, _ := b.Alloc(tensor.U8, n)
		am, _ := b.Alloc(tensor.F32, n/256)
		av, _ := b.Alloc(tensor.F32, n/256)
		cm, _ := backend.FromFloat32(b, dec(gold.QmapSigned), 256)
		cv, _ := backend.FromFloat32(b, dec(gold.QmapUnsigned), 256)
		bm.SetBytes(n * (4 + 4 + 4 + 2 + 2))
		for bm.Loop() {
			if err := b.AdamW8bit(p, g, m, v, am, av, cm, cv, a); err != nil {
				bm.Fatal(err)
			}
			a.Step++
		}
	})
	bm.Run("f32", func(bm *testing.B) {
		m, _ := b.Alloc(tensor.F32, n)
		v, _ := b.Alloc(tensor.F32, n)
		bm.SetBytes(n * (4 + 4 + 4 + 16))
		for bm.Loop() {
			if err := b.AdamW(p, g, m, v, a); err != nil {
				bm.Fatal(err)
			}
			a.Step++
		}
	})
}
