package tensor

import "fmt"

// DType identifies the element type of a tensor.
//
// The zero value is Invalid, so an uninitialised DType is never mistaken
// for a real element type.
type DType uint8

// Supported element types.
const (
	// Invalid is the zero DType; it denotes an unset or unknown type.
	Invalid DType = iota
	// F32 is IEEE 754 binary32 (float32).
	F32
	// BF16 is bfloat16: the top 16 bits of a binary32 (8-bit exponent,
	// 7-bit mantissa), stored as a uint16.
	BF16
	// F16 is IEEE 754 binary16 (5-bit exponent, 10-bit mantissa), stored
	// as a uint16.
	F16
	// I32 is a signed 32-bit integer.
	I32
	// I64 is a signed 64-bit integer.
	I64
	// F64 is IEEE 754 binary64 (float64). whet computes in it to check
	// gradients against finite differences; models train in F32 or BF16.
	F64
	// U8 is an unsigned byte: the packed codes of quantised weights.
	U8
)

// Size returns the number of bytes one element of d occupies, or 0 for
// Invalid and unknown values.
func (d DType) Size() int {
	switch d {
	case U8:
		return 1
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	case I64, F64:
		return 8
	}
	return 0
}

// String returns the lowercase name of d ("f32", "bf16", "f16", "i32",
// "i64"), "invalid" for Invalid, and "dtype(N)" for unknown values.
func (d DType) String() string {
	switch d {
	case Invalid:
		return "invalid"
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F64:
		return "f64"
	case U8:
		return "u8"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// IsFloat reports whether d is a floating-point type (F32, BF16, F16 or F64).
func (d DType) IsFloat() bool {
	return d == F32 || d == BF16 || d == F16 || d == F64
}

// ParseDType parses a dtype name. It accepts the lowercase names produced
// by String ("f32", "bf16", ...), the safetensors header spellings ("F32",
// "BF16", "F16", "I32", "I64", "F64") and the torch_dtype names used in Hugging
// Face config.json files ("float32", "bfloat16", "float16", "int32",
// "int64"). Matching is exact; any other string yields Invalid and an
// error.
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32", "F32", "float32":
		return F32, nil
	case "bf16", "BF16", "bfloat16":
		return BF16, nil
	case "f16", "F16", "float16":
		return F16, nil
	case "i32", "I32", "int32":
		return I32, nil
	case "i64", "I64", "int64":
		return I64, nil
	case "f64", "F64", "float64":
		return F64, nil
	case "u8", "U8", "uint8":
		return U8, nil
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q", s)
}
