package backend

import "github.com/whet-ai/whet/tensor"

// QuantKind is a quantisation format of frozen weights, as bitsandbytes
// defines them.
type QuantKind uint8

// Quantisation formats.
const (
	QuantNone QuantKind = iota
	// QuantNF4 is 4-bit NormalFloat: 16 code values (Code), blocks of
	// BlockSize elements (64) scaled by their absolute maximum.
	QuantNF4
	// QuantFP4 is bitsandbytes' 4-bit float (1 sign, 2 exponent, 1 mantissa
	// bits), blocked like NF4.
	QuantFP4
	// QuantInt8 is row-wise absmax int8 (LLM.int8's weight format), with
	// optional outlier columns kept unquantised.
	QuantInt8
)

// String names the format as recipes and bitsandbytes do ("nf4", "fp4",
// "int8").
func (k QuantKind) String() string {
	switch k {
	case QuantNF4:
		return "nf4"
	case QuantFP4:
		return "fp4"
	case QuantInt8:
		return "int8"
	}
	return "none"
}

// QuantWeight is a frozen weight matrix [Rows, Cols] (Hugging Face's [out,
// in]) in a quantised format. All its tensors live on the back end.
type QuantWeight struct {
	Kind       QuantKind
	Rows, Cols int
	// OrigDType is the dtype the weight had before it was quantised, the
	// dtype a merge writes back.
	OrigDType tensor.DType

	// Codes holds the quantised values. 4-bit: U8 [ceil(Rows*Cols/2)], two
	// codes per byte over the row-major elements, the first element in the
	// high nibble. Int8: U8 [Rows*Cols], each byte an int8 (two's
	// complement).
	Codes *tensor.Tensor
	// Code is the 4-bit code table, F32 [16]: code c stands for
	// Code[c]*absmax (bitsandbytes' quant_map).
	Code *tensor.Tensor
	// BlockSize is the number of elements per absmax block (4-bit; 64).
	BlockSize int
	// Absmax is F32: per block for 4-bit without double quantisation, per
	// row for int8. Nil when double-quantised.
	Absmax *tensor.Tensor

	// Double quantisation of the 4-bit absmax values: QAbsmax (U8, one code
	// per block) encodes absmax-Offset block-wise with the 8-bit signed
	// dynamic map NestedCode (F32 [256]) in blocks of NestedBlockSize (256)
	// scaled by NestedAbsmax (F32, one per nested block).
	QAbsmax         *tensor.Tensor
	NestedAbsmax    *tensor.Tensor
	NestedCode      *tensor.Tensor
	NestedBlockSize int
	Offset          float64

	// Int8 outliers (LLM.int8 style): the columns OutlierCols (I32 [n]) are
	// kept unquantised in Outliers (F32 [Rows, n]); their int8 codes are 0.
	OutlierCols *tensor.Tensor
	Outliers    *tensor.Tensor
}

// Elements is Rows*Cols.
func (w *QuantWeight) Elements() int { return w.Rows * w.Cols }

// Bytes is the memory the quantised weight takes.
func (w *QuantWeight) Bytes() int {
	n := 0
	for _, t := range []*tensor.Tensor{w.Codes, w.Code, w.Absmax, w.QAbsmax, w.NestedAbsmax, w.NestedCode, w.OutlierCols, w.Outliers} {
		if t != nil {
			n += t.Bytes()
		}
	}
	return n
}

// Quantizers quantise and dequantise weights and blocks of values.
type Quantizers interface {
	// Quantize fills w's Codes and Absmax (or, when w.QAbsmax is set, its
	// double-quantised absmax) from src ([Rows, Cols], F32, BF16 or F16),
	// as bitsandbytes' quantize_4bit (4-bit kinds: nearest code of
	// x/absmax) or int8 row-wise absmax rounding does. The tensors of w
	// are allocated by the caller with the sizes above. For int8, columns
	// whose largest magnitude exceeds outlierThreshold (> 0) must have been
	// listed in w.OutlierCols; their values go to w.Outliers.
	Quantize(w *QuantWeight, src *tensor.Tensor) error
	// Dequantize writes w's values into dst (F32 [Rows, Cols], or a view of
	// rows [r0, r0+n) when dst has n*Cols elements and r0 is given).
	Dequantize(dst *tensor.Tensor, w *QuantWeight, r0 int) error
	// QuantizeBlockwise8 quantises x (F32) in blocks of blockSize: absmax
	// per block into absmax (F32), and each x/absmax to the index of the
	// nearest value of code (F32 [256], sorted ascending) into codes (U8).
	QuantizeBlockwise8(codes, absmax, x, code *tensor.Tensor, blockSize int) error
	// DequantizeBlockwise8 is its inverse: x = code[codes]*absmax.
	DequantizeBlockwise8(x, codes, absmax, code *tensor.Tensor, blockSize int) error
}
