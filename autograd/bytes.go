package autograd

import "unsafe"

// float64Bytes views a float64 slice as its bytes in memory order
// (little-endian on every architecture whet supports).
func float64Bytes(s []float64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 8*len(s))
}

// int32Bytes views an int32 slice as its bytes in memory order.
func int32Bytes(s []int32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}
