package peft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/whet-ai/whet/autograd"
	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/tensor"
)

// File names of an adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// Save writes the adapter to dir as PEFT's save_pretrained does:
// adapter_config.json (every key PEFT 0.17.1 writes, sorted, inference_mode true,
// target_modules as PEFT records them) and adapter_model.safetensors (F32
// tensors "base_model.model.<module>.lora_A.weight" [r, in],
// ".lora_B.weight" [out, r] and, for DoRA, ".lora_magnitude_vector" [out],
// metadata {"format": "pt"}). Each file is written to a temporary file and
// renamed into place.
func (a *Adapter) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("peft: save: %w", err)
	}
	var ts []safetensors.Tensor
	for _, l := range a.Layers {
		for _, v := range []*autograd.Var{l.A, l.B, l.Magnitude} {
			if v == nil {
				continue
			}
			data, err := f32Bytes(a.b, v.Value)
			if err != nil {
				return fmt.Errorf("peft: save %s: %w", v.Name(), err)
			}
			ts = append(ts, safetensors.Tensor{Name: tensorKey(l, v), DType: safetensors.F32, Shape: v.Value.Shape(), Data: data})
		}
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, nil); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	cfg := a.Config.clone()
	names := make([]string, len(a.Layers))
	for i, l := range a.Layers {
		names[i] = l.Name
	}
	cfg.TargetModules = savedTargets(a.Config, a.model, names)
	cfg.InferenceMode = true
	cfg.PeftType = "LORA"
	if cfg.TaskType == "" {
		cfg.TaskType = "CAUSAL_LM"
	}
	data, err := MarshalConfig(cfg)
	if err != nil {
		return fmt.Errorf("peft: save: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ConfigFile), data)
}

// MarshalConfig encodes cfg as adapter_config.json: sorted keys, indented
// by two spaces, as PEFT writes it.
func MarshalConfig(cfg *LoraConfig) ([]byte, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// tensorKey is the safetensors key of one of l's tensors.
func tensorKey(l *Layer, v *autograd.Var) string {
	switch v {
	case l.A:
		return KeyPrefix + l.Name + SuffixA
	case l.B:
		return KeyPrefix + l.Name + SuffixB
	}
	return KeyPrefix + l.Name + SuffixMagnitude
}

// f32Bytes copies a float tensor to the host as F32 bytes, converting on
// the back end when it is not F32.
func f32Bytes(b backend.Backend, t *tensor.Tensor) ([]byte, error) {
	src := t
	if t.DType() != tensor.F32 {
		c, err := b.Alloc(tensor.F32, t.Shape()...)
		if err != nil {
			return nil, err
		}
		if err := b.Convert(c, t); err != nil {
			return nil, err
		}
		src = c
	}
	out := make([]byte, src.Bytes())
	if err := b.CopyToHost(out, src); err != nil {
		return nil, err
	}
	return out, nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("peft: write %s: %w", path, err)
	}
	return nil
}

// ReadConfig reads and validates dir/adapter_config.json.
func ReadConfig(dir string) (*LoraConfig, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	var cfg LoraConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("adapter: parse %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", path, err)
	}
	return &cfg, nil
}

// loraKey splits an adapter tensor key into its module and kind ("A", "B"
// or "m"). PEFT's old magnitude key (with ".weight") is accepted too.
func loraKey(key string) (module, kind string, ok bool) {
	rest, found := strings.CutPrefix(key, KeyPrefix)
	if !found {
		return "", "", false
	}
	for _, s := range []struct{ suffix, kind string }{
		{SuffixA, "A"}, {SuffixB, "B"}, {SuffixMagnitude, "m"}, {SuffixMagnitude + ".weight", "m"},
	} {
		if m, found := strings.CutSuffix(rest, s.suffix); found && m != "" {
			return m, s.kind, true
		}
	}
	return "", "", false
}

