package data

import (
	"fmt"
	"sort"
	"strings"
)

// Format is the shape of a dataset's records.
type Format string

// The formats a dataset may have. FormatAuto detects the format from the
// fields of the first record.
const (
	// FormatAuto detects the format (see Dataset.Detection).
	FormatAuto Format = ""
	// FormatText is raw text for pretraining: {"text": "..."}, or the lines
	// (paragraphs, documents) of a .txt file. Every token is trained.
	FormatText Format = "text"
	// FormatCompletion is a prompt and its completion:
	// {"prompt": "...", "completion": "..."}.
	FormatCompletion Format = "completion"
	// FormatAlpaca is Stanford Alpaca's instruction, optional input and
	// output: {"instruction": "...", "input": "...", "output": "..."}.
	FormatAlpaca Format = "alpaca"
	// FormatMessages is OpenAI's chat format:
	// {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}.
	FormatMessages Format = "messages"
	// FormatShareGPT is ShareGPT's chat format:
	// {"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}, ...]}.
	FormatShareGPT Format = "sharegpt"
	// FormatTokens is pre-tokenized data: {"input_ids": [...]} with
	// optional "labels" of the same length (-100 for untrained tokens).
	FormatTokens Format = "tokens"
)

// formats lists the formats a configuration may name.
var formats = []Format{FormatText, FormatCompletion, FormatAlpaca, FormatMessages, FormatShareGPT, FormatTokens}

// chat reports whether the format is a conversation that goes through the
// model's chat template.
func (f Format) chat() bool { return f == FormatMessages || f == FormatShareGPT }

// TrainOn says which tokens of an example are trained (get a label).
type TrainOn string

// The choices of TrainOn.
const (
	// TrainOnAssistant trains the completion of completion and alpaca
	// examples and every assistant turn of a conversation (the default,
	// axolotl's train_on_inputs: false).
	TrainOnAssistant TrainOn = "assistant"
	// TrainOnAll trains every token (train_on_inputs: true).
	TrainOnAll TrainOn = "all"
	// TrainOnLast trains only the last assistant turn of a conversation
	// (the completion, for completion and alpaca examples).
	TrainOnLast TrainOn = "last"
)

// Truncation says what happens to an example longer than SequenceLen.
type Truncation string

// The choices of Truncation.
const (
	// TruncateDrop drops the example and counts it (axolotl's default).
	// It is the default for every format but text.
	TruncateDrop Truncation = "drop"
	// TruncateRight keeps the first SequenceLen tokens.
	TruncateRight Truncation = "truncate"
	// TruncateSplit cuts the example into pieces of SequenceLen tokens,
	// each its own document. It is the default for the text format.
	TruncateSplit Truncation = "split"
)

// PromptStyle says how completion and alpaca examples are turned into
// text.
type PromptStyle string

// The choices of PromptStyle.
const (
	// PromptPlain writes completion examples as prompt then completion,
	// and alpaca examples with the Alpaca prompt (see AlpacaPrompt). The
	// default.
	PromptPlain PromptStyle = "plain"
	// PromptChat makes each example a two-turn conversation (a user turn
	// with the prompt, an assistant turn with the completion) and renders
	// it with the model's chat template.
	PromptChat PromptStyle = "chat"
)

// TextUnit says what one record of a .txt file is.
type TextUnit string

// The choices of TextUnit, as in the Hugging Face datasets "text" builder.
const (
	// TextLine makes each non-empty line a record (the default).
	TextLine TextUnit = "line"
	// TextParagraph makes each run of non-empty lines a record.
	TextParagraph TextUnit = "paragraph"
	// TextDocument makes each file one record; the file is read whole.
	TextDocument TextUnit = "document"
)

