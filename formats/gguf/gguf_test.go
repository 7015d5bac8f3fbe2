package gguf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// mustWrite returns the bytes of a GGUF file made by Write.
func mustWrite(tb testing.TB, version uint32, kvs []KV, tensors []TensorData) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, version, kvs, tensors); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func kv(key string, x any) KV { return KV{Key: key, Value: MustValueOf(x)} }

func mustArray(elem ValueType, vals ...Value) Value {
	v, err := Array(elem, vals)
	if err != nil {
		panic(err)
	}
	return v
}

// allValueKVs has a pair of every value type, including arrays of every
// element type, empty arrays and arrays of arrays.
func allValueKVs() []KV {
	return []KV{
		kv("general.architecture", "test"),
		kv("t.uint8", uint8(250)),
		kv("t.int8", int8(-7)),
		kv("t.uint16", uint16(65535)),
		kv("t.int16", int16(-32768)),
		kv("t.uint32", uint32(1<<32-1)),
		kv("t.int32", int32(-1)),
		kv("t.float32", float32(-0.125)),
		kv("t.bool", true),
		kv("t.string", "\u2581Once upon a time"),
		kv("t.empty_string", ""),
		kv("t.uint64", uint64(1<<64-1)),
		kv("t.int64", int64(math.MinInt64)),
		kv("t.float64", 1e-300),
		kv("t.a.uint8", []uint8{1, 2, 3}),
		kv("t.a.int8", []int8{-1, 0, 1}),
		kv("t.a.uint16", []uint16{9}),
		kv("t.a.int16", []int16{-9, 9}),
		kv("t.a.uint32", []uint32{4, 5}),
		kv("t.a.int32", []int32{-4, 5, 6}),
		kv("t.a.float32", []float32{1, 2.5, float32(math.Inf(-1))}),
		kv("t.a.bool", []bool{false, true}),
		kv("t.a.string", []string{"<unk>", "", "\u00fc"}),
		kv("t.a.uint64", []uint64{1 << 40}),
		kv("t.a.int64", []int64{-1 << 40, 3}),
		kv("t.a.float64", []float64{math.Pi}),
		kv("t.a.empty", []string{}),
		{Key: "t.a.nested", Value: mustArray(TypeArray, MustValueOf([]int32{1, 2}), MustValueOf([]string{"x", "y"}), MustValueOf([]bool{}))},
		{Key: "t.a.nested2", Value: mustArray(TypeArray, mustArray(TypeArray, MustValueOf([]float64{0.5})), mustArray(TypeUint8))},
		{Key: "t.a.empty_nested", Value: mustArray(TypeArray)},
	}
}

// TestValueTypesRoundTrip writes a value of every type with Write, in both
// versions, and checks Parse gives them back in order.
func TestValueTypesRoundTrip(t *testing.T) {
	kvs := allValueKVs()
	for _, version := range []uint32{2, 3} {
		f, err := Parse("mem", mustWrite(t, version, kvs, nil))
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if f.Version() != version {
			t.Errorf("Version() = %d, want %d", f.Version(), version)
		}
		got := f.Metadata()
		if len(got) != len(kvs) {
			t.Fatalf("v%d: %d pairs, want %d", version, len(got), len(kvs))
		}
		for i, want := range kvs {
			g := got[i]
			if g.Key != want.Key || g.Value.Type() != want.Value.Type() || g.Value.ElemType() != want.Value.ElemType() ||
				g.Value.Len() != want.Value.Len() || !reflect.DeepEqual(g.Value.Any(), want.Value.Any()) {
				t.Errorf("v%d pair %d: got %s %v %v, want %s %v %v", version, i,
					g.Key, g.Value.Type(), g.Value, want.Key, want.Value.Type(), want.Value)
			}
			if v, ok := f.Get(want.Key); !ok || !reflect.DeepEqual(v, g.Value) {
				t.Errorf("Get(%q) = %v, %v", want.Key, v, ok)
			}
		}
	}
}

