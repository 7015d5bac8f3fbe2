package quant

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/tensor"
)

// randWeight returns a rows x cols F32 weight with rows of different scales,
// and its values.
func randWeight(t testing.TB, b backend.Backend, rows, cols int, seed uint64) (*tensor.Tensor, []float32) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, rows*cols)
	for i := range rows {
		s := math.Exp(r.NormFloat64()) * 0.02
		for j := range cols {
			v[i*cols+j] = float32(r.NormFloat64() * s)
		}
	}
	x, err := backend.FromFloat32(b, v, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	return x, v
}

// maxHalfGap is half the largest distance between adjacent values of a
// code table: the worst rounding error, in units of absmax.
func maxHalfGap(code []float32) float64 {
	c := slices.Clone(code)
	slices.Sort(c)
	g := 0.0
	for i := 1; i < len(c); i++ {
		g = max(g, float64(c[i]-c[i-1]))
	}
	return g / 2
}

// blockAbsmax returns the scales a 4-bit weight uses (dequantising its
// double-quantised absmax when it has one).
func blockAbsmax(t *testing.T, b backend.Backend, w *backend.QuantWeight) []float32 {
	t.Helper()
	if w.QAbsmax == nil {
		return hostF32(t, b, w.Absmax)
	}
	q := hostBytesT(t, b, w.QAbsmax)
	na := hostF32(t, b, w.NestedAbsmax)
	nc := hostF32(t, b, w.NestedCode)
	out := make([]float32, len(q))
	for i, c := range q {
		out[i] = float32(nc[c]*na[i/w.NestedBlockSize]) + float32(w.Offset)
	}
	return out
}

func TestErrorBound4Bit(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		kind       backend.QuantKind
		rows, cols int
		block      int
		double     bool
	}{
		{backend.QuantNF4, 64, 64, 64, false},
		{backend.QuantNF4, 33, 77, 64, false}, // odd element count
		{backend.QuantNF4, 33, 77, 128, true},
		{backend.QuantFP4, 17, 129, 64, false},
		{backend.QuantFP4, 40, 300, 128, true}, // more than 256 blocks: 2 nested blocks
		{backend.QuantNF4, 1, 1, 64, false},
		{backend.QuantNF4, 128, 257, 4096, true},
		{backend.QuantFP4, 5, 3, 32, true},
	} {
		name := fmt.Sprintf("%v/%dx%d/b%d/double=%v", tc.kind, tc.rows, tc.cols, tc.block, tc.double)
		t.Run(name, func(t *testing.T) {
			x, v := randWeight(t, b, tc.rows, tc.cols, uint64(tc.rows*1000+tc.cols))
			w, err := Quantize(b, x, tc.kind, Options{BlockSize: tc.block, DoubleQuant: tc.double})
			if err != nil {
				t.Fatal(err)
			}
			d, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			got := hostF32(t, b, d)
			code := hostF32(t, b, w.Code)
			half := maxHalfGap(code)
			used := blockAbsmax(t, b, w)
			for k := range used {
				lo, hi := k*tc.block, min(len(v), (k+1)*tc.block)
				am := 0.0
				for _, e := range v[lo:hi] {
					am = max(am, math.Abs(float64(e)))
				}
				// The block's own rounding, plus the error in its scale.
				bound := am*half*(1+1e-6) + math.Abs(am-float64(used[k])) + 1e-12
				if !tc.double && float64(used[k]) != am {
					t.Fatalf("block %d: absmax %v, want %v", k, used[k], am)
				}
				for i := lo; i < hi; i++ {
					if e := math.Abs(float64(got[i] - v[i])); e > bound {
						t.Fatalf("element %d (block %d): %v -> %v, error %g > bound %g", i, k, v[i], got[i], e, bound)
					}
				}
			}
		})
	}
}

