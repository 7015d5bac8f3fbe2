package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// object is one decoded JSON object whose members are read one at a time,
// so that every error can name the file and the member at fault.
type object struct {
	file   string // the file the object came from, for errors
	prefix string // the path of the object inside the file ("" or "rope_scaling.")
	m      map[string]json.RawMessage
}

// parseObject decodes data, which must hold one JSON object. A syntax error
// is reported as file:line:col.
func parseObject(file string, data []byte) (object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := lineCol(data, syn.Offset)
			return object{}, fmt.Errorf("%s:%d:%d: invalid JSON: %v", file, line, col, syn)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field == "" {
			return object{}, fmt.Errorf("%s: want a JSON object at the top level, got %s", file, typ.Value)
		}
		return object{}, fmt.Errorf("%s: invalid JSON: %w", file, err)
	}
	if m == nil {
		return object{}, fmt.Errorf("%s: want a JSON object at the top level, got null", file)
	}
	return object{file: file, m: m}, nil
}

// lineCol turns the byte offset of a json.SyntaxError (the number of bytes
// read before the error) into a 1-based line and column.
func lineCol(data []byte, offset int64) (line, col int) {
	// The offset counts the offending byte; point at it, not after it. At
	// the end of the input (a truncated file) point just past the end.
	off := int(offset)
	switch {
	case off >= len(data):
		off = len(data)
	case off > 0:
		off--
	default:
		off = 0
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// fieldError is the error for member name of o.
func (o object) fieldError(name, format string, args ...any) error {
	return fmt.Errorf("%s: field %q: %s", o.file, o.prefix+name, fmt.Sprintf(format, args...))
}

// raw returns the member and whether it is present and not null.
func (o object) raw(name string) (json.RawMessage, bool) {
	r, ok := o.m[name]
	if !ok || isNull(r) {
		return nil, false
	}
	return r, true
}

// has reports whether the member is present and not null.
func (o object) has(name string) bool {
	_, ok := o.raw(name)
	return ok
}

func isNull(r json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(r), []byte("null"))
}

// decodeAny decodes one JSON value, keeping numbers as json.Number.
func decodeAny(r json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(r))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// describe names the JSON type of r and shows it, shortened, for errors.
func describe(r json.RawMessage) string {
	s := strings.TrimSpace(string(r))
	kind := "value"
	if s != "" {
		switch s[0] {
		case '"':
			kind = "string"
		case '{':
			kind = "object"
		case '[':
			kind = "array"
		case 't', 'f':
			kind = "boolean"
		case 'n':
			kind = "null"
		default:
			kind = "number"
		}
	}
	const max = 40
	if len(s) > max {
		s = s[:max] + "..."
	}
	return kind + " " + s
}

// number parses r as a JSON number (not a quoted string).
func number(r json.RawMessage) (json.Number, bool) {
	v, err := decodeAny(r)
	if err != nil {
		return "", false
	}
	n, ok := v.(json.Number)
	return n, ok
}

// intOf parses r as an integer. Integral values written with a fraction or
// exponent ("4096.0", "1e3") are accepted; anything else is not.
func intOf(r json.RawMessage) (int64, bool) {
	n, ok := number(r)
	if !ok {
		return 0, false
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// getInt reads an optional integer member in [lo, hi].
func (o object) getInt(name string, lo, hi int64) (int, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return 0, false, nil
	}
	i, ok := intOf(r)
	if !ok {
		return 0, false, o.fieldError(name, "want an integer, got %s", describe(r))
	}
	if i < lo || i > hi {
		return 0, false, o.fieldError(name, "%d is out of range; want %s", i, rangeText(lo, hi))
	}
	return int(i), true, nil
}

func rangeText(lo, hi int64) string {
	switch {
	case lo == 1 && hi >= math.MaxInt32:
		return "a positive integer"
	case lo == 0 && hi >= math.MaxInt32:
		return "an integer >= 0"
	case hi >= math.MaxInt32:
		return fmt.Sprintf("an integer >= %d", lo)
	}
	return fmt.Sprintf("an integer from %d to %d", lo, hi)
}

// getFloat reads an optional number member.
func (o object) getFloat(name string) (float64, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return 0, false, nil
	}
	n, ok := number(r)
	if !ok {
		return 0, false, o.fieldError(name, "want a number, got %s", describe(r))
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false, o.fieldError(name, "%s is not a finite number", n)
	}
	return f, true, nil
}

// getPositiveFloat reads an optional number member that must be > 0.
func (o object) getPositiveFloat(name string) (float64, bool, error) {
	f, ok, err := o.getFloat(name)
	if err == nil && ok && !(f > 0) {
		err = o.fieldError(name, "%v is not positive", f)
	}
	return f, ok, err
}

// getBool reads an optional boolean member.
func (o object) getBool(name string) (bool, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return false, false, nil
	}
	var b bool
	if s := bytes.TrimSpace(r); len(s) == 0 || (s[0] != 't' && s[0] != 'f') || json.Unmarshal(s, &b) != nil {
		return false, false, o.fieldError(name, "want true or false, got %s", describe(r))
	}
	return b, true, nil
}

