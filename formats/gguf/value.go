package gguf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type of a metadata value: GGUF's gguf_type.
type ValueType uint32

// The metadata value types, with GGUF's numbering.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7 // one byte, 0 or 1
	TypeString  ValueType = 8 // u64 length, then that many bytes
	TypeArray   ValueType = 9 // element type (u32), u64 count, then the elements
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
	"BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
}

// String returns GGUF's name for the type ("UINT32", "STRING", ...), or
// "ValueType(N)" for an unknown id.
func (t ValueType) String() string {
	if t.valid() {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(t))
}

func (t ValueType) valid() bool { return uint64(t) < uint64(len(valueTypeNames)) }

// fixedSize is the encoded size of one value of a fixed-size type, or 0 for
// STRING and ARRAY.
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// minSize is the fewest bytes one encoded value of type t can take: the
// bound the parser uses to reject counts a file cannot hold.
func (t ValueType) minSize() int {
	switch t {
	case TypeString:
		return 8 // the length
	case TypeArray:
		return 4 + 8 // element type and count
	}
	return t.fixedSize()
}

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

// Value is one metadata value. Scalars hold the matching Go type (uint8,
// int8, ..., float64, bool, string). Arrays hold a Go slice of the
// element type ([]uint32, []string, ...), or []Value for an array of
// arrays. The zero Value is invalid: build values with ValueOf or Array.
type Value struct {
	typ  ValueType
	elem ValueType // element type of an ARRAY
	v    any
}

// ValueOf makes a Value from a Go value of one of the types GGUF stores:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string,
// uint64, int64 or float64, a slice of one of those (an ARRAY of that
// type), or a non-empty []Value (an ARRAY whose elements have the type of
// the first; use Array for an empty one). Slices are not copied.
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case uint8:
		return Value{typ: TypeUint8, v: x}, nil
	case int8:
		return Value{typ: TypeInt8, v: x}, nil
	case uint16:
		return Value{typ: TypeUint16, v: x}, nil
	case int16:
		return Value{typ: TypeInt16, v: x}, nil
	case uint32:
		return Value{typ: TypeUint32, v: x}, nil
	case int32:
		return Value{typ: TypeInt32, v: x}, nil
	case float32:
		return Value{typ: TypeFloat32, v: x}, nil
	case bool:
		return Value{typ: TypeBool, v: x}, nil
	case string:
		return Value{typ: TypeString, v: x}, nil
	case uint64:
		return Value{typ: TypeUint64, v: x}, nil
	case int64:
		return Value{typ: TypeInt64, v: x}, nil
	case float64:
		return Value{typ: TypeFloat64, v: x}, nil
	case []uint8:
		return arrayOf(TypeUint8, x), nil
	case []int8:
		return arrayOf(TypeInt8, x), nil
	case []uint16:
		return arrayOf(TypeUint16, x), nil
	case []int16:
		return arrayOf(TypeInt16, x), nil
	case []uint32:
		return arrayOf(TypeUint32, x), nil
	case []int32:
		return arrayOf(TypeInt32, x), nil
	case []float32:
		return arrayOf(TypeFloat32, x), nil
	case []bool:
		return arrayOf(TypeBool, x), nil
	case []string:
		return arrayOf(TypeString, x), nil
	case []uint64:
		return arrayOf(TypeUint64, x), nil
	case []int64:
		return arrayOf(TypeInt64, x), nil
	case []float64:
		return arrayOf(TypeFloat64, x), nil
	case []Value:
		if len(x) == 0 {
			return Value{}, fmt.Errorf("gguf: ValueOf: an empty []Value has no element type; use Array")
		}
		return Array(x[0].typ, x)
	}
	return Value{}, fmt.Errorf("gguf: ValueOf: GGUF cannot store a %T", x)
}

// MustValueOf is ValueOf for values known to be valid: it panics where
// ValueOf returns an error.
func MustValueOf(x any) Value {
	v, err := ValueOf(x)
	if err != nil {
		panic(err)
	}
	return v
}

// Array makes an ARRAY of elements of type elem from vals, each of which
// must have that type. It is the way to build an array of arrays (whose
// elements may differ in element type and length) and any empty array.
// The slice is not copied.
func Array(elem ValueType, vals []Value) (Value, error) {
	if !elem.valid() {
		return Value{}, fmt.Errorf("gguf: Array: invalid element type %v", elem)
	}
	for i, v := range vals {
		if !v.valid() {
			return Value{}, fmt.Errorf("gguf: Array: element %d is an invalid Value", i)
		}
		if v.typ != elem {
			return Value{}, fmt.Errorf("gguf: Array: element %d is %v, not %v", i, v.typ, elem)
		}
	}
	if elem == TypeArray {
		if vals == nil {
			vals = []Value{}
		}
		return Value{typ: TypeArray, elem: TypeArray, v: vals}, nil
	}
	// Store scalars as a typed slice, as the parser does.
	out := Value{typ: TypeArray, elem: elem}
	switch elem {
	case TypeUint8:
		out.v = collect[uint8](vals)
	case TypeInt8:
		out.v = collect[int8](vals)
	case TypeUint16:
		out.v = collect[uint16](vals)
	case TypeInt16:
		out.v = collect[int16](vals)
	case TypeUint32:
		out.v = collect[uint32](vals)
	case TypeInt32:
		out.v = collect[int32](vals)
	case TypeFloat32:
		out.v = collect[float32](vals)
	case TypeBool:
		out.v = collect[bool](vals)
	case TypeString:
		out.v = collect[string](vals)
	case TypeUint64:
		out.v = collect[uint64](vals)
	case TypeInt64:
		out.v = collect[int64](vals)
	case TypeFloat64:
		out.v = collect[float64](vals)
	}
	return out, nil
}

