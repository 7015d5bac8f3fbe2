package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/whet-ai/whet/data"
	"github.com/whet-ai/whet/hf"
	"github.com/whet-ai/whet/tokenizer"
	"github.com/whet-ai/whet/tokenizer/chat"
)

func init() {
	register(&Command{Name: "preview", Short: "show a dataset's first examples as the trainer sees them, trained tokens marked", Run: runPreview})
}

const previewSynopsis = `--model MODEL --data FILE [flags]

Reads a dataset as training would (format, chat template, labels, truncation,
packing) and prints its first rows with the trained tokens marked: in colour
on a terminal, between [[ and ]] otherwise. --json prints each row's
input_ids, labels, position_ids and segments instead. MODEL is a model
directory or cached repo id (its tokenizer.json and chat template), a
tokenizer.json (with the tokenizer_config.json beside it, if any) or a .gguf
file. FILE may be a path, a glob or a directory, and --data may be repeated.`

// Colours for the trained tokens and the row headers.
const (
	ansiTrained = "\x1b[1;32m"
	ansiDim     = "\x1b[2m"
	ansiReset   = "\x1b[0m"
)

func runPreview(env *Env, args []string) error {
	fs := newFlags(env, "preview", previewSynopsis)
	model := fs.String("model", "", "model directory, cached repo id, tokenizer.json or .gguf file (required)")
	revision := fs.String("revision", "", "branch, tag or commit of a cached repo id")
	templateName := fs.String("chat-template", "", "a named chat template of the model (default: its default one)")
	files := fs.StringArray("data", nil, "dataset file, glob or directory (required; repeatable)")
	format := fs.String("format", "", "text, completion, alpaca, messages, sharegpt or tokens (default: detect)")
	fields := fs.StringArray("field", nil, "rename a field: NAME=FIELD, e.g. instruction=question (repeatable)")
	seqLen := fs.Int("sequence-len", 2048, "tokens per example, and per row when packing")
	packing := fs.Bool("packing", false, "pack examples into rows of --sequence-len tokens")
	trainOn := fs.String("train-on", "", "assistant (default), all or last")
	style := fs.String("prompt-style", "", "plain (default: Alpaca's prompt) or chat, for completion and alpaca data")
	truncation := fs.String("truncation", "", "drop, truncate or split (default: split for text, drop for the rest)")
	textUnit := fs.String("text-unit", "", "what a record of a .txt file is: line (default), paragraph or document")
	skipInvalid := fs.Bool("skip-invalid", false, "skip malformed records instead of failing")
	n := fs.IntP("num", "n", 3, "number of rows to print")
	asJSON := fs.Bool("json", false, "print input_ids, labels, position_ids and segments of each row as JSON")
	color := fs.String("color", "auto", "auto, always or never")
	if err := parse(fs, args); err != nil {
		return err
	}
	*files = append(*files, fs.Args()...)
	switch {
	case *model == "":
		return fmt.Errorf("%w: --model is required", ErrUsage)
	case len(*files) == 0:
		return fmt.Errorf("%w: --data is required", ErrUsage)
	case *n < 1:
		return fmt.Errorf("%w: -n %d, want at least 1", ErrUsage, *n)
	case *color != "auto" && *color != "always" && *color != "never":
		return fmt.Errorf("%w: --color %q, want auto, always or never", ErrUsage, *color)
	}
	cfg := data.Config{
		Files:       *files,
		Format:      data.Format(*format),
		SequenceLen: *seqLen,
		Truncation:  data.Truncation(*truncation),
		TrainOn:     data.TrainOn(*trainOn),
		PromptStyle: data.PromptStyle(*style),
		TextUnit:    data.TextUnit(*textUnit),
		Packing:     *packing,
		BatchSize:   1,
		Epochs:      1,
		SkipInvalid: *skipInvalid,
	}
	for _, f := range *fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("%w: --field %q, want NAME=FIELD", ErrUsage, f)
		}
		if cfg.Fields == nil {
			cfg.Fields = map[string]string{}
		}
		cfg.Fields[k] = v
	}
	m, noTemplate, err := previewModel(*model, *revision, *templateName)
	if err != nil {
		return err
	}
	ds, err := data.Open(cfg, m)
	if err != nil {
		if m.Template == nil && noTemplate != "" && strings.Contains(err.Error(), "chat template") {
			return fmt.Errorf("%w (%s)", err, noTemplate)
		}
		return err
	}
	if d := ds.Detection(); d != "" {
		fmt.Fprintln(env.Stderr, d)
	}
	it, err := ds.Train(nil)
	if err != nil {
		return err
	}
	defer it.Close()

	useColor := *color == "always" || *color == "auto" && isTerminal(env.Stdout) && os.Getenv("NO_COLOR") == ""
	out := bufio.NewWriter(env.Stdout)
	defer out.Flush()
	if !*asJSON && !useColor {
		fmt.Fprintln(env.Stderr, "trained tokens are marked [[like this]]")
	}
	for row := 0; row < *n; row++ {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Flush()
			return err
		}
		if *asJSON {
			err = printRowJSON(out, b)
		} else {
			err = printRow(out, m.Tokenizer, b, row, *packing, useColor)
		}
		if err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "read so far: %s\n", it.Stats())
	return nil
}

