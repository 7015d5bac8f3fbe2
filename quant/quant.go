// Package quant quantises frozen weight matrices in bitsandbytes' formats
// (NF4, FP4 with optional double quantisation; LLM.int8's row-wise int8),
// dequantises them, and reads and writes them as bitsandbytes and
// transformers store them in safetensors checkpoints.
//
// The arithmetic is the back end's (backend.Quantizers); this package
// allocates the tensors, chooses the code tables and the outlier columns,
// and does the serialisation:
//
//	w, err := quant.Quantize(b, weight, backend.QuantNF4, quant.Options{DoubleQuant: true})
//	ts, err := quant.Encode("model.layers.0.self_attn.q_proj.weight", w, b)
//	w2, ok, err := quant.Decode(b, "model.layers.0.self_attn.q_proj.weight", quant.FileGetter(f))
//	dense, err := quant.Dequantize(b, w2)
//
// Code tables: NF4Code, FP4Code and DynamicMap (bitsandbytes'
// create_dynamic_map, also the code of 8-bit optimiser states).
package quant

import (
	"fmt"
	"math"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// Block sizes.
const (
	// DefaultBlockSize is bitsandbytes' default 4-bit block size.
	DefaultBlockSize = 64
	// NestedBlockSize is the block size of double quantisation (the
	// quantisation of the 4-bit absmax values), fixed by bitsandbytes.
	NestedBlockSize = 256
	// MinBlockSize and MaxBlockSize bound the 4-bit block sizes
	// bitsandbytes' kernels accept (powers of two).
	MinBlockSize = 32
	MaxBlockSize = 4096
)

// Options configures Quantize.
type Options struct {
	// BlockSize is the number of elements per absmax block of a 4-bit
	// format: a power of two from 32 to 4096; 0 means DefaultBlockSize (64).
	BlockSize int
	// DoubleQuant quantises the 4-bit absmax values in turn (bitsandbytes'
	// compress_statistics, transformers' bnb_4bit_use_double_quant): 8 bits
	// per block instead of 32.
	DoubleQuant bool
	// OutlierThreshold, for int8, keeps every column that has a value of
	// magnitude >= the threshold unquantised (LLM.int8 uses 6.0); 0 means
	// no outlier columns. bitsandbytes' checkpoints cannot hold outlier
	// columns (Encode refuses them).
	OutlierThreshold float64
}

// ParseKind reads a format name: "nf4", "fp4" or "int8" (any case).
func ParseKind(s string) (backend.QuantKind, error) {
	switch strings.ToLower(s) {
	case "nf4":
		return backend.QuantNF4, nil
	case "fp4":
		return backend.QuantFP4, nil
	case "int8", "8bit", "llm.int8":
		return backend.QuantInt8, nil
	}
	return backend.QuantNone, fmt.Errorf("quant: unknown format %q; want nf4, fp4 or int8", s)
}

// Validate checks the options for a format: the block size of a 4-bit
// format, the outlier threshold of int8; options that do not apply to the
// format are ignored.
func (opt Options) Validate(kind backend.QuantKind) error {
	switch kind {
	case backend.QuantNF4, backend.QuantFP4:
		_, err := opt.blockSize()
		return err
	case backend.QuantInt8:
		if opt.OutlierThreshold < 0 || math.IsNaN(opt.OutlierThreshold) {
			return fmt.Errorf("quant: outlier threshold %v: want 0 (none) or more", opt.OutlierThreshold)
		}
		return nil
	}
	return fmt.Errorf("quant: unsupported format %v", kind)
}

// blockSize checks opt.BlockSize and applies the default.
func (opt Options) blockSize() (int, error) {
	bs := opt.BlockSize
	if bs == 0 {
		return DefaultBlockSize, nil
	}
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return 0, fmt.Errorf("quant: block size %d: want a power of two from %d to %d", bs, MinBlockSize, MaxBlockSize)
	}
	return bs, nil
}

