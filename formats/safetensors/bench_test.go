package safetensors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"
)

// The benchmark checkpoint: 200 tensors of 5 MiB, alternately F32
// [1280, 1024] and BF16 [2560, 1024], 1.05 GB of data.
const (
	bigTensorCount = 200
	bigTensorBytes = 1280 * 1024 * 4
)

// bigTensors describes the benchmark checkpoint, every tensor's data a
// slice of f32 or bf16 (each at least bigTensorBytes long).
func bigTensors(f32, bf16 []byte) []Tensor {
	ts := make([]Tensor, bigTensorCount)
	for i := range ts {
		if i%2 == 0 {
			ts[i] = Tensor{Name: fmt.Sprintf("model.layers.%03d.mlp.weight", i), DType: F32, Shape: []int{1280, 1024}, Data: f32[:bigTensorBytes]}
		} else {
			ts[i] = Tensor{Name: fmt.Sprintf("model.layers.%03d.attn.weight", i), DType: BF16, Shape: []int{2560, 1024}, Data: bf16[:bigTensorBytes]}
		}
	}
	return ts
}

var benchFile struct {
	once sync.Once
	dir  string
	path string
	size int64 // bytes of tensor data
	err  error
}

// benchCheckpoint writes the benchmark checkpoint once per test binary
// (TestMain removes it) and returns its path and data size.
func benchCheckpoint(b *testing.B) (string, int64) {
	benchFile.once.Do(func() {
		benchFile.dir, benchFile.err = os.MkdirTemp("", "whet-safetensors-bench-")
		if benchFile.err != nil {
			return
		}
		rng := rand.New(rand.NewPCG(9, 10))
		vals := make([]float32, bigTensorBytes/2)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * 0.02)
		}
		f32, _ := EncodeFloat32(F32, vals[:bigTensorBytes/4])
		bf16, _ := EncodeFloat32(BF16, vals)
		benchFile.path = filepath.Join(benchFile.dir, "model.safetensors")
		benchFile.size = bigTensorCount * bigTensorBytes
		benchFile.err = Write(benchFile.path, bigTensors(f32, bf16), nil)
	})
	if benchFile.err != nil {
		b.Fatal(benchFile.err)
	}
	return benchFile.path, benchFile.size
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFile.dir != "" {
		os.RemoveAll(benchFile.dir)
	}
	os.Exit(code)
}

// BenchmarkReadAll opens a 1.05 GB checkpoint (200 tensors, half F32, half
// BF16; brought into the page cache by an untimed pass) and reads every
// tensor, per iteration: Raw touching one byte of every page (the cost of
// mapping the data in), Copy reading every byte into a buffer (what loading
// into a back end's memory costs), Float32 converting every tensor to a new
// float32 slice, and AppendFloat32 converting into one reused buffer. GB/s
// counts the file's tensor bytes.
func BenchmarkReadAll(b *testing.B) {
	path, size := benchCheckpoint(b)
	page := os.Getpagesize()
	for _, bc := range []struct {
		name string
		read func(b *testing.B, f *File, name string, buf []byte) int
	}{
		{"Raw", func(b *testing.B, f *File, name string, _ []byte) int {
			raw, err := f.Raw(name)
			if err != nil {
				b.Fatal(err)
			}
			s := 0
			for i := 0; i < len(raw); i += page {
				s += int(raw[i])
			}
			return s
		}},
		{"Copy", func(b *testing.B, f *File, name string, buf []byte) int {
			raw, err := f.Raw(name)
			if err != nil {
				b.Fatal(err)
			}
			return copy(buf, raw)
		}},
		{"Float32", func(b *testing.B, f *File, name string, _ []byte) int {
			v, err := f.Float32(name)
			if err != nil {
				b.Fatal(err)
			}
			return len(v)
		}},
		{"AppendFloat32", func(b *testing.B, f *File, name string, buf []byte) int {
			dst := unsafe.Slice((*float32)(unsafe.Pointer(&buf[0])), len(buf)/4)
			v, err := f.AppendFloat32(dst[:0], name)
			if err != nil || &v[0] != &dst[0] {
				b.Fatal("AppendFloat32 did not convert in place:", err)
			}
			return len(v)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 2*bigTensorBytes) // room for a BF16 tensor as float32
			// One untimed pass brings the file into the page cache.
			if f, err := Open(path); err == nil {
				for _, name := range f.Names() {
					raw, _ := f.Raw(name)
					copy(buf, raw)
				}
				f.Close()
			}
			b.SetBytes(size)
			sink := 0
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				for _, name := range f.Names() {
					sink += bc.read(b, f, name, buf)
				}
				f.Close()
			}
			b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			if sink == -1 {
				b.Log(sink)
			}
		})
	}
}

// BenchmarkParseHeader measures parsing and validating headers of 200 and
// 10,000 small tensors in memory (Open's work apart from mapping the file).
func BenchmarkParseHeader(b *testing.B) {
	for _, n := range []int{200, 10000} {
		ts := make([]Tensor, n)
		for i := range ts {
			ts[i] = Tensor{Name: fmt.Sprintf("model.layers.%d.self_attn.q_proj.weight", i), DType: BF16, Shape: []int{1, 2}, Data: make([]byte, 4)}
		}
		hdr, order, err := encodeHeader(ts, map[string]string{FormatKey: FormatPT})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := writeBody(&buf, hdr, ts, order); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseFile("bench", buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
