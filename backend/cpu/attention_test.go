package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// attnCase is one attention problem: sizes and mask options. Its inputs
// are float64 values (rounded to float32 first for an F32 run).
type attnCase struct {
	name                     string
	B, Tq, Tk, Hq, Hkv, D, W int
	scale                    float64
	seg                      []int32 // [B*Tk] or nil
}

// attnRef is the naive reference: scores materialised, masked, softmaxed
// and multiplied, in float64, straight from AttentionArgs' definition.
type attnRef struct {
	out, lse   []float64
	dq, dk, dv []float64
}

func (c attnCase) allowed(b, i, j int) bool {
	p := i + c.Tk - c.Tq
	if j > p {
		return false
	}
	if c.W > 0 && p-j >= c.W {
		return false
	}
	if c.seg != nil {
		sj, sp := c.seg[b*c.Tk+j], c.seg[b*c.Tk+p]
		if sj != sp || sj < 0 {
			return false
		}
	}
	return true
}

func (c attnCase) scaleOrDefault() float64 {
	if c.scale != 0 {
		return c.scale
	}
	return 1 / math.Sqrt(float64(c.D))
}

// refAttention computes Out, LSE and, from dout, the gradients by
// backpropagating the naive computation.
func refAttention(c attnCase, q, k, v, dout []float64) *attnRef {
	r := &attnRef{
		out: make([]float64, len(q)), lse: make([]float64, c.B*c.Hq*c.Tq),
		dq: make([]float64, len(q)), dk: make([]float64, len(k)), dv: make([]float64, len(v))}
	g := c.Hq / c.Hkv
	sc := c.scaleOrDefault()
	qi := func(b, i, h int) int { return ((b*c.Tq+i)*c.Hq + h) * c.D }
	ki := func(b, j, h int) int { return ((b*c.Tk+j)*c.Hkv + h) * c.D }
	s := make([]float64, c.Tk)
	p := make([]float64, c.Tk)
	dp := make([]float64, c.Tk)
	for b := 0; b < c.B; b++ {
		for h := 0; h < c.Hq; h++ {
			kh := h / g
			for i := 0; i < c.Tq; i++ {
				mx := math.Inf(-1)
				for j := 0; j < c.Tk; j++ {
					s[j] = math.Inf(-1)
					if !c.allowed(b, i, j) {
						continue
					}
					var dot float64
					for x := 0; x < c.D; x++ {
						dot += q[qi(b, i, h)+x] * k[ki(b, j, kh)+x]
					}
					s[j] = sc * dot
					mx = math.Max(mx, s[j])
				}
				lseIdx := (b*c.Hq+h)*c.Tq + i
				if math.IsInf(mx, -1) {
					r.lse[lseIdx] = math.Inf(-1)
					continue // output and gradients stay zero
				}
				var sum float64
				for j := range s {
					p[j] = math.Exp(s[j] - mx)
					sum += p[j]
				}
				r.lse[lseIdx] = mx + math.Log(sum)
				for j := range p {
					p[j] /= sum
					for x := 0; x < c.D; x++ {
						r.out[qi(b, i, h)+x] += p[j] * v[ki(b, j, kh)+x]
					}
				}
				if dout == nil {
					continue
				}
				// out = sum_j p_j v_j: dv_j += p_j dout, dp_j = dout . v_j.
				// p = softmax(s): ds_j = p_j (dp_j - sum_k p_k dp_k).
				// s_j = sc q . k_j: dq += sc ds_j k_j, dk_j += sc ds_j q.
				var pdp float64
				for j := range p {
					dp[j] = 0
					for x := 0; x < c.D; x++ {
						dp[j] += dout[qi(b, i, h)+x] * v[ki(b, j, kh)+x]
						r.dv[ki(b, j, kh)+x] += p[j] * dout[qi(b, i, h)+x]
					}
					pdp += p[j] * dp[j]
				}
				for j := range p {
					ds := p[j] * (dp[j] - pdp)
					for x := 0; x < c.D; x++ {
						r.dq[qi(b, i, h)+x] += sc * ds * k[ki(b, j, kh)+x]
						r.dk[ki(b, j, kh)+x] += sc * ds * q[qi(b, i, h)+x]
					}
				}
			}
		}
	}
	return r
}

