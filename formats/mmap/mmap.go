// Package mmap maps model files into memory read-only, so that opening a
// checkpoint reads nothing and reading one tensor touches only its pages.
// Where the operating system offers no mmap, the file is read into memory
// instead, with the same API.
package mmap

import (
	"fmt"
	"os"
)

// File is a read-only view of a whole file.
type File struct {
	path  string
	data  []byte
	unmap func([]byte) error // nil when data is an ordinary slice
}

// Open maps the file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file", path)
	}
	size := st.Size()
	if size != int64(int(size)) {
		return nil, fmt.Errorf("open %s: %d bytes is too large to map", path, size)
	}
	if size == 0 {
		return &File{path: path}, nil
	}
	data, unmap, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	return &File{path: path, data: data, unmap: unmap}, nil
}

// Bytes returns the file's contents. The slice is valid until Close and must
// not be written to.
func (f *File) Bytes() []byte { return f.data }

// Len is the file's size in bytes.
func (f *File) Len() int { return len(f.data) }

// Path is the path the file was opened with.
func (f *File) Path() string { return f.path }

// Close unmaps the file. Slices from Bytes must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil || f.data == nil {
		f.data = nil
		return nil
	}
	err := f.unmap(f.data)
	f.data = nil
	if err != nil {
		return fmt.Errorf("unmap %s: %w", f.path, err)
	}
	return nil
}