func collect[T any](vals []Value) []T {
	s := make([]T, len(vals))
	for i, v := range vals {
		s[i] = v.v.(T)
	}
	return s
}

func arrayOf[T any](elem ValueType, s []T) Value {
	if s == nil {
		s = []T{}
	}
	return Value{typ: TypeArray, elem: elem, v: s}
}

// valid reports whether v was built by ValueOf, Array or the parser: its
// Go value matches its type.
func (v Value) valid() bool {
	if v.v == nil {
		return false
	}
	if v.typ != TypeArray {
		w, err := ValueOf(v.v)
		return err == nil && w.typ == v.typ
	}
	if vals, ok := v.v.([]Value); ok {
		if v.elem != TypeArray {
			return false
		}
		for _, e := range vals {
			if e.typ != TypeArray || !e.valid() {
				return false
			}
		}
		return true
	}
	w, err := ValueOf(v.v)
	return err == nil && w.typ == TypeArray && w.elem == v.elem
}

// Type is the value's type.
func (v Value) Type() ValueType { return v.typ }

// ElemType is the element type of an ARRAY value. For other values it is
// meaningless.
func (v Value) ElemType() ValueType { return v.elem }

// Len is the number of elements of an ARRAY value, and 0 for any other.
func (v Value) Len() int {
	if v.typ != TypeArray {
		return 0
	}
	switch s := v.v.(type) {
	case []uint8:
		return len(s)
	case []int8:
		return len(s)
	case []uint16:
		return len(s)
	case []int16:
		return len(s)
	case []uint32:
		return len(s)
	case []int32:
		return len(s)
	case []float32:
		return len(s)
	case []bool:
		return len(s)
	case []string:
		return len(s)
	case []uint64:
		return len(s)
	case []int64:
		return len(s)
	case []float64:
		return len(s)
	case []Value:
		return len(s)
	}
	return 0
}

// Index returns element i of an ARRAY value. It panics if v is not an
// array or i is out of range, as indexing a slice does.
func (v Value) Index(i int) Value {
	if v.typ != TypeArray {
		panic(fmt.Sprintf("gguf: Index of a %v value", v.typ))
	}
	if vals, ok := v.v.([]Value); ok {
		return vals[i]
	}
	var e any
	switch s := v.v.(type) {
	case []uint8:
		e = s[i]
	case []int8:
		e = s[i]
	case []uint16:
		e = s[i]
	case []int16:
		e = s[i]
	case []uint32:
		e = s[i]
	case []int32:
		e = s[i]
	case []float32:
		e = s[i]
	case []bool:
		e = s[i]
	case []string:
		e = s[i]
	case []uint64:
		e = s[i]
	case []int64:
		e = s[i]
	case []float64:
		e = s[i]
	}
	return Value{typ: v.elem, v: e}
}

// Any returns the value as a Go value: the scalar, or the slice of an
// ARRAY ([]Value for an array of arrays). The slice is shared with v and
// must not be modified.
func (v Value) Any() any { return v.v }

// AsUint returns an integer value (of any integer type) as a uint64. It
// reports false for other types and for negative values.
func (v Value) AsUint() (uint64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	if i, ok := v.signed(); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// AsInt returns an integer value (of any integer type) as an int64. It
// reports false for other types and for a UINT64 above math.MaxInt64.
func (v Value) AsInt() (int64, bool) {
	if i, ok := v.signed(); ok {
		return i, true
	}
	if u, ok := v.AsUint(); ok && u <= math.MaxInt64 {
		return int64(u), true
	}
	return 0, false
}

func (v Value) signed() (int64, bool) {
	switch x := v.v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// AsFloat returns a FLOAT32 or FLOAT64 value as a float64. It reports
// false for other types, integers included.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// AsBool returns a BOOL value. It reports false for other types.
func (v Value) AsBool() (b, ok bool) {
	b, ok = v.v.(bool)
	return b, ok
}

// AsString returns a STRING value. It reports false for other types.
func (v Value) AsString() (string, bool) {
	s, ok := v.v.(string)
	return s, ok
}

// describe names the value's type for error messages: "UINT32", or
// "ARRAY of 512 STRING".
func (v Value) describe() string {
	if v.typ == TypeArray {
		return fmt.Sprintf("ARRAY of %d %v", v.Len(), v.elem)
	}
	return v.typ.String()
}

// maxShown is how many elements of an array String shows.
const maxShown = 8

// String formats the value for people: strings quoted, arrays as
// "[512]STRING{"<unk>", "<s>", ...}" with at most a few elements shown.
func (v Value) String() string {
	var b strings.Builder
	v.format(&b)
	return b.String()
}

func (v Value) format(b *strings.Builder) {
	if v.typ != TypeArray {
		switch x := v.v.(type) {
		case string:
			b.WriteString(strconv.Quote(x))
		case float32:
			b.WriteString(strconv.FormatFloat(float64(x), 'g', -1, 32))
		case nil:
			b.WriteString("<invalid>")
		default:
			fmt.Fprint(b, x)
		}
		return
	}
	n := v.Len()
	fmt.Fprintf(b, "[%d]%v{", n, v.elem)
	for i := 0; i < n && i < maxShown; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		v.Index(i).format(b)
	}
	if n > maxShown {
		b.WriteString(", ...")
	}
	b.WriteByte('}')
}
