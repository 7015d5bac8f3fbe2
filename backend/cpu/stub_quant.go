package cpu

import (
	"errors"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

var errTODOQuant = errors.New("cpu: quantisation kernels not implemented yet")

func (b *Backend) Quantize(w *backend.QuantWeight, src *tensor.Tensor) error { return errTODOQuant }
func (b *Backend) Dequantize(dst *tensor.Tensor, w *backend.QuantWeight, r0 int) error {
	return errTODOQuant
}
func (b *Backend) QuantizeBlockwise8(codes, absmax, x, code *tensor.Tensor, blockSize int) error {
	return errTODOQuant
}
func (b *Backend) DequantizeBlockwise8(x, codes, absmax, code *tensor.Tensor, blockSize int) error {
	return errTODOQuant
}