// attnTensor makes a tensor of dtype dt (F32 or F64) holding x.
func attnTensor(t testing.TB, be *Backend, dt tensor.DType, x []float64, shape ...int) *tensor.Tensor {
	t.Helper()
	ts, err := be.Alloc(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	attnSet(t, ts, x)
	return ts
}

func attnSet(t testing.TB, ts *tensor.Tensor, x []float64) {
	t.Helper()
	if ts.DType() == tensor.F64 {
		s, err := Float64s(ts)
		if err != nil {
			t.Fatal(err)
		}
		copy(s, x)
		return
	}
	s, err := Float32s(ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		s[i] = float32(v)
	}
}

func attnGet(t testing.TB, ts *tensor.Tensor) []float64 {
	t.Helper()
	if ts.DType() == tensor.F64 {
		s, err := Float64s(ts)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float64(nil), s...)
	}
	s, err := Float32s(ts)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// attnFilled returns a tensor of dtype dt full of NaN: outputs must not
// depend on what they held.
func attnFilled(t testing.TB, be *Backend, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	n, _ := tensor.NumElements(shape)
	x := make([]float64, n)
	for i := range x {
		x[i] = math.NaN()
	}
	return attnTensor(t, be, dt, x, shape...)
}

func attnRand(r *rand.Rand, n int, dt tensor.DType) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = 2*r.Float64() - 1
		if dt == tensor.F32 {
			x[i] = float64(float32(x[i]))
		}
	}
	return x
}

// attnSegs builds [len(rows)*Tk] segment ids from runs: each row is a list
// of (id, length) pairs.
func attnSegs(rows ...[][2]int) []int32 {
	var s []int32
	for _, row := range rows {
		for _, run := range row {
			for range run[1] {
				s = append(s, int32(run[0]))
			}
		}
	}
	return s
}

// runAttention runs forward and backward of c on be in dtype dt, with
// outputs that start full of NaN, and returns the operands.
func runAttention(t testing.TB, be *Backend, dt tensor.DType, c attnCase, q, k, v, dout []float64) *backend.AttentionArgs {
	t.Helper()
	a := &backend.AttentionArgs{
		Q:      attnTensor(t, be, dt, q, c.B, c.Tq, c.Hq, c.D),
		K:      attnTensor(t, be, dt, k, c.B, c.Tk, c.Hkv, c.D),
		V:      attnTensor(t, be, dt, v, c.B, c.Tk, c.Hkv, c.D),
		Window: c.W, Scale: c.scale,
		Out:  attnFilled(t, be, dt, c.B, c.Tq, c.Hq, c.D),
		LSE:  attnFilled(t, be, dt, c.B, c.Hq, c.Tq),
		DOut: attnTensor(t, be, dt, dout, c.B, c.Tq, c.Hq, c.D),
		DQ:   attnFilled(t, be, dt, c.B, c.Tq, c.Hq, c.D),
		DK:   attnFilled(t, be, dt, c.B, c.Tk, c.Hkv, c.D),
		DV:   attnFilled(t, be, dt, c.B, c.Tk, c.Hkv, c.D),
	}
	if c.seg != nil {
		st, err := be.Alloc(tensor.I32, c.B, c.Tk)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := Int32s(st)
		copy(s, c.seg)
		a.Segments = st
	}
	if err := be.Attention(a); err != nil {
		t.Fatalf("Attention: %v", err)
	}
	if err := be.AttentionBackward(a); err != nil {
		t.Fatalf("AttentionBackward: %v", err)
	}
	return a
}

// relErr is max|got-want| / max|want| (or the absolute error when want is
// all zero); an infinite want must be matched exactly.
func relErr(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		if math.IsInf(want[i], 0) || math.IsInf(got[i], 0) {
			if got[i] != want[i] {
				return math.Inf(1)
			}
			continue
		}
		num = math.Max(num, math.Abs(got[i]-want[i]))
		if math.IsNaN(got[i]) {
			num = math.Inf(1)
		}
		den = math.Max(den, math.Abs(want[i]))
	}
	if den == 0 {
		return num
	}
	return num / den
}

