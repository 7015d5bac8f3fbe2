package data

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// readAll reads every record of a file, checking that resuming at each
// record's cursor reads the same rest of the file.
func readAll(t *testing.T, path string, unit TextUnit) []rawRecord {
	t.Helper()
	read := func(at Cursor) []rawRecord {
		rr, err := openReader(path, at, unit, "text")
		if err != nil {
			t.Fatal(err)
		}
		defer rr.Close()
		var out []rawRecord
		for {
			r, err := rr.next()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	all := read(Cursor{})
	for i := range all {
		rest := read(all[i].next)
		if len(rest)+len(all[i+1:]) > 0 && !reflect.DeepEqual(rest, all[i+1:]) {
			t.Fatalf("%s: resuming after record %d at %+v reads %d records, want %d:\n%+v\n%+v", path, i, all[i].next, len(rest), len(all[i+1:]), rest, all[i+1:])
		}
	}
	return all
}

// recordLines returns the line of each record and its decoded fields.
func recordFields(t *testing.T, recs []rawRecord) ([]int64, []map[string]any) {
	t.Helper()
	var lines []int64
	var fields []map[string]any
	for i := range recs {
		lines = append(lines, recs[i].pos.Line)
		r, err := decodeRecord(&recs[i])
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, r.fields)
	}
	return lines, fields
}

func TestReaders(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		unit          TextUnit
		lines         []int64
		first         map[string]any
	}{
		{"a.jsonl", "{\"text\":\"one\"}\n\n  \r\n{\"text\":\"two\"}\r\n{\"text\":\"three\"}", "", []int64{1, 4, 5}, map[string]any{"text": "one"}},
		{"bom.jsonl", "\xef\xbb\xbf{\"text\":\"one\"}\n", "", []int64{1}, map[string]any{"text": "one"}},
		{"a.json", "[\n  {\"text\": \"one\"},\n\n  {\"text\":\n \"two\"}, {\"text\": \"three\"}\n]\n", "", []int64{2, 4, 5}, map[string]any{"text": "one"}},
		{"one-line.json", `[{"a":1},{"a":2},{"a":3}]`, "", []int64{1, 1, 1}, nil},
		{"empty.json", "[]", "", nil, nil},
		{"bom.json", "\xef\xbb\xbf[{\"text\":\"x\"}]", "", []int64{1}, map[string]any{"text": "x"}},
		{"a.csv", "prompt,completion\nhi,there\n\"multi\nline\",\"with, comma\"\nlast,one\n", "", []int64{2, 3, 5}, map[string]any{"prompt": "hi", "completion": "there"}},
		{"a.tsv", "prompt\tcompletion\nhi\tthere \"quoted\"\n", "", []int64{2}, map[string]any{"prompt": "hi", "completion": "there \"quoted\""}},
		{"lines.txt", "first line\n\nsecond line\n", TextLine, []int64{1, 3}, map[string]any{"text": "first line"}},
		{"paras.txt", "para one\ncontinues\n\n\npara two\n", TextParagraph, []int64{1, 5}, map[string]any{"text": "para one\ncontinues"}},
		{"doc.txt", "whole\n\ndocument\n", TextDocument, []int64{1}, map[string]any{"text": "whole\n\ndocument\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content)
			recs := readAll(t, path, tc.unit)
			lines, fields := recordFields(t, recs)
			if !reflect.DeepEqual(lines, tc.lines) {
				t.Errorf("lines %v, want %v", lines, tc.lines)
			}
			if tc.first != nil && !reflect.DeepEqual(fields[0], tc.first) {
				t.Errorf("first record %v, want %v", fields[0], tc.first)
			}
			for i, r := range recs {
				if r.index != int64(i) {
					t.Errorf("record %d has index %d", i, r.index)
				}
			}
		})
	}
}

type parquetMessage struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type parquetRow struct {
	ID       int64            `parquet:"id"`
	Messages []parquetMessage `parquet:"messages,list"`
	IDs      []int32          `parquet:"input_ids,list"`
	Note     *string          `parquet:"note,optional"`
}

