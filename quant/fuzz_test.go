package quant

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/whet-ai/whet/formats/safetensors"
)

// fuzzTensors builds the tensors of a weight "w.weight" from fuzzed sizes:
// a 4-bit layout (packed codes, absmax as U8 or F32, quant_map, optional
// nested tensors and the quant state bytes) or an int8 one (codes [rows,
// cols], SCB and a weight_format holding state's first byte).
func fuzzTensors(state []byte, codes, absmax, qmap, nested, ncode uint16, u8Absmax, int8 bool, rows, cols uint8) []safetensors.Tensor {
	fill := func(n int, seed uint32) []byte {
		d := make([]byte, n)
		for i := range d {
			seed = seed*1664525 + 1013904223
			d[i] = byte(seed >> 24)
		}
		return d
	}
	floats := func(n int, seed uint32) []byte {
		d := fill(4*n, seed)
		for i := 0; i < n; i++ { // finite values in [-2, 2]
			v := float32(int32(binary.LittleEndian.Uint32(d[4*i:]))) / float32(math.MaxInt32) * 2
			binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(v))
		}
		return d
	}
	if int8 {
		ts := []safetensors.Tensor{
			{Name: "w.weight", DType: safetensors.I8, Shape: []int{int(rows), int(cols)}, Data: fill(int(codes), 1)},
			{Name: "w.SCB", DType: safetensors.F32, Shape: []int{int(absmax)}, Data: floats(int(absmax), 2)},
		}
		if len(state) > 0 {
			ts = append(ts, safetensors.Tensor{Name: "w.weight_format", DType: safetensors.U8, Shape: []int{}, Data: state[:1]})
		}
		return ts
	}
	ts := []safetensors.Tensor{
		{Name: "w.weight", DType: safetensors.U8, Shape: []int{int(codes), 1}, Data: fill(int(codes), 3)},
		{Name: "w.weight.quant_map", DType: safetensors.F32, Shape: []int{int(qmap)}, Data: floats(int(qmap), 4)},
		{Name: "w.weight.quant_state.bitsandbytes__nf4", DType: safetensors.U8, Shape: []int{len(state)}, Data: state},
	}
	if u8Absmax {
		ts = append(ts, safetensors.Tensor{Name: "w.weight.absmax", DType: safetensors.U8, Shape: []int{int(absmax)}, Data: fill(int(absmax), 5)})
	} else {
		ts = append(ts, safetensors.Tensor{Name: "w.weight.absmax", DType: safetensors.F32, Shape: []int{int(absmax)}, Data: floats(int(absmax), 5)})
	}
	if nested > 0 {
		ts = append(ts, safetensors.Tensor{Name: "w.weight.nested_absmax", DType: safetensors.F32, Shape: []int{int(nested)}, Data: floats(int(nested), 6)})
	}
	if ncode > 0 {
		ts = append(ts, safetensors.Tensor{Name: "w.weight.nested_quant_map", DType: safetensors.F32, Shape: []int{int(ncode)}, Data: floats(int(ncode), 7)})
	}
	return ts
}

// FuzzDecode checks that Decode never panics on malformed checkpoints, and
// that whatever it accepts dequantises without error.
func FuzzDecode(f *testing.F) {
	b := testBackend(f)
	state := func(s string) []byte { return []byte(s) }
	// Valid layouts: 6 x 70 NF4 (420 elements, 7 blocks of 64), with and
	// without double quantisation, and int8.
	f.Add(state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70]}`), uint16(210), uint16(7), uint16(16), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Add(state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [6, 70], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.25}`), uint16(210), uint16(7), uint16(16), uint16(1), uint16(256), true, false, uint8(0), uint8(0))
	f.Add(state(`{"quant_type": "nf4", "blocksize": 2, "dtype": "float16", "shape": [3, 3], "nested_blocksize": 2, "nested_offset": NaN}`), uint16(5), uint16(5), uint16(16), uint16(3), uint16(256), true, false, uint8(0), uint8(0))
	f.Add(state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [0, 7]}`), uint16(0), uint16(0), uint16(16), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Add(state("\x00"), uint16(12), uint16(4), uint16(0), uint16(0), uint16(0), false, true, uint8(4), uint8(3))
	f.Add(state("\x01"), uint16(12), uint16(4), uint16(0), uint16(0), uint16(0), false, true, uint8(4), uint8(3))
	// Malformed ones.
	f.Add(state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70]}`), uint16(209), uint16(7), uint16(16), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Add(state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [6, 70], "nested_blocksize": 256, "nested_offset": 1}`), uint16(210), uint16(7), uint16(16), uint16(1), uint16(255), true, false, uint8(0), uint8(0))
	f.Add(state(`{"quant_type": "nf4", "blocksize": -64, "shape": [6, 70]}`), uint16(210), uint16(7), uint16(16), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Add(state(`{"shape": [9223372036854775807, 2]}`), uint16(1), uint16(1), uint16(16), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Add(state(`[]`), uint16(0), uint16(0), uint16(0), uint16(0), uint16(0), false, false, uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, st []byte, codes, absmax, qmap, nested, ncode uint16, u8Absmax, int8 bool, rows, cols uint8) {
		ts := fuzzTensors(st, codes, absmax, qmap, nested, ncode, u8Absmax, int8, rows, cols)
		w, ok, err := Decode(b, "w.weight", TensorsGetter(ts))
		if err != nil {
			if !strings.Contains(err.Error(), "w.") {
				t.Errorf("error %q names no tensor", err)
			}
			return
		}
		if !ok {
			if w != nil {
				t.Error("a weight with ok false")
			}
			return
		}
		if _, err := Dequantize(b, w); err != nil {
			t.Errorf("Decode accepted a weight that does not dequantise: %v", err)
		}
	})
}
