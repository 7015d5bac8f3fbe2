package cpu

import (
	"errors"

	"github.com/whet-ai/whet/backend"
)

var errTODOAttention = errors.New("cpu: attention not implemented yet")

func (b *Backend) Attention(a *backend.AttentionArgs) error         { return errTODOAttention }
func (b *Backend) AttentionBackward(a *backend.AttentionArgs) error { return errTODOAttention }
