package data

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Dataset is a configured dataset: its files, its format and the model
// that tokenizes it. Its iterators (Train, Eval) produce the batches.
type Dataset struct {
	s         *settings
	m         *Model
	enc       *encoder
	files     []string
	evalFiles []string
	format    Format
	detection string
	print     string
}

// Open checks cfg, lists its files and settles the format: cfg.Format, or
// text for .txt files, or else the format detected from the first record
// (see Detection). It reads nothing else.
func Open(cfg Config, m *Model) (*Dataset, error) {
	s, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	d := &Dataset{s: s, m: m}
	if d.files, err = ListFiles(cfg.Files); err != nil {
		return nil, err
	}
	if len(cfg.EvalFiles) > 0 {
		if d.evalFiles, err = ListFiles(cfg.EvalFiles); err != nil {
			return nil, err
		}
	}
	if err := d.settleFormat(); err != nil {
		return nil, err
	}
	needsTemplate := d.format.chat() || s.style == PromptChat && (d.format == FormatAlpaca || d.format == FormatCompletion)
	if needsTemplate && m.Template == nil {
		why := "format " + string(d.format)
		if !d.format.chat() {
			why = "prompt_style chat"
		}
		return nil, fmt.Errorf("data: %s needs the model's chat template, and the model has none", why)
	}
	d.enc = newEncoder(s, m)
	if d.print, err = d.fingerprint(); err != nil {
		return nil, err
	}
	return d, nil
}

// Format returns the dataset's format.
func (d *Dataset) Format() Format { return d.format }

// Detection says how the format was detected, e.g. `format "alpaca"
// detected from train.jsonl:1: it has fields "instruction" and "output"`;
// "" when the configuration named it.
func (d *Dataset) Detection() string { return d.detection }

// Files returns the training files.
func (d *Dataset) Files() []string { return append([]string(nil), d.files...) }

// EvalFiles returns the separate evaluation files, if any.
func (d *Dataset) EvalFiles() []string { return append([]string(nil), d.evalFiles...) }

func (d *Dataset) workers() int {
	if d.s.Workers > 0 {
		return d.s.Workers
	}
	return runtime.NumCPU()
}

// settleFormat sets d.format from the configuration or the first record.
func (d *Dataset) settleFormat() error {
	all := append(append([]string(nil), d.files...), d.evalFiles...)
	txt := 0
	for _, f := range all {
		if strings.EqualFold(filepath.Ext(f), ".txt") {
			txt++
		}
	}
	switch {
	case d.s.Format != FormatAuto:
		d.format = d.s.Format
	case txt == len(all):
		d.format = FormatText
		d.detection = fmt.Sprintf("format %q: the files are .txt files", FormatText)
	default:
		for _, f := range all {
			if strings.EqualFold(filepath.Ext(f), ".txt") {
				continue
			}
			if err := d.detect(f); err != nil {
				return err
			}
			break
		}
	}
	if txt > 0 && d.format != FormatText {
		return fmt.Errorf("data: .txt files hold text, but the format is %s", d.format)
	}
	return nil
}

// detect reads the first records of path until one tells the format
// (the first one, unless SkipInvalid lets it pass over bad ones).
func (d *Dataset) detect(path string) error {
	rr, err := openReader(path, Cursor{}, d.s.textUnit, d.s.fields["text"])
	if err != nil {
		return err
	}
	defer rr.Close()
	const tries = 100
	for i := 0; i < tries; i++ {
		raw, err := rr.next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("data: cannot detect the format: %s has no record", path)
		}
		if err != nil {
			return err
		}
		rec, err := decodeRecord(&raw)
		var f Format
		var why string
		if err == nil {
			f, why, err = d.s.detect(rec)
		}
		if err != nil {
			if d.s.SkipInvalid {
				continue
			}
			return fmt.Errorf("data: cannot detect the format: %w", err)
		}
		d.format = f
		d.detection = fmt.Sprintf("format %q detected from %s: %s", f, raw.pos, why)
		return nil
	}
	return fmt.Errorf("data: cannot detect the format from the first %d records of %s", tries, path)
}

// fingerprint identifies what decides the stream of batches, so that a
// State is not restored into a different dataset.
func (d *Dataset) fingerprint() (string, error) {
	type file struct {
		Path string `json:"path"`
		Size int64  `json:"size"`
	}
	stat := func(paths []string) ([]file, error) {
		var out []file
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("data: %w", err)
			}
			out = append(out, file{filepath.Base(p), st.Size()})
		}
		return out, nil
	}
	files, err := stat(d.files)
	if err != nil {
		return "", err
	}
	evalFiles, err := stat(d.evalFiles)
	if err != nil {
		return "", err
	}
	c := d.s.Config
	c.Files, c.EvalFiles, c.Epochs, c.SkipInvalid = nil, nil, 0, false
	b, err := json.Marshal(struct {
		Files, EvalFiles []file
		Config           Config
		Format           Format
		Vocab, EOS, Pad  int
	}{files, evalFiles, c, d.format, d.m.Tokenizer.VocabSize(), d.m.EOS, d.m.Pad})
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]), nil
}

// heldOut reports whether a training record is held out for evaluation.
func (d *Dataset) heldOut(file string, index int64) bool {
	if d.s.EvalFraction <= 0 {
		return false
	}
	return unitFloat(mix(d.s.Seed, keyEval, hashString(filepath.Base(file)), uint64(index))) < d.s.EvalFraction
}

// process reads and tokenizes one record.
func (d *Dataset) process(raw *rawRecord, keep func(string, int64) bool) result {
	if keep != nil && !keep(raw.pos.File, raw.index) {
		return result{heldOut: true}
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return result{err: err}
	}
	smp, err := d.s.read(rec, d.format)
	if err != nil {
		return result{err: err}
	}
	exs, out, err := d.enc.encode(&smp)
	return result{exs: exs, out: out, err: err}
}
