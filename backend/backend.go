// Package backend defines the interface through which whet does all numeric
// work, and picks an implementation at start-up.
//
// Model, autograd and optimiser code never touch a tensor's elements: they
// ask a Backend to allocate, copy and compute. The CPU back end (package
// backend/cpu) keeps tensors in host memory; a CUDA back end keeps them in
// device memory and runs each call asynchronously on a stream. The interface
// is written for the second case: calls may return before the work is done,
// a failure may be reported by a later call, and Synchronize waits for all
// work issued so far. Copies to the host synchronise.
//
// A Backend is assembled from small interfaces, one per kind of work, so that
// the element-wise, reduction and fused kernels that autograd needs are added
// as further interfaces without changing the ones here.
package backend

import (
	"fmt"

	"github.com/whet-ai/whet/tensor"
)

// Backend is everything whet needs from a compute device.
type Backend interface {
	// Name is the back end's registry name, e.g. "cpu".
	Name() string
	// Describe says in one line what the back end runs on, e.g.
	// "cpu: OpenBLAS 0.3.21 (Haswell), 2 threads".
	Describe() string
	Allocator
	Copier
	BLAS
	Kernels
	// Synchronize waits until all work issued so far is done and returns the
	// first error any of it met.
	Synchronize() error
}

// Allocator makes tensors in the back end's memory.
type Allocator interface {
	// Alloc returns a zeroed tensor of the given dtype and shape.
	Alloc(dtype tensor.DType, shape ...int) (*tensor.Tensor, error)
}

// Copier moves elements between host memory and the back end's memory, and
// within the back end. Host-side data is the raw little-endian bytes of the
// tensor's dtype; see FromFloat32 and ToFloat32 for typed helpers.
type Copier interface {
	// CopyFromHost fills dst with src, which must hold exactly dst.Bytes() bytes.
	CopyFromHost(dst *tensor.Tensor, src []byte) error
	// CopyToHost copies src into dst, which must hold exactly src.Bytes()
	// bytes, after all work issued before it is done.
	CopyToHost(dst []byte, src *tensor.Tensor) error
	// Copy copies src's elements into dst; both have the same dtype and number
	// of elements.
	Copy(dst, src *tensor.Tensor) error
}

// BLAS is dense linear algebra.
type BLAS interface {
	// Gemm computes C = Alpha*op(A)*op(B) + Beta*C; see Gemm.
	Gemm(g *Gemm) error
}

// Gemm describes one row-major matrix product C = Alpha*op(A)*op(B) + Beta*C,
// or Batch of them at fixed strides. op(A) is M x K, op(B) is K x N and C is
// M x N. As in BLAS, C is not read when Beta is 0.
type Gemm struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float64
	A, B, C        Matrix
	// Batch is the number of products; 0 means 1.
	Batch int
}

// Matrix locates a row-major matrix, or a batch of them, inside a tensor.
type Matrix struct {
	T      *tensor.Tensor
	Offset int // first element, counted from T's first element
	LD     int // leading dimension: elements from one row to the next
	Stride int // elements from one matrix of a batch to the next; 0 shares one matrix
}

// BatchCount is g.Batch, or 1 when it is 0.
func (g *Gemm) BatchCount() int {
	if g.Batch == 0 {
		return 1
	}
	return g.Batch
}

// Validate checks what every implementation needs before it touches memory:
// tensors present, dtypes it supports, and shapes, strides and offsets that
// stay inside each tensor. The bounds themselves are checked by the
// implementation against the element counts.
func (g *Gemm) Validate(dtypes ...tensor.DType) error {
	for _, op := range []struct {
		name string
		m    Matrix
	}{{"A", g.A}, {"B", g.B}, {"C", g.C}} {
		if op.m.T == nil {
			return fmt.Errorf("gemm: %s has no tensor", op.name)
		}
		ok := false
		for _, dt := range dtypes {
			ok = ok || op.m.T.DType() == dt
		}
		if !ok {
			return fmt.Errorf("gemm: %s is %v, want one of %v", op.name, op.m.T.DType(), dtypes)
		}
		if op.m.Offset < 0 || op.m.Offset > op.m.T.Len() {
			return fmt.Errorf("gemm: %s offset %d outside its %d elements", op.name, op.m.Offset, op.m.T.Len())
		}
	}
	if g.Batch < 0 {
		return fmt.Errorf("gemm: negative batch %d", g.Batch)
	}
	return nil
}
