package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Limits the parser enforces beyond what the sizes in the file imply.
const (
	// maxDims is ggml's GGML_MAX_DIMS.
	maxDims = 4
	// maxArrayDepth bounds the nesting of arrays of arrays. GGUF allows
	// any depth; real files use at most two levels.
	maxArrayDepth = 64
	// maxAlignment bounds general.alignment (a UINT32 in GGUF) so that it
	// fits an int everywhere. Real files use 32 or 64.
	maxAlignment = 1 << 30
	// defaultAlignment applies when general.alignment is absent.
	defaultAlignment = 32
)

// Minimum encoded sizes, used to reject counts the file cannot hold.
const (
	minKVSize     = 8 + 4 + 1     // key length, value type, smallest value
	minTensorSize = 8 + 4 + 4 + 8 // name length, n_dims, type, offset
	headerSize    = 4 + 4 + 8 + 8 // magic, version, tensor_count, metadata_kv_count
	alignmentKey  = "general.alignment"
)

// decoder reads little-endian fields from data, keeping the position for
// error messages.
type decoder struct {
	data []byte
	off  int
}

// errTruncated is wrapped by decoder errors for reads past the end.
var errTruncated = errors.New("unexpected end of file")

func (d *decoder) left() int { return len(d.data) - d.off }

func (d *decoder) need(n int, what string) error {
	if n > d.left() {
		return fmt.Errorf("%w at byte %d reading %s (need %d bytes, %d left)", errTruncated, d.off, what, n, d.left())
	}
	return nil
}