func attnCases() []attnCase {
	return []attnCase{
		{name: "gqa2-B2", B: 2, Tq: 37, Tk: 37, Hq: 4, Hkv: 2, D: 13},
		{name: "mha-T70", B: 1, Tq: 70, Tk: 70, Hq: 3, Hkv: 3, D: 8},
		{name: "mqa-window", B: 2, Tq: 130, Tk: 130, Hq: 4, Hkv: 1, D: 5, W: 17},
		{name: "cache", B: 2, Tq: 9, Tk: 75, Hq: 2, Hkv: 1, D: 7, scale: 0.3},
		{name: "cache-window", B: 1, Tq: 70, Tk: 100, Hq: 2, Hkv: 2, D: 6, W: 30},
		{name: "decode", B: 2, Tq: 1, Tk: 50, Hq: 4, Hkv: 2, D: 9},
		{name: "segments", B: 3, Tq: 150, Tk: 150, Hq: 4, Hkv: 2, D: 11, seg: attnSegs(
			[][2]int{{0, 40}, {1, 50}, {2, 45}, {-1, 15}},
			[][2]int{{3, 20}, {5, 30}, {3, 25}, {-1, 5}, {7, 66}, {-1, 4}}, // document 3 in two runs
			[][2]int{{-1, 150}}, // a fully padded row
		)},
		{name: "segments-window-cache", B: 2, Tq: 80, Tk: 110, Hq: 6, Hkv: 2, D: 10, W: 25, seg: attnSegs(
			[][2]int{{-1, 3}, {0, 60}, {1, 47}},
			[][2]int{{4, 30}, {9, 70}, {-1, 10}},
		)},
		// Past attnKc keys: several chunks per block, one of them wholly
		// outside the document of some queries (document 0 comes back after
		// 550 keys of document 1).
		{name: "chunks-segments-window", B: 1, Tq: 700, Tk: 700, Hq: 2, Hkv: 1, D: 5, W: 400, seg: attnSegs(
			[][2]int{{0, 50}, {1, 550}, {0, 100}},
		)},
		{name: "chunks-cache", B: 1, Tq: 300, Tk: 650, Hq: 4, Hkv: 2, D: 6},
	}
}

// attnBackends returns back ends with 1, 2 and 16 threads (the last cuts
// each key-value head's query blocks into several stripes in the backward
// pass, at these sizes), using the GEMM that WHET_BLAS selects.
func attnBackends(t testing.TB) map[string]*Backend {
	t.Helper()
	opt, err := OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Backend{}
	for _, n := range []int{1, 2, 16} {
		opt.Threads = n
		be, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("threads=%d", n)] = be
	}
	return out
}

// Tolerances, relative to the largest reference value of each tensor
// (max |got - want| / max |want|). F64 is exact up to rounding (errors
// measured at most 1e-15). F32 rounds the scores, exp (2 ulp), the sums and
// the products in float32 (errors measured up to 3e-7 for Out and LSE, 6e-7
// for the gradients, which lose a little more in dP - Delta); the error grows
// with sqrt(D) and the number of keys, so the bounds leave a margin of 15x.
const (
	attnTolF64     = 1e-12
	attnTolF32     = 5e-6
	attnTolF32Grad = 1e-5
)

