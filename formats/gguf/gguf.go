// Package gguf reads and writes GGUF files, the model format of llama.cpp
// and ggml (versions 2 and 3, little-endian).
//
// A GGUF file is a header (magic "GGUF", version, tensor and metadata
// counts), typed metadata key/value pairs, one info record per tensor
// (name, dimensions, ggml type, offset), and an aligned data section that
// holds the tensors' bytes. Open maps the file into memory and decodes the
// metadata and tensor infos, checking that every tensor's bytes lie inside
// the file; tensor data is read only when asked for, with Raw or Float32.
//
// Dimensions: ggml lists a tensor's dimensions fastest-varying first
// (ne[0] is the length of a row). TensorInfo.Dims keeps that raw order and
// TensorInfo.Shape gives the row-major order used everywhere else in whet,
// so token_embd.weight of a model with a 32000-token vocabulary and
// 4096-wide embeddings has Dims [4096 32000] and Shape [32000 4096].
package gguf

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/whet-ai/whet/formats/mmap"
)

// File is an open GGUF file. Its methods may be called from several
// goroutines at once, except Close.
type File struct {
	name      string // for error messages
	data      []byte
	mm        *mmap.File // nil for Parse
	version   uint32
	alignment int
	kvs       []KV
	index     map[string]int // key -> position in kvs
	tensors   []TensorInfo
	byName    map[string]int // name -> position in tensors
	dataStart uint64         // file offset of the data section
}

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor's name, e.g. "blk.0.attn_q.weight".
	Name string
	// Type is the ggml element type.
	Type GGMLType
	// Shape is the dimensions in row-major order, slowest-varying first:
	// Dims reversed.
	Shape []int
	// Dims is the dimensions as the file stores them (ggml's ne),
	// fastest-varying first.
	Dims []uint64
	// Offset is the position of the tensor's bytes from the start of the
	// data section (File.DataOffset).
	Offset uint64
	// Elements is the number of elements, the product of the dimensions
	// (1 for a tensor with no dimensions).
	Elements int
	// Size is the number of bytes the tensor takes: Elements / block size
	// * bytes per block.
	Size int
}

// ErrNotFound is wrapped by the errors of the typed metadata accessors and
// of Raw and Float32 for a key or tensor the file does not have.
var ErrNotFound = errors.New("not found")

// Open maps the GGUF file at path and decodes its metadata and tensor
// infos. The tensor data is not read until Raw or Float32 asks for it.
// Call Close when done.
func Open(path string) (*File, error) {
	mm, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f := &File{name: path, data: mm.Bytes(), mm: mm}
	if err := f.parse(); err != nil {
		mm.Close()
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a GGUF file held in memory. name identifies it in error
// messages. The File refers to data, which must not change while it is
// in use.
func Parse(name string, data []byte) (*File, error) {
	f := &File{name: name, data: data}
	if err := f.parse(); err != nil {
		return nil, fmt.Errorf("gguf %s: %w", name, err)
	}
	return f, nil
}

// Close releases the file's mapping. Slices returned by Raw must not be
// used afterwards.
func (f *File) Close() error {
	f.data = nil
	if f.mm == nil {
		return nil
	}
	err := f.mm.Close()
	f.mm = nil
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// Name is the path or name the file was opened with.
func (f *File) Name() string { return f.name }

// Version is the GGUF version: 2 or 3.
func (f *File) Version() uint32 { return f.version }

// Alignment is the alignment of the data section and of every tensor's
// offset: general.alignment, or 32 when that is absent.
func (f *File) Alignment() int { return f.alignment }

// DataOffset is the file offset of the data section, to which every
// TensorInfo.Offset is relative.
func (f *File) DataOffset() uint64 { return f.dataStart }

// Metadata returns the metadata pairs in file order. The returned slice is
// a copy; the values' slices (Value.Any) are shared and must not be
// modified.
func (f *File) Metadata() []KV { return append([]KV(nil), f.kvs...) }

// Get returns the value stored under key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.index[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

// lookup returns the value under key or an error naming the file and key.
func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf %s: metadata key %q: %w", f.name, key, ErrNotFound)
	}
	return v, nil
}

func (f *File) typeErr(key string, v Value, want string) error {
	return fmt.Errorf("gguf %s: metadata key %q is %s, not %s", f.name, key, v.describe(), want)
}

// String returns the STRING value under key.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.AsString()
	if !ok {
		return "", f.typeErr(key, v, "STRING")
	}
	return s, nil
}

// Uint returns the value under key, which must be of an integer type
// (UINT8 to INT64) and not negative.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.AsUint()
	if !ok {
		if i, isInt := v.AsInt(); isInt {
			return 0, fmt.Errorf("gguf %s: metadata key %q is %v %d, want a non-negative integer", f.name, key, v.typ, i)
		}
		return 0, f.typeErr(key, v, "an integer")
	}
	return u, nil
}

