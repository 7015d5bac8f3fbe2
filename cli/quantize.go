package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/whet-ai/whet/backend"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/nn"
	"github.com/whet-ai/whet/quant"
)

func init() {
	register(&Command{Name: "quantize", Short: "quantise a model's linear layers to NF4, FP4 or int8 (a bitsandbytes pre-quantised checkpoint)", Run: runQuantize})
}

const quantizeSynopsis = `--model DIR --to nf4|fp4|int8 [flags]

Loads a Hugging Face model directory (a path, or a repo id in the local
Hugging Face cache) and writes a pre-quantised checkpoint as bitsandbytes and
transformers save one (load_in_4bit / load_in_8bit): the 2-D weights of the
decoder layers' linear projections (q/k/v/o_proj, gate/up/down_proj) are
quantised, the embeddings, norms, biases and lm_head are kept as they are.
4-bit weights get bitsandbytes' companion tensors (.absmax, .quant_map,
.nested_absmax, .nested_quant_map, .quant_state.bitsandbytes__nf4|fp4), int8
weights their row scales (SCB) and weight_format. config.json gains the
quantization_config block transformers writes; the tokenizer and generation
files are copied. The output directory (default: DIR-nf4, DIR-fp4 or DIR-int8
next to DIR) must be empty or absent unless --force is given.`