// New allocates the tensors of a rows x cols weight of the given format on
// b, without outlier columns, and fills its code tables (Code for 4-bit
// formats; NestedCode, the signed DynamicMap, with double quantisation).
// Back-end Quantize then fills it.
func New(b backend.Backend, kind backend.QuantKind, rows, cols int, opt Options) (*backend.QuantWeight, error) {
	if b == nil {
		return nil, fmt.Errorf("quant: no back end")
	}
	n, err := tensor.NumElements([]int{rows, cols})
	if err != nil || n > math.MaxInt-1 {
		return nil, fmt.Errorf("quant: weight of %d x %d elements", rows, cols)
	}
	w := &backend.QuantWeight{Kind: kind, Rows: rows, Cols: cols}
	switch kind {
	case backend.QuantNF4, backend.QuantFP4:
		if w.BlockSize, err = opt.blockSize(); err != nil {
			return nil, err
		}
		code, _ := Code(kind)
		if w.Code, err = backend.FromFloat32(b, code, 16); err != nil {
			return nil, err
		}
		if w.Codes, err = b.Alloc(tensor.U8, (n+1)/2); err != nil {
			return nil, err
		}
		blocks := (n + w.BlockSize - 1) / w.BlockSize
		if !opt.DoubleQuant {
			w.Absmax, err = b.Alloc(tensor.F32, blocks)
			return w, err
		}
		w.NestedBlockSize = NestedBlockSize
		if w.QAbsmax, err = b.Alloc(tensor.U8, blocks); err != nil {
			return nil, err
		}
		if w.NestedAbsmax, err = b.Alloc(tensor.F32, (blocks+NestedBlockSize-1)/NestedBlockSize); err != nil {
			return nil, err
		}
		w.NestedCode, err = backend.FromFloat32(b, DynamicMap(true), 256)
		return w, err
	case backend.QuantInt8:
		if w.Codes, err = b.Alloc(tensor.U8, n); err != nil {
			return nil, err
		}
		w.Absmax, err = b.Alloc(tensor.F32, rows)
		return w, err
	}
	return nil, fmt.Errorf("quant: unsupported format %v", kind)
}

// Quantize quantises the 2-D weight x ([rows, cols], F32, BF16 or F16) into
// a new QuantWeight of the given format on b, as bitsandbytes does (see the
// back end's Quantize). For int8 with opt.OutlierThreshold > 0, the columns
// with a value of magnitude >= the threshold become outlier columns.
func Quantize(b backend.Backend, x *tensor.Tensor, kind backend.QuantKind, opt Options) (*backend.QuantWeight, error) {
	if b == nil {
		return nil, fmt.Errorf("quant: no back end")
	}
	if x == nil {
		return nil, fmt.Errorf("quant: missing weight")
	}
	if x.Rank() != 2 {
		return nil, fmt.Errorf("quant: weight %v: want a 2-D matrix", x)
	}
	if dt := x.DType(); dt != tensor.F32 && dt != tensor.BF16 && dt != tensor.F16 {
		return nil, fmt.Errorf("quant: weight %v: want f32, bf16 or f16", x)
	}
	if err := opt.Validate(kind); err != nil {
		return nil, err
	}
	rows, cols := x.Dim(0), x.Dim(1)
	w, err := New(b, kind, rows, cols, opt)
	if err != nil {
		return nil, err
	}
	w.OrigDType = x.DType()
	if kind == backend.QuantInt8 && opt.OutlierThreshold > 0 {
		if err := addOutliers(b, w, x, opt.OutlierThreshold); err != nil {
			return nil, err
		}
	}
	if err := b.Quantize(w, x); err != nil {
		return nil, err
	}
	return w, nil
}

// addOutliers finds the columns of x with a value of magnitude >= threshold
// (as bitsandbytes' int8_vectorwise_quant does) and allocates w's outlier
// tensors for them.
func addOutliers(b backend.Backend, w *backend.QuantWeight, x *tensor.Tensor, threshold float64) error {
	vals, err := hostFloats(b, x)
	if err != nil {
		return err
	}
	cols := w.Cols
	is := make([]bool, cols)
	for i, v := range vals {
		if math.Abs(float64(v)) >= threshold {
			is[i%cols] = true
		}
	}
	var idx []int32
	for j, o := range is {
		if o {
			idx = append(idx, int32(j))
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if w.OutlierCols, err = b.Alloc(tensor.I32, len(idx)); err != nil {
		return err
	}
	raw := make([]byte, 4*len(idx))
	for i, c := range idx {
		raw[4*i] = byte(c)
		raw[4*i+1] = byte(c >> 8)
		raw[4*i+2] = byte(c >> 16)
		raw[4*i+3] = byte(c >> 24)
	}
	if err := b.CopyFromHost(w.OutlierCols, raw); err != nil {
		return err
	}
	w.Outliers, err = b.Alloc(tensor.F32, w.Rows, len(idx))
	return err
}

// hostFloats copies a float tensor to the host as float32.
func hostFloats(b backend.Backend, x *tensor.Tensor) ([]float32, error) {
	if x.DType() != tensor.F32 {
		c, err := b.Alloc(tensor.F32, x.Shape()...)
		if err != nil {
			return nil, err
		}
		if err := b.Convert(c, x); err != nil {
			return nil, err
		}
		x = c
	}
	return backend.ToFloat32(b, x)
}

// Dequantize returns w's values as a new F32 tensor [Rows, Cols] (to merge
// an adapter into it, or to save it unquantised).
func Dequantize(b backend.Backend, w *backend.QuantWeight) (*tensor.Tensor, error) {
	if w == nil || b == nil {
		return nil, fmt.Errorf("quant: missing weight or back end")
	}
	dst, err := b.Alloc(tensor.F32, w.Rows, w.Cols)
	if err != nil {
		return nil, err
	}
	if err := b.Dequantize(dst, w, 0); err != nil {
		return nil, err
	}
	return dst, nil
}
