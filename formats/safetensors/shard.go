package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The file names of a Hugging Face checkpoint directory, as transformers
// writes them: one file, or shards named ShardName(i, n) plus an index.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// ShardName returns the name of shard i (from 1) of n, as transformers names
// them: model-00001-of-00003.safetensors.
func ShardName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

var shardNameRE = regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)

// WriteSharded writes tensors into dir (created if missing) as a Hugging
// Face checkpoint and returns the paths it wrote. Tensors are put into
// shards in the order given, a new shard starting when the next tensor's
// data would take the current one past maxShardBytes; a tensor larger than
// maxShardBytes gets a shard of its own. When everything fits in one shard
// the result is dir/model.safetensors alone; otherwise it is
// model-00001-of-0000M.safetensors ... plus model.safetensors.index.json,
// {"metadata": {"total_size": N}, "weight_map": {name: shard}} with N the
// tensors' total size in bytes, keys sorted and indented by two spaces as
// transformers writes it. Every shard gets metadata plus "format": "pt", as
// Write does, and each file is written atomically; the index is written
// after the shards.
//
// Files that a previous save of another layout left in dir
// (model.safetensors, model.safetensors.index.json, model-*-of-*.safetensors
// not written by this call) are then removed, as transformers does, so that
// OpenDir and other loaders see only the new checkpoint.
func WriteSharded(dir string, tensors []Tensor, metadata map[string]string, maxShardBytes int64) ([]string, error) {
	if maxShardBytes <= 0 {
		return nil, fmt.Errorf("safetensors: write %s: maximum shard size %d is not positive", dir, maxShardBytes)
	}
	md, err := withFormat(metadata)
	if err != nil {
		return nil, fmt.Errorf("safetensors: write %s: %w", dir, err)
	}
	sizes, err := checkTensors(tensors)
	if err != nil {
		return nil, fmt.Errorf("safetensors: write %s: %w", dir, err)
	}
	var shards [][]Tensor
	var cur []Tensor
	var curSize, total uint64
	for i, t := range tensors {
		size := sizes[i]
		total += size
		if size > uint64(maxShardBytes) {
			if len(cur) > 0 {
				shards = append(shards, cur)
				cur, curSize = nil, 0
			}
			shards = append(shards, []Tensor{t})
			continue
		}
		if len(cur) > 0 && curSize+size > uint64(maxShardBytes) {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += size
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("safetensors: write %s: %w", dir, err)
	}

	var written []string
	if len(shards) == 1 {
		p := filepath.Join(dir, SingleFileName)
		if err := Write(p, shards[0], md); err != nil {
			return nil, err
		}
		written = append(written, p)
	} else {
		weightMap := make(map[string]string, len(tensors))
		for i, s := range shards {
			name := ShardName(i+1, len(shards))
			p := filepath.Join(dir, name)
			if err := Write(p, s, md); err != nil {
				return nil, err
			}
			for _, t := range s {
				weightMap[t.Name] = name
			}
			written = append(written, p)
		}
		idx := encodeIndex(total, weightMap)
		p := filepath.Join(dir, IndexFileName)
		if err := writeAtomic(p, func(w io.Writer) error {
			_, err := w.Write(idx)
			return err
		}); err != nil {
			return nil, err
		}
		written = append(written, p)
	}
	if err := removeStale(dir, written); err != nil {
		return written, err
	}
	return written, nil
}

// encodeIndex renders an index file as transformers does:
// json.dumps(index, indent=2, sort_keys=True) + "\n".
func encodeIndex(total uint64, weightMap map[string]string) []byte {
	names := make([]string, 0, len(weightMap))
	for n := range weightMap {
		names = append(names, n)
	}
	slices.Sort(names)
	b := []byte("{\n  \"metadata\": {\n    \"total_size\": ")
	b = strconv.AppendUint(b, total, 10)
	b = append(b, "\n  },\n  \"weight_map\": {"...)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = appendJSONString(b, n)
		b = append(b, ": "...)
		b = appendJSONString(b, weightMap[n])
	}
	if len(names) > 0 {
		b = append(b, "\n  "...)
	}
	return append(b, "}\n}\n"...)
}

