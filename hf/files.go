package hf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Weight file names, as huggingface_hub's constants.py and peft name them.
const (
	// SafetensorsFile is a model's weights in one safetensors file.
	SafetensorsFile = "model.safetensors"
	// SafetensorsIndexFile maps each tensor of a sharded model to its shard.
	SafetensorsIndexFile = "model.safetensors.index.json"
	// AdapterSafetensorsFile is a PEFT adapter's weights.
	AdapterSafetensorsFile = "adapter_model.safetensors"
)

// WeightsFormat says how a directory's weights are stored.
type WeightsFormat int

// Weights formats, in the order Weights looks for them.
const (
	// Safetensors is one model.safetensors file.
	Safetensors WeightsFormat = iota + 1
	// ShardedSafetensors is model.safetensors.index.json and the shards it
	// names.
	ShardedSafetensors
	// AdapterSafetensors is a PEFT adapter's adapter_model.safetensors.
	AdapterSafetensors
	// GGUFOnly means no safetensors weights but one or more GGUF files,
	// listed in Weights.GGUF.
	GGUFOnly
)

// String returns the format's name.
func (f WeightsFormat) String() string {
	switch f {
	case Safetensors:
		return "safetensors"
	case ShardedSafetensors:
		return "sharded safetensors"
	case AdapterSafetensors:
		return "adapter safetensors"
	case GGUFOnly:
		return "gguf"
	}
	return fmt.Sprintf("WeightsFormat(%d)", int(f))
}

// Weights are the weight files of a model directory. Only their paths are
// found here; formats/safetensors reads them.
type Weights struct {
	// Format says which files were found.
	Format WeightsFormat
	// Files are the safetensors files, absolute paths, sorted by name (the
	// shard order); empty for GGUFOnly.
	Files []string
	// Index is the absolute path of model.safetensors.index.json for
	// ShardedSafetensors, else "".
	Index string
	// WeightMap maps each tensor name to the absolute path of its shard,
	// for ShardedSafetensors; nil otherwise.
	WeightMap map[string]string
	// TotalSize is the index's metadata.total_size in bytes, 0 when absent.
	TotalSize int64
	// GGUF lists the directory's *.gguf files (absolute, sorted), whatever
	// the format: the models layer may load them.
	GGUF []string
}

// Weights locates the directory's weights: model.safetensors, else
// model.safetensors.index.json and its shards, else adapter_model.safetensors,
// else GGUF files. A directory holding only pickle checkpoints
// (pytorch_model.bin and the like) is refused: loading a pickle runs
// arbitrary code, and whet never executes or unpickles anything it finds in
// a model directory.
func (m *ModelDir) Weights() (Weights, error) {
	entries, err := os.ReadDir(m.path)
	if err != nil {
		return Weights{}, fmt.Errorf("read model directory %s: %w", m.path, err)
	}
	var gguf, pickles, other []string
	for _, e := range entries {
		name := e.Name()
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, ".gguf"):
			gguf = append(gguf, filepath.Join(m.path, name))
		case isPickleName(lower):
			pickles = append(pickles, name)
		case strings.HasSuffix(lower, ".h5") || strings.HasSuffix(lower, ".msgpack") ||
			strings.HasSuffix(lower, ".safetensors") || strings.HasSuffix(lower, ".onnx"):
			other = append(other, name)
		}
	}
	sort.Strings(gguf)
	sort.Strings(pickles)
	sort.Strings(other)
	w := Weights{GGUF: gguf}

	for _, c := range []struct {
		name   string
		format WeightsFormat
	}{
		{SafetensorsFile, Safetensors},
		{SafetensorsIndexFile, ShardedSafetensors},
		{AdapterSafetensorsFile, AdapterSafetensors},
	} {
		path := filepath.Join(m.path, c.name)
		err := checkRegular(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Weights{}, err
		}
		w.Format = c.format
		if c.format == ShardedSafetensors {
			if err := readIndex(m.path, path, &w); err != nil {
				return Weights{}, err
			}
			return w, nil
		}
		w.Files = []string{path}
		return w, nil
	}
	if len(gguf) > 0 {
		w.Format = GGUFOnly
		return w, nil
	}
	if len(pickles) > 0 {
		return Weights{}, pickleError(m.path, pickles)
	}
	msg := fmt.Sprintf("no weights in model directory %s: looked for %s, %s, %s and *.gguf",
		m.path, SafetensorsFile, SafetensorsIndexFile, AdapterSafetensorsFile)
	if len(other) > 0 {
		msg += fmt.Sprintf(" (found %s, which whet does not load", strings.Join(other, ", "))
		for _, name := range other {
			if strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors") {
				msg += "; shards without their " + SafetensorsIndexFile + ": an incomplete download?"
				break
			}
		}
		msg += ")"
	}
	return Weights{}, errors.New(msg)
}

