package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header, in bytes, that Open accepts and Write
// produces: 100,000,000, the reference library's limit, which keeps a
// hostile file from making the JSON parser allocate without bound.
const MaxHeaderSize = 100_000_000

// metadataKey is the one header key that is not a tensor.
const metadataKey = "__metadata__"

// header is a parsed and validated safetensors header.
type header struct {
	dataStart int64             // absolute offset of the data buffer: 8 + header length
	tensors   []TensorInfo      // sorted by (Begin, End, Name)
	index     map[string]int    // name -> position in tensors
	metadata  map[string]string // nil when the header has no __metadata__
}

// parseFile parses and validates the header of the safetensors file whose
// whole contents are data. It reads only the length field and the header,
// never the tensor data. path is used in errors only.
func parseFile(path string, data []byte) (*header, error) {
	if len(data) < 8 {
		return nil, formatErr(path, "", "file is %d bytes, shorter than the 8-byte header length that starts every safetensors file", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, formatErr(path, "", "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, formatErr(path, "", "header length %d runs past the end of the file (%d bytes follow the length field)", n, len(data)-8)
	}
	raw := data[8 : 8+n]
	bufSize := uint64(len(data)) - 8 - n
	if !utf8.Valid(raw) {
		return nil, formatErr(path, "", "header is not valid UTF-8 (first bad byte at header offset %d)", firstInvalidUTF8(raw))
	}

	p := &headerParser{path: path, dec: json.NewDecoder(bytes.NewReader(raw)), bufSize: bufSize}
	p.dec.UseNumber()
	h, err := p.parse()
	if err != nil {
		return nil, err
	}
	h.dataStart = int64(8 + n)
	slices.SortFunc(h.tensors, func(a, b TensorInfo) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), cmp.Compare(a.Name, b.Name))
	})
	if err := checkLayout(path, h.tensors, bufSize); err != nil {
		return nil, err
	}
	h.index = make(map[string]int, len(h.tensors))
	for i, t := range h.tensors {
		h.index[t.Name] = i
	}
	return h, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// checkLayout checks that the tensors, sorted by offsets, tile the data
// buffer exactly: the first starts at 0, each starts where the
// previous ended, and the last ends at the end of the file. The reference
// library requires the same (its InvalidOffset and MetadataIncompleteBuffer
// errors), so a file that passes here loads there.
func checkLayout(path string, tensors []TensorInfo, bufSize uint64) error {
	var end int64
	prev := ""
	for i := range tensors {
		t := &tensors[i]
		switch {
		case t.Begin > end:
			return formatErr(path, t.Name, "data_offsets [%d, %d] leave a hole: bytes [%d, %d) of the data buffer belong to no tensor (tensors must be contiguous)", t.Begin, t.End, end, t.Begin)
		case t.Begin < end:
			return formatErr(path, t.Name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", t.Begin, t.End, prev, end)
		}
		end, prev = t.End, t.Name
	}
	if uint64(end) != bufSize {
		if prev == "" {
			return formatErr(path, "", "the header has no tensors but %d bytes of data follow it", bufSize)
		}
		return formatErr(path, prev, "the last tensor ends at data offset %d but the data buffer has %d bytes: bytes [%d, %d) belong to no tensor", end, bufSize, end, bufSize)
	}
	return nil
}

// headerParser reads a header with encoding/json's token stream, so that it
// sees every key: json.Unmarshal into a map silently keeps the last of
// duplicate keys, which the format forbids.
type headerParser struct {
	path    string
	dec     *json.Decoder
	bufSize uint64
}

func (p *headerParser) errorf(tensor, format string, args ...any) error {
	return formatErr(p.path, tensor, format, args...)
}

// next returns the next token, turning a syntax error or a premature end
// into a FormatError.
func (p *headerParser) next(tensor string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, p.errorf(tensor, "header is not valid JSON: it ends in the middle of a value")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, p.errorf(tensor, "header is not valid JSON at byte %d: %v", se.Offset, err)
	}
	return nil, p.errorf(tensor, "header is not valid JSON: %v", err)
}

// key reads an object key or the object's closing brace (ok false).
func (p *headerParser) key(tensor string) (key string, ok bool, err error) {
	tok, err := p.next(tensor)
	if err != nil {
		return "", false, err
	}
	switch t := tok.(type) {
	case string:
		return t, true, nil
	case json.Delim:
		if t == '}' {
			return "", false, nil
		}
	}
	return "", false, p.errorf(tensor, "header is not valid JSON: expected an object key, found %s", describe(tok))
}

func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return fmt.Sprintf("the string %q", t)
	case json.Number:
		return "the number " + string(t)
	case bool:
		return fmt.Sprintf("%v", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func (p *headerParser) parse() (*header, error) {
	tok, err := p.next("")
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, p.errorf("", "header must be a JSON object, found %s", describe(tok))
	}
	h := &header{}
	seen := make(map[string]bool)
	for {
		key, ok, err := p.key("")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if seen[key] {
			if key == metadataKey {
				return nil, p.errorf("", "the header has two %s entries", metadataKey)
			}
			return nil, p.errorf(key, "the header names this tensor twice (duplicate JSON key)")
		}
		seen[key] = true
		if key == metadataKey {
			if h.metadata, err = p.parseMetadata(); err != nil {
				return nil, err
			}
			continue
		}
		t, err := p.parseTensor(key)
		if err != nil {
			return nil, err
		}
		h.tensors = append(h.tensors, t)
	}
	// Only whitespace (the writer's padding) may follow the object.
	if tok, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.errorf("", "header has trailing data after its JSON object: %v", err)
		}
		return nil, p.errorf("", "header has trailing data after its JSON object, starting with %s", describe(tok))
	}
	return h, nil
}

