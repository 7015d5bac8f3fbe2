package peft

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// TestFullFineTune: every weight becomes a parameter of one F32 set, in
// "decay" (matrices) or "no_decay" (vectors), with its value; the gradients
// of the golden batch's loss match PyTorch's.
func TestFullFineTune(t *testing.T) {
	b := testBackend(t)
	for _, variant := range []string{"llama-gqa", "qwen2-bias", "llama3-tied"} {
		t.Run(variant, func(t *testing.T) {
			dir := golden(variant)
			m := loadVariant(t, b, dir)
			before := ModelWeights(m)
			set, err := FullFineTune(b, m)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Params) != len(before) {
				t.Fatalf("%d parameters, want %d", len(set.Params), len(before))
			}
			if set.Values.DType() != tensor.F32 {
				t.Errorf("values are %v", set.Values.DType())
			}
			seenNoDecay := false
			for _, p := range set.Params {
				want := GroupDecay
				if len(p.Shape) == 1 {
					want = GroupNoDecay
				}
				if p.Group != want {
					t.Errorf("%s %v in group %s, want %s", p.Name, p.Shape, p.Group, want)
				}
				if p.Group == GroupDecay && seenNoDecay {
					t.Errorf("groups are not laid out together")
				}
				seenNoDecay = seenNoDecay || p.Group == GroupNoDecay
			}
			for _, w := range before {
				p := set.Get(w.Name)
				if p == nil {
					t.Fatalf("no parameter %s", w.Name)
				}
				if !slices.Equal(host(t, b, p.Var.Value), host(t, b, w.Value)) {
					t.Errorf("%s: value differs from the weight", w.Name)
				}
			}
			for _, p := range nn.Params(m) {
				if v := *p.Var; v != nil && (!v.RequiresGrad() || set.Get(p.Name).Var != v) {
					t.Errorf("%s was not replaced by its parameter", p.Name)
				}
			}

			gf, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			info, _ := gf.Info("input_ids")
			bsz, T := info.Shape[0], info.Shape[1]
			ids, labels := goldenInts(t, gf, "input_ids"), goldenInts(t, gf, "labels")
			idT, _ := autograd.Int32s(b, ids, bsz, T)
			pos := make([]int32, bsz*T)
			for i := range pos {
				pos[i] = int32(i % T)
			}
			posT, _ := autograd.Int32s(b, pos, bsz*T)
			g := autograd.New(b, autograd.NewPool(b))
			defer g.Release()
			loss, n := m.Loss(g, models.Inputs{IDs: idT, Positions: posT}, labels)
			if err := g.Backward(loss, 1/float64(n)); err != nil {
				t.Fatal(err)
			}
			for _, p := range set.Params {
				want, err := gf.Float32("grad." + p.Name)
				if err != nil {
					t.Fatal(err)
				}
				w := make([]float64, len(want))
				for i, x := range want {
					w[i] = float64(x)
				}
				if e := relErr(host(t, b, p.Var.Grad), w); e > 1e-4 {
					t.Errorf("gradient of %s: relative error %.3g", p.Name, e)
				}
			}
		})
	}
	// BF16 weights are converted.
	m := load(t, b)
	toDType(t, b, m, tensor.BF16)
	before := ModelWeights(m)
	set, err := FullFineTune(b, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range before {
		if !slices.Equal(host(t, b, set.Get(w.Name).Var.Value), host(t, b, w.Value)) {
			t.Errorf("%s: bf16 value not converted exactly", w.Name)
		}
	}
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
