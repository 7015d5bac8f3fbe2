package models

import (
	"fmt"
	"math"

	"github.com/whet-ai/whet/hf"
)

// RopeInvFreq returns the inverse frequencies of cfg's rotary embedding,
// one per rotated pair of a head, with its scaling applied, and the factor
// that multiplies cos and sin (1 for every scaling supported here). It
// follows transformers' modeling_rope_utils, in float64.
func RopeInvFreq(cfg *hf.Config) ([]float64, float64, error) {
	d := cfg.HeadDim
	if d%2 != 0 {
		return nil, 0, fmt.Errorf("rope: head_dim %d is odd", d)
	}
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(d))
	}
	rs := cfg.RopeScaling
	if rs == nil {
		return inv, 1, nil
	}
	switch rs.Type {
	case "linear":
		for i := range inv {
			inv[i] /= rs.Factor
		}
	case "llama3":
		orig := float64(rs.OriginalMaxPositionEmbeddings)
		lowWavelen := orig / rs.LowFreqFactor
		highWavelen := orig / rs.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen: // low frequencies: scaled
				inv[i] = f / rs.Factor
			case wavelen < highWavelen: // high frequencies: kept
			default: // in between: smoothed
				smooth := (orig/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				inv[i] = (1-smooth)*f/rs.Factor + smooth*f
			}
		}
	default:
		return nil, 0, fmt.Errorf("rope: scaling %q is not supported yet (supported: linear, llama3)", rs.Type)
	}
	return inv, 1, nil
}
