package cpu

import (
	"fmt"
	"unsafe"

	"github.com/whet-ai/whet/tensor"
)

// Float is the element type of a compute kernel: float32 for training,
// float64 for gradient checks.
type Float interface{ ~float32 | ~float64 }

// Float64s returns the elements of a CPU F64 tensor as a slice that aliases
// the tensor's memory.
func Float64s(t *tensor.Tensor) ([]float64, error) {
	if t.DType() != tensor.F64 {
		return nil, fmt.Errorf("cpu: tensor %v is not f64", t)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&raw[0])), len(raw)/8), nil
}

// Int32s returns the elements of a CPU I32 tensor as a slice that aliases
// the tensor's memory.
func Int32s(t *tensor.Tensor) ([]int32, error) {
	if t.DType() != tensor.I32 {
		return nil, fmt.Errorf("cpu: tensor %v is not i32", t)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&raw[0])), len(raw)/4), nil
}

// Uint16s returns the elements of a CPU BF16 or F16 tensor as their raw bit
// patterns, aliasing the tensor's memory.
func Uint16s(t *tensor.Tensor) ([]uint16, error) {
	if t.DType() != tensor.BF16 && t.DType() != tensor.F16 {
		return nil, fmt.Errorf("cpu: tensor %v is not bf16 or f16", t)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), len(raw)/2), nil
}

// floats returns the elements of a CPU tensor of dtype F32 (when T is
// float32) or F64 (when T is float64), aliasing its memory. name is used in
// the error when the tensor is nil, elsewhere or of another dtype.
func floats[T Float](name string, t *tensor.Tensor) ([]T, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: missing tensor", name)
	}
	var zero T
	want := tensor.F32
	if unsafe.Sizeof(zero) == 8 {
		want = tensor.F64
	}
	if t.DType() != want {
		return nil, fmt.Errorf("%s: tensor %v, want %v", name, t, want)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&raw[0])), len(raw)/int(unsafe.Sizeof(zero))), nil
}

// optFloats is floats for an optional operand: nil stays nil.
func optFloats[T Float](name string, t *tensor.Tensor) ([]T, error) {
	if t == nil {
		return nil, nil
	}
	return floats[T](name, t)
}
