package tensorboard

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The reader below is deliberately independent of the writer: it computes
// CRC32C bit by bit, decodes varints and fixed-width fields by hand, and
// shares no helper with writer.go.

func crc32cBitwise(data []byte) uint32 {
	const poly = 0x82f63b78 // Castagnoli, reflected
	crc := ^uint32(0)
	for _, b := range data {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ poly
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func maskCRCForTest(c uint32) uint32 {
	rot := c>>15 | c<<17
	return rot + 0xa282ead8
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	return uint64(le32(b)) | uint64(le32(b[4:]))<<32
}

// readRecords parses TFRecord framing and verifies both checksums of every
// record.
func readRecords(data []byte) ([][]byte, error) {
	var recs [][]byte
	for off := 0; off < len(data); {
		if len(data)-off < 12 {
			return nil, fmt.Errorf("truncated header at %d", off)
		}
		lenBytes := data[off : off+8]
		if got, want := le32(data[off+8:]), maskCRCForTest(crc32cBitwise(lenBytes)); got != want {
			return nil, fmt.Errorf("record at %d: length crc %#x, want %#x", off, got, want)
		}
		n := le64(lenBytes)
		off += 12
		if n > uint64(len(data)-off) || uint64(len(data)-off)-n < 4 {
			return nil, fmt.Errorf("record at %d: length %d overruns file", off, n)
		}
		body := data[off : off+int(n)]
		off += int(n)
		if got, want := le32(data[off:]), maskCRCForTest(crc32cBitwise(body)); got != want {
			return nil, fmt.Errorf("record at %d: data crc %#x, want %#x", off, got, want)
		}
		off += 4
		recs = append(recs, body)
	}
	return recs, nil
}

type pbField struct {
	num   int
	wire  int
	u     uint64 // varint, fixed32, fixed64
	bytes []byte // length-delimited
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad varint")
}

func parseMessage(b []byte) ([]pbField, error) {
	var out []pbField
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := pbField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.u, n, err = readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, errors.New("short fixed64")
			}
			f.u = le64(b)
			b = b[8:]
		case 2:
			l, n, err := readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return nil, errors.New("short bytes")
			}
			f.bytes = b[:l]
			b = b[l:]
		case 5:
			if len(b) < 4 {
				return nil, errors.New("short fixed32")
			}
			f.u = uint64(le32(b))
			b = b[4:]
		default:
			return nil, fmt.Errorf("unexpected wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

type testValue struct {
	tag string
	v   float32
}

type testEvent struct {
	wallTime    float64
	step        int64
	fileVersion string
	hasSummary  bool
	values      []testValue
}

func decodeEvent(b []byte) (testEvent, error) {
	var ev testEvent
	fields, err := parseMessage(b)
	if err != nil {
		return ev, err
	}
	for _, f := range fields {
		switch {
		case f.num == 1 && f.wire == 1:
			ev.wallTime = math.Float64frombits(f.u)
		case f.num == 2 && f.wire == 0:
			ev.step = int64(f.u)
		case f.num == 3 && f.wire == 2:
			ev.fileVersion = string(f.bytes)
		case f.num == 5 && f.wire == 2:
			ev.hasSummary = true
			sfields, err := parseMessage(f.bytes)
			if err != nil {
				return ev, err
			}
			for _, sf := range sfields {
				if sf.num != 1 || sf.wire != 2 {
					return ev, fmt.Errorf("unexpected Summary field %d/%d", sf.num, sf.wire)
				}
				vfields, err := parseMessage(sf.bytes)
				if err != nil {
					return ev, err
				}
				var tv testValue
				for _, vf := range vfields {
					switch {
					case vf.num == 1 && vf.wire == 2:
						tv.tag = string(vf.bytes)
					case vf.num == 2 && vf.wire == 5:
						tv.v = math.Float32frombits(uint32(vf.u))
					default:
						return ev, fmt.Errorf("unexpected Value field %d/%d", vf.num, vf.wire)
					}
				}
				ev.values = append(ev.values, tv)
			}
		default:
			return ev, fmt.Errorf("unexpected Event field %d/%d", f.num, f.wire)
		}
	}
	return ev, nil
}

func readEventFile(t *testing.T, path string) []testEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readRecords(data)
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]testEvent, 0, len(recs))
	for i, r := range recs {
		ev, err := decodeEvent(r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestCRC32CKnownAnswer(t *testing.T) {
	// Check the test's own CRC against published CRC32C check values, and
	// the writer's against the test's.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"123456789", 0xe3069283},
		{strings.Repeat("\x00", 32), 0x8a9136aa},
	}
	for _, tt := range tests {
		if got := crc32cBitwise([]byte(tt.in)); got != tt.want {
			t.Errorf("crc32c(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
		if got, want := maskedCRC([]byte(tt.in)), maskCRCForTest(tt.want); got != want {
			t.Errorf("maskedCRC(%q) = %#x, want %#x", tt.in, got, want)
		}
	}
}

type scalarCall struct {
	step   int64
	wall   time.Time
	values map[string]float64
}

func TestScalarsRoundTrip(t *testing.T) {
	base := time.Unix(1700000000, 250_000_000)
	longTag := strings.Repeat("x", 300) // tag length needs a 2-byte varint
	tests := []struct {
		name  string
		calls []scalarCall
	}{
		{"none", nil},
		{"single", []scalarCall{{1, base, map[string]float64{"train/loss": 2.3456}}}},
		{"step zero", []scalarCall{{0, base, map[string]float64{"lr": 0}}}},
		{"sorted tags", []scalarCall{{10, base, map[string]float64{
			"train/loss": 1.5, "eval/loss": 1.75, "train/lr": 2e-4, "train/tok_per_sec": 12345.678,
		}}}},
		{"many steps", []scalarCall{
			{1, base, map[string]float64{"loss": 3}},
			{2, base.Add(time.Second), map[string]float64{"loss": 2.5}},
			{1 << 40, base.Add(2 * time.Second), map[string]float64{"loss": -1e-30}},
		}},
		{"negative step", []scalarCall{{-7, base, map[string]float64{"loss": 1}}}},
		{"special values", []scalarCall{{3, base, map[string]float64{
			"inf": math.Inf(1), "ninf": math.Inf(-1), "big": 1e300, "tiny": 1e-50, "nan": math.NaN(),
		}}}},
		{"long tag", []scalarCall{{5, base, map[string]float64{longTag: 0.125, "ünïcode/λ": 42}}}},
		{"empty map skipped", []scalarCall{{5, base, map[string]float64{}}, {6, base, map[string]float64{"a": 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := New(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.calls {
				if err := w.Scalars(c.step, c.wall, c.values); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			evs := readEventFile(t, w.Path())
			if len(evs) == 0 {
				t.Fatal("no records")
			}
			if evs[0].fileVersion != "brain.Event:2" || evs[0].hasSummary {
				t.Fatalf("first event = %+v, want file_version brain.Event:2", evs[0])
			}
			if evs[0].wallTime < float64(time.Now().Add(-time.Hour).Unix()) {
				t.Errorf("file_version wall_time %v not recent", evs[0].wallTime)
			}
			var want []scalarCall
			for _, c := range tt.calls {
				if len(c.values) > 0 {
					want = append(want, c)
				}
			}
			if got := len(evs) - 1; got != len(want) {
				t.Fatalf("got %d scalar events, want %d", got, len(want))
			}
			for i, c := range want {
				ev := evs[i+1]
				if ev.step != c.step {
					t.Errorf("event %d: step %d, want %d", i, ev.step, c.step)
				}
				if wt := float64(c.wall.UnixNano()) / 1e9; ev.wallTime != wt {
					t.Errorf("event %d: wall_time %v, want %v", i, ev.wallTime, wt)
				}
				if !ev.hasSummary || len(ev.values) != len(c.values) {
					t.Fatalf("event %d: %d values, want %d", i, len(ev.values), len(c.values))
				}
				for j, v := range ev.values {
					if j > 0 && ev.values[j-1].tag >= v.tag {
						t.Errorf("event %d: tags not sorted: %q before %q", i, ev.values[j-1].tag, v.tag)
					}
					src, ok := c.values[v.tag]
					if !ok {
						t.Errorf("event %d: unexpected tag %q", i, v.tag)
						continue
					}
					want := float32(src)
					if math.Float32bits(v.v) != math.Float32bits(want) && !(math.IsNaN(float64(v.v)) && math.IsNaN(float64(want))) {
						t.Errorf("event %d tag %q: value %v, want %v", i, v.tag, v.v, want)
					}
				}
			}
		})
	}
}

func TestFileName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "run")
	before := time.Now().Unix()
	w1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w1.Close() }()
	w2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w2.Close() }()
	after := time.Now().Unix()
	if w1.Path() == w2.Path() {
		t.Fatalf("two writers share %s", w1.Path())
	}
	re := regexp.MustCompile(`^events\.out\.tfevents\.(\d+)\.(.+)\.(\d+)\.(\d+)$`)
	for _, p := range []string{w1.Path(), w2.Path()} {
		if filepath.Dir(p) != dir {
			t.Errorf("%s not in %s", p, dir)
		}
		m := re.FindStringSubmatch(filepath.Base(p))
		if m == nil {
			t.Fatalf("bad file name %q", filepath.Base(p))
		}
		ts, _ := strconv.ParseInt(m[1], 10, 64)
		if ts < before || ts > after {
			t.Errorf("time %d outside [%d, %d]", ts, before, after)
		}
		if m[3] != strconv.Itoa(os.Getpid()) {
			t.Errorf("pid %s, want %d", m[3], os.Getpid())
		}
	}
}

func TestCorruptionDetected(t *testing.T) {
	w, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 3; step++ {
		if err := w.Scalars(step, time.Unix(1700000000+step, 0), map[string]float64{"loss": 1 / float64(step), "lr": 1e-4}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readRecords(data); err != nil {
		t.Fatalf("pristine file rejected: %v", err)
	}
	// Flip every byte in turn: the length, its CRC, the data and the data
	// CRC are all covered, so each single-byte corruption must be caught.
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if _, err := readRecords(bad); err == nil {
			t.Fatalf("corruption of byte %d/%d not detected", i, len(data))
		}
	}
}

func TestClosedAndInvalid(t *testing.T) {
	tests := []struct {
		name string
		run  func(w *Writer) error
		want error
	}{
		{"scalars after close", func(w *Writer) error {
			_ = w.Close()
			return w.Scalars(1, time.Now(), map[string]float64{"a": 1})
		}, ErrClosed},
		{"flush after close", func(w *Writer) error { _ = w.Close(); return w.Flush() }, ErrClosed},
		{"double close", func(w *Writer) error { _ = w.Close(); return w.Close() }, nil},
		{"flush", func(w *Writer) error { return w.Flush() }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Close() }()
			if err := tt.run(w); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("empty tag", func(t *testing.T) {
		w, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Close() }()
		if err := w.Scalars(1, time.Now(), map[string]float64{"": 1}); err == nil {
			t.Fatal("empty tag accepted")
		}
	})
	t.Run("invalid utf-8 tag", func(t *testing.T) {
		w, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Close() }()
		if err := w.Scalars(1, time.Now(), map[string]float64{"ok": 1, "bad\xff": 1}); err == nil {
			t.Fatal("invalid UTF-8 tag accepted")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if evs := readEventFile(t, w.Path()); len(evs) != 1 {
			t.Fatalf("rejected call still wrote %d events", len(evs)-1)
		}
	})
	t.Run("zero wall time means now", func(t *testing.T) {
		w, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		before := float64(time.Now().UnixNano()) / 1e9
		if err := w.Scalars(1, time.Time{}, map[string]float64{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		evs := readEventFile(t, w.Path())
		if len(evs) != 2 || evs[1].wallTime < before {
			t.Fatalf("events %+v, want wall_time >= %v", evs, before)
		}
	})
	t.Run("dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(f); err == nil {
			t.Fatal("New on a regular file succeeded")
		}
	})
}

func TestConcurrentScalars(t *testing.T) {
	w, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 50 {
				if err := w.Scalars(int64(g*1000+i), time.Now(), map[string]float64{"loss": float64(i)}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if evs := readEventFile(t, w.Path()); len(evs) != 201 {
		t.Fatalf("got %d events, want 201", len(evs))
	}
}

func TestEventGoldenBytes(t *testing.T) {
	// Bytes worked out by hand from event.proto / summary.proto.
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{
			"file_version",
			appendFileVersionEvent(nil, 1),
			[]byte{
				0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // wall_time=1.0 (field 1, fixed64)
				0x1a, 13, 'b', 'r', 'a', 'i', 'n', '.', 'E', 'v', 'e', 'n', 't', ':', '2', // file_version (field 3)
			},
		},
		{
			"scalar",
			appendScalarEvent(nil, 1, 1, []string{"a"}, map[string]float64{"a": 1}),
			[]byte{
				0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // wall_time=1.0
				0x10, 0x01, // step=1 (field 2, varint)
				0x2a, 10, // summary (field 5), 10 bytes
				0x0a, 8, // Summary.value (field 1), 8 bytes
				0x0a, 1, 'a', // tag (field 1)
				0x15, 0, 0, 0x80, 0x3f, // simple_value=1.0f (field 2, fixed32)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != string(tt.want) {
				t.Fatalf("got  % x\nwant % x", tt.got, tt.want)
			}
		})
	}
}