// writeParquet writes rows with parquet-go, two rows per row group.
func writeParquet(t testing.TB, path string, rows []parquetRow) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[parquetRow](f, parquet.MaxRowsPerRowGroup(2))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParquet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chat.parquet")
	var rows []parquetRow
	for i := range 5 {
		rows = append(rows, parquetRow{ID: int64(i), Messages: []parquetMessage{
			{"user", "hello " + strings.Repeat("x", i)}, {"assistant", "hi"},
		}, IDs: []int32{1, 2, int32(i)}})
	}
	writeParquet(t, path, rows)
	recs := readAll(t, path, "")
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	if p := recs[3].pos.String(); p != path+":row 4" {
		t.Errorf("position %q", p)
	}
	// Pre-tokenized input_ids win detection over the messages they came
	// from.
	m := llama3Model(t)
	d := openDS(t, config(path), m)
	if d.Format() != FormatTokens || !strings.Contains(d.Detection(), `chat.parquet:row 1: it has field "input_ids"`) {
		t.Errorf("format %s, detection %q", d.Format(), d.Detection())
	}
	// Messages, through detection and the chat template.
	msgsOnly := filepath.Join(dir, "msgs.parquet")
	f, err := os.Create(msgsOnly)
	if err != nil {
		t.Fatal(err)
	}
	type msgRow struct {
		Messages []parquetMessage `parquet:"messages,list"`
	}
	w := parquet.NewGenericWriter[msgRow](f)
	for _, r := range rows {
		if _, err := w.Write([]msgRow{{r.Messages}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d = openDS(t, config(msgsOnly), m)
	if d.Format() != FormatMessages || !strings.Contains(d.Detection(), `msgs.parquet:row 1: field "messages" is a list of role/content objects`) {
		t.Errorf("format %s, detection %q", d.Format(), d.Detection())
	}
	exs, _ := examples(t, config(msgsOnly), m)
	if len(exs) != 5 {
		t.Fatalf("%d examples", len(exs))
	}
	if got := trainedText(m.Tokenizer, exs[2]); !reflect.DeepEqual(got, []string{"hi<|eot_id|>"}) {
		t.Errorf("trained %q", got)
	}
	// The same file read as tokens.
	cfg := config(path)
	cfg.Format = FormatTokens
	exs, _ = examples(t, cfg, m)
	if len(exs) != 5 || !reflect.DeepEqual(exs[4].InputIDs, []int32{1, 2, 4}) {
		t.Errorf("tokens: %d examples, last %v", len(exs), exs[len(exs)-1].InputIDs)
	}
	// A file that is not parquet.
	bad := writeFile(t, dir, "bad.parquet", "PAR1 this is not a parquet file PAR1")
	if _, err := openReader(bad, Cursor{}, "", "text"); err == nil || !strings.Contains(err.Error(), "bad.parquet") {
		t.Errorf("malformed parquet: %v", err)
	}
}

func TestListFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "d/b.jsonl", "{}\n")
	b := writeFile(t, dir, "d/a.json", "[]")
	c := writeFile(t, dir, "d/sub/c.parquet", "")
	writeFile(t, dir, "d/.hidden/x.jsonl", "")
	writeFile(t, dir, "d/readme.md", "")
	e := writeFile(t, dir, "e.txt", "")
	for _, tc := range []struct {
		in   []string
		want []string
		err  string
	}{
		{[]string{filepath.Join(dir, "d")}, []string{b, a, c}, ""},
		{[]string{filepath.Join(dir, "d", "*.json*")}, []string{b, a}, ""},
		{[]string{e, filepath.Join(dir, "d"), a}, []string{e, b, a, c}, ""},
		{[]string{filepath.Join(dir, "nope", "*.jsonl")}, nil, "matches no file"},
		{[]string{filepath.Join(dir, "missing.jsonl")}, nil, "missing.jsonl"},
		{[]string{filepath.Join(dir, "d", "readme.md")}, nil, `unknown file type ".md"`},
		{[]string{filepath.Join(dir, "d", ".hidden", "..", "sub", "..", "..", "d", "sub")}, []string{filepath.Join(dir, "d", ".hidden", "..", "sub", "..", "..", "d", "sub", "c.parquet")}, ""},
	} {
		got, err := ListFiles(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ListFiles(%v): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListFiles(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestGlobAndDirectoryDatasets reads a dataset spread over files.
func TestGlobAndDirectoryDatasets(t *testing.T) {
	m := plainModel(t)
	dir := t.TempDir()
	writeFile(t, dir, "part-0.jsonl", jsonl(t, map[string]any{"text": "zero"}, map[string]any{"text": "one"}))
	writeFile(t, dir, "part-1.json", `[{"text": "two"}]`)
	writeFile(t, dir, "sub/part-2.csv", "text\nthree\nfour\n")
	writeFile(t, dir, "sub/part-3.txt", "five\n")
	for _, files := range [][]string{{dir}, {filepath.Join(dir, "part-*"), filepath.Join(dir, "sub", "*")}} {
		exs, _ := examples(t, config(files...), m)
		var texts []string
		for _, ex := range exs {
			texts = append(texts, strings.TrimSuffix(decode(m.Tokenizer, ex.InputIDs), "<|endoftext|>"))
		}
		if want := []string{"zero", "one", "two", "three", "four", "five"}; !reflect.DeepEqual(texts, want) {
			t.Errorf("%v: %q, want %q", files, texts, want)
		}
	}
}

// TestRecordErrors checks that bad records fail with file:line and the
// field, and that skip_invalid skips and counts them.
func TestRecordErrors(t *testing.T) {
	m := llama3Model(t)
	dir := t.TempDir()
	good := `{"instruction": "Say hi.", "output": "hi"}`
	for _, tc := range []struct {
		name, content string
		format        Format
		err           string // the error without skip_invalid
		skipped       int64  // records skipped with it
		kept          int
	}{
		{"json.jsonl", good + "\n{\"instruction\": \"x\", \"output\": \n" + good + "\n", "",
			`read DIR/json.jsonl:2: malformed JSON: unexpected end of line`, 1, 2},
		{"syntax.jsonl", good + "\n" + good + "\n{\"instruction\": 'x'}\n", "",
			`read DIR/syntax.jsonl:3: malformed JSON at column 17: invalid character '\''`, 1, 2},
		{"missing.jsonl", good + "\n{\"instruction\": \"x\"}\n", "",
			`read DIR/missing.jsonl:2: field "output": missing (the record has field "instruction")`, 1, 1},
		{"type.jsonl", "\n" + good + "\n{\"instruction\": \"x\", \"output\": 3}\n", "",
			`read DIR/type.jsonl:3: field "output": want a string, got a number`, 1, 1},
		{"notobject.jsonl", good + "\n[1, 2]\n", "",
			`read DIR/notobject.jsonl:2: want a JSON object, got a list`, 1, 1},
		{"trailing.jsonl", good + "\n" + good + " {}\n", "",
			`read DIR/trailing.jsonl:2: malformed JSON: more data after the value at column`, 1, 1},
		{"role.jsonl", `{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}` + "\n", FormatMessages,
			`read DIR/role.jsonl:1: field "messages[1].role": unknown role "bot"`, 1, 0},
		{"content.json", "[\n" + `{"messages": [{"role": "user", "content": "hi"}]},` + "\n" + `{"messages": [{"role": "user", "content": 7}]}` + "\n]", FormatMessages,
			`read DIR/content.json:3: field "messages[0].content": want a string, got a number`, 1, 0},
		{"nocontent.jsonl", `{"messages": [{"role": "user"}]}` + "\n", FormatMessages,
			`read DIR/nocontent.jsonl:1: field "messages[0].content": missing (the message has field "role")`, 1, 0},
		{"convo.jsonl", `{"conversations": "hello"}` + "\n", FormatShareGPT,
			`read DIR/convo.jsonl:1: field "conversations": want a list, got a string`, 1, 0},
		{"ids.jsonl", `{"input_ids": [1, 2.5]}` + "\n" + `{"input_ids": [1, 2]}` + "\n", FormatTokens,
			`read DIR/ids.jsonl:1: field "input_ids[1]": want a token id, got a number`, 1, 1},
		{"vocab.jsonl", `{"input_ids": [1, 99999]}` + "\n", FormatTokens,
			`read DIR/vocab.jsonl:1: field "input_ids[1]": token id 99999 is outside the vocabulary`, 1, 0},
		{"labels.jsonl", `{"input_ids": [1, 2], "labels": [1]}` + "\n", FormatTokens,
			`read DIR/labels.jsonl:1: field "labels": has 1 labels for 2 input_ids`, 1, 0},
		{"fields.csv", "instruction,output\nSay hi.,hi\nonly one field\n", "",
			`read DIR/fields.csv:3: has 1 fields; the header names 2`, 1, 1},
		{"array.json", "[\n" + good + ",\n" + good + ",\n 12,\n" + good + "]", "",
			`read DIR/array.json:4: want a JSON object, got a number`, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content)
			cfg := config(path)
			cfg.Format = tc.format
			want := strings.ReplaceAll(tc.err, "DIR", dir)
			d, err := Open(cfg, m)
			if err == nil {
				var it *Iterator
				if it, err = d.Train(nil); err == nil {
					for err == nil {
						_, err = it.Next()
					}
				}
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want %q", err, want)
			}
			var re *RecordError
			if !errors.As(err, &re) && !strings.Contains(tc.err, "malformed JSON array") {
				t.Errorf("error %T is not a *RecordError", err)
			}
			cfg.SkipInvalid = true
			exs, it := examples(t, cfg, m)
			if it.Stats().Skipped != tc.skipped || len(exs) != tc.kept {
				t.Errorf("skip_invalid: %d skipped, %d kept; want %d and %d", it.Stats().Skipped, len(exs), tc.skipped, tc.kept)
			}
		})
	}
}

// TestFatalErrors checks errors that skip_invalid cannot skip.
func TestFatalErrors(t *testing.T) {
	m := plainModel(t)
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, err string }{
		{"broken.json", "[\n{\"text\": \"a\"},\n{\"text\": \"b\"\n,]", "read DIR/broken.json:4: malformed JSON array (it cannot be read past this point)"},
		{"object.json", "\n{\"text\": \"a\"}", "read DIR/object.json:2: want a JSON array of records"},
		{"cut.json", "[{\"text\": \"a\"}, {\"text\"", "read DIR/cut.json: unexpected end of file inside the JSON array"},
		{"after.json", "[{\"text\": \"a\"}] []", "read DIR/after.json:1: data after the JSON array"},
		{"header.csv", "", "read DIR/header.csv: empty file; want a header row"},
		{"dup.csv", "text,text\na,b\n", `read DIR/dup.csv:1: header: column "text" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content)
			cfg := config(path)
			cfg.Format, cfg.SkipInvalid = FormatText, true
			want := strings.ReplaceAll(tc.err, "DIR", dir)
			d, err := Open(cfg, m)
			if err == nil {
				var it *Iterator
				if it, err = d.Train(nil); err == nil {
					for err == nil {
						_, err = it.Next()
					}
				}
			}
			if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want %q", err, want)
			}
		})
	}
}
