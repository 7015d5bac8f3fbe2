package quant

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sync"

	"github.com/whet-ai/whet/backend"
)

// nf4 is bitsandbytes' NF4 table (functional.get_4bit_type("nf4")): the
// quantiles of N(0, 1) normalised to [-1, 1], with an exact zero.
var nf4 = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// NF4Code returns bitsandbytes' 16 NF4 code values: code c stands for
// NF4Code()[c] * absmax.
func NF4Code() []float32 { return slices.Clone(nf4[:]) }

// FP4Code returns bitsandbytes' 16 FP4 code values: get_4bit_type("fp4"),
// [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12
// in float32. Bit 3 of a code is the sign, bits 2-1 the exponent and bit 0
// the mantissa.
func FP4Code() []float32 {
	raw := [16]float32{0, 0.0625, 8, 12, 4, 6, 2, 3, float32(math.Copysign(0, -1)), -0.0625, -8, -12, -4, -6, -2, -3}
	out := make([]float32, 16)
	for i, v := range raw {
		out[i] = v / 12
	}
	return out
}

// Code returns the 16-entry code table of a 4-bit format.
func Code(kind backend.QuantKind) ([]float32, error) {
	switch kind {
	case backend.QuantNF4:
		return NF4Code(), nil
	case backend.QuantFP4:
		return FP4Code(), nil
	}
	return nil, fmt.Errorf("quant: %v has no 4-bit code table", kind)
}

var (
	dynOnce             sync.Once
	dynSigned, dynUnsig []float32
)

// DynamicMap returns bitsandbytes' dynamic 8-bit map,
// create_dynamic_map(signed, max_exponent_bits=7, total_bits=8): 256 values
// sorted ascending, in [-1, 1] when signed (the map of double-quantised
// absmax values and of Adam's first moment) and [0, 1] when not (the second
// moment). Each value is a "dynamic exponent" 10^(i-6), i = 0..6, times the
// midpoint of one of 2^i (signed) or 2^(i+1) (unsigned) equal intervals of
// [0.1, 1], plus 0 and 1.
//
// The values are the float32 values torch computes for that definition on a
// CPU with AVX2 kernels (torch.linspace's vectorised evaluation included),
// which is where bitsandbytes computes them: bit for bit the map a
// checkpoint written there stores as nested_quant_map.
func DynamicMap(signed bool) []float32 {
	dynOnce.Do(func() {
		dynSigned, dynUnsig = dynamicMap(true), dynamicMap(false)
	})
	if signed {
		return slices.Clone(dynSigned)
	}
	return slices.Clone(dynUnsig)
}

func dynamicMap(signed bool) []float32 {
	data := make([]float32, 0, 256)
	for i := range 7 {
		n := 1<<(i+1) + 1
		if signed {
			n = 1<<i + 1
		}
		b := torchLinspace(0.1, 1, n)
		scale := float32(math.Pow10(i - 6))
		for j := 0; j+1 < n; j++ {
			m := (b[j] + b[j+1]) / 2
			data = append(data, scale*m)
			if signed {
				data = append(data, -scale*m)
			}
		}
	}
	data = append(data, 0, 1)
	slices.Sort(data)
	return data
}

// torchLinspace is torch.linspace(start, end, steps) in float32 as torch's
// CPU kernel evaluates it with 8-lane (AVX2) vectors: values come in pairs of
// vectors, 16 at a time, each vector base + j*step with base = start +
// step*idx (or end - step*(steps-1-idx) from the halfway point on) as one
// fused multiply-add; the remaining values are that fused expression each.
func torchLinspace(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	if steps == 1 {
		out[0] = start
	}
	if steps <= 1 {
		return out
	}
	step := (end - start) / float32(steps-1)
	half := steps / 2
	at := func(idx int) float32 {
		if idx < half {
			return fma32(step, float32(idx), start)
		}
		return fma32(-step, float32(steps-idx-1), end)
	}
	const lanes = 8
	i := 0
	for ; i <= steps-2*lanes; i += 2 * lanes {
		for _, k := range []int{i, i + lanes} {
			base := at(k)
			for j := range lanes {
				out[k+j] = base + float32(float32(j)*step)
			}
		}
	}
	for ; i < steps; i++ {
		out[i] = at(i)
	}
	return out
}

// fma32 is a*b + c rounded once to float32.
func fma32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(512).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}
