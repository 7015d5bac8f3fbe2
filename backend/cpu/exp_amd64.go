package cpu

import "golang.org/x/sys/cpu"

// hasExpAVX2 says expAffineAVX2 can run: AVX2 and FMA.
var hasExpAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// expAffineAVX2 sets e[i] = exp(a*x[i] + c) eight elements at a time,
// stopping before the first group of eight with an argument outside
// [-87, 88] or NaN, and returns how many it set. len(e) >= len(x).
//
//go:noescape
func expAffineAVX2(e, x []float32, a, c float32) int

// expAffineVec sets e[i] = exp(a*x[i] + c) with vector code, where the CPU
// has it, for a prefix of x made of whole groups of eight whose arguments
// lie in [-87, 88], and returns the length of that prefix (0 without vector
// code).
func expAffineVec(e, x []float32, a, c float32) int {
	if !hasExpAVX2 || len(x) < 8 {
		return 0
	}
	return expAffineAVX2(e[:len(x)], x, a, c)
}

//go:noescape
func maxAVX2(x []float32) float32

//go:noescape
func sumAVX2(x []float32) float64

// maxVec returns the largest of a prefix of x and that prefix's length,
// which is 0 where there is no vector code. NaNs in x may be skipped; the
// callers' exponentials propagate them.
func maxVec(x []float32) (float32, int) {
	if !hasExpAVX2 || len(x) < 8 {
		return 0, 0
	}
	return maxAVX2(x), len(x) &^ 7
}

// sumVec returns the float64 sum of a prefix of x and that prefix's length,
// which is 0 where there is no vector code.
func sumVec(x []float32) (float64, int) {
	if !hasExpAVX2 || len(x) < 8 {
		return 0, 0
	}
	return sumAVX2(x), len(x) &^ 7
}
