package safetensors

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestWriteGolden compares Write's output with a file derived by hand from
// the format: the reference writer's layout (widest dtype first, so F32
// "a" before F16 "b"), __metadata__ first with sorted keys and "format":
// "pt" added, compact JSON, and spaces up to a multiple of 8 bytes.
func TestWriteGolden(t *testing.T) {
	// The header, counted by hand:
	//   {"__metadata__":{"format":"pt","name":"x"},   43 bytes
	//   "a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},   52 bytes (95)
	//   "b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}  53 bytes (148)
	// 148 bytes, padded with 4 spaces to 152 = 0x98.
	want := []byte("\x98\x00\x00\x00\x00\x00\x00\x00" +
		`{"__metadata__":{"format":"pt","name":"x"},` +
		`"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},` +
		`"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}` +
		"    " +
		"\x00\x00\x00\x3f" + // 0.5 as binary32: 0x3f000000, little-endian
		"\x00\x3c\x00\xc0") // 1 and -2 as binary16: 0x3c00, 0xc000
	p := filepath.Join(t.TempDir(), "golden.safetensors")
	err := Write(p, []Tensor{
		{Name: "b", DType: F16, Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}},
		{Name: "a", DType: F32, Shape: []int{}, Data: []byte{0, 0, 0, 0x3f}},
	}, map[string]string{"name": "x"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Write produced\n%q\nwant\n%q", got, want)
	}

	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if a, err := f.Float32("a"); err != nil || !slices.Equal(a, []float32{0.5}) {
		t.Errorf("a = %v, %v; want [0.5]", a, err)
	}
	if b, err := f.Float32("b"); err != nil || !slices.Equal(b, []float32{1, -2}) {
		t.Errorf("b = %v, %v; want [1 -2]", b, err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Names() = %q, want [a b]", got)
	}
	if md := f.Metadata(); len(md) != 2 || md["format"] != "pt" || md["name"] != "x" {
		t.Errorf("Metadata() = %v", md)
	}
}

// shapeFor returns a shape whose data is a whole number of bytes for d.
func shapeFor(d Dtype, rng *rand.Rand) []int {
	switch d.Bits() {
	case 4:
		return []int{rng.IntN(4) + 1, 2 * (rng.IntN(3) + 1)}
	case 6:
		return []int{4 * (rng.IntN(3) + 1)}
	}
	return []int{rng.IntN(4) + 1, rng.IntN(5) + 1, 2}
}

func randomTensors(rng *rand.Rand, dtypes []Dtype, prefix string) []Tensor {
	var ts []Tensor
	for i, d := range dtypes {
		shape := shapeFor(d, rng)
		n := 1
		for _, s := range shape {
			n *= s
		}
		data := make([]byte, n*d.Bits()/8)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		ts = append(ts, Tensor{Name: prefix + strconv.Itoa(i) + "." + d.String(), DType: d, Shape: shape, Data: data})
	}
	return ts
}

func checkTensorsIn(t *testing.T, f interface {
	Info(string) (TensorInfo, bool)
	Raw(string) ([]byte, error)
}, ts []Tensor) {
	t.Helper()
	for _, want := range ts {
		info, ok := f.Info(want.Name)
		if !ok {
			t.Errorf("tensor %q missing", want.Name)
			continue
		}
		if info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) || info.Size() != int64(len(want.Data)) {
			t.Errorf("tensor %q: got %v %v %d bytes, want %v %v %d bytes", want.Name, info.DType, info.Shape, info.Size(), want.DType, want.Shape, len(want.Data))
		}
		raw, err := f.Raw(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want.Data) {
			t.Errorf("tensor %q: data differs", want.Name)
		}
	}
}

// TestRoundTripEveryDtype writes tensors of every dtype, one file per dtype
// and one file with all of them, and reads them back.
func TestRoundTripEveryDtype(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	all := randomTensors(rng, append(Dtypes(), Dtypes()...), "t")
	sets := [][]Tensor{all, {}}
	for _, d := range Dtypes() {
		sets = append(sets, randomTensors(rng, []Dtype{d}, "only"))
	}
	for i, ts := range sets {
		p := filepath.Join(dir, strconv.Itoa(i)+".safetensors")
		md := map[string]string{"step": strconv.Itoa(i)}
		if err := Write(p, ts, md); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Len() != len(ts) {
			t.Errorf("file %d: %d tensors, want %d", i, f.Len(), len(ts))
		}
		checkTensorsIn(t, f, ts)
		if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["step"] != strconv.Itoa(i) {
			t.Errorf("file %d: metadata %v", i, got)
		}
		if f.DataOffset()%8 != 0 {
			t.Errorf("file %d: data starts at %d, not a multiple of 8", i, f.DataOffset())
		}
		// The reference layout aligns every tensor to its element size.
		for _, info := range f.Tensors() {
			if size := int64(info.DType.Bits() / 8); size > 0 && (f.DataOffset()+info.Begin)%size != 0 {
				t.Errorf("file %d: %s tensor %q at file offset %d, not aligned", i, info.DType, info.Name, f.DataOffset()+info.Begin)
			}
		}
		f.Close()
	}
}

