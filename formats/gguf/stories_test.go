package gguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// storiesPath is the real model described in shared/models/README.md. It
// is not part of the repository: tests that need it skip where it is
// absent.
var storiesPath = filepath.Join("..", "..", "..", "shared", "models", "stories260K.gguf")

const storiesSHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"

func openStories(t *testing.T) (*File, []byte) {
	t.Helper()
	data, err := os.ReadFile(storiesPath)
	if os.IsNotExist(err) {
		t.Skipf("skipping: %s is absent (the stories260K model lives in shared/models beside the repository, not in it)", storiesPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != storiesSHA256 {
		t.Fatalf("%s has sha256 %x, want %s: not the file these assertions describe", storiesPath, sum, storiesSHA256)
	}
	f, err := Open(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

// TestStories260KMetadata checks the hyperparameters and vocabulary of the
// llama2.c stories260K model.
func TestStories260KMetadata(t *testing.T) {
	f, _ := openStories(t)
	if f.Version() != 3 || f.Alignment() != 32 || f.DataOffset() != 14176 {
		t.Errorf("version %d, alignment %d, data at %d", f.Version(), f.Alignment(), f.DataOffset())
	}
	for _, tc := range []struct {
		key  string
		want any
	}{
		{"general.architecture", "llama"},
		{"general.name", "llama"},
		{"tokenizer.ggml.model", "llama"},
		{"llama.context_length", uint64(2048)},
		{"llama.embedding_length", uint64(64)},
		{"llama.feed_forward_length", uint64(172)},
		{"llama.block_count", uint64(5)},
		{"llama.attention.head_count", uint64(8)},
		{"llama.attention.head_count_kv", uint64(4)},
		{"llama.rope.dimension_count", uint64(8)},
		{"llama.attention.layer_norm_rms_epsilon", float64(float32(1e-5))},
		{"tokenizer.ggml.unknown_token_id", uint64(0)},
		{"tokenizer.ggml.bos_token_id", uint64(1)},
		{"tokenizer.ggml.eos_token_id", uint64(2)},
		{"tokenizer.ggml.seperator_token_id", uint64(math.MaxUint32)}, // llama.cpp's spelling
		{"tokenizer.ggml.padding_token_id", uint64(math.MaxUint32)},
	} {
		var got any
		var err error
		switch tc.want.(type) {
		case string:
			got, err = f.String(tc.key)
		case uint64:
			got, err = f.Uint(tc.key)
		case float64:
			got, err = f.Float(tc.key)
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.key, got, err, tc.want)
		}
	}
	if n := len(f.Metadata()); n != 19 {
		t.Errorf("%d metadata pairs, want 19", n)
	}
	// The file has no rope.freq_base: readers use llama.cpp's default,
	// 10000, which is what the model was trained with.
	if v, ok := f.Get("llama.rope.freq_base"); ok {
		t.Errorf("llama.rope.freq_base = %v; the file was not expected to have it", v)
	}

	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		t.Fatal(err)
	}
	scores, err := f.Float32s("tokenizer.ggml.scores")
	if err != nil {
		t.Fatal(err)
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 512 || len(scores) != 512 || len(types) != 512 {
		t.Fatalf("%d tokens, %d scores, %d token types; want 512 of each", len(tokens), len(scores), len(types))
	}
	// Ids 0-2 are <unk> (type 2, unknown), <s> and </s> (3, control); 3-258
	// the byte tokens (6); then the merged pieces (1, normal), whose scores
	// fall from 0 by one per rank.
	for _, tc := range []struct {
		id    int
		token string
		typ   int32
		score float32
	}{
		{0, "<unk>", 2, 0}, {1, "<s>", 3, 0}, {2, "</s>", 3, 0},
		{3, "<0x00>", 6, 0}, {13, "<0x0A>", 6, 0}, {258, "<0xFF>", 6, 0},
		{259, "\u2581t", 1, 0}, {260, "he", 1, -1}, {265, "\u2581the", 1, -6}, {511, tokens[511], 1, -252},
	} {
		if tokens[tc.id] != tc.token || types[tc.id] != tc.typ || scores[tc.id] != tc.score {
			t.Errorf("token %d: %q type %d score %g; want %q %d %g", tc.id, tokens[tc.id], types[tc.id], scores[tc.id], tc.token, tc.typ, tc.score)
		}
	}
}

// storiesTensors lists the tensors of stories260K in file order, with
// their row-major shapes.
func storiesTensors() []TensorInfo {
	ti := func(name string, shape ...int) TensorInfo { return TensorInfo{Name: name, Type: TypeF32, Shape: shape} }
	out := []TensorInfo{ti("token_embd.weight", 512, 64), ti("output_norm.weight", 64), ti("output.weight", 512, 64)}
	for i := range 5 {
		b := fmt.Sprintf("blk.%d.", i)
		out = append(out,
			ti(b+"attn_q.weight", 64, 64),
			ti(b+"attn_k.weight", 32, 64), // 4 kv heads of 8
			ti(b+"attn_v.weight", 32, 64),
			ti(b+"attn_output.weight", 64, 64),
			ti(b+"attn_norm.weight", 64),
			ti(b+"ffn_gate.weight", 172, 64),
			ti(b+"ffn_down.weight", 64, 172),
			ti(b+"ffn_up.weight", 172, 64),
			ti(b+"ffn_norm.weight", 64))
	}
	return out
}

// TestStories260KTensors checks the tensor names, types, shapes and
// layout, and the data of every tensor against an independent decoding.
func TestStories260KTensors(t *testing.T) {
	f, data := openStories(t)
	got, want := f.Tensors(), storiesTensors()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	next := uint64(0) // tensors are packed in order, each aligned
	for i, g := range got {
		w := want[i]
		dims := make([]uint64, len(w.Shape))
		n := 1
		for j, s := range w.Shape {
			dims[len(dims)-1-j] = uint64(s)
			n *= s
		}
		if g.Name != w.Name || g.Type != w.Type || !reflect.DeepEqual(g.Shape, w.Shape) || !reflect.DeepEqual(g.Dims, dims) ||
			g.Elements != n || g.Size != 4*n || g.Offset != next {
			t.Errorf("tensor %d: got %s %v %v dims %v at %d (%d bytes); want %s %v %v dims %v at %d",
				i, g.Name, g.Type, g.Shape, g.Dims, g.Offset, g.Size, w.Name, w.Type, w.Shape, dims, next)
		}
		next = alignUp(next+uint64(4*n), 32)
	}
	if end := f.DataOffset() + next; end != uint64(len(data)) {
		t.Errorf("tensors end at %d, the file at %d", end, len(data))
	}

	// Every tensor: Float32 matches encoding/binary's reading of the bytes
	// at the tensor's place in the file, and the values are plausible.
	for _, ti := range got {
		x, err := f.Float32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ref := make([]float32, ti.Elements)
		start := int(f.DataOffset() + ti.Offset)
		if err := binary.Read(bytes.NewReader(data[start:start+4*ti.Elements]), binary.LittleEndian, ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, ref) {
			t.Errorf("%s: Float32 differs from the bytes in the file", ti.Name)
		}
		sum, minimum := 0.0, math.Inf(1)
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite value %g", ti.Name, v)
			}
			sum += float64(v) * float64(v)
			minimum = math.Min(minimum, float64(v))
		}
		rms := math.Sqrt(sum / float64(len(x)))
		if len(ti.Shape) == 1 {
			// RMSNorm gains: positive, of order one.
			if minimum <= 0 || rms < 0.3 || rms > 3 {
				t.Errorf("%s: norm weights with min %g, rms %g", ti.Name, minimum, rms)
			}
		} else if rms < 0.02 || rms > 1 {
			t.Errorf("%s: rms %g is implausible for trained weights", ti.Name, rms)
		}
	}

	// The model ties its output projection to the embeddings: llama2.c's
	// export wrote the same matrix twice.
	emb, _ := f.Float32("token_embd.weight")
	out, _ := f.Float32("output.weight")
	if !reflect.DeepEqual(emb, out) {
		t.Error("output.weight differs from token_embd.weight")
	}
	// Row-major: row 1 of token_embd (the embedding of <s>) starts at
	// element 64.
	raw, _ := f.Raw("token_embd.weight")
	if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*64:])); got != emb[64] {
		t.Errorf("element 64: raw %g, Float32 %g", got, emb[64])
	}
}
