package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the parser behind Open. Whatever the
// input, parsing must not panic and must fail only with a *FormatError. A
// file it accepts must hand out in-bounds tensors, convert exactly the
// convertible dtypes, and survive a round trip through the writer: written
// back and parsed again it holds the same tensors, bytes and metadata.
//
// The seed corpus is testdata/fuzz/FuzzOpen plus the files added here.
func FuzzOpen(f *testing.F) {
	f.Add(fileBytes(`{}`, nil))
	f.Add(fileBytes(`{"__metadata__":{"format":"pt"},`+entry("w", "F32", "[2]", 0, 8)+`}`, make([]byte, 8)))
	f.Add(fileBytes(`{`+entry("a", "BF16", "[2,1]", 0, 4)+`,`+entry("b", "F4", "[4]", 4, 6)+`,`+entry("e", "I64", "[0]", 6, 6)+`}`, []byte{0, 0x3f, 0x80, 0xbf, 0x12, 0x34}))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := newFile("fuzz.safetensors", data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			if fe.Path != "fuzz.safetensors" || !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		infos := file.Tensors()
		if len(infos) != file.Len() || len(file.Names()) != file.Len() {
			t.Fatalf("Len %d, %d infos, %d names", file.Len(), len(infos), len(file.Names()))
		}
		var ts []Tensor
		emptyName := false
		var end int64
		for _, info := range infos {
			if info.Begin != end {
				t.Fatalf("tensor %q begins at %d, previous ended at %d", info.Name, info.Begin, end)
			}
			end = info.End
			raw, err := file.Raw(info.Name)
			if err != nil || int64(len(raw)) != info.Size() {
				t.Fatalf("Raw(%q): %d bytes, %v; want %d", info.Name, len(raw), err, info.Size())
			}
			vals, err := file.Float32(info.Name)
			if info.DType.Convertible() != (err == nil) {
				t.Fatalf("Float32(%q) of %s: %v", info.Name, info.DType, err)
			}
			if err == nil && int64(len(vals)) != info.NumElements() {
				t.Fatalf("Float32(%q): %d values, want %d", info.Name, len(vals), info.NumElements())
			}
			emptyName = emptyName || info.Name == ""
			ts = append(ts, Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: raw})
		}
		if int64(len(data))-file.DataOffset() != end {
			t.Fatalf("tensors end at %d, the data buffer has %d bytes", end, int64(len(data))-file.DataOffset())
		}

		hdr, order, err := encodeHeader(ts, file.Metadata())
		if err != nil {
			if emptyName { // the writer refuses empty names; the format allows them
				return
			}
			t.Fatalf("the writer refuses what the reader accepted: %v", err)
		}
		var buf bytes.Buffer
		if err := writeBody(&buf, hdr, ts, order); err != nil {
			t.Fatal(err)
		}
		back, err := newFile("roundtrip", buf.Bytes())
		if err != nil {
			t.Fatalf("re-reading the written file: %v", err)
		}
		compareFiles(t, file, back)
	})
}

// compareFiles checks that two files hold the same tensors and metadata.
func compareFiles(t *testing.T, a, b *File) {
	t.Helper()
	if a.Len() != b.Len() {
		t.Fatalf("%d tensors, then %d", a.Len(), b.Len())
	}
	for _, ia := range a.Tensors() {
		ib, ok := b.Info(ia.Name)
		if !ok {
			t.Fatalf("tensor %q lost", ia.Name)
		}
		if ia.DType != ib.DType || !slices.Equal(ia.Shape, ib.Shape) {
			t.Fatalf("tensor %q: %v %v, then %v %v", ia.Name, ia.DType, ia.Shape, ib.DType, ib.Shape)
		}
		ra, _ := a.Raw(ia.Name)
		rb, _ := b.Raw(ia.Name)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("tensor %q: data changed", ia.Name)
		}
	}
	ma, mb := a.Metadata(), b.Metadata()
	if (ma == nil) != (mb == nil) || !maps.Equal(ma, mb) {
		t.Fatalf("metadata %q, then %q", ma, mb)
	}
}

// FuzzWriteRoundTrip builds tensors from arbitrary input (names one per
// line; three bytes each of spec for dtype and two dimensions) and writes
// them. The writer must either refuse them with an error or produce a file
// that the reader accepts with the same contents.
func FuzzWriteRoundTrip(f *testing.F) {
	f.Add("w\nb", []byte{byte(F32), 2, 3, byte(BF16), 1, 4}, "k", "v")
	f.Add("q", []byte{byte(F4), 3, 1}, "format", "pt")
	f.Add("a\x00\"\\\n", []byte{byte(U8), 0, 9, byte(C64), 1, 1}, "", "")
	f.Fuzz(func(t *testing.T, names string, spec []byte, mdKey, mdVal string) {
		var ts []Tensor
		for i, name := range strings.Split(names, "\n") {
			if i >= 16 || 3*i+2 >= len(spec) {
				break
			}
			d := Dtype(spec[3*i] % (uint8(numDtypes) + 1)) // Invalid and one past the end included
			shape := []int{int(spec[3*i+1] % 8), int(spec[3*i+2]%8) - 1}
			if shape[1] < 0 {
				shape = shape[:1]
			}
			n := 1
			for _, s := range shape {
				n *= s
			}
			size := n * d.Bits() / 8
			if spec[3*i+1]&0x80 != 0 {
				size++ // a wrong size must be refused
			}
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(i*31 + j)
			}
			ts = append(ts, Tensor{Name: name, DType: d, Shape: shape, Data: data})
		}
		md := map[string]string{mdKey: mdVal}
		hdr, order, err := encodeHeader(ts, md)
		if err != nil {
			return // refused, which is fine; not panicking is the point
		}
		var buf bytes.Buffer
		if err := writeBody(&buf, hdr, ts, order); err != nil {
			t.Fatal(err)
		}
		if len(hdr)%8 != 0 {
			t.Fatalf("header of %d bytes is not padded to 8", len(hdr))
		}
		file, err := newFile("roundtrip", buf.Bytes())
		if err != nil {
			t.Fatalf("the reader refuses what the writer wrote: %v", err)
		}
		if file.Len() != len(ts) {
			t.Fatalf("%d tensors written, %d read", len(ts), file.Len())
		}
		for _, want := range ts {
			info, ok := file.Info(want.Name)
			raw, _ := file.Raw(want.Name)
			if !ok || info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) || !bytes.Equal(raw, want.Data) {
				t.Fatalf("tensor %q did not survive: %+v", want.Name, info)
			}
		}
		if got := file.Metadata(); !maps.Equal(got, md) {
			t.Fatalf("metadata %q, want %q", got, md)
		}
	})
}

// TestFuzzOpenCorpus keeps the committed seed corpus meaningful: the files
// named valid_* must open and those named bad_* must be refused.
func TestFuzzOpenCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Errorf("only %d seeds in %s", len(entries), dir)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		body, ok2 := strings.CutSuffix(body, ")\n")
		if !ok || !ok2 {
			t.Fatalf("%s is not a one-[]byte corpus file", e.Name())
		}
		data, err := strconv.Unquote(body)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		_, err = newFile(e.Name(), []byte(data))
		switch {
		case strings.HasPrefix(e.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", e.Name(), err)
		case strings.HasPrefix(e.Name(), "bad_") && err == nil:
			t.Errorf("%s was accepted", e.Name())
		}
	}
}
