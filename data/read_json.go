package data

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// jsonArrayReader streams the elements of a file holding one JSON array,
// decoding one element at a time with a json.Decoder over the array's
// tokens.
type jsonArrayReader struct {
	f    *os.File
	dec  *json.Decoder
	lc   *lineCounter
	path string
	cur  Cursor
	// shift converts the decoder's offsets to file offsets.
	shift int64
	done  bool
}

// resumePrefix turns the rest of an array after an element, ", x, y]",
// into a valid array, "[null, x, y]", whose null is skipped.
const resumePrefix = "[null"

func openJSONArray(path string, at Cursor) (*jsonArrayReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	r := &jsonArrayReader{f: f, path: path, cur: at, shift: at.Offset}
	if at.Offset > 0 {
		if _, err := f.Seek(at.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
	}
	r.lc = &lineCounter{r: bufio.NewReaderSize(f, 1<<16), off: at.Offset, line: at.Line}
	var src io.Reader = r.lc
	if at.Offset > 0 {
		src = io.MultiReader(strings.NewReader(resumePrefix), r.lc)
		r.shift -= int64(len(resumePrefix))
	} else {
		br := bufio.NewReader(r.lc)
		if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == string(utf8BOM) {
			br.Discard(len(utf8BOM))
			r.shift += int64(len(utf8BOM))
		}
		src = br
	}
	r.dec = json.NewDecoder(src)
	tok, err := r.dec.Token()
	if err != nil {
		f.Close()
		return nil, r.syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		f.Close()
		return nil, fmt.Errorf("data: read %s:%d: want a JSON array of records (a file of one record per line should be named .jsonl)", path, r.lc.lineAt(r.fileOffset(r.dec.InputOffset())))
	}
	if at.Offset > 0 {
		var skip json.RawMessage
		if err := r.dec.Decode(&skip); err != nil {
			f.Close()
			return nil, r.syntaxError(err)
		}
	}
	return r, nil
}

func (r *jsonArrayReader) fileOffset(decOff int64) int64 { return decOff + r.shift }

// syntaxError reports a decoding error at its line. A broken array cannot
// be read further, so it is fatal even with skip_invalid.
func (r *jsonArrayReader) syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("data: read %s: unexpected end of file inside the JSON array", r.path)
	}
	off := r.dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	return fmt.Errorf("data: read %s:%d: malformed JSON array (it cannot be read past this point): %w", r.path, r.lc.lineAt(r.fileOffset(off)), err)
}

// elementError reports an error in decoding an element. json.Decoder's
// offsets in such errors count only the bytes of the values it decoded,
// so the element is read again on its own to find the line.
func (r *jsonArrayReader) elementError(err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return r.syntaxError(err)
	}
	line := r.cur.Line
	if l, ok := r.locate(); ok {
		line = l
	}
	return fmt.Errorf("data: read %s:%d: malformed JSON array (it cannot be read past this point): %w", r.path, line, err)
}

// locate finds the line of a syntax error in the element after r.cur.
func (r *jsonArrayReader) locate() (int64, bool) {
	f, err := os.Open(r.path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if _, err := f.Seek(r.cur.Offset, io.SeekStart); err != nil {
		return 0, false
	}
	lc := &lineCounter{r: bufio.NewReader(f), off: r.cur.Offset, line: r.cur.Line}
	br := bufio.NewReader(lc)
	skipped := int64(0)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, false
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '[' || c == 0xef || c == 0xbb || c == 0xbf {
			skipped++
			continue
		}
		br.UnreadByte()
		break
	}
	dec := json.NewDecoder(br)
	var v json.RawMessage
	var se *json.SyntaxError
	if err := dec.Decode(&v); !errors.As(err, &se) {
		return 0, false
	}
	return lc.lineAt(r.cur.Offset + skipped + se.Offset - 1), true
}

func (r *jsonArrayReader) next() (rawRecord, error) {
	if r.done {
		return rawRecord{}, io.EOF
	}
	if !r.dec.More() {
		if _, err := r.dec.Token(); err != nil {
			return rawRecord{}, r.syntaxError(err)
		}
		if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
			return rawRecord{}, fmt.Errorf("data: read %s:%d: data after the JSON array", r.path, r.lc.lineAt(r.fileOffset(r.dec.InputOffset())))
		}
		r.done = true
		return rawRecord{}, io.EOF
	}
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return rawRecord{}, r.elementError(err)
	}
	end := r.fileOffset(r.dec.InputOffset())
	start := end - int64(len(raw))
	rec := rawRecord{
		pos:   Pos{File: r.path, Line: r.lc.lineAt(start)},
		index: r.cur.Record,
		json:  raw,
		size:  len(raw),
	}
	r.cur = Cursor{Record: r.cur.Record + 1, Offset: end, Line: r.lc.lineAt(end)}
	rec.next = r.cur
	return rec, nil
}

func (r *jsonArrayReader) Close() error { return r.f.Close() }
