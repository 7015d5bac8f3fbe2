//go:build !amd64

package cpu

// expAffineVec has no vector form off amd64: it sets nothing and returns 0.
func expAffineVec(e, x []float32, a, c float32) int { return 0 }

// maxVec has no vector form off amd64.
func maxVec(x []float32) (float32, int) { return 0, 0 }

// sumVec has no vector form off amd64.
func sumVec(x []float32) (float64, int) { return 0, 0 }