// Load reads a PEFT LoRA adapter directory (written by whet or by PEFT) and
// attaches it to model's linear layers: trainable, into one ParamSet (F32
// unless WithDType says otherwise), or frozen (F32 constants). Every key
// and shape is checked against the base model; an unknown module, a wrong
// shape, an A without its B (or the reverse), a missing or unexpected DoRA
// magnitude and an unsupported option are errors naming the file and the
// tensor. The adapter starts in evaluation mode (no dropout).
func Load(b backend.Backend, model any, dir string, trainable bool, opts ...Option) (*Adapter, error) {
	o, err := getOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	wPath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wPath)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	defer f.Close()

	type parts struct{ a, b, m string }
	found := map[string]*parts{}
	var unknown, foreign []string
	for _, key := range f.Names() {
		module, kind, ok := loraKey(key)
		if !ok {
			foreign = append(foreign, key)
			continue
		}
		p := found[module]
		if p == nil {
			p = &parts{}
			found[module] = p
		}
		switch kind {
		case "A":
			p.a = key
		case "B":
			p.b = key
		default:
			if p.m != "" {
				return nil, fmt.Errorf("adapter %s: tensors %s and %s are both DoRA magnitudes of %s", wPath, p.m, key, module)
			}
			p.m = key
		}
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		return nil, fmt.Errorf("adapter %s: %d tensors are not LoRA weights (want %s<module>%s, %s or %s): %s",
			wPath, len(foreign), KeyPrefix, SuffixA, SuffixB, SuffixMagnitude, strings.Join(foreign[:min(5, len(foreign))], ", "))
	}
	var targets []nn.NamedLinear
	var shapes [][2]int
	for _, nl := range nn.Linears(model) {
		p := found[nl.Name]
		if p == nil {
			continue
		}
		delete(found, nl.Name)
		sh, err := linearShape(nl)
		if err != nil {
			return nil, err
		}
		if cfg.UseDoRA && nl.Layer.Weight.Quant != nil {
			return nil, fmt.Errorf("adapter %s: layer %s: DoRA on a quantised base is not supported; load the unquantised base", wPath, nl.Name)
		}
		switch {
		case p.a == "":
			other := p.b
			if other == "" {
				other = p.m
			}
			return nil, fmt.Errorf("adapter %s: tensor %s is missing (%s has no lora_A)", wPath, KeyPrefix+nl.Name+SuffixA, other)
		case p.b == "":
			return nil, fmt.Errorf("adapter %s: tensor %s is missing (%s has no lora_B)", wPath, KeyPrefix+nl.Name+SuffixB, p.a)
		case cfg.UseDoRA && p.m == "":
			return nil, fmt.Errorf("adapter %s: tensor %s is missing (use_dora is true)", wPath, KeyPrefix+nl.Name+SuffixMagnitude)
		case !cfg.UseDoRA && p.m != "":
			return nil, fmt.Errorf("adapter %s: tensor %s is a DoRA magnitude, but use_dora is false", wPath, p.m)
		}
		want := map[string][]int{p.a: {cfg.R, sh[1]}, p.b: {sh[0], cfg.R}}
		if p.m != "" {
			want[p.m] = []int{sh[0]}
		}
		for _, key := range []string{p.a, p.b, p.m} {
			if key == "" {
				continue
			}
			info, _ := f.Info(key)
			if !slices.Equal(info.Shape, want[key]) {
				return nil, fmt.Errorf("adapter %s: tensor %s has shape %v, the base model needs %v (r = %d, layer [out, in] = %v)",
					wPath, key, info.Shape, want[key], cfg.R, sh)
			}
			if dt, ok := info.DType.TensorDType(); !ok || !dt.IsFloat() {
				return nil, fmt.Errorf("adapter %s: tensor %s is %v, want a float dtype", wPath, key, info.DType)
			}
		}
		targets = append(targets, nl)
		shapes = append(shapes, sh)
	}
	for _, p := range found {
		for _, k := range []string{p.a, p.b, p.m} {
			if k != "" {
				unknown = append(unknown, k)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("adapter %s: %d tensors match no linear layer of the base model: %s", wPath, len(unknown), strings.Join(unknown[:min(5, len(unknown))], ", "))
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("adapter %s: no tensors", wPath)
	}

	ad := &Adapter{Config: cfg, b: b, model: model, dtype: o.dtype}
	if trainable {
		if ad.Params, err = newParamSet(b, o.dtype, targets, shapes, cfg.R, cfg.UseDoRA); err != nil {
			return nil, fmt.Errorf("adapter %s: %w", wPath, err)
		}
	}
	read := func(key string, dst *tensor.Tensor) (*tensor.Tensor, error) {
		info, _ := f.Info(key)
		dt, _ := info.DType.TensorDType()
		raw, err := f.Raw(key)
		if err != nil {
			return nil, fmt.Errorf("adapter %s: %w", wPath, err)
		}
		if dst == nil {
			if dst, err = b.Alloc(o.dtype, info.Shape...); err != nil {
				return nil, err
			}
		}
		src := dst
		if dt != dst.DType() {
			if src, err = b.Alloc(dt, info.Shape...); err != nil {
				return nil, err
			}
		}
		if err := b.CopyFromHost(src, raw); err != nil {
			return nil, fmt.Errorf("adapter %s: tensor %s: %w", wPath, key, err)
		}
		if src != dst {
			if err := b.Convert(dst, src); err != nil {
				return nil, fmt.Errorf("adapter %s: tensor %s: %w", wPath, key, err)
			}
		}
		return dst, nil
	}
	for i, nl := range targets {
		l := ad.newLayer(i, nl)
		keys := []string{KeyPrefix + nl.Name + SuffixA, KeyPrefix + nl.Name + SuffixB}
		vars := []**autograd.Var{&l.A, &l.B}
		if cfg.UseDoRA {
			m := KeyPrefix + nl.Name + SuffixMagnitude
			if _, ok := f.Info(m); !ok {
				m += ".weight"
			}
			keys = append(keys, m)
			vars = append(vars, &l.Magnitude)
		}
		for j, key := range keys {
			var dst *tensor.Tensor
			if *vars[j] != nil {
				dst = (*vars[j]).Value
			}
			t, err := read(key, dst)
			if err != nil {
				return nil, err
			}
			if *vars[j] == nil {
				*vars[j] = autograd.Const(key, t)
			}
		}
	}
	for _, l := range ad.Layers {
		l.Linear.Adapter = l
	}
	return ad, nil
}

// float64Bytes views a float64 slice as its bytes in memory order
// (little-endian on every architecture whet supports).
func float64Bytes(s []float64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 8*len(s))
}
