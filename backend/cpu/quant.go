package cpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

// This file holds the kernels of backend.Quantizers: bitsandbytes' 4-bit
// formats (NF4, FP4) with optional double quantisation of the block scales,
// LLM.int8's row-wise int8, and blockwise 8-bit quantisation with a 256-entry
// code. Quantisation follows bitsandbytes' CUDA kernels (kQuantizeBlockwise
// with dQuantizeNF4, dQuantizeFP4 and dQuantize; kInt8VectorQuant) operation
// by operation in float32, so codes and scales come out bit for bit the same
// (quant's golden test checks this against an independent statement of
// them). The exceptions, where bitsandbytes itself is not reproducible or
// whet's format is richer: the double-quantisation offset is a float64 mean
// rounded to float32 (torch's float32 reduction may differ in the last bit);
// int8 divides 127 by the row absmax exactly (the CUDA kernel uses the
// approximate __fdividef) and takes weights as they are (bitsandbytes first
// converts them to float16), and its row absmax leaves out whole outlier
// columns (bitsandbytes leaves out the outlier values). Dequantisation is
// one table lookup and one float32 multiply per element, as
// kDequantizeBlockwise does.

// quantGrain is the number of elements a goroutine of a quantisation kernel
// gets at least.
const quantGrain = 1 << 14

// quantInv127 is bitsandbytes' 1/127 (int8_vectorwise_dequant), as a float32.
const quantInv127 = float32(7.874015718698502e-3)

// u8s returns the bytes of a CPU U8 tensor. name is used in the error when the
// tensor is nil, elsewhere or of another dtype.
func quantU8s(op, name string, t *tensor.Tensor) ([]byte, error) {
	if t == nil {
		return nil, fmt.Errorf("cpu: %s: %s: missing tensor", op, name)
	}
	if t.DType() != tensor.U8 {
		return nil, fmt.Errorf("cpu: %s: %s: tensor %v, want u8", op, name, t)
	}
	raw, err := Bytes(t)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %s: %w", op, name, err)
	}
	return raw, nil
}

// f32n returns the elements of a CPU F32 tensor that must have n elements.
func quantF32n(op, name string, t *tensor.Tensor, n int) ([]float32, error) {
	s, err := floats[float32](name, t)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	if len(s) != n {
		return nil, fmt.Errorf("cpu: %s: %s: tensor %v has %d elements, want %d", op, name, t, len(s), n)
	}
	return s, nil
}

// u8n is u8s for a tensor that must have n elements.
func quantU8n(op, name string, t *tensor.Tensor, n int) ([]byte, error) {
	s, err := quantU8s(op, name, t)
	if err != nil {
		return nil, err
	}
	if len(s) != n {
		return nil, fmt.Errorf("cpu: %s: %s: tensor %v has %d elements, want %d", op, name, t, len(s), n)
	}
	return s, nil
}

// quantSource reads the elements of an F32, BF16 or F16 tensor as float32.
type quantSource struct {
	f32  []float32
	u16  []uint16
	bf16 bool
}

func newQuantSource(op string, t *tensor.Tensor, n int) (quantSource, error) {
	if t == nil {
		return quantSource{}, fmt.Errorf("cpu: %s: src: missing tensor", op)
	}
	if t.Len() != n {
		return quantSource{}, fmt.Errorf("cpu: %s: src: tensor %v has %d elements, want %d", op, t, t.Len(), n)
	}
	var s quantSource
	var err error
	switch t.DType() {
	case tensor.F32:
		s.f32, err = Float32s(t)
	case tensor.BF16, tensor.F16:
		s.u16, err = Uint16s(t)
		s.bf16 = t.DType() == tensor.BF16
	default:
		return quantSource{}, fmt.Errorf("cpu: %s: src: tensor %v, want f32, bf16 or f16", op, t)
	}
	if err != nil {
		return quantSource{}, fmt.Errorf("cpu: %s: src: %w", op, err)
	}
	return s, nil
}