// removeStale removes the checkpoint files in dir that are not in keep.
func removeStale(dir string, keep []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(name == SingleFileName || name == IndexFileName || shardNameRE.MatchString(name)) {
			continue
		}
		p := filepath.Join(dir, name)
		if slices.Contains(keep, p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("safetensors: write %s: removing a stale file: %w", dir, err)
		}
	}
	return nil
}

// Sharded is a checkpoint of one or more safetensors files presented as one
// set of tensors: the shards of a model.safetensors.index.json, or a single
// file. Like File, its methods may be called concurrently, except Close.
type Sharded struct {
	path  string         // the index, or the single file
	files []*File        // the shards, by file name
	names []string       // every tensor, by shard then offset
	where map[string]int // tensor -> index in files
}

// OpenDir opens the checkpoint in dir: model.safetensors.index.json and its
// shards, or else model.safetensors. A directory with both is ambiguous and
// an error, as is one with neither.
func OpenDir(dir string) (*Sharded, error) {
	idx := filepath.Join(dir, IndexFileName)
	single := filepath.Join(dir, SingleFileName)
	_, ierr := os.Stat(idx)
	_, serr := os.Stat(single)
	switch {
	case ierr == nil && serr == nil:
		return nil, fmt.Errorf("safetensors: %s: both %s and %s are present; remove the stale one", dir, IndexFileName, SingleFileName)
	case ierr == nil:
		return OpenIndex(idx)
	case serr == nil:
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Sharded{path: single, files: []*File{f}, names: f.Names(), where: make(map[string]int, f.Len())}
		for _, n := range s.names {
			s.where[n] = 0
		}
		return s, nil
	case !errors.Is(ierr, fs.ErrNotExist):
		return nil, fmt.Errorf("safetensors: %w", ierr)
	case !errors.Is(serr, fs.ErrNotExist):
		return nil, fmt.Errorf("safetensors: %w", serr)
	}
	return nil, fmt.Errorf("safetensors: %s: no %s or %s: %w", dir, IndexFileName, SingleFileName, fs.ErrNotExist)
}

// OpenIndex opens the sharded checkpoint described by the index file at
// path (model.safetensors.index.json). It opens every shard its weight_map
// names, from the index's directory, and checks that each shard exists and
// holds every tensor the weight_map assigns to it. Tensors a shard holds
// but the weight_map does not list are ignored, as transformers ignores
// them. A malformed index is a *FormatError.
func OpenIndex(path string) (*Sharded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	entries, err := parseIndex(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	byShard := make(map[string][]string)
	for _, e := range entries {
		byShard[e.file] = append(byShard[e.file], e.tensor)
	}
	shardNames := make([]string, 0, len(byShard))
	for name := range byShard {
		shardNames = append(shardNames, name)
	}
	slices.Sort(shardNames)

	s := &Sharded{path: path, where: make(map[string]int, len(entries))}
	for i, name := range shardNames {
		listed := byShard[name]
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			s.Close()
			return nil, formatErr(path, listed[0], "its shard %s (listed for %d tensors) does not exist", p, len(listed))
		}
		f, err := Open(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: opening shard: %w", path, err)
		}
		s.files = append(s.files, f)
		for _, n := range listed {
			if _, ok := f.h.index[n]; !ok {
				s.Close()
				return nil, formatErr(path, n, "weight_map puts this tensor in %s, which does not contain it", p)
			}
			s.where[n] = i
		}
		for _, n := range f.Names() {
			if j, ok := s.where[n]; ok && j == i {
				s.names = append(s.names, n)
			}
		}
	}
	return s, nil
}

type indexEntry struct{ tensor, file string }

