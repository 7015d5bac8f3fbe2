package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/quant"
	"github.com/whet-ai/whet/tensor"
)

// The bit-exact comparison with bitsandbytes is quant's golden test; these
// tests check the kernels' own properties: exact small cases, nearest-code
// rounding, row ranges, thread-count independence and input checks.

func quantBackend(t testing.TB, threads int) *Backend {
	t.Helper()
	b, err := New(Options{BLAS: BLASGo, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func f32Tensor(t testing.TB, b *Backend, v []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := backend.FromFloat32(b, v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func tensorBytes(t testing.TB, x *tensor.Tensor) []byte {
	t.Helper()
	raw, err := Bytes(x)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(raw)
}

func tensorF32(t testing.TB, x *tensor.Tensor) []float32 {
	t.Helper()
	v, err := Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(v)
}

func randValues(n int, seed uint64, scale float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func TestQuantize4Exact(t *testing.T) {
	b := quantBackend(t, 2)
	negZero := float32(math.Copysign(0, -1))
	for _, tc := range []struct {
		name   string
		kind   backend.QuantKind
		x      []float32
		codes  []byte
		absmax []float32
	}{
		// The first element of a pair is the high nibble.
		{"nf4 pair", backend.QuantNF4, []float32{1, -1}, []byte{0xF0}, []float32{1}},
		{"nf4 scaled", backend.QuantNF4, []float32{-4, 2, 0.25, 4}, []byte{0x0C, 0x8F}, []float32{4}},
		// An odd count is padded with 0, which is NF4 code 7.
		{"nf4 odd", backend.QuantNF4, []float32{-1, 1, 0.5}, []byte{0x0F, 0xC7}, []float32{1}},
		// An all-zero block is 0 * inf = NaN: code 0, as in bitsandbytes.
		{"nf4 zero", backend.QuantNF4, []float32{0, negZero, 0}, []byte{0x00, 0x00}, []float32{0}},
		{"fp4 pair", backend.QuantFP4, []float32{1, -1}, []byte{0x3B}, []float32{1}},
		// 1 is code 3, -0.5 is the sign bit 8 with 0.5 (code 5).
		{"fp4 odd", backend.QuantFP4, []float32{0.5, -0.25, 0}, []byte{0x3D, 0x00}, []float32{0.5}},
		{"fp4 zero", backend.QuantFP4, []float32{0, 0}, []byte{0x00}, []float32{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &backend.QuantWeight{Kind: tc.kind, Rows: 1, Cols: len(tc.x), BlockSize: 64}
			w.Codes, _ = b.Alloc(tensor.U8, (len(tc.x)+1)/2)
			w.Absmax, _ = b.Alloc(tensor.F32, 1)
			if err := b.Quantize(w, f32Tensor(t, b, tc.x, 1, len(tc.x))); err != nil {
				t.Fatal(err)
			}
			if got := tensorBytes(t, w.Codes); !slices.Equal(got, tc.codes) {
				t.Errorf("codes % x, want % x", got, tc.codes)
			}
			if got := tensorF32(t, w.Absmax); !slices.Equal(got, tc.absmax) {
				t.Errorf("absmax %v, want %v", got, tc.absmax)
			}
		})
	}
}

func TestQuantizeInt8Exact(t *testing.T) {
	b := quantBackend(t, 2)
	// Column 1 is an outlier column: it does not count towards the row
	// absmax, and row 2 is zero outside it.
	x := []float32{127, 2.5, -3.5, 1000, 0.5, -63.5, 0, 0, 0, -20, 0, 0}
	w := &backend.QuantWeight{Kind: backend.QuantInt8, Rows: 3, Cols: 4}
	w.Codes, _ = b.Alloc(tensor.U8, 12)
	w.Absmax, _ = b.Alloc(tensor.F32, 3)
	w.OutlierCols = int32Tensor(t, b, []int32{1})
	w.Outliers, _ = b.Alloc(tensor.F32, 3, 1)
	if err := b.Quantize(w, f32Tensor(t, b, x, 3, 4)); err != nil {
		t.Fatal(err)
	}
	// Row 0 without column 1: absmax 1000, scale 0.127; row 1: absmax 0.5.
	wantCodes := []int8{16, 0, 0, 127, 127, 0, 0, 0, 0, 0, 0, 0}
	got := tensorBytes(t, w.Codes)
	for i, c := range wantCodes {
		if int8(got[i]) != c {
			t.Errorf("code %d = %d, want %d", i, int8(got[i]), c)
		}
	}
	if got := tensorF32(t, w.Absmax); !slices.Equal(got, []float32{1000, 0.5, 0}) {
		t.Errorf("absmax %v", got)
	}
	if got := tensorF32(t, w.Outliers); !slices.Equal(got, []float32{2.5, -63.5, -20}) {
		t.Errorf("outliers %v", got)
	}
	d, _ := b.Alloc(tensor.F32, 3, 4)
	if err := b.Dequantize(d, w, 0); err != nil {
		t.Fatal(err)
	}
	out := tensorF32(t, d)
	for i := range x {
		want := float32(float32(float32(int8(got[i]))*tensorF32(t, w.Absmax)[i/4]) * quantInv127)
		if i%4 == 1 {
			want = x[i]
		}
		if out[i] != want {
			t.Errorf("dequantized %d = %v, want %v", i, out[i], want)
		}
	}

	// Absmax 127 gives scale 1: 2.5 and -3.5 round half to even.
	w2 := &backend.QuantWeight{Kind: backend.QuantInt8, Rows: 1, Cols: 4}
	w2.Codes, _ = b.Alloc(tensor.U8, 4)
	w2.Absmax, _ = b.Alloc(tensor.F32, 1)
	if err := b.Quantize(w2, f32Tensor(t, b, []float32{127, 2.5, -3.5, 0.5}, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if got := tensorBytes(t, w2.Codes); !slices.Equal(got, []byte{127, 2, 0xFC, 0}) {
		t.Errorf("codes % x, want 7f 02 fc 00", got)
	}
}

func int32Tensor(t testing.TB, b *Backend, v []int32) *tensor.Tensor {
	t.Helper()
	x, err := b.Alloc(tensor.I32, len(v))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Int32s(x)
	copy(s, v)
	return x
}

// TestQuantize4Nearest checks on random values that every code is the one
// nearest x/absmax, except within float32 rounding of a midpoint, where
// bitsandbytes' thresholds decide.
func TestQuantize4Nearest(t *testing.T) {
	b := quantBackend(t, 3)
	for _, kind := range []backend.QuantKind{backend.QuantNF4, backend.QuantFP4} {
		t.Run(kind.String(), func(t *testing.T) {
			code, _ := quant.Code(kind)
			x := randValues(50*128+7, 3, 0.1)
			w, err := quant.Quantize(b, f32Tensor(t, b, x, 1, len(x)), kind, quant.Options{BlockSize: 128})
			if err != nil {
				t.Fatal(err)
			}
			packed, absmax := tensorBytes(t, w.Codes), tensorF32(t, w.Absmax)
			for i, v := range x {
				c := packed[i/2] >> 4
				if i%2 == 1 {
					c = packed[i/2] & 15
				}
				y := float64(v * (1 / absmax[i/128]))
				best := math.Inf(1)
				for _, cv := range code {
					best = min(best, math.Abs(y-float64(cv)))
				}
				if d := math.Abs(y - float64(code[c])); d > best+1e-6 {
					t.Fatalf("element %d: x/absmax %v got code %d (%v), distance %g > nearest %g", i, y, c, code[c], d, best)
				}
			}
		})
	}
}

func TestBlockwise8Nearest(t *testing.T) {
	b := quantBackend(t, 3)
	for _, signed := range []bool{true, false} {
		t.Run(fmt.Sprint("signed=", signed), func(t *testing.T) {
			table := quant.DynamicMap(signed)
			x := randValues(3*256+100, 4, 1)
			if !signed {
				for i := range x {
					x[i] = float32(math.Abs(float64(x[i])))
				}
			}
			code := f32Tensor(t, b, table, 256)
			codes, _ := b.Alloc(tensor.U8, len(x))
			absmax, _ := b.Alloc(tensor.F32, 4)
			if err := b.QuantizeBlockwise8(codes, absmax, f32Tensor(t, b, x, len(x)), code, 256); err != nil {
				t.Fatal(err)
			}
			cs, as := tensorBytes(t, codes), tensorF32(t, absmax)
			for i, v := range x {
				y := float64(v * (1 / as[i/256]))
				best := math.Inf(1)
				for _, cv := range table {
					best = min(best, math.Abs(y-float64(cv)))
				}
				if d := math.Abs(y - float64(table[cs[i]])); d > best*(1+1e-6)+1e-12 {
					t.Fatalf("element %d: %v got code %d (%v), distance %g > nearest %g", i, y, cs[i], table[cs[i]], d, best)
				}
			}
			y, _ := b.Alloc(tensor.F32, len(x))
			if err := b.DequantizeBlockwise8(y, codes, absmax, code, 256); err != nil {
				t.Fatal(err)
			}
			for i, v := range tensorF32(t, y) {
				if want := table[cs[i]] * as[i/256]; v != want {
					t.Fatalf("dequantized %d = %v, want %v", i, v, want)
				}
			}
		})
	}
}

// TestDequantizeRows checks that every row range gives the rows of the whole
// weight, for odd column counts (ranges starting on a low nibble) and double
// quantisation.
func TestDequantizeRows(t *testing.T) {
	b := quantBackend(t, 4)
	for _, tc := range []struct {
		kind       backend.QuantKind
		rows, cols int
		opt        quant.Options
	}{
		{backend.QuantNF4, 13, 37, quant.Options{}},
		{backend.QuantNF4, 13, 37, quant.Options{DoubleQuant: true, BlockSize: 32}},
		{backend.QuantFP4, 9, 64, quant.Options{BlockSize: 128}},
		{backend.QuantFP4, 7, 1, quant.Options{}},
		{backend.QuantInt8, 11, 21, quant.Options{OutlierThreshold: 0.25}},
	} {
		t.Run(fmt.Sprintf("%v/%dx%d/%+v", tc.kind, tc.rows, tc.cols, tc.opt), func(t *testing.T) {
			x := randValues(tc.rows*tc.cols, 5, 0.1)
			w, err := quant.Quantize(b, f32Tensor(t, b, x, tc.rows, tc.cols), tc.kind, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			full, _ := b.Alloc(tensor.F32, tc.rows, tc.cols)
			if err := b.Dequantize(full, w, 0); err != nil {
				t.Fatal(err)
			}
			all := tensorF32(t, full)
			for r0 := 0; r0 < tc.rows; r0++ {
				for n := 0; r0+n <= tc.rows; n++ {
					part, _ := b.Alloc(tensor.F32, n, tc.cols)
					if err := b.Dequantize(part, w, r0); err != nil {
						t.Fatal(err)
					}
					got := tensorF32(t, part)
					want := all[r0*tc.cols : (r0+n)*tc.cols]
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("rows [%d, %d) element %d = %v, want %v", r0, r0+n, i, got[i], want[i])
						}
					}
				}
			}
		})
	}
}

// TestQuantThreads checks that results do not depend on the thread count.
func TestQuantThreads(t *testing.T) {
	x := randValues(97*131, 6, 0.05)
	var ref [][]byte
	for _, threads := range []int{1, 2, 7} {
		b := quantBackend(t, threads)
		var got [][]byte
		for _, kind := range []backend.QuantKind{backend.QuantNF4, backend.QuantFP4, backend.QuantInt8} {
			w, err := quant.Quantize(b, f32Tensor(t, b, x, 97, 131), kind, quant.Options{DoubleQuant: true, OutlierThreshold: 0.15})
			if err != nil {
				t.Fatal(err)
			}
			d, err := quant.Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tensorBytes(t, w.Codes), tensorBytes(t, d))
		}
		if ref == nil {
			ref = got
			continue
		}
		for i := range got {
			if !slices.Equal(got[i], ref[i]) {
				t.Errorf("%d threads: result %d differs from 1 thread", threads, i)
			}
		}
	}
}

func TestQuantErrors(t *testing.T) {
	b := quantBackend(t, 2)
	x := f32Tensor(t, b, randValues(4*16, 7, 1), 4, 16)
	nf4 := func(mod func(w *backend.QuantWeight)) *backend.QuantWeight {
		w, err := quant.New(b, backend.QuantNF4, 4, 16, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(w)
		}
		return w
	}
	dq := func(mod func(w *backend.QuantWeight)) *backend.QuantWeight {
		w, err := quant.New(b, backend.QuantNF4, 4, 16, quant.Options{DoubleQuant: true})
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(w)
		}
		return w
	}
	i8 := func(mod func(w *backend.QuantWeight)) *backend.QuantWeight {
		w, err := quant.New(b, backend.QuantInt8, 4, 16, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(w)
		}
		return w
	}
	u8 := func(n int) *tensor.Tensor { t, _ := b.Alloc(tensor.U8, n); return t }
	f32 := func(n int) *tensor.Tensor { t, _ := b.Alloc(tensor.F32, n); return t }
	bf16, _ := b.Alloc(tensor.BF16, 4, 16)
	i32, _ := b.Alloc(tensor.I32, 4, 16)
	unsorted := f32Tensor(t, b, append([]float32{1}, make([]float32, 255)...), 256)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"nil weight", func() error { return b.Quantize(nil, x) }, "missing weight"},
		{"kind", func() error { return b.Quantize(&backend.QuantWeight{Rows: 1, Cols: 1}, x) }, "unsupported format"},
		{"codes size", func() error { return b.Quantize(nf4(func(w *backend.QuantWeight) { w.Codes = u8(31) }), x) }, "Codes"},
		{"codes dtype", func() error { return b.Quantize(nf4(func(w *backend.QuantWeight) { w.Codes = f32(32) }), x) }, "Codes"},
		{"absmax size", func() error { return b.Quantize(nf4(func(w *backend.QuantWeight) { w.Absmax = f32(2) }), x) }, "Absmax"},
		{"block size", func() error { return b.Quantize(nf4(func(w *backend.QuantWeight) { w.BlockSize = 63 }), x) }, "block size 63"},
		{"src size", func() error { return b.Quantize(nf4(nil), f32Tensor(t, b, make([]float32, 8), 8)) }, "src"},
		{"src dtype", func() error { return b.Quantize(nf4(nil), i32) }, "src"},
		{"nil src", func() error { return b.Quantize(nf4(nil), nil) }, "src"},
		{"qabsmax", func() error { return b.Quantize(dq(func(w *backend.QuantWeight) { w.QAbsmax = u8(3) }), x) }, "QAbsmax"},
		{"nested absmax", func() error { return b.Quantize(dq(func(w *backend.QuantWeight) { w.NestedAbsmax = nil }), x) }, "NestedAbsmax"},
		{"nested code", func() error { return b.Quantize(dq(func(w *backend.QuantWeight) { w.NestedCode = f32(16) }), x) }, "NestedCode"},
		{"nested unsorted", func() error { return b.Quantize(dq(func(w *backend.QuantWeight) { w.NestedCode = unsorted }), x) }, "not sorted"},
		{"nested block", func() error { return b.Quantize(dq(func(w *backend.QuantWeight) { w.NestedBlockSize = 0 }), x) }, "nested block size"},
		{"int8 scb", func() error { return b.Quantize(i8(func(w *backend.QuantWeight) { w.Absmax = f32(3) }), bf16) }, "Absmax"},
		{"int8 one outlier tensor", func() error {
			return b.Quantize(i8(func(w *backend.QuantWeight) { w.OutlierCols = int32Tensor(t, b, []int32{1}) }), x)
		}, "both"},
		{"int8 outlier order", func() error {
			return b.Quantize(i8(func(w *backend.QuantWeight) {
				w.OutlierCols, w.Outliers = int32Tensor(t, b, []int32{3, 1}), f32(8)
			}), x)
		}, "OutlierCols[1]"},
		{"int8 outlier range", func() error {
			return b.Quantize(i8(func(w *backend.QuantWeight) {
				w.OutlierCols, w.Outliers = int32Tensor(t, b, []int32{16}), f32(4)
			}), x)
		}, "OutlierCols[0]"},
		{"int8 outliers size", func() error {
			return b.Quantize(i8(func(w *backend.QuantWeight) {
				w.OutlierCols, w.Outliers = int32Tensor(t, b, []int32{2}), f32(5)
			}), x)
		}, "Outliers"},
		{"dequantize nil dst", func() error { return b.Dequantize(nil, nf4(nil), 0) }, "dst"},
		{"dequantize dst size", func() error { return b.Dequantize(f32(17), nf4(nil), 0) }, "dst"},
		{"dequantize rows", func() error { return b.Dequantize(f32(32), nf4(nil), 3) }, "rows [3"},
		{"dequantize negative row", func() error { return b.Dequantize(f32(16), nf4(nil), -1) }, "rows [-1"},
		{"dequantize code", func() error { return b.Dequantize(f32(64), nf4(func(w *backend.QuantWeight) { w.Code = f32(15) }), 0) }, "Code"},
		{"dequantize int8", func() error { return b.Dequantize(f32(64), i8(func(w *backend.QuantWeight) { w.Codes = u8(3) }), 0) }, "Codes"},
		{"blockwise8 size", func() error {
			return b.QuantizeBlockwise8(u8(10), f32(1), f32(11), f32Tensor(t, b, quant.DynamicMap(true), 256), 256)
		}, "codes"},
		{"blockwise8 absmax", func() error {
			return b.QuantizeBlockwise8(u8(300), f32(1), f32(300), f32Tensor(t, b, quant.DynamicMap(true), 256), 256)
		}, "absmax"},
		{"blockwise8 block", func() error {
			return b.DequantizeBlockwise8(f32(10), u8(10), f32(1), f32Tensor(t, b, quant.DynamicMap(true), 256), 0)
		}, "block size 0"},
		{"blockwise8 code", func() error { return b.DequantizeBlockwise8(f32(10), u8(10), f32(1), unsorted, 16) }, "not sorted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkDequantize dequantises a 4096 x 4096 NF4 weight (what a
// quantised linear layer of a 7B model does per use): the whole matrix, and
// in tiles of 256 rows. Output GB/s and ns per element are reported.
func BenchmarkDequantize(bb *testing.B) {
	const rows, cols = 4096, 4096
	b := quantBackend(bb, 0)
	x := f32Tensor(bb, b, randValues(rows*cols, 8, 0.02), rows, cols)
	// For scale: Fill writes the same 64 MiB output without reading
	// anything, which bounds what dequantisation can reach.
	bb.Run("fill-reference", func(bb *testing.B) {
		dst, _ := b.Alloc(tensor.F32, rows, cols)
		if err := b.Fill(dst, 1); err != nil {
			bb.Fatal(err)
		}
		bb.SetBytes(4 * rows * cols)
		bb.ResetTimer()
		for bb.Loop() {
			if err := b.Fill(dst, 1); err != nil {
				bb.Fatal(err)
			}
		}
		sec := bb.Elapsed().Seconds() / float64(bb.N)
		bb.ReportMetric(4*rows*cols/sec/1e9, "GB/s")
		bb.ReportMetric(sec*1e9/(rows*cols), "ns/elem")
	})
	for _, tc := range []struct {
		name   string
		double bool
		tile   int
	}{
		{"nf4", false, rows},
		{"nf4-double", true, rows},
		{"nf4-tile256", false, 256},
		{"nf4-tile16", false, 16},
	} {
		bb.Run(tc.name, func(bb *testing.B) {
			w, err := quant.Quantize(b, x, backend.QuantNF4, quant.Options{DoubleQuant: tc.double})
			if err != nil {
				bb.Fatal(err)
			}
			dst, _ := b.Alloc(tensor.F32, tc.tile, cols)
			if err := b.Dequantize(dst, w, 0); err != nil { // fault the pages in
				bb.Fatal(err)
			}
			bb.SetBytes(4 * rows * cols)
			bb.ResetTimer()
			for bb.Loop() {
				for r0 := 0; r0 < rows; r0 += tc.tile {
					if err := b.Dequantize(dst, w, r0); err != nil {
						bb.Fatal(err)
					}
				}
			}
			sec := bb.Elapsed().Seconds() / float64(bb.N)
			bb.ReportMetric(4*rows*cols/sec/1e9, "GB/s")
			bb.ReportMetric(sec*1e9/(rows*cols), "ns/elem")
		})
	}
}
