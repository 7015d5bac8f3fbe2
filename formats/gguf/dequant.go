package gguf

import (
	"encoding/binary"
	"math"

	"github.com/whet-ai/whet/tensor"
)

// This file converts tensor data to float32. Each dequantizer takes dst
// and src of matching lengths: len(src) is a whole number of blocks of its
// type and len(dst) the number of elements they hold (parse guarantees
// this for every tensor).
//
// The block layouts and the order of the float32 operations follow ggml's
// reference dequantize_row_* functions, so results are bit-identical to
// ggml's scalar code. Where a product feeds an addition (Q4_1, Q5_1 and
// the k-quants' scale-times-quant minus min) it is converted to float32
// explicitly, which forbids Go from fusing the two into an FMA. For these
// formats the product is exact anyway (a binary16 scale's 11-bit mantissa
// times a few-bit integer), so fusing would not change the result, but
// the conversion keeps the code right without that argument.

type dequantizer func(dst []float32, src []byte)

var dequantizers = map[GGMLType]dequantizer{
	TypeF32:  deqF32,
	TypeF16:  deqF16,
	TypeBF16: deqBF16,
	TypeF64:  deqF64,
	TypeQ4_0: deqQ4_0,
	TypeQ4_1: deqQ4_1,
	TypeQ5_0: deqQ5_0,
	TypeQ5_1: deqQ5_1,
	TypeQ8_0: deqQ8_0,
	TypeQ8_1: deqQ8_1,
	TypeQ2_K: deqQ2K,
	TypeQ3_K: deqQ3K,
	TypeQ4_K: deqQ4K,
	TypeQ5_K: deqQ5K,
	TypeQ6_K: deqQ6K,
	TypeQ8_K: deqQ8K,
}

var le = binary.LittleEndian

// f16 reads the binary16 at b[0:2].
func f16(b []byte) float32 { return tensor.F32FromF16(le.Uint16(b)) }

func deqF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
	}
}

func deqF64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
	}
}

// halfChunk is how many 16-bit values deqHalf converts per call of conv.
const halfChunk = 1024

// deqHalf converts 16-bit floats through a small buffer with the tensor
// package's slice conversion.
func deqHalf(dst []float32, src []byte, conv func([]float32, []uint16)) {
	var buf [halfChunk]uint16
	for len(dst) > 0 {
		n := min(len(dst), halfChunk)
		for i := range n {
			buf[i] = le.Uint16(src[2*i:])
		}
		conv(dst[:n], buf[:n])
		dst, src = dst[n:], src[2*n:]
	}
}

func deqF16(dst []float32, src []byte)  { deqHalf(dst, src, tensor.F32FromF16Slice) }
func deqBF16(dst []float32, src []byte) { deqHalf(dst, src, tensor.F32FromBF16Slice) }

// Q4_0: f16 d, then 16 bytes; element j is the low nibble of byte j and
// element j+16 its high nibble; value d*(q-8).
func deqQ4_0(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[18*b:18*b+18], dst[:32]
		d := f16(blk)
		for j, q := range blk[2:18] {
			y[j] = float32(int(q&0xf)-8) * d
			y[j+16] = float32(int(q>>4)-8) * d
		}
		dst = dst[32:]
	}
}

// Q4_1: f16 d, f16 m, 16 bytes of nibbles as Q4_0; value d*q + m.
func deqQ4_1(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[20*b:20*b+20], dst[:32]
		d, m := f16(blk), f16(blk[2:])
		for j, q := range blk[4:20] {
			y[j] = float32(float32(q&0xf)*d) + m
			y[j+16] = float32(float32(q>>4)*d) + m
		}
		dst = dst[32:]
	}
}

// Q5_0: f16 d, u32 qh, 16 bytes of nibbles as Q4_0; bit j of qh is the
// fifth bit of element j; value d*(q-16).
func deqQ5_0(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[22*b:22*b+22], dst[:32]
		d, qh := f16(blk), le.Uint32(blk[2:])
		for j, q := range blk[6:22] {
			x0 := int(q&0xf) | int(qh>>j&1)<<4
			x1 := int(q>>4) | int(qh>>(j+16)&1)<<4
			y[j] = float32(x0-16) * d
			y[j+16] = float32(x1-16) * d
		}
		dst = dst[32:]
	}
}