func TestAttentionMatchesReference(t *testing.T) {
	for bname, be := range attnBackends(t) {
		for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
			for _, c := range attnCases() {
				t.Run(fmt.Sprintf("%s/%v/%s", bname, dt, c.name), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(c.Tq), uint64(c.Tk*c.D)))
					q := attnRand(r, c.B*c.Tq*c.Hq*c.D, dt)
					k := attnRand(r, c.B*c.Tk*c.Hkv*c.D, dt)
					v := attnRand(r, c.B*c.Tk*c.Hkv*c.D, dt)
					dout := attnRand(r, c.B*c.Tq*c.Hq*c.D, dt)
					// Larger scores make the softmax peaked, which tests
					// the max subtraction.
					for i := range q {
						q[i] *= 3
					}
					ref := refAttention(c, q, k, v, dout)
					a := runAttention(t, be, dt, c, q, k, v, dout)
					tol, tolGrad := attnTolF64, attnTolF64
					if dt == tensor.F32 {
						tol, tolGrad = attnTolF32, attnTolF32Grad
					}
					for _, chk := range []struct {
						name      string
						got, want []float64
						tol       float64
					}{
						{"Out", attnGet(t, a.Out), ref.out, tol},
						{"LSE", attnGet(t, a.LSE), ref.lse, tol},
						{"DQ", attnGet(t, a.DQ), ref.dq, tolGrad},
						{"DK", attnGet(t, a.DK), ref.dk, tolGrad},
						{"DV", attnGet(t, a.DV), ref.dv, tolGrad},
					} {
						e := relErr(chk.got, chk.want)
						if !(e <= chk.tol) {
							t.Errorf("%s: relative error %.3g, want <= %.3g", chk.name, e, chk.tol)
						}
					}
					// Fully masked queries: zero output, LSE -Inf, no gradient.
					lse := attnGet(t, a.LSE)
					out, dq := attnGet(t, a.Out), attnGet(t, a.DQ)
					for b := 0; b < c.B; b++ {
						for i := 0; i < c.Tq; i++ {
							if c.seg == nil || c.seg[b*c.Tk+i+c.Tk-c.Tq] >= 0 {
								continue
							}
							for h := 0; h < c.Hq; h++ {
								if l := lse[(b*c.Hq+h)*c.Tq+i]; !math.IsInf(l, -1) {
									t.Fatalf("padding query b=%d i=%d h=%d: LSE %g, want -Inf", b, i, h, l)
								}
								off := ((b*c.Tq+i)*c.Hq + h) * c.D
								for x := off; x < off+c.D; x++ {
									if out[x] != 0 || dq[x] != 0 {
										t.Fatalf("padding query b=%d i=%d h=%d: Out %g, DQ %g, want 0", b, i, h, out[x], dq[x])
									}
								}
							}
						}
					}
				})
			}
		}
	}
}

