package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/peft"
	"github.com/whet-ai/whet/tensor"
)

func init() {
	register(&Command{Name: "merge", Short: "merge a PEFT LoRA/DoRA adapter into its base model, writing a Hugging Face model directory", Run: runMerge})
}

const mergeSynopsis = `--adapter DIR [flags]

Loads the base model (--base, by default the adapter's
base_model_name_or_path: a Hugging Face model directory or a repo id in the
local cache), applies the PEFT LoRA adapter in DIR (adapter_config.json and
adapter_model.safetensors; LoRA, rsLoRA or DoRA), folds it into the weights
(W + scale*B*A, computed in float32; DoRA rescales each row to its trained
magnitude) and writes a Hugging Face model directory to --out (by default
DIR/merged): the weights as safetensors shards in the base's dtype (or
--dtype), config.json, generation_config.json and the tokenizer files of the
base. The output directory must be empty or absent unless --force is given.`

// mergeCopied are the files of the base directory that merge copies as
// they are.
var mergeCopied = []string{
	"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"tokenizer.model", "chat_template.jinja", "chat_template.json", "added_tokens.json", "vocab.json", "merges.txt",
}

func runMerge(env *Env, args []string) error {
	fs := newFlags(env, "merge", mergeSynopsis)
	adapter := fs.String("adapter", "", "PEFT adapter directory (required)")
	baseArg := fs.String("base", "", "base model directory or cached repo id (default: the adapter's base_model_name_or_path)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	out := fs.String("out", "", "output directory (default: ADAPTER/merged)")
	dtype := fs.String("dtype", "", "dtype of the written weights: f32, bf16 or f16 (default: the base's)")
	shardSize := fs.String("shard-size", "5GB", "largest safetensors file: 5GB is 5*10^9 bytes, 4GiB 4*2^30, a bare number bytes")
	force := fs.Bool("force", false, "write into a non-empty output directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *adapter == "":
		return fmt.Errorf("%w: --adapter is required", ErrUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	maxShard, err := parseByteSize(*shardSize)
	if err != nil {
		return fmt.Errorf("%w: --shard-size: %v", ErrUsage, err)
	}
	var outDT tensor.DType
	if *dtype != "" {
		name, err := parseConvertDType(*dtype)
		if err != nil {
			return fmt.Errorf("%w: --dtype: %v", ErrUsage, err)
		}
		if outDT, err = tensor.ParseDType(name); err != nil {
			return err
		}
	}
	cfg, err := peft.ReadConfig(*adapter)
	if err != nil {
		return err
	}
	model := *baseArg
	if model == "" {
		if model = cfg.BaseModelNameOrPath; model == "" {
			return fmt.Errorf("%w: %s names no base_model_name_or_path; give --base", ErrUsage, filepath.Join(*adapter, peft.ConfigFile))
		}
	}
	outDir := *out
	if outDir == "" {
		outDir = filepath.Join(*adapter, "merged")
	}
	if err := checkOutDir(outDir, *force); err != nil {
		return err
	}

	b, err := backend.Default()
	if err != nil {
		return err
	}
	baseName := model
	if strings.HasSuffix(strings.ToLower(model), ".gguf") {
		// A GGUF base is converted to a Hugging Face directory first (as
		// whet convert does), whose files the merged model then takes.
		tmp, err := os.MkdirTemp("", "whet-merge-base-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		f, err := gguf.Open(model)
		if err != nil {
			return fmt.Errorf("base model: %w", err)
		}
		_, err = convertGGUF(f, tmp, "", maxShard)
		f.Close()
		if err != nil {
			return fmt.Errorf("base model %s: %w", model, err)
		}
		model = tmp
	}
	l, err := models.Load(b, model, *revision)
	if err != nil {
		return fmt.Errorf("base model: %w", err)
	}
	if l.Dir == nil {
		return fmt.Errorf("base model %s is a GGUF file; merge needs a Hugging Face directory (whet convert makes one)", l.Source)
	}
	if same, err := sameDir(l.Dir.Path(), outDir); err != nil {
		return err
	} else if same {
		return fmt.Errorf("output directory %s is the base model's directory; give another --out", outDir)
	}
	if n, kind, err := models.Dequantize(b, l.Model); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(env.Stdout, "the base %s is quantised (%s): dequantised its %d quantised layers to their original dtype before merging; "+
			"the merged weights carry the quantisation error (pass --base with the unquantised original to avoid it)\n", baseName, kind, n)
	}
	ad, err := peft.Load(b, l.Model, *adapter, false)
	if err != nil {
		return err
	}
	weights, err := ad.MergedWeights()
	if err != nil {
		return err
	}
	var ts []safetensors.Tensor
	var total int64
	dtypes := map[tensor.DType]int{}
	for _, w := range weights {
		t := w.Value
		if outDT != tensor.Invalid && t.DType() != outDT {
			c, err := b.Alloc(outDT, t.Shape()...)
			if err != nil {
				return err
			}
			if err := b.Convert(c, t); err != nil {
				return fmt.Errorf("convert %s to %v: %w", w.Name, outDT, err)
			}
			t = c
		}
		st, err := safetensors.FromTensorDType(t.DType())
		if err != nil {
			return fmt.Errorf("weight %s: %w", w.Name, err)
		}
		data := make([]byte, t.Bytes())
		if err := b.CopyToHost(data, t); err != nil {
			return fmt.Errorf("weight %s: %w", w.Name, err)
		}
		ts = append(ts, safetensors.Tensor{Name: w.Name, DType: st, Shape: t.Shape(), Data: data})
		total += int64(len(data))
		dtypes[t.DType()]++
	}
	files, err := safetensors.WriteSharded(outDir, ts, nil, maxShard)
	if err != nil {
		return err
	}
	if err := writeMergedConfig(l.Dir.Path(), outDir, outDT); err != nil {
		return err
	}
	var copied []string
	for _, name := range mergeCopied {
		ok, err := copyIfPresent(filepath.Join(l.Dir.Path(), name), filepath.Join(outDir, name))
		if err != nil {
			return err
		}
		if ok {
			copied = append(copied, name)
		}
	}

	kind := "LoRA"
	switch {
	case cfg.UseDoRA && cfg.UseRSLoRA:
		kind = "DoRA (rsLoRA scale)"
	case cfg.UseDoRA:
		kind = "DoRA"
	case cfg.UseRSLoRA:
		kind = "rsLoRA"
	}
	fmt.Fprintf(env.Stdout, "merged %s adapter %s (r %d, lora_alpha %g, scale %g) into %d layers of %s\n",
		kind, *adapter, cfg.R, cfg.LoraAlpha, cfg.Scale(), len(ad.Layers), baseName)
	fmt.Fprintf(env.Stdout, "wrote %s: %d tensors (%s), %d bytes in %d file(s); config.json", outDir, len(ts), dtypeCounts(dtypes), total, len(files))
	for _, c := range copied {
		fmt.Fprintf(env.Stdout, ", %s", c)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

// dtypeCounts describes how many tensors have each dtype.
func dtypeCounts(m map[tensor.DType]int) string {
	s := ""
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.F64} {
		if n := m[dt]; n > 0 {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%d %v", n, dt)
		}
	}
	return s
}

// writeMergedConfig copies the base's config.json, setting its dtype
// ("dtype" and/or "torch_dtype") to dt when dt is set.
func writeMergedConfig(baseDir, outDir string, dt tensor.DType) error {
	src := filepath.Join(baseDir, "config.json")
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("parse %s: %w", src, err)
	}
	_, quantized := probe["quantization_config"]
	if dt != tensor.Invalid || quantized {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("parse %s: %w", src, err)
		}
		// The merged weights are dense, whatever the base was.
		delete(m, "quantization_config")
		if dt == tensor.Invalid {
			if data, err = marshalPyJSON(m); err != nil {
				return err
			}
			return writeFileAtomic(filepath.Join(outDir, "config.json"), data)
		}
		name := map[tensor.DType]string{tensor.F32: models.DTypeFloat32, tensor.BF16: models.DTypeBFloat16, tensor.F16: models.DTypeFloat16}[dt]
		v, _ := json.Marshal(name)
		set := false
		for _, key := range []string{"dtype", "torch_dtype"} {
			if _, ok := m[key]; ok {
				m[key], set = v, true
			}
		}
		if !set {
			m["torch_dtype"] = v
		}
		if data, err = marshalPyJSON(m); err != nil {
			return err
		}
	}
	return writeFileAtomic(filepath.Join(outDir, "config.json"), data)
}

// copyIfPresent copies src to dst when src exists.
func copyIfPresent(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, writeFileAtomic(dst, data)
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// sameDir reports whether two paths name the same existing directory (a
// path that does not exist yet is not the same).
func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