// read returns elements [off, off+n) as float32: a view of an F32 tensor, or
// the converted values in buf (which must hold n elements).
func (s quantSource) read(buf []float32, off, n int) []float32 {
	if s.f32 != nil || s.u16 == nil {
		return s.f32[off : off+n]
	}
	buf = buf[:n]
	if s.bf16 {
		tensor.F32FromBF16Slice(buf, s.u16[off:off+n])
	} else {
		tensor.F32FromF16Slice(buf, s.u16[off:off+n])
	}
	return buf
}

// absMax is max |x| as CUDA's fmaxf reduction computes it: NaNs are ignored,
// and an empty or all-zero (or all-NaN) slice gives 0.
func quantAbsMax(x []float32) float32 {
	m := float32(0)
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > m {
			m = a
		}
	}
	return m
}

// quantizeNF4 is bitsandbytes' dQuantizeNF4: the code of the NF4 value
// nearest x (x in [-1, 1]) by a tree of strict comparisons against the
// midpoints of adjacent code values, as float32 constants. A NaN takes every
// else branch and gets code 0.
func quantizeNF4(x float32) byte {
	if x > 0.03979014977812767 {
		if x > 0.3893125355243683 {
			if x > 0.6427869200706482 {
				if x > 0.8614784181118011 {
					return 15
				}
				return 14
			}
			if x > 0.5016634166240692 {
				return 13
			}
			return 12
		}
		if x > 0.2035212516784668 {
			if x > 0.2920137718319893 {
				return 11
			}
			return 10
		}
		if x > 0.1202552504837513 {
			return 9
		}
		return 8
	}
	if x > -0.33967943489551544 {
		if x > -0.13791173323988914 {
			if x > -0.045525018125772476 {
				return 7
			}
			return 6
		}
		if x > -0.23460740596055984 {
			return 5
		}
		return 4
	}
	if x > -0.6106329262256622 {
		if x > -0.4599952697753906 {
			return 3
		}
		return 2
	}
	if x > -0.8480964004993439 {
		return 1
	}
	return 0
}

// quantizeFP4 is bitsandbytes' dQuantizeFP4: bit 3 is the sign (x < 0), the
// rest the nearest magnitude of {0, 0.0625, 8, 12, 4, 6, 2, 3}/12 by a tree
// on |x|. A NaN gets code 0.
func quantizeFP4(x float32) byte {
	var sign byte
	if x < 0 {
		sign = 8
	}
	x = float32(math.Abs(float64(x)))
	if x > 0.29166667 {
		if x > 0.583333 {
			if x > 0.8333333 {
				return 3 + sign
			}
			return 2 + sign
		}
		if x > 0.4166667 {
			return 5 + sign
		}
		return 4 + sign
	}
	if x > 0.0859375 {
		if x > 0.20833333 {
			return 7 + sign
		}
		return 6 + sign
	}
	if x > 0.00260417 {
		return 1 + sign
	}
	return sign
}

// Quantize fills w's codes and scales from src; see backend.Quantizers.
func (b *Backend) Quantize(w *backend.QuantWeight, src *tensor.Tensor) error {
	if w == nil {
		return fmt.Errorf("cpu: Quantize: missing weight")
	}
	if w.Rows < 0 || w.Cols < 0 {
		return fmt.Errorf("cpu: Quantize: weight of %d x %d", w.Rows, w.Cols)
	}
	switch w.Kind {
	case backend.QuantNF4, backend.QuantFP4:
		return b.quantize4(w, src)
	case backend.QuantInt8:
		return b.quantizeInt8(w, src)
	}
	return fmt.Errorf("cpu: Quantize: unsupported format %v", w.Kind)
}

