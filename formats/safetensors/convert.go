package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/whet-ai/whet/tensor"
)

// nativeLittle is true on little-endian hosts, where the format's byte order
// is the machine's and F32 data can be copied and 16-bit data viewed in
// place.
var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func checkConvertible(d Dtype) error {
	switch d {
	case F32, F16, BF16, F64:
		return nil
	case F8E5M2, F8E4M3, F8E8M0, F8E4M3FNUZ, F8E5M2FNUZ, F6E2M3, F6E3M2, F4:
		return fmt.Errorf("dtype %s is recognised but not yet convertible to float32", d)
	}
	return fmt.Errorf("dtype %s cannot be converted to float32 (only F32, F16, BF16 and F64 can)", d)
}

// chunk is the number of 16-bit elements staged at a time when they cannot
// be viewed in place.
const chunk = 4096

// decodeFloat32 converts raw, little-endian elements of d (one of F32, F16,
// BF16, F64), into dst, which holds exactly their number.
func decodeFloat32(dst []float32, d Dtype, raw []byte) {
	if len(dst) == 0 {
		return
	}
	switch d {
	case F32:
		if nativeLittle {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), raw)
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case F16, BF16:
		if nativeLittle && uintptr(unsafe.Pointer(&raw[0]))%2 == 0 {
			convert16(d, dst, unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), len(dst)))
			return
		}
		var buf [chunk]uint16
		for i := 0; i < len(dst); i += chunk {
			n := min(chunk, len(dst)-i)
			for j := range n {
				buf[j] = binary.LittleEndian.Uint16(raw[2*(i+j):])
			}
			convert16(d, dst[i:i+n], buf[:n])
		}
	default:
		panic("safetensors: decodeFloat32 of " + d.String()) // callers check first
	}
}

// convert16 widens F16 or BF16 bits to float32 with whet's conversions. (A
// direct call, not a function value, so that the staging buffer of
// decodeFloat32 stays on the stack.)
func convert16(d Dtype, dst []float32, src []uint16) {
	if d == F16 {
		tensor.F32FromF16Slice(dst, src)
	} else {
		tensor.F32FromBF16Slice(dst, src)
	}
}

// EncodeFloat32 returns values encoded as little-endian elements of d, for
// Tensor.Data. F32 is exact; F16 and BF16 round to nearest even (keeping NaN
// and Inf) with whet's tensor conversions; F64 is exact. Other dtypes are an
// error.
func EncodeFloat32(d Dtype, values []float32) ([]byte, error) {
	switch d {
	case F32:
		out := make([]byte, 4*len(values))
		for i, v := range values {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	case F64:
		out := make([]byte, 8*len(values))
		for i, v := range values {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(float64(v)))
		}
		return out, nil
	case F16, BF16:
		h := make([]uint16, len(values))
		if d == F16 {
			tensor.F16FromF32Slice(h, values)
		} else {
			tensor.BF16FromF32Slice(h, values)
		}
		out := make([]byte, 2*len(values))
		for i, v := range h {
			binary.LittleEndian.PutUint16(out[2*i:], v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("safetensors: cannot encode float32 values as %s (only F32, F16, BF16 and F64)", d)
}
