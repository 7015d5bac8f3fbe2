package gguf

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// goldenPath is written by testdata/gen_golden.py, an independent Python
// writer of GGUF and numpy implementation of ggml's dequantisation.
var goldenPath = filepath.Join("testdata", "golden.gguf")

// sameFloat reports whether a and b are the same float32: equal bits, or
// both NaN.
func sameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestDequantizeGolden checks Float32 of every tensor type the Python
// script wrote against the float32 values it computed, bit for bit.
func TestDequantizeGolden(t *testing.T) {
	f, err := Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := map[GGMLType]bool{}
	for _, ti := range f.Tensors() {
		if strings.HasSuffix(ti.Name, ".expected") {
			continue
		}
		t.Run(ti.Name, func(t *testing.T) {
			if got := strings.ToLower(ti.Type.String()); got != ti.Name {
				t.Fatalf("tensor %q has type %v", ti.Name, ti.Type)
			}
			want, err := f.Float32(ti.Name + ".expected")
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Float32(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(got) != ti.Elements {
				t.Fatalf("got %d values, want %d (%d elements)", len(got), len(want), ti.Elements)
			}
			bad := 0
			for i := range got {
				if !sameFloat(got[i], want[i]) {
					if bad++; bad <= 5 {
						t.Errorf("element %d (row %d col %d): got %g (%#08x), want %g (%#08x)",
							i, i/ti.Shape[1], i%ti.Shape[1], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d values differ", bad, len(got))
			}
			checked[ti.Type] = true
		})
	}
	// Every type Float32 converts must be covered by the golden file.
	for typ := range dequantizers {
		if !checked[typ] {
			t.Errorf("golden file has no %v tensor: add one to testdata/gen_golden.py", typ)
		}
	}
}

// TestDequantizeByHand checks Q8_0 and Q4_0 on blocks worked out by hand
// from the format's definition.
func TestDequantizeByHand(t *testing.T) {
	const half = 0x3800 // 0.5 as binary16
	q8 := make([]byte, 34)
	binary.LittleEndian.PutUint16(q8, half)
	want8 := make([]float32, 32)
	for j := range 32 {
		q := int8(j*8 - 128) // -128, -120, ..., 120
		if j == 31 {
			q = 127
		}
		q8[2+j] = byte(q)
		want8[j] = 0.5 * float32(q)
	}
	q4 := make([]byte, 18)
	binary.LittleEndian.PutUint16(q4, 0xc000) // -2.0
	want4 := make([]float32, 32)
	for j := range 16 {
		lo, hi := j, 15-j
		q4[2+j] = byte(lo | hi<<4)
		want4[j] = -2 * float32(lo-8)
		want4[j+16] = -2 * float32(hi-8)
	}
	for _, tc := range []struct {
		name string
		fn   dequantizer
		src  []byte
		want []float32
	}{
		{"Q8_0", deqQ8_0, q8, want8},
		{"Q4_0", deqQ4_0, q4, want4},
		{"Q8_0 two blocks", deqQ8_0, append(append([]byte{}, q8...), q8...), append(append([]float32{}, want8...), want8...)},
	} {
		got := make([]float32, len(tc.want))
		tc.fn(got, tc.src)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: element %d: got %g, want %g", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

// TestFloat32Unsupported checks types Float32 cannot convert give an error
// naming the type and the tensor.
func TestFloat32Unsupported(t *testing.T) {
	for _, typ := range []GGMLType{TypeIQ2_XXS, TypeIQ4_XS, TypeTQ1_0, TypeMXFP4, TypeI32} {
		t.Run(typ.String(), func(t *testing.T) {
			name := "blk.0.attn_q.weight"
			data := mustWrite(t, 3, nil, []TensorData{{Name: name, Type: typ, Shape: []int{typ.BlockSize()}, Data: make([]byte, typ.TypeSize())}})
			f, err := Parse("x.gguf", data)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Float32(name)
			want := "unsupported type " + typ.String() + ` in tensor "` + name + `"`
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "x.gguf") {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
			if raw, err := f.Raw(name); err != nil || len(raw) != typ.TypeSize() {
				t.Errorf("Raw: %d bytes, %v", len(raw), err)
			}
		})
	}
}

func BenchmarkFloat32(b *testing.B) {
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeQ8_0, TypeQ4_0, TypeQ4_K, TypeQ6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			const rows, cols = 256, 1024
			size := rows * cols / typ.BlockSize() * typ.TypeSize()
			data := mustWrite(b, 3, nil, []TensorData{{Name: "w", Type: typ, Shape: []int{rows, cols}, Data: make([]byte, size)}})
			f, err := Parse("bench", data)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(rows * cols * 4)
			for b.Loop() {
				if _, err := f.Float32("w"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
