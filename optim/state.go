package optim

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/whet-ai/whet/formats/safetensors"
)

// SaveState writes the optimiser's buffers and step count to a safetensors
// file at path (atomically), for a checkpoint. Restoring it with LoadState
// continues bit for bit.
func SaveState(path string, o Optimizer) error {
	bufs, step := o.State()
	var ts []safetensors.Tensor
	names := make([]string, 0, len(bufs))
	for n := range bufs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t := bufs[n]
		dt, err := safetensors.FromTensorDType(t.DType())
		if err != nil {
			return fmt.Errorf("save optimizer state %s: %s: %w", path, n, err)
		}
		raw := make([]byte, t.Bytes())
		if err := o.Params().Backend().CopyToHost(raw, t); err != nil {
			return fmt.Errorf("save optimizer state %s: %s: %w", path, n, err)
		}
		ts = append(ts, safetensors.Tensor{Name: n, DType: dt, Shape: t.Shape(), Data: raw})
	}
	md := map[string]string{"step": strconv.Itoa(step), "optimizer": fmt.Sprintf("%T", o)}
	if err := safetensors.Write(path, ts, md); err != nil {
		return fmt.Errorf("save optimizer state: %w", err)
	}
	return nil
}

// LoadState restores what SaveState wrote into an optimiser over the same
// parameters. A file for another optimiser or other parameters is an error.
func LoadState(path string, o Optimizer) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("load optimizer state: %w", err)
	}
	defer f.Close()
	md := f.Metadata()
	if want := fmt.Sprintf("%T", o); md["optimizer"] != want {
		return fmt.Errorf("load optimizer state %s: saved by %q, restoring into %q", path, md["optimizer"], want)
	}
	step, err := strconv.Atoi(md["step"])
	if err != nil || step < 0 {
		return fmt.Errorf("load optimizer state %s: bad step %q", path, md["step"])
	}
	bufs, _ := o.State()
	for n, t := range bufs {
		info, ok := f.Info(n)
		if !ok {
			return fmt.Errorf("load optimizer state %s: tensor %s is missing", path, n)
		}
		dt, ok := info.DType.TensorDType()
		if !ok || dt != t.DType() || !slices.Equal(info.Shape, t.Shape()) {
			return fmt.Errorf("load optimizer state %s: tensor %s is %v%v, the optimizer has %v", path, n, info.DType, info.Shape, t)
		}
		raw, err := f.Raw(n)
		if err != nil {
			return err
		}
		if err := o.Params().Backend().CopyFromHost(t, raw); err != nil {
			return fmt.Errorf("load optimizer state %s: %s: %w", path, n, err)
		}
	}
	o.SetSteps(step)
	return nil
}