// Q5_1: f16 d, f16 m, u32 qh, 16 bytes as Q5_0; value d*q + m.
func deqQ5_1(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[24*b:24*b+24], dst[:32]
		d, m, qh := f16(blk), f16(blk[2:]), le.Uint32(blk[4:])
		for j, q := range blk[8:24] {
			x0 := q&0xf | uint8(qh>>j&1)<<4
			x1 := q>>4 | uint8(qh>>(j+16)&1)<<4
			y[j] = float32(float32(x0)*d) + m
			y[j+16] = float32(float32(x1)*d) + m
		}
		dst = dst[32:]
	}
}

// Q8_0: f16 d, then 32 int8; value d*q.
func deqQ8_0(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[34*b:34*b+34], dst[:32]
		d := f16(blk)
		for j, q := range blk[2:34] {
			y[j] = float32(int8(q)) * d
		}
		dst = dst[32:]
	}
}

// Q8_1: f16 d, f16 s (d times the sum of the quants, unused here), then
// 32 int8; value d*q.
func deqQ8_1(dst []float32, src []byte) {
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[36*b:36*b+36], dst[:32]
		d := f16(blk)
		for j, q := range blk[4:36] {
			y[j] = float32(int8(q)) * d
		}
		dst = dst[32:]
	}
}

// Q8_K: f32 d, 256 int8, then 16 int16 block sums (unused here); value d*q.
func deqQ8K(dst []float32, src []byte) {
	const size = 4 + qkK + qkK/16*2
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		d := math.Float32frombits(le.Uint32(blk))
		for j, q := range blk[4 : 4+qkK] {
			y[j] = d * float32(int8(q))
		}
		dst = dst[qkK:]
	}
}

// Q2_K: 16 bytes of scales (low nibble scale, high nibble min, one pair
// per 16 elements), 64 bytes of 2-bit quants, f16 d, f16 dmin. Each half
// of 128 elements takes 32 quant bytes: elements 32*j+l (l < 16) come
// from bits 2j..2j+1 of byte l, elements 32*j+16+l from byte 16+l. Value
// d*scale*q - dmin*min.
func deqQ2K(dst []float32, src []byte) {
	const size = qkK/16 + qkK/4 + 4
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		scales, qs := blk[:16], blk[16:80]
		d, dmin := f16(blk[80:]), f16(blk[82:])
		is := 0
		for n := 0; n < 2; n++ {
			q := qs[32*n : 32*n+32]
			for j := range 4 {
				shift := 2 * j
				for half := range 2 {
					sc := scales[is]
					is++
					dl, ml := d*float32(sc&0xf), dmin*float32(sc>>4)
					for l := range 16 {
						y[l] = float32(dl*float32(q[16*half+l]>>shift&3)) - ml
					}
					y = y[16:]
				}
			}
		}
		dst = dst[qkK:]
	}
}

// q3kScale returns the 6-bit scale i (0..15) of a Q3_K block: its low
// four bits are the low (i < 8) or high nibble of byte i%8, its high two
// bits are bits 2*(i/4) of byte 8+i%4.
func q3kScale(s []byte, i int) int {
	lo := s[i%8] >> (4 * (i / 8)) & 0xf
	hi := s[8+i%4] >> (2 * (i / 4)) & 3
	return int(lo|hi<<4) - 32
}

// Q3_K: 32 bytes hmask, 64 bytes of 2-bit quants, 12 bytes of 6-bit
// scales, f16 d. The quants are laid out as Q2_K's; bit j+4n of hmask byte
// l (or 16+l) clear subtracts 4. Value d*(scale-32)*q.
func deqQ3K(dst []float32, src []byte) {
	const size = qkK/8 + qkK/4 + 12 + 2
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		hm, qs, scales := blk[:32], blk[32:96], blk[96:108]
		d := f16(blk[108:])
		is := 0
		for n := 0; n < 2; n++ {
			q := qs[32*n : 32*n+32]
			for j := range 4 {
				shift, m := 2*j, uint8(1)<<(4*n+j)
				for half := range 2 {
					dl := d * float32(q3kScale(scales, is))
					is++
					for l := range 16 {
						k := 16*half + l
						x := int(q[k] >> shift & 3)
						if hm[k]&m == 0 {
							x -= 4
						}
						y[l] = dl * float32(x)
					}
					y = y[16:]
				}
			}
		}
		dst = dst[qkK:]
	}
}

