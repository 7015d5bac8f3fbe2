package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// RecordError is a record that cannot be used: malformed JSON, a missing
// field, a field of the wrong type. With Config.SkipInvalid such records
// are skipped and counted instead.
type RecordError struct {
	// Pos is the record's file and line.
	Pos Pos
	// Field is the field at fault, as named in the data (with the index
	// of a list element: "messages[2].role"); "" when the record as a whole
	// is at fault.
	Field string
	// Err says what is wrong.
	Err error
}

// Error returns "read FILE:LINE: field "NAME": what is wrong".
func (e *RecordError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("read %s: %v", e.Pos, e.Err)
	}
	return fmt.Sprintf("read %s: field %q: %v", e.Pos, e.Field, e.Err)
}

// Unwrap returns Err.
func (e *RecordError) Unwrap() error { return e.Err }

// record is one record's fields, decoded.
type record struct {
	pos    Pos
	fields map[string]any
}

// decodeRecord turns a raw record into its fields: JSON text is decoded
// (numbers kept as json.Number).
func decodeRecord(raw *rawRecord) (*record, error) {
	if raw.err != nil {
		return nil, &RecordError{Pos: raw.pos, Err: raw.err}
	}
	if raw.json == nil {
		return &record{pos: raw.pos, fields: raw.fields}, nil
	}
	m, err := decodeJSONObject(raw.json)
	if err != nil {
		return nil, &RecordError{Pos: raw.pos, Err: err}
	}
	return &record{pos: raw.pos, fields: m}, nil
}

// decodeJSONObject decodes one JSON object, and nothing after it.
func decodeJSONObject(b []byte) (map[string]any, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", describe(v))
	}
	return m, nil
}

// decodeJSON decodes one JSON value, and nothing after it.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("malformed JSON at column %d: %w", column(b, se.Offset-1), err)
		case errors.Is(err, io.EOF):
			return nil, errors.New("malformed JSON: empty")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, errors.New("malformed JSON: unexpected end of line")
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("malformed JSON: more data after the value at column %d", column(b, dec.InputOffset()))
	}
	return v, nil
}

// column returns the 1-based character column of byte offset off in the
// last line of b before it.
func column(b []byte, off int64) int {
	if off < 0 || off > int64(len(b)) {
		off = int64(len(b))
	}
	line := b[:off]
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	return utf8.RuneCount(line) + 1
}

// describe names a decoded value's JSON type, for messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case []byte:
		return "binary data"
	case bool:
		return "a boolean"
	case json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// fail returns a RecordError for the record's field.
func (r *record) fail(field, format string, args ...any) error {
	return &RecordError{Pos: r.pos, Field: field, Err: fmt.Errorf(format, args...)}
}

// lookup returns a field's value; ok is false when the field is missing
// or null.
func (r *record) lookup(name string) (any, bool) {
	v, ok := r.fields[name]
	return v, ok && v != nil
}

// has reports whether the record has a non-null field.
func (r *record) has(name string) bool {
	_, ok := r.lookup(name)
	return ok
}

// str returns a string field. A missing or null field is "" when not
// required.
func (r *record) str(name string, required bool) (string, error) {
	v, ok := r.lookup(name)
	if !ok {
		if required {
			return "", r.fail(name, "missing%s", r.fieldHint())
		}
		return "", nil
	}
	s, ok := asString(v)
	if !ok {
		return "", r.fail(name, "want a string, got %s", describe(v))
	}
	return s, nil
}

// fieldHint lists the record's fields, for a missing-field message.
func (r *record) fieldHint() string {
	if len(r.fields) == 0 {
		return " (the record has no fields)"
	}
	return " (the record has " + fieldNames(r.fields) + ")"
}

// list returns a list field (a CSV cell holding a JSON list is decoded).
func (r *record) list(name string, required bool) ([]any, error) {
	v, ok := r.lookup(name)
	if !ok {
		if required {
			return nil, r.fail(name, "missing%s", r.fieldHint())
		}
		return nil, nil
	}
	l, err := asList(v)
	if err != nil {
		return nil, r.fail(name, "%v", err)
	}
	return l, nil
}

// asString returns a string value; binary data counts if it is UTF-8.
func asString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		if utf8.Valid(v) {
			return string(v), true
		}
	}
	return "", false
}

// asList returns a list value. A string holding a JSON list (a CSV cell)
// is decoded.
func asList(v any) ([]any, error) {
	switch v := v.(type) {
	case []any:
		return v, nil
	case string:
		if t := strings.TrimSpace(v); strings.HasPrefix(t, "[") {
			d, err := decodeJSON([]byte(t))
			if err != nil {
				return nil, fmt.Errorf("want a list; the string is not a JSON list: %v", err)
			}
			if l, ok := d.([]any); ok {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("want a list, got %s", describe(v))
}

// asObject returns an object value. A string holding a JSON object is
// decoded.
func asObject(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case string:
		if t := strings.TrimSpace(v); strings.HasPrefix(t, "{") {
			if m, err := decodeJSONObject([]byte(t)); err == nil {
				return m, true
			}
		}
	}
	return nil, false
}

// asInt returns an integer value (a number without a fraction).
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		f, err := v.Float64()
		if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true
		}
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	case float32:
		if float64(v) == math.Trunc(float64(v)) && math.Abs(float64(v)) < 1<<24 {
			return int64(v), true
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), true
		}
	}
	return 0, false
}

// plain converts a decoded value for a chat template: json.Number becomes
// an int64 or a float64, binary data a string; lists and objects are
// converted throughout.
func plain(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []byte:
		return string(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	}
	return v
}