// TestIndependentMetadata reads the metadata that testdata/gen_golden.py
// wrote with its own GGUF writer.
func TestIndependentMetadata(t *testing.T) {
	f, err := Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version() != 3 || f.Alignment() != 64 || f.DataOffset()%64 != 0 {
		t.Errorf("version %d, alignment %d, data at %d", f.Version(), f.Alignment(), f.DataOffset())
	}
	for _, tc := range []struct {
		key  string
		want Value
	}{
		{"general.architecture", MustValueOf("golden")},
		{"general.alignment", MustValueOf(uint32(64))},
		{"test.uint8", MustValueOf(uint8(200))},
		{"test.int8", MustValueOf(int8(-100))},
		{"test.uint16", MustValueOf(uint16(60000))},
		{"test.int16", MustValueOf(int16(-30000))},
		{"test.uint32", MustValueOf(uint32(4000000000))},
		{"test.int32", MustValueOf(int32(-2000000000))},
		{"test.float32", MustValueOf(float32(1.5))},
		{"test.bool_true", MustValueOf(true)},
		{"test.bool_false", MustValueOf(false)},
		{"test.string", MustValueOf("h\u00e9llo \u2581w\u00f6rld")},
		{"test.empty_string", MustValueOf("")},
		{"test.uint64", MustValueOf(uint64(1<<63 + 5))},
		{"test.int64", MustValueOf(int64(-(1 << 62) - 7))},
		{"test.float64", MustValueOf(math.Pi)},
		{"test.array.uint8", MustValueOf([]uint8{0, 1, 255})},
		{"test.array.int8", MustValueOf([]int8{-128, 0, 127})},
		{"test.array.uint16", MustValueOf([]uint16{0, 65535})},
		{"test.array.int16", MustValueOf([]int16{-32768, 32767})},
		{"test.array.uint32", MustValueOf([]uint32{7, 4294967295})},
		{"test.array.int32", MustValueOf([]int32{-2147483648, 2147483647, 3})},
		{"test.array.float32", MustValueOf([]float32{0.25, -1e-3, 3e38})},
		{"test.array.bool", MustValueOf([]bool{true, false, true})},
		{"test.array.string", MustValueOf([]string{"a", "", "\u00fc\u00df", "<0x0A>"})},
		{"test.array.uint64", MustValueOf([]uint64{0, 1<<64 - 1})},
		{"test.array.int64", MustValueOf([]int64{math.MinInt64, math.MaxInt64})},
		{"test.array.float64", MustValueOf([]float64{math.E, math.Copysign(0, -1)})},
		{"test.array.empty", MustValueOf([]float32{})},
		{"test.array.nested", mustArray(TypeArray, MustValueOf([]int32{1, 2}), MustValueOf([]string{"x"}), MustValueOf([]uint8{}))},
		{"test.array.nested2", mustArray(TypeArray, mustArray(TypeArray, MustValueOf([]int16{-1})))},
	} {
		got, ok := f.Get(tc.key)
		if !ok {
			t.Errorf("%s: missing", tc.key)
			continue
		}
		// String shows the sign of zeros, which DeepEqual does not see.
		if !reflect.DeepEqual(got, tc.want) || got.String() != tc.want.String() {
			t.Errorf("%s: got %v %v, want %v %v", tc.key, got.Type(), got, tc.want.Type(), tc.want)
		}
	}
	if n := len(f.Metadata()); n != 31 {
		t.Errorf("%d metadata pairs, want 31", n)
	}
}

