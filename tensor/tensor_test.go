package tensor

import (
	"math"
	"strings"
	"testing"
)

type memStorage int

func (m memStorage) Len() int        { return int(m) }
func (m memStorage) Backend() string { return "mem" }

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		storage Storage
		dtype   DType
		offset  int
		shape   []int
		want    string // error substring; "" means success
	}{
		{memStorage(24), F32, 0, []int{2, 3}, ""},
		{memStorage(24), BF16, 6, []int{2, 3}, ""},
		{memStorage(24), F32, 1, []int{2, 3}, "needs 28 bytes, storage has 24"},
		{memStorage(24), I64, 0, []int{4}, "needs 32 bytes"},
		{memStorage(24), F32, 0, []int{2, -3}, "negative dimension"},
		{memStorage(24), F32, -1, []int{2}, "negative offset"},
		{memStorage(24), Invalid, 0, []int{2}, "invalid dtype"},
		{nil, F32, 0, []int{2}, "nil storage"},
		{memStorage(24), F32, 0, []int{math.MaxInt / 2, 4}, "too many elements"},
		{memStorage(4), F32, 0, nil, ""}, // a scalar
	} {
		x, err := New(tc.storage, tc.dtype, tc.offset, tc.shape...)
		if tc.want == "" {
			if err != nil {
				t.Errorf("New(%v, %v): %v", tc.dtype, tc.shape, err)
			} else if x.Offset() != tc.offset || x.Rank() != len(tc.shape) {
				t.Errorf("New(%v, %v) = %v offset %d", tc.dtype, tc.shape, x, x.Offset())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v, %v, offset %d): error %v, want one containing %q", tc.dtype, tc.shape, tc.offset, err, tc.want)
		}
	}
}

func TestReshapeAndView(t *testing.T) {
	x, err := New(memStorage(4*24), F32, 0, 2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 24 || x.Bytes() != 96 || x.Dim(-1) != 4 || x.String() != "f32[2 3 4]@mem" {
		t.Errorf("x: len %d bytes %d last dim %d string %q", x.Len(), x.Bytes(), x.Dim(-1), x)
	}
	y, err := x.Reshape(-1, 4)
	if err != nil || y.Dim(0) != 6 || y.Dim(1) != 4 {
		t.Errorf("Reshape(-1, 4) = %v, %v", y, err)
	}
	for _, bad := range [][]int{{5, 5}, {-1, 5}, {-1, -1}, {-2, 12}} {
		if _, err := x.Reshape(bad...); err == nil {
			t.Errorf("Reshape(%v) of 24 elements: no error", bad)
		}
	}
	v, err := y.View(8, 2, 2)
	if err != nil || v.Offset() != 8 || v.Len() != 4 {
		t.Fatalf("View(8, 2, 2) = %v offset %d, %v", v, v.Offset(), err)
	}
	w, err := v.View(1, 3)
	if err != nil || w.Offset() != 9 {
		t.Errorf("view of a view: %v offset %d, %v", w, w.Offset(), err)
	}
	if _, err := v.View(2, 3); err == nil {
		t.Error("view past the end of its parent: no error")
	}
	s := x.Shape()
	s[0] = 99
	if x.Dim(0) != 2 {
		t.Error("Shape() returned the tensor's own slice")
	}
	if !SameShape(x, x) || SameShape(x, y) {
		t.Error("SameShape")
	}
}