func (p *headerParser) parseMetadata() (map[string]string, error) {
	tok, err := p.next("")
	if err != nil {
		return nil, err
	}
	if tok == nil { // "__metadata__": null, as serde's Option accepts
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, p.errorf("", "%s must be an object mapping strings to strings, found %s", metadataKey, describe(tok))
	}
	md := make(map[string]string)
	for {
		key, ok, err := p.key("")
		if err != nil {
			return nil, err
		}
		if !ok {
			return md, nil
		}
		if _, dup := md[key]; dup {
			return nil, p.errorf("", "%s has key %q twice", metadataKey, key)
		}
		tok, err := p.next("")
		if err != nil {
			return nil, err
		}
		v, isString := tok.(string)
		if !isString {
			return nil, p.errorf("", "%s[%q] must be a string, found %s", metadataKey, key, describe(tok))
		}
		md[key] = v
	}
}

func (p *headerParser) parseTensor(name string) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	tok, err := p.next(name)
	if err != nil {
		return t, err
	}
	if tok != json.Delim('{') {
		return t, p.errorf(name, "entry must be an object with dtype, shape and data_offsets, found %s", describe(tok))
	}
	var haveDtype, haveShape, haveOffsets bool
	var dims []uint64
	var offsets []uint64
	for {
		key, ok, err := p.key(name)
		if err != nil {
			return t, err
		}
		if !ok {
			break
		}
		switch key {
		case "dtype":
			if haveDtype {
				return t, p.errorf(name, `field "dtype" appears twice`)
			}
			haveDtype = true
			tok, err := p.next(name)
			if err != nil {
				return t, err
			}
			s, isString := tok.(string)
			if !isString {
				return t, p.errorf(name, `"dtype" must be a string such as "F32", found %s`, describe(tok))
			}
			if t.DType, err = ParseDtype(s); err != nil {
				return t, p.errorf(name, "unknown dtype %q", s)
			}
		case "shape":
			if haveShape {
				return t, p.errorf(name, `field "shape" appears twice`)
			}
			haveShape = true
			if dims, err = p.uintArray(name, "shape"); err != nil {
				return t, err
			}
		case "data_offsets":
			if haveOffsets {
				return t, p.errorf(name, `field "data_offsets" appears twice`)
			}
			haveOffsets = true
			if offsets, err = p.uintArray(name, "data_offsets"); err != nil {
				return t, err
			}
			if len(offsets) != 2 {
				return t, p.errorf(name, `"data_offsets" must be [begin, end], found %d numbers`, len(offsets))
			}
		default:
			return t, p.errorf(name, "unknown field %q (an entry has exactly dtype, shape and data_offsets)", key)
		}
	}
	switch {
	case !haveDtype:
		return t, p.errorf(name, `entry has no "dtype"`)
	case !haveShape:
		return t, p.errorf(name, `entry has no "shape"`)
	case !haveOffsets:
		return t, p.errorf(name, `entry has no "data_offsets"`)
	}

	begin, end := offsets[0], offsets[1]
	if begin > end {
		return t, p.errorf(name, "data_offsets [%d, %d] end before they begin", begin, end)
	}
	if end > p.bufSize {
		return t, p.errorf(name, "data_offsets [%d, %d] run past the end of the data buffer, which has %d bytes", begin, end, p.bufSize)
	}
	t.Begin, t.End = int64(begin), int64(end)

	t.Shape = make([]int, len(dims))
	nelem := uint64(1)
	for i, d := range dims {
		if d > math.MaxInt {
			return t, p.errorf(name, "shape[%d] = %d is too large", i, d)
		}
		t.Shape[i] = int(d)
		hi, lo := bits.Mul64(nelem, d)
		if hi != 0 {
			return t, p.errorf(name, "shape %v: the element count overflows 64 bits", dims)
		}
		nelem = lo
	}
	nbytes, err := byteSize(t.DType, nelem)
	if err != nil {
		return t, p.errorf(name, "shape %v of %s: %v", dims, t.DType, err)
	}
	if nbytes != end-begin {
		return t, p.errorf(name, "shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d", dims, t.DType, nbytes, begin, end, end-begin)
	}
	return t, nil
}

// byteSize is the size of nelem elements of d. It fails on overflow and on
// sub-byte dtypes whose elements do not fill a whole number of bytes (the
// reference library's MisalignedSlice).
func byteSize(d Dtype, nelem uint64) (uint64, error) {
	hi, nbits := bits.Mul64(nelem, dtypeBits[d])
	if hi != 0 {
		return 0, fmt.Errorf("the size in bits overflows 64 bits")
	}
	if nbits%8 != 0 {
		return 0, fmt.Errorf("%d elements of %d bits are %d bits, not a whole number of bytes", nelem, dtypeBits[d], nbits)
	}
	return nbits / 8, nil
}

// uintArray reads an array of non-negative integers.
func (p *headerParser) uintArray(name, field string) ([]uint64, error) {
	tok, err := p.next(name)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, p.errorf(name, "%q must be an array of non-negative integers, found %s", field, describe(tok))
	}
	var out []uint64
	for {
		tok, err := p.next(name)
		if err != nil {
			return nil, err
		}
		if tok == json.Delim(']') {
			return out, nil
		}
		num, isNum := tok.(json.Number)
		if !isNum {
			return nil, p.errorf(name, "%s[%d] must be a non-negative integer, found %s", field, len(out), describe(tok))
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, p.errorf(name, "%s[%d] = %s does not fit in 64 bits", field, len(out), num)
			}
			return nil, p.errorf(name, "%s[%d] = %s is not a non-negative integer", field, len(out), num)
		}
		out = append(out, v)
	}
}