// check4 validates the tensors of a 4-bit weight and returns its codes and,
// without double quantisation, its absmax.
func quantCheck4(op string, w *backend.QuantWeight) (codes []byte, absmax []float32, err error) {
	n := w.Elements()
	if w.BlockSize <= 0 || w.BlockSize%2 != 0 {
		return nil, nil, fmt.Errorf("cpu: %s: block size %d, want a positive even number", op, w.BlockSize)
	}
	if codes, err = quantU8n(op, "Codes", w.Codes, (n+1)/2); err != nil {
		return nil, nil, err
	}
	blocks := (n + w.BlockSize - 1) / w.BlockSize
	if w.QAbsmax == nil {
		absmax, err = quantF32n(op, "Absmax", w.Absmax, blocks)
		return codes, absmax, err
	}
	if _, err := quantU8n(op, "QAbsmax", w.QAbsmax, blocks); err != nil {
		return nil, nil, err
	}
	if w.NestedBlockSize <= 0 {
		return nil, nil, fmt.Errorf("cpu: %s: nested block size %d, want a positive number", op, w.NestedBlockSize)
	}
	if _, err := quantF32n(op, "NestedAbsmax", w.NestedAbsmax, (blocks+w.NestedBlockSize-1)/w.NestedBlockSize); err != nil {
		return nil, nil, err
	}
	if _, err := quantF32n(op, "NestedCode", w.NestedCode, 256); err != nil {
		return nil, nil, err
	}
	return codes, nil, nil
}

// quantize4 is quantize_4bit: absmax per block of the flattened weight, and
// each element x mapped to the code of x * (1/absmax). Codes are packed two
// per byte, the first element of a pair in the high nibble; an odd element
// count is padded with a 0 element, as the CUDA kernel's block load pads.
// With double quantisation, the absmax values are quantised in turn (see
// doubleQuantize).
func (b *Backend) quantize4(w *backend.QuantWeight, src *tensor.Tensor) error {
	const op = "Quantize"
	codes, absmax, err := quantCheck4(op, w)
	if err != nil {
		return err
	}
	n := w.Elements()
	in, err := newQuantSource(op, src, n)
	if err != nil {
		return err
	}
	bs := w.BlockSize
	blocks := (n + bs - 1) / bs
	if absmax == nil {
		absmax = make([]float32, blocks) // double quantisation: scales go to QAbsmax
	}
	q := quantizeNF4
	if w.Kind == backend.QuantFP4 {
		q = quantizeFP4
	}
	b.parallelFor(blocks, max(1, quantGrain/bs), func(lo, hi int) {
		var buf []float32
		if in.u16 != nil {
			buf = make([]float32, bs)
		}
		for k := lo; k < hi; k++ {
			start := k * bs
			x := in.read(buf, start, min(bs, n-start))
			am := quantAbsMax(x)
			absmax[k] = am
			inv := 1 / am
			out := codes[start/2 : (start+len(x)+1)/2]
			j := 0
			for ; j+1 < len(x); j += 2 {
				out[j/2] = q(x[j]*inv)<<4 | q(x[j+1]*inv)
			}
			if j < len(x) { // the last, odd element and its 0 pad
				var zero float32
				out[j/2] = q(x[j]*inv)<<4 | q(zero*inv)
			}
		}
	})
	if w.QAbsmax != nil {
		return b.doubleQuantize(w, absmax)
	}
	return nil
}

// doubleQuantize is quantize_4bit's compress_statistics: the offset is the
// mean of the absmax values (summed in float64, rounded to float32), and
// absmax - offset is quantised blockwise with w.NestedCode (bitsandbytes'
// signed dynamic map) in blocks of w.NestedBlockSize.
func (b *Backend) doubleQuantize(w *backend.QuantWeight, absmax []float32) error {
	const op = "Quantize"
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	var offset float32
	if len(absmax) > 0 {
		offset = float32(sum / float64(len(absmax)))
	}
	centred := make([]float32, len(absmax))
	for i, a := range absmax {
		centred[i] = a - offset
	}
	qabs, _ := quantU8s(op, "QAbsmax", w.QAbsmax)
	nabs, _ := floats[float32]("NestedAbsmax", w.NestedAbsmax)
	code, _ := floats[float32]("NestedCode", w.NestedCode)
	if err := quantCheckCode(op, "NestedCode", code); err != nil {
		return err
	}
	b.quantBlockwise8(qabs, nabs, centred, code, w.NestedBlockSize)
	w.Offset = float64(offset)
	return nil
}

