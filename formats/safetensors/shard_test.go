package safetensors

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func u8Tensor(name string, n int) Tensor {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(len(name) + i)
	}
	return Tensor{Name: name, DType: U8, Shape: []int{n}, Data: data}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteShardedOneFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt") // created by WriteSharded
	ts := []Tensor{u8Tensor("a", 100), u8Tensor("b", 100)}
	paths, err := WriteSharded(dir, ts, nil, 200)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "model.safetensors")
	if !slices.Equal(paths, []string{want}) {
		t.Errorf("WriteSharded wrote %q, want only %s", paths, want)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"model.safetensors"}) {
		t.Errorf("directory holds %q", got)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkTensorsIn(t, s, ts)
	if s.Path() != want || s.Len() != 2 || len(s.Files()) != 1 {
		t.Errorf("Path %s, Len %d, %d files", s.Path(), s.Len(), len(s.Files()))
	}
}

// TestWriteShardedSplits checks the split (in input order, a new shard when
// the next tensor would overflow, a shard of its own for a tensor over the
// limit), the shard names, the index's exact text and reading it back.
func TestWriteShardedSplits(t *testing.T) {
	dir := t.TempDir()
	ts := []Tensor{
		u8Tensor("layer.0", 100),
		u8Tensor("layer.1", 100), // fills shard 1 to exactly 200
		u8Tensor("layer.2", 100), // shard 2
		u8Tensor("big", 250),     // over the limit: shard 3 alone
		u8Tensor("empty", 0),     // shard 4
		u8Tensor("z.last", 50),   // shard 4
	}
	paths, err := WriteSharded(dir, ts, map[string]string{"by": "whet"}, 200)
	if err != nil {
		t.Fatal(err)
	}
	shard := func(i int) string { return filepath.Join(dir, ShardName(i, 4)) }
	wantPaths := []string{shard(1), shard(2), shard(3), shard(4), filepath.Join(dir, "model.safetensors.index.json")}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("wrote %q\nwant %q", paths, wantPaths)
	}
	if ShardName(1, 4) != "model-00001-of-00004.safetensors" {
		t.Errorf("ShardName(1, 4) = %s", ShardName(1, 4))
	}
	index, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	// What transformers writes: json.dumps(index, indent=2, sort_keys=True) + "\n".
	const wantIndex = `{
  "metadata": {
    "total_size": 600
  },
  "weight_map": {
    "big": "model-00003-of-00004.safetensors",
    "empty": "model-00004-of-00004.safetensors",
    "layer.0": "model-00001-of-00004.safetensors",
    "layer.1": "model-00001-of-00004.safetensors",
    "layer.2": "model-00002-of-00004.safetensors",
    "z.last": "model-00004-of-00004.safetensors"
  }
}
`
	if string(index) != wantIndex {
		t.Errorf("index is\n%s\nwant\n%s", index, wantIndex)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkTensorsIn(t, s, ts)
	wantNames := []string{"layer.0", "layer.1", "layer.2", "big", "empty", "z.last"}
	if got := s.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %q, want %q", got, wantNames)
	}
	for name, i := range map[string]int{"layer.1": 1, "layer.2": 2, "big": 3, "z.last": 4} {
		if f, ok := s.Shard(name); !ok || f.Path() != shard(i) {
			t.Errorf("Shard(%q) is not %s", name, shard(i))
		}
	}
	for _, f := range s.Files() {
		if md := f.Metadata(); md["format"] != "pt" || md["by"] != "whet" {
			t.Errorf("%s: metadata %v", f.Path(), md)
		}
	}
	if got, err := s.Float32("big"); err == nil {
		t.Errorf("Float32 of a U8 tensor = %v", got)
	}
	if _, err := s.Raw("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "model.safetensors.index.json") {
		t.Errorf("Raw of an absent tensor: %v", err)
	}
	if _, ok := s.Info("nope"); ok {
		t.Error("Info of an absent tensor succeeded")
	}
}