// TestAccessors checks the typed accessors, including their errors for a
// missing key or a value of another type.
func TestAccessors(t *testing.T) {
	f, err := Parse("acc.gguf", mustWrite(t, 3, []KV{
		kv("s", "hello"),
		kv("u8", uint8(200)),
		kv("u32", uint32(7)),
		kv("i32", int32(-5)),
		kv("i64", int64(1<<40)),
		kv("u64", uint64(1<<63)),
		kv("f32", float32(1e-5)),
		kv("f64", 10000.0),
		kv("b", true),
		kv("strs", []string{"a", "b"}),
		kv("f32s", []float32{1, 2, 3}),
		kv("i32s", []int32{-1, 2}),
		kv("u32s", []uint32{3, 4}),
		kv("u16s", []uint16{5, 6}),
		kv("u64s", []uint64{1, 1 << 63}),
		kv("bools", []bool{true}),
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		v   any
		err error
	}
	r := func(v any, err error) result { return result{v, err} }
	for _, tc := range []struct {
		name    string
		got     result
		want    any
		wantErr string
	}{
		{"String", r(f.String("s")), "hello", ""},
		{"String wrong type", r(f.String("u32")), nil, `metadata key "u32" is UINT32, not STRING`},
		{"String missing", r(f.String("nope")), nil, `metadata key "nope": not found`},
		{"Uint u8", r(f.Uint("u8")), uint64(200), ""},
		{"Uint i64", r(f.Uint("i64")), uint64(1 << 40), ""},
		{"Uint u64", r(f.Uint("u64")), uint64(1 << 63), ""},
		{"Uint negative", r(f.Uint("i32")), nil, `metadata key "i32" is INT32 -5, want a non-negative integer`},
		{"Uint float", r(f.Uint("f32")), nil, `metadata key "f32" is FLOAT32, not an integer`},
		{"Int i32", r(f.Int("i32")), int64(-5), ""},
		{"Int u32", r(f.Int("u32")), int64(7), ""},
		{"Int too large", r(f.Int("u64")), nil, `metadata key "u64" is UINT64 9223372036854775808, too large for an int64`},
		{"Int string", r(f.Int("s")), nil, `metadata key "s" is STRING, not an integer`},
		{"Float f32", r(f.Float("f32")), float64(float32(1e-5)), ""},
		{"Float f64", r(f.Float("f64")), 10000.0, ""},
		{"Float int", r(f.Float("u32")), nil, `metadata key "u32" is UINT32, not FLOAT32 or FLOAT64`},
		{"Bool", r(f.Bool("b")), true, ""},
		{"Bool wrong type", r(f.Bool("u8")), nil, `metadata key "u8" is UINT8, not BOOL`},
		{"Strings", r(f.Strings("strs")), []string{"a", "b"}, ""},
		{"Strings wrong elem", r(f.Strings("f32s")), nil, `metadata key "f32s" is ARRAY of 3 FLOAT32, not ARRAY of STRING`},
		{"Strings scalar", r(f.Strings("s")), nil, `metadata key "s" is STRING, not ARRAY of STRING`},
		{"Float32s", r(f.Float32s("f32s")), []float32{1, 2, 3}, ""},
		{"Int32s", r(f.Int32s("i32s")), []int32{-1, 2}, ""},
		{"Int32s wrong elem", r(f.Int32s("u32s")), nil, `metadata key "u32s" is ARRAY of 2 UINT32, not ARRAY of INT32`},
		{"Uint32s", r(f.Uint32s("u32s")), []uint32{3, 4}, ""},
		{"Ints u16", r(f.Ints("u16s")), []int64{5, 6}, ""},
		{"Ints i32", r(f.Ints("i32s")), []int64{-1, 2}, ""},
		{"Ints too large", r(f.Ints("u64s")), nil, `metadata key "u64s": element 1 is 9223372036854775808, too large for an int64`},
		{"Ints bools", r(f.Ints("bools")), nil, `metadata key "bools" is ARRAY of 1 BOOL, not an ARRAY of integers`},
		{"Ints missing", r(f.Ints("nope")), nil, "not found"},
	} {
		if tc.wantErr != "" {
			if tc.got.err == nil || !strings.Contains(tc.got.err.Error(), tc.wantErr) || !strings.Contains(tc.got.err.Error(), "acc.gguf") {
				t.Errorf("%s: got %v, %v; want an error containing %q and the file name", tc.name, tc.got.v, tc.got.err, tc.wantErr)
			}
			continue
		}
		if tc.got.err != nil || !reflect.DeepEqual(tc.got.v, tc.want) {
			t.Errorf("%s: got %v (%T), %v; want %v (%T)", tc.name, tc.got.v, tc.got.v, tc.got.err, tc.want, tc.want)
		}
	}
	if _, err := f.String("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v does not wrap ErrNotFound", err)
	}
	// The slices returned are copies.
	s, _ := f.Strings("strs")
	s[0] = "changed"
	if s2, _ := f.Strings("strs"); s2[0] != "a" {
		t.Errorf("Strings returned the file's own slice")
	}
}

// TestValueAccessors checks Value's own accessors, Index and String.
func TestValueAccessors(t *testing.T) {
	for _, tc := range []struct {
		v           Value
		uint        uint64
		isUint      bool
		int         int64
		isInt       bool
		str         string
		elemAt1     string
		wantLen     int
		wantElemTyp ValueType
	}{
		{v: MustValueOf(uint8(3)), uint: 3, isUint: true, int: 3, isInt: true, str: "3"},
		{v: MustValueOf(int16(-3)), int: -3, isInt: true, str: "-3"},
		{v: MustValueOf(uint64(math.MaxUint64)), uint: math.MaxUint64, isUint: true, str: "18446744073709551615"},
		{v: MustValueOf(float32(0.1)), str: "0.1"},
		{v: MustValueOf("a\"b"), str: `"a\"b"`},
		{v: MustValueOf(false), str: "false"},
		{v: MustValueOf([]string{"x", "y"}), str: `[2]STRING{"x", "y"}`, elemAt1: `"y"`, wantLen: 2, wantElemTyp: TypeString},
		{v: MustValueOf(make([]int32, 10)), str: "[10]INT32{0, 0, 0, 0, 0, 0, 0, 0, ...}", elemAt1: "0", wantLen: 10, wantElemTyp: TypeInt32},
		{v: mustArray(TypeArray, MustValueOf([]uint8{1}), MustValueOf([]bool{true})), str: "[2]ARRAY{[1]UINT8{1}, [1]BOOL{true}}", elemAt1: "[1]BOOL{true}", wantLen: 2, wantElemTyp: TypeArray},
	} {
		u, okU := tc.v.AsUint()
		i, okI := tc.v.AsInt()
		if u != tc.uint || okU != tc.isUint || i != tc.int || okI != tc.isInt {
			t.Errorf("%v: AsUint %d %v, AsInt %d %v", tc.v, u, okU, i, okI)
		}
		if got := tc.v.String(); got != tc.str {
			t.Errorf("String() = %s, want %s", got, tc.str)
		}
		if tc.v.Len() != tc.wantLen {
			t.Errorf("%v: Len %d, want %d", tc.v, tc.v.Len(), tc.wantLen)
		}
		if tc.wantLen > 0 {
			if tc.v.ElemType() != tc.wantElemTyp || tc.v.Index(1).String() != tc.elemAt1 || tc.v.Index(1).Type() != tc.wantElemTyp {
				t.Errorf("%v: ElemType %v, Index(1) %v", tc.v, tc.v.ElemType(), tc.v.Index(1))
			}
		}
	}
	if _, err := ValueOf(3); err == nil || !strings.Contains(err.Error(), "cannot store a int") {
		t.Errorf("ValueOf(int): %v", err)
	}
	if _, err := ValueOf([]Value{}); err == nil {
		t.Error("ValueOf(empty []Value): no error")
	}
	if _, err := Array(TypeString, []Value{MustValueOf("a"), MustValueOf(uint8(1))}); err == nil || !strings.Contains(err.Error(), "element 1 is UINT8, not STRING") {
		t.Errorf("mixed Array: %v", err)
	}
	if _, err := Array(ValueType(13), nil); err == nil {
		t.Error("Array of type 13: no error")
	}
}

// TestGGMLTypes checks names and block sizes of the ggml types.
func TestGGMLTypes(t *testing.T) {
	for _, tc := range []struct {
		typ                 GGMLType
		name                string
		blockSize, typeSize int
		canDequantize       bool
	}{
		{0, "F32", 1, 4, true},
		{1, "F16", 1, 2, true},
		{2, "Q4_0", 32, 18, true},
		{3, "Q4_1", 32, 20, true},
		{4, "Q4_2", 0, 0, false},
		{6, "Q5_0", 32, 22, true},
		{7, "Q5_1", 32, 24, true},
		{8, "Q8_0", 32, 34, true},
		{9, "Q8_1", 32, 36, true},
		{10, "Q2_K", 256, 84, true},
		{11, "Q3_K", 256, 110, true},
		{12, "Q4_K", 256, 144, true},
		{13, "Q5_K", 256, 176, true},
		{14, "Q6_K", 256, 210, true},
		{15, "Q8_K", 256, 292, true},
		{16, "IQ2_XXS", 256, 66, false},
		{17, "IQ2_XS", 256, 74, false},
		{18, "IQ3_XXS", 256, 98, false},
		{19, "IQ1_S", 256, 50, false},
		{20, "IQ4_NL", 32, 18, false},
		{21, "IQ3_S", 256, 110, false},
		{22, "IQ2_S", 256, 82, false},
		{23, "IQ4_XS", 256, 136, false},
		{24, "I8", 1, 1, false},
		{27, "I64", 1, 8, false},
		{28, "F64", 1, 8, true},
		{29, "IQ1_M", 256, 56, false},
		{30, "BF16", 1, 2, true},
		{31, "Q4_0_4_4", 32, 18, false},
		{34, "TQ1_0", 256, 54, false},
		{35, "TQ2_0", 256, 66, false},
		{39, "MXFP4", 32, 17, false},
		{40, "NVFP4", 64, 36, false},
		{42, "Q2_0", 64, 18, false},
		{43, "GGMLType(43)", 0, 0, false},
		{1 << 31, "GGMLType(2147483648)", 0, 0, false},
	} {
		if tc.typ.String() != tc.name || tc.typ.BlockSize() != tc.blockSize || tc.typ.TypeSize() != tc.typeSize ||
			tc.typ.CanDequantize() != tc.canDequantize || tc.typ.Known() != (tc.blockSize > 0) {
			t.Errorf("type %d: %s %d/%d dequant %v, want %s %d/%d %v", uint32(tc.typ), tc.typ, tc.typ.BlockSize(),
				tc.typ.TypeSize(), tc.typ.CanDequantize(), tc.name, tc.blockSize, tc.typeSize, tc.canDequantize)
		}
	}
	// Every id ggml has used is named, and names are unique.
	seen := map[string]bool{}
	for typ := GGMLType(0); typ <= TypeQ2_0; typ++ {
		name := typ.String()
		if strings.HasPrefix(name, "GGMLType(") || seen[name] {
			t.Errorf("type %d: name %q", uint32(typ), name)
		}
		seen[name] = true
	}
}

// TestTensorLayout checks shapes, offsets, sizes and data of tensors
// written with several alignments.
func TestTensorLayout(t *testing.T) {
	f32s := func(xs ...float32) []byte {
		b := make([]byte, 4*len(xs))
		for i, x := range xs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	tensors := []TensorData{
		{Name: "matrix", Type: TypeF32, Shape: []int{2, 3}, Data: f32s(1, 2, 3, 4, 5, 6)},
		{Name: "vector", Type: TypeF32, Shape: []int{5}, Data: f32s(-1, -2, -3, -4, -5)},
		{Name: "scalar", Type: TypeF32, Shape: []int{}, Data: f32s(42)},
		{Name: "empty", Type: TypeF32, Shape: []int{3, 0}, Data: []byte{}},
		{Name: "q4", Type: TypeQ4_0, Shape: []int{2, 1, 3, 64}, Data: make([]byte, 2*3*2*18)},
		{Name: "q6k", Type: TypeQ6_K, Shape: []int{3, 512}, Data: make([]byte, 3*2*210)},
		{Name: "f16", Type: TypeF16, Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c}},
	}
	wantDims := [][]uint64{{3, 2}, {5}, {}, {0, 3}, {64, 3, 1, 2}, {512, 3}, {3}}
	wantElems := []int{6, 5, 1, 0, 384, 1536, 3}
	for _, alignment := range []uint32{0, 1, 8, 64, 4096} {
		var kvs []KV
		want := 32
		if alignment != 0 {
			kvs = append(kvs, kv("general.alignment", alignment))
			want = int(alignment)
		}
		f, err := Parse("layout", mustWrite(t, 3, kvs, tensors))
		if err != nil {
			t.Fatalf("alignment %d: %v", alignment, err)
		}
		if f.Alignment() != want || f.DataOffset()%uint64(want) != 0 {
			t.Errorf("alignment %d: Alignment() %d, DataOffset() %d", alignment, f.Alignment(), f.DataOffset())
		}
		infos := f.Tensors()
		if len(infos) != len(tensors) {
			t.Fatalf("%d tensors, want %d", len(infos), len(tensors))
		}
		for i, ti := range infos {
			td := tensors[i]
			if ti.Name != td.Name || ti.Type != td.Type || !reflect.DeepEqual(ti.Shape, td.Shape) ||
				!reflect.DeepEqual(ti.Dims, wantDims[i]) || ti.Elements != wantElems[i] || ti.Size != len(td.Data) ||
				ti.Offset%uint64(want) != 0 {
				t.Errorf("alignment %d: tensor %d: got %+v", alignment, i, ti)
			}
			raw, err := f.Raw(td.Name)
			if err != nil || !bytes.Equal(raw, td.Data) {
				t.Errorf("Raw(%q): %v", td.Name, err)
			}
			if info, ok := f.Tensor(td.Name); !ok || !reflect.DeepEqual(info, ti) {
				t.Errorf("Tensor(%q) = %+v, %v", td.Name, info, ok)
			}
		}
		for name, want := range map[string][]float32{
			"matrix": {1, 2, 3, 4, 5, 6}, "scalar": {42}, "empty": {}, "f16": {1, -2, float32(math.Inf(1))},
		} {
			got, err := f.Float32(name)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Float32(%q) = %v, %v; want %v", name, got, err, want)
			}
		}
	}
	f, _ := Parse("layout", mustWrite(t, 3, nil, tensors))
	infos := f.Tensors()
	infos[0].Shape[0] = 99
	if again, _ := f.Tensor("matrix"); again.Shape[0] != 2 {
		t.Error("Tensors returned the file's own Shape slice")
	}
	for _, call := range []func() error{
		func() error { _, err := f.Raw("missing"); return err },
		func() error { _, err := f.Float32("missing"); return err },
	} {
		if err := call(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `tensor "missing"`) {
			t.Errorf("missing tensor: %v", err)
		}
	}
}

