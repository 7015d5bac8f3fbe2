//go:build !unix

package mmap

import (
	"io"
	"os"
)

// mapFile reads the file: this system has no mmap that whet uses.
func mapFile(f *os.File, size int) ([]byte, func([]byte) error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, nil, nil
}