// Int returns the value under key, which must be of an integer type
// (UINT8 to INT64) and fit an int64.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.AsInt()
	if !ok {
		if u, isUint := v.AsUint(); isUint {
			return 0, fmt.Errorf("gguf %s: metadata key %q is UINT64 %d, too large for an int64", f.name, key, u)
		}
		return 0, f.typeErr(key, v, "an integer")
	}
	return i, nil
}

// Float returns the FLOAT32 or FLOAT64 value under key.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.AsFloat()
	if !ok {
		return 0, f.typeErr(key, v, "FLOAT32 or FLOAT64")
	}
	return x, nil
}

// Bool returns the BOOL value under key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	if !ok {
		return false, f.typeErr(key, v, "BOOL")
	}
	return b, nil
}

// arrayOfType returns the slice of the ARRAY of elem under key.
func arrayOfType[T any](f *File, key string, elem ValueType) ([]T, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.v.([]T)
	if !ok || v.typ != TypeArray || v.elem != elem {
		return nil, f.typeErr(key, v, "ARRAY of "+elem.String())
	}
	return append([]T(nil), s...), nil
}

// Strings returns a copy of the ARRAY of STRING under key.
func (f *File) Strings(key string) ([]string, error) {
	return arrayOfType[string](f, key, TypeString)
}

// Float32s returns a copy of the ARRAY of FLOAT32 under key.
func (f *File) Float32s(key string) ([]float32, error) {
	return arrayOfType[float32](f, key, TypeFloat32)
}

// Int32s returns a copy of the ARRAY of INT32 under key.
func (f *File) Int32s(key string) ([]int32, error) {
	return arrayOfType[int32](f, key, TypeInt32)
}

// Uint32s returns a copy of the ARRAY of UINT32 under key.
func (f *File) Uint32s(key string) ([]uint32, error) {
	return arrayOfType[uint32](f, key, TypeUint32)
}

// Ints returns the ARRAY under key, whose elements may be of any integer
// type, as int64s. A UINT64 element above math.MaxInt64 is an error.
func (f *File) Ints(key string) ([]int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if v.typ != TypeArray || v.elem.fixedSize() == 0 || v.elem == TypeBool || v.elem == TypeFloat32 || v.elem == TypeFloat64 {
		return nil, f.typeErr(key, v, "an ARRAY of integers")
	}
	out := make([]int64, v.Len())
	for i := range out {
		x, ok := v.Index(i).AsInt()
		if !ok {
			return nil, fmt.Errorf("gguf %s: metadata key %q: element %d is %v, too large for an int64", f.name, key, i, v.Index(i))
		}
		out[i] = x
	}
	return out, nil
}

// Tensors returns the tensor infos in file order. The result is a deep
// copy.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.tensors))
	for i, t := range f.tensors {
		out[i] = t.clone()
	}
	return out
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i].clone(), true
}

func (t TensorInfo) clone() TensorInfo {
	t.Shape = slices.Clone(t.Shape)
	t.Dims = slices.Clone(t.Dims)
	return t
}

func (f *File) tensor(name string) (*TensorInfo, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("gguf %s: tensor %q: %w", f.name, name, ErrNotFound)
	}
	if f.data == nil {
		return nil, fmt.Errorf("gguf %s: tensor %q: file is closed", f.name, name)
	}
	return &f.tensors[i], nil
}

// Raw returns the named tensor's bytes as stored. The slice points into
// the mapped file: it is valid until Close and must not be written to.
func (f *File) Raw(name string) ([]byte, error) {
	t, err := f.tensor(name)
	if err != nil {
		return nil, err
	}
	return f.raw(t), nil
}

func (f *File) raw(t *TensorInfo) []byte {
	start := f.dataStart + t.Offset // checked by parse to lie in the file
	return f.data[start : start+uint64(t.Size) : start+uint64(t.Size)]
}

// Float32 returns the named tensor's elements converted to float32, in
// row-major order (the order they are stored in). It converts F32, F16,
// BF16 and F64 tensors and dequantises Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K; any other type is an error.
func (f *File) Float32(name string) ([]float32, error) {
	t, err := f.tensor(name)
	if err != nil {
		return nil, err
	}
	deq, ok := dequantizers[t.Type]
	if !ok {
		return nil, fmt.Errorf("gguf %s: unsupported type %v in tensor %q (Float32 converts %s)", f.name, t.Type, name, dequantizable())
	}
	out := make([]float32, t.Elements)
	deq(out, f.raw(t))
	return out, nil
}

// dequantizable lists the types Float32 converts, for error messages.
func dequantizable() string {
	var names []string
	for t := GGMLType(0); int(t) < len(typeInfos); t++ {
		if t.CanDequantize() {
			names = append(names, t.String())
		}
	}
	return strings.Join(names, ", ")
}