func TestErrorBoundInt8(t *testing.T) {
	b := testBackend(t)
	for _, threshold := range []float64{0, 0.05} {
		t.Run(fmt.Sprint("threshold=", threshold), func(t *testing.T) {
			x, v := randWeight(t, b, 23, 45, 3)
			w, err := Quantize(b, x, backend.QuantInt8, Options{OutlierThreshold: threshold})
			if err != nil {
				t.Fatal(err)
			}
			if (threshold > 0) != (w.OutlierCols != nil) {
				t.Fatalf("outlier columns %v with threshold %v", w.OutlierCols, threshold)
			}
			d, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			got := hostF32(t, b, d)
			scb := hostF32(t, b, w.Absmax)
			for i := range v {
				bound := float64(scb[i/45])/127*0.5*(1+1e-5) + 1e-12
				if e := math.Abs(float64(got[i] - v[i])); e > bound {
					t.Fatalf("element %d: %v -> %v, error %g > %g", i, v[i], got[i], e, bound)
				}
			}
		})
	}
}

func TestZeroBlock(t *testing.T) {
	b := testBackend(t)
	for _, kind := range []backend.QuantKind{backend.QuantNF4, backend.QuantFP4, backend.QuantInt8} {
		t.Run(kind.String(), func(t *testing.T) {
			x, err := backend.FromFloat32(b, make([]float32, 2*64), 2, 64)
			if err != nil {
				t.Fatal(err)
			}
			w, err := Quantize(b, x, kind, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range hostF32(t, b, d) {
				if v != 0 {
					t.Fatalf("element %d = %v, want 0", i, v)
				}
			}
		})
	}
}

func TestQuantizeDTypes(t *testing.T) {
	// BF16 and F16 weights quantise as their float32 values do.
	b := testBackend(t)
	x, _ := randWeight(t, b, 9, 50, 11)
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		for _, kind := range []backend.QuantKind{backend.QuantNF4, backend.QuantFP4, backend.QuantInt8} {
			t.Run(dt.String()+"/"+kind.String(), func(t *testing.T) {
				h, _ := b.Alloc(dt, 9, 50)
				if err := b.Convert(h, x); err != nil {
					t.Fatal(err)
				}
				f, _ := b.Alloc(tensor.F32, 9, 50)
				if err := b.Convert(f, h); err != nil {
					t.Fatal(err)
				}
				wh, err := Quantize(b, h, kind, Options{})
				if err != nil {
					t.Fatal(err)
				}
				wf, err := Quantize(b, f, kind, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if wh.OrigDType != dt {
					t.Errorf("OrigDType %v, want %v", wh.OrigDType, dt)
				}
				sameBytes(t, "codes", hostBytesT(t, b, wh.Codes), hostBytesT(t, b, wf.Codes))
				sameBits(t, "absmax", hostF32(t, b, wh.Absmax), hostF32(t, b, wf.Absmax))
			})
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	b := testBackend(t)
	x, _ := randWeight(t, b, 4, 8, 1)
	flat, _ := backend.FromFloat32(b, make([]float32, 8), 8)
	ints, _ := b.Alloc(tensor.I32, 2, 4)
	for _, tc := range []struct {
		name string
		x    *tensor.Tensor
		kind backend.QuantKind
		opt  Options
		want string
	}{
		{"nil", nil, backend.QuantNF4, Options{}, "missing weight"},
		{"1-D", flat, backend.QuantNF4, Options{}, "2-D"},
		{"i32", ints, backend.QuantNF4, Options{}, "want f32, bf16 or f16"},
		{"block 48", x, backend.QuantNF4, Options{BlockSize: 48}, "block size 48"},
		{"block 8192", x, backend.QuantFP4, Options{BlockSize: 8192}, "block size 8192"},
		{"block 16", x, backend.QuantFP4, Options{BlockSize: 16}, "block size 16"},
		{"threshold", x, backend.QuantInt8, Options{OutlierThreshold: -1}, "outlier threshold"},
		{"kind", x, backend.QuantNone, Options{}, "unsupported format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Quantize(b, tc.x, tc.kind, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want backend.QuantKind
		ok   bool
	}{
		{"nf4", backend.QuantNF4, true}, {"NF4", backend.QuantNF4, true}, {"fp4", backend.QuantFP4, true},
		{"int8", backend.QuantInt8, true}, {"int4", backend.QuantNone, false}, {"", backend.QuantNone, false},
	} {
		got, err := ParseKind(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseKind(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestPyFloat(t *testing.T) {
	// Python's repr of the same values.
	for _, tc := range []struct {
		x    float64
		want string
	}{
		{0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {1, "1.0"}, {6, "6.0"}, {-2.5, "-2.5"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {1.5e-7, "1.5e-07"}, {0.1, "0.1"},
		{1e15, "1000000000000000.0"}, {1e16, "1e+16"}, {123456789012345680, "1.2345678901234568e+17"},
		{float64(float32(0.07826626)), "0.07826626300811768"}, {math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
	} {
		if got := pyFloat(tc.x); got != tc.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tc.x, got, tc.want)
		}
	}
}

func TestCompanionOf(t *testing.T) {
	const w = "model.layers.0.self_attn.q_proj.weight"
	for _, tc := range []struct {
		key  string
		want string
		ok   bool
	}{
		{w + ".absmax", w, true},
		{w + ".quant_map", w, true},
		{w + ".nested_absmax", w, true},
		{w + ".nested_quant_map", w, true},
		{w + ".quant_state.bitsandbytes__nf4", w, true},
		{w + ".quant_state.bitsandbytes__fp4", w, true},
		{"model.layers.0.self_attn.q_proj.SCB", w, true},
		{"model.layers.0.self_attn.q_proj.weight_format", w, true},
		{w, "", false},
		{"model.norm.weight", "", false},
		{"lm_head.weight", "", false},
		{"model.layers.0.mlp.xSCB", "", false},
	} {
		got, ok := CompanionOf(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CompanionOf(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

type keySpec struct {
	dt    safetensors.Dtype
	shape []int
}

func TestEncodeLayout(t *testing.T) {
	b := testBackend(t)
	const name = "model.layers.0.self_attn.q_proj.weight"
	const prefix = "model.layers.0.self_attn.q_proj."
	x, _ := randWeight(t, b, 61, 317, 5) // 19337 elements: 303 blocks of 64, 2 nested blocks
	xb, _ := b.Alloc(tensor.BF16, 61, 317)
	if err := b.Convert(xb, x); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		x     *tensor.Tensor
		kind  backend.QuantKind
		opt   Options
		keys  map[string]keySpec
		state string // the quant state JSON up to nested_offset's value
	}{
		{"nf4", x, backend.QuantNF4, Options{}, map[string]keySpec{
			name:                                    {safetensors.U8, []int{9669, 1}},
			name + ".absmax":                        {safetensors.F32, []int{303}},
			name + ".quant_map":                     {safetensors.F32, []int{16}},
			name + ".quant_state.bitsandbytes__nf4": {safetensors.U8, nil},
		}, `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [61, 317]}`},
		{"fp4 double bf16", xb, backend.QuantFP4, Options{DoubleQuant: true, BlockSize: 128}, map[string]keySpec{
			name:                                    {safetensors.U8, []int{9669, 1}},
			name + ".absmax":                        {safetensors.U8, []int{152}},
			name + ".quant_map":                     {safetensors.F32, []int{16}},
			name + ".nested_absmax":                 {safetensors.F32, []int{1}},
			name + ".nested_quant_map":              {safetensors.F32, []int{256}},
			name + ".quant_state.bitsandbytes__fp4": {safetensors.U8, nil},
		}, `{"quant_type": "fp4", "blocksize": 128, "dtype": "bfloat16", "shape": [61, 317], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": `},
		{"nf4 double", x, backend.QuantNF4, Options{DoubleQuant: true}, map[string]keySpec{
			name:                                    {safetensors.U8, []int{9669, 1}},
			name + ".absmax":                        {safetensors.U8, []int{303}},
			name + ".quant_map":                     {safetensors.F32, []int{16}},
			name + ".nested_absmax":                 {safetensors.F32, []int{2}},
			name + ".nested_quant_map":              {safetensors.F32, []int{256}},
			name + ".quant_state.bitsandbytes__nf4": {safetensors.U8, nil},
		}, `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [61, 317], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": `},
		{"int8", x, backend.QuantInt8, Options{}, map[string]keySpec{
			name:                     {safetensors.I8, []int{61, 317}},
			prefix + "SCB":           {safetensors.F32, []int{61}},
			prefix + "weight_format": {safetensors.U8, []int{}},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Quantize(b, tc.x, tc.kind, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := Encode(name, w, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != len(tc.keys) {
				t.Errorf("%d tensors, want %d", len(ts), len(tc.keys))
			}
			for _, st := range ts {
				spec, ok := tc.keys[st.Name]
				if !ok {
					t.Errorf("unexpected tensor %s", st.Name)
					continue
				}
				if st.DType != spec.dt || (spec.shape != nil && !slices.Equal(st.Shape, spec.shape)) {
					t.Errorf("%s: %v %v, want %v %v", st.Name, st.DType, st.Shape, spec.dt, spec.shape)
				}
				if strings.Contains(st.Name, "quant_state") {
					js := string(st.Data)
					if !strings.HasPrefix(js, tc.state) {
						t.Errorf("quant state %s, want it to start %s", js, tc.state)
					}
					if tc.opt.DoubleQuant {
						var m map[string]any
						if err := json.Unmarshal(st.Data, &m); err != nil {
							t.Fatal(err)
						}
						if off := m["nested_offset"].(float64); float32(off) != float32(w.Offset) || pyFloat(off) != js[len(tc.state):len(js)-1] {
							t.Errorf("nested_offset in %s, want %v", js, w.Offset)
						}
					}
					if !slices.Equal(st.Shape, []int{len(st.Data)}) {
						t.Errorf("quant state shape %v for %d bytes", st.Shape, len(st.Data))
					}
				}
				if st.Name == prefix+"weight_format" && (len(st.Data) != 1 || st.Data[0] != 0) {
					t.Errorf("weight_format %v, want one byte 0", st.Data)
				}
			}
		})
	}
}

// TestRoundTripFile writes quantised weights with safetensors.Write, reads
// them back with Decode and checks every tensor and the dequantised values.
func TestRoundTripFile(t *testing.T) {
	b := testBackend(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		kind       backend.QuantKind
		rows, cols int
		opt        Options
	}{
		{backend.QuantNF4, 24, 64, Options{}},
		{backend.QuantNF4, 33, 77, Options{BlockSize: 128, DoubleQuant: true}},
		{backend.QuantFP4, 17, 129, Options{DoubleQuant: true}},
		{backend.QuantFP4, 3, 5, Options{BlockSize: 64}},
		{backend.QuantInt8, 19, 31, Options{}},
		{backend.QuantNF4, 0, 16, Options{}},
	} {
		name := fmt.Sprintf("%v-%dx%d-%d-%v", tc.kind, tc.rows, tc.cols, tc.opt.BlockSize, tc.opt.DoubleQuant)
		t.Run(name, func(t *testing.T) {
			x, _ := randWeight(t, b, tc.rows, tc.cols, 9)
			w, err := Quantize(b, x, tc.kind, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			const key = "model.layers.1.mlp.down_proj.weight"
			ts, err := Encode(key, w, b)
			if err != nil {
				t.Fatal(err)
			}
			other := safetensors.Tensor{Name: "model.norm.weight", DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}
			path := filepath.Join(dir, name+".safetensors")
			if err := safetensors.Write(path, append(ts, other), nil); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			get := FileGetter(f)
			r, ok, err := Decode(b, key, get)
			if err != nil || !ok {
				t.Fatalf("Decode: %v, %v", ok, err)
			}
			if r.Kind != w.Kind || r.Rows != w.Rows || r.Cols != w.Cols || r.BlockSize != w.BlockSize ||
				r.NestedBlockSize != w.NestedBlockSize || float32(r.Offset) != float32(w.Offset) {
				t.Errorf("decoded %+v, want %+v", r, w)
			}
			if tc.kind != backend.QuantInt8 && r.OrigDType != w.OrigDType {
				t.Errorf("OrigDType %v, want %v", r.OrigDType, w.OrigDType)
			}
			for _, p := range [][2]*tensor.Tensor{{r.Codes, w.Codes}, {r.Code, w.Code}, {r.Absmax, w.Absmax},
				{r.QAbsmax, w.QAbsmax}, {r.NestedAbsmax, w.NestedAbsmax}, {r.NestedCode, w.NestedCode}} {
				if (p[0] == nil) != (p[1] == nil) {
					t.Fatalf("decoded tensor %v, want %v", p[0], p[1])
				}
				if p[0] != nil {
					sameBytes(t, p[1].String(), hostBytesT(t, b, p[0]), hostBytesT(t, b, p[1]))
				}
			}
			d1, err := Dequantize(b, w)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := Dequantize(b, r)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, "dequantized", hostF32(t, b, d2), hostF32(t, b, d1))
			// A plain weight is not quantised.
			if _, ok, err := Decode(b, "model.norm.weight", get); ok || err != nil {
				t.Errorf("Decode of a plain weight: %v, %v", ok, err)
			}
			if _, ok, err := Decode(b, "missing.weight", get); ok || err != nil {
				t.Errorf("Decode of a missing weight: %v, %v", ok, err)
			}
		})
	}
}

func TestEncodeInt8Outliers(t *testing.T) {
	b := testBackend(t)
	x, _ := randWeight(t, b, 8, 8, 2)
	w, err := Quantize(b, x, backend.QuantInt8, Options{OutlierThreshold: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if w.OutlierCols == nil {
		t.Fatal("no outlier columns")
	}
	if _, err := Encode("a.weight", w, b); err == nil || !strings.Contains(err.Error(), "outlier") {
		t.Fatalf("Encode with outliers: %v", err)
	}
	w2, _ := Quantize(b, x, backend.QuantInt8, Options{})
	if _, err := Encode("a.bias_q", w2, b); err == nil || !strings.Contains(err.Error(), "a.bias_q") {
		t.Fatalf("Encode of an int8 weight not named ...weight: %v", err)
	}
}

// encoded returns the tensors of a small double-quantised NF4 weight and of
// an int8 one, as Encode writes them.
func encoded(t testing.TB, b backend.Backend) (nf4, int8 []safetensors.Tensor) {
	x, _ := randWeight(t, b, 6, 70, 4)
	w, err := Quantize(b, x, backend.QuantNF4, Options{DoubleQuant: true})
	if err != nil {
		t.Fatal(err)
	}
	if nf4, err = Encode("w.weight", w, b); err != nil {
		t.Fatal(err)
	}
	w, err = Quantize(b, x, backend.QuantInt8, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if int8, err = Encode("w.weight", w, b); err != nil {
		t.Fatal(err)
	}
	return nf4, int8
}

// edit returns a copy of ts with the named tensor changed by fn (or removed
// when fn returns false).
func edit(ts []safetensors.Tensor, name string, fn func(*safetensors.Tensor) bool) []safetensors.Tensor {
	var out []safetensors.Tensor
	for _, t := range ts {
		t.Shape = slices.Clone(t.Shape)
		t.Data = slices.Clone(t.Data)
		if t.Name == name && !fn(&t) {
			continue
		}
		out = append(out, t)
	}
	return out
}

func TestDecodeErrors(t *testing.T) {
	b := testBackend(t)
	nf4, i8 := encoded(t, b)
	const qs = "w.weight.quant_state.bitsandbytes__nf4"
	remove := func(*safetensors.Tensor) bool { return false }
	setJSON := func(s string) func(*safetensors.Tensor) bool {
		return func(t *safetensors.Tensor) bool {
			t.Data = []byte(s)
			t.Shape = []int{len(s)}
			return true
		}
	}
	truncate := func(t *safetensors.Tensor) bool {
		t.Data = t.Data[:len(t.Data)-4]
		t.Shape[0]--
		return true
	}
	for _, tc := range []struct {
		name string
		ts   []safetensors.Tensor
		want string
	}{
		{"no quant_map", edit(nf4, "w.weight.quant_map", remove), "w.weight.quant_map is missing"},
		{"no nested_absmax", edit(nf4, "w.weight.nested_absmax", remove), "w.weight.nested_absmax is missing"},
		{"no weight", edit(nf4, "w.weight", remove), "tensor w.weight is missing"},
		{"short quant_map", edit(nf4, "w.weight.quant_map", truncate), "w.weight.quant_map"},
		{"short nested map", edit(nf4, "w.weight.nested_quant_map", truncate), "w.weight.nested_quant_map"},
		{"short codes", edit(nf4, "w.weight", func(t *safetensors.Tensor) bool {
			t.Data = t.Data[:len(t.Data)-1]
			t.Shape[0]--
			return true
		}), "tensor w.weight"},
		{"absmax dtype", edit(nf4, "w.weight.absmax", func(t *safetensors.Tensor) bool { t.DType = safetensors.I8; return true }),
			"w.weight.absmax is I8"},
		{"bad json", edit(nf4, qs, setJSON(`{"quant_type": `)), qs},
		{"wrong type", edit(nf4, qs, setJSON(`{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [6, 70]}`)), "quant_type"},
		{"no blocksize", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "dtype": "float32", "shape": [6, 70]}`)), "blocksize"},
		{"odd blocksize", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 63, "dtype": "float32", "shape": [6, 70]}`)), "blocksize"},
		{"1-D shape", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [420]}`)), "shape"},
		{"negative shape", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [-6, 70]}`)), "shape"},
		{"huge shape", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [4611686018427387904, 4]}`)), "shape"},
		{"wrong shape", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [7, 70], "nested_blocksize": 256, "nested_offset": 0.1}`)), "w.weight"},
		{"dtype", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [6, 70]}`)), "dtype"},
		{"no offset", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70], "nested_blocksize": 256}`)), "nested_offset"},
		{"bad offset", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70], "nested_blocksize": 256, "nested_offset": "x"}`)), "nested_offset"},
		{"nested block 0", edit(nf4, qs, setJSON(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70], "nested_blocksize": 0, "nested_offset": 1}`)), "nested_blocksize"},
		{"absmax without state", edit(nf4, qs, remove), "w.weight.absmax is present"},
		{"both states", append(edit(nf4, "", nil), safetensors.Tensor{Name: "w.weight.quant_state.bitsandbytes__fp4", DType: safetensors.U8, Shape: []int{2}, Data: []byte("{}")}), "both"},
		{"int8 short scb", edit(i8, "w.SCB", truncate), "w.SCB"},
		{"int8 no weight", edit(i8, "w.weight", remove), "tensor w.weight is missing"},
		{"int8 1-D", edit(i8, "w.weight", func(t *safetensors.Tensor) bool { t.Shape = []int{len(t.Data)}; return true }), "w.weight"},
		{"int8 f32", edit(i8, "w.weight", func(t *safetensors.Tensor) bool { t.DType = safetensors.F32; return true }), "w.weight is F32"},
		{"int8 col32", edit(i8, "w.weight_format", func(t *safetensors.Tensor) bool { t.Data[0] = 1; return true }), "col32"},
		{"int8 format shape", edit(i8, "w.weight_format", func(t *safetensors.Tensor) bool { t.Data = []byte{0, 0}; return true }), "w.weight_format"},
		{"int8 without SCB", edit(i8, "w.SCB", remove), "without its scales w.SCB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ok, err := Decode(b, "w.weight", TensorsGetter(tc.ts))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode: %v, want an error containing %q", err, tc.want)
			}
			if !ok || w != nil {
				t.Errorf("Decode: ok %v, weight %v; want true and nil", ok, w)
			}
		})
	}
}