// Config describes a dataset and how it becomes batches. The zero value of
// each optional field is a sensible default; DefaultConfig fills the ones
// a training run usually wants.
type Config struct {
	// Files are the training files: paths, glob patterns and directories
	// (searched recursively for .jsonl, .json, .parquet, .csv, .tsv and
	// .txt files). Every entry must match at least one file.
	Files []string `json:"files"`
	// EvalFiles are separate evaluation files, in the same format.
	EvalFiles []string `json:"eval_files,omitempty"`
	// EvalFraction holds out this fraction of the training records for
	// evaluation, chosen deterministically from Seed, each file's name and
	// each record's index in its file. It may not be set with EvalFiles.
	EvalFraction float64 `json:"eval_fraction,omitempty"`

	// Format is the records' format; "" detects it.
	Format Format `json:"format,omitempty"`
	// Fields renames the fields a format reads: a key is whet's name
	// (text, prompt, completion, instruction, input, output, system,
	// messages, role, content, conversations, from, value, input_ids,
	// labels), its value the field name in the data.
	Fields map[string]string `json:"fields,omitempty"`
	// Roles maps further role names (a message's role, or ShareGPT's
	// "from") to system, user, assistant or tool. ShareGPT's human, gpt
	// and the like are mapped without it.
	Roles map[string]string `json:"roles,omitempty"`
	// TextUnit says what a record of a .txt file is; "" means line.
	TextUnit TextUnit `json:"text_unit,omitempty"`

	// SequenceLen is the most tokens in an example, and the length of a
	// packed row. Required.
	SequenceLen int `json:"sequence_len"`
	// Truncation is what happens to a longer example; "" means split for
	// the text format and drop for the others.
	Truncation Truncation `json:"truncation,omitempty"`
	// TrainOn says which tokens are trained; "" means assistant, or all
	// when TrainOnInputs is set.
	TrainOn TrainOn `json:"train_on,omitempty"`
	// TrainOnInputs is axolotl's spelling of TrainOn: all.
	TrainOnInputs bool `json:"train_on_inputs,omitempty"`
	// PromptStyle is how completion and alpaca examples become text; ""
	// means plain.
	PromptStyle PromptStyle `json:"prompt_style,omitempty"`

	// Packing concatenates examples into rows of SequenceLen tokens.
	Packing bool `json:"packing,omitempty"`
	// BatchSize is the number of rows in a batch; 0 means 1.
	BatchSize int `json:"batch_size,omitempty"`
	// LengthBucketing (without Packing) batches together examples of
	// similar length: a window of BucketWindow batches' worth of examples
	// is sorted by length and cut into batches, whose order is shuffled
	// when Shuffle is set.
	LengthBucketing bool `json:"length_bucketing,omitempty"`
	// BucketWindow is the number of batches in a bucketing window; 0
	// means 64.
	BucketWindow int `json:"bucket_window,omitempty"`

	// Shuffle shuffles the order of the files in each epoch and the
	// records within each window of ShuffleWindow records.
	Shuffle bool `json:"shuffle,omitempty"`
	// ShuffleWindow is the number of consecutive records of a file that
	// are read, shuffled and tokenized together; 0 means 10,000. A window
	// also ends after 64 MiB of records.
	ShuffleWindow int `json:"shuffle_window,omitempty"`
	// Seed seeds the shuffle and the eval split.
	Seed uint64 `json:"seed"`
	// Epochs is the number of passes over the training data; 0 means 1.
	Epochs int `json:"epochs,omitempty"`

	// SkipInvalid skips malformed records (counted in Stats.Skipped)
	// instead of failing.
	SkipInvalid bool `json:"skip_invalid,omitempty"`
	// Workers is the number of goroutines that tokenize; 0 means
	// runtime.NumCPU(). It does not change the output.
	Workers int `json:"-"`
}

// DefaultConfig returns a configuration for training on files: sequences
// of 2048 tokens, shuffled with seed 42, one epoch.
func DefaultConfig(files ...string) Config {
	return Config{Files: files, SequenceLen: 2048, Shuffle: true, Seed: 42, Epochs: 1, BatchSize: 1}
}

// fieldDefaults are whet's names for the fields the formats read, which
// are also the default names in the data.
var fieldDefaults = []string{
	"text", "prompt", "completion", "instruction", "input", "output", "system",
	"messages", "role", "content", "conversations", "from", "value", "input_ids", "labels",
}

const (
	defaultShuffleWindow = 10000
	defaultBucketWindow  = 64
	maxWindowBytes       = 64 << 20
)

// settings is a Config with its defaults filled in and checked.
type settings struct {
	Config
	trainOn   TrainOn
	fields    map[string]string
	roles     map[string]string
	batchSize int
	epochs    int
	window    int
	bucket    int
	textUnit  TextUnit
	style     PromptStyle
}

