package mmap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
	}{{"empty", ""}, {"small", "hello, whet"}, {"page", strings.Repeat("x", 4097)}} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.Bytes()) != tc.content || f.Len() != len(tc.content) || f.Path() != p {
			t.Errorf("%s: got %d bytes, want %d", tc.name, f.Len(), len(tc.content))
		}
		if err := f.Close(); err != nil {
			t.Errorf("%s: close: %v", tc.name, err)
		}
		if f.Bytes() != nil {
			t.Errorf("%s: Bytes after Close", tc.name)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}