// checkCode8 checks a 256-entry code: sorted ascending, without NaNs.
func quantCheckCode(op, name string, code []float32) error {
	if len(code) != 256 {
		return fmt.Errorf("cpu: %s: %s has %d entries, want 256", op, name, len(code))
	}
	for i, c := range code {
		if c != c || (i > 0 && c < code[i-1]) {
			return fmt.Errorf("cpu: %s: %s is not sorted ascending at entry %d (%v)", op, name, i, c)
		}
	}
	return nil
}

// quantize8 is bitsandbytes' dQuantize<0>: the index of the code value nearest
// x, found by a 7-step search from pivot 127 and a comparison with the float32
// midpoint (a+b)*0.5 of the last pivot and its neighbour; x exactly at the
// midpoint keeps the pivot. A NaN gets 0.
func quantize8Bit(code *[256]float32, x float32) byte {
	pivot, upper, lower := 127, 255, 0
	val := code[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lower = pivot
			pivot += i
		} else {
			upper = pivot
			pivot -= i
		}
		val = code[pivot]
	}
	if x > val {
		if x > (code[upper]+val)*0.5 {
			return byte(upper)
		}
		return byte(pivot)
	}
	if x < (code[lower]+val)*0.5 {
		return byte(lower)
	}
	return byte(pivot)
}

// blockwise8 quantises x in blocks of bs into codes and absmax (slices of the
// right sizes; code is a checked 256-entry code).
func (b *Backend) quantBlockwise8(codes []byte, absmax, x, code []float32, bs int) {
	c := (*[256]float32)(code)
	blocks := (len(x) + bs - 1) / bs
	b.parallelFor(blocks, max(1, quantGrain/bs), func(lo, hi int) {
		for k := lo; k < hi; k++ {
			start := k * bs
			xs := x[start:min(start+bs, len(x))]
			am := quantAbsMax(xs)
			absmax[k] = am
			inv := 1 / am
			out := codes[start : start+len(xs)]
			for j, v := range xs {
				out[j] = quantize8Bit(c, v*inv)
			}
		}
	})
}

// QuantizeBlockwise8 quantises x in blocks of blockSize with a 256-entry code;
// see backend.Quantizers.
func (b *Backend) QuantizeBlockwise8(codes, absmax, x, code *tensor.Tensor, blockSize int) error {
	const op = "QuantizeBlockwise8"
	cs, as, xs, table, err := quantCheckBlockwise8(op, codes, absmax, x, code, blockSize)
	if err != nil {
		return err
	}
	b.quantBlockwise8(cs, as, xs, table, blockSize)
	return nil
}

// DequantizeBlockwise8 sets x = code[codes] * absmax of each block.
func (b *Backend) DequantizeBlockwise8(x, codes, absmax, code *tensor.Tensor, blockSize int) error {
	const op = "DequantizeBlockwise8"
	cs, as, xs, table, err := quantCheckBlockwise8(op, codes, absmax, x, code, blockSize)
	if err != nil {
		return err
	}
	c := (*[256]float32)(table)
	blocks := (len(xs) + blockSize - 1) / blockSize
	b.parallelFor(blocks, max(1, quantGrain/blockSize), func(lo, hi int) {
		for k := lo; k < hi; k++ {
			start := k * blockSize
			out := xs[start:min(start+blockSize, len(xs))]
			in := cs[start : start+len(out)]
			am := as[k]
			for j, q := range in {
				out[j] = c[q] * am
			}
		}
	})
	return nil
}

func quantCheckBlockwise8(op string, codes, absmax, x, code *tensor.Tensor, bs int) ([]byte, []float32, []float32, []float32, error) {
	if bs <= 0 {
		return nil, nil, nil, nil, fmt.Errorf("cpu: %s: block size %d, want a positive number", op, bs)
	}
	xs, err := floats[float32]("x", x)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	cs, err := quantU8n(op, "codes", codes, len(xs))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	as, err := quantF32n(op, "absmax", absmax, (len(xs)+bs-1)/bs)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	table, err := quantF32n(op, "code", code, 256)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := quantCheckCode(op, "code", table); err != nil {
		return nil, nil, nil, nil, err
	}
	return cs, as, xs, table, nil
}