func runQuantize(env *Env, args []string) error {
	fs := newFlags(env, "quantize", quantizeSynopsis)
	model := fs.String("model", "", "model directory or cached repo id (required)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	to := fs.String("to", "", "format: nf4, fp4 or int8 (required)")
	double := fs.Bool("double-quant", false, "4-bit: quantise the block scales too (bnb_4bit_use_double_quant)")
	blockSize := fs.Int("blocksize", quant.DefaultBlockSize, "4-bit: elements per scale block, a power of two from 32 to 4096")
	out := fs.String("out", "", "output directory (default: the model directory with -nf4, -fp4 or -int8 appended)")
	shardSize := fs.String("shard-size", "5GB", "largest safetensors file: 5GB is 5*10^9 bytes, 4GiB 4*2^30, a bare number bytes")
	force := fs.Bool("force", false, "write into a non-empty output directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *model == "":
		return fmt.Errorf("%w: --model is required", ErrUsage)
	case *to == "":
		return fmt.Errorf("%w: --to is required (nf4, fp4 or int8)", ErrUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	kind, err := quant.ParseKind(*to)
	if err != nil {
		return fmt.Errorf("%w: --to: %v", ErrUsage, err)
	}
	opt := quant.Options{BlockSize: *blockSize, DoubleQuant: *double}
	if kind == backend.QuantInt8 {
		if *double {
			return fmt.Errorf("%w: --double-quant applies to nf4 and fp4, not int8", ErrUsage)
		}
		if fs.Changed("blocksize") {
			return fmt.Errorf("%w: --blocksize applies to nf4 and fp4; int8 has one scale per row", ErrUsage)
		}
		opt.BlockSize = 0
	}
	if err := opt.Validate(kind); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	maxShard, err := parseByteSize(*shardSize)
	if err != nil {
		return fmt.Errorf("%w: --shard-size: %v", ErrUsage, err)
	}
	if strings.HasSuffix(strings.ToLower(*model), ".gguf") {
		return fmt.Errorf("%w: --model %s is a GGUF file; whet convert makes a Hugging Face directory of it to quantise", ErrUsage, *model)
	}
	outDir := *out
	if outDir == "" {
		outDir = defaultQuantizeOut(*model, kind)
	}
	if err := checkOutDir(outDir, *force); err != nil {
		return err
	}

	b, err := backend.Default()
	if err != nil {
		return err
	}
	l, err := models.Load(b, *model, *revision)
	if err != nil {
		return err
	}
	if l.Dir == nil {
		return fmt.Errorf("model %s is not a Hugging Face directory", l.Source)
	}
	if same, err := sameDir(l.Dir.Path(), outDir); err != nil {
		return err
	} else if same {
		return fmt.Errorf("output directory %s is the model's directory; give another --out", outDir)
	}
	res, err := quantizeWeights(b, l.Model, kind, opt)
	if err != nil {
		return err
	}
	files, err := safetensors.WriteSharded(outDir, res.tensors, nil, maxShard)
	if err != nil {
		return err
	}
	computeDType := l.Model.Config().DType
	if computeDType != "bfloat16" && computeDType != "float16" {
		computeDType = "float32"
	}
	if err := writeQuantizedConfig(l.Dir.Path(), outDir, kind, opt, computeDType); err != nil {
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

	desc := kind.String()
	if kind != backend.QuantInt8 {
		bs := opt.BlockSize
		if bs == 0 {
			bs = quant.DefaultBlockSize
		}
		desc = fmt.Sprintf("%s, blocks of %d", desc, bs)
		if opt.DoubleQuant {
			desc += ", double quantisation"
		}
	}
	fmt.Fprintf(env.Stdout, "quantised %d linear weights of %s to %s: %s -> %s (%.2fx smaller)\n",
		res.quantised, l.Source, desc, quantSize(res.linearBefore), quantSize(res.linearAfter), quantRatio(res.linearBefore, res.linearAfter))
	fmt.Fprintf(env.Stdout, "kept %d weights as they were (embeddings, norms, lm_head, biases): %s\n", res.kept, quantSize(res.keptBytes))
	fmt.Fprintf(env.Stdout, "model: %s -> %s (%.2fx smaller)\n",
		quantSize(res.linearBefore+res.keptBytes), quantSize(res.linearAfter+res.keptBytes),
		quantRatio(res.linearBefore+res.keptBytes, res.linearAfter+res.keptBytes))
	fmt.Fprintf(env.Stdout, "wrote %s: %d tensors in %d file(s); config.json", outDir, len(res.tensors), len(files))
	for _, c := range copied {
		fmt.Fprintf(env.Stdout, ", %s", c)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

// defaultQuantizeOut is DIR-<kind> next to a model directory, or
// ./<name>-<kind> for a repo id.
func defaultQuantizeOut(model string, kind backend.QuantKind) string {
	clean := filepath.Clean(model)
	if st, err := os.Stat(clean); err == nil && st.IsDir() {
		return clean + "-" + kind.String()
	}
	return filepath.Base(clean) + "-" + kind.String()
}

// isQuantizeTarget reports whether a weight is one bitsandbytes quantises
// in transformers' default setup: a 2-D linear projection of a decoder layer
// (lm_head and embeddings stay as they are; norms and biases are not 2-D
// linear weights).
func isQuantizeTarget(name string, shape []int) bool {
	return len(shape) == 2 && strings.HasPrefix(name, "model.layers.") && strings.HasSuffix(name, "_proj.weight")
}

type quantizeResult struct {
	tensors                   []safetensors.Tensor
	quantised, kept           int
	linearBefore, linearAfter int64
	keptBytes                 int64
}

// quantizeWeights quantises the model's linear projections and returns every
// weight as safetensors tensors in nn.Params order.
func quantizeWeights(b backend.Backend, m models.Model, kind backend.QuantKind, opt quant.Options) (*quantizeResult, error) {
	res := &quantizeResult{}
	for _, p := range nn.Params(m) {
		v := *p.Var
		if v == nil {
			continue
		}
		if v.Quant != nil {
			return nil, fmt.Errorf("weight %s is already quantised", p.Name)
		}
		t := v.Value
		if t == nil {
			continue
		}
		if isQuantizeTarget(p.Name, t.Shape()) {
			w, err := quant.Quantize(b, t, kind, opt)
			if err != nil {
				return nil, fmt.Errorf("quantise %s: %w", p.Name, err)
			}
			ts, err := quant.Encode(p.Name, w, b)
			if err != nil {
				return nil, err
			}
			res.tensors = append(res.tensors, ts...)
			res.quantised++
			res.linearBefore += int64(t.Bytes())
			for _, s := range ts {
				res.linearAfter += int64(len(s.Data))
			}
			continue
		}
		st, err := safetensors.FromTensorDType(t.DType())
		if err != nil {
			return nil, fmt.Errorf("weight %s: %w", p.Name, err)
		}
		data := make([]byte, t.Bytes())
		if err := b.CopyToHost(data, t); err != nil {
			return nil, fmt.Errorf("weight %s: %w", p.Name, err)
		}
		res.tensors = append(res.tensors, safetensors.Tensor{Name: p.Name, DType: st, Shape: t.Shape(), Data: data})
		res.kept++
		res.keptBytes += int64(len(data))
	}
	if res.quantised == 0 {
		return nil, fmt.Errorf("the model has no decoder-layer linear weights to quantise")
	}
	return res, nil
}

// writeQuantizedConfig copies the model's config.json with the
// quantization_config block transformers writes for a bitsandbytes model.
func writeQuantizedConfig(srcDir, outDir string, kind backend.QuantKind, opt quant.Options, computeDType string) error {
	src := filepath.Join(srcDir, "config.json")
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("parse %s: %w", src, err)
	}
	qc, err := quant.QuantizationConfig(kind, opt, computeDType)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(qc)
	if err != nil {
		return err
	}
	m["quantization_config"] = raw
	if data, err = marshalPyJSON(m); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(outDir, "config.json"), data)
}

// quantSize renders a byte count in decimal units.
func quantSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func quantRatio(before, after int64) float64 {
	if after == 0 {
		return 0
	}
	return float64(before) / float64(after)
}