// TestOpen checks Open on a file on disk, and that errors name the path.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.gguf")
	data := mustWrite(t, 3, allValueKVs(), []TensorData{{Name: "w", Type: TypeF16, Shape: []int{2}, Data: []byte{0, 0x3c, 0, 0x40}}})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != path || len(f.Metadata()) != len(allValueKVs()) {
		t.Errorf("Name %q, %d pairs", f.Name(), len(f.Metadata()))
	}
	if got, err := f.Float32("w"); err != nil || !reflect.DeepEqual(got, []float32{1, 2}) {
		t.Errorf("Float32: %v, %v", got, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Raw("w"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Raw after Close: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.gguf")); err == nil || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(bad, data[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "metadata_kv_count is 30, but the 16 bytes left") {
		t.Errorf("truncated file: %v", err)
	}
}

// build returns the bytes an encoder function writes: for malformed files.
func build(write func(e *encoder)) []byte {
	var buf bytes.Buffer
	e := &encoder{w: bufio.NewWriter(&buf)}
	write(e)
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		panic(e.err)
	}
	return buf.Bytes()
}

func header(e *encoder, version uint32, nTensors, nKV uint64) {
	e.raw([]byte("GGUF"))
	e.u32(version)
	e.u64(nTensors)
	e.u64(nKV)
}

