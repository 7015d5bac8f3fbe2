package models

import (
	"fmt"
	"regexp"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/quant"
)

// QuantOptions quantise a model's linear layers as it loads (QLoRA's frozen
// base): the projections of the decoder layers, as bitsandbytes and
// transformers quantise them; embeddings, norms and the output layer keep
// their dtype.
type QuantOptions struct {
	Kind        backend.QuantKind // QuantNone: no quantisation
	DoubleQuant bool
	BlockSize   int     // 0: 64
	Outliers    float64 // int8 outlier threshold; 0: none
}

// quantizable matches the weights that quantisation replaces.
var quantizable = regexp.MustCompile(`^model\.layers\.\d+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$`)

// Quantizable reports whether the named weight is one that QuantOptions
// quantise.
func Quantizable(name string) bool { return quantizable.MatchString(name) }

// Quantize replaces the quantizable weights of m with quantised ones, one
// at a time (each dense weight is dropped as soon as its quantised form
// exists), and returns how many it replaced.
func Quantize(b backend.Backend, m Model, opt QuantOptions) (int, error) {
	if opt.Kind == backend.QuantNone {
		return 0, nil
	}
	n := 0
	for _, p := range nn.Params(m) {
		v := *p.Var
		if v == nil || v.Value == nil || !Quantizable(p.Name) {
			continue
		}
		q, err := quant.Quantize(b, v.Value, opt.Kind, quant.Options{BlockSize: opt.BlockSize, DoubleQuant: opt.DoubleQuant, OutlierThreshold: opt.Outliers})
		if err != nil {
			return n, fmt.Errorf("quantize %s: %w", p.Name, err)
		}
		*p.Var = autograd.Quantized(p.Name, q)
		n++
	}
	return n, nil
}

// Dequantize replaces every quantised weight of m with its dequantised
// values in the dtype it had before quantisation (what merging onto a
// quantised base needs), and returns how many it replaced and their format.
func Dequantize(b backend.Backend, m Model) (int, backend.QuantKind, error) {
	n, kind := 0, backend.QuantNone
	for _, p := range nn.Params(m) {
		v := *p.Var
		if v == nil || v.Quant == nil {
			continue
		}
		t, err := quant.Dequantize(b, v.Quant)
		if err != nil {
			return n, kind, fmt.Errorf("dequantize %s: %w", p.Name, err)
		}
		if dt := v.Quant.OrigDType; dt.IsFloat() && dt != t.DType() {
			c, err := b.Alloc(dt, t.Shape()...)
			if err != nil {
				return n, kind, err
			}
			if err := b.Convert(c, t); err != nil {
				return n, kind, err
			}
			t = c
		}
		kind = v.Quant.Kind
		*p.Var = autograd.Const(p.Name, t)
		n++
	}
	return n, kind, nil
}

// WeightBytes is the memory of m's weights as they are held: each in its
// dtype, quantised ones at their quantised size.
func WeightBytes(m Model) int64 {
	var total int64
	for _, p := range nn.Params(m) {
		v := *p.Var
		switch {
		case v == nil:
		case v.Quant != nil:
			total += int64(v.Quant.Bytes())
		case v.Value != nil:
			total += int64(v.Value.Bytes())
		}
	}
	return total
}
