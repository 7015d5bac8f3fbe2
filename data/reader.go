package data

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Pos is where a record comes from: a file and the line the record starts
// on (for a parquet file, the row).
type Pos struct {
	// File is the file's path, as listed by ListFiles.
	File string `json:"file"`
	// Line is the 1-based line of a text file (.jsonl, .json, .csv, .txt)
	// or, when Row is set, the 1-based row of a parquet file.
	Line int64 `json:"line"`
	// Row says that Line counts rows.
	Row bool `json:"row,omitempty"`
}

// String returns "file:line", or "file:row N" for a parquet row.
func (p Pos) String() string {
	if p.Row {
		return fmt.Sprintf("%s:row %d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Cursor is a place in a file where a record starts, enough to resume
// reading there without reading what comes before.
type Cursor struct {
	// Record is the index, from 0, of the record in its file.
	Record int64 `json:"record"`
	// Offset is the byte offset of the record in the file (for a parquet
	// file, the row index); for a JSON array, the end of the element
	// before it.
	Offset int64 `json:"offset"`
	// Line is the 1-based line holding Offset (0 is read as 1).
	Line int64 `json:"line"`
}

// rawRecord is one record as a reader returns it, before its fields are
// read: JSON text, or fields already decoded (CSV, parquet, text).
type rawRecord struct {
	pos   Pos
	index int64  // the record's index in its file
	next  Cursor // where the next record starts
	json  []byte
	// fields are the record's fields when json is nil.
	fields map[string]any
	// err is a problem that makes the record unreadable but lets the
	// reader go on (a CSV row with the wrong number of fields).
	err error
	// size approximates the record's bytes in memory.
	size int
}

// recordReader reads the records of one file in order. next returns io.EOF
// at the end; any other error is fatal (the file cannot be read further).
type recordReader interface {
	next() (rawRecord, error)
	Close() error
}

// openReader opens path at cursor at (the zero Cursor is the start) and
// returns a reader of its records. textField names the field a .txt record
// fills.
func openReader(path string, at Cursor, unit TextUnit, textField string) (recordReader, error) {
	if at.Line < 1 {
		at.Line = 1
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl":
		return openJSONL(path, at)
	case ".json":
		return openJSONArray(path, at)
	case ".csv":
		return openCSV(path, at, ',')
	case ".tsv":
		return openCSV(path, at, '\t')
	case ".txt":
		return openText(path, at, unit, textField)
	case ".parquet":
		return openParquet(path, at)
	}
	return nil, fmt.Errorf("data: %s: unknown file type %q", path, filepath.Ext(path))
}

// lineCounter wraps a reader of a file from a known offset and line, and
// tells the line of any later offset that it has read past. Queries must
// not go backwards; it keeps only the newlines it has not yet counted,
// so its memory is bounded by how far its reader reads ahead.
type lineCounter struct {
	r       io.Reader
	off     int64   // file offset of the next byte to read
	pending []int64 // offsets of newlines read but not yet counted
	line    int64   // the line of every offset before pending[0]
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	b := p[:n]
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		c.pending = append(c.pending, c.off+int64(i+j))
		i += j + 1
	}
	c.off += int64(n)
	return n, err
}

// lineAt returns the 1-based line of offset off.
func (c *lineCounter) lineAt(off int64) int64 {
	i := 0
	for i < len(c.pending) && c.pending[i] < off {
		i++
	}
	c.line += int64(i)
	c.pending = c.pending[i:]
	return c.line
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// utf8BOM is stripped from the start of a text file.
var utf8BOM = []byte("\xef\xbb\xbf")
