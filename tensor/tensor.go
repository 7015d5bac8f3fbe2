// Package tensor defines whet's dense tensors: a shape, a dtype and a view
// into memory that a back end owns.
//
// A Tensor does not know where its memory lives. Its Storage is host memory
// for the CPU back end and device memory for an accelerator; only the back end
// that allocated it reads or writes the elements. Several tensors may view one
// Storage at different offsets, which is how whet keeps every trainable
// parameter in one contiguous buffer with a named view per weight.
//
// The package also holds the element types (DType) and the bf16 and f16
// conversions that every back end and file format shares.
package tensor

import (
	"fmt"
	"math"
	"strings"
)

// Storage is a block of memory owned by a back end.
type Storage interface {
	// Len is the size of the block in bytes.
	Len() int
	// Backend names the back end that owns the block, e.g. "cpu".
	Backend() string
}

// Tensor is a dense, row-major view of elements of one dtype in a Storage.
// Tensors are values that describe memory; copying a *Tensor's fields never
// copies elements.
type Tensor struct {
	shape   []int
	dtype   DType
	storage Storage
	offset  int // in elements of dtype
}

// New returns a tensor of the given dtype and shape that views storage from
// element offset on. The storage must hold every element.
func New(storage Storage, dtype DType, offset int, shape ...int) (*Tensor, error) {
	if storage == nil {
		return nil, fmt.Errorf("tensor: nil storage")
	}
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("tensor: invalid dtype %v", dtype)
	}
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("tensor: negative offset %d", offset)
	}
	if need := (offset + n) * dtype.Size(); need > storage.Len() {
		return nil, fmt.Errorf("tensor: %s%v at element offset %d needs %d bytes, storage has %d",
			dtype, shape, offset, need, storage.Len())
	}
	return &Tensor{shape: append([]int(nil), shape...), dtype: dtype, storage: storage, offset: offset}, nil
}

// NumElements returns the product of the dimensions of shape, or an error for
// a negative dimension or a product that overflows.
func NumElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor: negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("tensor: shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// Shape returns a copy of the dimensions.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n, _ := NumElements(t.shape) // validated when the tensor was made
	return n
}

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Storage is the memory the tensor views.
func (t *Tensor) Storage() Storage { return t.storage }

// Offset is the position of the first element in the storage, in elements.
func (t *Tensor) Offset() int { return t.offset }

// Bytes is the size of the elements in bytes.
func (t *Tensor) Bytes() int { return t.Len() * t.dtype.Size() }

// Reshape returns a tensor with a new shape over the same elements. One
// dimension may be -1, meaning whatever the others leave.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	shape = append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("tensor: reshape %v to %v: bad dimension %d", t.shape, shape, d)
		default:
			known *= d
		}
	}
	n := t.Len()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("tensor: reshape %v (%d elements) to %v: no size fits -1", t.shape, n, shape)
		}
		shape[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("tensor: reshape %v (%d elements) to %v (%d elements)", t.shape, n, shape, known)
	}
	return &Tensor{shape: shape, dtype: t.dtype, storage: t.storage, offset: t.offset}, nil
}

// View returns a tensor of the given shape over this tensor's elements from
// element offset on (relative to this tensor's first element). It is how a
// flat parameter buffer is cut into one named tensor per weight.
func (t *Tensor) View(offset int, shape ...int) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset+n > t.Len() {
		return nil, fmt.Errorf("tensor: view %v at offset %d does not fit in %v (%d elements)", shape, offset, t.shape, t.Len())
	}
	return &Tensor{shape: append([]int(nil), shape...), dtype: t.dtype, storage: t.storage, offset: t.offset + offset}, nil
}

// String describes the tensor without its elements, e.g. "f32[2 3]@cpu".
func (t *Tensor) String() string {
	dims := make([]string, len(t.shape))
	for i, d := range t.shape {
		dims[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("%s[%s]@%s", t.dtype, strings.Join(dims, " "), t.storage.Backend())
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b *Tensor) bool {
	if len(a.shape) != len(b.shape) {
		return false
	}
	for i := range a.shape {
		if a.shape[i] != b.shape[i] {
			return false
		}
	}
	return true
}