// previewModel loads the tokenizer and, where there is one, the chat
// template of model. A chat template that cannot be loaded is not an error
// here (text data needs none): noTemplate says why, for the message of a
// format that needs one.
func previewModel(model, revision, templateName string) (m *data.Model, noTemplate string, err error) {
	tok, err := loadTokenizer(model, revision)
	if err != nil {
		return nil, "", err
	}
	var tmpl *chat.Template
	var special chat.SpecialTokens
	var templateErr error
	var dir *hf.ModelDir
	switch strings.ToLower(filepath.Ext(model)) {
	case ".json":
		cfgDir := filepath.Dir(model)
		if _, err := os.Stat(filepath.Join(cfgDir, "tokenizer_config.json")); err == nil {
			tmpl, special, templateErr = chat.FromDir(cfgDir, templateName)
		} else {
			templateErr = fmt.Errorf("no tokenizer_config.json beside %s", model)
		}
	case ".gguf":
		templateErr = fmt.Errorf("whet preview does not read chat templates from GGUF files")
	default:
		if dir, err = hf.Resolve(model, revision); err != nil {
			return nil, "", err
		}
		tmpl, special, templateErr = chat.FromDir(dir.Path(), templateName)
	}
	if templateErr != nil {
		tmpl, noTemplate = nil, templateErr.Error()
	}
	if m, err = data.NewModel(tok, tmpl, special); err != nil {
		return nil, "", err
	}
	if dir != nil && !dir.IsAdapter() {
		// The model's own settings: its pad token, and the tokens its
		// generation stops on.
		if cfg, err := dir.Config(); err == nil && cfg.PadTokenID != nil && *cfg.PadTokenID >= 0 && *cfg.PadTokenID < tok.VocabSize() {
			m.Pad = *cfg.PadTokenID
		}
		if gen, ok, err := dir.GenerationConfig(); err == nil && ok {
			m.Stop = append(m.Stop, gen.EOSTokenIDs...)
		}
	}
	return m, noTemplate, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printRow prints a row's documents with their trained tokens marked.
func printRow(w io.Writer, tok *tokenizer.Tokenizer, b *data.Batch, row int, packed, color bool) error {
	ids, labels, _, segs := b.Row(0)
	real, trained := 0, 0
	for i, s := range segs {
		if s >= 0 {
			real++
			if labels[i] != data.IgnoreIndex {
				trained++
			}
		}
	}
	header := fmt.Sprintf("── row %d: %d tokens, %d trained", row, real, trained)
	if packed {
		header = fmt.Sprintf("── row %d: %d documents, %d tokens, %d trained, %d padding", row, len(b.Sources), real, trained, b.T-real)
	} else if len(b.Sources) > 0 {
		header += " (" + b.Sources[0].String() + ")"
	}
	if color {
		header = ansiDim + header + ansiReset
	}
	if _, err := fmt.Fprintln(w, header); err != nil {
		return err
	}
	for i := 0; i < len(ids); {
		seg := segs[i]
		if seg < 0 {
			break
		}
		j := i
		for j < len(ids) && segs[j] == seg {
			j++
		}
		if packed {
			line := fmt.Sprintf("── document %d (%s)", seg, b.Sources[seg])
			if color {
				line = ansiDim + line + ansiReset
			}
			fmt.Fprintln(w, line)
		}
		if _, err := fmt.Fprintln(w, markTrained(tok, ids[i:j], labels[i:j], color)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// markTrained decodes a document, marking the runs of trained tokens.
func markTrained(tok *tokenizer.Tokenizer, ids, labels []int32, color bool) string {
	var sb strings.Builder
	open, closed := "[[", "]]"
	if color {
		open, closed = ansiTrained, ansiReset
	}
	for i := 0; i < len(ids); {
		trained := labels[i] != data.IgnoreIndex
		j := i
		run := []int{}
		for j < len(ids) && (labels[j] != data.IgnoreIndex) == trained {
			run = append(run, int(ids[j]))
			j++
		}
		text := tok.Decode(run, false)
		if trained {
			sb.WriteString(open + text + closed)
		} else {
			sb.WriteString(text)
		}
		i = j
	}
	return sb.String()
}

// printRowJSON prints a row as one JSON object.
func printRowJSON(w io.Writer, b *data.Batch) error {
	ids, labels, pos, segs := b.Row(0)
	sources := make([]string, len(b.Sources))
	for i, s := range b.Sources {
		sources[i] = s.String()
	}
	line, err := json.Marshal(struct {
		InputIDs    []int32  `json:"input_ids"`
		Labels      []int32  `json:"labels"`
		PositionIDs []int32  `json:"position_ids"`
		Segments    []int32  `json:"segments"`
		Sources     []string `json:"sources"`
	}{ids, labels, pos, segs, sources})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}
