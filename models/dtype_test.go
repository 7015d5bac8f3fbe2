package models

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// TestBF16StaysBF16: a bf16 checkpoint loads as bf16 tensors (half the
// memory), and gives the logits of the f32 model holding the same rounded
// values.
func TestBF16StaysBF16(t *testing.T) {
	b, err := backend.Default()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join("testdata", "golden", "llama-gqa")
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	var bf, rounded []safetensors.Tensor
	for _, info := range f.Tensors() {
		vals, err := f.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]uint16, len(vals))
		tensor.BF16FromF32Slice(h, vals)
		raw := make([]byte, 2*len(h))
		for i, x := range h {
			binary.LittleEndian.PutUint16(raw[2*i:], x)
		}
		bf = append(bf, safetensors.Tensor{Name: info.Name, DType: safetensors.BF16, Shape: info.Shape, Data: raw})
		back := make([]float32, len(h))
		tensor.F32FromBF16Slice(back, h)
		rounded = append(rounded, safetensors.Tensor{Name: info.Name, DType: safetensors.F32, Shape: info.Shape, Data: backend.Float32Bytes(back)})
	}
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	dir32 := t.TempDir()
	for _, d := range []string{dir, dir32} {
		if err := os.WriteFile(filepath.Join(d, "config.json"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), bf, nil); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Write(filepath.Join(dir32, "model.safetensors"), rounded, nil); err != nil {
		t.Fatal(err)
	}
	logits := func(d string) ([]float64, Model) {
		md, err := hf.Resolve(d, "")
		if err != nil {
			t.Fatal(err)
		}
		l, err := LoadDir(b, md)
		if err != nil {
			t.Fatal(err)
		}
		g := autograd.New(b, autograd.NewPool(b))
		defer g.Release()
		ids, _ := autograd.Int32s(b, []int32{3, 1, 4, 1, 5, 9}, 1, 6)
		pos, _ := autograd.Int32s(b, []int32{0, 1, 2, 3, 4, 5}, 6)
		var out []float64
		g.NoGrad(func() {
			out, err = g.Value(l.Model.Logits(g, l.Model.Forward(g, Inputs{IDs: ids, Positions: pos})))
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, l.Model
	}
	got, m := logits(dir)
	for _, p := range nn.Params(m) {
		if *p.Var != nil && (*p.Var).Value.DType() != tensor.BF16 {
			t.Errorf("%s loaded as %v, want bf16", p.Name, (*p.Var).Value.DType())
		}
	}
	want, _ := logits(dir32)
	if e := relErr(got, want); e > 1e-6 {
		t.Errorf("bf16 weights: logits differ from f32 weights of the same values by %.3g", e)
	}
}
