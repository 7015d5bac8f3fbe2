package data

import (
	"bytes"
	"fmt"
	"io"
)

// textReader reads a .txt file as records of raw text: each non-empty
// line, each paragraph (a run of non-empty lines; the line breaks inside
// it are kept) or the whole file.
type textReader struct {
	*lineReader
	unit  TextUnit
	field string
	done  bool
}

func openText(path string, at Cursor, unit TextUnit, field string) (*textReader, error) {
	lr, err := newLineReader(path, at)
	if err != nil {
		return nil, err
	}
	return &textReader{lineReader: lr, unit: unit, field: field}, nil
}

func (r *textReader) record(text string, start Cursor) rawRecord {
	r.cur.Record = start.Record + 1
	return rawRecord{
		pos:    Pos{File: r.path, Line: start.Line},
		index:  start.Record,
		next:   r.cur,
		fields: map[string]any{r.field: text},
		size:   len(text),
	}
}

func (r *textReader) next() (rawRecord, error) {
	switch r.unit {
	case TextDocument:
		if r.done || r.cur.Offset > 0 {
			return rawRecord{}, io.EOF
		}
		r.done = true
		start := r.cur
		b, err := io.ReadAll(r.br)
		if err != nil {
			return rawRecord{}, fmt.Errorf("data: read %s: %w", r.path, err)
		}
		b = bytes.TrimPrefix(b, utf8BOM)
		r.cur.Offset += int64(len(b))
		r.cur.Line += int64(bytes.Count(b, []byte("\n")))
		if len(bytes.TrimSpace(b)) == 0 {
			return rawRecord{}, io.EOF
		}
		return r.record(string(b), start), nil
	case TextParagraph:
		var para []byte
		var start Cursor
		for {
			b, at, err := r.line()
			if err == io.EOF {
				if para != nil {
					return r.record(string(para), start), nil
				}
				return rawRecord{}, io.EOF
			}
			if err != nil {
				return rawRecord{}, err
			}
			if len(bytes.TrimSpace(b)) == 0 {
				if para != nil {
					return r.record(string(para), start), nil
				}
				continue
			}
			if para == nil {
				start = at
				para = append([]byte{}, b...)
			} else {
				para = append(append(para, '\n'), b...)
			}
		}
	default:
		for {
			b, at, err := r.line()
			if err != nil {
				return rawRecord{}, err
			}
			if len(bytes.TrimSpace(b)) > 0 {
				return r.record(string(b), at), nil
			}
		}
	}
}
