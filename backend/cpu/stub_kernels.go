package cpu

import (
	"errors"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

var errTODO = errors.New("cpu: kernel not implemented yet")

type T = tensor.Tensor

func (b *Backend) Fill(dst *T, v float64) error                              { return errTODO }
func (b *Backend) Convert(dst, src *T) error                                 { return errTODO }
func (b *Backend) Add(dst, x, y *T) error                                    { return errTODO }
func (b *Backend) Mul(dst, x, y *T) error                                    { return errTODO }
func (b *Backend) Scale(dst, x *T, s float64) error                          { return errTODO }
func (b *Backend) AddScaled(dst, x *T, s float64) error                      { return errTODO }
func (b *Backend) SumRows(dst, x *T) error                                   { return errTODO }
func (b *Backend) Activation(f backend.Act, dst, x *T) error                 { return errTODO }
func (b *Backend) ActivationBackward(f backend.Act, dx, x, dy *T) error      { return errTODO }
func (b *Backend) SwiGLU(dst, gate, up *T) error                             { return errTODO }
func (b *Backend) SwiGLUBackward(dgate, dup, gate, up, dy *T) error          { return errTODO }
func (b *Backend) Softmax(dst, x *T) error                                   { return errTODO }
func (b *Backend) SoftmaxBackward(dx, y, dy *T) error                        { return errTODO }
func (b *Backend) Dropout(dst, x *T, p float64, seed uint64) error           { return errTODO }
func (b *Backend) Gather(dst, table, ids *T) error                           { return errTODO }
func (b *Backend) ScatterAdd(dtable, ids, dy *T) error                       { return errTODO }
func (b *Backend) RMSNorm(y, rstd, x, w *T, eps float64) error               { return errTODO }
func (b *Backend) RMSNormBackward(dx, dw, x, w, rstd, dy *T) error           { return errTODO }
func (b *Backend) LayerNorm(y, mean, rstd, x, w, bias *T, eps float64) error { return errTODO }
func (b *Backend) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dy *T) error {
	return errTODO
}
func (b *Backend) RoPE(dst, x, pos *T, r *backend.Rope, inverse bool) error { return errTODO }
func (b *Backend) CrossEntropy(losses, lse, logits, targets *T) error       { return errTODO }
func (b *Backend) CrossEntropyBackward(dlogits, logits, lse, targets, dloss *T) error {
	return errTODO
}
