package data

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
)

// csvReader reads a CSV (or TSV) file whose first row names the fields.
// Every value is a string; a field holding a JSON list or object (messages,
// input_ids) is decoded when a format asks for a list.
type csvReader struct {
	f      *os.File
	cr     *csv.Reader
	lc     *lineCounter
	path   string
	header []string
	cur    Cursor
	// base converts the csv reader's offsets and lines to the file's.
	baseOff, baseLine int64
}

func newCSV(r io.Reader, comma rune) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1 // checked against the header here
	cr.ReuseRecord = false
	if comma == '\t' {
		cr.LazyQuotes = true
	}
	return cr
}

func openCSV(path string, at Cursor, comma rune) (*csvReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	r := &csvReader{f: f, path: path}
	r.lc = &lineCounter{r: bufio.NewReaderSize(f, 1<<16), line: 1}
	br := bufio.NewReader(r.lc)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == string(utf8BOM) {
		br.Discard(len(utf8BOM))
		r.baseOff = int64(len(utf8BOM))
	}
	r.cr = newCSV(br, comma)
	header, err := r.cr.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("data: read %s: empty file; want a header row naming the fields", path)
		}
		return nil, fmt.Errorf("data: read %s: header: %w", path, err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		if h == "" {
			f.Close()
			return nil, fmt.Errorf("data: read %s:1: header: column %d has no name", path, i+1)
		}
		if seen[h] {
			f.Close()
			return nil, fmt.Errorf("data: read %s:1: header: column %q appears twice", path, h)
		}
		seen[h] = true
	}
	r.header = header
	off := r.baseOff + r.cr.InputOffset()
	r.cur = Cursor{Offset: off, Line: r.lc.lineAt(off)}
	if at.Offset > 0 {
		// Resume: read from the cursor with a fresh csv reader.
		if _, err := f.Seek(at.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
		r.lc = &lineCounter{r: bufio.NewReaderSize(f, 1<<16), off: at.Offset, line: at.Line}
		r.cr = newCSV(r.lc, comma)
		r.baseOff, r.cur = at.Offset, at
		r.baseLine = at.Line - 1
	}
	return r, nil
}

func (r *csvReader) next() (rawRecord, error) {
	row, err := r.cr.Read()
	if errors.Is(err, io.EOF) {
		return rawRecord{}, io.EOF
	}
	start := r.cur
	off := r.baseOff + r.cr.InputOffset()
	r.cur = Cursor{Record: start.Record + 1, Offset: off, Line: r.lc.lineAt(off)}
	rec := rawRecord{index: start.Record, next: r.cur}
	if err != nil {
		var pe *csv.ParseError
		line := start.Line
		if errors.As(err, &pe) {
			line = r.baseLine + int64(pe.StartLine)
			err = pe.Err
		}
		rec.pos = Pos{File: r.path, Line: line}
		rec.err = fmt.Errorf("malformed CSV: %w", err)
		return rec, nil
	}
	line, _ := r.cr.FieldPos(0)
	rec.pos = Pos{File: r.path, Line: r.baseLine + int64(line)}
	if len(row) != len(r.header) {
		rec.err = fmt.Errorf("has %d fields; the header names %d", len(row), len(r.header))
		return rec, nil
	}
	rec.fields = make(map[string]any, len(row))
	for i, v := range row {
		rec.fields[r.header[i]] = v
		rec.size += len(v) + len(r.header[i])
	}
	return rec, nil
}

func (r *csvReader) Close() error { return r.f.Close() }