// getString reads an optional string member.
func (o object) getString(name string) (string, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false, o.fieldError(name, "want a string, got %s", describe(r))
	}
	return s, true, nil
}

// getStrings reads an optional array of strings.
func (o object) getStrings(name string) ([]string, error) {
	r, ok := o.raw(name)
	if !ok {
		return nil, nil
	}
	var s []string
	if err := json.Unmarshal(r, &s); err != nil {
		return nil, o.fieldError(name, "want an array of strings, got %s", describe(r))
	}
	return s, nil
}

// getFloats reads an optional array of numbers.
func (o object) getFloats(name string) ([]float64, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return nil, false, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(r, &raw); err != nil {
		return nil, false, o.fieldError(name, "want an array of numbers, got %s", describe(r))
	}
	out := make([]float64, len(raw))
	for i, e := range raw {
		n, ok := number(e)
		f, err := strconv.ParseFloat(n.String(), 64)
		if !ok || err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false, o.fieldError(name, "element %d: want a finite number, got %s", i, describe(e))
		}
		out[i] = f
	}
	return out, true, nil
}

// getTokenIDs reads a token id member that may be an integer or an array of
// integers (as eos_token_id is in Llama 3 and Qwen configs).
func (o object) getTokenIDs(name string) ([]int, error) {
	r, ok := o.raw(name)
	if !ok {
		return nil, nil
	}
	if i, ok := intOf(r); ok {
		if i < math.MinInt32 || i > math.MaxInt32 {
			return nil, o.fieldError(name, "token id %d is out of range", i)
		}
		return []int{int(i)}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(r, &raw); err != nil {
		return nil, o.fieldError(name, "want a token id or an array of token ids, got %s", describe(r))
	}
	ids := make([]int, len(raw))
	for k, e := range raw {
		i, ok := intOf(e)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return nil, o.fieldError(name, "element %d: want a token id, got %s", k, describe(e))
		}
		ids[k] = int(i)
	}
	return ids, nil
}

// getTokenID reads a member that must be a single token id (or null).
func (o object) getTokenID(name string) (*int, error) {
	r, ok := o.raw(name)
	if !ok {
		return nil, nil
	}
	i, ok := intOf(r)
	if !ok || i < math.MinInt32 || i > math.MaxInt32 {
		return nil, o.fieldError(name, "want a token id (an integer) or null, got %s", describe(r))
	}
	v := int(i)
	return &v, nil
}

// getObject reads an optional object member.
func (o object) getObject(name string) (object, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return object{}, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r, &m); err != nil || m == nil {
		return object{}, false, o.fieldError(name, "want an object or null, got %s", describe(r))
	}
	return object{file: o.file, prefix: o.prefix + name + ".", m: m}, true, nil
}
