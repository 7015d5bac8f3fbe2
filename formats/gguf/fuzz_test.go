package gguf

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the FuzzOpen seed corpus in testdata/fuzz/FuzzOpen")

// fuzzSeeds are small valid files covering every metadata type, both
// versions, several alignments and tensor types: the committed seed
// corpus of FuzzOpen.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	q := func(name string, typ GGMLType, shape ...int) TensorData {
		n := 1
		for _, s := range shape {
			n *= s
		}
		data := make([]byte, n/typ.BlockSize()*typ.TypeSize())
		for i := range data {
			data[i] = byte(i*7 + 3)
		}
		if typ == TypeF32 || typ == TypeF16 || typ == TypeBF16 {
			for i := range data {
				data[i] &= 0x3f // finite values
			}
		}
		return TensorData{Name: name, Type: typ, Shape: shape, Data: data}
	}
	tensors := []TensorData{q("token_embd.weight", TypeF32, 4, 2), q("blk.0.attn_q.weight", TypeQ8_0, 2, 32), q("blk.0.ffn_up.weight", TypeQ4_0, 1, 32)}
	return map[string][]byte{
		"v2_all_types": mustWrite(tb, 2, allValueKVs(), tensors),
		"v3_all_types": mustWrite(tb, 3, allValueKVs(), tensors),
		"v3_align8_kquants": mustWrite(tb, 3, []KV{kv("general.alignment", uint32(8)), kv("general.architecture", "llama")}, []TensorData{
			q("k4", TypeQ4_K, 256), q("k6", TypeQ6_K, 1, 256), q("h", TypeF16, 3), q("b", TypeBF16, 2, 1), q("scalar", TypeF32), q("empty", TypeF32, 0, 5),
			q("q5", TypeQ5_0, 32), q("q41", TypeQ4_1, 32), q("iq", TypeIQ4_NL, 32),
		}),
		"v3_empty": mustWrite(tb, 3, nil, nil),
	}
}

// TestFuzzSeeds checks the committed seed corpus is what fuzzSeeds makes
// (run with -update-seeds to rewrite it) and that every seed parses.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for name, data := range fuzzSeeds(t) {
		if _, err := Parse(name, data); err != nil {
			t.Errorf("seed %s: %v", name, err)
		}
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		path := filepath.Join(dir, name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or out of date (%v): run go test -run TestFuzzSeeds -update-seeds ./formats/gguf/", path, err)
		}
	}
}

// FuzzOpen parses arbitrary bytes. A file that parses must be usable
// throughout, and writing it back out must give a file that parses to the
// same thing.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gguf fuzz: ") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		exercise(t, g)

		var buf bytes.Buffer
		if err := Write(&buf, g.Version(), g.Metadata(), tensorData(t, g)); err != nil {
			t.Fatalf("writing back a parsed file: %v", err)
		}
		g2, err := Parse("rewritten", buf.Bytes())
		if err != nil {
			t.Fatalf("parsing a rewritten file: %v", err)
		}
		m1, m2 := g.Metadata(), g2.Metadata()
		if len(m1) != len(m2) || len(g.Tensors()) != len(g2.Tensors()) {
			t.Fatalf("rewritten file has %d pairs and %d tensors, want %d and %d", len(m2), len(g2.Tensors()), len(m1), len(g.Tensors()))
		}
		for i := range m1 {
			if m1[i].Key != m2[i].Key || m1[i].Value.Type() != m2[i].Value.Type() || m1[i].Value.String() != m2[i].Value.String() {
				t.Fatalf("pair %d: %q %v became %q %v", i, m1[i].Key, m1[i].Value, m2[i].Key, m2[i].Value)
			}
		}
		var buf2 bytes.Buffer
		if err := Write(&buf2, g2.Version(), g2.Metadata(), tensorData(t, g2)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("writing the rewritten file gave different bytes")
		}
	})
}

// exercise calls every accessor on a parsed file and checks what it can.
func exercise(t *testing.T, g *File) {
	for _, kv := range g.Metadata() {
		v := kv.Value
		_ = v.String()
		if v.Type() == TypeArray && v.Len() > 0 {
			_ = v.Index(v.Len() - 1)
		}
		_, _ = g.String(kv.Key)
		_, _ = g.Uint(kv.Key)
		_, _ = g.Int(kv.Key)
		_, _ = g.Float(kv.Key)
		_, _ = g.Strings(kv.Key)
		_, _ = g.Ints(kv.Key)
	}
	for _, ti := range g.Tensors() {
		if len(ti.Shape) != len(ti.Dims) {
			t.Fatalf("%s: shape %v, dims %v", ti.Name, ti.Shape, ti.Dims)
		}
		for j, s := range ti.Shape {
			if uint64(s) != ti.Dims[len(ti.Dims)-1-j] {
				t.Fatalf("%s: shape %v is not dims %v reversed", ti.Name, ti.Shape, ti.Dims)
			}
		}
		raw, err := g.Raw(ti.Name)
		if err != nil || len(raw) != ti.Size {
			t.Fatalf("Raw(%q): %d bytes, %v; want %d", ti.Name, len(raw), err, ti.Size)
		}
		x, err := g.Float32(ti.Name)
		if ti.Type.CanDequantize() != (err == nil) || (err == nil && len(x) != ti.Elements) {
			t.Fatalf("Float32(%q) of %v: %d values, %v; want %d", ti.Name, ti.Type, len(x), err, ti.Elements)
		}
	}
}

// tensorData returns g's tensors for Write.
func tensorData(t *testing.T, g *File) []TensorData {
	var out []TensorData
	for _, ti := range g.Tensors() {
		raw, err := g.Raw(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, TensorData{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: raw})
	}
	return out
}
