//go:build linux

package safetensors

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of b[lo:hi] that are in memory (mincore).
func residentPages(t *testing.T, b []byte, lo, hi int64) int {
	t.Helper()
	page := int64(os.Getpagesize())
	lo = lo / page * page // mincore wants a page-aligned start; the mapping is one
	vec := make([]byte, (hi-lo+page-1)/page)
	region := b[lo:hi]
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&region[0])), uintptr(len(region)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestOpenLargeIsLazy opens a 1.05 GB checkpoint of the benchmark's layout,
// made sparse so the test writes only its header, and checks that Open is
// fast and reads no tensor data, and that reading one tensor brings in that
// tensor's pages and not a distant one's.
func TestOpenLargeIsLazy(t *testing.T) {
	buf := make([]byte, bigTensorBytes)
	ts := bigTensors(buf, buf)
	hdr, _, err := encodeHeader(ts, map[string]string{FormatKey: FormatPT})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "big.safetensors")
	head := fileBytes(string(hdr), nil)
	if err := os.WriteFile(p, head, 0o644); err != nil {
		t.Fatal(err)
	}
	size := int64(len(head)) + bigTensorCount*bigTensorBytes
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	f, err := Open(p)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Logf("Open of a %.2f GB file with %d tensors took %v", float64(size)/1e9, f.Len(), took)
	if took > 500*time.Millisecond {
		t.Errorf("Open took %v; it should parse only the header", took)
	}
	page := int64(os.Getpagesize())
	firstDataPage := (f.DataOffset() + page - 1) / page * page
	if n := residentPages(t, f.data, firstDataPage, size); n != 0 {
		t.Errorf("after Open, %d pages of tensor data are in memory, want 0", n)
	}

	names := f.Names()
	first, _ := f.Info(names[0])
	raw, err := f.Raw(first.Name)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := 0; i < len(raw); i += int(page) {
		sum += int(raw[i])
	}
	if sum != 0 {
		t.Errorf("a hole read back non-zero bytes")
	}
	lo, hi := f.DataOffset()+first.Begin, f.DataOffset()+first.End
	if n, want := residentPages(t, f.data, lo+page, hi-page), int((hi-lo)/page-2); n < want {
		t.Errorf("after reading %q, %d of its pages are in memory, want all %d", first.Name, n, want)
	}
	for _, name := range []string{names[len(names)/2], names[len(names)-1]} {
		info, _ := f.Info(name)
		if n := residentPages(t, f.data, f.DataOffset()+info.Begin, f.DataOffset()+info.End); n != 0 {
			t.Errorf("reading %q brought in %d pages of %q", first.Name, n, name)
		}
	}
}
