package models

import (
	"fmt"
	"slices"
	"strings"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/quant"
	"github.com/whet-ai/whet/tensor"
	"github.com/whet-ai/whet/tokenizer"
)

// Loaded is a model with what came with it.
type Loaded struct {
	Model Model
	// Tokenizer is the model's tokenizer: tokenizer.json of a Hugging Face
	// directory, or the vocabulary of a GGUF file; nil when there is none.
	Tokenizer *tokenizer.Tokenizer
	// Source is the directory or file the weights came from.
	Source string
	// Dir is the Hugging Face directory, nil for a GGUF file.
	Dir *hf.ModelDir
}

// Load opens a model: a .gguf file, or a Hugging Face directory (a path, or
// a repo id in the local Hugging Face cache, at revision). Weights keep
// their stored dtype (F32, BF16 or F16; quantised GGUF tensors are
// dequantised to F32) and are frozen: training code makes the ones it trains
// into parameters.
func Load(b backend.Backend, model, revision string) (*Loaded, error) {
	if strings.HasSuffix(strings.ToLower(model), ".gguf") {
		return LoadGGUF(b, model)
	}
	dir, err := hf.Resolve(model, revision)
	if err != nil {
		return nil, err
	}
	return LoadDir(b, dir)
}

// LoadDir loads a model from a Hugging Face directory.
func LoadDir(b backend.Backend, dir *hf.ModelDir) (*Loaded, error) {
	cfg, err := dir.Config()
	if err != nil {
		return nil, err
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir.Path(), err)
	}
	w, err := dir.Weights()
	if err != nil {
		return nil, err
	}
	if w.Format == hf.GGUFOnly {
		if len(w.GGUF) != 1 {
			return nil, fmt.Errorf("%s: no safetensors, and %d GGUF files; name the one to load", dir.Path(), len(w.GGUF))
		}
		return LoadGGUF(b, w.GGUF[0])
	}
	st, err := safetensors.OpenDir(dir.Path())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	// Weights that bitsandbytes quantised (a checkpoint that whet quantize
	// or transformers wrote) load as quantised weights.
	get := quant.FileGetter(st)
	for _, p := range nn.Params(m) {
		q, ok, err := quant.Decode(b, p.Name, get)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", st.Path(), err)
		}
		if ok {
			*p.Var = autograd.Quantized(p.Name, q)
		}
	}
	err = loadWeights(b, m, st.Path(), func(name string) (tensor.DType, []int, []byte, bool, error) {
		info, ok := st.Info(name)
		if !ok {
			return 0, nil, nil, false, nil
		}
		dt, ok := info.DType.TensorDType()
		if !ok || !dt.IsFloat() {
			return 0, nil, nil, true, fmt.Errorf("tensor %s is %v, want a float dtype", name, info.DType)
		}
		raw, err := st.Raw(name)
		return dt, info.Shape, raw, true, err
	})
	if err != nil {
		return nil, err
	}
	l := &Loaded{Model: m, Source: dir.Path(), Dir: dir}
	if tf, err := dir.TokenizerFiles(); err == nil && tf.TokenizerJSON != "" {
		if l.Tokenizer, err = tokenizer.Load(tf.TokenizerJSON); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// LoadGGUF loads a model from a GGUF file. Llama-type architectures store q
// and k in the interleaved RoPE layout; their rows are permuted to Hugging
// Face's layout as they load, so the model is the one `whet convert` writes.
func LoadGGUF(b backend.Backend, path string) (*Loaded, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := GGUFConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Llama-type GGUF files store q and k rows in the interleaved RoPE
	// layout; they are permuted back to Hugging Face's as they load, so
	// that the model, its adapters and its checkpoints all use one layout
	// (an adapter trained here then fits the converted model, and back).
	arch, _ := f.String("general.architecture")
	permute := GGUFRopeInterleaved(arch)
	byHF := map[string]gguf.TensorInfo{}
	for _, t := range f.Tensors() {
		if name, ok := GGUFTensorName(t.Name); ok {
			byHF[name] = t
		}
	}
	err = loadWeights(b, m, path, func(name string) (tensor.DType, []int, []byte, bool, error) {
		t, ok := byHF[name]
		if !ok {
			return 0, nil, nil, false, nil
		}
		var dt tensor.DType
		var raw []byte
		switch t.Type {
		case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16:
			dt = map[gguf.GGMLType]tensor.DType{gguf.TypeF32: tensor.F32, gguf.TypeF16: tensor.F16, gguf.TypeBF16: tensor.BF16}[t.Type]
			if raw, err = f.Raw(t.Name); err != nil {
				return 0, nil, nil, true, err
			}
		default:
			vals, err := f.Float32(t.Name)
			if err != nil {
				return 0, nil, nil, true, err
			}
			dt, raw = tensor.F32, backend.Float32Bytes(vals)
		}
		if heads := qkHeads(cfg, name); permute && heads > 0 {
			if raw, err = permuteRows(raw, t.Shape[0], heads); err != nil {
				return 0, nil, nil, true, fmt.Errorf("tensor %s: %w", name, err)
			}
		}
		return dt, t.Shape, raw, true, nil
	})
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", path, err)
	}
	return &Loaded{Model: m, Tokenizer: tok, Source: path}, nil
}