// kScaleMin returns the 6-bit scale and min j (0..7) of a Q4_K or Q5_K
// block's 12 scale bytes: for j < 4 the low six bits of bytes j and j+4;
// for j >= 4 a nibble of byte j+4 topped with the high two bits of bytes
// j-4 and j.
func kScaleMin(s []byte, j int) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xf | s[j-4]>>6<<4, s[j+4]>>4 | s[j]>>6<<4
}

// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
// nibbles. Each 64 elements take 32 bytes: the low nibbles are the first
// 32, with scale pair 2i, the high nibbles the next 32, with pair 2i+1.
// Value d*scale*q - dmin*min.
func deqQ4K(dst []float32, src []byte) {
	const size = 4 + 12 + qkK/2
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		d, dmin := f16(blk), f16(blk[2:])
		scales, qs := blk[4:16], blk[16:144]
		for i := range 4 {
			q := qs[32*i : 32*i+32]
			sc1, m1 := kScaleMin(scales, 2*i)
			sc2, m2 := kScaleMin(scales, 2*i+1)
			d1, min1 := d*float32(sc1), dmin*float32(m1)
			d2, min2 := d*float32(sc2), dmin*float32(m2)
			for l := range 32 {
				y[l] = float32(d1*float32(q[l]&0xf)) - min1
				y[l+32] = float32(d2*float32(q[l]>>4)) - min2
			}
			y = y[64:]
		}
		dst = dst[qkK:]
	}
}

// Q5_K: as Q4_K with 32 bytes qh after the scales: bit 2i of qh byte l is
// the fifth bit of element 64i+l, bit 2i+1 that of element 64i+32+l.
func deqQ5K(dst []float32, src []byte) {
	const size = 4 + 12 + qkK/8 + qkK/2
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		d, dmin := f16(blk), f16(blk[2:])
		scales, qh, qs := blk[4:16], blk[16:48], blk[48:176]
		for i := range 4 {
			q := qs[32*i : 32*i+32]
			sc1, m1 := kScaleMin(scales, 2*i)
			sc2, m2 := kScaleMin(scales, 2*i+1)
			d1, min1 := d*float32(sc1), dmin*float32(m1)
			d2, min2 := d*float32(sc2), dmin*float32(m2)
			for l := range 32 {
				x1 := q[l]&0xf | qh[l]>>(2*i)&1<<4
				x2 := q[l]>>4 | qh[l]>>(2*i+1)&1<<4
				y[l] = float32(d1*float32(x1)) - min1
				y[l+32] = float32(d2*float32(x2)) - min2
			}
			y = y[64:]
		}
		dst = dst[qkK:]
	}
}

// Q6_K: 128 bytes low nibbles (ql), 64 bytes high bit pairs (qh), 16 int8
// scales (one per 16 elements), f16 d. Each 128 elements take 64 bytes of
// ql and 32 of qh: element 32k+l (k < 4, l < 32) is nibble k/2 of ql byte
// l+32*(k%2) topped with bits 2k..2k+1 of qh byte l. Value d*scale*(q-32).
func deqQ6K(dst []float32, src []byte) {
	const size = qkK/2 + qkK/4 + qkK/16 + 2
	for b := 0; len(dst) > 0; b++ {
		blk, y := src[size*b:size*(b+1)], dst[:qkK]
		d := f16(blk[208:])
		for n := range 2 {
			ql, qh, sc := blk[64*n:64*n+64], blk[128+32*n:128+32*n+32], blk[192+8*n:192+8*n+8]
			for l := range 32 {
				is := l / 16
				q1 := int(ql[l]&0xf|qh[l]&3<<4) - 32
				q2 := int(ql[l+32]&0xf|qh[l]>>2&3<<4) - 32
				q3 := int(ql[l]>>4|qh[l]>>4&3<<4) - 32
				q4 := int(ql[l+32]>>4|qh[l]>>6&3<<4) - 32
				y[l] = d * float32(int8(sc[is])) * float32(q1)
				y[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
				y[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
				y[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
			}
			y = y[128:]
		}
		dst = dst[qkK:]
	}
}
