#include "textflag.h"

// Constants of expAffineAVX2, as float32 bit patterns (see expf).
DATA expk<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expk<>+4(SB)/4, $0x4b400000  // 1.5*2^23: rounds to an integer
DATA expk<>+8(SB)/4, $0x3f318000  // ln2 high part
DATA expk<>+12(SB)/4, $0xb95e8083 // ln2 low part
DATA expk<>+16(SB)/4, $0x39500d01 // 1/5040
DATA expk<>+20(SB)/4, $0x3ab60b61 // 1/720
DATA expk<>+24(SB)/4, $0x3c088889 // 1/120
DATA expk<>+28(SB)/4, $0x3d2aaaab // 1/24
DATA expk<>+32(SB)/4, $0x3e2aaaab // 1/6
DATA expk<>+36(SB)/4, $0x3f000000 // 1/2
DATA expk<>+40(SB)/4, $0x3f800000 // 1
DATA expk<>+44(SB)/4, $0xc2ae0000 // -87: lower bound
DATA expk<>+48(SB)/4, $0x42b00000 // 88: upper bound
DATA expk<>+52(SB)/4, $0x4b3fff81 // bits(1.5*2^23) - 127: exponent bias
GLOBL expk<>(SB), RODATA|NOPTR, $56

// func expAffineAVX2(e, x []float32, a, c float32) int
// e[i] = exp(a*x[i] + c), eight at a time, for the whole groups of eight of
// x, stopping before the first group with an argument outside [-87, 88] (or
// NaN), which it leaves unwritten. It returns the number of elements done.
TEXT ·expAffineAVX2(SB), NOSPLIT, $0-64
	MOVQ e_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	XORQ AX, AX
	SHRQ $3, CX
	JZ   done
	VBROADCASTSS a+48(FP), Y0
	VBROADCASTSS c+52(FP), Y1
	VBROADCASTSS expk<>+0(SB), Y2
	VBROADCASTSS expk<>+4(SB), Y3
	VBROADCASTSS expk<>+8(SB), Y4
	VBROADCASTSS expk<>+12(SB), Y5
	VBROADCASTSS expk<>+16(SB), Y6
	VBROADCASTSS expk<>+40(SB), Y7
	VBROADCASTSS expk<>+44(SB), Y13
	VBROADCASTSS expk<>+48(SB), Y14
	VBROADCASTSS expk<>+52(SB), Y15

loop:
	VMOVUPS      (SI), Y8
	VFMADD213PS  Y1, Y0, Y8  // v = a*x + c
	VMAXPS       Y13, Y8, Y12
	VMINPS       Y14, Y12, Y12
	VCMPPS       $4, Y8, Y12, Y12 // lanes changed by the clamp, or NaN
	VMOVMSKPS    Y12, BX
	TESTL        BX, BX
	JNZ          stop
	VMOVAPS      Y3, Y9
	VFMADD231PS  Y2, Y8, Y9  // t = v*log2e + magic
	VSUBPS       Y3, Y9, Y10 // n = t - magic
	VFNMADD231PS Y4, Y10, Y8 // r = v - n*ln2hi
	VFNMADD231PS Y5, Y10, Y8 // r -= n*ln2lo
	VMOVAPS      Y6, Y11     // p = 1/5040
	VBROADCASTSS expk<>+20(SB), Y12
	VFMADD213PS  Y12, Y8, Y11
	VBROADCASTSS expk<>+24(SB), Y12
	VFMADD213PS  Y12, Y8, Y11
	VBROADCASTSS expk<>+28(SB), Y12
	VFMADD213PS  Y12, Y8, Y11
	VBROADCASTSS expk<>+32(SB), Y12
	VFMADD213PS  Y12, Y8, Y11
	VBROADCASTSS expk<>+36(SB), Y12
	VFMADD213PS  Y12, Y8, Y11
	VFMADD213PS  Y7, Y8, Y11
	VFMADD213PS  Y7, Y8, Y11 // p = e^r
	VPSUBD       Y15, Y9, Y9 // n + 127 in the low bits
	VPSLLD       $23, Y9, Y9 // 2^n
	VMULPS       Y9, Y11, Y11
	VMOVUPS      Y11, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	ADDQ         $8, AX
	DECQ         CX
	JNZ          loop

stop:
	VZEROUPPER

done:
	MOVQ AX, ret+56(FP)
	RET

// func maxAVX2(x []float32) float32
// The largest of the first len(x) &^ 7 elements; len(x) >= 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-28
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	DECQ    CX
	JZ      maxdone

maxloop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    maxloop

maxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func sumAVX2(x []float32) float64
// The sum, in float64, of the first len(x) &^ 7 elements.
TEXT ·sumAVX2(SB), NOSPLIT, $0-32
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	SHRQ   $3, CX
	JZ     sumdone

sumloop:
	VCVTPS2PD (SI), Y2
	VCVTPS2PD 16(SI), Y3
	VADDPD    Y2, Y0, Y0
	VADDPD    Y3, Y1, Y1
	ADDQ      $32, SI
	DECQ      CX
	JNZ       sumloop

sumdone:
	VADDPD       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VPERMILPD    $1, X0, X1
	VADDSD       X1, X0, X0
	VZEROUPPER
	MOVSD        X0, ret+24(FP)
	RET