func TestWriteShardedFloat32AndLimits(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{1, 2, 3, 4}
	data, _ := EncodeFloat32(BF16, vals)
	ts := []Tensor{{Name: "w", DType: BF16, Shape: []int{2, 2}, Data: data}, u8Tensor("x", 8)}
	if _, err := WriteSharded(dir, ts, nil, 8); err != nil {
		t.Fatal(err)
	}
	s, err := OpenIndex(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Float32("w"); err != nil || !slices.Equal(got, vals) {
		t.Errorf("Float32(w) = %v, %v", got, err)
	}
	if got, err := s.AppendFloat32([]float32{9}, "w"); err != nil || !slices.Equal(got, append([]float32{9}, vals...)) {
		t.Errorf("AppendFloat32([9], w) = %v, %v", got, err)
	}
	if got, err := s.AppendFloat32([]float32{9}, "nope"); !errors.Is(err, ErrNotFound) || !slices.Equal(got, []float32{9}) {
		t.Errorf("AppendFloat32 of an absent tensor = %v, %v", got, err)
	}
	s.Close()
	for _, max := range []int64{0, -1} {
		if _, err := WriteSharded(dir, ts, nil, max); err == nil || !strings.Contains(err.Error(), "not positive") {
			t.Errorf("WriteSharded with limit %d: %v", max, err)
		}
	}
	if _, err := WriteSharded(dir, []Tensor{ts[0], ts[0]}, nil, 100); err == nil || !strings.Contains(err.Error(), `tensor "w": two tensors`) {
		t.Errorf("WriteSharded with a duplicate: %v", err)
	}
	if _, err := WriteSharded(dir, ts, map[string]string{"format": "tf"}, 100); err == nil || !strings.Contains(err.Error(), `"format"`) {
		t.Errorf("WriteSharded with format tf: %v", err)
	}
}

// TestWriteShardedRemovesStale saves sharded, then as one file, then sharded
// with fewer shards, into the same directory: each save leaves exactly its
// own checkpoint files (and the unrelated ones).
func TestWriteShardedRemovesStale(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model-1-of-2.safetensors", "other.safetensors"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unrelated := []string{"config.json", "model-1-of-2.safetensors", "other.safetensors"}
	ts := []Tensor{u8Tensor("a", 10), u8Tensor("b", 10), u8Tensor("c", 10)}
	for _, step := range []struct {
		limit int64
		files []string
	}{
		{10, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"}},
		{100, []string{"model.safetensors"}},
		{20, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
	} {
		if _, err := WriteSharded(dir, ts, nil, step.limit); err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(unrelated), step.files...)))
		if got := listDir(t, dir); !slices.Equal(got, want) {
			t.Errorf("limit %d: directory holds %q, want %q", step.limit, got, want)
		}
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		checkTensorsIn(t, s, ts)
		s.Close()
	}
}

var shardedTemplate struct {
	once  sync.Once
	files map[string][]byte
	err   error
}

