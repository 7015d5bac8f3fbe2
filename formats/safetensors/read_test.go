package safetensors

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fileBytes assembles a safetensors file by hand: the 8-byte length of hdr,
// hdr itself (unpadded, exactly as given) and data.
func fileBytes(hdr string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, data...)
}

// writeTemp writes b to a new file in a fresh temporary directory.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkFormatError checks that err is a *FormatError for path, naming
// tensor (when not empty) and containing every one of wants.
func checkFormatError(t *testing.T, err error, path, tensor string, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", wants)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *FormatError", err, err)
	}
	msg := err.Error()
	if fe.Path != path || !strings.Contains(msg, path) {
		t.Errorf("error %q: want it to name the file %s", msg, path)
	}
	if fe.Tensor != tensor {
		t.Errorf("error %q: names tensor %q, want %q", msg, fe.Tensor, tensor)
	}
	if tensor != "" && !strings.Contains(msg, strconv.Quote(tensor)) {
		t.Errorf("error %q: want it to name tensor %q", msg, tensor)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q: want it to contain %q", msg, w)
		}
	}
}

// entry renders one tensor entry of a header.
func entry(name, dtype, shape string, begin, end int) string {
	return strconv.Quote(name) + `:{"dtype":"` + dtype + `","shape":` + shape +
		`,"data_offsets":[` + strconv.Itoa(begin) + `,` + strconv.Itoa(end) + `]}`
}