// TestWriteDeterministic checks that the input order does not matter and
// that the layout is by dtype (widest first in the reference's order) then
// name.
func TestWriteDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts := randomTensors(rng, []Dtype{U8, F32, BF16, F32, I64, Bool, F4, BF16}, "n")
	dir := t.TempDir()
	var files [][]byte
	for i := range 3 {
		shuffled := slices.Clone(ts)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := Write(p, shuffled, map[string]string{"z": "1", "a": "2", "m": "3"}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	for i := 1; i < len(files); i++ {
		if !bytes.Equal(files[0], files[i]) {
			t.Fatalf("writing the same tensors in another order gave different bytes")
		}
	}
	f, err := newFile("det", files[0])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"n4.I64", "n1.F32", "n3.F32", "n2.BF16", "n7.BF16", "n0.U8", "n6.F4", "n5.BOOL"}
	if got := f.Names(); !slices.Equal(got, want) {
		t.Errorf("layout %q, want %q", got, want)
	}
	if !bytes.Contains(files[0], []byte(`{"__metadata__":{"a":"2","format":"pt","m":"3","z":"1"},`)) {
		t.Errorf("metadata not first or keys not sorted: %q", files[0][8:80])
	}
}

func TestWriteNames(t *testing.T) {
	names := []string{`quote"`, `back\slash`, "new\nline", "tab\t", "bs\b ff\f cr\r", "ctl\x01\x1f", "del\x7f", "é ü 漢字", "</script>&", " lead", "__meta"}
	var ts []Tensor
	for i, n := range names {
		ts = append(ts, Tensor{Name: n, DType: U8, Shape: []int{1}, Data: []byte{byte(i)}})
	}
	p := filepath.Join(t.TempDir(), "names.safetensors")
	md := map[string]string{"k\"ey\n": "v\\al\x02"}
	if err := Write(p, ts, md); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	for _, esc := range []string{`"quote\""`, `"back\\slash"`, `"new\nline"`, `"tab\t"`, `"bs\b ff\f cr\r"`, `"ctl\u0001\u001f"`, `"</script>&"`, "\"del\x7f\"", `"é ü 漢字"`} {
		if !bytes.Contains(raw, []byte(esc)) {
			t.Errorf("header lacks %s (escaped as serde_json does)", esc)
		}
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkTensorsIn(t, f, ts)
	if got := f.Metadata(); got["k\"ey\n"] != "v\\al\x02" {
		t.Errorf("metadata %q", got)
	}
}

func TestWriteRejects(t *testing.T) {
	ok := Tensor{Name: "ok", DType: F32, Shape: []int{2}, Data: make([]byte, 8)}
	for _, tc := range []struct {
		name    string
		tensors []Tensor
		md      map[string]string
		want    string
	}{
		{"empty name", []Tensor{ok, {Name: "", DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, "tensor 1 has an empty name"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, `tensor "__metadata__": the name is reserved`},
		{"bad UTF-8 name", []Tensor{{Name: "a\xffb", DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, `tensor "a\xffb": name is not valid UTF-8`},
		{"duplicate", []Tensor{ok, ok}, nil, `tensor "ok": two tensors have this name`},
		{"zero dtype", []Tensor{{Name: "z", Shape: []int{1}, Data: []byte{1}}}, nil, `tensor "z": invalid dtype invalid`},
		{"out of range dtype", []Tensor{{Name: "z", DType: 99, Shape: []int{1}, Data: []byte{1}}}, nil, `tensor "z": invalid dtype Dtype(99)`},
		{"negative dim", []Tensor{{Name: "n", DType: U8, Shape: []int{2, -1}, Data: nil}}, nil, `tensor "n": shape [2 -1]: dimension 1 is negative`},
		{"overflow", []Tensor{{Name: "o", DType: U8, Shape: []int{math.MaxInt, math.MaxInt, math.MaxInt}, Data: nil}}, nil, `: the element count overflows 64 bits`},
		{"short data", []Tensor{{Name: "s", DType: F32, Shape: []int{3}, Data: make([]byte, 11)}}, nil, `tensor "s": shape [3] of F32 needs 12 bytes of data, got 11`},
		{"long data", []Tensor{{Name: "l", DType: BF16, Shape: []int{}, Data: make([]byte, 4)}}, nil, `tensor "l": shape [] of BF16 needs 2 bytes of data, got 4`},
		{"misaligned F4", []Tensor{{Name: "q", DType: F4, Shape: []int{3}, Data: make([]byte, 2)}}, nil, `tensor "q": shape [3] of F4: 3 elements of 4 bits are 12 bits, not a whole number of bytes`},
		{"other format", []Tensor{ok}, map[string]string{"format": "np"}, `metadata "format" is "np"`},
		{"bad UTF-8 metadata", []Tensor{ok}, map[string]string{"k": "\xff"}, `metadata "k": keys and values must be valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "out.safetensors")
			err := Write(p, tc.tensors, tc.md)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("Write = %v, want an error naming %s and containing %q", err, p, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a failed Write left %d files behind", len(entries))
			}
		})
	}
}

// TestWriteReplacesAtomically checks that Write replaces an existing file,
// that a rejected Write leaves it alone, and that no temporary file stays.
func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	one := []Tensor{{Name: "w", DType: U8, Shape: []int{1}, Data: []byte{1}}}
	two := []Tensor{{Name: "w", DType: U8, Shape: []int{2}, Data: []byte{2, 3}}}
	if err := Write(p, one, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, two, nil); err != nil {
		t.Fatal(err)
	}
	bad := []Tensor{{Name: "w", DType: U8, Shape: []int{5}, Data: []byte{9}}}
	if err := Write(p, bad, nil); err == nil {
		t.Fatal("Write accepted 1 byte for 5 elements")
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	checkTensorsIn(t, f, two)
	f.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only m.safetensors", len(entries))
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", st.Mode(), err)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir", "m.safetensors"), one, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Write into a missing directory = %v", err)
	}
}