// parseIndex reads the weight_map of an index file, rejecting duplicate
// tensor names and shard names that are not plain file names.
func parseIndex(path string, data []byte) ([]indexEntry, error) {
	if !utf8.Valid(data) {
		return nil, formatErr(path, "", "index is not valid UTF-8")
	}
	p := &headerParser{path: path, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	tok, err := p.next("")
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, p.errorf("", "index must be a JSON object, found %s", describe(tok))
	}
	var entries []indexEntry
	haveMap := false
	for {
		key, ok, err := p.key("")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if key != "weight_map" {
			var skip json.RawMessage
			if err := p.dec.Decode(&skip); err != nil {
				return nil, p.errorf("", "index is not valid JSON: %v", err)
			}
			continue
		}
		if haveMap {
			return nil, p.errorf("", `index has two "weight_map" entries`)
		}
		haveMap = true
		if entries, err = p.weightMap(); err != nil {
			return nil, err
		}
	}
	if tok, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.errorf("", "index has trailing data after its JSON object: %v", err)
		}
		return nil, p.errorf("", "index has trailing data after its JSON object, starting with %s", describe(tok))
	}
	if !haveMap {
		return nil, p.errorf("", `index has no "weight_map"`)
	}
	return entries, nil
}

func (p *headerParser) weightMap() ([]indexEntry, error) {
	tok, err := p.next("")
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, p.errorf("", `"weight_map" must be an object mapping tensor names to shard files, found %s`, describe(tok))
	}
	var entries []indexEntry
	seen := make(map[string]bool)
	for {
		name, ok, err := p.key("")
		if err != nil {
			return nil, err
		}
		if !ok {
			return entries, nil
		}
		if seen[name] {
			return nil, p.errorf(name, "weight_map lists this tensor twice (duplicate JSON key)")
		}
		seen[name] = true
		tok, err := p.next(name)
		if err != nil {
			return nil, err
		}
		file, isString := tok.(string)
		if !isString {
			return nil, p.errorf(name, "weight_map value must be a shard file name, found %s", describe(tok))
		}
		if file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`) || filepath.Base(file) != file {
			return nil, p.errorf(name, "weight_map names shard %q, which is not a file name in the index's directory", file)
		}
		entries = append(entries, indexEntry{tensor: name, file: file})
	}
}

// Path is the index file, or the single file for a one-file checkpoint.
func (s *Sharded) Path() string { return s.path }

// Len is the number of tensors.
func (s *Sharded) Len() int { return len(s.names) }

// Names returns every tensor's name, shard by shard (shards in file-name
// order) and by data offset within a shard.
func (s *Sharded) Names() []string { return slices.Clone(s.names) }

// Files returns the open shards, in file-name order. They belong to s.
func (s *Sharded) Files() []*File { return slices.Clone(s.files) }

// Shard returns the open shard that holds the named tensor.
func (s *Sharded) Shard(name string) (*File, bool) {
	i, ok := s.where[name]
	if !ok {
		return nil, false
	}
	return s.files[i], true
}

// Info returns the description of the named tensor; its offsets are
// relative to its shard's data buffer.
func (s *Sharded) Info(name string) (TensorInfo, bool) {
	f, ok := s.Shard(name)
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Raw returns the named tensor's bytes from its shard, as File.Raw does.
func (s *Sharded) Raw(name string) ([]byte, error) {
	f, ok := s.Shard(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", s.path, name, ErrNotFound)
	}
	return f.Raw(name)
}

// Float32 returns the named tensor converted to float32, as File.Float32
// does.
func (s *Sharded) Float32(name string) ([]float32, error) {
	f, ok := s.Shard(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", s.path, name, ErrNotFound)
	}
	return f.Float32(name)
}

// AppendFloat32 appends the named tensor converted to float32 to dst, as
// File.AppendFloat32 does.
func (s *Sharded) AppendFloat32(dst []float32, name string) ([]float32, error) {
	f, ok := s.Shard(name)
	if !ok {
		return dst, fmt.Errorf("safetensors: %s: tensor %q: %w", s.path, name, ErrNotFound)
	}
	return f.AppendFloat32(dst, name)
}

// Close closes every shard and returns the first error.
func (s *Sharded) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