func TestOpenRejects(t *testing.T) {
	w4 := entry("w", "F32", "[1]", 0, 4) // a valid one-element tensor
	zeros := func(n int) []byte { return make([]byte, n) }
	lenOnly := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	for _, tc := range []struct {
		name   string
		file   []byte
		tensor string   // the tensor the error must name, "" for none
		want   []string // substrings of the message
	}{
		{"empty file", nil, "", []string{"file is 0 bytes", "shorter than the 8-byte header length"}},
		{"short file", []byte{1, 2, 3, 4, 5}, "", []string{"file is 5 bytes"}},
		{"header over 100 MB", lenOnly(MaxHeaderSize+1, "{}"), "", []string{"header length 100000001 exceeds the limit of 100000000 bytes"}},
		{"huge header length", lenOnly(math.MaxUint64, "{}"), "", []string{"exceeds the limit"}},
		{"header past end", lenOnly(10, "{}"), "", []string{"header length 10 runs past the end of the file (2 bytes follow"}},
		{"empty header", lenOnly(0, ""), "", []string{"not valid JSON"}},
		{"invalid UTF-8", fileBytes("{\"a\xff\":1}", nil), "", []string{"not valid UTF-8", "offset 3"}},
		{"byte order mark", fileBytes("\ufeff{}", nil), "", []string{"not valid JSON"}},
		{"unterminated", fileBytes(`{"w":{"dtype":"F32"`, zeros(4)), "w", []string{"not valid JSON", "ends in the middle"}},
		{"bad syntax", fileBytes(`{"w" 1}`, nil), "w", []string{"not valid JSON at byte"}},
		{"array at top", fileBytes(`[]`, nil), "", []string{"header must be a JSON object, found an array"}},
		{"string at top", fileBytes(`"x"`, nil), "", []string{"header must be a JSON object, found the string"}},
		{"trailing object", fileBytes(`{}{}`, nil), "", []string{"trailing data after its JSON object"}},
		{"trailing garbage", fileBytes(`{} x`, nil), "", []string{"trailing data after its JSON object"}},
		{"trailing NUL padding", fileBytes("{}\x00\x00", nil), "", []string{"trailing data"}},
		{"entry not object", fileBytes(`{"w":1}`, nil), "w", []string{"entry must be an object with dtype, shape and data_offsets, found the number 1"}},
		{"entry is array", fileBytes(`{"w":[]}`, nil), "w", []string{"found an array"}},
		{"unknown field", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}}`, zeros(4)), "w", []string{`unknown field "offsets"`}},
		{"missing dtype", fileBytes(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`no "dtype"`}},
		{"missing shape", fileBytes(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, zeros(4)), "w", []string{`no "shape"`}},
		{"missing offsets", fileBytes(`{"w":{"dtype":"F32","shape":[1]}}`, zeros(4)), "w", []string{`no "data_offsets"`}},
		{"dtype twice", fileBytes(`{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`"dtype" appears twice`}},
		{"shape twice", fileBytes(`{"w":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`"shape" appears twice`}},
		{"offsets twice", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`"data_offsets" appears twice`}},
		{"dtype not string", fileBytes(`{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`"dtype" must be a string`, "the number 32"}},
		{"unknown dtype", fileBytes(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, zeros(16)), "w", []string{`unknown dtype "F128"`}},
		{"lower-case dtype", fileBytes(`{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`unknown dtype "f32"`}},
		{"shape not array", fileBytes(`{"w":{"dtype":"F32","shape":3,"data_offsets":[0,4]}}`, zeros(4)), "w", []string{`"shape" must be an array of non-negative integers, found the number 3`}},
		{"negative dim", fileBytes(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape[0] = -1 is not a non-negative integer"}},
		{"fractional dim", fileBytes(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape[0] = 1.5 is not a non-negative integer"}},
		{"exponent dim", fileBytes(`{"w":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape[0] = 1e0 is not a non-negative integer"}},
		{"string dim", fileBytes(`{"w":{"dtype":"F32","shape":[1,"2"],"data_offsets":[0,8]}}`, zeros(8)), "w", []string{`shape[1] must be a non-negative integer, found the string "2"`}},
		{"null dim", fileBytes(`{"w":{"dtype":"F32","shape":[null],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape[0] must be a non-negative integer, found null"}},
		{"dim over 64 bits", fileBytes(`{"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape[0] = 18446744073709551616 does not fit in 64 bits"}},
		{"element count overflow", fileBytes(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"element count overflows 64 bits"}},
		{"overflow before zero dim", fileBytes(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, nil), "w", []string{"element count overflows 64 bits"}},
		{"bit size overflow", fileBytes(`{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"size in bits overflows 64 bits"}},
		{"offsets not array", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}}`, zeros(4)), "w", []string{`"data_offsets" must be an array`}},
		{"one offset", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, zeros(4)), "w", []string{`"data_offsets" must be [begin, end], found 1 numbers`}},
		{"three offsets", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, zeros(8)), "w", []string{"found 3 numbers"}},
		{"negative offset", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, zeros(4)), "w", []string{"data_offsets[0] = -4 is not a non-negative integer"}},
		{"end before begin", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, zeros(4)), "w", []string{"data_offsets [4, 0] end before they begin"}},
		{"end past buffer", fileBytes(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, zeros(4)), "w", []string{"data_offsets [0, 8] run past the end of the data buffer, which has 4 bytes"}},
		{"huge end", fileBytes(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}`, zeros(4)), "w", []string{"run past the end of the data buffer"}},
		{"size mismatch", fileBytes(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape [2] of F32 needs 8 bytes but data_offsets [0, 4] hold 4"}},
		{"size mismatch for dtype", fileBytes(`{"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "w", []string{"shape [1] of BF16 needs 2 bytes"}},
		{"misaligned F4", fileBytes(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, zeros(2)), "w", []string{"3 elements of 4 bits are 12 bits, not a whole number of bytes"}},
		{"misaligned F6", fileBytes(`{"w":{"dtype":"F6_E2M3","shape":[2,1],"data_offsets":[0,2]}}`, zeros(2)), "w", []string{"12 bits, not a whole number of bytes"}},
		{"hole at start", fileBytes(`{`+entry("w", "F32", "[1]", 4, 8)+`}`, zeros(8)), "w", []string{"leave a hole: bytes [0, 4) of the data buffer belong to no tensor"}},
		{"hole between", fileBytes(`{`+w4+`,`+entry("v", "F32", "[1]", 8, 12)+`}`, zeros(12)), "v", []string{"leave a hole: bytes [4, 8)"}},
		{"overlap", fileBytes(`{`+entry("w", "F32", "[2]", 0, 8)+`,`+entry("v", "F32", "[1]", 4, 8)+`}`, zeros(8)), "v", []string{`data_offsets [4, 8] overlap tensor "w", which ends at 8`}},
		{"same range twice", fileBytes(`{`+w4+`,`+entry("v", "F32", "[1]", 0, 4)+`}`, zeros(4)), "w", []string{`overlap tensor "v"`}},
		{"bytes after last tensor", fileBytes(`{`+w4+`}`, zeros(8)), "w", []string{"the last tensor ends at data offset 4 but the data buffer has 8 bytes: bytes [4, 8) belong to no tensor"}},
		{"data but no tensors", fileBytes(`{}`, zeros(4)), "", []string{"the header has no tensors but 4 bytes of data follow it"}},
		{"duplicate tensor", fileBytes(`{`+w4+`,`+entry("w", "F32", "[1]", 4, 8)+`}`, zeros(8)), "w", []string{"names this tensor twice (duplicate JSON key)"}},
		{"duplicate metadata", fileBytes(`{"__metadata__":{},"__metadata__":{}}`, nil), "", []string{"two __metadata__ entries"}},
		{"metadata not object", fileBytes(`{"__metadata__":"pt"}`, nil), "", []string{"__metadata__ must be an object mapping strings to strings, found the string"}},
		{"metadata number value", fileBytes(`{"__metadata__":{"total":1}}`, nil), "", []string{`__metadata__["total"] must be a string, found the number 1`}},
		{"metadata nested value", fileBytes(`{"__metadata__":{"x":{}}}`, nil), "", []string{`__metadata__["x"] must be a string, found an object`}},
		{"metadata duplicate key", fileBytes(`{"__metadata__":{"a":"1","a":"2"}}`, nil), "", []string{`__metadata__ has key "a" twice`}},
		{"metadata shaped like a tensor", fileBytes(`{"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, zeros(4)), "", []string{`__metadata__["shape"] must be a string, found an array`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, "bad.safetensors", tc.file)
			f, err := Open(p)
			if err == nil {
				f.Close()
			}
			checkFormatError(t, err, p, tc.tensor, tc.want...)
		})
	}
}

func TestOpenAccepts(t *testing.T) {
	f32 := func(vs ...float32) []byte {
		b, _ := EncodeFloat32(F32, vs)
		return b
	}
	type want struct {
		name  string
		dtype Dtype
		shape []int
		begin int64
		end   int64
	}
	for _, tc := range []struct {
		name     string
		file     []byte
		names    []string
		infos    []want
		metadata map[string]string
	}{
		{"no tensors", fileBytes(`{}`, nil), []string{}, nil, nil},
		{"metadata only", fileBytes(`{"__metadata__":{"format":"pt"}}`, nil), []string{}, nil, map[string]string{"format": "pt"}},
		{"null metadata", fileBytes(`{"__metadata__":null}`, nil), []string{}, nil, nil},
		{"whitespace around", fileBytes(" \n\t{ \"w\" : { \"shape\" : [ ] , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } }\r\n   ", f32(1)),
			[]string{"w"}, []want{{"w", F32, []int{}, 0, 4}}, nil},
		{"header order is not data order", fileBytes(`{`+entry("z", "F32", "[1]", 0, 4)+`,`+entry("a", "BF16", "[2]", 4, 8)+`,`+entry("m", "U8", "[2,2]", 8, 12)+`}`, make([]byte, 12)),
			[]string{"z", "a", "m"}, []want{{"a", BF16, []int{2}, 4, 8}, {"m", U8, []int{2, 2}, 8, 12}}, nil},
		{"empty tensors", fileBytes(`{`+entry("e2", "F32", "[0,3]", 4, 4)+`,`+entry("w", "F32", "[1]", 0, 4)+`,`+entry("e1", "I64", "[5,0]", 4, 4)+`}`, f32(2)),
			[]string{"w", "e1", "e2"}, []want{{"e1", I64, []int{5, 0}, 4, 4}, {"e2", F32, []int{0, 3}, 4, 4}}, nil},
		{"only an empty tensor", fileBytes(`{`+entry("e", "F16", "[0]", 0, 0)+`}`, nil), []string{"e"}, []want{{"e", F16, []int{0}, 0, 0}}, nil},
		{"sub-byte and 8-bit float dtypes", fileBytes(`{`+entry("f4", "F4", "[2,3]", 0, 3)+`,`+entry("f6", "F6_E3M2", "[4]", 3, 6)+`,`+entry("f8", "F8_E4M3", "[2]", 6, 8)+`}`, make([]byte, 8)),
			[]string{"f4", "f6", "f8"}, []want{{"f4", F4, []int{2, 3}, 0, 3}, {"f6", F6E3M2, []int{4}, 3, 6}, {"f8", F8E4M3, []int{2}, 6, 8}}, nil},
		{"escaped names", fileBytes(`{"a\"b\\c\u00e9\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"k\t":"v\u0001"}}`, []byte{7}),
			[]string{"a\"b\\c\u00e9\n"}, []want{{"a\"b\\c\u00e9\n", U8, []int{1}, 0, 1}}, map[string]string{"k\t": "v\x01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, "ok.safetensors", tc.file)
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Names(); !slices.Equal(got, tc.names) {
				t.Errorf("Names() = %q, want %q", got, tc.names)
			}
			if f.Len() != len(tc.names) {
				t.Errorf("Len() = %d, want %d", f.Len(), len(tc.names))
			}
			for _, w := range tc.infos {
				info, ok := f.Info(w.name)
				if !ok {
					t.Fatalf("Info(%q): not found", w.name)
				}
				if info.Name != w.name || info.DType != w.dtype || !slices.Equal(info.Shape, w.shape) || info.Begin != w.begin || info.End != w.end {
					t.Errorf("Info(%q) = %+v, want %+v", w.name, info, w)
				}
				raw, err := f.Raw(w.name)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(raw)) != w.end-w.begin {
					t.Errorf("Raw(%q) has %d bytes, want %d", w.name, len(raw), w.end-w.begin)
				}
			}
			md := f.Metadata()
			if len(md) != len(tc.metadata) || (md == nil) != (tc.metadata == nil) {
				t.Errorf("Metadata() = %v, want %v", md, tc.metadata)
			}
			for k, v := range tc.metadata {
				if md[k] != v {
					t.Errorf("Metadata()[%q] = %q, want %q", k, md[k], v)
				}
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.safetensors")
	_, err := Open(p)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("Open(missing) = %v, want an error naming %s that is fs.ErrNotExist", err, p)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(directory) = %v, want a not-a-regular-file error", err)
	}
}

func TestInfoIsACopy(t *testing.T) {
	p := writeTemp(t, "m.safetensors", fileBytes(`{`+entry("w", "U8", "[2,2]", 0, 4)+`}`, make([]byte, 4)))
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Info("w")
	info.Shape[0] = 99
	f.Tensors()[0].Shape[1] = 99
	if again, _ := f.Info("w"); !slices.Equal(again.Shape, []int{2, 2}) {
		t.Errorf("Info's shape changed to %v through a returned copy", again.Shape)
	}
	if info, ok := f.Info("v"); ok {
		t.Errorf("Info of an absent tensor = %+v, true", info)
	}
}

func TestRawAndFloat32Errors(t *testing.T) {
	hdr := `{` + entry("i", "I32", "[1]", 0, 4) + `,` + entry("f8", "F8_E4M3", "[4]", 4, 8) +
		`,` + entry("f4", "F4", "[2]", 8, 9) + `,` + entry("b", "BOOL", "[1]", 9, 10) + `,` + entry("c", "C64", "[1]", 10, 18) + `}`
	p := writeTemp(t, "m.safetensors", fileBytes(hdr, make([]byte, 18)))
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"i", "dtype I32 cannot be converted to float32"},
		{"b", "dtype BOOL cannot be converted to float32"},
		{"c", "dtype C64 cannot be converted to float32"},
		{"f8", "dtype F8_E4M3 is recognised but not yet convertible to float32"},
		{"f4", "dtype F4 is recognised but not yet convertible to float32"},
	} {
		_, err := f.Float32(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), strconv.Quote(tc.name)) {
			t.Errorf("Float32(%q) = %v, want an error naming %s and the tensor, containing %q", tc.name, err, p, tc.want)
		}
		if raw, err := f.Raw(tc.name); err != nil || len(raw) == 0 {
			t.Errorf("Raw(%q) = %d bytes, %v; raw bytes of any dtype must be readable", tc.name, len(raw), err)
		}
	}
	for _, read := range []func(string) error{
		func(n string) error { _, err := f.Raw(n); return err },
		func(n string) error { _, err := f.Float32(n); return err },
	} {
		err := read("nope")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), p) {
			t.Errorf("reading an absent tensor: %v, want ErrNotFound naming it and the file", err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Raw("i"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Raw after Close = %v, want a closed-file error", err)
	}
	if _, err := f.Float32("i"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Float32 after Close = %v, want a closed-file error", err)
	}
}

// TestFloat32 checks the conversions on values exactly representable in
// every float dtype, so the expected result is the input itself, and on
// F16/BF16 data at an odd address and longer than one staging chunk, which
// takes the copying path instead of the in-place view.
func TestFloat32(t *testing.T) {
	inf := float32(math.Inf(1))
	exact := []float32{0, 1, -2, 0.5, -0.25, 3, 1024, -1.5, inf, -inf, 0.09375}
	long := make([]float32, chunk+123)
	for i := range long {
		long[i] = float32(i%512-256) / 8
	}
	for _, d := range []Dtype{F32, F16, BF16, F64} {
		for _, values := range [][]float32{exact, long} {
			data, err := EncodeFloat32(d, values)
			if err != nil {
				t.Fatal(err)
			}
			for _, pad := range []int{0, 1} { // pad 1 puts the data at an odd offset
				hdr := `{` + entry("x", d.String(), "["+strconv.Itoa(len(values))+"]", 0, len(data)) + `}`
				hdr += strings.Repeat(" ", (8-len(hdr)%8)%8+pad)
				p := writeTemp(t, "f.safetensors", fileBytes(hdr, data))
				f, err := Open(p)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.DataOffset() % 2; got != int64(pad) {
					t.Fatalf("data offset parity %d, want %d", got, pad)
				}
				got, err := f.Float32("x")
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, values) {
					t.Errorf("%s, %d values, pad %d: Float32 differs from the input", d, len(values), pad)
				}
				f.Close()
			}
		}
	}
	// AppendFloat32 keeps what dst holds and, given the capacity, allocates
	// nothing.
	data, _ := EncodeFloat32(BF16, exact)
	f, err := newFile("append", fileBytes(`{`+entry("x", "BF16", "["+strconv.Itoa(len(exact))+"]", 0, len(data))+`}`, data))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.AppendFloat32([]float32{42}, "x")
	if err != nil || !slices.Equal(got, append([]float32{42}, exact...)) {
		t.Errorf("AppendFloat32 onto [42] = %v, %v", got, err)
	}
	buf := make([]float32, 0, len(exact))
	if allocs := testing.AllocsPerRun(10, func() { buf, _ = f.AppendFloat32(buf[:0], "x") }); allocs != 0 {
		t.Errorf("AppendFloat32 into a large enough buffer allocates %v times", allocs)
	}
	if !slices.Equal(buf, exact) {
		t.Errorf("AppendFloat32 into a reused buffer = %v", buf)
	}
	if got, err := f.AppendFloat32([]float32{7}, "absent"); err == nil || !slices.Equal(got, []float32{7}) {
		t.Errorf("AppendFloat32 of an absent tensor = %v, %v; want dst back and an error", got, err)
	}

	nan := float32(math.NaN())
	for _, d := range []Dtype{F32, F16, BF16, F64} {
		data, _ := EncodeFloat32(d, []float32{nan})
		f, err := newFile("nan", fileBytes(`{`+entry("x", d.String(), "[1]", 0, len(data))+`}`, data))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := f.Float32("x"); len(got) != 1 || !math.IsNaN(float64(got[0])) {
			t.Errorf("%s NaN came back as %v", d, got)
		}
	}
	if _, err := EncodeFloat32(I32, exact); err == nil || !strings.Contains(err.Error(), "I32") {
		t.Errorf("EncodeFloat32(I32) = %v, want an error naming the dtype", err)
	}
}

func TestDtypes(t *testing.T) {
	all := Dtypes()
	if len(all) != 22 {
		t.Errorf("%d dtypes, want the format's 22", len(all))
	}
	for _, d := range all {
		back, err := ParseDtype(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDtype(%q) = %v, %v; want %v", d.String(), back, err, d)
		}
		if !d.Valid() || d.Bits() == 0 {
			t.Errorf("%v: Valid %v, Bits %d", d, d.Valid(), d.Bits())
		}
	}
	for _, s := range []string{"", "f32", "F8", "F8_E4M3FN", "float32", "invalid"} {
		if d, err := ParseDtype(s); err == nil {
			t.Errorf("ParseDtype(%q) = %v, want an error", s, d)
		}
	}
	if Invalid.Valid() || Invalid.Bits() != 0 || Dtype(200).String() != "Dtype(200)" {
		t.Errorf("invalid dtypes: Valid %v, Bits %d, String %q", Invalid.Valid(), Invalid.Bits(), Dtype(200).String())
	}
	for _, tc := range []struct {
		d    Dtype
		bits int
	}{{F4, 4}, {F6E2M3, 6}, {F8E8M0, 8}, {Bool, 8}, {BF16, 16}, {U32, 32}, {C64, 64}, {U64, 64}} {
		if tc.d.Bits() != tc.bits {
			t.Errorf("%v.Bits() = %d, want %d", tc.d, tc.d.Bits(), tc.bits)
		}
	}
	for _, d := range all {
		td, ok := d.TensorDType()
		if !ok {
			continue
		}
		back, err := FromTensorDType(td)
		if err != nil || back != d || td.Size()*8 != d.Bits() {
			t.Errorf("%v -> %v -> %v, %v", d, td, back, err)
		}
	}
}
