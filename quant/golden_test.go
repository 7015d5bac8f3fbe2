package quant

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/backend/cpu"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/tensor"
)

// The golden values come from scripts/golden/quant_golden.py, an independent
// numpy statement of bitsandbytes' kernels; see its docstring.

func testBackend(t testing.TB) backend.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{BLAS: cpu.BLASGo, Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type goldenCase struct {
	Name            string   `json:"name"`
	Kind            string   `json:"kind"`
	Shape           []int    `json:"shape"`
	BlockSize       int      `json:"blocksize"`
	Double          bool     `json:"double"`
	DType           string   `json:"dtype"`
	Offset          *float64 `json:"offset"`
	NestedBlockSize int      `json:"nested_blocksize"`
	Threshold       float64  `json:"threshold"`
	OutlierCols     []int    `json:"outlier_cols"`
	Signed          bool     `json:"signed"`
	N               int      `json:"n"`
}

type golden struct {
	f     *safetensors.File
	cases []goldenCase
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	dir := filepath.Join("testdata")
	f, err := safetensors.Open(filepath.Join(dir, "quant_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	raw, err := os.ReadFile(filepath.Join(dir, "quant_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	return &golden{f: f, cases: s.Cases}
}

func (g *golden) f32(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := g.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (g *golden) raw(t *testing.T, name string) []byte {
	t.Helper()
	v, err := g.f.Raw(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// input uploads a case's x in its stored dtype.
func (g *golden) input(t *testing.T, b backend.Backend, name string) *tensor.Tensor {
	t.Helper()
	info, ok := g.f.Info(name)
	if !ok {
		t.Fatalf("golden tensor %s missing", name)
	}
	dt, ok := info.DType.TensorDType()
	if !ok {
		t.Fatalf("golden tensor %s: dtype %v", name, info.DType)
	}
	x, err := b.Alloc(dt, info.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CopyFromHost(x, g.raw(t, name)); err != nil {
		t.Fatal(err)
	}
	return x
}

func hostBytesT(t *testing.T, b backend.Backend, x *tensor.Tensor) []byte {
	t.Helper()
	out := make([]byte, x.Bytes())
	if err := b.CopyToHost(out, x); err != nil {
		t.Fatal(err)
	}
	return out
}

func hostF32(t *testing.T, b backend.Backend, x *tensor.Tensor) []float32 {
	t.Helper()
	v, err := backend.ToFloat32(b, x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sameBits compares float32 slices bit for bit (so -0 differs from 0).
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v (%#08x), want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if got[i] != want[i] {
			if bad < 5 {
				t.Errorf("%s[%d] = %#02x, want %#02x", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d bytes differ", what, bad, len(got))
	}
}

func TestGoldenTables(t *testing.T) {
	g := loadGolden(t)
	for _, tc := range []struct {
		name string
		got  []float32
	}{
		{"table.nf4", NF4Code()},
		{"table.fp4", FP4Code()},
		{"table.dynamic_signed", DynamicMap(true)},
		{"table.dynamic_unsigned", DynamicMap(false)},
	} {
		t.Run(tc.name, func(t *testing.T) { sameBits(t, tc.name, tc.got, g.f32(t, tc.name)) })
	}
}

func TestGolden4Bit(t *testing.T) {
	g := loadGolden(t)
	b := testBackend(t)
	n := 0
	for _, c := range g.cases {
		if c.Kind != "nf4" && c.Kind != "fp4" {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			p := "case." + c.Name + "."
			kind, err := ParseKind(c.Kind)
			if err != nil {
				t.Fatal(err)
			}
			x := g.input(t, b, p+"x")
			w, err := Quantize(b, x, kind, Options{BlockSize: c.BlockSize, DoubleQuant: c.Double})
			if err != nil {
				t.Fatal(err)
			}
			if w.Rows != c.Shape[0] || w.Cols != c.Shape[1] || w.OrigDType != x.DType() {
				t.Errorf("weight %d x %d of %v, want %v of %v", w.Rows, w.Cols, w.OrigDType, c.Shape, x.DType())
			}
			sameBytes(t, "codes", hostBytesT(t, b, w.Codes), g.raw(t, p+"codes"))
			if c.Double {
				if w.Absmax != nil {
					t.Error("Absmax is set with double quantisation")
				}
				if c.Offset == nil || float32(w.Offset) != float32(*c.Offset) {
					t.Errorf("offset %v, want %v", w.Offset, c.Offset)
				}
				sameBytes(t, "qabsmax", hostBytesT(t, b, w.QAbsmax), g.raw(t, p+"qabsmax"))
				sameBits(t, "nested_absmax", hostF32(t, b, w.NestedAbsmax), g.f32(t, p+"nested_absmax"))
			} else {
				sameBits(t, "absmax", hostF32(t, b, w.Absmax), g.f32(t, p+"absmax"))
			}
			d, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			want := g.f32(t, p+"dequantized")
			sameBits(t, "dequantized", hostF32(t, b, d), want)

			// Row ranges, including ones starting on a low nibble (odd
			// column counts) and single rows, give the same values.
			for _, rr := range [][2]int{{0, 1}, {1, 1}, {c.Shape[0] - 1, 1}, {1, c.Shape[0] - 1}, {c.Shape[0] / 2, (c.Shape[0] + 1) / 2}} {
				r0, nr := rr[0], rr[1]
				if nr <= 0 || r0+nr > c.Shape[0] {
					continue
				}
				part, err := b.Alloc(tensor.F32, nr, c.Shape[1])
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Dequantize(part, w, r0); err != nil {
					t.Fatal(err)
				}
				sameBits(t, fmt.Sprintf("rows [%d, %d)", r0, r0+nr), hostF32(t, b, part), want[r0*c.Shape[1]:(r0+nr)*c.Shape[1]])
			}
		})
	}
	if n < 6 {
		t.Errorf("only %d 4-bit golden cases", n)
	}
}

func TestGoldenInt8(t *testing.T) {
	g := loadGolden(t)
	b := testBackend(t)
	for _, c := range g.cases {
		if c.Kind != "int8" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			p := "case." + c.Name + "."
			x := g.input(t, b, p+"x")
			w, err := Quantize(b, x, backend.QuantInt8, Options{OutlierThreshold: c.Threshold})
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "codes", hostBytesT(t, b, w.Codes), g.raw(t, p+"codes"))
			sameBits(t, "scb", hostF32(t, b, w.Absmax), g.f32(t, p+"scb"))
			var cols []int
			if w.OutlierCols != nil {
				raw := hostBytesT(t, b, w.OutlierCols)
				for i := 0; i < len(raw); i += 4 {
					cols = append(cols, int(int32(binary.LittleEndian.Uint32(raw[i:]))))
				}
				sameBits(t, "outliers", hostF32(t, b, w.Outliers), g.f32(t, p+"outliers"))
			}
			if fmt.Sprint(cols) != fmt.Sprint(c.OutlierCols) && len(cols)+len(c.OutlierCols) > 0 {
				t.Errorf("outlier columns %v, want %v", cols, c.OutlierCols)
			}
			d, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			want := g.f32(t, p+"dequantized")
			sameBits(t, "dequantized", hostF32(t, b, d), want)
			part, err := b.Alloc(tensor.F32, 2, c.Shape[1])
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Dequantize(part, w, 2); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "rows [2, 4)", hostF32(t, b, part), want[2*c.Shape[1]:4*c.Shape[1]])
		})
	}
}

func TestGoldenBlockwise8(t *testing.T) {
	g := loadGolden(t)
	b := testBackend(t)
	for _, c := range g.cases {
		if c.Kind != "blockwise8" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			p := "case." + c.Name + "."
			x := g.input(t, b, p+"x")
			code, err := backend.FromFloat32(b, DynamicMap(c.Signed), 256)
			if err != nil {
				t.Fatal(err)
			}
			blocks := (c.N + c.BlockSize - 1) / c.BlockSize
			codes, _ := b.Alloc(tensor.U8, c.N)
			absmax, _ := b.Alloc(tensor.F32, blocks)
			if err := b.QuantizeBlockwise8(codes, absmax, x, code, c.BlockSize); err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "codes", hostBytesT(t, b, codes), g.raw(t, p+"codes"))
			sameBits(t, "absmax", hostF32(t, b, absmax), g.f32(t, p+"absmax"))
			y, _ := b.Alloc(tensor.F32, c.N)
			if err := b.DequantizeBlockwise8(y, codes, absmax, code, c.BlockSize); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "dequantized", hostF32(t, b, y), g.f32(t, p+"dequantized"))
		})
	}
}