// tensorSource finds a checkpoint tensor by Hugging Face name: its dtype,
// shape and raw little-endian bytes, and whether it exists.
type tensorSource func(name string) (tensor.DType, []int, []byte, bool, error)

// shaper is implemented by models that know each weight's shape.
type shaper interface {
	WeightShape(name string) ([]int, bool)
}

// loadWeights fills every weight of m from src, as frozen leaves. A missing
// weight that is not optional, or one whose shape differs from the config's,
// is an error naming the tensor and the file.
func loadWeights(b backend.Backend, m Model, file string, src tensorSource) error {
	for _, p := range nn.Params(m) {
		if *p.Var != nil && (*p.Var).Quant != nil {
			continue // loaded quantised
		}
		dt, shape, raw, ok, err := src(p.Name)
		if err != nil {
			return fmt.Errorf("load %s: %w", file, err)
		}
		if !ok {
			if m.Optional(p.Name) {
				continue
			}
			return fmt.Errorf("load %s: tensor %s is missing", file, p.Name)
		}
		if s, ok := m.(shaper); ok {
			if want, ok := s.WeightShape(p.Name); ok && !slices.Equal(want, shape) {
				return fmt.Errorf("load %s: tensor %s has shape %v, the config says %v", file, p.Name, shape, want)
			}
		}
		t, err := b.Alloc(dt, shape...)
		if err != nil {
			return fmt.Errorf("load %s: tensor %s: %w", file, p.Name, err)
		}
		if err := b.CopyFromHost(t, raw); err != nil {
			return fmt.Errorf("load %s: tensor %s: %w", file, p.Name, err)
		}
		*p.Var = autograd.Const(p.Name, t)
	}
	return nil
}

// qkHeads is the number of heads whose rows a GGUF q or k projection
// (weight or bias) interleaves, or 0 for any other tensor.
func qkHeads(cfg *hf.Config, name string) int {
	switch {
	case strings.HasSuffix(name, ".self_attn.q_proj.weight"), strings.HasSuffix(name, ".self_attn.q_proj.bias"):
		return cfg.NumAttentionHeads
	case strings.HasSuffix(name, ".self_attn.k_proj.weight"), strings.HasSuffix(name, ".self_attn.k_proj.bias"):
		return cfg.NumKeyValueHeads
	}
	return 0
}

// permuteRows reorders the rows of a row-major tensor (raw bytes, rows
// rows) from GGUF's interleaved RoPE order to Hugging Face's half-split
// order within each of heads heads: GGUF row 2i+j of a head becomes row
// j*d/2+i (see PermuteQK).
func permuteRows(raw []byte, rows, heads int) ([]byte, error) {
	if rows <= 0 || heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 || len(raw)%rows != 0 {
		return nil, fmt.Errorf("%d rows in %d heads cannot be permuted (want an even head size)", rows, heads)
	}
	rowBytes := len(raw) / rows
	d := rows / heads
	out := make([]byte, len(raw))
	for h := range heads {
		for i := range d / 2 {
			for j := range 2 {
				g, r := h*d+2*i+j, h*d+j*(d/2)+i
				copy(out[r*rowBytes:(r+1)*rowBytes], raw[g*rowBytes:(g+1)*rowBytes])
			}
		}
	}
	return out, nil
}
