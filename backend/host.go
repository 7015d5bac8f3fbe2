package backend

import (
	"fmt"
	"unsafe"

	"github.com/whet-ai/whet/tensor"
)

// FromFloat32 allocates an F32 tensor of the given shape on b and fills it with data.
func FromFloat32(b Backend, data []float32, shape ...int) (*tensor.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("backend: %d values for shape %v (%d elements)", len(data), shape, n)
	}
	t, err := b.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := b.CopyFromHost(t, Float32Bytes(data)); err != nil {
		return nil, err
	}
	return t, nil
}

// ToFloat32 copies an F32 tensor's elements to a new host slice.
func ToFloat32(b Backend, t *tensor.Tensor) ([]float32, error) {
	if t.DType() != tensor.F32 {
		return nil, fmt.Errorf("backend: ToFloat32 of a %v tensor", t.DType())
	}
	out := make([]float32, t.Len())
	if err := b.CopyToHost(Float32Bytes(out), t); err != nil {
		return nil, err
	}
	return out, nil
}

// Float32Bytes views a float32 slice as its bytes in memory order, which is
// little-endian on every architecture whet supports. It copies nothing.
func Float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}
