package data

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// parquetReader reads the rows of a parquet file as records: each column
// (or group) is a field. Lists come back as []any and groups as
// map[string]any.
type parquetReader struct {
	f    *os.File
	r    *parquet.GenericReader[any]
	path string
	cur  Cursor
	buf  []any
	i, n int
	eof  bool
}

const parquetBatch = 64

func openParquet(path string, at Cursor) (r *parquetReader, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer func() {
		// parquet-go panics on some malformed files; report those as errors.
		if p := recover(); p != nil {
			f.Close()
			r, err = nil, fmt.Errorf("data: read %s: malformed parquet file: %v", path, p)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: read %s: %w", path, err)
	}
	r = &parquetReader{f: f, path: path, cur: Cursor{Record: at.Record, Offset: at.Record}, buf: make([]any, parquetBatch)}
	r.r = parquet.NewGenericReader[any](pf)
	if at.Record > 0 {
		if at.Record > pf.NumRows() {
			f.Close()
			return nil, fmt.Errorf("data: %s has %d rows; cannot resume at row %d", path, pf.NumRows(), at.Record)
		}
		if err := r.r.SeekToRow(at.Record); err != nil {
			f.Close()
			return nil, fmt.Errorf("data: read %s: seek to row %d: %w", path, at.Record, err)
		}
	}
	return r, nil
}

func (r *parquetReader) next() (rec rawRecord, err error) {
	if r.i == r.n {
		if r.eof {
			return rawRecord{}, io.EOF
		}
		if err := r.fill(); err != nil {
			return rawRecord{}, err
		}
		if r.n == 0 {
			return rawRecord{}, io.EOF
		}
	}
	row := r.buf[r.i]
	r.buf[r.i] = nil
	r.i++
	start := r.cur
	r.cur = Cursor{Record: start.Record + 1, Offset: start.Record + 1}
	rec = rawRecord{pos: Pos{File: r.path, Line: start.Record + 1, Row: true}, index: start.Record, next: r.cur}
	m, ok := row.(map[string]any)
	if !ok {
		rec.err = fmt.Errorf("row is a %T, not a group of columns", row)
		return rec, nil
	}
	rec.fields = m
	rec.size = approxSize(m)
	return rec, nil
}

func (r *parquetReader) fill() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("data: read %s:row %d: malformed parquet data: %v", r.path, r.cur.Record+1, p)
		}
	}()
	clear(r.buf)
	n, err := r.r.Read(r.buf)
	r.i, r.n = 0, n
	if errors.Is(err, io.EOF) {
		r.eof = true
		err = nil
	}
	if err != nil {
		return fmt.Errorf("data: read %s:row %d: %w", r.path, r.cur.Record+1, err)
	}
	return nil
}

func (r *parquetReader) Close() error {
	r.r.Close()
	return r.f.Close()
}

// approxSize estimates the bytes a decoded value holds.
func approxSize(v any) int {
	switch v := v.(type) {
	case string:
		return len(v) + 16
	case []byte:
		return len(v) + 24
	case []any:
		n := 24
		for _, x := range v {
			n += approxSize(x)
		}
		return n
	case map[string]any:
		n := 48
		for k, x := range v {
			n += len(k) + 16 + approxSize(x)
		}
		return n
	}
	return 16
}
