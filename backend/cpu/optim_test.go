package cpu

import (
	"math"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

func TestRowNormsScaleRows(t *testing.T) {
	b, err := New(Options{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	const n, d = 7, 5
	xs := make([]float32, n*d)
	for i := range xs {
		xs[i] = float32(math.Sin(float64(i))) * 3
	}
	x, _ := backend.FromFloat32(b, xs, n, d)
	norms, _ := b.Alloc(tensor.F32, n)
	inv, _ := b.Alloc(tensor.F32, n)
	if err := b.RowNorms(norms, x, false); err != nil {
		t.Fatal(err)
	}
	if err := b.RowNorms(inv, x, true); err != nil {
		t.Fatal(err)
	}
	ns, _ := Float32s(norms)
	is, _ := Float32s(inv)
	for i := range n {
		s := 0.0
		for _, v := range xs[i*d : (i+1)*d] {
			s += float64(v) * float64(v)
		}
		if math.Abs(float64(ns[i])-math.Sqrt(s)) > 1e-5*math.Sqrt(s) || math.Abs(float64(is[i])*math.Sqrt(s)-1) > 1e-6 {
			t.Errorf("row %d: norm %v, 1/norm %v, want %v", i, ns[i], is[i], math.Sqrt(s))
		}
	}
	y, _ := b.Alloc(tensor.F32, n, d)
	if err := b.ScaleRows(y, x, norms); err != nil {
		t.Fatal(err)
	}
	ys, _ := Float32s(y)
	for i := range n {
		for j := range d {
			if ys[i*d+j] != xs[i*d+j]*ns[i] {
				t.Fatalf("ScaleRows [%d,%d] = %v, want %v", i, j, ys[i*d+j], xs[i*d+j]*ns[i])
			}
		}
	}
	if err := b.ScaleRows(y, x, inv); err != nil {
		t.Fatal(err)
	}
	bad, _ := b.Alloc(tensor.F32, n+1)
	if err := b.RowNorms(bad, x, false); err == nil || !strings.Contains(err.Error(), "RowNorms") {
		t.Errorf("mismatched dst: %v", err)
	}
	if err := b.ScaleRows(y, x, bad); err == nil {
		t.Error("ScaleRows with a wrong-length scale accepted")
	}
}