// shardedDir returns a new directory holding a three-shard checkpoint of
// tensors a, b and c. The checkpoint is written by WriteSharded once and
// copied for each caller, which keeps the tests clear of a hundred fsyncs.
func shardedDir(t *testing.T) string {
	t.Helper()
	shardedTemplate.once.Do(func() {
		dir, err := os.MkdirTemp("", "whet-safetensors-shards-")
		if err != nil {
			shardedTemplate.err = err
			return
		}
		defer os.RemoveAll(dir)
		paths, err := WriteSharded(dir, []Tensor{u8Tensor("a", 10), u8Tensor("b", 10), u8Tensor("c", 10)}, nil, 10)
		if err != nil {
			shardedTemplate.err = err
			return
		}
		shardedTemplate.files = map[string][]byte{}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				shardedTemplate.err = err
				return
			}
			shardedTemplate.files[filepath.Base(p)] = b
		}
	})
	if shardedTemplate.err != nil {
		t.Fatal(shardedTemplate.err)
	}
	dir := t.TempDir()
	for name, b := range shardedTemplate.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenIndexErrors(t *testing.T) {
	shard1 := "model-00001-of-00003.safetensors"
	for _, tc := range []struct {
		name   string
		index  string // replaces the index when not empty
		prep   func(dir string)
		tensor string
		want   []string
	}{
		{name: "missing shard", prep: func(dir string) { os.Remove(filepath.Join(dir, "model-00002-of-00003.safetensors")) },
			tensor: "b", want: []string{"its shard", "model-00002-of-00003.safetensors (listed for 1 tensors) does not exist"}},
		{name: "tensor missing from its shard", index: `{"weight_map":{"a":"` + shard1 + `","b":"` + shard1 + `"}}`,
			tensor: "b", want: []string{"weight_map puts this tensor in", shard1 + ", which does not contain it"}},
		{name: "tensor absent everywhere", index: `{"metadata":{"total_size":30},"weight_map":{"a":"` + shard1 + `","ghost":"` + shard1 + `"}}`,
			tensor: "ghost", want: []string{"does not contain it"}},
		{name: "duplicate weight_map key", index: `{"weight_map":{"a":"` + shard1 + `","a":"` + shard1 + `"}}`,
			tensor: "a", want: []string{"weight_map lists this tensor twice"}},
		{name: "two weight_maps", index: `{"weight_map":{},"weight_map":{}}`, want: []string{`two "weight_map" entries`}},
		{name: "no weight_map", index: `{"metadata":{}}`, want: []string{`index has no "weight_map"`}},
		{name: "weight_map not object", index: `{"weight_map":["a"]}`, want: []string{`"weight_map" must be an object`, "found an array"}},
		{name: "shard not string", index: `{"weight_map":{"a":1}}`, tensor: "a", want: []string{"weight_map value must be a shard file name, found the number 1"}},
		{name: "shard path escapes", index: `{"weight_map":{"a":"../model.safetensors"}}`, tensor: "a", want: []string{`names shard "../model.safetensors", which is not a file name in the index's directory`}},
		{name: "shard absolute", index: `{"weight_map":{"a":"/etc/passwd"}}`, tensor: "a", want: []string{"not a file name"}},
		{name: "shard empty", index: `{"weight_map":{"a":""}}`, tensor: "a", want: []string{"not a file name"}},
		{name: "not an object", index: `["weight_map"]`, want: []string{"index must be a JSON object, found an array"}},
		{name: "bad JSON", index: `{"weight_map":{"a":}`, tensor: "a", want: []string{"not valid JSON"}},
		{name: "bad JSON in skipped value", index: `{"metadata":{"x":},"weight_map":{}}`, want: []string{"not valid JSON"}},
		{name: "trailing data", index: `{"weight_map":{}} {}`, want: []string{"trailing data"}},
		{name: "bad UTF-8", index: "{\"weight_map\":{\"\xff\":\"x\"}}", want: []string{"not valid UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shardedDir(t)
			idx := filepath.Join(dir, IndexFileName)
			if tc.index != "" {
				if err := os.WriteFile(idx, []byte(tc.index), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.prep != nil {
				tc.prep(dir)
			}
			s, err := OpenIndex(idx)
			if err == nil {
				s.Close()
			}
			checkFormatError(t, err, idx, tc.tensor, tc.want...)
		})
	}
}

func TestOpenIndexBadShard(t *testing.T) {
	dir := shardedDir(t)
	bad := filepath.Join(dir, "model-00003-of-00003.safetensors")
	if err := os.WriteFile(bad, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(dir, IndexFileName)
	_, err := OpenIndex(idx)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Path != bad || !strings.Contains(err.Error(), idx) || !strings.Contains(err.Error(), "shorter than the 8-byte") {
		t.Errorf("OpenIndex with a corrupt shard: %v; want a FormatError for %s, mentioning the index", err, bad)
	}
	if _, err := OpenIndex(filepath.Join(dir, "absent.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenIndex(absent) = %v", err)
	}
}

func TestOpenIndexIgnoresUnlisted(t *testing.T) {
	dir := shardedDir(t)
	idx := filepath.Join(dir, IndexFileName)
	// Only "a" is listed; the shards also hold "b" and "c".
	if err := os.WriteFile(idx, []byte(`{"weight_map":{"a":"model-00001-of-00003.safetensors"},"dtype":"bfloat16"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Names(); !slices.Equal(got, []string{"a"}) || len(s.Files()) != 1 {
		t.Errorf("Names() = %q with %d files, want [a] from one file", got, len(s.Files()))
	}
}

func TestOpenDirErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := OpenDir(empty); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), empty) {
		t.Errorf("OpenDir(empty) = %v", err)
	}
	dir := shardedDir(t)
	if err := Write(filepath.Join(dir, SingleFileName), []Tensor{u8Tensor("a", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("OpenDir with both layouts = %v, want an ambiguity error", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, SingleFileName), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(bad); err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Errorf("OpenDir with a corrupt file = %v", err)
	}
}

func TestWriteShardedRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 10 {
		var ts []Tensor
		for i := range rng.IntN(10) {
			ts = append(ts, u8Tensor("t"+string(rune('a'+i)), rng.IntN(40)))
		}
		limit := int64(rng.IntN(60) + 1)
		dir := t.TempDir()
		if _, err := WriteSharded(dir, ts, nil, limit); err != nil {
			t.Fatal(err)
		}
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != len(ts) {
			t.Errorf("trial %d: %d tensors back, want %d", trial, s.Len(), len(ts))
		}
		checkTensorsIn(t, s, ts)
		for _, f := range s.Files() {
			var size int64
			for _, info := range f.Tensors() {
				size += info.Size()
			}
			if size > limit && f.Len() != 1 {
				t.Errorf("trial %d: %s holds %d bytes in %d tensors, over the limit %d", trial, f.Path(), size, f.Len(), limit)
			}
		}
		s.Close()
	}
}
