package safetensors

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by the errors of Raw, Float32 and AppendFloat32 for
// a name the file (or sharded checkpoint) does not hold.
var ErrNotFound = errors.New("no such tensor")

// FormatError reports a safetensors file or index file that breaks the
// format. Open, OpenIndex and OpenDir return one (possibly wrapped) for every
// violation they find in a file's contents, as opposed to a failure to read
// it.
type FormatError struct {
	// Path is the file at fault.
	Path string
	// Tensor names the tensor at fault, or is empty when the fault is not
	// one tensor's (a bad header length, say).
	Tensor string
	// Msg says what is wrong and what was expected.
	Msg string
}

// Error returns "safetensors: PATH: tensor "NAME": MSG", without the tensor
// part when Tensor is empty.
func (e *FormatError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("safetensors: %s: tensor %q: %s", e.Path, e.Tensor, e.Msg)
	}
	return fmt.Sprintf("safetensors: %s: %s", e.Path, e.Msg)
}

func formatErr(path, tensor, format string, args ...any) error {
	return &FormatError{Path: path, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}
