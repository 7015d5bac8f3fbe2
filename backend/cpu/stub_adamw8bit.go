package cpu

import (
	"errors"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/tensor"
)

func (b *Backend) AdamW8bit(p, g, m, v, mAbsmax, vAbsmax, codeM, codeV *tensor.Tensor, a *backend.AdamWArgs) error {
	return errors.New("cpu: AdamW8bit not implemented yet")
}
