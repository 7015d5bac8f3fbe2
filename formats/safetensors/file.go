// Package safetensors reads and writes the Hugging Face safetensors format:
// an 8-byte little-endian header length N, N bytes of JSON describing each
// tensor (dtype, shape, and [begin, end) byte offsets into the data that
// follows), and the tensors' bytes, little-endian and row-major.
//
// Open maps a file and parses only its header; reading a tensor touches only
// that tensor's pages. The header is validated as strictly as the reference
// (Rust) library does, and more: every violation is a *FormatError naming
// the file and, where there is one, the tensor. OpenIndex and OpenDir present
// a sharded checkpoint (model.safetensors.index.json and its shards) as one
// set of tensors. Write and WriteSharded produce files the reference library
// and transformers load, written atomically.
package safetensors

import (
	"fmt"
	"maps"
	"slices"

	"github.com/whet-ai/whet/formats/mmap"
)

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the element type.
	DType Dtype
	// Shape is the tensor's shape, row-major; empty for a scalar.
	Shape []int
	// Begin and End are the tensor's byte offsets, [Begin, End), relative
	// to the start of the data buffer (the byte after the header).
	Begin, End int64
}

// Size is the tensor's size in bytes, End - Begin.
func (t TensorInfo) Size() int64 { return t.End - t.Begin }

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d) // cannot overflow: Open checked the product
	}
	return n
}

func (t TensorInfo) clone() TensorInfo {
	t.Shape = slices.Clone(t.Shape)
	return t
}

// File is an open safetensors file. Its methods may be called from several
// goroutines at once, except Close, after which none may be called and no
// slice returned by Raw may be used.
type File struct {
	path   string
	m      *mmap.File // nil for a File parsed from memory
	data   []byte     // the whole file
	h      *header
	closed bool
}

// Open maps the safetensors file at path and parses and validates its
// header. It reads nothing else: tensor data is paged in when Raw or Float32
// touches it. A malformed file yields a *FormatError.
//
// The file must not be truncated or rewritten while it is open: as with any
// memory map, touching pages that no longer exist raises SIGBUS.
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err) // mmap's errors name the path
	}
	f, err := newFile(path, m.Bytes())
	if err != nil {
		m.Close()
		return nil, err
	}
	f.m = m
	return f, nil
}

// newFile parses data, the whole contents of a safetensors file.
func newFile(path string, data []byte) (*File, error) {
	h, err := parseFile(path, data)
	if err != nil {
		return nil, err
	}
	return &File{path: path, data: data, h: h}, nil
}

// Path is the path the file was opened with.
func (f *File) Path() string { return f.path }

// Len is the number of tensors in the file.
func (f *File) Len() int { return len(f.h.tensors) }

// DataOffset is the offset in the file of the data buffer, the byte after
// the header. A tensor's bytes are at DataOffset() + Begin in the file.
func (f *File) DataOffset() int64 { return f.h.dataStart }

// Names returns the names of the file's tensors in the order of their data
// offsets (ties, between empty tensors, by name).
func (f *File) Names() []string {
	out := make([]string, len(f.h.tensors))
	for i, t := range f.h.tensors {
		out[i] = t.Name
	}
	return out
}

// Tensors returns the description of every tensor, in the order of Names.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.h.tensors))
	for i, t := range f.h.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info returns the description of the named tensor, and false if the file
// has no tensor of that name.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.h.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.h.tensors[i].clone(), true
}

// Metadata returns a copy of the header's __metadata__ map, or nil when the
// header has none.
func (f *File) Metadata() map[string]string {
	if f.h.metadata == nil {
		return nil
	}
	return maps.Clone(f.h.metadata)
}

// Raw returns the named tensor's bytes as they are in the file
// (little-endian, row-major): a slice of the mapping, not a copy. It is
// valid until Close and must not be written to.
func (f *File) Raw(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return f.raw(t), nil
}

func (f *File) lookup(name string) (*TensorInfo, error) {
	if f.closed {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: the file is closed", f.path, name)
	}
	i, ok := f.h.index[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	return &f.h.tensors[i], nil
}

func (f *File) raw(t *TensorInfo) []byte {
	b, e := f.h.dataStart+t.Begin, f.h.dataStart+t.End
	return f.data[b:e:e]
}

// Float32 returns the named tensor's elements converted to a new float32
// slice. It converts F32, F16 and BF16 exactly and F64 with rounding to
// nearest even; any other dtype is an error naming the tensor and dtype.
func (f *File) Float32(name string) ([]float32, error) {
	return f.AppendFloat32(nil, name)
}

// AppendFloat32 converts the named tensor's elements as Float32 does and
// appends them to dst, returning the extended slice. With a dst of enough
// capacity (buf[:0], say) it allocates nothing, so a loader can convert
// tensor after tensor into one reused buffer. On error dst is returned
// unchanged.
func (f *File) AppendFloat32(dst []float32, name string) ([]float32, error) {
	t, err := f.lookup(name)
	if err != nil {
		return dst, err
	}
	if err := checkConvertible(t.DType); err != nil {
		return dst, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	raw := f.raw(t)
	n := len(raw) * 8 / t.DType.Bits()
	dst = slices.Grow(dst, n)
	decodeFloat32(dst[len(dst):len(dst)+n], t.DType, raw)
	return dst[:len(dst)+n], nil
}

// Close unmaps the file. Slices returned by Raw must not be used afterwards.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.m != nil {
		if err := f.m.Close(); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	return nil
}