// withTensor is a file with one tensor info and dataBytes of data.
func withTensor(kvs []KV, name string, dims []uint64, typ GGMLType, offset uint64, dataBytes int) []byte {
	return build(func(e *encoder) {
		header(e, 3, 1, uint64(len(kvs)))
		for _, kv := range kvs {
			e.str(kv.Key)
			e.u32(uint32(kv.Value.Type()))
			e.value(kv.Value)
		}
		e.tensorInfo(name, dims, typ, offset)
		e.pad(32)
		e.raw(make([]byte, dataBytes))
	})
}

// TestBadFiles checks malformed files give an error that says what is
// wrong, without panicking and without allocating more than the file
// could justify.
func TestBadFiles(t *testing.T) {
	oneKV := func(key string, typ uint32, value func(e *encoder)) []byte {
		return build(func(e *encoder) {
			header(e, 3, 0, 1)
			e.str(key)
			e.u32(typ)
			value(e)
		})
	}
	nested := func(depth int) func(e *encoder) {
		return func(e *encoder) {
			for range depth {
				e.u32(uint32(TypeArray))
				e.u64(1)
			}
			e.u32(uint32(TypeUint8))
			e.u64(0)
		}
	}
	valid := mustWrite(t, 3, nil, []TensorData{{Name: "w", Type: TypeF32, Shape: []int{4}, Data: make([]byte, 16)}})
	half := uint64(1) << (bits.UintSize / 2) // each dimension fits an int, their product does not
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, `not a GGUF file: it starts with ""`},
		{"ggml magic", []byte("ggjt\x03\x00\x00\x00"), `not a GGUF file: it starts with "ggjt"`},
		{"v1", build(func(e *encoder) { header(e, 1, 0, 0) }), "GGUF v1 is not supported"},
		{"big-endian", build(func(e *encoder) { e.raw([]byte("GGUF\x00\x00\x00\x03")); e.u64(0); e.u64(0) }), "big-endian GGUF (version 3 byte-swapped) is not supported"},
		{"v0", build(func(e *encoder) { header(e, 0, 0, 0) }), "unsupported GGUF version 0 (want 2 or 3)"},
		{"v4", build(func(e *encoder) { header(e, 4, 0, 0) }), "unsupported GGUF version 4"},
		{"short header", []byte("GGUF\x03\x00\x00\x00\x00\x00"), "header: unexpected end of file at byte 8 reading header (need 16 bytes, 2 left)"},
		{"huge kv count", build(func(e *encoder) { header(e, 3, 0, 1<<62) }), "metadata_kv_count is 4611686018427387904, but the 0 bytes left"},
		{"huge tensor count", build(func(e *encoder) { header(e, 3, 1<<40, 0); e.raw(make([]byte, 100)) }), "tensor_count is 1099511627776, but the 108 bytes left in the file can hold at most 4"},
		{"huge key length", build(func(e *encoder) { header(e, 3, 0, 1); e.u64(1 << 63); e.raw(make([]byte, 20)) }), "metadata pair 0: unexpected end of file at byte 24: key is 9223372036854775808 bytes long, 20 left"},
		{"key truncated", build(func(e *encoder) { header(e, 3, 0, 1); e.u64(50); e.raw(make([]byte, 20)) }), "metadata pair 0: unexpected end of file at byte 24: key is 50 bytes long, 20 left"},
		{"huge string", oneKV("k", 8, func(e *encoder) { e.u64(math.MaxUint64) }), `metadata key "k": unexpected end of file at byte 37: string value is 18446744073709551615 bytes long, 0 left`},
		{"huge array", oneKV("a", 9, func(e *encoder) { e.u32(10); e.u64(1 << 61); e.u64(1) }), `metadata key "a": array of UINT64: array length is 2305843009213693952, but the 8 bytes left in the file can hold at most 1`},
		{"huge string array", oneKV("a", 9, func(e *encoder) { e.u32(8); e.u64(1 << 40) }), "array of STRING: array length is 1099511627776"},
		{"huge nested array", oneKV("a", 9, func(e *encoder) { e.u32(9); e.u64(1 << 40) }), "array of ARRAY: array length is 1099511627776"},
		{"huge inner array", oneKV("a", 9, func(e *encoder) { e.u32(9); e.u64(1); e.u32(4); e.u64(1 << 50) }), "array element [0]: array of UINT32: array length is 1125899906842624"},
		{"string element truncated", oneKV("a", 9, func(e *encoder) { e.u32(8); e.u64(2); e.str("ok"); e.u64(9) }), "array element [1]: unexpected end of file at byte 59: string is 9 bytes long, 0 left"},
		{"bad value type", oneKV("k", 13, func(e *encoder) { e.u64(0) }), `metadata key "k": invalid value type 13 at byte 33 (want 0 to 12)`},
		{"bad array type", oneKV("k", 9, func(e *encoder) { e.u32(99); e.u64(0) }), `metadata key "k": invalid array element type 99`},
		{"bool 2", oneKV("k", 7, func(e *encoder) { e.u8(2) }), `metadata key "k": BOOL value at byte 37 is 2, want 0 or 1`},
		{"bool array 7", oneKV("k", 9, func(e *encoder) { e.u32(7); e.u64(3); e.raw([]byte{0, 1, 7}) }), `metadata key "k": BOOL element 2 at byte 51 is 7, want 0 or 1`},
		{"value truncated", oneKV("k", 11, func(e *encoder) { e.u32(1) }), `metadata key "k": unexpected end of file at byte 37 reading value of type INT64 (need 8 bytes, 4 left)`},
		{"too deep", oneKV("k", 9, nested(maxArrayDepth)), "arrays nested more than 64 deep"},
		{"duplicate key", build(func(e *encoder) {
			header(e, 3, 0, 2)
			e.str("k")
			e.u32(0)
			e.u8(1)
			e.str("k")
			e.u32(0)
			e.u8(2)
		}), `metadata key "k" appears twice (pairs 0 and 1)`},
		{"alignment 48", withTensor([]KV{kv("general.alignment", uint32(48))}, "w", []uint64{1}, TypeF32, 0, 4), `metadata key "general.alignment" is 48, want a power of two from 1 to 1073741824`},
		{"alignment 0", withTensor([]KV{kv("general.alignment", uint32(0))}, "w", []uint64{1}, TypeF32, 0, 4), `"general.alignment" is 0, want a power of two`},
		{"alignment 2^32", withTensor([]KV{kv("general.alignment", uint64(1<<32))}, "w", []uint64{1}, TypeF32, 0, 4), `"general.alignment" is 4294967296, want a power of two`},
		{"alignment string", withTensor([]KV{kv("general.alignment", "32")}, "w", []uint64{1}, TypeF32, 0, 4), `metadata key "general.alignment" is STRING "32", want a UINT32 power of two`},
		{"alignment negative", withTensor([]KV{kv("general.alignment", int32(-32))}, "w", []uint64{1}, TypeF32, 0, 4), `"general.alignment" is INT32 -32, want a UINT32`},
		{"5 dims", withTensor(nil, "w", []uint64{1, 1, 1, 1, 1}, TypeF32, 0, 4), `tensor "w" has 5 dimensions; ggml allows at most 4`},
		{"unknown type", withTensor(nil, "w", []uint64{1}, 99, 0, 4), `tensor "w": unknown ggml type 99`},
		{"removed type", withTensor(nil, "w", []uint64{16}, TypeQ4_2, 0, 64), `tensor "w": type Q4_2 was removed from ggml and its layout is unknown`},
		{"partial block", withTensor(nil, "blk.0.ffn_down.weight", []uint64{16, 2}, TypeQ4_0, 0, 64), `tensor "blk.0.ffn_down.weight": type Q4_0 stores blocks of 32 elements, but its rows (ne[0]) have 16`},
		{"scalar quantised", withTensor(nil, "w", []uint64{}, TypeQ8_0, 0, 64), "type Q8_0 stores blocks of 32 elements, but its rows (ne[0]) have 1"},
		{"misaligned offset", withTensor(nil, "w", []uint64{1}, TypeF32, 8, 64), `tensor "w": offset 8 is not a multiple of the alignment 32`},
		{"past the end", withTensor(nil, "w", []uint64{20}, TypeF32, 0, 64), `tensor "w": its 80 bytes at data offset 0 (file offset 64) run past the end of the 128-byte file`},
		{"offset past the end", withTensor(nil, "w", []uint64{1}, TypeF32, 1<<20, 64), "run past the end"},
		{"offset overflow", withTensor(nil, "w", []uint64{1}, TypeF32, math.MaxUint64-31, 64), "run past the end"},
		{"huge dims", withTensor(nil, "w", []uint64{half, half, half}, TypeF32, 0, 64), fmt.Sprintf("dimensions [%d %d %d] (ne order) hold more than", half, half, half)},
		{"dim too large", withTensor(nil, "w", []uint64{32, 1 << 63}, TypeF32, 0, 64), "dimension 0 (ne[1]) is 9223372036854775808, too large"},
		{"larger than file", withTensor(nil, "w", []uint64{1 << 28}, TypeF32, 0, 64), "F32 [268435456] takes 268435456 blocks of 4 bytes, more than the 128-byte file holds"},
		{"duplicate tensor", build(func(e *encoder) {
			header(e, 3, 2, 0)
			e.tensorInfo("w", []uint64{1}, TypeF32, 0)
			e.tensorInfo("w", []uint64{1}, TypeF32, 32)
			e.pad(32)
			e.raw(make([]byte, 64))
		}), `tensor "w" appears twice (tensors 0 and 1)`},
		{"tensor count after metadata", build(func(e *encoder) { header(e, 3, 2, 1); e.str("k"); e.u32(8); e.str(strings.Repeat("x", 40)) }), "tensor_count is 2, but the 0 bytes after the metadata can hold at most 0 tensor infos"},
		{"tensor info truncated", valid[:54], `tensor "w": unexpected end of file at byte 49 reading offset (need 8 bytes, 5 left)`},
		{"tensor name truncated", build(func(e *encoder) { header(e, 3, 1, 0); e.u64(100); e.raw(make([]byte, 20)) }), "tensor info 0: unexpected end of file at byte 24: name is 100 bytes long, 20 left"},
		{"data truncated", valid[:len(valid)-20], `tensor "w": its 16 bytes at data offset 0 (file offset 64) run past the end of the 76-byte file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f, err := Parse("bad.gguf", tc.data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("no error; got %d pairs, %d tensors", len(f.Metadata()), len(f.Tensors()))
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gguf bad.gguf: ") {
				t.Errorf("got  %v\nwant an error containing %q", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
				t.Errorf("parsing %d bytes allocated %d bytes", len(tc.data), alloc)
			}
		})
	}
}

// TestTruncatedPrefixes parses every prefix of a valid file: each must
// fail cleanly until the last tensor's bytes are all there.
func TestTruncatedPrefixes(t *testing.T) {
	data := mustWrite(t, 3, allValueKVs(), []TensorData{
		{Name: "a", Type: TypeQ8_0, Shape: []int{2, 32}, Data: make([]byte, 68)},
		{Name: "b", Type: TypeF32, Shape: []int{3}, Data: make([]byte, 12)},
	})
	full, err := Parse("full", data)
	if err != nil {
		t.Fatal(err)
	}
	last := full.Tensors()[1]
	end := int(full.DataOffset() + last.Offset + uint64(last.Size))
	for n := range len(data) {
		_, err := Parse("prefix", data[:n])
		if (err == nil) != (n >= end) {
			t.Fatalf("prefix of %d bytes (data ends at %d): %v", n, end, err)
		}
	}
}

// deep returns arrays nested n deep, the innermost an empty UINT8 array.
func deep(n int) Value {
	v := mustArray(TypeUint8)
	for range n - 1 {
		v = mustArray(TypeArray, v)
	}
	return v
}

// TestWriteRejects checks Write refuses what a reader would reject.
func TestWriteRejects(t *testing.T) {
	// The deepest nesting the reader accepts can be written.
	if _, err := Parse("deep", mustWrite(t, 3, []KV{{Key: "deep", Value: deep(maxArrayDepth)}}, nil)); err != nil {
		t.Errorf("arrays nested %d deep: %v", maxArrayDepth, err)
	}
	f32 := func(name string, shape ...int) TensorData {
		n := 1
		for _, s := range shape {
			n *= s
		}
		return TensorData{Name: name, Type: TypeF32, Shape: shape, Data: make([]byte, 4*max(n, 0))}
	}
	for _, tc := range []struct {
		name    string
		version uint32
		kvs     []KV
		tensors []TensorData
		want    string
	}{
		{"version 1", 1, nil, nil, "version 1, want 2 or 3"},
		{"duplicate key", 3, []KV{kv("a", "x"), kv("a", "y")}, nil, `metadata key "a" appears twice`},
		{"zero value", 3, []KV{{Key: "z"}}, nil, `metadata pair 0 ("z") has an invalid Value`},
		{"bad alignment", 3, []KV{kv("general.alignment", uint32(3))}, nil, `"general.alignment" is 3`},
		{"too deep", 3, []KV{{Key: "deep", Value: deep(maxArrayDepth + 1)}}, nil, `metadata key "deep" has arrays nested more than 64 deep`},
		{"duplicate tensor", 3, nil, []TensorData{f32("w", 1), f32("w", 1)}, `tensor "w" appears twice`},
		{"negative dim", 3, nil, []TensorData{{Name: "w", Type: TypeF32, Shape: []int{-1, 2}}}, `tensor "w" has negative dimension in shape [-1 2]`},
		{"too many dims", 3, nil, []TensorData{f32("w", 1, 1, 1, 1, 1)}, "has 5 dimensions"},
		{"wrong size", 3, nil, []TensorData{{Name: "w", Type: TypeF16, Shape: []int{2, 3}, Data: make([]byte, 11)}}, `tensor "w": F16 [2 3] takes 12 bytes, Data has 11`},
		{"partial block", 3, nil, []TensorData{{Name: "w", Type: TypeQ4_K, Shape: []int{128}, Data: make([]byte, 72)}}, "blocks of 256 elements, but its rows (ne[0]) have 128"},
		{"unknown type", 3, nil, []TensorData{{Name: "w", Type: 77, Shape: []int{1}, Data: make([]byte, 1)}}, "unknown ggml type 77"},
	} {
		var buf bytes.Buffer
		err := Write(&buf, tc.version, tc.kvs, tc.tensors)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", tc.name, buf.Len())
		}
	}
}

// TestWriteLayout checks the bytes Write produces for a small file against
// the layout written out by hand.
func TestWriteLayout(t *testing.T) {
	got := mustWrite(t, 2, []KV{kv("k", uint16(0x0102))}, []TensorData{{Name: "t", Type: TypeI8, Shape: []int{2, 3}, Data: []byte{1, 2, 3, 4, 5, 6}}})
	var want []byte
	le := binary.LittleEndian
	want = append(want, "GGUF"...)
	want = le.AppendUint32(want, 2)
	want = le.AppendUint64(want, 1) // tensors
	want = le.AppendUint64(want, 1) // pairs
	want = le.AppendUint64(want, 1)
	want = append(want, 'k')
	want = le.AppendUint32(want, uint32(TypeUint16))
	want = le.AppendUint16(want, 0x0102)
	want = le.AppendUint64(want, 1)
	want = append(want, 't')
	want = le.AppendUint32(want, 2)
	want = le.AppendUint64(want, 3) // ne[0]: the row length
	want = le.AppendUint64(want, 2)
	want = le.AppendUint32(want, uint32(TypeI8))
	want = le.AppendUint64(want, 0) // offset
	want = append(want, make([]byte, 96-len(want))...)
	want = append(want, 1, 2, 3, 4, 5, 6)
	want = append(want, make([]byte, 26)...)
	if !bytes.Equal(got, want) {
		t.Errorf("got  %x\nwant %x", got, want)
	}
}

// TestAllocationBound parses valid files built to expand the most in
// memory (tiny encodings of many values) and checks the memory used stays
// within a small multiple of the file size.
func TestAllocationBound(t *testing.T) {
	const n = 20000
	emptyArrays := make([]Value, n)
	for i := range emptyArrays {
		emptyArrays[i] = MustValueOf([]uint8{})
	}
	manyKVs := make([]KV, n)
	for i := range manyKVs {
		manyKVs[i] = kv(strconv.Itoa(i), true)
	}
	manyTensors := make([]TensorData, n)
	for i := range manyTensors {
		manyTensors[i] = TensorData{Name: strconv.Itoa(i), Type: TypeF32, Shape: []int{0, 0, 0, 0}}
	}
	for _, tc := range []struct {
		name    string
		kvs     []KV
		tensors []TensorData
	}{
		{"empty arrays", []KV{{Key: "a", Value: mustArray(TypeArray, emptyArrays...)}}, nil},
		{"empty strings", []KV{kv("s", make([]string, n))}, nil},
		{"bools", []KV{kv("b", make([]bool, n))}, nil},
		{"pairs", manyKVs, nil},
		{"tensors", nil, manyTensors},
	} {
		data := mustWrite(t, 3, tc.kvs, tc.tensors)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := Parse(tc.name, data); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		ratio := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(data))
		t.Logf("%s: %d bytes, %.1fx allocated", tc.name, len(data), ratio)
		if ratio > 16 {
			t.Errorf("%s: parsing %d bytes allocated %.1f times as much", tc.name, len(data), ratio)
		}
	}
}
