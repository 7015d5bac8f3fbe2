package models

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/nn"
)

// relErr is the norm-wise relative error ||a-b|| / ||b||.
func relErr(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

func goldenInts(t *testing.T, f *safetensors.File, name string) []int32 {
	t.Helper()
	raw, err := f.Raw(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int32, len(raw)/8)
	for i := range out {
		out[i] = int32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
	}
	return out
}

func goldenFloats(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	s, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// TestGolden compares logits, loss and every parameter's gradient with the
// float64 PyTorch reference of scripts/golden/llama_golden.py, for each
// variant of the family (GQA; llama3 RoPE with tied embeddings; a Mistral
// sliding window; Qwen2 biases; Qwen3 q/k norms with a wider head_dim).
func TestGolden(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if len(dirs) == 0 {
		t.Fatal("no golden directories under testdata/golden")
	}
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	const tol = 1e-4
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			md, err := hf.Resolve(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			l, err := LoadDir(b, md)
			if err != nil {
				t.Fatal(err)
			}
			gf, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			info, _ := gf.Info("input_ids")
			bsz, T := info.Shape[0], info.Shape[1]
			ids := goldenInts(t, gf, "input_ids")
			labels := goldenInts(t, gf, "labels")
			idT, _ := autograd.Int32s(b, ids, bsz, T)
			pos := make([]int32, bsz*T)
			for i := range pos {
				pos[i] = int32(i % T)
			}
			posT, _ := autograd.Int32s(b, pos, bsz*T)
			in := Inputs{IDs: idT, Positions: posT}

			// Logits, without gradients.
			pool := autograd.NewPool(b)
			g := autograd.New(b, pool)
			var logits *autograd.Var
			g.NoGrad(func() { logits = l.Model.Logits(g, l.Model.Forward(g, in)) })
			got, err := g.Value(logits)
			if err != nil {
				t.Fatal(err)
			}
			g.Release()
			if e := relErr(got, goldenFloats(t, gf, "logits")); e > tol {
				t.Errorf("logits: relative error %.3g > %g", e, tol)
			} else {
				t.Logf("logits: relative error %.2g", e)
			}

			// Loss and gradients, every weight trainable.
			params := nn.Params(l.Model)
			for _, p := range params {
				if *p.Var == nil {
					continue
				}
				v := (*p.Var).Value
				gr, _ := b.Alloc(v.DType(), v.Shape()...)
				*p.Var = autograd.Param(p.Name, v, gr)
			}
			g = autograd.New(b, pool)
			defer g.Release()
			loss, n := l.Model.Loss(g, in, labels)
			if err := g.Backward(loss, 1/float64(n)); err != nil {
				t.Fatal(err)
			}
			lv, _ := g.Value(loss)
			want := goldenFloats(t, gf, "loss")[0]
			if e := math.Abs(lv[0]/float64(n)-want) / want; e > tol {
				t.Errorf("loss %.7f, want %.7f (relative error %.3g)", lv[0]/float64(n), want, e)
			}
			checked := 0
			for _, p := range params {
				if *p.Var == nil {
					continue
				}
				gw, err := autograd.ToHost(b, (*p.Var).Grad)
				if err != nil {
					t.Fatal(err)
				}
				name := p.Name
				if _, ok := gf.Info("grad." + name); !ok {
					t.Errorf("golden file has no gradient for %s", name)
					continue
				}
				if e := relErr(gw, goldenFloats(t, gf, "grad."+name)); e > tol {
					t.Errorf("gradient of %s: relative error %.3g > %g", name, e, tol)
				}
				checked++
			}
			for _, n := range gf.Names() {
				if strings.HasPrefix(n, "grad.") {
					checked--
				}
			}
			if checked != 0 {
				t.Errorf("the model has %d more parameters than the golden file has gradients", checked)
			}
		})
	}
}

// TestGoldenCheckpointing: with gradient checkpointing the loss and every
// gradient are bit-identical to the run without it.
func TestGoldenCheckpointing(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "golden", "qwen3-qknorm")
	var grads [2][]float64
	for i, ckpt := range []bool{false, true} {
		md, _ := hf.Resolve(dir, "")
		l, err := LoadDir(b, md)
		if err != nil {
			t.Fatal(err)
		}
		l.Model.(*Llama).SetCheckpointing(ckpt)
		gf, _ := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
		ids, labels := goldenInts(t, gf, "input_ids"), goldenInts(t, gf, "labels")
		gf.Close()
		T := len(ids) / 2
		idT, _ := autograd.Int32s(b, ids, 2, T)
		pos := make([]int32, 2*T)
		for j := range pos {
			pos[j] = int32(j % T)
		}
		posT, _ := autograd.Int32s(b, pos, 2*T)
		for _, p := range nn.Params(l.Model) {
			if *p.Var != nil {
				v := (*p.Var).Value
				gr, _ := b.Alloc(v.DType(), v.Shape()...)
				*p.Var = autograd.Param(p.Name, v, gr)
			}
		}
		g := autograd.New(b, autograd.NewPool(b))
		loss, n := l.Model.Loss(g, Inputs{IDs: idT, Positions: posT}, labels)
		if err := g.Backward(loss, 1/float64(n)); err != nil {
			t.Fatal(err)
		}
		for _, p := range nn.Params(l.Model) {
			if *p.Var != nil {
				gw, _ := autograd.ToHost(b, (*p.Var).Grad)
				grads[i] = append(grads[i], gw...)
			}
		}
		g.Release()
	}
	if len(grads[0]) == 0 || relErr(grads[1], grads[0]) != 0 {
		t.Errorf("gradients differ with checkpointing: relative error %.3g", relErr(grads[1], grads[0]))
	}
}
