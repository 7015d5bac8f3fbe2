package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// TensorData is one tensor for Write.
type TensorData struct {
	// Name is the tensor's name.
	Name string
	// Type is its ggml type.
	Type GGMLType
	// Shape is its dimensions in row-major order (written reversed, as
	// ggml's ne). The last dimension must be a multiple of Type's block
	// size.
	Shape []int
	// Data is the tensor's bytes as ggml stores them: exactly the size
	// that Type and Shape imply.
	Data []byte
}

// Write writes a GGUF file of the given version (2 or 3) with the metadata
// kvs, in order, and the tensors, in order, each at the next aligned
// offset of the data section. The alignment is kvs' general.alignment, or
// 32 when absent. Write checks what a reader would reject (duplicate keys
// or names, invalid values, an alignment that is not a power of two,
// data of the wrong size) and writes nothing then.
func Write(w io.Writer, version uint32, kvs []KV, tensors []TensorData) error {
	if version != 2 && version != 3 {
		return fmt.Errorf("gguf: Write: version %d, want 2 or 3", version)
	}
	alignment := defaultAlignment
	seen := make(map[string]bool, len(kvs))
	for i, kv := range kvs {
		if seen[kv.Key] {
			return fmt.Errorf("gguf: Write: metadata key %q appears twice", kv.Key)
		}
		seen[kv.Key] = true
		if !kv.Value.valid() {
			return fmt.Errorf("gguf: Write: metadata pair %d (%q) has an invalid Value", i, kv.Key)
		}
		if kv.Value.depth() > maxArrayDepth {
			return fmt.Errorf("gguf: Write: metadata key %q has arrays nested more than %d deep", kv.Key, maxArrayDepth)
		}
		if kv.Key == alignmentKey {
			a, err := checkAlignment(kv.Value)
			if err != nil {
				return fmt.Errorf("gguf: Write: %w", err)
			}
			alignment = a
		}
	}
	infos := make([]TensorInfo, len(tensors))
	names := make(map[string]bool, len(tensors))
	offset := uint64(0)
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("gguf: Write: tensor %q appears twice", t.Name)
		}
		names[t.Name] = true
		info := TensorInfo{Name: t.Name, Type: t.Type, Dims: make([]uint64, len(t.Shape))}
		if len(t.Shape) > maxDims {
			return fmt.Errorf("gguf: Write: tensor %q has %d dimensions; ggml allows at most %d", t.Name, len(t.Shape), maxDims)
		}
		for j, s := range t.Shape {
			if s < 0 {
				return fmt.Errorf("gguf: Write: tensor %q has negative dimension in shape %v", t.Name, t.Shape)
			}
			info.Dims[len(t.Shape)-1-j] = uint64(s)
		}
		if err := info.computeSize(math.MaxInt); err != nil {
			return fmt.Errorf("gguf: Write: tensor %q: %w", t.Name, err)
		}
		if len(t.Data) != info.Size {
			return fmt.Errorf("gguf: Write: tensor %q: %v %v takes %d bytes, Data has %d", t.Name, t.Type, t.Shape, info.Size, len(t.Data))
		}
		info.Offset = offset
		offset = alignUp(offset+uint64(info.Size), uint64(alignment))
		infos[i] = info
	}

	e := &encoder{w: bufio.NewWriter(w)}
	e.raw([]byte("GGUF"))
	e.u32(version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.typ))
		e.value(kv.Value)
	}
	for _, t := range infos {
		e.tensorInfo(t.Name, t.Dims, t.Type, t.Offset)
	}
	// As llama.cpp does, pad before the data section and after every
	// tensor, the last included.
	e.pad(alignment)
	for _, t := range tensors {
		e.raw(t.Data)
		e.pad(alignment)
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("gguf: Write: %w", e.err)
	}
	return nil
}

// depth is how deeply arrays nest in v: 0 for a scalar, 1 for an array of
// scalars.
func (v Value) depth() int {
	vals, ok := v.v.([]Value)
	if !ok {
		if v.typ == TypeArray {
			return 1
		}
		return 0
	}
	d := 0
	for _, e := range vals {
		d = max(d, e.depth())
	}
	return 1 + d
}

// encoder writes little-endian fields, keeping the first error and the
// number of bytes written. It does no checking, so tests also use it to
// build malformed files.
type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(b)
	e.n += int64(n)
	e.err = err
}

func (e *encoder) u8(x uint8) {
	e.buf[0] = x
	e.raw(e.buf[:1])
}

func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], x)
	e.raw(e.buf[:2])
}

func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

// pad writes zeros up to the next multiple of alignment.
func (e *encoder) pad(alignment int) {
	n := int(alignUp(uint64(e.n), uint64(alignment)) - uint64(e.n))
	e.raw(make([]byte, n))
}

func (e *encoder) tensorInfo(name string, dims []uint64, typ GGMLType, offset uint64) {
	e.str(name)
	e.u32(uint32(len(dims)))
	for _, d := range dims {
		e.u64(d)
	}
	e.u32(uint32(typ))
	e.u64(offset)
}

// value writes v without its type (which precedes it for a metadata pair
// and is shared by an array's elements).
func (e *encoder) value(v Value) {
	switch x := v.v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	default: // an array
		n := v.Len()
		e.u32(uint32(v.elem))
		e.u64(uint64(n))
		for i := range n {
			e.value(v.Index(i))
		}
	}
}