// isPickleName reports whether a (lower-case) file name is a pickle
// checkpoint or the index of pickle shards.
func isPickleName(lower string) bool {
	if lower == "pytorch_model.bin.index.json" {
		return true
	}
	for _, ext := range []string{".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"} {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return false
}

// pickleError explains why pickle checkpoints are refused and how to
// convert them.
func pickleError(dir string, pickles []string) error {
	q := pyQuote(dir)
	out := pyQuote(dir + "-safetensors")
	adapterOnly := true
	for _, p := range pickles {
		if !strings.HasPrefix(strings.ToLower(p), "adapter_model") {
			adapterOnly = false
		}
	}
	convert := fmt.Sprintf(`python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained(%s).save_pretrained(%s, safe_serialization=True)"`, q, out)
	if adapterOnly {
		convert = fmt.Sprintf(`python -c "import torch; from safetensors.torch import save_file; save_file(torch.load(%s, weights_only=True), %s)"`,
			pyQuote(filepath.Join(dir, pickles[0])), pyQuote(filepath.Join(dir, AdapterSafetensorsFile)))
	}
	return fmt.Errorf("model directory %s holds only pickle checkpoints (%s) and no safetensors weights. "+
		"whet does not load pickle files: unpickling runs arbitrary code from the file. "+
		"Convert them to safetensors once, on a machine where you trust them, e.g.\n  %s\n"+
		"or with the Hugging Face convert space, https://huggingface.co/spaces/safetensors/convert",
		dir, strings.Join(pickles, ", "), convert)
}

// pyQuote writes s as a single-quoted Python string literal.
func pyQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, `"`, `\"`)
	return "'" + r.Replace(s) + "'"
}

// readIndex reads a model.safetensors.index.json into w.
func readIndex(dir, path string, w *Weights) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	o, err := parseObject(path, data)
	if err != nil {
		return err
	}
	if meta, ok, err := o.getObject("metadata"); err != nil {
		return err
	} else if ok {
		if r, ok := meta.raw("total_size"); ok {
			n, ok := intOf(r)
			if !ok || n < 0 {
				return meta.fieldError("total_size", "want a size in bytes, got %s", describe(r))
			}
			w.TotalSize = n
		}
	}
	wm, ok, err := o.getObject("weight_map")
	if err != nil {
		return err
	}
	if !ok || len(wm.m) == 0 {
		return o.fieldError("weight_map", "missing or empty; want an object mapping each tensor name to its shard file")
	}
	w.Index = path
	w.WeightMap = make(map[string]string, len(wm.m))
	shardOf := map[string]string{} // shard name -> first tensor naming it
	for tensor := range wm.m {
		shard, _, err := wm.getString(tensor)
		if err != nil {
			return err
		}
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." ||
			strings.ContainsAny(shard, `/\`) || !strings.HasSuffix(shard, ".safetensors") {
			return wm.fieldError(tensor, "shard %q is not a .safetensors file name in the model directory", shard)
		}
		w.WeightMap[tensor] = filepath.Join(dir, shard)
		if first, seen := shardOf[shard]; !seen || tensor < first {
			shardOf[shard] = tensor
		}
	}
	for shard, tensor := range shardOf {
		p := filepath.Join(dir, shard)
		if err := checkRegular(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s names shard %s (for tensor %q and others), which is missing from %s", path, shard, tensor, dir)
			}
			return err
		}
		w.Files = append(w.Files, p)
	}
	sort.Strings(w.Files)
	return nil
}

// TokenizerFiles are the tokenizer files of a model directory, as absolute
// paths; "" where the directory has no such file.
type TokenizerFiles struct {
	// TokenizerJSON is tokenizer.json (a Hugging Face tokenizers file).
	TokenizerJSON string
	// TokenizerConfig is tokenizer_config.json (special tokens, chat
	// template in older repos).
	TokenizerConfig string
	// SpecialTokensMap is special_tokens_map.json.
	SpecialTokensMap string
	// SentencePiece is tokenizer.model, a SentencePiece model (Llama 2,
	// Mistral v0.1).
	SentencePiece string
	// ChatTemplate is chat_template.jinja, else chat_template.json, where
	// newer transformers save the chat template.
	ChatTemplate string
}

// TokenizerFiles locates the directory's tokenizer files. Missing files
// are left empty, not reported; a dangling link or a directory where a
// file should be is an error.
func (m *ModelDir) TokenizerFiles() (TokenizerFiles, error) {
	var t TokenizerFiles
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"tokenizer.json", &t.TokenizerJSON},
		{"tokenizer_config.json", &t.TokenizerConfig},
		{"special_tokens_map.json", &t.SpecialTokensMap},
		{"tokenizer.model", &t.SentencePiece},
		{"chat_template.jinja", &t.ChatTemplate},
		{"chat_template.json", &t.ChatTemplate},
	} {
		if *f.dst != "" {
			continue
		}
		path := filepath.Join(m.path, f.name)
		err := checkRegular(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return TokenizerFiles{}, err
		}
		*f.dst = path
	}
	return t, nil
}
