package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/formats/safetensors"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/models"
	"github.com/whet-ai/whet/tensor"
	"github.com/whet-ai/whet/tokenizer"
)

func init() {
	register(&Command{Name: "convert", Short: "convert a GGUF model to a Hugging Face model directory", Run: runConvert})
}

const convertSynopsis = `--model FILE.gguf --out DIR [flags]

Converts a llama.cpp GGUF model (architecture llama, mistral, qwen2 or qwen3)
into a Hugging Face model directory: config.json, generation_config.json,
model.safetensors (or model-0000N-of-0000M.safetensors shards and
model.safetensors.index.json), tokenizer.json and tokenizer_config.json.
Quantised tensors are dequantised; the query and key projections of
architectures with llama.cpp's interleaved RoPE (llama, mistral) are permuted
back to Hugging Face's layout. The weights are written in --dtype, by default
the GGUF's predominant float type (float32 for a quantised file, whose values
are generally not exact in 16 bits). DIR must be empty or absent unless
--force is given.`

// The names of the files of a model directory that convert writes besides
// the weights.
const (
	tokenizerJSONFile   = "tokenizer.json"
	tokenizerConfigFile = "tokenizer_config.json"
)

func runConvert(env *Env, args []string) error {
	fs := newFlags(env, "convert", convertSynopsis)
	model := fs.String("model", "", "GGUF file to convert (required)")
	out := fs.String("out", "", "output directory (required)")
	dtype := fs.String("dtype", "", "dtype of the written weights: f32, bf16 or f16 (default: the GGUF's predominant float type)")
	shardSize := fs.String("shard-size", "5GB", "largest safetensors file: 5GB is 5*10^9 bytes, 4GiB 4*2^30, a bare number bytes")
	force := fs.Bool("force", false, "write into a non-empty output directory, replacing the files convert writes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("%w: --model is required", ErrUsage)
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", ErrUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	maxShard, err := parseByteSize(*shardSize)
	if err != nil {
		return fmt.Errorf("%w: --shard-size: %v", ErrUsage, err)
	}
	dt := ""
	if *dtype != "" {
		if dt, err = parseConvertDType(*dtype); err != nil {
			return fmt.Errorf("%w: --dtype: %v", ErrUsage, err)
		}
	}
	if err := checkOutDir(*out, *force); err != nil {
		return err
	}
	f, err := gguf.Open(*model)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := convertGGUF(f, *out, dt, maxShard)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "converted %s (%s, %d layers) to %s: %d tensors in %s, %.1f MB\n",
		*model, res.config.ModelType, res.config.NumHiddenLayers, *out, res.tensors, res.config.DType, float64(res.bytes)/1e6)
	for _, p := range res.files {
		fmt.Fprintf(env.Stdout, "  %s\n", p)
	}
	for _, s := range res.skipped {
		fmt.Fprintf(env.Stdout, "  left out %s (config.json says what it held)\n", s)
	}
	return nil
}

// parseConvertDType reads --dtype.
func parseConvertDType(s string) (string, error) {
	switch strings.ToLower(s) {
	case "f32", "fp32", "float32":
		return models.DTypeFloat32, nil
	case "bf16", "bfloat16":
		return models.DTypeBFloat16, nil
	case "f16", "fp16", "float16", "half":
		return models.DTypeFloat16, nil
	}
	return "", fmt.Errorf("unknown dtype %q; want f32, bf16 or f16", s)
}

var byteSizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$`)

// parseByteSize reads a size as transformers' max_shard_size does: a
// number of bytes, or a number with a unit, decimal (KB, MB, GB, TB) or
// binary (KiB, MiB, GiB, TiB), in any case.
func parseByteSize(s string) (int64, error) {
	m := byteSizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 5GB or 500MiB", s)
	}
	x, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %v", s, err)
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}
	u, ok := units[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, m[2])
	}
	n := x * u
	if n < 1 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int64(n), nil
}

// checkOutDir refuses an output path that is a file, or a directory with
// anything in it unless force.
func checkOutDir(dir string, force bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("output %s exists and is not a directory", dir)
	}
	if force {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty (it has %d entries, such as %s); use --force to write into it",
			dir, len(entries), entries[0].Name())
	}
	return nil
}

type convertResult struct {
	config  *hf.Config
	files   []string
	skipped []string
	tensors int
	bytes   int64
}

// convertGGUF writes the Hugging Face model directory of f into dir.
// dtype "" is models.GGUFDType(f). Everything is checked before the first
// file is written.
func convertGGUF(f *gguf.File, dir, dtype string, maxShard int64) (*convertResult, error) {
	if dtype == "" {
		dtype = models.GGUFDType(f)
	}
	cfgJSON, err := models.GGUFConfigJSONAs(f, dtype)
	if err != nil {
		return nil, err
	}
	cfg, err := hf.ParseConfig(f.Name()+" (config.json)", cfgJSON)
	if err != nil {
		return nil, err
	}
	weights, skipped, err := models.GGUFWeights(f)
	if err != nil {
		return nil, err
	}
	tokJSON, err := tokenizer.TokenizerJSONFromGGUF(f)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Parse(tokJSON, f.Name()+" ("+tokenizerJSONFile+")")
	if err != nil {
		return nil, err
	}
	if err := tok.CheckVocabSize(cfg.VocabSize); err != nil {
		return nil, err
	}
	tokCfg, err := tokenizerConfigJSON(f, cfg, tok, tokJSON)
	if err != nil {
		return nil, err
	}
	genCfg, err := generationConfigJSON(f, cfg)
	if err != nil {
		return nil, err
	}
	var st safetensors.Dtype
	switch dtype {
	case models.DTypeFloat32:
		st = safetensors.F32
	case models.DTypeBFloat16:
		st = safetensors.BF16
	case models.DTypeFloat16:
		st = safetensors.F16
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &convertResult{config: cfg, skipped: skipped, tensors: len(weights)}
	files, total, err := writeGGUFWeights(f, dir, weights, st, maxShard)
	if err != nil {
		return nil, err
	}
	res.files, res.bytes = files, total
	for _, j := range []struct {
		name string
		data []byte
	}{
		{hf.ConfigFile, cfgJSON},
		{hf.GenerationConfigFile, genCfg},
		{tokenizerJSONFile, tokJSON},
		{tokenizerConfigFile, tokCfg},
	} {
		p := filepath.Join(dir, j.name)
		if err := os.WriteFile(p, j.data, 0o644); err != nil {
			return nil, err
		}
		res.files = append(res.files, p)
	}
	return res, nil
}

// writeGGUFWeights writes the weights as transformers' save_pretrained
// does (see safetensors.WriteSharded, whose layout this follows: shards
// filled in order, a new one started when the next tensor would take the
// current past maxShard), converting one shard at a time so that only one
// shard's data is in memory. Checkpoint files of another layout left in
// dir are removed afterwards.
func writeGGUFWeights(f *gguf.File, dir string, weights []models.GGUFWeight, st safetensors.Dtype, maxShard int64) ([]string, int64, error) {
	elemBytes := int64(st.Bits() / 8)
	var shards [][]models.GGUFWeight
	var cur []models.GGUFWeight
	var curSize, total int64
	for _, w := range weights {
		size := int64(w.Elements()) * elemBytes
		total += size
		if len(cur) > 0 && curSize+size > maxShard {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, w)
		curSize += size
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	var written []string
	weightMap := map[string]string{}
	for i, shard := range shards {
		name := safetensors.SingleFileName
		if len(shards) > 1 {
			name = safetensors.ShardName(i+1, len(shards))
		}
		tensors, err := convertWeights(f, shard, st)
		if err != nil {
			return nil, 0, err
		}
		p := filepath.Join(dir, name)
		if err := safetensors.Write(p, tensors, nil); err != nil {
			return nil, 0, err
		}
		written = append(written, p)
		for _, w := range shard {
			weightMap[w.Name] = name
		}
	}
	if len(shards) > 1 {
		idx, err := json.MarshalIndent(map[string]any{
			"metadata":   map[string]any{"total_size": total},
			"weight_map": weightMap,
		}, "", "  ")
		if err != nil {
			return nil, 0, err
		}
		p := filepath.Join(dir, safetensors.IndexFileName)
		if err := os.WriteFile(p, append(idx, '\n'), 0o644); err != nil {
			return nil, 0, err
		}
		written = append(written, p)
	}
	if err := removeStaleCheckpoint(dir, written); err != nil {
		return nil, 0, err
	}
	return written, total, nil
}

var shardFileRE = regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)

// removeStaleCheckpoint removes the safetensors checkpoint files in dir
// that keep does not list, so that a loader sees only the new checkpoint.
func removeStaleCheckpoint(dir string, keep []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, p := range keep {
		kept[filepath.Base(p)] = true
	}
	for _, e := range entries {
		n := e.Name()
		if kept[n] || e.IsDir() || !(n == safetensors.SingleFileName || n == safetensors.IndexFileName || shardFileRE.MatchString(n)) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// convertWeights loads and encodes weights in parallel.
func convertWeights(f *gguf.File, weights []models.GGUFWeight, st safetensors.Dtype) ([]safetensors.Tensor, error) {
	out := make([]safetensors.Tensor, len(weights))
	errs := make([]error, len(weights))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(weights)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				w := weights[i]
				x, err := w.Float32(f)
				if err == nil {
					var data []byte
					data, err = encodeFloats(x, st)
					out[i] = safetensors.Tensor{Name: w.Name, DType: st, Shape: w.Shape, Data: data}
				}
				if err != nil {
					errs[i] = fmt.Errorf("tensor %s (%s): %w", w.Source, w.Name, err)
				}
			}
		}()
	}
	for i := range weights {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeFloats encodes x as little-endian F32, BF16 or F16. A finite
// value too large for F16 is an error, not an infinity.
func encodeFloats(x []float32, st safetensors.Dtype) ([]byte, error) {
	switch st {
	case safetensors.F32:
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case safetensors.BF16, safetensors.F16:
		h := make([]uint16, len(x))
		if st == safetensors.BF16 {
			tensor.BF16FromF32Slice(h, x)
		} else {
			tensor.F16FromF32Slice(h, x)
			for i, v := range h {
				if v&0x7fff == 0x7c00 && !math.IsInf(float64(x[i]), 0) {
					return nil, fmt.Errorf("value %v at index %d does not fit in float16; convert with --dtype bf16 or f32", x[i], i)
				}
			}
		}
		b := make([]byte, 2*len(h))
		for i, v := range h {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		return b, nil
	}
	return nil, fmt.Errorf("cannot write dtype %v", st)
}

// marshalPyJSON renders v as Python's json.dumps(v, indent=2,
// sort_keys=True, ensure_ascii=False) plus a newline, as transformers
// writes its JSON files.
func marshalPyJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// generationConfigJSON is the generation_config.json: the BOS and EOS ids,
// with tokenizer.ggml.eot_token_id (a chat model's end of turn) as a second
// EOS id when it differs.
func generationConfigJSON(f *gguf.File, cfg *hf.Config) ([]byte, error) {
	g := map[string]any{}
	if cfg.BOSTokenID != nil {
		g["bos_token_id"] = *cfg.BOSTokenID
	}
	eos := append([]int(nil), cfg.EOSTokenIDs...)
	if id, ok := ggufTokenID(f, "tokenizer.ggml.eot_token_id", cfg.VocabSize); ok && len(eos) > 0 && !containsInt(eos, id) {
		eos = append(eos, id)
	}
	switch len(eos) {
	case 0:
	case 1:
		g["eos_token_id"] = eos[0]
	default:
		g["eos_token_id"] = eos
	}
	data, err := marshalPyJSON(g)
	if err != nil {
		return nil, err
	}
	if _, err := hf.ParseGenerationConfig(hf.GenerationConfigFile, data); err != nil {
		return nil, err
	}
	return data, nil
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// ggufTokenID reads an optional token id below n.
func ggufTokenID(f *gguf.File, key string, n int) (int, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	u, ok := v.AsUint()
	if !ok || u >= uint64(n) {
		return 0, false
	}
	return int(u), true
}

// tokenizerConfigJSON is the tokenizer_config.json of the tokenizer.json
// tokJSON (parsed as tok): PreTrainedTokenizerFast with the special tokens,
// whether BOS and EOS are added (as the tokenizer.json's post-processor
// does), the added tokens, the model's context length and the chat
// template of the GGUF (tokenizer.chat_template) when it has one.
func tokenizerConfigJSON(f *gguf.File, cfg *hf.Config, tok *tokenizer.Tokenizer, tokJSON []byte) ([]byte, error) {
	// Whether the post-processor adds BOS and EOS: compare an encoding with
	// and without special tokens.
	plain, special := tok.Encode("a", false), tok.Encode("a", true)
	addBOS := len(special) > len(plain) && (len(plain) == 0 || special[0] != plain[0])
	addEOS := len(special) > len(plain) && len(plain) > 0 && special[len(special)-1] != plain[len(plain)-1]
	text := func(id *int) any {
		if id == nil {
			return nil
		}
		s, ok := tok.IDToToken(*id)
		if !ok {
			return nil
		}
		return s
	}
	var eos *int
	if len(cfg.EOSTokenIDs) > 0 {
		eos = &cfg.EOSTokenIDs[0]
	}
	var model struct {
		Model struct {
			UnkToken *string `json:"unk_token"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokJSON, &model); err != nil {
		return nil, err
	}
	added := map[string]any{}
	for _, a := range tok.AddedTokens() {
		added[strconv.Itoa(a.ID)] = map[string]any{
			"content":     a.Content,
			"lstrip":      a.LStrip,
			"normalized":  a.Normalized,
			"rstrip":      a.RStrip,
			"single_word": a.SingleWord,
			"special":     a.Special,
		}
	}
	c := map[string]any{
		"add_bos_token":                addBOS,
		"add_eos_token":                addEOS,
		"added_tokens_decoder":         added,
		"bos_token":                    text(cfg.BOSTokenID),
		"clean_up_tokenization_spaces": false,
		"eos_token":                    text(eos),
		"model_max_length":             cfg.MaxPositionEmbeddings,
		"tokenizer_class":              "PreTrainedTokenizerFast",
	}
	if model.Model.UnkToken != nil {
		c["unk_token"] = *model.Model.UnkToken
	}
	if id, ok := ggufTokenID(f, "tokenizer.ggml.padding_token_id", cfg.VocabSize); ok {
		c["pad_token"] = text(&id)
	}
	if _, ok := f.Get("tokenizer.chat_template"); ok {
		tmpl, err := f.String("tokenizer.chat_template")
		if err != nil {
			return nil, err
		}
		c["chat_template"] = tmpl
	}
	return marshalPyJSON(c)
}