func (d *decoder) bytes(n int, what string) ([]byte, error) {
	if err := d.need(n, what); err != nil {
		return nil, err
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 count of items of at least minSize bytes each and
// rejects one the rest of the file cannot hold, so that callers may
// allocate count items.
func (d *decoder) count(minSize int, what string) (int, error) {
	n, err := d.u64(what)
	if err != nil {
		return 0, err
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(d.left()/minSize) {
		return 0, fmt.Errorf("%s is %d, but the %d bytes left in the file can hold at most %d", what, n, d.left(), d.left()/minSize)
	}
	return int(n), nil
}

func (d *decoder) str(what string) (string, error) {
	if d.left() < 8 {
		return "", d.need(8, what+" length") // what is only built on error
	}
	n := binary.LittleEndian.Uint64(d.data[d.off:])
	d.off += 8
	if n > uint64(d.left()) {
		return "", fmt.Errorf("%w at byte %d: %s is %d bytes long, %d left", errTruncated, d.off-8, what, n, d.left())
	}
	b, _ := d.bytes(int(n), what)
	return string(b), nil
}

// parse decodes the header, metadata and tensor infos of f.data and checks
// every tensor's bytes lie inside it.
func (f *File) parse() error {
	d := &decoder{data: f.data}
	if len(f.data) < 4 || string(f.data[:4]) != "GGUF" {
		magic := f.data[:min(4, len(f.data))]
		return fmt.Errorf("not a GGUF file: it starts with %q, want \"GGUF\"", magic)
	}
	d.off = 4
	version, err := d.u32("version")
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	switch version {
	case 2, 3:
	case 1:
		return errors.New("GGUF v1 is not supported (it used 32-bit counts and lengths); convert the file to GGUF v3")
	case 0x02000000, 0x03000000:
		return fmt.Errorf("big-endian GGUF (version %d byte-swapped) is not supported", version>>24)
	default:
		return fmt.Errorf("unsupported GGUF version %d (want 2 or 3)", version)
	}
	f.version = version
	if err := d.need(headerSize-d.off, "header"); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	nTensors, err := d.count(minTensorSize, "tensor_count")
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	nKV, err := d.count(minKVSize, "metadata_kv_count")
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}

	f.kvs = make([]KV, 0, nKV)
	f.index = make(map[string]int, nKV)
	for i := range nKV {
		key, err := d.str("key")
		if err != nil {
			return fmt.Errorf("metadata pair %d: %w", i, err)
		}
		if j, dup := f.index[key]; dup {
			return fmt.Errorf("metadata key %q appears twice (pairs %d and %d)", key, j, i)
		}
		typ, err := d.u32("value type")
		if err != nil {
			return fmt.Errorf("metadata key %q: %w", key, err)
		}
		v, err := d.value(ValueType(typ), 0)
		if err != nil {
			return fmt.Errorf("metadata key %q: %w", key, err)
		}
		f.index[key] = len(f.kvs)
		f.kvs = append(f.kvs, KV{Key: key, Value: v})
	}

	f.alignment = defaultAlignment
	if v, ok := f.Get(alignmentKey); ok {
		a, err := checkAlignment(v)
		if err != nil {
			return err
		}
		f.alignment = a
	}

	// Check tensor_count again against what the metadata left.
	if nTensors > d.left()/minTensorSize {
		return fmt.Errorf("tensor_count is %d, but the %d bytes after the metadata can hold at most %d tensor infos", nTensors, d.left(), d.left()/minTensorSize)
	}
	f.tensors = make([]TensorInfo, 0, nTensors)
	f.byName = make(map[string]int, nTensors)
	for i := range nTensors {
		t, err := d.tensorInfo(i)
		if err != nil {
			return err
		}
		if j, dup := f.byName[t.Name]; dup {
			return fmt.Errorf("tensor %q appears twice (tensors %d and %d)", t.Name, j, i)
		}
		f.byName[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}

	// The data section starts at the next multiple of the alignment.
	f.dataStart = alignUp(uint64(d.off), uint64(f.alignment))
	for _, t := range f.tensors {
		if t.Offset%uint64(f.alignment) != 0 {
			return fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.alignment)
		}
		// dataStart+Offset+Size <= len, without overflow.
		end := uint64(len(f.data))
		if f.dataStart > end || t.Offset > end-f.dataStart || uint64(t.Size) > end-f.dataStart-t.Offset {
			return fmt.Errorf("tensor %q: its %d bytes at data offset %d (file offset %d) run past the end of the %d-byte file",
				t.Name, t.Size, t.Offset, f.dataStart+t.Offset, len(f.data))
		}
	}
	return nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// checkAlignment validates general.alignment: an integer that is a power
// of two no larger than maxAlignment.
func checkAlignment(v Value) (int, error) {
	a, ok := v.AsUint()
	if !ok {
		return 0, fmt.Errorf("metadata key %q is %s %v, want a UINT32 power of two", alignmentKey, v.describe(), v)
	}
	if a == 0 || a&(a-1) != 0 || a > maxAlignment {
		return 0, fmt.Errorf("metadata key %q is %d, want a power of two from 1 to %d", alignmentKey, a, maxAlignment)
	}
	return int(a), nil
}

// value decodes one value of type typ; depth counts enclosing arrays.
func (d *decoder) value(typ ValueType, depth int) (Value, error) {
	switch typ {
	case TypeString:
		s, err := d.str("string value")
		if err != nil {
			return Value{}, err
		}
		return Value{typ: typ, v: s}, nil
	case TypeArray:
		return d.array(depth)
	}
	size := typ.fixedSize()
	if size == 0 {
		return Value{}, fmt.Errorf("invalid value type %d at byte %d (want 0 to %d)", uint32(typ), d.off-4, len(valueTypeNames)-1)
	}
	if d.left() < size {
		return Value{}, d.need(size, "value of type "+typ.String())
	}
	b, _ := d.bytes(size, "")
	var x any
	switch typ {
	case TypeUint8:
		x = b[0]
	case TypeInt8:
		x = int8(b[0])
	case TypeUint16:
		x = binary.LittleEndian.Uint16(b)
	case TypeInt16:
		x = int16(binary.LittleEndian.Uint16(b))
	case TypeUint32:
		x = binary.LittleEndian.Uint32(b)
	case TypeInt32:
		x = int32(binary.LittleEndian.Uint32(b))
	case TypeFloat32:
		x = math.Float32frombits(binary.LittleEndian.Uint32(b))
	case TypeBool:
		if b[0] > 1 {
			return Value{}, fmt.Errorf("BOOL value at byte %d is %d, want 0 or 1", d.off-1, b[0])
		}
		x = b[0] == 1
	case TypeUint64:
		x = binary.LittleEndian.Uint64(b)
	case TypeInt64:
		x = int64(binary.LittleEndian.Uint64(b))
	case TypeFloat64:
		x = math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return Value{typ: typ, v: x}, nil
}

// array decodes an ARRAY's element type, count and elements.
func (d *decoder) array(depth int) (Value, error) {
	if depth >= maxArrayDepth {
		return Value{}, fmt.Errorf("arrays nested more than %d deep at byte %d", maxArrayDepth, d.off)
	}
	et, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, fmt.Errorf("invalid array element type %d at byte %d (want 0 to %d)", et, d.off-4, len(valueTypeNames)-1)
	}
	n, err := d.count(elem.minSize(), "array length")
	if err != nil {
		return Value{}, fmt.Errorf("array of %v: %w", elem, err)
	}
	out := Value{typ: TypeArray, elem: elem}
	// count has checked that n fixed-size elements fit in the file.
	raw := func(size int) []byte { b, _ := d.bytes(n*size, ""); return b }
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		out.v = append([]uint8{}, raw(1)...)
	case TypeInt8:
		out.v = decodeSlice(raw(1), 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeUint16:
		out.v = decodeSlice(raw(2), 2, le.Uint16)
	case TypeInt16:
		out.v = decodeSlice(raw(2), 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TypeUint32:
		out.v = decodeSlice(raw(4), 4, le.Uint32)
	case TypeInt32:
		out.v = decodeSlice(raw(4), 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TypeFloat32:
		out.v = decodeSlice(raw(4), 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TypeUint64:
		out.v = decodeSlice(raw(8), 8, le.Uint64)
	case TypeInt64:
		out.v = decodeSlice(raw(8), 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case TypeFloat64:
		out.v = decodeSlice(raw(8), 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case TypeBool:
		start := d.off
		bs := raw(1)
		s := make([]bool, n)
		for i, b := range bs {
			if b > 1 {
				return Value{}, fmt.Errorf("BOOL element %d at byte %d is %d, want 0 or 1", i, start+i, b)
			}
			s[i] = b == 1
		}
		out.v = s
	case TypeString:
		s := make([]string, n)
		for i := range s {
			if s[i], err = d.str("string"); err != nil {
				return Value{}, atElement(err, i)
			}
		}
		out.v = s
	case TypeArray:
		s := make([]Value, n)
		for i := range s {
			if s[i], err = d.array(depth + 1); err != nil {
				return Value{}, atElement(err, i)
			}
		}
		out.v = s
	}
	return out, nil
}

// elemError is an error inside an array, with the index path to the
// element at fault. The path grows as the error returns through enclosing
// arrays, so deep nesting costs one allocation per level, not a new
// message per level.
type elemError struct {
	path []int // innermost index first
	err  error
}

func (e *elemError) Error() string {
	var b strings.Builder
	b.WriteString("array element ")
	for i := len(e.path) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "[%d]", e.path[i])
	}
	b.WriteString(": ")
	b.WriteString(e.err.Error())
	return b.String()
}

func (e *elemError) Unwrap() error { return e.err }

// atElement records that err happened in element i of an array.
func atElement(err error, i int) error {
	if ee, ok := err.(*elemError); ok {
		ee.path = append(ee.path, i)
		return ee
	}
	return &elemError{path: []int{i}, err: err}
}

func decodeSlice[T any](b []byte, size int, dec func([]byte) T) []T {
	s := make([]T, len(b)/size)
	for i := range s {
		s[i] = dec(b[i*size:])
	}
	return s
}

// tensorInfo decodes and checks tensor info i: its name, dimensions, type
// and offset. The offset is checked against the data section later.
func (d *decoder) tensorInfo(i int) (TensorInfo, error) {
	var t TensorInfo
	name, err := d.str("name")
	if err != nil {
		return t, fmt.Errorf("tensor info %d: %w", i, err)
	}
	t.Name = name
	wrap := func(err error) error { return fmt.Errorf("tensor %q: %w", name, err) }
	nd, err := d.u32("n_dims")
	if err != nil {
		return t, wrap(err)
	}
	if nd > maxDims {
		return t, fmt.Errorf("tensor %q has %d dimensions; ggml allows at most %d", name, nd, maxDims)
	}
	t.Dims = make([]uint64, nd)
	for j := range t.Dims {
		if t.Dims[j], err = d.u64("dimension"); err != nil {
			return t, wrap(err)
		}
	}
	typ, err := d.u32("type")
	if err != nil {
		return t, wrap(err)
	}
	t.Type = GGMLType(typ)
	if t.Offset, err = d.u64("offset"); err != nil {
		return t, wrap(err)
	}
	if err := t.computeSize(len(d.data)); err != nil {
		return t, wrap(err)
	}
	return t, nil
}

// computeSize checks t's type and dimensions and fills in Shape, Elements
// and Size. limit bounds the size (the file's length): a tensor larger
// than its file cannot be stored in it.
func (t *TensorInfo) computeSize(limit int) error {
	ti, ok := t.Type.info()
	if !ok {
		return fmt.Errorf("unknown ggml type %d", uint32(t.Type))
	}
	if ti.blockSize == 0 {
		return fmt.Errorf("type %v was removed from ggml and its layout is unknown", t.Type)
	}
	t.Shape = make([]int, len(t.Dims))
	n := uint64(1)
	zero := false
	for j, dim := range t.Dims {
		if dim > math.MaxInt64 || dim > uint64(math.MaxInt) {
			return fmt.Errorf("dimension %d (ne[%d]) is %d, too large", len(t.Dims)-1-j, j, dim)
		}
		t.Shape[len(t.Dims)-1-j] = int(dim)
		if dim == 0 {
			zero = true
		} else if !zero && n > uint64(math.MaxInt)/dim {
			return fmt.Errorf("dimensions %v (ne order) hold more than %d elements", t.Dims, math.MaxInt)
		}
		n *= dim
	}
	if zero {
		n = 0
	}
	row := uint64(1) // ne[0], the fastest-varying dimension
	if len(t.Dims) > 0 {
		row = t.Dims[0]
	}
	bs := uint64(ti.blockSize)
	if row%bs != 0 {
		return fmt.Errorf("type %v stores blocks of %d elements, but its rows (ne[0]) have %d", t.Type, bs, row)
	}
	// size = n / blockSize * typeSize, which must fit in the file.
	blocks := n / bs
	if blocks > uint64(limit/ti.typeSize) {
		return fmt.Errorf("%v %v takes %d blocks of %d bytes, more than the %d-byte file holds", t.Type, t.Shape, blocks, ti.typeSize, limit)
	}
	t.Elements = int(n)
	t.Size = int(blocks) * ti.typeSize
	return nil
}
