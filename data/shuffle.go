package data

import "math/bits"

// The pipeline's randomness is its own (SplitMix64 and Lemire's bounded
// integers) rather than math/rand's, so that a seed gives the same order
// with every Go release: a saved State must resume the same stream.

// mix hashes its arguments into one 64-bit value.
func mix(xs ...uint64) uint64 {
	h := uint64(0x6a09e667f3bcc908)
	for _, x := range xs {
		h = splitmix(h ^ x)
	}
	return h
}

// splitmix is SplitMix64's output function.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashString is FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// rng is a SplitMix64 generator.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	x := r.s
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// intn returns a uniform integer in [0, n), n > 0 (Lemire's method).
func (r *rng) intn(n int) int {
	bound := uint64(n)
	hi, lo := bits.Mul64(r.next(), bound)
	if lo < bound {
		thresh := -bound % bound
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), bound)
		}
	}
	return int(hi)
}

// permutation returns a permutation of [0, n) determined by key
// (Fisher-Yates).
func permutation(n int, key uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := rng{s: key}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// unitFloat maps a hash to [0, 1).
func unitFloat(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Domain separators for the uses of the seed.
const (
	keyFiles uint64 = iota + 1
	keyWindow
	keyEval
	keyBuckets
)
