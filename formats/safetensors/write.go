package safetensors

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"unicode/utf8"
)

// Tensor is one tensor to write.
type Tensor struct {
	// Name is the tensor's key: non-empty UTF-8, not "__metadata__".
	Name string
	// DType is the element type.
	DType Dtype
	// Shape is the shape, row-major; empty for a scalar.
	Shape []int
	// Data is the tensor's bytes, little-endian and row-major: exactly the
	// element count times DType.Bits()/8 bytes.
	Data []byte
}

// FormatKey and FormatPT are the metadata entry that Write always stores:
// transformers refuses a safetensors checkpoint whose __metadata__ lacks a
// known "format", and "pt" says the tensors are laid out as PyTorch's.
const (
	FormatKey = "format"
	FormatPT  = "pt"
)

// Write writes tensors to a safetensors file at path, with metadata (which
// may be nil) as the header's __metadata__ plus "format": "pt".
//
// The output is deterministic and matches the reference library's writer:
// tensors are laid out by dtype, widest first in the reference's dtype order
// (so that, with the header padded with spaces to a multiple of 8 bytes,
// every tensor starts at a multiple of its element size), then by name; the
// header lists __metadata__ first, with its keys sorted, then the tensors in
// that order.
//
// The file is written to a temporary file in the same directory, synced,
// and renamed over path (which then has mode 0644), and the directory is
// synced: a crash leaves either the old file or the new one. Invalid input
// (a bad name, a duplicate, a shape that does not match the data, a
// "format" other than "pt") is an error naming the tensor, and nothing is
// written.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	md, err := withFormat(metadata)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	hdr, order, err := encodeHeader(tensors, md)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		return writeBody(w, hdr, tensors, order)
	})
}

func withFormat(metadata map[string]string) (map[string]string, error) {
	if v, ok := metadata[FormatKey]; ok && v != FormatPT {
		return nil, fmt.Errorf("metadata %q is %q: whet writes PyTorch-layout tensors, so it must be %q", FormatKey, v, FormatPT)
	}
	md := make(map[string]string, len(metadata)+1)
	for k, v := range metadata {
		md[k] = v
	}
	md[FormatKey] = FormatPT
	return md, nil
}

// writeBody writes a whole file: the length field, the padded header and the
// tensors' data in order.
func writeBody(w io.Writer, hdr []byte, tensors []Tensor, order []int) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, i := range order {
		if _, err := w.Write(tensors[i].Data); err != nil {
			return err
		}
	}
	return nil
}

// checkTensors validates tensors for writing and returns each one's size in
// bytes.
func checkTensors(tensors []Tensor) ([]uint64, error) {
	sizes := make([]uint64, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("tensor %d has an empty name", i)
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor %q: name is not valid UTF-8", t.Name)
		case t.Name == metadataKey:
			return nil, fmt.Errorf("tensor %q: the name is reserved for the header's metadata", t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("tensor %q: two tensors have this name", t.Name)
		case !t.DType.Valid():
			return nil, fmt.Errorf("tensor %q: invalid dtype %v", t.Name, t.DType)
		}
		seen[t.Name] = true
		nelem := uint64(1)
		for j, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: shape %v: dimension %d is negative", t.Name, t.Shape, j)
			}
			var hi uint64
			if hi, nelem = bits.Mul64(nelem, uint64(d)); hi != 0 {
				return nil, fmt.Errorf("tensor %q: shape %v: the element count overflows 64 bits", t.Name, t.Shape)
			}
		}
		nbytes, err := byteSize(t.DType, nelem)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: shape %v of %s: %v", t.Name, t.Shape, t.DType, err)
		}
		if uint64(len(t.Data)) != nbytes {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes of data, got %d", t.Name, t.Shape, t.DType, nbytes, len(t.Data))
		}
		sizes[i] = nbytes
	}
	return sizes, nil
}

// encodeHeader validates tensors and returns the header JSON, padded with
// spaces to a multiple of 8 bytes, and the order in which the tensors' data
// follows it. md (which may be nil) is written as __metadata__ when non-nil.
func encodeHeader(tensors []Tensor, md map[string]string) ([]byte, []int, error) {
	sizes, err := checkTensors(tensors)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range md {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("metadata %q: keys and values must be valid UTF-8", k)
		}
	}
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := &tensors[i], &tensors[j]
		return cmp.Or(cmp.Compare(b.DType, a.DType), cmp.Compare(a.Name, b.Name))
	})

	buf := []byte{'{'}
	if md != nil {
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = appendJSONString(buf, metadataKey)
		buf = append(buf, ":{"...)
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			buf = appendJSONString(buf, md[k])
		}
		buf = append(buf, '}')
	}
	var off uint64
	for n, i := range order {
		t := &tensors[i]
		if n > 0 || md != nil {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, t.Name)
		buf = append(buf, `:{"dtype":"`...)
		buf = append(buf, t.DType.String()...)
		buf = append(buf, `","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(d), 10)
		}
		buf = append(buf, `],"data_offsets":[`...)
		buf = strconv.AppendUint(buf, off, 10)
		buf = append(buf, ',')
		off += sizes[i]
		buf = strconv.AppendUint(buf, off, 10)
		buf = append(buf, "]}"...)
	}
	buf = append(buf, '}')
	for len(buf)%8 != 0 {
		buf = append(buf, ' ')
	}
	if len(buf) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("the header would be %d bytes, more than the format's limit of %d", len(buf), MaxHeaderSize)
	}
	return buf, order, nil
}

// appendJSONString appends s as a JSON string, escaped as serde_json (the
// reference library's serialiser) escapes: quote, backslash and control
// characters only.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20:
			b = append(b, c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(b, '"')
}

// writeAtomic writes a file at path through fill: into a temporary file in
// the same directory, which is flushed, synced and renamed over path, after
// which the directory is synced.
func writeAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("safetensors: write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync a directory,
// and some file systems refuse to (EINVAL); both are let through.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
