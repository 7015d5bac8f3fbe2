package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// lineReader reads a file line by line from a cursor, keeping the cursor
// of the next line. It never holds more than one line in memory.
type lineReader struct {
	f    *os.File
	br   *bufio.Reader
	path string
	cur  Cursor
}

func newLineReader(path string, at Cursor) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if at.Offset > 0 {
		if _, err := f.Seek(at.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
	}
	return &lineReader{f: f, br: bufio.NewReaderSize(f, 1<<16), path: path, cur: at}, nil
}

// line returns the next line without its line ending, and the cursor of
// its start. It returns io.EOF after the last line.
func (r *lineReader) line() ([]byte, Cursor, error) {
	b, err := r.br.ReadBytes('\n')
	if len(b) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, r.cur, io.EOF
		}
		return nil, r.cur, fmt.Errorf("data: read %s:%d: %w", r.path, r.cur.Line, err)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, r.cur, fmt.Errorf("data: read %s:%d: %w", r.path, r.cur.Line, err)
	}
	start := r.cur
	r.cur.Offset += int64(len(b))
	r.cur.Line++
	if start.Offset == 0 {
		b = bytes.TrimPrefix(b, utf8BOM)
	}
	return trimEOL(b), start, nil
}

func (r *lineReader) Close() error { return r.f.Close() }

// jsonlReader reads JSON Lines: one JSON object per line; blank lines are
// skipped.
type jsonlReader struct{ *lineReader }

func openJSONL(path string, at Cursor) (*jsonlReader, error) {
	lr, err := newLineReader(path, at)
	if err != nil {
		return nil, err
	}
	return &jsonlReader{lr}, nil
}

func (r *jsonlReader) next() (rawRecord, error) {
	for {
		b, start, err := r.line()
		if err != nil {
			return rawRecord{}, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		r.cur.Record++
		return rawRecord{
			pos:   Pos{File: r.path, Line: start.Line},
			index: start.Record,
			next:  r.cur,
			json:  b,
			size:  len(b),
		}, nil
	}
}