// checkInt8 validates the tensors of an int8 weight.
func quantCheckInt8(op string, w *backend.QuantWeight) (codes []byte, scb []float32, cols []int32, outliers []float32, err error) {
	if codes, err = quantU8n(op, "Codes", w.Codes, w.Elements()); err != nil {
		return
	}
	if scb, err = quantF32n(op, "Absmax", w.Absmax, w.Rows); err != nil {
		return
	}
	if (w.OutlierCols == nil) != (w.Outliers == nil) {
		err = fmt.Errorf("cpu: %s: OutlierCols and Outliers must both be set or both be nil", op)
		return
	}
	if w.OutlierCols == nil {
		return
	}
	if cols, err = Int32s(w.OutlierCols); err != nil {
		err = fmt.Errorf("cpu: %s: OutlierCols: %w", op, err)
		return
	}
	for i, c := range cols {
		if c < 0 || int(c) >= w.Cols || (i > 0 && c <= cols[i-1]) {
			err = fmt.Errorf("cpu: %s: OutlierCols[%d] = %d: want strictly increasing columns in [0, %d)", op, i, c, w.Cols)
			return
		}
	}
	outliers, err = quantF32n(op, "Outliers", w.Outliers, w.Rows*len(cols))
	return
}

// quantizeInt8 is LLM.int8's row-wise quantisation (kInt8VectorQuant): per
// row, absmax over the columns that are not outlier columns, and each value
// rounded (half to even) from x * (127/absmax); a zero row gets zero codes.
// Outlier columns get code 0 and keep their values in w.Outliers.
func (b *Backend) quantizeInt8(w *backend.QuantWeight, src *tensor.Tensor) error {
	const op = "Quantize"
	codes, scb, cols, outliers, err := quantCheckInt8(op, w)
	if err != nil {
		return err
	}
	in, err := newQuantSource(op, src, w.Elements())
	if err != nil {
		return err
	}
	nc := w.Cols
	var outlier []bool
	if len(cols) > 0 {
		outlier = make([]bool, nc)
		for _, c := range cols {
			outlier[c] = true
		}
	}
	b.parallelFor(w.Rows, max(1, quantGrain/max(nc, 1)), func(lo, hi int) {
		var buf []float32
		if in.u16 != nil {
			buf = make([]float32, nc)
		}
		for r := lo; r < hi; r++ {
			x := in.read(buf, r*nc, nc)
			out := codes[r*nc : (r+1)*nc]
			am := float32(0)
			for j, v := range x {
				if a := float32(math.Abs(float64(v))); a > am && (outlier == nil || !outlier[j]) {
					am = a
				}
			}
			scb[r] = am
			scale := 127 / am
			for j, v := range x {
				out[j] = byte(int8(quantRoundInt8(v * scale)))
			}
			for t, c := range cols {
				out[c] = 0
				outliers[r*len(cols)+t] = x[c]
			}
		}
	})
	return nil
}

// roundInt8 rounds half to even into [-127, 127]; NaN (0 * inf from a zero
// row) is 0.
func quantRoundInt8(p float32) int {
	if p != p {
		return 0
	}
	r := math.RoundToEven(float64(p))
	return int(max(-127, min(127, r)))
}

// Dequantize writes rows [r0, r0+n) of w into dst (n*Cols elements).
func (b *Backend) Dequantize(dst *tensor.Tensor, w *backend.QuantWeight, r0 int) error {
	const op = "Dequantize"
	if w == nil {
		return fmt.Errorf("cpu: %s: missing weight", op)
	}
	out, err := floats[float32]("dst", dst)
	if err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if w.Rows < 0 || w.Cols < 0 {
		return fmt.Errorf("cpu: %s: weight of %d x %d", op, w.Rows, w.Cols)
	}
	rows := 0
	if w.Cols > 0 {
		rows = len(out) / w.Cols
	}
	if len(out) != rows*w.Cols || r0 < 0 || r0+rows > w.Rows {
		return fmt.Errorf("cpu: %s: dst %v (%d elements) is not rows [%d, %d+n) of a %d x %d weight",
			op, dst, len(out), r0, r0, w.Rows, w.Cols)
	}
	switch w.Kind {
	case backend.QuantNF4, backend.QuantFP4:
		return b.dequantize4(out, w, r0*w.Cols)
	case backend.QuantInt8:
		return b.dequantizeInt8(out, w, r0)
	}
	return fmt.Errorf("cpu: %s: unsupported format %v", op, w.Kind)
}

