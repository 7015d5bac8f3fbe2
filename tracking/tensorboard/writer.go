// Package tensorboard writes TensorBoard event files (the tfevents format)
// without depending on TensorFlow or a protobuf runtime.
//
// An event file is a TFRecord stream: each record is framed as
//
//	uint64 length (little endian)
//	uint32 masked CRC32C of the 8 length bytes
//	length bytes of data (a serialized tensorflow.Event)
//	uint32 masked CRC32C of the data
//
// The first record carries Event.file_version = "brain.Event:2"; every later
// record carries a Summary of scalar values. The protobuf messages are
// encoded by hand following tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto:
//
//	Event:         wall_time = 1 (double), step = 2 (int64),
//	               file_version = 3 (string), summary = 5 (Summary)
//	Summary:       value = 1 (repeated Summary.Value)
//	Summary.Value: tag = 1 (string), simple_value = 2 (float)
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// FileVersion is the value of Event.file_version in the first record.
const FileVersion = "brain.Event:2"

// FilePrefix starts the name of every event file; TensorBoard only picks up
// files whose name contains "tfevents".
const FilePrefix = "events.out.tfevents."

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("tensorboard: writer is closed")

// Protobuf field keys: (field_number << 3) | wire_type.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5

	keyEventWallTime    = 1<<3 | wireFixed64
	keyEventStep        = 2<<3 | wireVarint
	keyEventFileVersion = 3<<3 | wireBytes
	keyEventSummary     = 5<<3 | wireBytes
	keySummaryValue     = 1<<3 | wireBytes
	keyValueTag         = 1<<3 | wireBytes
	keyValueSimpleValue = 2<<3 | wireFixed32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileCounter makes the trailing <n> of file names unique inside a process,
// like the global uid of TensorBoard's own writer.
var fileCounter atomic.Int64

// Writer appends scalar summaries to one event file. It is safe for
// concurrent use.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	bw     *bufio.Writer
	path   string
	buf    []byte // scratch for one serialized Event
	closed bool
}

// New creates dir (and parents) if needed and opens a new event file in it
// named events.out.tfevents.<unix_time>.<hostname>.<pid>.<n>. The first
// record, carrying the file version, is written and flushed before New
// returns.
func New(dir string) (*Writer, error) {
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: create log dir: %w", err)
	}
	host := sanitizeHost(hostname())
	now := time.Now()
	var (
		f    *os.File
		path string
		err  error
	)
	// O_EXCL guards against clobbering a file of another writer that
	// happens to share time, host, pid and counter (e.g. a recycled pid).
	for range 100 {
		n := fileCounter.Add(1) - 1
		name := fmt.Sprintf("%s%010d.%s.%d.%d", FilePrefix, now.Unix(), host, os.Getpid(), n)
		path = filepath.Join(dir, name)
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil || !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: create event file: %w", err)
	}
	w := &Writer{f: f, bw: bufio.NewWriter(f), path: path}
	w.buf = appendFileVersionEvent(w.buf[:0], wallSeconds(now))
	if err := w.writeRecord(w.buf); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := w.bw.Flush(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("tensorboard: write event file: %w", err)
	}
	return w, nil
}

// Path returns the path of the event file.
func (w *Writer) Path() string { return w.path }

// Scalars records one Event at step whose Summary holds one simple_value per
// entry of values, tags in sorted order. Values are stored as float32, the
// precision of Summary.Value.simple_value. A zero wall time means now. An
// empty map writes nothing. The record is handed to the operating system
// before Scalars returns, so a running TensorBoard sees it; call Flush for
// durability.
func (w *Writer) Scalars(step int64, wall time.Time, values map[string]float64) error {
	if len(values) == 0 {
		return nil
	}
	tags := make([]string, 0, len(values))
	for tag := range values {
		if tag == "" {
			return errors.New("tensorboard: empty tag")
		}
		if !utf8.ValidString(tag) {
			// proto3 string fields must be UTF-8; readers reject the event.
			return fmt.Errorf("tensorboard: tag %q is not valid UTF-8", tag)
		}
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	if wall.IsZero() {
		wall = time.Now()
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.buf = appendScalarEvent(w.buf[:0], wallSeconds(wall), step, tags, values)
	if err := w.writeRecord(w.buf); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("tensorboard: write event file: %w", err)
	}
	return nil
}

// Flush writes any buffered data and syncs the file to stable storage.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.flushLocked()
}

// Close flushes and closes the file. Calling Close again returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flushLocked()
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("tensorboard: close event file: %w", cerr)
	}
	return err
}

func (w *Writer) flushLocked() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("tensorboard: write event file: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("tensorboard: sync event file: %w", err)
	}
	return nil
}

// writeRecord frames data as one TFRecord into the buffered writer.
func (w *Writer) writeRecord(data []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], maskedCRC(hdr[:8]))
	var ftr [4]byte
	binary.LittleEndian.PutUint32(ftr[:], maskedCRC(data))
	if _, err := w.bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("tensorboard: write event file: %w", err)
	}
	if _, err := w.bw.Write(data); err != nil {
		return fmt.Errorf("tensorboard: write event file: %w", err)
	}
	if _, err := w.bw.Write(ftr[:]); err != nil {
		return fmt.Errorf("tensorboard: write event file: %w", err)
	}
	return nil
}

// maskedCRC is the TFRecord checksum: CRC32C rotated right by 15 bits plus
// a constant, so that CRCs of data containing CRCs stay well distributed.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

func wallSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

func appendFileVersionEvent(b []byte, wall float64) []byte {
	b = appendDouble(b, keyEventWallTime, wall)
	b = appendBytesField(b, keyEventFileVersion, []byte(FileVersion))
	return b
}

func appendScalarEvent(b []byte, wall float64, step int64, tags []string, values map[string]float64) []byte {
	b = appendDouble(b, keyEventWallTime, wall)
	if step != 0 { // proto3 omits default scalars
		b = protowireVarint(b, keyEventStep)
		b = protowireVarint(b, uint64(step))
	}
	// Summary length = sum over values of (key + len varint + Value body).
	summaryLen := 0
	for _, tag := range tags {
		n := valueLen(tag)
		summaryLen += 1 + varintLen(uint64(n)) + n
	}
	b = protowireVarint(b, keyEventSummary)
	b = protowireVarint(b, uint64(summaryLen))
	for _, tag := range tags {
		b = protowireVarint(b, keySummaryValue)
		b = protowireVarint(b, uint64(valueLen(tag)))
		b = appendBytesField(b, keyValueTag, []byte(tag))
		// simple_value is a oneof member, so it is written even when 0.
		b = protowireVarint(b, keyValueSimpleValue)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(values[tag])))
	}
	return b
}

// valueLen is the encoded size of a Summary.Value{tag, simple_value}.
func valueLen(tag string) int {
	return 1 + varintLen(uint64(len(tag))) + len(tag) + 1 + 4
}

func appendDouble(b []byte, key uint64, v float64) []byte {
	b = protowireVarint(b, key)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendBytesField(b []byte, key uint64, v []byte) []byte {
	b = protowireVarint(b, key)
	b = protowireVarint(b, uint64(len(v)))
	return append(b, v...)
}

func protowireVarint(b []byte, v uint64) []byte {
	return binary.AppendUvarint(b, v)
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// sanitizeHost keeps the file name a single path element.
func sanitizeHost(h string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '/', '\\', 0:
			return '_'
		}
		return r
	}, h)
}