// TestAttentionOptionalOperands runs without LSE in the forward pass, and
// backward passes that want only some of the gradients.
func TestAttentionOptionalOperands(t *testing.T) {
	c := attnCases()[6] // segments
	for bname, be := range attnBackends(t) {
		r := rand.New(rand.NewPCG(1, 2))
		q := attnRand(r, c.B*c.Tq*c.Hq*c.D, tensor.F64)
		k := attnRand(r, c.B*c.Tk*c.Hkv*c.D, tensor.F64)
		v := attnRand(r, c.B*c.Tk*c.Hkv*c.D, tensor.F64)
		dout := attnRand(r, c.B*c.Tq*c.Hq*c.D, tensor.F64)
		full := runAttention(t, be, tensor.F64, c, q, k, v, dout)
		a := *full
		a.LSE = nil
		a.Out = attnFilled(t, be, tensor.F64, c.B, c.Tq, c.Hq, c.D)
		if err := be.Attention(&a); err != nil {
			t.Fatal(err)
		}
		if e := relErr(attnGet(t, a.Out), attnGet(t, full.Out)); e != 0 {
			t.Errorf("%s: Out without LSE differs by %g", bname, e)
		}
		for _, keep := range []string{"DQ", "DK", "DV", "DKDV"} {
			a := *full
			a.DQ, a.DK, a.DV = nil, nil, nil
			if strings.Contains(keep, "Q") {
				a.DQ = attnFilled(t, be, tensor.F64, c.B, c.Tq, c.Hq, c.D)
			}
			if strings.Contains(keep, "K") {
				a.DK = attnFilled(t, be, tensor.F64, c.B, c.Tk, c.Hkv, c.D)
			}
			if strings.Contains(keep, "V") {
				a.DV = attnFilled(t, be, tensor.F64, c.B, c.Tk, c.Hkv, c.D)
			}
			if err := be.AttentionBackward(&a); err != nil {
				t.Fatal(err)
			}
			for _, p := range [][2]*tensor.Tensor{{a.DQ, full.DQ}, {a.DK, full.DK}, {a.DV, full.DV}} {
				if p[0] == nil {
					continue
				}
				if e := relErr(attnGet(t, p[0]), attnGet(t, p[1])); e > 1e-14 {
					t.Errorf("%s: only %s: gradient differs by %g", bname, keep, e)
				}
			}
		}
		// No gradient wanted at all.
		a = *full
		a.DQ, a.DK, a.DV = nil, nil, nil
		if err := be.AttentionBackward(&a); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAttentionFiniteDifferences checks the backward pass in float64
// against central differences of sum(Out * R).
func TestAttentionFiniteDifferences(t *testing.T) {
	c := attnCase{B: 2, Tq: 6, Tk: 8, Hq: 4, Hkv: 2, D: 3, W: 5, seg: attnSegs(
		[][2]int{{0, 3}, {1, 5}},
		[][2]int{{2, 6}, {-1, 2}},
	)}
	be, err := New(Options{BLAS: BLASGo, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	q := attnRand(r, c.B*c.Tq*c.Hq*c.D, tensor.F64)
	k := attnRand(r, c.B*c.Tk*c.Hkv*c.D, tensor.F64)
	v := attnRand(r, c.B*c.Tk*c.Hkv*c.D, tensor.F64)
	rr := attnRand(r, c.B*c.Tq*c.Hq*c.D, tensor.F64)
	run := runAttention(t, be, tensor.F64, c, q, k, v, rr)
	objective := func() float64 {
		a := *run
		a.Q = attnTensor(t, be, tensor.F64, q, c.B, c.Tq, c.Hq, c.D)
		a.K = attnTensor(t, be, tensor.F64, k, c.B, c.Tk, c.Hkv, c.D)
		a.V = attnTensor(t, be, tensor.F64, v, c.B, c.Tk, c.Hkv, c.D)
		a.Out = attnFilled(t, be, tensor.F64, c.B, c.Tq, c.Hq, c.D)
		a.LSE = nil
		if err := be.Attention(&a); err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, o := range attnGet(t, a.Out) {
			s += o * rr[i]
		}
		return s
	}
	const eps = 1e-5
	for _, op := range []struct {
		name string
		x    []float64
		grad *tensor.Tensor
	}{{"DQ", q, run.DQ}, {"DK", k, run.DK}, {"DV", v, run.DV}} {
		grad := attnGet(t, op.grad)
		fd := make([]float64, len(op.x))
		for i := range op.x {
			x0 := op.x[i]
			op.x[i] = x0 + eps
			fp := objective()
			op.x[i] = x0 - eps
			fm := objective()
			op.x[i] = x0
			fd[i] = (fp - fm) / (2 * eps)
		}
		if e := relErr(grad, fd); !(e < 1e-6) {
			t.Errorf("%s: relative error %.3g against finite differences, want < 1e-6", op.name, e)
		}
	}
}

// TestAttentionPackedEqualsSeparate checks that documents packed in one row
// with Segments attend exactly as they would alone.
func TestAttentionPackedEqualsSeparate(t *testing.T) {
	lens := []int{23, 70, 41}
	const pad = 6
	c := attnCase{B: 1, Hq: 4, Hkv: 2, D: 9}
	var runs [][2]int
	for i, n := range lens {
		runs = append(runs, [2]int{i, n})
		c.Tq += n
	}
	runs = append(runs, [2]int{-1, pad})
	c.Tq += pad
	c.Tk = c.Tq
	c.seg = attnSegs(runs)
	for bname, be := range attnBackends(t) {
		r := rand.New(rand.NewPCG(3, 4))
		n := c.Tq * c.Hq * c.D
		nk := c.Tk * c.Hkv * c.D
		q, k, v, dout := attnRand(r, n, tensor.F64), attnRand(r, nk, tensor.F64), attnRand(r, nk, tensor.F64), attnRand(r, n, tensor.F64)
		packed := runAttention(t, be, tensor.F64, c, q, k, v, dout)
		pOut, pDQ, pDK, pDV := attnGet(t, packed.Out), attnGet(t, packed.DQ), attnGet(t, packed.DK), attnGet(t, packed.DV)
		start := 0
		for di, l := range lens {
			dc := attnCase{B: 1, Tq: l, Tk: l, Hq: c.Hq, Hkv: c.Hkv, D: c.D}
			qs, qe := start*c.Hq*c.D, (start+l)*c.Hq*c.D
			ks, ke := start*c.Hkv*c.D, (start+l)*c.Hkv*c.D
			alone := runAttention(t, be, tensor.F64, dc, q[qs:qe], k[ks:ke], v[ks:ke], dout[qs:qe])
			for _, chk := range []struct {
				name      string
				got, want []float64
			}{
				{"Out", pOut[qs:qe], attnGet(t, alone.Out)},
				{"DQ", pDQ[qs:qe], attnGet(t, alone.DQ)},
				{"DK", pDK[ks:ke], attnGet(t, alone.DK)},
				{"DV", pDV[ks:ke], attnGet(t, alone.DV)},
			} {
				if e := relErr(chk.got, chk.want); !(e <= 1e-12) {
					t.Errorf("%s: document %d: packed %s differs from alone by %.3g", bname, di, chk.name, e)
				}
			}
			start += l
		}
		// Padding: no output, no gradient.
		for _, x := range [][]float64{pOut[start*c.Hq*c.D:], pDQ[start*c.Hq*c.D:], pDK[start*c.Hkv*c.D:], pDV[start*c.Hkv*c.D:]} {
			for _, v := range x {
				if v != 0 {
					t.Fatalf("%s: padding has %g, want 0", bname, v)
				}
			}
		}
	}
}

func TestAttentionErrors(t *testing.T) {
	be, err := New(Options{BLAS: BLASGo, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	alloc := func(dt tensor.DType, shape ...int) *tensor.Tensor {
		x, err := be.Alloc(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	const B, Tq, Tk, Hq, Hkv, D = 2, 5, 7, 4, 2, 3
	f := tensor.F32
	valid := func() *backend.AttentionArgs {
		return &backend.AttentionArgs{
			Q: alloc(f, B, Tq, Hq, D), K: alloc(f, B, Tk, Hkv, D), V: alloc(f, B, Tk, Hkv, D),
			Segments: alloc(tensor.I32, B, Tk),
			Out:      alloc(f, B, Tq, Hq, D), LSE: alloc(f, B, Hq, Tq),
			DOut: alloc(f, B, Tq, Hq, D), DQ: alloc(f, B, Tq, Hq, D), DK: alloc(f, B, Tk, Hkv, D), DV: alloc(f, B, Tk, Hkv, D),
		}
	}
	if err := be.Attention(valid()); err != nil {
		t.Fatalf("valid forward: %v", err)
	}
	if err := be.AttentionBackward(valid()); err != nil {
		t.Fatalf("valid backward: %v", err)
	}
	for _, tc := range []struct {
		name     string
		backward bool
		edit     func(a *backend.AttentionArgs)
		want     string // in the error
	}{
		{"nil Q", false, func(a *backend.AttentionArgs) { a.Q = nil }, "Q"},
		{"nil K", false, func(a *backend.AttentionArgs) { a.K = nil }, "K"},
		{"nil Out", false, func(a *backend.AttentionArgs) { a.Out = nil }, "Out"},
		{"K head dim", false, func(a *backend.AttentionArgs) { a.K = alloc(f, B, Tk, Hkv, D+1) }, "K"},
		{"K batch", false, func(a *backend.AttentionArgs) { a.K = alloc(f, B+1, Tk, Hkv, D) }, "K"},
		{"K rank", false, func(a *backend.AttentionArgs) { a.K = alloc(f, B*Tk, Hkv, D) }, "K"},
		{"V shape", false, func(a *backend.AttentionArgs) { a.V = alloc(f, B, Tk-1, Hkv, D) }, "V"},
		{"Hq not multiple of Hkv", false, func(a *backend.AttentionArgs) {
			a.K, a.V = alloc(f, B, Tk, 3, D), alloc(f, B, Tk, 3, D)
		}, "heads"},
		{"Tk < Tq", false, func(a *backend.AttentionArgs) {
			a.K, a.V, a.Segments = alloc(f, B, Tq-1, Hkv, D), alloc(f, B, Tq-1, Hkv, D), nil
		}, "K has 4 positions"},
		{"Q dtype", false, func(a *backend.AttentionArgs) { a.Q = alloc(tensor.BF16, B, Tq, Hq, D) }, "Q"},
		{"K dtype", false, func(a *backend.AttentionArgs) { a.K = alloc(tensor.F64, B, Tk, Hkv, D) }, "K"},
		{"Out dtype", false, func(a *backend.AttentionArgs) { a.Out = alloc(tensor.F64, B, Tq, Hq, D) }, "Out"},
		{"Out shape", false, func(a *backend.AttentionArgs) { a.Out = alloc(f, B, Tq, Hq, D+1) }, "Out"},
		{"LSE shape", false, func(a *backend.AttentionArgs) { a.LSE = alloc(f, B, Tq, Hq) }, "LSE"},
		{"Segments dtype", false, func(a *backend.AttentionArgs) { a.Segments = alloc(f, B, Tk) }, "Segments"},
		{"Segments shape", false, func(a *backend.AttentionArgs) { a.Segments = alloc(tensor.I32, B, Tq) }, "Segments"},
		{"negative Window", false, func(a *backend.AttentionArgs) { a.Window = -1 }, "Window"},
		{"backward nil LSE", true, func(a *backend.AttentionArgs) { a.LSE = nil }, "LSE"},
		{"backward nil DOut", true, func(a *backend.AttentionArgs) { a.DOut = nil }, "DOut"},
		{"backward nil Out", true, func(a *backend.AttentionArgs) { a.Out = nil }, "Out"},
		{"backward DQ shape", true, func(a *backend.AttentionArgs) { a.DQ = alloc(f, B, Tk, Hq, D) }, "DQ"},
		{"backward DK shape", true, func(a *backend.AttentionArgs) { a.DK = alloc(f, B, Tk, Hq, D) }, "DK"},
		{"backward DV dtype", true, func(a *backend.AttentionArgs) { a.DV = alloc(tensor.F64, B, Tk, Hkv, D) }, "DV"},
		{"backward DOut shape", true, func(a *backend.AttentionArgs) { a.DOut = alloc(f, B, Tq, Hq, D-1) }, "DOut"},
	} {
		a := valid()
		tc.edit(a)
		var err error
		if tc.backward {
			err = be.AttentionBackward(a)
		} else {
			err = be.Attention(a)
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
	if err := be.Attention(nil); err == nil {
		t.Error("nil arguments: no error")
	}
}

func TestAttnStripes(t *testing.T) {
	for _, c := range []struct{ units, threads, blocks, want int }{
		{4, 1, 16, 1}, {4, 2, 16, 1}, {4, 16, 16, 4}, {4, 16, 2, 2}, {64, 16, 8, 1}, {1, 16, 16, 16}, {3, 16, 40, 16}, {0, 4, 0, 1},
	} {
		if got := attnStripes(c.units, c.threads, c.blocks); got != c.want {
			t.Errorf("attnStripes(%d, %d, %d) = %d, want %d", c.units, c.threads, c.blocks, got, c.want)
		}
	}
	for _, c := range []struct {
		costs []int
		n     int
		want  []int
	}{
		{[]int{1, 1, 1, 1}, 2, []int{0, 2, 4}},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8}, 4, []int{0, 4, 6, 7, 8}}, // causal: 36 in runs of 10, 11, 7, 8
		{[]int{1, 2, 3, 4, 5, 6, 7, 8}, 1, []int{0, 8}},
		{[]int{100, 1, 1}, 3, []int{0, 1, 3}}, // one block outweighs the rest
		{[]int{5}, 4, []int{0, 1}},
		{nil, 3, []int{0, 0}},
	} {
		if got := attnSplit(c.costs, c.n); !slices.Equal(got, c.want) {
			t.Errorf("attnSplit(%v, %d) = %v, want %v", c.costs, c.n, got, c.want)
		}
	}
}