// check validates c and fills in its defaults.
func (c *Config) check() (*settings, error) {
	s := &settings{Config: *c}
	if c.SequenceLen < 2 {
		return nil, fmt.Errorf("data: sequence_len is %d; want at least 2", c.SequenceLen)
	}
	if c.Format != FormatAuto && !knownFormat(c.Format) {
		return nil, fmt.Errorf("data: unknown format %q; want one of %s", c.Format, formatList())
	}
	switch c.TrainOn {
	case "":
		s.trainOn = TrainOnAssistant
		if c.TrainOnInputs {
			s.trainOn = TrainOnAll
		}
	case TrainOnAssistant, TrainOnAll, TrainOnLast:
		s.trainOn = c.TrainOn
		if c.TrainOnInputs && c.TrainOn != TrainOnAll {
			return nil, fmt.Errorf("data: train_on_inputs: true contradicts train_on: %s", c.TrainOn)
		}
	default:
		return nil, fmt.Errorf("data: unknown train_on %q; want assistant, all or last", c.TrainOn)
	}
	switch c.Truncation {
	case "", TruncateDrop, TruncateRight, TruncateSplit:
	default:
		return nil, fmt.Errorf("data: unknown truncation %q; want drop, truncate or split", c.Truncation)
	}
	switch c.PromptStyle {
	case "":
		s.style = PromptPlain
	case PromptPlain, PromptChat:
		s.style = c.PromptStyle
	default:
		return nil, fmt.Errorf("data: unknown prompt_style %q; want plain or chat", c.PromptStyle)
	}
	switch c.TextUnit {
	case "":
		s.textUnit = TextLine
	case TextLine, TextParagraph, TextDocument:
		s.textUnit = c.TextUnit
	default:
		return nil, fmt.Errorf("data: unknown text_unit %q; want line, paragraph or document", c.TextUnit)
	}
	s.fields = map[string]string{}
	for _, f := range fieldDefaults {
		s.fields[f] = f
	}
	for k, v := range c.Fields {
		if _, ok := s.fields[k]; !ok {
			return nil, fmt.Errorf("data: fields: unknown field %q; want one of %s", k, strings.Join(fieldDefaults, ", "))
		}
		if v == "" {
			return nil, fmt.Errorf("data: fields: %q is mapped to an empty name", k)
		}
		s.fields[k] = v
	}
	s.roles = map[string]string{}
	for k, v := range c.Roles {
		switch v {
		case "system", "user", "assistant", "tool":
		default:
			return nil, fmt.Errorf("data: roles: %q is mapped to %q; want system, user, assistant or tool", k, v)
		}
		s.roles[k] = v
	}
	if c.BatchSize < 0 || c.Epochs < 0 || c.ShuffleWindow < 0 || c.BucketWindow < 0 || c.Workers < 0 {
		return nil, fmt.Errorf("data: batch_size, epochs, shuffle_window, bucket_window and workers may not be negative")
	}
	s.batchSize = max(c.BatchSize, 1)
	s.epochs = max(c.Epochs, 1)
	s.window = c.ShuffleWindow
	if s.window == 0 {
		s.window = defaultShuffleWindow
	}
	s.bucket = c.BucketWindow
	if s.bucket == 0 {
		s.bucket = defaultBucketWindow
	}
	if c.LengthBucketing && c.Packing {
		return nil, fmt.Errorf("data: length_bucketing applies without packing; set one of them")
	}
	if c.EvalFraction < 0 || c.EvalFraction >= 1 {
		return nil, fmt.Errorf("data: eval_fraction is %g; want a fraction in [0, 1)", c.EvalFraction)
	}
	if c.EvalFraction > 0 && len(c.EvalFiles) > 0 {
		return nil, fmt.Errorf("data: set eval_fraction or eval_files, not both")
	}
	if len(c.Files) == 0 {
		return nil, fmt.Errorf("data: no files given")
	}
	return s, nil
}

// truncation is the policy for an example of format f.
func (s *settings) truncation(f Format) Truncation {
	if s.Truncation != "" {
		return s.Truncation
	}
	if f == FormatText {
		return TruncateSplit
	}
	return TruncateDrop
}

func knownFormat(f Format) bool {
	for _, g := range formats {
		if f == g {
			return true
		}
	}
	return false
}

func formatList() string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
