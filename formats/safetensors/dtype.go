package safetensors

import (
	"fmt"

	"github.com/whet-ai/whet/tensor"
)

// Dtype is the element type of a tensor as the safetensors format names it.
// It covers every dtype of the format, including the ones whet cannot yet
// compute with (those can still be read as raw bytes and written back).
//
// The zero value is Invalid. The other values are declared in the order of
// the reference (Rust) library's Dtype enum, which is the order its writer
// uses, descending, to lay tensors out; Write does the same.
type Dtype uint8

// The dtypes of the safetensors format. The comment on each gives its
// spelling in a header; Dtype.String returns that spelling.
const (
	// Invalid is the zero Dtype: unset or unknown.
	Invalid Dtype = iota
	// Bool is "BOOL", one byte per element.
	Bool
	// F4 is "F4", the 4-bit MX float (E2M1); two elements per byte.
	F4
	// F6E2M3 is "F6_E2M3", a 6-bit MX float.
	F6E2M3
	// F6E3M2 is "F6_E3M2", a 6-bit MX float.
	F6E3M2
	// U8 is "U8", an unsigned byte.
	U8
	// I8 is "I8", a signed byte.
	I8
	// F8E5M2 is "F8_E5M2", an 8-bit float with a 5-bit exponent.
	F8E5M2
	// F8E4M3 is "F8_E4M3", an 8-bit float with a 4-bit exponent.
	F8E4M3
	// F8E8M0 is "F8_E8M0", the exponent-only MX scale type.
	F8E8M0
	// F8E4M3FNUZ is "F8_E4M3FNUZ", the finite, unsigned-zero E4M3 variant.
	F8E4M3FNUZ
	// F8E5M2FNUZ is "F8_E5M2FNUZ", the finite, unsigned-zero E5M2 variant.
	F8E5M2FNUZ
	// I16 is "I16", a signed 16-bit integer.
	I16
	// U16 is "U16", an unsigned 16-bit integer.
	U16
	// F16 is "F16", IEEE 754 binary16.
	F16
	// BF16 is "BF16", bfloat16.
	BF16
	// I32 is "I32", a signed 32-bit integer.
	I32
	// U32 is "U32", an unsigned 32-bit integer.
	U32
	// F32 is "F32", IEEE 754 binary32.
	F32
	// C64 is "C64", a complex number of two binary32 parts.
	C64
	// F64 is "F64", IEEE 754 binary64.
	F64
	// I64 is "I64", a signed 64-bit integer.
	I64
	// U64 is "U64", an unsigned 64-bit integer.
	U64

	numDtypes // one past the last valid Dtype
)

var dtypeNames = [numDtypes]string{
	Invalid:    "invalid",
	Bool:       "BOOL",
	F4:         "F4",
	F6E2M3:     "F6_E2M3",
	F6E3M2:     "F6_E3M2",
	U8:         "U8",
	I8:         "I8",
	F8E5M2:     "F8_E5M2",
	F8E4M3:     "F8_E4M3",
	F8E8M0:     "F8_E8M0",
	F8E4M3FNUZ: "F8_E4M3FNUZ",
	F8E5M2FNUZ: "F8_E5M2FNUZ",
	I16:        "I16",
	U16:        "U16",
	F16:        "F16",
	BF16:       "BF16",
	I32:        "I32",
	U32:        "U32",
	F32:        "F32",
	C64:        "C64",
	F64:        "F64",
	I64:        "I64",
	U64:        "U64",
}

var dtypeBits = [numDtypes]uint64{
	Bool: 8, F4: 4, F6E2M3: 6, F6E3M2: 6, U8: 8, I8: 8,
	F8E5M2: 8, F8E4M3: 8, F8E8M0: 8, F8E4M3FNUZ: 8, F8E5M2FNUZ: 8,
	I16: 16, U16: 16, F16: 16, BF16: 16,
	I32: 32, U32: 32, F32: 32,
	C64: 64, F64: 64, I64: 64, U64: 64,
}

// Dtypes returns every valid Dtype, in declaration order.
func Dtypes() []Dtype {
	out := make([]Dtype, 0, numDtypes-1)
	for d := Invalid + 1; d < numDtypes; d++ {
		out = append(out, d)
	}
	return out
}

// ParseDtype returns the Dtype a header spells as s ("F32", "BF16",
// "F8_E4M3", ...). Matching is exact and case-sensitive, as in the format.
func ParseDtype(s string) (Dtype, error) {
	for d := Invalid + 1; d < numDtypes; d++ {
		if dtypeNames[d] == s {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("safetensors: unknown dtype %q", s)
}

// Valid reports whether d is one of the format's dtypes.
func (d Dtype) Valid() bool { return d > Invalid && d < numDtypes }

// String returns the header spelling of d ("F32", "F8_E4M3", ...),
// "invalid" for Invalid and "Dtype(N)" for values out of range.
func (d Dtype) String() string {
	if d < numDtypes {
		return dtypeNames[d]
	}
	return fmt.Sprintf("Dtype(%d)", uint8(d))
}

// Bits returns the width of one element in bits (4 for F4, 6 for the F6
// types), or 0 for an invalid Dtype. A tensor's data is its element count
// times Bits, which must come to a whole number of bytes.
func (d Dtype) Bits() int {
	if d.Valid() {
		return int(dtypeBits[d])
	}
	return 0
}

// Convertible reports whether Float32 can convert tensors of this dtype
// (F32, F16, BF16 and F64).
func (d Dtype) Convertible() bool {
	return d == F32 || d == F16 || d == BF16 || d == F64
}

// TensorDType returns the whet tensor dtype with the same element layout,
// and false where whet has none (everything but F32, F64, BF16, F16, I32, I64, U8).
func (d Dtype) TensorDType() (tensor.DType, bool) {
	switch d {
	case F32:
		return tensor.F32, true
	case BF16:
		return tensor.BF16, true
	case F16:
		return tensor.F16, true
	case I32:
		return tensor.I32, true
	case I64:
		return tensor.I64, true
	case F64:
		return tensor.F64, true
	case U8:
		return tensor.U8, true
	}
	return tensor.Invalid, false
}

// FromTensorDType returns the safetensors dtype for a whet tensor dtype.
func FromTensorDType(t tensor.DType) (Dtype, error) {
	switch t {
	case tensor.F32:
		return F32, nil
	case tensor.BF16:
		return BF16, nil
	case tensor.F16:
		return F16, nil
	case tensor.I32:
		return I32, nil
	case tensor.I64:
		return I64, nil
	case tensor.F64:
		return F64, nil
	case tensor.U8:
		return U8, nil
	}
	return Invalid, fmt.Errorf("safetensors: no dtype for tensor dtype %v", t)
}
