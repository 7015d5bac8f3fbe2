package data

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are records of every format, valid and not.
var fuzzSeeds = []string{
	`{"text": "hello world"}`,
	`{"prompt": "2+2=", "completion": "4"}`,
	`{"instruction": "Say hi.", "input": "", "output": "hi"}`,
	`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}`,
	`{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}, {"role": "assistant", "content": null, "tool_calls": [{"a": 1.5}]}]}`,
	`{"conversations": [{"from": "human", "value": "h"}, {"from": "gpt", "value": "g"}]}`,
	`{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}`,
	`{"input_ids": "[1, 2]"}`,
	`{"messages": []}`,
	`{"messages": [{"role": 1}]}`,
	`{"input_ids": [1e400]}`,
	`{"text": "\u0000\ud800"}`,
	`[1, 2]`,
	`{"text": "a"} trailing`,
	`{`,
	"\xef\xbb\xbf{\"text\": \"bom\"}",
}

// fuzzPipeline runs a file through the whole pipeline, with and without
// skip_invalid, for every format, and checks that it returns batches or
// errors, never panics, and that errors name the file.
func fuzzPipeline(t *testing.T, name string, content []byte) {
	m := llama3Model(t)
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range append([]Format{FormatAuto}, formats...) {
		for _, skip := range []bool{false, true} {
			cfg := Config{Files: []string{path}, SequenceLen: 64, Format: format, SkipInvalid: skip, Packing: skip, BatchSize: 2, Workers: 2}
			d, err := Open(cfg, m)
			if err != nil {
				continue
			}
			it, err := d.Train(nil)
			if err != nil {
				t.Fatalf("Train: %v", err)
			}
			for n := 0; n < 1000; n++ {
				b, err := it.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					var re *RecordError
					if errors.As(err, &re) && re.Pos.File != path {
						t.Fatalf("error names %q, not %q: %v", re.Pos.File, path, err)
					}
					break
				}
				if len(b.InputIDs) != b.B*b.T || b.TrainedTokens == 0 {
					t.Fatalf("batch %dx%d with %d ids and %d trained tokens", b.B, b.T, len(b.InputIDs), b.TrainedTokens)
				}
			}
			it.Close()
		}
	}
}

func FuzzJSONL(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s + "\n" + fuzzSeeds[0] + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPipeline(t, "f.jsonl", data)
	})
}

func FuzzJSONArray(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte("[" + s + ",\n" + fuzzSeeds[1] + "]"))
	}
	f.Add([]byte("[]"))
	f.Add([]byte(`{"text": "not an array"}`))
	f.Add([]byte("[1,]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPipeline(t, "f.json", data)
	})
}

// FuzzRecord decodes one record and reads it in every format.
func FuzzRecord(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	s, err := (&Config{Files: []string{"x"}, SequenceLen: 8}).check()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := rawRecord{pos: Pos{File: "x", Line: 1}, json: data}
		rec, err := decodeRecord(&raw)
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) || re.Pos != raw.pos {
				t.Fatalf("error %v does not name the record", err)
			}
			return
		}
		s.detect(rec)
		for _, f := range formats {
			s.read(rec, f)
		}
	})
}