// dequantize4 writes elements [e0, e0+len(out)) of a 4-bit weight: code[c] *
// absmax of the element's block, where absmax is, with double quantisation,
// float32(NestedCode[q] * NestedAbsmax) + Offset.
func (b *Backend) dequantize4(out []float32, w *backend.QuantWeight, e0 int) error {
	const op = "Dequantize"
	codes, absmax, err := quantCheck4(op, w)
	if err != nil {
		return err
	}
	code, err := quantF32n(op, "Code", w.Code, 16)
	if err != nil {
		return err
	}
	var qabs []byte
	var nabs, ncode []float32
	var offset float32
	if absmax == nil {
		qabs, _ = quantU8s(op, "QAbsmax", w.QAbsmax)
		nabs, _ = floats[float32]("NestedAbsmax", w.NestedAbsmax)
		ncode, _ = floats[float32]("NestedCode", w.NestedCode)
		offset = float32(w.Offset)
	}
	nbs := w.NestedBlockSize
	scale := func(k int) float32 {
		if absmax != nil {
			return absmax[k]
		}
		return float32(ncode[qabs[k]]*nabs[k/nbs]) + offset
	}
	// pairs[c] holds the values of the high and the low nibble of byte c.
	var pairs [256][2]float32
	for c := range pairs {
		pairs[c] = [2]float32{code[c>>4], code[c&15]}
	}
	if len(out) == 0 {
		return nil
	}
	bs := w.BlockSize
	e1 := e0 + len(out)
	k0, k1 := e0/bs, (e1-1)/bs+1
	b.parallelFor(k1-k0, max(1, quantGrain/bs), func(lo, hi int) {
		for k := k0 + lo; k < k0+hi; k++ {
			s, e := max(k*bs, e0), min((k+1)*bs, e1)
			am := scale(k)
			d := out[s-e0 : e-e0]
			if s&1 == 1 { // starts on a low nibble
				d[0] = code[codes[s>>1]&15] * am
				d = d[1:]
				s++
			}
			src := codes[s>>1 : (e >> 1)]
			if len(src) > 0 {
				// Whole bytes: two values each, as [2]float32 pairs.
				dp := unsafe.Slice((*[2]float32)(unsafe.Pointer(&d[:2*len(src)][0])), len(src))
				for j, c := range src {
					p := &pairs[c]
					dp[j] = [2]float32{p[0] * am, p[1] * am}
				}
			}
			if e&1 == 1 { // ends on a high nibble
				d[len(d)-1] = code[codes[e>>1]>>4] * am
			}
		}
	})
	return nil
}

// dequantizeInt8 writes rows [r0, r0+len(out)/Cols) of an int8 weight:
// float32(code * SCB[row]) * (1/127), and the outlier columns' kept values.
func (b *Backend) dequantizeInt8(out []float32, w *backend.QuantWeight, r0 int) error {
	codes, scb, cols, outliers, err := quantCheckInt8("Dequantize", w)
	if err != nil {
		return err
	}
	nc := w.Cols
	if nc == 0 {
		return nil
	}
	rows := len(out) / nc
	b.parallelFor(rows, max(1, quantGrain/nc), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := r0 + i
			d := out[i*nc : (i+1)*nc]
			in := codes[r*nc : (r+1)*nc]
			s := scb[r]
			in8 := unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(in))), len(in))
			for j, q := range in8 {
				d[j] = float32(float32(q)*s) * quantInv127
			}
			for t, c := range cols {
				d[c] = outliers[r*len(cols)+t]
			}
		}
	})
	return nil
}

var _ backend.Quantizers = (*Backend)(nil)
