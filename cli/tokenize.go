package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/whet-ai/whet/formats/gguf"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/tokenizer"
)

func init() {
	register(&Command{Name: "tokenize", Short: "encode text to token ids (or decode ids) with a model's tokenizer", Run: runTokenize})
}

const tokenizeSynopsis = `--model MODEL [flags] [FILE]

Encodes each line of FILE (or standard input) with the tokenizer of MODEL and
prints one JSON object per line: {"ids":[...]} (plus "tokens" with --tokens).
MODEL is a Hugging Face model directory, a repo id in the local Hugging Face
cache, a tokenizer.json file, or a .gguf file (its SentencePiece vocabulary).
--whole encodes the whole input as one text. --decode reads token ids instead
(a JSON array or whitespace-separated numbers per line) and prints
{"text":"..."}. --count prints only {"texts":N,"tokens":T,"max":M}.`

func runTokenize(env *Env, args []string) error {
	fs := newFlags(env, "tokenize", tokenizeSynopsis)
	model := fs.String("model", "", "model directory, cached repo id, tokenizer.json or .gguf file (required)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	decode := fs.Bool("decode", false, "decode token ids to text")
	count := fs.Bool("count", false, "print only the number of texts and tokens")
	whole := fs.Bool("whole", false, "treat the whole input as one text instead of one text per line")
	tokens := fs.Bool("tokens", false, "also print the token strings")
	noSpecial := fs.Bool("no-special", false, "do not add special tokens (BOS and the like) when encoding")
	skipSpecial := fs.Bool("skip-special", false, "leave special tokens out when decoding")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("%w: --model is required", ErrUsage)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: at most one input file, got %d", ErrUsage, fs.NArg())
	}
	tok, err := loadTokenizer(*model, *revision)
	if err != nil {
		return err
	}
	in, name := env.Stdin, "standard input"
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	texts, err := readTexts(in, *whole)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	out := bufio.NewWriter(env.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if *decode {
		for i, line := range texts {
			ids, err := parseIDs(line)
			if err != nil {
				return fmt.Errorf("%s line %d: %w", name, i+1, err)
			}
			for _, id := range ids {
				if _, ok := tok.IDToToken(id); !ok {
					return fmt.Errorf("%s line %d: token id %d is not in the vocabulary (size %d)", name, i+1, id, tok.VocabSize())
				}
			}
			if err := enc.Encode(map[string]string{"text": tok.Decode(ids, *skipSpecial)}); err != nil {
				return err
			}
		}
		return out.Flush()
	}
	total, longest := 0, 0
	for _, text := range texts {
		ids := tok.Encode(text, !*noSpecial)
		total += len(ids)
		longest = max(longest, len(ids))
		if *count {
			continue
		}
		rec := struct {
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens,omitempty"`
		}{IDs: ids}
		if rec.IDs == nil {
			rec.IDs = []int{}
		}
		if *tokens {
			for _, id := range ids {
				s, _ := tok.IDToToken(id)
				rec.Tokens = append(rec.Tokens, s)
			}
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	if *count {
		if err := enc.Encode(map[string]int{"texts": len(texts), "tokens": total, "max": longest}); err != nil {
			return err
		}
	}
	return out.Flush()
}

// readTexts returns the input as one text, or as lines without their line
// endings.
func readTexts(r io.Reader, whole bool) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if whole {
		return []string{string(data)}, nil
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" && len(data) == 0 {
		return nil, nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

// parseIDs reads a JSON array of ids or whitespace-separated ids.
func parseIDs(line string) ([]int, error) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "[") {
		var ids []int
		if err := json.Unmarshal([]byte(line), &ids); err != nil {
			return nil, fmt.Errorf("want a JSON array of token ids: %w", err)
		}
		return ids, nil
	}
	var ids []int
	for _, f := range strings.Fields(line) {
		id, err := strconv.Atoi(f)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%q is not a token id", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// loadTokenizer opens the tokenizer that model names: a tokenizer.json, a
// .gguf file, or a model directory (local or in the Hugging Face cache),
// checking it against the model's vocab_size where config.json gives one.
func loadTokenizer(model, revision string) (*tokenizer.Tokenizer, error) {
	switch strings.ToLower(filepath.Ext(model)) {
	case ".json":
		return tokenizer.Load(model)
	case ".gguf":
		f, err := gguf.Open(model)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return tokenizer.FromGGUF(f)
	}
	dir, err := hf.Resolve(model, revision)
	if err != nil {
		return nil, err
	}
	files, err := dir.TokenizerFiles()
	if err != nil {
		return nil, err
	}
	if files.TokenizerJSON == "" {
		if files.SentencePiece != "" {
			return nil, fmt.Errorf("%s has tokenizer.model (SentencePiece) but no tokenizer.json; whet reads tokenizer.json: save one with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir))", dir.Path())
		}
		return nil, fmt.Errorf("%s has no tokenizer.json", dir.Path())
	}
	tok, err := tokenizer.Load(files.TokenizerJSON)
	if err != nil {
		return nil, err
	}
	if dir.IsAdapter() {
		return tok, nil
	}
	cfg, err := dir.Config()
	if err != nil {
		return nil, err
	}
	if err := tok.CheckVocabSize(cfg.VocabSize); err != nil {
		return nil, fmt.Errorf("%s: %w", files.TokenizerJSON, err)
	}
	return tok, nil
}