func TestDecodeNonFiniteOffset(t *testing.T) {
	// json.dumps writes NaN and Infinity bare; Decode reads them.
	b := testBackend(t)
	nf4, _ := encoded(t, b)
	const qs = "w.weight.quant_state.bitsandbytes__nf4"
	for _, lit := range []string{"NaN", "Infinity", "-Infinity"} {
		js := `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ` + lit + `}`
		ts := edit(nf4, qs, func(t *safetensors.Tensor) bool { t.Data = []byte(js); t.Shape = []int{len(js)}; return true })
		w, ok, err := Decode(b, "w.weight", TensorsGetter(ts))
		if err != nil || !ok {
			t.Fatalf("%s: %v", lit, err)
		}
		if want, _ := parseOffset(json.RawMessage(`"` + lit + `"`)); pyFloat(w.Offset) != pyFloat(want) {
			t.Errorf("%s: offset %v", lit, w.Offset)
		}
	}
}

func TestQuantizationConfig(t *testing.T) {
	for _, tc := range []struct {
		kind backend.QuantKind
		opt  Options
		want string
	}{
		{backend.QuantNF4, Options{DoubleQuant: true}, `{"_load_in_4bit":true,"_load_in_8bit":false,"bnb_4bit_compute_dtype":"bfloat16","bnb_4bit_quant_storage":"uint8","bnb_4bit_quant_type":"nf4","bnb_4bit_use_double_quant":true,"llm_int8_enable_fp32_cpu_offload":false,"llm_int8_has_fp16_weight":false,"llm_int8_skip_modules":null,"llm_int8_threshold":6.0,"load_in_4bit":true,"load_in_8bit":false,"quant_method":"bitsandbytes"}`},
		{backend.QuantFP4, Options{}, `{"_load_in_4bit":true,"_load_in_8bit":false,"bnb_4bit_compute_dtype":"bfloat16","bnb_4bit_quant_storage":"uint8","bnb_4bit_quant_type":"fp4","bnb_4bit_use_double_quant":false,"llm_int8_enable_fp32_cpu_offload":false,"llm_int8_has_fp16_weight":false,"llm_int8_skip_modules":null,"llm_int8_threshold":6.0,"load_in_4bit":true,"load_in_8bit":false,"quant_method":"bitsandbytes"}`},
		{backend.QuantInt8, Options{DoubleQuant: true}, `{"_load_in_4bit":false,"_load_in_8bit":true,"bnb_4bit_compute_dtype":"bfloat16","bnb_4bit_quant_storage":"uint8","bnb_4bit_quant_type":"fp4","bnb_4bit_use_double_quant":false,"llm_int8_enable_fp32_cpu_offload":false,"llm_int8_has_fp16_weight":false,"llm_int8_skip_modules":null,"llm_int8_threshold":6.0,"load_in_4bit":false,"load_in_8bit":true,"quant_method":"bitsandbytes"}`},
	} {
		m, err := QuantizationConfig(tc.kind, tc.opt, "bfloat16")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(m)
		if string(got) != tc.want {
			t.Errorf("%v: %s\nwant %s", tc.kind, got, tc.want)
		}
	}
	if _, err := QuantizationConfig(backend.QuantNone, Options{}, ""); err == nil {
		t.Error("no error for QuantNone")
	}
}
